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
use resetkit_axum::form::Form;
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

async fn not_found() -> PageError {
    PageError::not_found()
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

/// What a handler answers: a page or a redirect, or the error page.
pub(crate) type Answer = Result<Response, PageError>;

/// A refused or failed request: the portal's error page with its status.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl PageError {
    /// `status` with "Request refused" and `message`.
    pub(crate) fn refused(status: StatusCode, message: impl Into<String>) -> Self {
        PageError {
            status,
            title: "Request refused",
            message: message.into(),
        }
    }

    /// 404.
    pub(crate) fn not_found() -> Self {
        PageError {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            message: "There is no such page.".into(),
        }
    }

    /// 403 for a POST without a valid CSRF token.
    pub(crate) fn csrf() -> Self {
        Self::refused(StatusCode::FORBIDDEN, CSRF_REFUSED)
    }

    /// 503 when a store is down (`what` failed with `error`, logged).
    pub(crate) fn unavailable(what: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "{what} failed");
        PageError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Please try again later",
            message: "The service is temporarily unavailable. Please try again in a few minutes.".into(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        page(self.status, html::error(self.title, &self.message))
    }
}

/// The one value of field `label`; 400 for a missing, repeated or
/// list-valued field.
pub(crate) fn single<'f>(form: &'f Form, label: &str) -> Result<&'f str, PageError> {
    form.single(label)
        .map_err(|_| PageError::refused(StatusCode::BAD_REQUEST, format!("Send exactly one {label}")))
}

/// Parses a URL-encoded body; 415 for anything else.
pub(crate) fn parse_form(headers: &axum::http::HeaderMap, body: &[u8]) -> Result<Form, PageError> {
    Form::parse(headers, body)
        .map_err(|e| PageError::refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()))
}
