//! # resetkit-axum
//!
//! The web layer of [`resetkit`] for axum: a router with every page the
//! reset emails link to, hardened, on overridable templates.
//!
//! | path (under the mount path) | methods | page |
//! | --- | --- | --- |
//! | `/forgot` | GET, POST | ask for a link (`identifier`) → 303 `/forgot/sent` |
//! | `/forgot/sent` | GET | "Check your email" |
//! | `/reset?token=T` | GET, HEAD | the emailed link: only *inspects* T, keeps it server-side, 303 → `/reset/new` (clean URL) |
//! | `/reset/new` | GET, POST | choose a new password (`password`, `confirm`) → 303 `/reset/done` |
//! | `/reset/done`, `/reset/invalid` | GET | outcomes |
//! | `/reset/deny?token=T` | GET | "this wasn't me": a confirmation form; its POST revokes the links → 303 `/reset/deny/done` |
//! | `/account/security` | GET, POST | the password-changed notice's page (sign out everywhere through [`HostSessions`]) |
//!
//! These are the paths the core's links use by default, so mounting the
//! router at the root needs no link settings; under a prefix, set
//! [`ResetPagesBuilder::mount_path`] and call [`link_paths`] on the service
//! builder with the same prefix.
//!
//! ## One mount convention
//!
//! The pages and the operator console ([`admin`]) are mounted the same way:
//! the builder's `mount_path` says where (pages: `""`, the root, by default;
//! console: `/admin`), `router()` serves every path under it, and the host
//! `merge`s the routers into its own (never `nest`: the prefix is already
//! in the routes, and in every redirect, form action and cookie path).
//!
//! ## One way to build a page
//!
//! Every page, the console's included, is a minijinja template with HTML
//! auto-escaping ([`templates`]); a handler takes the request's context as
//! an extractor and returns `Result<Response, PageError>`, the error
//! rendered by the site's error template (status, title and message as
//! before), so refusals (CSRF, a repeated field, a wrong body type) and
//! failures (503 with `Retry-After`) look the same everywhere.
//!
//! ```no_run
//! # async fn demo(service: resetkit::ResetService) -> Result<(), Box<dyn std::error::Error>> {
//! use resetkit_axum::{ResetPages, ServeOptions};
//!
//! let pages = ResetPages::builder(service).site_name("Example").build()?;
//! let app = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "home" }))
//!     .merge(pages.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! resetkit_axum::serve(listener, app, ServeOptions::default(), std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! ## Hardening
//!
//! - **CSRF on every POST.** Forms shown to anonymous visitors (forgot,
//!   security page) use a signed double-submit cookie ([`StatelessCsrf`]):
//!   no server state. The new-password form carries its own reset token
//!   sealed (ChaCha20-Poly1305) to the browser's link cookie ([`opened`]);
//!   the "this wasn't me" confirmation carries its deny token sealed (HMAC)
//!   to the browser's CSRF cookie. No page stores anything on the server,
//!   so any instance of a fleet sharing the deployment's keys
//!   ([`ResetPagesBuilder::secrets`]) serves any request: no sticky sessions.
//! - **The link's GET never spends the token** and moves it out of the URL;
//!   the form that shows a token is the only thing that can spend it, so a
//!   second link opened in the same browser cannot redirect an open form.
//! - Every response: `Cache-Control: no-store`, `Referrer-Policy: no-referrer`,
//!   `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` and a CSP
//!   ([`security_headers`], also usable on the host's own routes).
//! - Only `application/x-www-form-urlencoded` bodies, at most
//!   [`ResetPagesBuilder::body_limit`] bytes; a repeated or list-valued field
//!   (`identifier=a&identifier=b`, `identifier[]=a`) is refused.
//! - A per-request timeout ([`ResetPagesBuilder::request_timeout`]); [`serve`]
//!   adds the header-read timeout hyper needs to close idle and
//!   header-trickling connections (`axum::serve` sets none).
//! - The rate-limit client address is the TCP peer (`ConnectInfo`), never a header.
//!
//! ## Debug builds
//!
//! argon2 unoptimised takes ~0.65 s per hash; in the application's
//! `Cargo.toml`:
//!
//! ```toml
//! [profile.dev.package.argon2]
//! opt-level = 3
//! [profile.dev.package.blake2]
//! opt-level = 3
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
mod csrf;
pub mod form;
mod headers;
mod hook;
pub mod metrics;
pub mod opened;
mod page;
mod routes;
mod serve;
pub mod templates;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use resetkit::ResetService;

