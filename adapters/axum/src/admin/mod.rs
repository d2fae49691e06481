//! The operator console: "was the email generated and sent?", the delivery
//! queue, a sender check and the email templates, as server-rendered pages
//! the host mounts behind **its own** authorisation.
//!
//! | path (under the mount path, default `/admin`) | methods | page |
//! | --- | --- | --- |
//! | `/` | GET | with [`AdminConsoleBuilder::overview`]: the overview (counts of the last hour and day, queue, senders' last results, hourly chart, a banner when a sender is refused); else the search |
//! | `/?q=`, `/search` | GET | find accounts by email (every account sharing it) or username |
//! | `/account?id=ID[&before=N]` | GET | one account's reset timeline, newest first, paged |
//! | `/account/reissue` | POST | send the account a fresh link |
//! | `/queue?state=waiting\|failed\|dropped` | GET | the outbox, with last reply and next attempt |
//! | `/queue/retry` | POST | a failed email: issue a fresh link in its place |
//! | `/senders`, `/senders/check` | GET, POST | every sender of the chain, probed (no mail delivered) |
//! | `/templates`, `/templates/edit?locale=&kind=` | GET | each email rendered for a sample account, with the link lint's verdict |
//! | `/templates/save`, `/templates/restore` | POST | with a [`TemplateStore`]: save (after the lint) or restore a version |
//!
//! The crate never decides who is an operator: every request, GET included,
//! first goes through the host's [`AdminGuard`], which names the operator or
//! answers (403, a redirect to its sign-in page ...). Every POST also needs
//! a CSRF token bound to the browser's signed cookie *and* to the operator
//! the guard named. Pages carry the public pages' headers (`no-store`,
//! `no-referrer`, CSP, no framing). No page shows a token, a link with a
//! token, a password or a password hash: the timeline is built from events,
//! which never hold them, and template previews use a placeholder token.
//!
//! ```no_run
//! # fn demo(pages: resetkit_axum::ResetPages, stores: resetkit::flow::ConsoleStores) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use resetkit_axum::admin::{AdminConsole, guard_fn};
//!
//! // The host's rule: here, a header its own auth proxy sets.
//! let guard = guard_fn(|parts| {
//!     parts.headers.get("x-operator").and_then(|v| v.to_str().ok()).map(str::to_owned)
//! });
//! let console = AdminConsole::builder(&pages, Arc::new(guard), stores).build()?;
//! let app = axum::Router::new().merge(pages.router()).merge(console.router());
//! # let _ = app; Ok(()) }
//! ```
//!
//! Saved templates are used for the next email at once by this instance
//! ([`ResetService::replace_templates`](resetkit::ResetService::replace_templates));
//! other instances call
//! [`ResetService::reload_templates_from`](resetkit::ResetService::reload_templates_from)
//! at start and periodically.

mod overview;
mod timeline;
mod views;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get, post};
use minijinja::Environment;
use resetkit::ResetService;
use resetkit::activity::{ActivityLog, QueueAge};
use resetkit::flow::{ConsoleStores, OperatorView};
use resetkit::mail::SenderProbe;
use resetkit::metrics::ResetMetrics;
use resetkit::template::TemplateStore;
use tower_http::timeout::TimeoutLayer;

use crate::csrf::StatelessCsrf;
use crate::page::render_errors;
use crate::{BuildError, ResetPages};

/// Decides, from the request alone, whether it comes from an operator.
/// The host implements it with its own sessions and roles.
#[async_trait]
pub trait AdminGuard: Send + Sync {
    /// `Ok(operator name)` lets the request through (the name is shown on
    /// the pages and recorded with the operator's actions); `Err(response)`
    /// is sent as is (e.g. 403, or a redirect to the host's sign-in page).
    async fn authorize(&self, request: &Parts) -> Result<String, Response>;
}

/// An [`AdminGuard`] from a closure: `Some(name)` admits, `None` is a 403.
pub fn guard_fn<F>(f: F) -> impl AdminGuard
where
    F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
{
    FnGuard(f)
}

struct FnGuard<F>(F);

#[async_trait]
impl<F> AdminGuard for FnGuard<F>
where
    F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
{
    async fn authorize(&self, request: &Parts) -> Result<String, Response> {
        (self.0)(request).ok_or_else(|| {
            (
                StatusCode::FORBIDDEN,
                Html("<!doctype html><title>Forbidden</title><p>Operators only.</p>"),
            )
                .into_response()
        })
    }
}

