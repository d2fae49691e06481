//! `init --account`: one reset of a test account followed to the end, to learn
//! the link, the set-password form and the answers.

use std::fmt::Write as _;
use std::time::Duration;

use url::Url;

use super::page::{Browser, ForgotForm, Outcome, Page, outcome_of};
use crate::fake_smtp::FakeSmtpServer;
use crate::http::html;
use crate::inspect::{ParsedMail, html_links, text_links};
use crate::report::redact::token_parts;

/// What following a real reset taught.
#[derive(Debug, Clone, Default)]
pub(super) struct Followed {
    pub(super) link_pattern: String,
    pub(super) link_example: String,
    pub(super) follow: &'static str,
    pub(super) set_password_page: String,
    pub(super) password_field: String,
    pub(super) confirm_field: Option<String>,
    pub(super) extra_fields: Vec<(String, String)>,
    pub(super) success: Option<Outcome>,
    pub(super) invalid: Option<Outcome>,
    pub(super) failure: Option<Outcome>,
    pub(super) new_password: String,
    pub(super) notes: Vec<String>,
    /// The app's answer to the request for the account (compared with the
    /// answer to an unknown address to draft `forgot.accepted`).
    pub(super) known_answer: Option<Page>,
}

/// A segment that differs per user rather than being a word: it has a
/// digit, or it is short and has no lower-case letter (Django's `MQ`).
pub(super) fn looks_generated(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_digit())
        || (!s.is_empty()
            && s.len() <= 8
            && s.chars().all(|c| c.is_ascii_alphanumeric())
            && !s.chars().any(|c| c.is_ascii_lowercase()))
}

pub(super) fn link_pattern(link: &Url, token: &str, email: &str, base: &Url) -> String {
    let mut path = String::new();
    let segments: Vec<&str> = link.path_segments().map(Iterator::collect).unwrap_or_default();
    let mut placeholder = 0;
    for (i, segment) in segments.iter().enumerate() {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        path.push('/');
        if decoded == token {
            path.push_str("{token}");
        } else if decoded.eq_ignore_ascii_case(email) {
            path.push_str("{email}");
        } else if looks_generated(&decoded) && i + 1 < segments.len() {
            placeholder += 1;
            path.push_str(if placeholder == 1 { "{user}" } else { "{part}" });
        } else {
            path.push_str(segment);
        }
    }
    let mut query = Vec::new();
    for (k, v) in link.query_pairs() {
        if v == token {
            query.push(format!("{k}={{token}}"));
        } else if v.eq_ignore_ascii_case(email) {
            query.push(format!("{k}={{email}}"));
        }
    }
    let mut pattern = if link.origin() == base.origin() {
        path
    } else {
        format!("{}{}", link.origin().ascii_serialization(), path)
    };
    if !query.is_empty() {
        pattern.push('?');
        pattern.push_str(&query.join("&"));
    }
    if let Some(fragment) = link.fragment()
        && let Some((k, _)) = url::form_urlencoded::parse(fragment.as_bytes()).find(|(_, v)| v == token)
    {
        let _ = write!(pattern, "#{k}={{token}}");
    }
    pattern
}

/// A new password for the test account: 128 bits from the standard
/// library's randomly keyed hasher (seeded from the OS per process), long
/// and plain enough for any password policy.
pub(super) fn random_password() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hex = String::new();
    for i in 0u8..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u8(i);
        hex.push_str(&format!("{:016x}", h.finish()));
    }
    format!("init lantern harbour {hex}")
}