pub use admin::{AdminConsole, AdminGuard, guard_fn};
pub use csrf::{CSRF_COOKIE, CsrfToken, StatelessCsrf};
pub use headers::security_headers;
pub use hook::{HostSessions, SignedIn};
pub use metrics::metrics_router;
pub use opened::{LinkSeal, OPENED_COOKIE};
pub use serve::{ServeOptions, serve};

/// Name of the cookie that identifies a browser which opened a link.
pub const LINK_COOKIE: &str = "resetkit_link";

/// The text of every CSRF refusal (403).
pub const CSRF_REFUSED: &str = "Invalid or missing CSRF token";

/// `ResetPages` refused its settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A template does not compile or render.
    #[error("template `{name}`: {reason}")]
    Template {
        /// The template's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A mount path (or the metrics path) is not `/segment...` (or `""`
    /// for the pages: the root), each segment ASCII letters, digits, `-`
    /// and `_`, without a trailing slash.
    #[error(
        "mount path {0:?} must be `/segment` or `/segment/segment...` (the pages also accept \"\" \
         for the root): each segment ASCII letters, digits, `-` or `_`, no trailing slash"
    )]
    MountPath(String),
    /// The service's links point somewhere the router does not serve.
    #[error(
        "the reset emails link to `{link}` but the pages serve `{served}`: call \
         `resetkit_axum::link_paths(builder, {mount:?})` on the ResetService builder, \
         or mount the router where the links point"
    )]
    LinkPath {
        /// The path of the service's reset links.
        link: String,
        /// The path the router serves the link on.
        served: String,
        /// The configured mount path.
        mount: String,
    },
}

/// Sets the core's link paths (`reset_path`, `deny_path`, `security_path`)
/// for pages mounted under `mount` (e.g. `"/password"`).
pub fn link_paths(builder: resetkit::ResetServiceBuilder, mount: &str) -> resetkit::ResetServiceBuilder {
    builder
        .reset_path(format!("{mount}/reset"))
        .deny_path(format!("{mount}/reset/deny"))
        .security_path(format!("{mount}/account/security"))
}

/// A link in the pages' navigation bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NavLink {
    /// Text.
    pub label: String,
    /// Target.
    pub href: String,
}

/// Everything the pages share.
pub(crate) struct Shared {
    pub(crate) service: ResetService,
    pub(crate) pages: templates::Pages,
    pub(crate) csrf: StatelessCsrf,
    pub(crate) seal: LinkSeal,
    pub(crate) host_sessions: Option<Arc<dyn HostSessions>>,
    pub(crate) mount: String,
    pub(crate) site_name: String,
    pub(crate) nav: Vec<NavLink>,
    pub(crate) sign_in_url: Option<String>,
    pub(crate) after_sign_out: String,
    pub(crate) secure_cookies: bool,
    pub(crate) min_password_chars: usize,
    pub(crate) body_limit: usize,
    pub(crate) request_timeout: Duration,
    /// How long a shed request's answer waits before it is sent.
    pub(crate) shed_pace: Duration,
    /// The shed request's page, per language (rendered at the first shed).
    pub(crate) busy_pages: std::sync::RwLock<Vec<(Option<String>, axum::body::Bytes)>>,
}

/// How long a shed request's 503 waits by default
/// ([`ResetPagesBuilder::shed_pace`]).
pub const DEFAULT_SHED_PACE: Duration = Duration::from_millis(50);

