//! "Forgot your password?": one answer for every well-formed identifier.
//!
//! `POST /forgot` answers `303 See Other` to `/forgot/sent`, with no body and
//! no cookie, whether the identifier is known, unknown, disabled, shared or
//! rate limited: the service validates, then processes the request in the
//! background, and mail leaves through the outbox. Only malformed input gets
//! the form back (400) with the reason, which depends on the text alone.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use resetkit::{RequestContext, RequestError};

use super::{State, checked_form, field_refused, page, see_other, unavailable, with_cookie};
use crate::html;

pub(super) async fn form(state: State, headers: HeaderMap) -> Response {
    let session = state.sessions.current_or_new(&headers);
    with_cookie(
        page(StatusCode::OK, html::forgot(&session.csrf, None, "")),
        session.set_cookie,
    )
}

pub(super) async fn submit(
    state: State,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (form, session) = match checked_form(&state, &headers, &body) {
        Ok(checked) => checked,
        Err(refusal) => return *refusal,
    };
    let identifier = match form.single("identifier") {
        Ok(identifier) => identifier,
        Err(why) => return field_refused("identifier", why),
    };
    // The client address is the TCP peer: a header could be forged to dodge
    // the per-client limit. Behind a proxy, derive it from a header only the
    // proxy can set.
    let context = RequestContext::from_client(peer.ip().to_string());
    // `request` validates, then spawns the real work and returns: the
    // answer does not wait for the account lookup, the token or the mail.
    match state.service.request(identifier, &context).await {
        Ok(_accepted) => see_other("/forgot/sent"),
        Err(RequestError::Invalid(reason)) => page(
            StatusCode::BAD_REQUEST,
            html::forgot(&session.csrf, Some(&capitalize(&reason.to_string())), identifier),
        ),
        Err(RequestError::Unavailable(error)) => unavailable("password reset request", &error),
        Err(error) => unavailable("password reset request", &error),
    }
}

pub(super) async fn sent() -> Response {
    page(StatusCode::OK, html::forgot_sent())
}

/// `enter an email address` → `Enter an email address.`
pub(crate) fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}