pub(super) async fn follow_reset(
    base: &Url,
    page_url: &Url,
    forgot: &ForgotForm,
    account: &str,
    server: &FakeSmtpServer,
    wait: Duration,
) -> Result<Followed, String> {
    let mut f = Followed::default();
    let browser = Browser::new()?;
    let page = browser.get(page_url).await?;
    let form = html::forms(&page.body)
        .into_iter()
        .find(|x| x.has_field(&forgot.identifier))
        .ok_or("the forgot form is gone on a second load")?;
    let mut values: Vec<(String, String)> = form.default_values();
    values.retain(|(n, _)| n != &forgot.identifier);
    values.push((forgot.identifier.clone(), account.to_owned()));
    let last = server.messages().last().map_or(0, |m| m.id);
    f.known_answer = Some(browser.submit(page_url, &form, &values).await?);
    let message = server
        .wait_for(|m| m.id > last && m.has_recipient(account), wait)
        .await
        .map_err(|e| {
            format!(
                "no email to {account} reached the fake SMTP server on {} ({e}). Is the app's SMTP pointed there, \
                 and is {account} an account of the app? Or has the app stopped mailing it for a while: a \
                 per-account rate limit spent by earlier tries (resetkit: 3 per 15 minutes; see the account \
                 in the operator console, which shows and clears it, or wait for the window to pass)",
                server.addr()
            )
        })?;
    let mail = ParsedMail::parse(&message.data).map_err(|e| format!("the email cannot be read: {e}"))?;
    let mut links = mail.text.as_deref().map(text_links).unwrap_or_default();
    links.extend(mail.html.as_deref().map(html_links).unwrap_or_default());
    let (link, token) = links
        .iter()
        .filter_map(|l| Url::parse(l).ok())
        .find_map(|u| token_parts(&u).into_iter().next().map(|(_, t)| (u, t)))
        .ok_or("the email has no link with a token")?;
    f.link_pattern = link_pattern(&link, &token, account, base);
    f.link_example = link
        .to_string()
        .replace(&token, &crate::report::token_fingerprint(&token));
    // Open the link as a user would: redirects followed, cookies kept.
    let pages = browser.get_following(&link).await?;
    let last_page = pages.last().ok_or("the link answered nothing")?;
    f.follow = if pages.len() > 1 { "redirect" } else { "form" };
    // Where the form is, without the token (it must not end up in a file).
    f.set_password_page = if last_page.url.as_str().contains(token.as_str()) {
        f.link_pattern.clone()
    } else {
        last_page.url.path().to_owned()
    };
    let set_form = html::forms(&last_page.body)
        .into_iter()
        .find(|x| x.fields.iter().any(|y| y.kind == "password"))
        .ok_or_else(|| format!("the page the link opens ({}) has no password form", last_page.url))?;
    let passwords: Vec<String> = set_form
        .fields
        .iter()
        .filter(|x| x.kind == "password")
        .map(|x| x.name.clone())
        .collect();
    f.password_field = passwords[0].clone();
    f.confirm_field = passwords.get(1).cloned();
    f.new_password = random_password();
    let mut values: Vec<(String, String)> = set_form
        .default_values()
        .into_iter()
        .filter(|(n, _)| !passwords.contains(n))
        .collect();
    for field in set_form
        .fields
        .iter()
        .filter(|x| matches!(x.kind.as_str(), "text" | "email") && x.value.is_empty())
    {
        if field.name.to_ascii_lowercase().contains("email") {
            f.extra_fields.push((field.name.clone(), "{email}".into()));
            for (n, v) in &mut values {
                if n == &field.name {
                    *v = account.to_owned();
                }
            }
        } else {
            f.notes.push(format!(
                "the set-password form has a field `{}` init did not fill: add it to set_password.fields",
                field.name
            ));
        }
    }
    for p in &passwords {
        values.push((p.clone(), f.new_password.clone()));
    }
    let done = browser.submit(&last_page.url, &set_form, &values).await?;
    let success = outcome_of(
        base,
        &done,
        &["changed", "success", "reset", "complete", "updated"],
    );
    if !(200..400).contains(&success.status) {
        return Err(format!(
            "setting a new password answered HTTP {} (the app may want a longer or different password)",
            success.status
        ));
    }
    f.success = Some(success);
    // The spent link, in a fresh browser: how a dead link looks when
    // opened, or (when the form still shows) when submitted.
    let fresh = Browser::new()?;
    let dead = fresh.get_following(&link).await?;
    let (Some(first), Some(last)) = (dead.first(), dead.last()) else {
        return Err("the spent link answered nothing".into());
    };
    let words = ["invalid", "expired", "no longer", "used", "error"];
    match html::forms(&last.body)
        .into_iter()
        .find(|x| x.fields.iter().any(|y| y.kind == "password"))
    {
        Some(form) => {
            let mut values: Vec<(String, String)> = form
                .default_values()
                .into_iter()
                .filter(|(n, _)| !passwords.contains(n))
                .collect();
            for (n, v) in &mut values {
                if f.extra_fields.iter().any(|(k, _)| k == n) {
                    *v = account.to_owned();
                }
            }
            let again = random_password();
            for p in &passwords {
                values.push((p.clone(), again.clone()));
            }
            let refused = fresh.submit(&last.url, &form, &values).await?;
            let outcome = outcome_of(base, &refused, &words);
            if Some(&outcome) == f.success.as_ref() {
                f.notes.push(
                    "the spent link was accepted a second time (the answer looked like success): check link and set_password.failure by hand"
                        .into(),
                );
            }
            f.notes.push(
                "a spent link still shows the form (it is refused on submit): link.invalid is left out"
                    .into(),
            );
            f.failure = Some(outcome);
        }
        None => {
            let outcome = outcome_of(base, first, &words);
            let shown = outcome_of(base, last, &words);
            if outcome.redirect.is_none() && outcome.text.is_none() {
                f.notes.push(
                    "opening the spent link gave no redirect and no recognisable text: describe link.invalid"
                        .into(),
                );
            }
            // Submitting with a dead link answers like opening it: the
            // redirect when there is one, else the page's text.
            f.failure = Some(if outcome.redirect.is_none() && shown.text.is_some() {
                shown
            } else {
                outcome.clone()
            });
            f.invalid = Some(outcome);
        }
    }
    Ok(f)
}
