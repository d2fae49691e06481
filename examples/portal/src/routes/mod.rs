//! The portal's own routes (home, sign-in, account, `/dev/mail`) merged
//! with `resetkit-axum`'s reset pages, and the response helpers they share.
//!
//! | path | methods | page |
//! | --- | --- | --- |
//! | `/` | GET | links to sign in and "forgot password" |
//! | `/login` | GET, POST | sign in (`identifier`, `password`) |
//! | `/logout` | POST | sign out |
//! | `/account` | GET | "Signed in as USERNAME" |
//! | `/dev/mail` | GET | captured mail (only with `--dev-mail`) |
//! | `/dev/faults` | GET, POST | make the capture server refuse a sender or a recipient (only with `--dev-mail`) |
//! | `/admin`, `/admin/*` | | `resetkit_axum`'s operator console, for the demo operator |
//! | `/forgot`, `/reset`, `/reset/*`, `/account/security` | | `resetkit_axum` |

mod account;
mod dev;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use resetkit::ResetService;
use resetkit::account::AccountDirectory;
use resetkit::hasher::{PasswordHash, PasswordHasher};
use resetkit_axum::form::{FieldError, Form};
use resetkit_axum::{CSRF_REFUSED, ResetPages};
use resetkit_harness::fake_smtp::FakeSmtpServer;

use crate::html;
use crate::session::SessionStore;

/// Largest form body the portal's own pages accept (bytes).
const MAX_BODY: usize = 16 * 1024;

/// Longest a request to the portal's own pages may take (the reset pages
/// have `resetkit-axum`'s, also 30 s).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What the handlers share.
pub(crate) struct App {
    pub(crate) service: ResetService,
    pub(crate) pages: ResetPages,
    pub(crate) accounts: Arc<dyn AccountDirectory>,
    pub(crate) hasher: Arc<dyn PasswordHasher>,
    pub(crate) decoy_hash: PasswordHash,
    pub(crate) sessions: Arc<SessionStore>,
    /// The capture server, when `/dev/mail` is on.
    pub(crate) dev_mail: Option<Arc<FakeSmtpServer>>,
    /// The fault switches turned on at `/dev/faults`, in words.
    pub(crate) faults: std::sync::Mutex<Vec<String>>,
    /// Sign-in attempts per identifier and per client address.
    pub(crate) sign_in_limits: resetkit::policy::RateLimits,
}

type State = axum::extract::State<Arc<App>>;

/// The portal's routes and the reset pages, all with the security headers.
pub(crate) fn router(app: Arc<App>) -> Router {
    let pages = app.pages.router();
    let mut own = Router::new()
        .route("/", get(account::home))
        .route("/login", get(account::login_form).post(account::login_submit))
        .route("/logout", post(account::logout))
        .route("/account", get(account::account));
    if app.dev_mail.is_some() {
        // Live reset links: answered only to loopback Host names (a page
        // elsewhere could otherwise rebind its name to 127.0.0.1 and read them).
        let dev = Router::new()
            .route("/dev/mail", get(dev::mail))
            .route("/dev/faults", get(dev::faults).post(dev::faults_submit))
            .layer(middleware::from_fn(dev::loopback_host_only));
        own = own.merge(dev);
    }
    own.fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn(resetkit_axum::security_headers))
        .with_state(app)
        .merge(pages)
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
pub(crate) fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(value) = cookie {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

/// 403 for a POST without a valid CSRF token.
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

/// Parses a URL-encoded body; 415 for anything else.
pub(crate) fn parse_form(headers: &axum::http::HeaderMap, body: &[u8]) -> Result<Form, Box<Response>> {
    Form::parse(headers, body).map_err(|e| {
        Box::new(page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            html::error("Request refused", &e.to_string()),
        ))
    })
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
