//! One way to build a page, for the public pages and the operator console:
//!
//! - a handler takes a [`PageCtx`] (an extractor: the site's state, the
//!   request's headers and, in the console, the operator the guard
//!   admitted) and returns `Result<Response, PageError>`;
//! - [`PageError`] implements `IntoResponse`: it marks the response, and the
//!   site's [`render_errors`] layer renders it with the site's own error
//!   template (language, navigation, the console's CSRF cookie), so `?`
//!   works everywhere and no handler renders a refusal by hand;
//! - redirects under the mount path are [`PageCtx::see_other`];
//! - every page is a minijinja template with HTML auto-escaping; when a
//!   template fails, the answer is [`fallback`].
//!
//! Both sites are mounted the same way: the builder's `mount_path` says
//! where, the router serves its paths under it, and the host `merge`s it.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::LOCATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use crate::BuildError;

/// What a site (the public pages, the console) provides to [`PageCtx`].
pub(crate) trait Site: Send + Sync + Sized + 'static {
    /// Who is looking: `()` on the public pages, the operator in the console.
    type Viewer: Clone + Send + Sync + 'static;

    /// Where the site is mounted (checked by [`check_mount_path`]).
    fn mount(&self) -> &str;

    /// The viewer of a request, `None` when the request lacks one (a
    /// console route without its guard: a wiring bug, answered 500).
    fn viewer(parts: &Parts) -> Option<Self::Viewer>;

    /// The site's page for `error`.
    fn error_page(ctx: &PageCtx<Self>, error: &PageError) -> Response;
}

/// A request's context: the site, the request's headers and its viewer.
pub(crate) struct PageCtx<S: Site> {
    pub(crate) site: Arc<S>,
    pub(crate) headers: HeaderMap,
    pub(crate) viewer: S::Viewer,
}

impl<S: Site> PageCtx<S> {
    fn from_parts(site: Arc<S>, parts: &Parts) -> Option<Self> {
        Some(PageCtx {
            viewer: S::viewer(parts)?,
            headers: parts.headers.clone(),
            site,
        })
    }

    /// `303 See Other` to `path_and_query` under the mount path.
    pub(crate) fn see_other(&self, path_and_query: &str) -> Response {
        see_other_to(&format!("{}{path_and_query}", self.site.mount()))
    }
}

/// `303 See Other` to `location` as given (500 if it is not a header value).
pub(crate) fn see_other_to(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

impl<S: Site> FromRequestParts<Arc<S>> for PageCtx<S> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, site: &Arc<S>) -> Result<Self, Self::Rejection> {
        PageCtx::from_parts(site.clone(), parts).ok_or_else(|| {
            tracing::error!("resetkit-axum: a page was reached without its guard");
            fallback()
        })
    }
}

/// The page when rendering failed: no template, no value from the request.
pub(crate) fn fallback() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html("<!doctype html><title>Error</title><p>Something went wrong.</p>"),
    )
        .into_response()
}

/// Why a page could not do what was asked, rendered by the site's error
/// template (see the module's documentation).
#[derive(Debug, Clone)]
pub(crate) enum PageError {
    /// The request is refused: a 4xx and a message naming what is wrong.
    Refused {
        /// 400, 403, 404, 409, 413, 415 ...
        status: StatusCode,
        /// Shown on the page.
        message: String,
    },
    /// A store, the mailer or a hook failed (503).
    Unavailable {
        /// The step, e.g. "checking a reset link".
        what: String,
        /// The error (logged; the console shows it to the operator).
        detail: String,
    },
    /// Too busy to take the request (503, not logged as an error: a flood
    /// shed this way must not also flood the log).
    Busy,
    /// The step failed and was not carried out (500); `message` says what
    /// did not happen.
    Failed {
        /// Shown on the page.
        message: String,
    },
}

impl PageError {
    /// A refusal with `status` and `message`.
    pub(crate) fn refused(status: StatusCode, message: impl Into<String>) -> Self {
        PageError::Refused {
            status,
            message: message.into(),
        }
    }

    /// `what` failed with `error`.
    pub(crate) fn unavailable(what: impl Into<String>, error: &dyn std::fmt::Display) -> Self {
        PageError::Unavailable {
            what: what.into(),
            detail: error.to_string(),
        }
    }

    /// The CSRF token is missing or wrong (403).
    pub(crate) fn csrf() -> Self {
        Self::refused(StatusCode::FORBIDDEN, crate::CSRF_REFUSED)
    }

    /// The status the page is sent with.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            PageError::Refused { status, .. } => *status,
            PageError::Unavailable { .. } | PageError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for PageError {
    /// The status, with the error for [`render_errors`] to render.
    fn into_response(self) -> Response {
        let mut response = self.status().into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The layer (`middleware::from_fn_with_state`) that renders every
/// [`PageError`] a handler of the site returns with the site's template.
pub(crate) async fn render_errors<S: Site>(
    State(site): State<Arc<S>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let ctx = PageCtx::from_parts(site, &parts);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    match (response.extensions_mut().remove::<PageError>(), ctx) {
        (Some(error), Some(ctx)) => S::error_page(&ctx, &error),
        (Some(_), None) => fallback(),
        (None, _) => response,
    }
}

/// Checks a mount path: `""` (the root, when `root_ok`) or `/segment...`,
/// each segment non-empty and made of ASCII letters, digits, `-` and `_`,
/// no trailing slash. The rule leaves no room for `//` (a
/// protocol-relative redirect), `.` or `..` segments, or anything that
/// would need escaping in a URL, an HTML attribute or a cookie's `Path`.
pub(crate) fn check_mount_path(path: &str, root_ok: bool) -> Result<(), BuildError> {
    let ok = if path.is_empty() {
        root_ok
    } else {
        path.strip_prefix('/').is_some_and(|rest| {
            rest.split('/').all(|segment| {
                !segment.is_empty()
                    && segment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            })
        })
    };
    if ok {
        Ok(())
    } else {
        Err(BuildError::MountPath(path.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_plain_segments() {
        for good in ["/admin", "/password", "/a/b-c/d_e", "/V2"] {
            assert!(check_mount_path(good, false).is_ok(), "{good}");
        }
        assert!(check_mount_path("", true).is_ok());
        for bad in [
            "",
            "/",
            "admin",
            "/admin/",
            "//evil.example",
            "/a//b",
            "/a/../b",
            "/./x",
            "/a.b",
            "/a b",
            "/a?b",
            "/a#b",
            "/a%2e",
            "/ä",
            "/a\\b",
            "/a;b",
        ] {
            assert!(
                matches!(check_mount_path(bad, false), Err(BuildError::MountPath(p)) if p == bad),
                "{bad:?} accepted"
            );
        }
    }
}
