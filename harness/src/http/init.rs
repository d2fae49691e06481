//! `resetkit-harness init --url URL`: a draft target file from the app's
//! forgot-password page.
//!
//! What it does, in order:
//!
//! 1. loads the page and finds the forgot form (a form with an email,
//!    username or login field and no password field), its identifier field
//!    and the CSRF token: a hidden field, a cookie, or a `<meta>`;
//! 2. submits that form once with an address no account can have
//!    (`…@example.invalid`), which a correct app answers like any request
//!    and mails no one, to learn what "accepted" looks like;
//! 3. with `--account ADDRESS` (a test account whose mail reaches the
//!    harness's fake SMTP server): asks for a reset for it, reads the link
//!    from the email and derives the link pattern, opens it and finds the
//!    set-password form, sets a new random password (written into the
//!    draft as the account's password) to learn what success looks like,
//!    and opens the spent link to learn what a dead link looks like.
//!
//! Every key of the draft carries a comment saying what was found or what
//! the person must fill in.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::html::{self, Form};
use crate::fake_smtp::FakeSmtpServer;
use crate::inspect::{ParsedMail, html_links, text_links};
use crate::report::redact::token_parts;

/// Why no draft could be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The URL is not an absolute http(s) URL.
    #[error("--url {url:?}: {reason}")]
    BadUrl {
        /// What was given.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// The page could not be loaded.
    #[error("loading {url}: {reason}")]
    Http {
        /// The page.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// No form on the page looks like a forgot-password form.
    #[error("no forgot-password form on {url}: {found}")]
    NoForm {
        /// The page.
        url: String,
        /// The forms that were found.
        found: String,
    },
    /// The `--account` part failed.
    #[error("following the reset of {account}: {reason}")]
    Account {
        /// The account.
        account: String,
        /// What went wrong.
        reason: String,
    },
}

/// What `init` needs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The forgot-password page.
    pub url: String,
    /// Submit the form once with an unknown address to learn the accepted
    /// answer (default true).
    pub probe: bool,
    /// A test account's address: request, follow and complete one reset.
    pub account: Option<String>,
    /// How long to wait for its email.
    pub mail_wait: Duration,
}

impl InitOptions {
    /// Options for `url`, probing, no account.
    pub fn new(url: impl Into<String>) -> Self {
        InitOptions {
            url: url.into(),
            probe: true,
            account: None,
            mail_wait: Duration::from_secs(10),
        }
    }
}

/// What an answer looked like (the first response, redirects not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    status: u16,
    redirect: Option<String>,
    text: Option<String>,
}

impl Outcome {
    fn toml(&self) -> String {
        let mut parts = vec![format!("status = {}", self.status)];
        if let Some(r) = &self.redirect {
            parts.push(format!("redirect = {}", quote(r)));
        }
        if let Some(t) = &self.text {
            parts.push(format!("text = {}", quote(t)));
        }
        format!("{{ {} }}", parts.join(", "))
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The found forgot form.
#[derive(Debug, Clone)]
struct ForgotForm {
    form: Form,
    identifier: String,
    kind: &'static str,
}

fn identifier_score(name: &str, kind: &str) -> Option<(u8, &'static str)> {
    let n = name.to_ascii_lowercase();
    if kind == "email" || n.contains("email") || n.contains("mail") {
        return Some((3, "email"));
    }
    if ["identifier", "login", "username", "user", "account", "name"]
        .iter()
        .any(|w| n.contains(w))
        && matches!(kind, "text" | "")
    {
        // A username or login field often takes an address too: "either".
        return Some((2, "either"));
    }
    None
}

fn find_forgot_form(forms: &[Form]) -> Option<ForgotForm> {
    let mut best: Option<(u8, ForgotForm)> = None;
    for form in forms {
        if form.fields.iter().any(|f| f.kind == "password") {
            continue;
        }
        for field in &form.fields {
            if let Some((score, kind)) = identifier_score(&field.name, &field.kind) {
                let score = score + u8::from(form.method == "post");
                if best.as_ref().is_none_or(|(s, _)| score > *s) {
                    best = Some((
                        score,
                        ForgotForm {
                            form: form.clone(),
                            identifier: field.name.clone(),
                            kind,
                        },
                    ));
                }
            }
        }
    }
    best.map(|(_, f)| f)
}

fn csrf_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "csrf",
        "xsrf",
        "authenticity",
        "_token",
        "requestverificationtoken",
        "nonce",
    ]
    .iter()
    .any(|w| n.contains(w))
}