/// The operator the guard admitted (a request extension).
#[derive(Debug, Clone)]
pub(crate) struct Operator(pub(crate) String);

/// Everything the console's pages share.
pub(crate) struct Console {
    pub(crate) service: ResetService,
    /// The operator's view of the service (timeline, queue, rate limits).
    pub(crate) operator: OperatorView,
    pub(crate) guard: Arc<dyn AdminGuard>,
    pub(crate) csrf: StatelessCsrf,
    pub(crate) probe: Option<Arc<dyn SenderProbe>>,
    pub(crate) template_store: Option<Arc<dyn TemplateStore>>,
    pub(crate) mount: String,
    pub(crate) site_name: String,
    pub(crate) page_size: usize,
    pub(crate) env: Environment<'static>,
    pub(crate) overview: Option<OverviewSources>,
}

/// Where the overview reads (see [`AdminConsoleBuilder::overview`]).
#[derive(Clone)]
pub(crate) struct OverviewSources {
    pub(crate) activity: Arc<dyn ActivityLog>,
    pub(crate) queue: Option<Arc<dyn QueueAge>>,
}

/// The operator console, ready to mount with [`router`](Self::router).
#[derive(Clone)]
pub struct AdminConsole {
    console: Arc<Console>,
    body_limit: usize,
    request_timeout: Duration,
}

impl fmt::Debug for AdminConsole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConsole")
            .field("mount", &self.console.mount)
            .field("probe", &self.console.probe.is_some())
            .field("template_store", &self.console.template_store.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds an [`AdminConsole`].
pub struct AdminConsoleBuilder {
    service: ResetService,
    stores: ConsoleStores,
    guard: Arc<dyn AdminGuard>,
    csrf: StatelessCsrf,
    probe: Option<Arc<dyn SenderProbe>>,
    template_store: Option<Arc<dyn TemplateStore>>,
    mount: String,
    site_name: String,
    page_size: usize,
    body_limit: usize,
    request_timeout: Duration,
    overview: Option<OverviewSources>,
}

impl fmt::Debug for AdminConsoleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConsoleBuilder")
            .field("mount", &self.mount)
            .finish_non_exhaustive()
    }
}

impl AdminConsole {
    /// A console over the pages' service, sharing their CSRF key and
    /// cookie settings; `guard` admits operators; `stores` are what the
    /// console reads beyond the flow (timeline, rate limits, the outbox's
    /// listing: e.g. `PgStores::console_stores()`), so a store without those
    /// capabilities cannot back a console.
    pub fn builder(
        pages: &ResetPages,
        guard: Arc<dyn AdminGuard>,
        stores: ConsoleStores,
    ) -> AdminConsoleBuilder {
        let shared = &pages.shared;
        AdminConsoleBuilder {
            service: shared.service.clone(),
            stores,
            guard,
            csrf: shared.csrf.clone(),
            probe: None,
            template_store: None,
            mount: "/admin".into(),
            site_name: shared.site_name.clone(),
            page_size: 50,
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(60),
            overview: None,
        }
    }

