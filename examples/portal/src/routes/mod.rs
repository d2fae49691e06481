//! The HTTP routes, the headers every response carries, and the small
//! response helpers the handlers share.
//!
//! | path | methods | page |
//! | --- | --- | --- |
//! | `/` | GET | links to sign in and "forgot password" |
//! | `/login` | GET, POST | sign in (`identifier`, `password`) |
//! | `/logout` | POST | sign out |
//! | `/account` | GET | "Signed in as USERNAME" |
//! | `/account/security` | GET, POST | the password-changed notice's link: sign out everywhere |
//! | `/forgot` | GET, POST | ask for a link (`identifier`) |
//! | `/forgot/sent` | GET | "Check your email" |
//! | `/reset` | GET, HEAD | the emailed link: token into the session, 303 to a clean URL |
//! | `/reset/new` | GET, POST | choose a new password (`password`, `confirm`) |
//! | `/reset/done`, `/reset/invalid` | GET | outcome pages |
//! | `/reset/deny` | GET, POST | "this wasn't me": confirm, then revoke the links |
//! | `/dev/mail` | GET | captured mail (only with `--dev-mail`) |

mod account;
mod dev;
mod forgot;
mod reset;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, REFERRER_POLICY, SET_COOKIE, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use resetkit::ResetService;
use resetkit::account::AccountDirectory;
use resetkit::hasher::{PasswordHash, PasswordHasher};
use resetkit_harness::fake_smtp::FakeSmtpServer;

use crate::form::{FieldError, Form, FormError};
use crate::html;
use crate::session::SessionStore;

/// Largest form body accepted (bytes).
const MAX_BODY: usize = 16 * 1024;

/// The text of every CSRF refusal.
pub(crate) const CSRF_REFUSED: &str = "Invalid or missing CSRF token";

/// What the handlers share.
pub(crate) struct App {
    pub(crate) service: ResetService,
    pub(crate) accounts: Arc<dyn AccountDirectory>,
    pub(crate) hasher: Arc<dyn PasswordHasher>,
    pub(crate) decoy_hash: PasswordHash,
    pub(crate) sessions: Arc<SessionStore>,
    /// The capture server, when `/dev/mail` is on.
    pub(crate) dev_mail: Option<Arc<FakeSmtpServer>>,
}

type State = axum::extract::State<Arc<App>>;

/// The portal's routes with their headers.
pub(crate) fn router(app: Arc<App>) -> Router {
    let mut router = Router::new()
        .route("/", get(account::home))
        .route("/login", get(account::login_form).post(account::login_submit))
        .route("/logout", post(account::logout))
        .route("/account", get(account::account))
        .route(
            "/account/security",
            get(account::security_form).post(account::security_submit),
        )
        .route("/forgot", get(forgot::form).post(forgot::submit))
        .route("/forgot/sent", get(forgot::sent))
        .route("/reset", get(reset::link))
        .route("/reset/new", get(reset::new_form).post(reset::new_submit))
        .route("/reset/done", get(reset::done))
        .route("/reset/invalid", get(reset::invalid))
        .route("/reset/deny", get(reset::deny_form).post(reset::deny_submit))
        .route("/reset/deny/done", get(reset::deny_done));
    if app.dev_mail.is_some() {
        router = router.route("/dev/mail", get(dev::mail));
    }
    router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(security_headers))
        .with_state(app)
}

/// Headers on every response: nothing is cached (pages carry CSRF tokens and
/// reset state), no Referer leaves (a reset URL must not leak), no framing,
/// no sniffing, and a CSP that allows only the inline style and same-origin forms.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        html::error("Not found", "There is no such page."),
    )
}

/// An HTML page with a status.
pub(crate) fn page(status: StatusCode, body: String) -> Response {
    (status, Html(body)).into_response()
}

/// `303 See Other` to `location` (a path of this portal).
pub(crate) fn see_other(location: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
}

/// Adds a `Set-Cookie` header when there is one.
pub(crate) fn with_cookie(mut response: Response, cookie: Option<String>) -> Response {
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

/// 403 for a POST without the session's CSRF token.
pub(crate) fn csrf_refused() -> Response {
    page(
        StatusCode::FORBIDDEN,
        html::error("Request refused", CSRF_REFUSED),
    )
}

/// 400 for a missing, repeated or list-valued field.
pub(crate) fn field_refused(label: &str, _why: FieldError) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        html::error("Request refused", &format!("Send exactly one {label}")),
    )
}

/// 415 for a body that is not a URL-encoded form.
pub(crate) fn form_refused(error: FormError) -> Response {
    page(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        html::error("Request refused", &error.to_string()),
    )
}

/// 503 when a store is down.
pub(crate) fn unavailable(what: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "{what} failed");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        html::error(
            "Please try again later",
            "The service is temporarily unavailable. Please try again in a few minutes.",
        ),
    )
}

/// Parses a form body and checks its CSRF token against the request's
/// session; the error is the response to send.
pub(crate) fn checked_form(
    app: &App,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<(Form, crate::session::Session), Box<Response>> {
    let form = Form::parse(headers, body).map_err(|e| Box::new(form_refused(e)))?;
    let session = app
        .sessions
        .check_csrf(headers, form.get("csrf_token"))
        .ok_or_else(|| Box::new(csrf_refused()))?;
    Ok((form, session))
}