fn describe_forms(forms: &[Form]) -> String {
    if forms.is_empty() {
        return "the page has no <form>".into();
    }
    forms
        .iter()
        .map(|f| {
            let fields: Vec<String> = f
                .fields
                .iter()
                .map(|x| format!("{} ({})", x.name, x.kind))
                .collect();
            format!(
                "{} form to {:?} with {}",
                f.method,
                f.action.as_deref().unwrap_or("(this page)"),
                fields.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One browser: a cookie jar, redirects not followed automatically.
struct Browser {
    client: reqwest::Client,
}

struct Page {
    url: Url,
    status: u16,
    location: Option<String>,
    set_cookies: Vec<(String, String)>,
    body: String,
}

impl Browser {
    fn new() -> Result<Browser, String> {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .user_agent("resetkit-harness init")
            .build()
            .map(|client| Browser { client })
            .map_err(|e| e.to_string())
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &Url) -> Result<Page, String> {
        let response = request.send().await.map_err(|e| full_error(&e))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let set_cookies = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .filter_map(|c| c.split_once('='))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let body = response.text().await.unwrap_or_default();
        Ok(Page {
            url: url.clone(),
            status,
            location,
            set_cookies,
            body,
        })
    }

    async fn get(&self, url: &Url) -> Result<Page, String> {
        self.send(self.client.get(url.clone()), url).await
    }

    /// GET, following up to 10 redirects; returns every page in order.
    async fn get_following(&self, url: &Url) -> Result<Vec<Page>, String> {
        let mut pages = Vec::new();
        let mut at = url.clone();
        for _ in 0..10 {
            let page = self.get(&at).await?;
            let next = page.location.as_deref().and_then(|l| at.join(l).ok());
            let redirect = (300..400).contains(&page.status);
            pages.push(page);
            match next {
                Some(next) if redirect => at = next,
                _ => return Ok(pages),
            }
        }
        Err(format!("more than 10 redirects from {url}"))
    }

    async fn submit(&self, page: &Url, form: &Form, values: &[(String, String)]) -> Result<Page, String> {
        let action = match form.action.as_deref().filter(|a| !a.trim().is_empty()) {
            Some(a) => page.join(a).map_err(|e| format!("form action {a:?}: {e}"))?,
            None => page.clone(),
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(values)
            .finish();
        let request = if form.method == "get" {
            let mut target = action.clone();
            target.set_query(Some(&body));
            self.client.get(target)
        } else {
            self.client
                .post(action.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(reqwest::header::ORIGIN, page.origin().ascii_serialization())
                .header(reqwest::header::REFERER, page.as_str())
                .body(body)
        };
        self.send(request, &action).await
    }
}

fn full_error(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// The path (and query) of `location` when it is on `base`'s origin, else the whole URL.
fn relative_to(base: &Url, at: &Url, location: &str) -> String {
    match at.join(location) {
        Ok(u) if u.origin() == base.origin() => {
            let mut s = u.path().to_owned();
            if let Some(q) = u.query() {
                s.push('?');
                s.push_str(q);
            }
            s
        }
        Ok(u) => u.to_string(),
        Err(_) => location.to_owned(),
    }
}

fn outcome_of(base: &Url, page: &Page, hint_words: &[&str]) -> Outcome {
    let mut outcome = raw_outcome(base, page, hint_words);
    // A redirect back to the link's own page carries the token: keep such
    // secrets out of the file (the status alone is then the description).
    if outcome
        .redirect
        .as_deref()
        .is_some_and(|r| r.split('/').any(crate::report::redact::looks_like_token))
    {
        outcome.redirect = None;
        outcome.text = sentence_with(&page.body, hint_words);
    }
    outcome
}

fn raw_outcome(base: &Url, page: &Page, hint_words: &[&str]) -> Outcome {
    let redirect = page
        .location
        .as_deref()
        .filter(|_| (300..400).contains(&page.status))
        .map(|l| {
            let r = relative_to(base, &page.url, l);
            // A redirect's query often carries per-request values.
            r.split('?').next().unwrap_or(&r).to_owned()
        });
    let text = if redirect.is_none() {
        sentence_with(&page.body, hint_words)
    } else {
        None
    };
    Outcome {
        status: page.status,
        redirect,
        text,
    }
}

/// The first text of the page (tags removed) with one of `words`, trimmed
/// to a sentence of at most 80 characters.
fn sentence_with(html: &str, words: &[&str]) -> Option<String> {
    if words.is_empty() {
        return None;
    }
    let mut text = String::new();
    let mut in_tag = false;
    let mut skip_until: Option<&str> = None;
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    while i < html.len() {
        if let Some(end) = skip_until {
            match lower[i..].find(end) {
                Some(k) => {
                    i += k + end.len();
                    skip_until = None;
                    continue;
                }
                None => break,
            }
        }
        let c = html[i..].chars().next().unwrap_or(' ');
        if c == '<' {
            if lower[i..].starts_with("<script") {
                skip_until = Some("</script>");
            } else if lower[i..].starts_with("<style") {
                skip_until = Some("</style>");
            }
            in_tag = true;
            text.push('\n');
        } else if c == '>' {
            in_tag = false;
        } else if !in_tag {
            text.push(c);
        }
        i += c.len_utf8();
    }
    text.split('\n')
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .find(|l| {
            let ll = l.to_ascii_lowercase();
            words.iter().any(|w| ll.contains(w))
        })
        .map(|l| {
            let l = l.split(['.', '!']).next().unwrap_or(&l).trim().to_owned();
            l.chars()
                .take(80)
                .collect::<String>()
                .replace("&#39;", "'")
                .replace("&amp;", "&")
        })
        .filter(|l| !l.is_empty())
}

/// What following a real reset taught.
#[derive(Debug, Clone, Default)]
struct Followed {
    link_pattern: String,
    link_example: String,
    follow: &'static str,
    set_password_page: String,
    password_field: String,
    confirm_field: Option<String>,
    extra_fields: Vec<(String, String)>,
    success: Option<Outcome>,
    invalid: Option<Outcome>,
    failure: Option<Outcome>,
    new_password: String,
    notes: Vec<String>,
}

/// A segment that differs per user rather than being a word: it has a
/// digit, or it is short and has no lower-case letter (Django's `MQ`).
fn looks_generated(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_digit())
        || (!s.is_empty()
            && s.len() <= 8
            && s.chars().all(|c| c.is_ascii_alphanumeric())
            && !s.chars().any(|c| c.is_ascii_lowercase()))
}

fn link_pattern(link: &Url, token: &str, email: &str, base: &Url) -> String {
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

fn random_password() -> String {
    let mut bytes = [0u8; 12];
    // A weak fallback is fine here: the password only has to pass policies.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = ((seed >> ((i % 8) * 8)) as u8) ^ (i as u8).wrapping_mul(37);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("init lantern harbour {hex}")
}

async fn follow_reset(
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
    browser.submit(page_url, &form, &values).await?;
    let message = server
        .wait_for(|m| m.id > last && m.has_recipient(account), wait)
        .await
        .map_err(|e| {
            format!(
                "no email to {account} reached the fake SMTP server on {} ({e}); is the app's SMTP pointed there, and is {account} an account of the app?",
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

/// Writes the draft for `options` (with `server` for `--account`).
pub async fn draft(options: &InitOptions, server: Option<Arc<FakeSmtpServer>>) -> Result<String, InitError> {
    let url = Url::parse(&options.url).map_err(|e| InitError::BadUrl {
        url: options.url.clone(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(InitError::BadUrl {
            url: options.url.clone(),
            reason: "an http:// or https:// URL of the app's forgot-password page is expected".into(),
        });
    }
    let http_error = |reason: String| InitError::Http {
        url: url.to_string(),
        reason,
    };
    let browser = Browser::new().map_err(http_error)?;
    let pages = browser.get_following(&url).await.map_err(http_error)?;
    let page = pages.last().ok_or_else(|| http_error("no answer".into()))?;
    if page.status >= 400 {
        return Err(http_error(format!("HTTP {}", page.status)));
    }
    let forms = html::forms(&page.body);
    let forgot = find_forgot_form(&forms).ok_or_else(|| InitError::NoForm {
        url: page.url.to_string(),
        found: describe_forms(&forms),
    })?;
    let mut base = page.url.clone();
    base.set_path("");
    base.set_query(None);
    base.set_fragment(None);
    let base_text = base.as_str().trim_end_matches('/').to_owned();
    let page_path = relative_to(&base, &page.url, page.url.as_str());

    let csrf_hidden = forgot
        .form
        .fields
        .iter()
        .find(|f| f.kind == "hidden" && csrf_like(&f.name));
    let csrf_field = csrf_hidden.map(|f| f.name.clone());
    let cookies: Vec<(String, String)> = pages.iter().flat_map(|p| p.set_cookies.clone()).collect();
    // A cookie is named as the token only when the form has no token of
    // its own; otherwise the form's field is sent back with the cookies
    // the harness keeps anyway (naming the cookie would make every page
    // that does not set it again an error).
    let (csrf_cookie, bound_cookie) = match cookies.iter().find(|(n, _)| csrf_like(n)) {
        Some((name, _)) if csrf_hidden.is_none() => (Some(name.clone()), None),
        Some((name, _)) => (None, Some(name.clone())),
        None => (None, None),
    };
    let csrf_meta = ["csrf-token", "csrf_token", "_csrf", "xsrf-token"]
        .into_iter()
        .find(|m| html::meta_content(&page.body, m).is_some());

    let accepted = if options.probe {
        let unknown = format!("resetkit-init-{}@example.invalid", std::process::id());
        let mut values = forgot.form.default_values();
        values.retain(|(n, _)| n != &forgot.identifier);
        values.push((forgot.identifier.clone(), unknown.clone()));
        match browser.submit(&page.url, &forgot.form, &values).await {
            Ok(answer) => Some((
                unknown,
                outcome_of(
                    &base,
                    &answer,
                    &["sent", "email", "check", "if an account", "instructions"],
                ),
            )),
            Err(e) => {
                return Err(http_error(format!("submitting the forgot form: {e}")));
            }
        }
    } else {
        None
    };

    let followed = match (&options.account, server.as_deref()) {
        (Some(account), Some(server)) => Some(
            follow_reset(&base, &page.url, &forgot, account, server, options.mail_wait)
                .await
                .map_err(|reason| InitError::Account {
                    account: account.clone(),
                    reason,
                })?,
        ),
        (Some(account), None) => {
            return Err(InitError::Account {
                account: account.clone(),
                reason: "no fake SMTP server to read its email from".into(),
            });
        }
        _ => None,
    };

    Ok(render(Render {
        base: &base_text,
        page: &page_path,
        forgot: &forgot,
        csrf_field,
        csrf_cookie,
        bound_cookie,
        csrf_meta,
        accepted,
        followed,
        account: options.account.as_deref(),
        smtp: server.as_ref().map(|s| s.addr().to_string()),
    }))
}

struct Render<'a> {
    base: &'a str,
    page: &'a str,
    forgot: &'a ForgotForm,
    csrf_field: Option<String>,
    csrf_cookie: Option<String>,
    bound_cookie: Option<String>,
    csrf_meta: Option<&'static str>,
    accepted: Option<(String, Outcome)>,
    followed: Option<Followed>,
    account: Option<&'a str>,
    smtp: Option<String>,
}

fn render(r: Render<'_>) -> String {
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(
        w,
        "# Draft target file written by `resetkit-harness init` from {}{}.",
        r.base, r.page
    );
    let _ = writeln!(w, "# Check every key, fill in what is marked FILL IN, then run:");
    let _ = writeln!(
        w,
        "#     resetkit-harness run --target THIS_FILE --html report.html"
    );
    let _ = writeln!(
        w,
        "# Every key is described in TARGETS.md (the target-file reference).\n"
    );
    let _ = writeln!(
        w,
        "name = {}  # a name for reports",
        quote(&format!("{} (draft)", r.base))
    );
    let _ = writeln!(
        w,
        "base_url = {}  # found: where the page answered",
        quote(r.base)
    );
    let _ = writeln!(w, "\n[smtp]");
    let _ = writeln!(
        w,
        "# FILL IN the app's SMTP settings: the app must send its mail to this address,\n\
         # plain SMTP without TLS or AUTH (e.g. host 127.0.0.1, port {}, encryption none).",
        r.smtp
            .as_deref()
            .and_then(|s| s.rsplit(':').next())
            .unwrap_or("2525")
    );
    let _ = writeln!(
        w,
        "listen = {}",
        quote(r.smtp.as_deref().unwrap_or("127.0.0.1:2525"))
    );
    let _ = writeln!(
        w,
        "\n# [app] (optional): how the harness starts the app for a run; without it, start\n\
         # the app yourself with its SMTP pointed at smtp.listen. See TARGETS.md.\n\
         # [app]\n# command = [\"./run-my-app\", \"--port\", \"{{port}}\", \"--smtp\", \"{{smtp}}\"]"
    );

    let _ = writeln!(w, "\n[csrf]");
    match &r.csrf_field {
        Some(f) => {
            let _ = writeln!(
                w,
                "field = {}  # found: a hidden field of the forgot form",
                quote(f)
            );
        }
        None => {
            let _ = writeln!(
                w,
                "# field: none found (no hidden field named like a CSRF token in the forgot form)"
            );
        }
    }
    match (&r.csrf_cookie, &r.bound_cookie) {
        (Some(c), _) => {
            let _ = writeln!(
                w,
                "cookie = {}  # found: a cookie the page sets, holding the form's token",
                quote(c)
            );
        }
        (None, Some(b)) => {
            let _ = writeln!(
                w,
                "# cookie: not needed: the page sets `{b}`, and the form carries its token (the harness keeps cookies)"
            );
        }
        (None, None) => {
            let _ = writeln!(w, "# cookie: none found");
        }
    }
    if let Some(m) = r.csrf_meta {
        let _ = writeln!(
            w,
            "meta = {}  # found: <meta name={m:?}> holds a token\n# header = \"X-CSRF-Token\"  # FILL IN if the app wants the meta token in a header",
            quote(m)
        );
    }

    let _ = writeln!(w, "\n[forgot]");
    let _ = writeln!(w, "page = {}  # found: the page with the form", quote(r.page));
    if let Some(action) = r.forgot.form.action.as_deref().filter(|a| !a.is_empty()) {
        let _ = writeln!(
            w,
            "# action: the form posts to {action:?} (read from the form; no key needed)"
        );
    }
    let _ = writeln!(
        w,
        "identifier_field = {}  # found: the form's {} field",
        quote(&r.forgot.identifier),
        if r.forgot.kind == "email" {
            "address"
        } else {
            "identifier"
        }
    );
    let _ = writeln!(
        w,
        "identifier_kind = {}  # guessed from the field: \"email\", \"username\" or \"either\" (what the field accepts)",
        quote(r.forgot.kind)
    );
    let _ = writeln!(
        w,
        "shared_address = \"one_mail_per_account\"  # FILL IN: or \"one_combined_mail\" if accounts sharing an address get one email listing each"
    );
    match &r.accepted {
        Some((probe, outcome)) => {
            let _ = writeln!(
                w,
                "accepted = {}  # found: the answer to a request for {probe} (no such account; a correct app answers every request alike)",
                outcome.toml()
            );
        }
        None => {
            let _ = writeln!(
                w,
                "accepted = {{ status = 200 }}  # FILL IN: what the app answers a request (status, redirect, text)"
            );
        }
    }

    let _ = writeln!(w, "\n[link]");
    match &r.followed {
        Some(f) => {
            let _ = writeln!(
                w,
                "url = {}  # found: the emailed link, {} (token shown as a fingerprint)",
                quote(&f.link_pattern),
                f.link_example
            );
            let _ = writeln!(
                w,
                "follow = {}  # found: the link {}",
                quote(f.follow),
                if f.follow == "redirect" {
                    "redirects to the form's page"
                } else {
                    "shows the form itself"
                }
            );
            if let Some(invalid) = &f.invalid {
                let _ = writeln!(
                    w,
                    "invalid = {}  # found: opening the link again after the reset",
                    invalid.toml()
                );
            }
        }
        None => {
            let _ = writeln!(
                w,
                "# FILL IN how the emailed link looks (run `init` with --account ADDRESS to find out, or see\n\
                 # TARGETS.md for patterns such as /accounts/reset/{{uidb64}}/{{token}}/), and how a dead link looks.\n\
                 url = \"/reset?token={{token}}\"\n\
                 follow = \"form\"  # or \"redirect\": the link redirects to the form's page"
            );
        }
    }

    let _ = writeln!(w, "\n[set_password]");
    match &r.followed {
        Some(f) => {
            let _ = writeln!(
                w,
                "page = {}  # found: where the link led (informative)",
                quote(&f.set_password_page)
            );
            let _ = writeln!(w, "password_field = {}  # found", quote(&f.password_field));
            match &f.confirm_field {
                Some(c) => {
                    let _ = writeln!(w, "confirm_field = {}  # found", quote(c));
                }
                None => {
                    let _ = writeln!(w, "# confirm_field: the form has one password field");
                }
            }
            if !f.extra_fields.is_empty() {
                let fields: Vec<String> = f
                    .extra_fields
                    .iter()
                    .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
                    .collect();
                let _ = writeln!(
                    w,
                    "fields = {{ {} }}  # found: the form asks for the address again",
                    fields.join(", ")
                );
            }
            if let Some(s) = &f.success {
                let _ = writeln!(
                    w,
                    "success = {}  # found: the answer to setting a new password",
                    s.toml()
                );
            }
            if let Some(failure) = &f.failure {
                let _ = writeln!(
                    w,
                    "failure = {}  # found: what submitting with the spent link (or opening it) showed",
                    failure.toml()
                );
            }
            for note in &f.notes {
                let _ = writeln!(w, "# NOTE: {note}");
            }
        }
        None => {
            let _ = writeln!(
                w,
                "# FILL IN the set-password form's fields and how success looks (init --account finds them).\n\
                 password_field = \"password\"\n\
                 # confirm_field = \"password_confirmation\"\n\
                 success = {{ status = 302 }}"
            );
        }
    }

    let _ = writeln!(
        w,
        "\n# [login] (optional): the sign-in page, so checks can confirm the new password works\n\
         # and the old one does not. Without it they say \"Not checked: signing in\".\n\
         # [login]\n# page = \"/login\"\n# identifier_field = \"email\"\n# password_field = \"password\"\n# success = {{ status = 302 }}"
    );

    let _ = writeln!(
        w,
        "\n# FILL IN the test accounts (several: checks spread their requests over them). The app must\n\
         # have them; use accounts made for testing: checks reset their passwords.\n\
         # Also list a disabled account (disabled = true) and two accounts sharing one address\n\
         # (give each a username) so those checks run; otherwise they are skipped."
    );
    if let (Some(account), Some(f)) = (r.account, &r.followed) {
        let _ = writeln!(
            w,
            "[[accounts]]\nidentifier = {}\nemail = {}\npassword = {}  # set by init when it followed the reset",
            quote(account),
            quote(account),
            quote(&f.new_password)
        );
    } else {
        let _ = writeln!(
            w,
            "# [[accounts]]\n# identifier = \"alice@example.test\"  # what the user types in the forgot form\n\
             # email = \"alice@example.test\"       # where the app sends alice's mail\n\
             # password = \"...\"                   # her current password (for [login] checks)"
        );
    }
    let _ = writeln!(
        w,
        "\n# [limits] (FILL IN if the app limits reset emails): per_account = N, per_client = N\n\
         # [checks]: tuning of waits, races and timing; defaults in TARGETS.md."
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_patterns_keep_words_and_name_the_varying_parts() {
        let base = Url::parse("http://127.0.0.1:8000").unwrap();
        let token = "c3r5yd-0123456789abcdef0123456789abcdef";
        let link = Url::parse(&format!("http://127.0.0.1:8000/accounts/reset/MQ/{token}/")).unwrap();
        assert_eq!(
            link_pattern(&link, token, "a@x.test", &base),
            "/accounts/reset/{user}/{token}/"
        );
        let link = Url::parse(&format!(
            "http://127.0.0.1:8000/reset-password/{token}?email=a%40x.test"
        ))
        .unwrap();
        assert_eq!(
            link_pattern(&link, token, "a@x.test", &base),
            "/reset-password/{token}?email={email}"
        );
        let link = Url::parse(&format!("http://127.0.0.1:8000/reset?token={token}&lang=en")).unwrap();
        assert_eq!(
            link_pattern(&link, token, "a@x.test", &base),
            "/reset?token={token}"
        );
    }

    #[test]
    fn finds_the_forgot_form_and_not_the_sign_in_form() {
        let page = r#"<form method=post action=/login><input name=email><input type=password name=password></form>
            <form method=post action=/forgot><input type=hidden name=csrfmiddlewaretoken value=x><input type=email name=email></form>"#;
        let f = find_forgot_form(&html::forms(page)).unwrap();
        assert_eq!(f.identifier, "email");
        assert_eq!(f.kind, "email");
        assert_eq!(f.form.action.as_deref(), Some("/forgot"));
        assert!(find_forgot_form(&html::forms("<form><input type=password name=p></form>")).is_none());
    }

    #[test]
    fn outcome_texts_are_short_sentences() {
        let html = "<html><head><title>x</title><style>.invalid{}</style></head><body><h1>Oops</h1><p>The password reset link was invalid, possibly because it has already been used. Please request a new one.</p></body></html>";
        assert_eq!(
            sentence_with(html, &["invalid"]).as_deref(),
            Some("The password reset link was invalid, possibly because it has already been used")
        );
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
    }
}
