//! The handlers.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, RawQuery, State};
use axum::http::header::{ACCEPT_LANGUAGE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use resetkit::error::StoreError;
use resetkit::token::RawToken;
use resetkit::{CompleteError, LinkError, RequestContext, RequestError};
use secrecy::{ExposeSecret, SecretString};
use tower_http::timeout::TimeoutLayer;

use crate::csrf::{cookie_values, random_id};
use crate::form::{FieldError, Form};
use crate::opened::OPENED_COOKIE;
use crate::{CSRF_REFUSED, LINK_COOKIE, Shared};

type AppState = State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let body_limit = shared.body_limit;
    let timeout = shared.request_timeout;
    Router::new()
        .route("/forgot", get(forgot_form).post(forgot_submit))
        .route("/forgot/sent", get(forgot_sent))
        .route("/reset", get(link))
        .route("/reset/new", get(new_form).post(new_submit))
        .route("/reset/done", get(done))
        .route("/reset/invalid", get(invalid))
        .route("/reset/deny", get(deny_form).post(deny_submit))
        .route("/reset/deny/done", get(deny_done))
        .route("/account/security", get(security_form).post(security_submit))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn(crate::headers::security_headers))
        .with_state(shared)
}

/// A rendered page, or the error page when the template failed.
fn page(
    shared: &Shared,
    headers: &HeaderMap,
    status: StatusCode,
    name: &str,
    title: &str,
    context: minijinja::Value,
) -> Response {
    let locale = shared
        .pages
        .pick_locale(headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    let nav: Vec<minijinja::Value> = shared
        .nav
        .iter()
        .map(|l| minijinja::context! { label => l.label, href => l.href })
        .collect();
    let context = minijinja::context! {
        title => title,
        // Checked at build: `/`, letters, digits, `-`, `_`, `.` only.
        mount => minijinja::Value::from_safe_string(shared.mount.clone()),
        site_name => shared.site_name,
        nav => nav,
        ..context
    };
    match shared.pages.render(name, locale.as_deref(), context) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, template = name, "rendering a page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>Something went wrong.</p>"),
            )
                .into_response()
        }
    }
}

fn error_page(
    shared: &Shared,
    headers: &HeaderMap,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    page(
        shared,
        headers,
        status,
        "error.html",
        title,
        minijinja::context! { message => message },
    )
}

