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

mod accepted;
pub mod api;
mod follow;
mod page;
mod render;

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::html;
use crate::fake_smtp::FakeSmtpServer;
use follow::follow_reset;
use page::{Browser, csrf_like, describe_forms, find_forgot_form, relative_to};
use render::{Render, render};

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

    let unknown_answer = if options.probe {
        let unknown = format!("resetkit-init-{}@example.invalid", std::process::id());
        let mut values = forgot.form.default_values();
        values.retain(|(n, _)| n != &forgot.identifier);
        values.push((forgot.identifier.clone(), unknown.clone()));
        match browser.submit(&page.url, &forgot.form, &values).await {
            Ok(answer) => Some((unknown, answer)),
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

    let accepted = unknown_answer.map(|(unknown, answer)| {
        accepted::draft(
            &base,
            page,
            (&unknown, &answer),
            options
                .account
                .as_deref()
                .zip(followed.as_ref().and_then(|f| f.known_answer.as_ref())),
        )
    });

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

#[cfg(test)]
mod tests {
    use super::follow::link_pattern;
    use super::page::{find_forgot_form, sentence_with};
    use super::render::quote;
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
