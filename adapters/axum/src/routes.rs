//! The handlers.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, RawQuery, State};
use axum::http::header::{ACCEPT_LANGUAGE, SET_COOKIE};
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
use crate::form::Form;
use crate::opened::OPENED_COOKIE;
use crate::page::{PageCtx, PageError, Site, fallback, render_errors, see_other_to};
use crate::{LINK_COOKIE, Shared};

type Ctx = PageCtx<Shared>;
/// What a handler answers: a page or a redirect, or an error page.
type Answer = Result<Response, PageError>;

/// The pages' routes under the mount path.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let body_limit = shared.body_limit;
    let timeout = shared.request_timeout;
    let mount = shared.mount.clone();
    let routes = Router::new()
        .route("/forgot", get(forgot_form).post(forgot_submit))
        .route("/forgot/sent", get(forgot_sent))
        .route("/reset", get(link))
        .route("/reset/new", get(new_form).post(new_submit))
        .route("/reset/done", get(done))
        .route("/reset/invalid", get(invalid))
        .route("/reset/deny", get(deny_form).post(deny_submit))
        .route("/reset/deny/done", get(deny_done))
        .route("/account/security", get(security_form).post(security_submit))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            render_errors::<Shared>,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn(crate::headers::security_headers))
        .with_state(shared);
    if mount.is_empty() {
        routes
    } else {
        Router::new().nest(&mount, routes)
    }
}

impl Site for Shared {
    type Viewer = ();

    fn mount(&self) -> &str {
        &self.mount
    }

    fn viewer(_parts: &Parts) -> Option<()> {
        Some(())
    }

    fn error_page(ctx: &Ctx, error: &PageError) -> Response {
        let (title, message) = match error {
            PageError::Refused { message, .. } => ("Request refused", message.as_str()),
            PageError::Unavailable { what, detail } => {
                tracing::error!(error = %detail, "{what} failed");
                TRY_AGAIN
            }
            PageError::Busy => {
                tracing::debug!("password reset request shed: the request inbox is full");
                TRY_AGAIN
            }
            PageError::Failed { message } => ("Something went wrong", message.as_str()),
        };
        let mut response = if matches!(error, PageError::Busy) {
            ctx.busy_page()
        } else {
            ctx.page(
                error.status(),
                "error.html",
                title,
                minijinja::context! { message => message },
            )
        };
        if error.status() == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, RETRY_AFTER);
        }
        response
    }
}

/// The title and text of the 503 page (an outage, or too busy).
const TRY_AGAIN: (&str, &str) = (
    "Please try again in a moment",
    "The service is temporarily unavailable. Nothing was sent: please try again in a moment.",
);

/// The 503 answer's `Retry-After`, in seconds.
const RETRY_AFTER: HeaderValue = HeaderValue::from_static("5");

/// The rendered page `name`, or the fallback page when rendering failed.
fn html_or_fallback<B>(status: StatusCode, name: &str, rendered: Result<B, String>) -> Response
where
    Html<B>: IntoResponse,
{
    match rendered {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, template = name, "rendering a page failed");
            fallback()
        }
    }
}

impl Ctx {
    /// The browser's language among the pages' (`None`: the default).
    fn locale(&self) -> Option<String> {
        self.site
            .pages
            .pick_locale(self.headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
    }

    /// Page `name` rendered in the browser's language (the fallback page
    /// when the template fails).
    fn page(&self, status: StatusCode, name: &str, title: &str, context: minijinja::Value) -> Response {
        html_or_fallback(
            status,
            name,
            self.render(self.locale().as_deref(), name, title, context),
        )
    }

    /// The "try again in a moment" page of a shed request (503): the same
    /// for every request in a language, so it is rendered once per
    /// language and then copied (a flood of refused requests renders
    /// nothing).
    fn busy_page(&self) -> Response {
        let locale = self.locale();
        let cached = self
            .site
            .busy_pages
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(l, _)| *l == locale)
            .map(|(_, page)| page.clone());
        let rendered = match cached {
            Some(page) => Ok(page),
            None => {
                let (title, message) = TRY_AGAIN;
                let context = minijinja::context! { message => message };
                self.render(locale.as_deref(), "error.html", title, context)
                    .map(|html| {
                        let page = Bytes::from(html);
                        let mut pages = self
                            .site
                            .busy_pages
                            .write()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if !pages.iter().any(|(l, _)| *l == locale) {
                            pages.push((locale, page.clone()));
                        }
                        page
                    })
            }
        };
        html_or_fallback(StatusCode::SERVICE_UNAVAILABLE, "error.html", rendered)
    }