/// The reset pages, ready to mount ([`router`](Self::router)).
#[derive(Clone)]
pub struct ResetPages {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for ResetPages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResetPages")
            .field("mount", &self.shared.mount)
            .field("seal", &self.shared.seal)
            .finish_non_exhaustive()
    }
}

impl ResetPages {
    /// Starts a builder around the service.
    pub fn builder(service: ResetService) -> ResetPagesBuilder {
        ResetPagesBuilder {
            service,
            overrides: Vec::new(),
            csrf_key: None,
            secrets: None,
            host_sessions: None,
            mount: String::new(),
            site_name: String::new(),
            nav: Vec::new(),
            sign_in_url: None,
            after_sign_out: None,
            secure_cookies: true,
            min_password_chars: 15,
            opened_link_ttl: LinkSeal::DEFAULT_TTL,
            body_limit: 16 * 1024,
            request_timeout: Duration::from_secs(30),
            shed_pace: DEFAULT_SHED_PACE,
        }
    }

    /// The routes under the mount path (with their state and layers):
    /// `merge` them into the host's router.
    pub fn router(&self) -> axum::Router {
        routes::router(self.shared.clone())
    }

    /// The CSRF scheme of the anonymous forms, for the host's own forms
    /// (a sign-in page).
    pub fn csrf(&self) -> &StatelessCsrf {
        &self.shared.csrf
    }

    /// The service behind the pages.
    pub fn service(&self) -> &ResetService {
        &self.shared.service
    }
}

/// Builds [`ResetPages`].
pub struct ResetPagesBuilder {
    service: ResetService,
    overrides: Vec<(String, String)>,
    csrf_key: Option<[u8; 32]>,
    secrets: Option<resetkit::secrets::KeyRing>,
    host_sessions: Option<Arc<dyn HostSessions>>,
    mount: String,
    site_name: String,
    nav: Vec<NavLink>,
    sign_in_url: Option<String>,
    after_sign_out: Option<String>,
    secure_cookies: bool,
    min_password_chars: usize,
    opened_link_ttl: Duration,
    body_limit: usize,
    request_timeout: Duration,
    shed_pace: Duration,
}

impl fmt::Debug for ResetPagesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResetPagesBuilder")
            .field("mount", &self.mount)
            .field("secure_cookies", &self.secure_cookies)
            .finish_non_exhaustive()
    }
}

impl ResetPagesBuilder {
    /// Replaces a template, or adds one for a language (`"fr/forgot.html"`);
    /// see [`templates`].
    pub fn template(mut self, name: impl Into<String>, source: impl Into<String>) -> Self {
        self.overrides.push((name.into(), source.into()));
        self
    }

    /// The key signing the anonymous forms' CSRF cookie and sealing opened
    /// links. Default: random at start (forms shown before a restart then
    /// need a reload); give every instance of a site the same key, or
    /// better use [`secrets`](Self::secrets), which also rotates.
    pub fn csrf_key(mut self, key: [u8; 32]) -> Self {
        self.csrf_key = Some(key);
        self
    }

    /// The deployment's secrets ([`resetkit::secrets`]): the pages key
    /// signs the CSRF cookies and seals the forms and opened links; its
    /// previous key (a rotation in progress) is still accepted. Every
    /// instance of a site must be given the same secrets. Takes precedence
    /// over [`csrf_key`](Self::csrf_key).
    pub fn secrets(mut self, secrets: &resetkit::secrets::DeploymentSecrets) -> Self {
        self.secrets = Some(secrets.pages_key().clone());
        self
    }

    /// The host's sessions, for the security page's "sign out everywhere"
    /// (which calls their [`SessionRevoker`](resetkit::SessionRevoker):
    /// give the same value to the service builder's `session_revoker`).
    pub fn host_sessions(mut self, sessions: Arc<dyn HostSessions>) -> Self {
        self.host_sessions = Some(sessions);
        self
    }

    /// Where the pages are served (`""`, the root, by default, or
    /// `"/password"`): [`ResetPages::router`] serves its paths under it, and
    /// redirects, form actions and cookie paths use it. `/segment...`, each
    /// segment ASCII letters, digits, `-` and `_`, no trailing slash.
    pub fn mount_path(mut self, path: impl Into<String>) -> Self {
        self.mount = path.into();
        self
    }

