//! [`Portal::start`] and the handle it returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use resetkit::ResetService;
use resetkit::delivery::WorkerThread;
use resetkit_axum::{ResetPages, ServeOptions};
use resetkit_harness::fake_smtp::FakeSmtpServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

use crate::backend::{self, Backend};
use crate::config::{PortalConfig, PortalError};
use crate::routes::{self, App};
use crate::session::{SessionSettings, SessionStore};

/// How long [`RunningPortal::shutdown`] waits for open connections and the
/// delivery worker before abandoning them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a connection may take to send a request head (also how long an
/// idle keep-alive connection stays open).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The portal.
#[derive(Debug, Clone, Copy)]
pub struct Portal;

impl Portal {
    /// Binds the listen address, prepares the stores, the mailer and the
    /// demo accounts, and serves until the returned handle is shut down or
    /// dropped. Must be called inside a multi-threaded tokio runtime.
    pub async fn start(config: PortalConfig) -> Result<RunningPortal, PortalError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| PortalError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| PortalError::Bind {
            addr: config.listen,
            source,
        })?;
        let (base_url, allow_http) = config.resolve_base_url(addr)?;
        config.check_exposure(addr, allow_http)?;
        let secrets = config.secrets_or_random()?;
        let sessions = Arc::new(SessionStore::new(SessionSettings {
            secure_cookie: base_url.scheme() == "https",
            ..SessionSettings::default()
        }));
        let backend = Backend::start(&config, &secrets, &base_url, allow_http, sessions.clone()).await?;
        if config.dev_mail && backend.capture.is_none() {
            tracing::warn!("--dev-mail has no effect with --smtp: mail goes to the SMTP server");
        }
        let capture = backend.capture.map(Arc::new);
        let inbox = match (&capture, config.dev_inbox) {
            (Some(server), Some(at)) if config.dev_mail => Some(dev_inbox(server.clone(), at).await?),
            (_, Some(_)) => {
                return Err(PortalError::Startup(
                    "--dev-inbox needs --dev-mail and the in-process capture server (not --smtp)".into(),
                ));
            }
            _ => None,
        };
        let pages = ResetPages::builder(backend.service.clone())
            .site_name("resetkit portal")
            .nav_link("Home", "/")
            .nav_link("Sign in", "/login")
            .nav_link("Forgot your password?", "/forgot")
            .sign_in_url("/login")
            .secrets(&secrets)
            .secure_cookies(base_url.scheme() == "https")
            .host_sessions(sessions.clone())
            .shed_pace(config.shed_pace)
            .build()
            .map_err(|e| PortalError::Startup(format!("the reset pages: {e}")))?;
        let app = Arc::new(App {
            service: backend.service.clone(),
            pages,
            accounts: backend.accounts,
            hasher: backend.hasher,
            decoy_hash: backend.decoy_hash,
            sessions,
            dev_mail: capture.clone().filter(|_| config.dev_mail),
            faults: std::sync::Mutex::new(Vec::new()),
            sign_in_limits: config.sign_in_limits,
        });
        let (stop, stopped) = watch::channel(false);
        let workers = backend::start_workers(&backend.service, backend.worker, &stopped)?;
        if let Some(changes) = backend.template_changes {
            tokio::spawn(backend::follow_templates(
                backend.service.clone(),
                changes,
                stopped.clone(),
            ));
        }
        let app_sessions = app.sessions.clone();
        let app_pages = app.pages.clone();
        let guard = crate::operators::OperatorGuard {
            sessions: app_sessions.clone(),
            operators: crate::seed::DEMO_OPERATORS
                .iter()
                .map(|o| (*o).to_owned())
                .collect(),
        };
        let console = resetkit_axum::AdminConsole::builder(&app_pages, Arc::new(guard), backend.console)
            .sender_probe(backend.probe)
            .template_store(backend.templates)
            .overview(backend.activity, Some(backend.queue))
            .build()
            .map_err(|e| PortalError::Startup(format!("the operator console: {e}")))?;
        // Prometheus text for operators (the console's guard: signed in as one).
        let metrics = console
            .metrics_router(backend.metrics, "/metrics")
            .map_err(|e| PortalError::Startup(format!("the metrics endpoint: {e}")))?;
        let router = routes::router(app).merge(metrics).merge(console.router());
        let mut serve_stop = stopped;
        let server = tokio::spawn(async move {
            let stop = async move {
                while serve_stop.changed().await.is_ok() {
                    if *serve_stop.borrow() {
                        break;
                    }
                }
            };
            let options = ServeOptions::default().with_header_read_timeout(HEADER_READ_TIMEOUT);
            let result = resetkit_axum::serve(listener, router, options, stop).await;
            if let Err(error) = result {
                tracing::error!(%error, "portal server stopped");
            }
        });
        Ok(RunningPortal {
            addr,
            base_url,
            mail_label: backend.mail_label,
            store_label: backend.store_label,
            service: backend.service,
            sessions: app_sessions,
            stop,
            server: Some(server),
            workers: Vec::from(workers),
            capture,
            inbox,
        })
    }
}