    /// The console's routes under its mount path: every one behind the
    /// host's guard, every POST behind CSRF, all with the public pages'
    /// headers. `merge` them into the host's router, like
    /// [`ResetPages::router`].
    pub fn router(&self) -> Router {
        let state = self.console.clone();
        let m = state.mount.clone();
        Router::new()
            .route(&m, get(views::search))
            .route(&format!("{m}/"), get(views::search))
            .route(&format!("{m}/search"), get(views::search_only))
            .route(&format!("{m}/account"), get(views::account))
            .route(&format!("{m}/account/reissue"), post(views::reissue))
            .route(&format!("{m}/account/clear-limit"), post(views::clear_limit))
            .route(&format!("{m}/queue"), get(views::queue))
            .route(&format!("{m}/queue/retry"), post(views::retry))
            .route(&format!("{m}/senders"), get(views::senders))
            .route(&format!("{m}/senders/check"), post(views::senders_check))
            .route(&format!("{m}/templates"), get(views::templates))
            .route(&format!("{m}/templates/edit"), get(views::template_edit))
            .route(&format!("{m}/templates/save"), post(views::template_save))
            .route(&format!("{m}/templates/restore"), post(views::template_restore))
            // Unknown paths under the mount path are the console's 404, after
            // the guard (no fallback: the host's router keeps its own).
            .route(&format!("{m}/{{*rest}}"), any(views::not_found))
            .layer(middleware::from_fn_with_state(
                state.clone(),
                render_errors::<Console>,
            ))
            .layer(middleware::from_fn_with_state(state.clone(), guard))
            .layer(DefaultBodyLimit::max(self.body_limit))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                self.request_timeout,
            ))
            .layer(middleware::from_fn(crate::headers::security_headers))
            .with_state(state)
    }

    /// `metrics` as Prometheus text at `path` (outside the mount path,
    /// e.g. `/metrics`), behind this console's guard, with the queue
    /// gauges read from the overview's queue (if any) at each scrape.
    pub fn metrics_router(&self, metrics: ResetMetrics, path: &str) -> Result<Router, BuildError> {
        crate::metrics::check_path(path)?;
        let source = crate::metrics::MetricsSource {
            metrics,
            queue: self.console.overview.as_ref().and_then(|o| o.queue.clone()),
        };
        Ok(Router::new()
            .route(path, get(crate::metrics::scrape))
            .with_state(source)
            .layer(middleware::from_fn_with_state(self.console.clone(), guard)))
    }
}

impl AdminConsoleBuilder {
    /// Where the console is served (default `/admin`): [`AdminConsole::router`]
    /// serves its paths under it. `/segment...`, each segment ASCII letters,
    /// digits, `-` and `_`, no trailing slash (the pages' rule; the root is
    /// not allowed).
    pub fn mount_path(mut self, path: impl Into<String>) -> Self {
        self.mount = path.into();
        self
    }

    /// Runs the sender check (e.g. `resetkit_smtp::SmtpMailer`). Without
    /// one, the sender page lists the senders and says no probe is set.
    pub fn sender_probe(mut self, probe: Arc<dyn SenderProbe>) -> Self {
        self.probe = Some(probe);
        self
    }

    /// Lets operators edit the email templates, stored (with every version)
    /// in `store`. Without one, templates are preview-only.
    pub fn template_store(mut self, store: Arc<dyn TemplateStore>) -> Self {
        self.template_store = Some(store);
        self
    }

    /// Makes the overview the landing page: counts read from `activity`
    /// (per-minute rollups), the queue's depth and oldest message from
    /// `queue` (`None` with inline delivery). E.g. `PgStores`' `events` and
    /// `outbox`, or the in-memory ones.
    pub fn overview(mut self, activity: Arc<dyn ActivityLog>, queue: Option<Arc<dyn QueueAge>>) -> Self {
        self.overview = Some(OverviewSources { activity, queue });
        self
    }

    /// Events per timeline page (default 50, 1..=500).
    pub fn page_size(mut self, events: usize) -> Self {
        self.page_size = events;
        self
    }

    /// Largest accepted form body in bytes (default 64 KiB: templates).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Longest a request may take (default 60 s: a sender check talks to
    /// the mail server once per sender).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Checks the settings and compiles the pages.
    pub fn build(self) -> Result<AdminConsole, BuildError> {
        let mount = self.mount;
        crate::page::check_mount_path(&mount, false)?;
        if !(1..=500).contains(&self.page_size) {
            return Err(BuildError::Template {
                name: "admin page_size".into(),
                reason: format!("{} is outside 1..=500", self.page_size),
            });
        }
        let env = views::environment()?;
        Ok(AdminConsole {
            console: Arc::new(Console {
                operator: self.service.operator_view(self.stores),
                service: self.service,
                guard: self.guard,
                csrf: self.csrf,
                probe: self.probe,
                template_store: self.template_store,
                mount,
                site_name: self.site_name,
                page_size: self.page_size,
                env,
                overview: self.overview,
            }),
            body_limit: self.body_limit,
            request_timeout: self.request_timeout,
        })
    }
}

/// Runs the host's guard first; admitted requests carry the [`Operator`].
async fn guard(State(console): State<Arc<Console>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match console.guard.authorize(&parts).await {
        Ok(name) => {
            parts.extensions.insert(Operator(name));
            next.run(Request::from_parts(parts, body)).await
        }
        Err(refusal) => refusal,
    }
}
