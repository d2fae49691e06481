//! The emailed link and what follows it.
//!
//! `GET /reset?token=T` (and HEAD, as mail scanners send) only *inspects* the
//! token: a valid one moves into the server-side session and the answer is
//! `303` to the clean `/reset/new`, so the token leaves the address bar,
//! history and any later Referer; an invalid one goes to `/reset/invalid`.
//! The token is spent only by the CSRF-protected `POST /reset/new`.
//!
//! `GET /reset/deny?token=T` ("this wasn't me") shows a confirmation form and
//! does nothing else; only its POST revokes the account's links.

use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use resetkit::token::RawToken;
use resetkit::{CompleteError, LinkError};
use secrecy::{ExposeSecret, SecretString};

use super::forgot::capitalize;
use super::{State, checked_form, field_refused, page, see_other, unavailable, with_cookie};
use crate::form::Form;
use crate::html;
use crate::session::{Pending, PendingLink};

/// The one `token` of a query string.
fn query_token(query: Option<&str>) -> Option<String> {
    let form = Form::from_encoded(query.unwrap_or_default().as_bytes());
    form.get("token").map(str::to_owned)
}

pub(super) async fn link(state: State, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let Some(token) = query_token(query.as_deref()) else {
        if let Some(session) = state.sessions.current(&headers) {
            state.sessions.set_pending(&session.id, Pending::Reset, None);
        }
        return see_other("/reset/invalid");
    };
    match state.service.inspect(&token).await {
        Ok(info) => {
            let session = state.sessions.current_or_new(&headers);
            let pending = PendingLink::new(SecretString::from(token), info.username);
            state
                .sessions
                .set_pending(&session.id, Pending::Reset, Some(pending));
            with_cookie(see_other("/reset/new"), session.set_cookie)
        }
        Err(LinkError::InvalidLink) => {
            if let Some(session) = state.sessions.current(&headers) {
                state.sessions.set_pending(&session.id, Pending::Reset, None);
            }
            see_other("/reset/invalid")
        }
        Err(error) => unavailable("checking a reset link", &error),
    }
}

pub(super) async fn new_form(state: State, headers: HeaderMap) -> Response {
    let Some(session) = state.sessions.current(&headers) else {
        return see_other("/reset/invalid");
    };
    let Some(pending) = session.reset.clone() else {
        return see_other("/reset/invalid");
    };
    // Check again: a newer request, a reset elsewhere or an email change may
    // have killed the link since it was opened.
    match state.service.inspect(pending.token.expose_secret()).await {
        Ok(info) => page(
            StatusCode::OK,
            html::reset_form(&session.csrf, &info.username, None),
        ),
        Err(LinkError::InvalidLink) => {
            state.sessions.set_pending(&session.id, Pending::Reset, None);
            see_other("/reset/invalid")
        }
        Err(error) => unavailable("checking a reset link", &error),
    }
}

pub(super) async fn new_submit(state: State, headers: HeaderMap, body: Bytes) -> Response {
    let (form, session) = match checked_form(&state, &headers, &body) {
        Ok(checked) => checked,
        Err(refusal) => return *refusal,
    };
    let Some(pending) = session.reset.clone() else {
        return see_other("/reset/invalid");
    };
    let password = match form.single("password") {
        Ok(p) => SecretString::from(p),
        Err(why) => return field_refused("password", why),
    };
    let confirm = match form.single("confirm") {
        Ok(p) => SecretString::from(p),
        Err(why) => return field_refused("confirm", why),
    };
    let retry = |message: String| {
        page(
            StatusCode::OK,
            html::reset_form(&session.csrf, &pending.username, Some(&message)),
        )
    };
    match state
        .service
        .complete(pending.token.expose_secret(), password, confirm)
        .await
    {
        Ok(_completed) => {
            state.sessions.set_pending(&session.id, Pending::Reset, None);
            see_other("/reset/done")
        }
        Err(CompleteError::InvalidLink) => {
            state.sessions.set_pending(&session.id, Pending::Reset, None);
            see_other("/reset/invalid")
        }
        Err(CompleteError::ConfirmationMismatch) => retry("The two passwords do not match.".into()),
        Err(CompleteError::PasswordRejected(why)) => retry(format!("Choose another password: {why}.")),
        Err(error @ CompleteError::Unavailable(_)) => unavailable("completing a reset", &error),
        Err(error) => {
            tracing::error!(%error, "completing a reset failed");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                html::error(
                    "Something went wrong",
                    &capitalize("your password was not changed; please try again"),
                ),
            )
        }
    }
}

pub(super) async fn done() -> Response {
    page(StatusCode::OK, html::reset_done())
}

pub(super) async fn invalid() -> Response {
    page(StatusCode::OK, html::reset_invalid())
}

pub(super) async fn deny_form(state: State, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let session = state.sessions.current_or_new(&headers);
    match query_token(query.as_deref()) {
        Some(token) if RawToken::parse(&token).is_ok() => {
            let pending = PendingLink::new(SecretString::from(token), String::new());
            state
                .sessions
                .set_pending(&session.id, Pending::Deny, Some(pending));
        }
        Some(_) => return with_cookie(see_other("/reset/invalid"), session.set_cookie),
        // A reload of the clean page keeps the token taken before.
        None if session.deny.is_some() => {}
        None => return with_cookie(see_other("/reset/invalid"), session.set_cookie),
    }
    with_cookie(
        page(StatusCode::OK, html::deny_form(&session.csrf)),
        session.set_cookie,
    )
}

pub(super) async fn deny_submit(state: State, headers: HeaderMap, body: Bytes) -> Response {
    let (_form, session) = match checked_form(&state, &headers, &body) {
        Ok(checked) => checked,
        Err(refusal) => return *refusal,
    };
    let Some(pending) = session.deny.clone() else {
        return see_other("/reset/invalid");
    };
    state.sessions.set_pending(&session.id, Pending::Deny, None);
    match state.service.deny(pending.token.expose_secret()).await {
        Ok(()) => {
            state.sessions.set_pending(&session.id, Pending::Reset, None);
            see_other("/reset/deny/done")
        }
        Err(LinkError::InvalidLink) => see_other("/reset/invalid"),
        Err(error) => unavailable("cancelling reset links", &error),
    }
}

pub(super) async fn deny_done() -> Response {
    page(StatusCode::OK, html::deny_done())
}