    /// Template `name` with the layout's values, in `locale`.
    fn render(
        &self,
        locale: Option<&str>,
        name: &str,
        title: &str,
        context: minijinja::Value,
    ) -> Result<String, String> {
        let shared = &self.site;
        let nav: Vec<minijinja::Value> = shared
            .nav
            .iter()
            .map(|l| minijinja::context! { label => l.label, href => l.href })
            .collect();
        let context = minijinja::context! {
            title => title,
            // Checked at build: `/`, letters, digits, `-`, `_` only.
            mount => minijinja::Value::from_safe_string(shared.mount.clone()),
            site_name => shared.site_name,
            nav => nav,
            ..context
        };
        shared.pages.render(name, locale, context)
    }
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// The one value of field `label`, else a 400 naming it.
fn single<'f>(form: &'f Form, label: &str) -> Result<&'f str, PageError> {
    form.single(label)
        .map_err(|_| PageError::refused(StatusCode::BAD_REQUEST, format!("Send exactly one {label}")))
}

/// Parses a URL-encoded body (415 otherwise).
pub(crate) fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Form, PageError> {
    Form::parse(headers, body)
        .map_err(|e| PageError::refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()))
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

async fn forgot_form(ctx: Ctx) -> Response {
    let csrf = ctx.site.csrf.token(&ctx.headers);
    let response = ctx.page(
        StatusCode::OK,
        "forgot.html",
        "Forgot your password?",
        minijinja::context! { csrf_token => csrf.value, identifier => "" },
    );
    with_cookie(response, csrf.set_cookie)
}

