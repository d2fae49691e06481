//! Signing in (enough to prove a new password works), the account page,
//! signing out. (The password-changed notice's page is `resetkit-axum`'s.)
//!
//! A failed sign-in re-renders the form with status 200 and "Wrong username
//! or password", whatever the reason (unknown, disabled, wrong password);
//! unknown accounts verify against a decoy hash so that the answer takes as
//! long. Signing in starts a new session (new id and CSRF token).
//!
//! Attempts are limited per identifier (as typed, by its fingerprint) and
//! per client address in the engine's rate-limit store
//! ([`ResetService::admit_sign_in`](resetkit::ResetService::admit_sign_in)),
//! so guessing a password (and taking an operator account) is bounded; a
//! refused attempt answers 429 "Too many sign-in attempts" without checking
//! the password, alike for known and unknown identifiers.

use std::net::SocketAddr;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use resetkit::account::Account;
use resetkit::identifier::{MAX_INPUT_BYTES, canonicalize};
use resetkit::policy::PasswordPolicy;
use resetkit::{CompleteError, PasswordCheck, RequestContext};
use resetkit_axum::SignedIn;
use secrecy::SecretString;

use super::{Answer, App, PageError, State, page, parse_form, see_other, single, with_cookie};
use crate::html;

/// The sign-in failure text.
pub(crate) const WRONG_CREDENTIALS: &str = "Wrong username or password";

/// The answer when the sign-in limit is spent.
pub(crate) const TOO_MANY_ATTEMPTS: &str = "Too many sign-in attempts: try again in a few minutes";

/// Longest password a sign-in hashes (longer ones cannot be right: resets
/// cap new passwords well below this).
const MAX_PASSWORD_BYTES: usize = 4096;

pub(super) async fn home(state: State, headers: HeaderMap) -> Response {
    let session = state.sessions.current(&headers);
    page(
        StatusCode::OK,
        html::home(session.as_ref().map(|s| s.user.username.as_str())),
    )
}

/// The sign-in form: CSRF by the pages' stateless cookie, no session yet.
pub(super) async fn login_form(state: State, headers: HeaderMap) -> Response {
    let csrf = state.pages.csrf().token(&headers);
    with_cookie(
        page(StatusCode::OK, html::login(&csrf.value, None, "")),
        csrf.set_cookie,
    )
}

pub(super) async fn login_submit(
    state: State,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let form = parse_form(&headers, &body)?;
    let submitted = form.get("csrf_token");
    if !state.pages.csrf().verify(&headers, submitted) {
        return Err(PageError::csrf());
    }
    let csrf = submitted.unwrap_or_default();
    let identifier = single(&form, "identifier")?;
    let password = SecretString::from(single(&form, "password")?);
    // The TCP peer, as for the reset request (a header could be forged).
    let client = match connect {
        Some(Extension(ConnectInfo(peer))) => RequestContext::from_client(peer.ip().to_string()),
        None => RequestContext::default(),
    };
    match state
        .service
        .admit_sign_in(identifier, &client, &state.sign_in_limits)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Ok(too_many_attempts(&state, csrf, identifier)),
        Err(error) => return Err(PageError::unavailable("signing in", &error)),
    }
    match authenticate(&state, identifier, &password).await {
        Ok(Some(account)) => {
            let user = SignedIn {
                account: account.id,
                username: account.username,
            };
            let fresh = state.sessions.sign_in(&headers, user);
            let cookie = fresh.set_cookie.and_then(|c| c.parse().ok());
            Ok(with_cookie(see_other("/account"), cookie))
        }
        Ok(None) => Ok(page(
            StatusCode::OK,
            html::login(csrf, Some(WRONG_CREDENTIALS), identifier),
        )),
        Err(error) => Err(PageError::unavailable("signing in", &error)),
    }
}

/// 429 with the form again and `Retry-After` (the longest window).
fn too_many_attempts(app: &App, csrf: &str, identifier: &str) -> Response {
    let limits = &app.sign_in_limits;
    let window = [limits.per_account, limits.per_client]
        .into_iter()
        .flatten()
        .map(|l| l.window.as_secs())
        .max()
        .unwrap_or(60);
    let mut response = page(
        StatusCode::TOO_MANY_REQUESTS,
        html::login(csrf, Some(TOO_MANY_ATTEMPTS), identifier),
    );
    if let Ok(value) = HeaderValue::from_str(&window.to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
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
            match app.service.check_password(&account.id, password).await? {
                PasswordCheck::Correct => Ok(Some(account)),
                // A bcrypt / PBKDF2 / scrypt hash from before resetkit:
                // replace it with argon2id now that the password is known.
                PasswordCheck::NeedsRehash(format) => {
                    if let Err(error) = app.service.rehash_password(&account.id, password).await {
                        tracing::warn!(%error, ?format, "upgrading a legacy password hash failed");
                    }
                    Ok(Some(account))
                }
                _ => Ok(None),
            }
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
    match state.sessions.current(&headers) {
        Some(session) => page(
            StatusCode::OK,
            html::account(&session.user.username, &session.csrf),
        ),
        None => see_other("/login"),
    }
}

pub(super) async fn logout(state: State, headers: HeaderMap, body: Bytes) -> Answer {
    let form = parse_form(&headers, &body)?;
    let Some(session) = state.sessions.check_csrf(&headers, form.get("csrf_token")) else {
        return Err(PageError::csrf());
    };
    state.sessions.remove(&session.id);
    let clear = state.sessions.clear_cookie().parse().ok();
    Ok(with_cookie(see_other("/"), clear))
}