    /// The site's name, in page titles.
    pub fn site_name(mut self, name: impl Into<String>) -> Self {
        self.site_name = name.into();
        self
    }

    /// Adds a link to the pages' navigation bar.
    pub fn nav_link(mut self, label: impl Into<String>, href: impl Into<String>) -> Self {
        self.nav.push(NavLink {
            label: label.into(),
            href: href.into(),
        });
        self
    }

    /// The host's sign-in page, linked from "password changed".
    pub fn sign_in_url(mut self, url: impl Into<String>) -> Self {
        self.sign_in_url = Some(url.into());
        self
    }

    /// Where "sign out everywhere" lands (default: the sign-in page, else
    /// the security page).
    pub fn after_sign_out(mut self, url: impl Into<String>) -> Self {
        self.after_sign_out = Some(url.into());
        self
    }

    /// `Secure` cookies (default `true`; turn off only for http:// on loopback).
    pub fn secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    /// The minimum length the reset form's hint names (keep it equal to the
    /// service's password policy; default 15).
    pub fn min_password_chars(mut self, chars: usize) -> Self {
        self.min_password_chars = chars;
        self
    }

    /// How long an opened link stays usable from its form (default 15
    /// minutes; the token's own lifetime still applies).
    pub fn opened_link_ttl(mut self, ttl: Duration) -> Self {
        self.opened_link_ttl = ttl;
        self
    }

    /// Largest accepted form body in bytes (default 16 KiB; 413 beyond).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Longest a request may take before it is answered 408 (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long the answer to a request refused because the service is too
    /// busy ("try again in a moment", 503) waits before it is sent (default
    /// [`DEFAULT_SHED_PACE`]; `Duration::ZERO` answers at once). The wait
    /// costs no work, and a client that asks again as soon as it is
    /// refused (a script, a load tool) then asks at most 1/pace times a
    /// second per connection instead of as fast as the 503s come back,
    /// which would take the machine from the mail going out.
    pub fn shed_pace(mut self, pace: Duration) -> Self {
        self.shed_pace = pace;
        self
    }

    /// Compiles the templates and checks the settings.
    pub fn build(self) -> Result<ResetPages, BuildError> {
        let mount = self.mount;
        page::check_mount_path(&mount, true)?;
        let served = format!("{mount}/reset");
        let link = self.service.reset_link_target().path().to_owned();
        if link != served {
            return Err(BuildError::LinkPath { link, served, mount });
        }
        let pages = templates::Pages::compile(&self.overrides)?;
        let (csrf, ring) = match (self.secrets, self.csrf_key) {
            (Some(ring), _) => (StatelessCsrf::from_ring(&ring, self.secure_cookies), ring),
            (None, Some(key)) => (
                StatelessCsrf::new(key, self.secure_cookies),
                resetkit::secrets::KeyRing::new(key.to_vec(), None),
            ),
            (None, None) => {
                let ring = resetkit::secrets::KeyRing::random();
                (StatelessCsrf::from_ring(&ring, self.secure_cookies), ring)
            }
        };
        let after_sign_out = self
            .after_sign_out
            .or_else(|| self.sign_in_url.clone())
            .unwrap_or_else(|| format!("{mount}/account/security"));
        Ok(ResetPages {
            shared: Arc::new(Shared {
                service: self.service,
                pages,
                csrf,
                seal: LinkSeal::new(&ring).with_ttl(self.opened_link_ttl),
                host_sessions: self.host_sessions,
                mount,
                site_name: self.site_name,
                nav: self.nav,
                sign_in_url: self.sign_in_url,
                after_sign_out,
                secure_cookies: self.secure_cookies,
                min_password_chars: self.min_password_chars,
                body_limit: self.body_limit,
                request_timeout: self.request_timeout,
                shed_pace: self.shed_pace,
                busy_pages: std::sync::RwLock::new(Vec::new()),
            }),
        })
    }
}