async fn forgot_submit(ctx: Ctx, connect: Option<Extension<ConnectInfo<SocketAddr>>>, body: Bytes) -> Answer {
    let form = parse_form(&ctx.headers, &body)?;
    let submitted = form.get("csrf_token");
    if !ctx.site.csrf.verify(&ctx.headers, submitted) {
        return Err(PageError::csrf());
    }
    let identifier = single(&form, "identifier")?;
    // The client address is the TCP peer (a header could be forged to dodge
    // the per-client limit). Behind a proxy, put a layer in front that
    // rewrites ConnectInfo from a header only the proxy sets. Without it,
    // there is no client address: one shared "unknown" bucket would let a
    // few requests throttle the whole site, silently.
    let request = match connect {
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
    match ctx.site.service.request(identifier, &request).await {
        Ok(_accepted) => Ok(ctx.see_other("/forgot/sent")),
        Err(RequestError::Invalid(reason)) => Ok(ctx.page(
            StatusCode::BAD_REQUEST,
            "forgot.html",
            "Forgot your password?",
            minijinja::context! {
                csrf_token => submitted.unwrap_or_default(),
                identifier => identifier,
                error => sentence(&reason.to_string()),
            },
        )),
        // The inbox is full: "try again" without an error log per request
        // (a flood answered 503 must not also flood the log).
        Err(RequestError::Unavailable(StoreError::Full { .. })) => {
            // Paced: see `ResetPagesBuilder::shed_pace`.
            if !ctx.site.shed_pace.is_zero() {
                tokio::time::sleep(ctx.site.shed_pace).await;
            }
            Err(PageError::Busy)
        }
        Err(error) => Err(PageError::unavailable("password reset request", &error)),
    }
}

async fn forgot_sent(ctx: Ctx) -> Response {
    ctx.page(
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
fn open_sealed(ctx: &Ctx, sealed: &str) -> Option<SecretString> {
    ctx.site
        .seal
        .open(&browser_ids(&ctx.headers), sealed, std::time::SystemTime::now())
        .map(SecretString::from)
}

/// `GET`/`HEAD /reset?token=T`: inspects T (never spends it), seals it to
/// this browser in a cookie (no server state), 303 to the clean form URL.
async fn link(ctx: Ctx, RawQuery(query): RawQuery) -> Answer {
    let Some(token) = query_token(query.as_deref()) else {
        return Ok(ctx.see_other("/reset/invalid"));
    };
    match ctx.site.service.open_link(&token).await {
        Ok(_info) => {
            let (browser, cookie) = new_link_id(&ctx.site, &ctx.headers);
            let sealed = ctx.site.seal.seal(&browser, &token, std::time::SystemTime::now());
            let response = with_cookie(ctx.see_other("/reset/new"), cookie);
            Ok(with_cookie(response, opened_cookie(&ctx.site, Some(&sealed))))
        }
        Err(LinkError::InvalidLink) => Ok(ctx.see_other("/reset/invalid")),
        Err(error) => Err(PageError::unavailable("checking a reset link", &error)),
    }
}

fn reset_form(ctx: &Ctx, sealed: &str, username: &str, error: Option<String>) -> Response {
    ctx.page(
        StatusCode::OK,
        "reset_form.html",
        "Choose a new password",
        minijinja::context! {
            csrf_token => sealed,
            username => username,
            error => error,
            min_password_chars => ctx.site.min_password_chars,
        },
    )
}

async fn new_form(ctx: Ctx) -> Answer {
    // The most recently opened link (the cookie holds one).
    let opened = cookie_values(&ctx.headers, OPENED_COOKIE)
        .find_map(|sealed| Some((sealed.to_owned(), open_sealed(&ctx, sealed)?)));
    let Some((sealed, token)) = opened else {
        return Ok(ctx.see_other("/reset/invalid"));
    };
    // Still valid? (Another tab may have used it, or a newer request revoked it.)
    match ctx.site.service.inspect(token.expose_secret()).await {
        Ok(info) => Ok(reset_form(&ctx, &sealed, &info.username, None)),
        Err(LinkError::InvalidLink) => Ok(with_cookie(
            ctx.see_other("/reset/invalid"),
            opened_cookie(&ctx.site, None),
        )),
        Err(error) => Err(PageError::unavailable("checking a reset link", &error)),
    }
}

async fn new_submit(ctx: Ctx, body: Bytes) -> Answer {
    let form = parse_form(&ctx.headers, &body)?;
    // The form's own token, sealed to this browser: the page's CSRF token.
    let opened = form
        .get("csrf_token")
        .and_then(|sealed| Some((sealed.to_owned(), open_sealed(&ctx, sealed)?)));
    let Some((sealed, token)) = opened else {
        return Err(PageError::csrf());
    };
    let password = SecretString::from(single(&form, "password")?);
    let confirm = SecretString::from(single(&form, "confirm")?);
    let retry = async |message: String| match ctx.site.service.inspect(token.expose_secret()).await {
        Ok(info) => Ok(reset_form(&ctx, &sealed, &info.username, Some(message))),
        Err(LinkError::InvalidLink) => Ok(ctx.see_other("/reset/invalid")),
        Err(error) => Err(PageError::unavailable("checking a reset link", &error)),
    };
    // Run to the end even if the client goes away or the request times out:
    // a reset cut short after the password write would skip revoking the
    // account's sessions and links and the "password changed" notice.
    let service = ctx.site.service.clone();
    let spent = token.clone();
    let completed =
        tokio::spawn(async move { service.complete(spent.expose_secret(), password, confirm).await })
            .await
            .unwrap_or_else(|join| Err(CompleteError::Internal(format!("reset task failed: {join}"))));
    match completed {
        Ok(_completed) => Ok(with_cookie(
            ctx.see_other("/reset/done"),
            opened_cookie(&ctx.site, None),
        )),
        Err(CompleteError::InvalidLink) => Ok(with_cookie(
            ctx.see_other("/reset/invalid"),
            opened_cookie(&ctx.site, None),
        )),
        Err(CompleteError::ConfirmationMismatch) => retry("The two passwords do not match.".into()).await,
        Err(CompleteError::PasswordRejected(why)) => retry(format!("Choose another password: {why}.")).await,
        Err(error @ CompleteError::Unavailable(_)) => {
            Err(PageError::unavailable("completing a reset", &error))
        }
        Err(error) => {
            tracing::error!(%error, "completing a reset failed");
            Err(PageError::Failed {
                message: "Your password was not changed; please try again.".into(),
            })
        }
    }
}

async fn done(ctx: Ctx) -> Response {
    ctx.page(
        StatusCode::OK,
        "reset_done.html",
        "Password changed",
        minijinja::context! {
            sign_in_url => ctx.site.sign_in_url,
            signed_out_everywhere => ctx.site.service.revokes_sessions(),
        },
    )
}

async fn invalid(ctx: Ctx) -> Response {
    ctx.page(
        StatusCode::OK,
        "reset_invalid.html",
        "Link invalid or expired",
        minijinja::context! { invalid_message => resetkit::flow::INVALID_LINK_MESSAGE },
    )
}

// ---- "this wasn't me" ----

/// `GET /reset/deny?token=T`: a confirmation form and nothing else (mail
/// scanners fetch links). Nothing is stored: the form's `csrf_token` carries
/// the deny token sealed to the browser's CSRF cookie, so only this
/// browser's POST of this form can use it, and a second deny link opened
/// later cannot change what this form submits.
async fn deny_form(ctx: Ctx, RawQuery(query): RawQuery) -> Response {
    match query_token(query.as_deref()) {
        Some(token) if RawToken::parse(&token).is_ok() => {
            let csrf = ctx.site.csrf.token(&ctx.headers);
            let field = ctx.site.csrf.seal(&csrf, &token);
            let page = ctx.page(
                StatusCode::OK,
                "deny_form.html",
                "Didn't ask for a reset?",
                minijinja::context! { csrf_token => field },
            );
            with_cookie(page, csrf.set_cookie)
        }
        _ => ctx.see_other("/reset/invalid"),
    }
}

async fn deny_submit(ctx: Ctx, body: Bytes) -> Answer {
    let form = parse_form(&ctx.headers, &body)?;
    let Some(token) = ctx.site.csrf.open(&ctx.headers, form.get("csrf_token")) else {
        return Err(PageError::csrf());
    };
    // Like `complete`, run to the end whatever happens to the request.
    let service = ctx.site.service.clone();
    let denied = tokio::spawn(async move { service.deny(&token).await })
        .await
        .map_err(|join| {
            tracing::error!(error = %join, "cancelling reset links failed");
            PageError::Failed {
                message: "Your links were not cancelled; please try again.".into(),
            }
        })?;
    match denied {
        Ok(()) => Ok(ctx.see_other("/reset/deny/done")),
        Err(LinkError::InvalidLink) => Ok(ctx.see_other("/reset/invalid")),
        Err(error) => Err(PageError::unavailable("cancelling reset links", &error)),
    }
}

async fn deny_done(ctx: Ctx) -> Response {
    ctx.page(
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

async fn security_form(State(shared): State<Arc<Shared>>, request: axum::extract::Request) -> Response {
    let (parts, _body) = request.into_parts();
    let user = signed_in(&shared, &parts).await;
    let ctx = Ctx {
        site: shared,
        headers: parts.headers,
        viewer: (),
    };
    let csrf = ctx.site.csrf.token(&ctx.headers);
    let response = ctx.page(
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

async fn security_submit(State(shared): State<Arc<Shared>>, parts: Parts, body: Bytes) -> Answer {
    let form = parse_form(&parts.headers, &body)?;
    if !shared.csrf.verify(&parts.headers, form.get("csrf_token")) {
        return Err(PageError::csrf());
    }
    let to_form = format!("{}/account/security", shared.mount);
    let (Some(user), Some(hook)) = (signed_in(&shared, &parts).await, shared.host_sessions.as_ref()) else {
        return Ok(see_other_to(&to_form));
    };
    let (task_hook, account) = (hook.clone(), user.account.clone());
    let signed_out = tokio::spawn(async move { task_hook.revoke_sessions(&account).await })
        .await
        .unwrap_or_else(|join| Err(format!("sign-out task failed: {join}")));
    match signed_out {
        Ok(()) => {
            tracing::info!(account = %user.account, "signed out everywhere on request");
            match HeaderValue::from_str(&shared.after_sign_out) {
                Ok(_) => Ok(see_other_to(&shared.after_sign_out)),
                Err(_) => Ok(see_other_to(&to_form)),
            }
        }
        Err(error) => Err(PageError::unavailable("signing out everywhere", &error)),
    }
}
