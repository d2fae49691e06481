//! Signing in (enough to prove a new password works), the account page,
//! signing out, and the password-changed notice's "secure your account" page.
//!
//! A failed sign-in re-renders the form with status 200 and "Wrong username
//! or password", whatever the reason (unknown, disabled, wrong password);
//! unknown accounts verify against a decoy hash so that the answer takes as
//! long. Signing in starts a new session (new id and CSRF token).

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use resetkit::CompleteError;
use resetkit::account::Account;
use resetkit::identifier::{MAX_INPUT_BYTES, canonicalize};
use resetkit::policy::PasswordPolicy;
use secrecy::SecretString;

use super::{App, State, checked_form, field_refused, page, see_other, unavailable, with_cookie};
use crate::html;
use crate::session::SignedIn;

/// The sign-in failure text.
pub(crate) const WRONG_CREDENTIALS: &str = "Wrong username or password";

/// Longest password a sign-in hashes (longer ones cannot be right: resets
/// cap new passwords well below this).
const MAX_PASSWORD_BYTES: usize = 4096;

pub(super) async fn home(state: State, headers: HeaderMap) -> Response {
    let session = state.sessions.current(&headers);
    let user = session.as_ref().and_then(|s| s.user.as_ref());
    page(StatusCode::OK, html::home(user.map(|u| u.username.as_str())))
}

pub(super) async fn login_form(state: State, headers: HeaderMap) -> Response {
    let session = state.sessions.current_or_new(&headers);
    with_cookie(
        page(StatusCode::OK, html::login(&session.csrf, None, "")),
        session.set_cookie,
    )
}

pub(super) async fn login_submit(state: State, headers: HeaderMap, body: Bytes) -> Response {
    let (form, session) = match checked_form(&state, &headers, &body) {
        Ok(checked) => checked,
        Err(refusal) => return *refusal,
    };
    let identifier = match form.single("identifier") {
        Ok(value) => value,
        Err(why) => return field_refused("identifier", why),
    };
    let password = match form.single("password") {
        Ok(value) => SecretString::from(value),
        Err(why) => return field_refused("password", why),
    };
    match authenticate(&state, identifier, &password).await {
        Ok(Some(account)) => {
            let user = SignedIn {
                account: account.id,
                username: account.username,
            };
            let fresh = state.sessions.sign_in(&session.id, user);
            with_cookie(see_other("/account"), fresh.set_cookie)
        }
        Ok(None) => page(
            StatusCode::OK,
            html::login(&session.csrf, Some(WRONG_CREDENTIALS), identifier),
        ),
        Err(error) => unavailable("signing in", &error),
    }
}

/// The account `identifier` (a username, or an email only one account has)
/// names, if `password` is its password and it is enabled.
async fn authenticate(
    app: &App,
    identifier: &str,
    password: &SecretString,
) -> Result<Option<Account>, CompleteError> {
    use secrecy::ExposeSecret as _;
    let usable = identifier.len() <= MAX_INPUT_BYTES
        && !identifier.chars().any(char::is_control)
        && password.expose_secret().len() <= MAX_PASSWORD_BYTES;
    let account = if usable {
        let canonical = canonicalize(identifier);
        if canonical.contains('@') {
            let mut found = app.accounts.find_by_email(&canonical).await?;
            if found.len() == 1 { found.pop() } else { None }
        } else {
            app.accounts.find_by_username(&canonical).await?
        }
    } else {
        None
    };
    match account {
        Some(account) if !account.disabled && account.password_hash.is_some() => {
            let ok = app.service.verify_password(&account.id, password).await?;
            Ok(ok.then_some(account))
        }
        _ => {
            decoy_verify(app, password).await;
            Ok(None)
        }
    }
}

/// Spends the time a real verification takes.
async fn decoy_verify(app: &App, password: &SecretString) {
    use secrecy::ExposeSecret as _;
    let hasher = app.hasher.clone();
    let hash = app.decoy_hash.clone();
    let text = password.expose_secret();
    let capped = &text[..text.floor_char_boundary(MAX_PASSWORD_BYTES.min(text.len()))];
    let normalized = SecretString::from(PasswordPolicy::normalize(capped));
    let _ = tokio::task::spawn_blocking(move || hasher.verify(&normalized, &hash)).await;
}

pub(super) async fn account(state: State, headers: HeaderMap) -> Response {
    let Some(session) = state.sessions.current(&headers) else {
        return see_other("/login");
    };
    match &session.user {
        Some(user) => page(StatusCode::OK, html::account(&user.username, &session.csrf)),
        None => see_other("/login"),
    }
}

pub(super) async fn logout(state: State, headers: HeaderMap, body: Bytes) -> Response {
    let (_form, session) = match checked_form(&state, &headers, &body) {
        Ok(checked) => checked,
        Err(refusal) => return *refusal,
    };
    state.sessions.remove(&session.id);
    with_cookie(see_other("/"), Some(state.sessions.clear_cookie()))
}

pub(super) async fn security_form(state: State, headers: HeaderMap) -> Response {
    let session = state.sessions.current_or_new(&headers);
    let user = session.user.as_ref().map(|u| u.username.as_str());
    with_cookie(
        page(StatusCode::OK, html::security(&session.csrf, user)),
        session.set_cookie.clone(),
    )
}

pub(super) async fn security_submit(state: State, headers: HeaderMap, body: Bytes) -> Response {
    let (_form, session) = match checked_form(&state, &headers, &body) {
        Ok(checked) => checked,
        Err(refusal) => return *refusal,
    };
    let Some(user) = &session.user else {
        return see_other("/account/security");
    };
    let count = state.sessions.revoke_account(&user.account);
    tracing::info!(account = %user.account, count, "signed out everywhere on request");
    with_cookie(see_other("/login"), Some(state.sessions.clear_cookie()))
}