/// Serves the capture server's web inbox on `at` (loopback only).
async fn dev_inbox(
    server: Arc<FakeSmtpServer>,
    at: SocketAddr,
) -> Result<(SocketAddr, JoinHandle<()>), PortalError> {
    if !at.ip().is_loopback() {
        return Err(PortalError::Startup(format!(
            "--dev-inbox {at}: the captured mail carries live reset links; listen on a loopback address"
        )));
    }
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .map_err(|source| PortalError::Bind { addr: at, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| PortalError::Bind { addr: at, source })?;
    let task = tokio::spawn(async move {
        let access = resetkit_harness::inbox::InboxAccess::Loopback;
        let served = resetkit_harness::inbox::serve(listener, server, access, HEADER_READ_TIMEOUT);
        if let Err(error) = served.await {
            tracing::error!(%error, "dev inbox stopped");
        }
    });
    Ok((addr, task))
}

/// A running portal. Dropping it stops accepting connections and the
/// delivery worker (in the background); [`shutdown`](Self::shutdown) waits.
pub struct RunningPortal {
    addr: SocketAddr,
    base_url: Url,
    mail_label: String,
    store_label: &'static str,
    service: ResetService,
    sessions: Arc<SessionStore>,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    /// The request and delivery workers' threads.
    workers: Vec<WorkerThread>,
    capture: Option<Arc<FakeSmtpServer>>,
    /// The dev inbox's address and task (`--dev-inbox`).
    inbox: Option<(SocketAddr, JoinHandle<()>)>,
}

impl std::fmt::Debug for RunningPortal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningPortal")
            .field("addr", &self.addr)
            .field("base_url", &self.base_url.as_str())
            .field("mail", &self.mail_label)
            .field("store", &self.store_label)
            .finish_non_exhaustive()
    }
}

impl RunningPortal {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, where to send requests.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL links are built on.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The in-process capture SMTP server (capture mode; `None` with `--smtp`).
    pub fn mail(&self) -> Option<&FakeSmtpServer> {
        self.capture.as_deref()
    }

    /// What the portal holds server-side: (sign-in sessions, opened reset
    /// links). Anonymous requests grow neither; opened links are sealed into
    /// the browser's cookie and form (`resetkit_axum::opened`), so the
    /// second figure is always 0 (kept for the flood example's report).
    pub fn server_state(&self) -> (usize, usize) {
        (self.sessions.len(), 0)
    }

    /// The reset service behind the pages.
    pub fn service(&self) -> &ResetService {
        &self.service
    }

    /// Where the capture server's web inbox listens (`--dev-inbox`).
    pub fn dev_inbox_addr(&self) -> Option<SocketAddr> {
        self.inbox.as_ref().map(|(addr, _)| *addr)
    }

    /// The start-up line: `portal listening on http://ADDR (base URL ..., mail: ..., store: ...)`.
    pub fn banner(&self) -> String {
        let base = match self.base_url.path() {
            "/" => self.base_url.as_str().trim_end_matches('/'),
            _ => self.base_url.as_str(),
        };
        format!(
            "portal listening on http://{} (base URL {base}, mail: {}, store: {})",
            self.addr, self.mail_label, self.store_label
        )
    }

    /// Stops accepting connections, lets open requests and the current
    /// delivery pass finish (at most a few seconds), then returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some((_, inbox)) = self.inbox.take() {
            inbox.abort();
        }
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
                abort.abort();
            }
        }
        for worker in std::mem::take(&mut self.workers) {
            // Work still running after the grace period ends on its own
            // (a thread cannot be aborted).
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, worker.stopped()).await;
        }
    }
}

impl Drop for RunningPortal {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some((_, inbox)) = self.inbox.take() {
            inbox.abort();
        }
    }
}

/// Waits for Ctrl-C, or SIGTERM on Unix (what a service manager sends):
/// the binaries shut down gracefully on either.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