/// `303 See Other` to a path under the mount path.
fn see_other(shared: &Shared, path: &str) -> Response {
    let location = format!("{}{path}", shared.mount);
    match HeaderValue::from_str(&location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

fn csrf_refused(shared: &Shared, headers: &HeaderMap) -> Response {
    error_page(
        shared,
        headers,
        StatusCode::FORBIDDEN,
        "Request refused",
        CSRF_REFUSED,
    )
}

fn field_refused(shared: &Shared, headers: &HeaderMap, label: &str, _why: FieldError) -> Response {
    error_page(
        shared,
        headers,
        StatusCode::BAD_REQUEST,
        "Request refused",
        &format!("Send exactly one {label}"),
    )
}

fn unavailable(shared: &Shared, headers: &HeaderMap, what: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "{what} failed");
    try_again(shared, headers)
}

/// 503 "try again in a moment", with `Retry-After`.
fn try_again(shared: &Shared, headers: &HeaderMap) -> Response {
    let mut response = error_page(
        shared,
        headers,
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again in a moment",
        "The service is temporarily unavailable. Nothing was sent: please try again in a moment.",
    );
    response
        .headers_mut()
        .insert(axum::http::header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// Parses a URL-encoded body (415 otherwise).
fn parse_form(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Form, Box<Response>> {
    Form::parse(headers, body).map_err(|e| {
        Box::new(error_page(
            shared,
            headers,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Request refused",
            &e.to_string(),
        ))
    })
}

/// Whether the missing client address was logged already.
static NO_PEER_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Most link ids one browser's cookie carries (newest first).
const MAX_LINK_IDS: usize = 4;

/// Every link id the request's link cookies carry. A cookie planted by
/// someone else (a sibling subdomain, a plain-http response) only adds ids
/// that hold *their* links: a link is always filed under an id minted for
/// the response that opened it, so nobody else knows it.
fn browser_ids(headers: &HeaderMap) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for value in cookie_values(headers, LINK_COOKIE) {
        for id in value.split('.') {
            if id.len() == 43 && !ids.iter().any(|known| known == id) && ids.len() < 2 * MAX_LINK_IDS {
                ids.push(id.to_owned());
            }
        }
    }
    ids
}

/// A fresh id for a link being opened, and the cookie carrying it with the
/// browser's previous ids (so forms that are already open keep working).
fn new_link_id(shared: &Shared, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    let id = random_id();
    let mut ids = vec![id.clone()];
    ids.extend(browser_ids(headers).into_iter().take(MAX_LINK_IDS - 1));
    let secure = if shared.secure_cookies { "; Secure" } else { "" };
    let path = if shared.mount.is_empty() {
        "/"
    } else {
        &shared.mount
    };
    let cookie = format!(
        "{LINK_COOKIE}={}; HttpOnly; SameSite=Lax; Path={path}{secure}",
        ids.join(".")
    );
    (id, HeaderValue::from_str(&cookie).ok())
}

/// `enter an email address` → `Enter an email address.`
fn sentence(text: &str) -> String {
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

// ---- forgot ----

async fn forgot_form(State(shared): AppState, headers: HeaderMap) -> Response {
    let csrf = shared.csrf.token(&headers);
    let response = page(
        &shared,
        &headers,
        StatusCode::OK,
        "forgot.html",
        "Forgot your password?",
        minijinja::context! { csrf_token => csrf.value, identifier => "" },
    );
    with_cookie(response, csrf.set_cookie)
}

async fn forgot_submit(
    State(shared): AppState,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match parse_form(&shared, &headers, &body) {
        Ok(form) => form,
        Err(refusal) => return *refusal,
    };
    let submitted = form.get("csrf_token");
    if !shared.csrf.verify(&headers, submitted) {
        return csrf_refused(&shared, &headers);
    }
    let identifier = match form.single("identifier") {
        Ok(identifier) => identifier,
        Err(why) => return field_refused(&shared, &headers, "identifier", why),
    };
    // The client address is the TCP peer (a header could be forged to dodge
    // the per-client limit). Behind a proxy, put a layer in front that
    // rewrites ConnectInfo from a header only the proxy sets. Without it,
    // there is no client address: one shared "unknown" bucket would let a
    // few requests throttle the whole site, silently.
    let ctx = match connect {
        Some(Extension(ConnectInfo(peer))) => RequestContext::from_client(peer.ip().to_string()),
        None => {
            if !NO_PEER_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    "resetkit-axum: no client address (serve with `resetkit_axum::serve` or \
                     `into_make_service_with_connect_info`): the per-client limit is not applied"
                );
            }
            RequestContext::default()
        }
    };
    match shared.service.request(identifier, &ctx).await {
        Ok(_accepted) => see_other(&shared, "/forgot/sent"),
        Err(RequestError::Invalid(reason)) => page(
            &shared,
            &headers,
            StatusCode::BAD_REQUEST,
            "forgot.html",
            "Forgot your password?",
            minijinja::context! {
                csrf_token => submitted.unwrap_or_default(),
                identifier => identifier,
                error => sentence(&reason.to_string()),
            },
        ),
        Err(RequestError::Unavailable(StoreError::Full { .. })) => shed(&shared, &headers),
        Err(error) => unavailable(&shared, &headers, "password reset request", &error),
    }
}

/// The inbox is full: "try again" without an error log per request (a
/// flood answered 503 must not also flood the log; the metrics count them).
fn shed(shared: &Shared, headers: &HeaderMap) -> Response {
    tracing::debug!("password reset request shed: the request inbox is full");
    try_again(shared, headers)
}

async fn forgot_sent(State(shared): AppState, headers: HeaderMap) -> Response {
    page(
        &shared,
        &headers,
        StatusCode::OK,
        "forgot_sent.html",
        "Check your email",
        minijinja::context! { accepted_message => resetkit::RequestAccepted::MESSAGE },
    )
}

// ---- the reset link ----

/// The one `token` of a query string.
fn query_token(query: Option<&str>) -> Option<String> {
    Form::from_encoded(query.unwrap_or_default().as_bytes())
        .get("token")
        .map(str::to_owned)
}

/// The `resetkit_opened` cookie: `value` (a sealed link), or `None` to
/// forget it.
fn opened_cookie(shared: &Shared, value: Option<&str>) -> Option<HeaderValue> {
    let secure = if shared.secure_cookies { "; Secure" } else { "" };
    let path = if shared.mount.is_empty() {
        "/"
    } else {
        &shared.mount
    };
    let (value, age) = match value {
        Some(value) => (value, shared.seal.ttl().as_secs()),
        None => ("", 0),
    };
    HeaderValue::from_str(&format!(
        "{OPENED_COOKIE}={value}; Max-Age={age}; HttpOnly; SameSite=Lax; Path={path}{secure}"
    ))
    .ok()
}

/// The token of a sealed link (the `resetkit_opened` cookie or a form's
/// `csrf_token`), if this browser opened it and it has not expired.
fn open_sealed(shared: &Shared, headers: &HeaderMap, sealed: &str) -> Option<SecretString> {
    shared
        .seal
        .open(&browser_ids(headers), sealed, std::time::SystemTime::now())
        .map(SecretString::from)
}

/// `GET`/`HEAD /reset?token=T`: inspects T (never spends it), seals it to
/// this browser in a cookie (no server state), 303 to the clean form URL.
async fn link(State(shared): AppState, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let Some(token) = query_token(query.as_deref()) else {
        return see_other(&shared, "/reset/invalid");
    };
    match shared.service.open_link(&token).await {
        Ok(_info) => {
            let (browser, cookie) = new_link_id(&shared, &headers);
            let sealed = shared.seal.seal(&browser, &token, std::time::SystemTime::now());
            let response = with_cookie(see_other(&shared, "/reset/new"), cookie);
            with_cookie(response, opened_cookie(&shared, Some(&sealed)))
        }
        Err(LinkError::InvalidLink) => see_other(&shared, "/reset/invalid"),
        Err(error) => unavailable(&shared, &headers, "checking a reset link", &error),
    }
}

fn reset_form(
    shared: &Shared,
    headers: &HeaderMap,
    sealed: &str,
    username: &str,
    error: Option<String>,
) -> Response {
    page(
        shared,
        headers,
        StatusCode::OK,
        "reset_form.html",
        "Choose a new password",
        minijinja::context! {
            csrf_token => sealed,
            username => username,
            error => error,
            min_password_chars => shared.min_password_chars,
        },
    )
}

async fn new_form(State(shared): AppState, headers: HeaderMap) -> Response {
    // The most recently opened link (the cookie holds one).
    let opened = cookie_values(&headers, OPENED_COOKIE)
        .find_map(|sealed| Some((sealed.to_owned(), open_sealed(&shared, &headers, sealed)?)));
    let Some((sealed, token)) = opened else {
        return see_other(&shared, "/reset/invalid");
    };
    // Still valid? (Another tab may have used it, or a newer request revoked it.)
    match shared.service.inspect(token.expose_secret()).await {
        Ok(info) => reset_form(&shared, &headers, &sealed, &info.username, None),
        Err(LinkError::InvalidLink) => {
            with_cookie(see_other(&shared, "/reset/invalid"), opened_cookie(&shared, None))
        }
        Err(error) => unavailable(&shared, &headers, "checking a reset link", &error),
    }
}

async fn new_submit(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Response {
    let form = match parse_form(&shared, &headers, &body) {
        Ok(form) => form,
        Err(refusal) => return *refusal,
    };
    // The form's own token, sealed to this browser: the page's CSRF token.
    let opened = form
        .get("csrf_token")
        .and_then(|sealed| Some((sealed.to_owned(), open_sealed(&shared, &headers, sealed)?)));
    let Some((sealed, token)) = opened else {
        return csrf_refused(&shared, &headers);
    };
    let password = match form.single("password") {
        Ok(p) => SecretString::from(p),
        Err(why) => return field_refused(&shared, &headers, "password", why),
    };
    let confirm = match form.single("confirm") {
        Ok(p) => SecretString::from(p),
        Err(why) => return field_refused(&shared, &headers, "confirm", why),
    };
    let retry = async |message: String| match shared.service.inspect(token.expose_secret()).await {
        Ok(info) => reset_form(&shared, &headers, &sealed, &info.username, Some(message)),
        Err(LinkError::InvalidLink) => see_other(&shared, "/reset/invalid"),
        Err(error) => unavailable(&shared, &headers, "checking a reset link", &error),
    };
    // Run to the end even if the client goes away or the request times out:
    // a reset cut short after the password write would skip revoking the
    // account's sessions and links and the "password changed" notice.
    let service = shared.service.clone();
    let spent = token.clone();
    let completed =
        tokio::spawn(async move { service.complete(spent.expose_secret(), password, confirm).await })
            .await
            .unwrap_or_else(|join| Err(CompleteError::Internal(format!("reset task failed: {join}"))));
    match completed {
        Ok(_completed) => with_cookie(see_other(&shared, "/reset/done"), opened_cookie(&shared, None)),
        Err(CompleteError::InvalidLink) => {
            with_cookie(see_other(&shared, "/reset/invalid"), opened_cookie(&shared, None))
        }
        Err(CompleteError::ConfirmationMismatch) => retry("The two passwords do not match.".into()).await,
        Err(CompleteError::PasswordRejected(why)) => retry(format!("Choose another password: {why}.")).await,
        Err(error @ CompleteError::Unavailable(_)) => {
            unavailable(&shared, &headers, "completing a reset", &error)
        }
        Err(error) => {
            tracing::error!(%error, "completing a reset failed");
            error_page(
                &shared,
                &headers,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Your password was not changed; please try again.",
            )
        }
    }
}

async fn done(State(shared): AppState, headers: HeaderMap) -> Response {
    page(
        &shared,
        &headers,
        StatusCode::OK,
        "reset_done.html",
        "Password changed",
        minijinja::context! {
            sign_in_url => shared.sign_in_url,
            signed_out_everywhere => shared.service.revokes_sessions(),
        },
    )
}

async fn invalid(State(shared): AppState, headers: HeaderMap) -> Response {
    page(
        &shared,
        &headers,
        StatusCode::OK,
        "reset_invalid.html",
        "Link invalid or expired",
        minijinja::context! { invalid_message => resetkit::flow::INVALID_LINK_MESSAGE },
    )
}

// ---- "this wasn't me" ----

fn deny_page(shared: &Shared, headers: &HeaderMap, form_id: &str) -> Response {
    page(
        shared,
        headers,
        StatusCode::OK,
        "deny_form.html",
        "Didn't ask for a reset?",
        minijinja::context! { csrf_token => form_id },
    )
}

/// `GET /reset/deny?token=T`: a confirmation form and nothing else (mail
/// scanners fetch links). Nothing is stored: the form's `csrf_token` carries
/// the deny token sealed to the browser's CSRF cookie, so only this
/// browser's POST of this form can use it, and a second deny link opened
/// later cannot change what this form submits.
async fn deny_form(State(shared): AppState, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    match query_token(query.as_deref()) {
        Some(token) if RawToken::parse(&token).is_ok() => {
            let csrf = shared.csrf.token(&headers);
            let field = shared.csrf.seal(&csrf, &token);
            with_cookie(deny_page(&shared, &headers, &field), csrf.set_cookie)
        }
        _ => see_other(&shared, "/reset/invalid"),
    }
}

async fn deny_submit(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Response {
    let form = match parse_form(&shared, &headers, &body) {
        Ok(form) => form,
        Err(refusal) => return *refusal,
    };
    let Some(token) = shared.csrf.open(&headers, form.get("csrf_token")) else {
        return csrf_refused(&shared, &headers);
    };
    // Like `complete`, run to the end whatever happens to the request.
    let service = shared.service.clone();
    let denied = tokio::spawn(async move { service.deny(&token).await }).await;
    let denied = match denied {
        Ok(result) => result,
        Err(join) => {
            tracing::error!(error = %join, "cancelling reset links failed");
            return error_page(
                &shared,
                &headers,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Your links were not cancelled; please try again.",
            );
        }
    };
    match denied {
        Ok(()) => see_other(&shared, "/reset/deny/done"),
        Err(LinkError::InvalidLink) => see_other(&shared, "/reset/invalid"),
        Err(error) => unavailable(&shared, &headers, "cancelling reset links", &error),
    }
}

async fn deny_done(State(shared): AppState, headers: HeaderMap) -> Response {
    page(
        &shared,
        &headers,
        StatusCode::OK,
        "deny_done.html",
        "Reset links cancelled",
        minijinja::context! {},
    )
}

// ---- the password-changed notice's page ----

async fn signed_in(shared: &Shared, parts: &Parts) -> Option<crate::SignedIn> {
    match &shared.host_sessions {
        Some(hook) => hook.signed_in(parts).await,
        None => None,
    }
}

async fn security_form(State(shared): AppState, request: axum::extract::Request) -> Response {
    let (parts, _body) = request.into_parts();
    let user = signed_in(&shared, &parts).await;
    let csrf = shared.csrf.token(&parts.headers);
    let response = page(
        &shared,
        &parts.headers,
        StatusCode::OK,
        "security.html",
        "Secure your account",
        minijinja::context! {
            csrf_token => csrf.value,
            signed_in_as => user.map(|u| u.username),
        },
    );
    with_cookie(response, csrf.set_cookie)
}

async fn security_submit(State(shared): AppState, parts: Parts, body: Bytes) -> Response {
    let headers = &parts.headers;
    let form = match parse_form(&shared, headers, &body) {
        Ok(form) => form,
        Err(refusal) => return *refusal,
    };
    if !shared.csrf.verify(headers, form.get("csrf_token")) {
        return csrf_refused(&shared, headers);
    }
    let (Some(user), Some(hook)) = (signed_in(&shared, &parts).await, shared.host_sessions.as_ref()) else {
        return see_other(&shared, "/account/security");
    };
    let (task_hook, account) = (hook.clone(), user.account.clone());
    let signed_out = tokio::spawn(async move { task_hook.sign_out_everywhere(&account).await })
        .await
        .unwrap_or_else(|join| Err(format!("sign-out task failed: {join}")));
    match signed_out {
        Ok(()) => {
            tracing::info!(account = %user.account, "signed out everywhere on request");
            match HeaderValue::from_str(&shared.after_sign_out) {
                Ok(to) => (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response(),
                Err(_) => see_other(&shared, "/account/security"),
            }
        }
        Err(error) => unavailable(&shared, headers, "signing out everywhere", &error),
    }
}
