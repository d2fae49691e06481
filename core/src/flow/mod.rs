//! The reset flow, by role:
//!
//! | role | where | what |
//! | --- | --- | --- |
//! | the user | `request.rs`, `complete.rs` | [`ResetService::request`], [`ResetService::open_link`] / [`ResetService::inspect`], [`ResetService::complete`], [`ResetService::deny`] |
//! | the workers | `process.rs`, `workers.rs` | processing a recorded request; [`RequestWorker`], [`ResetService::delivery_worker`], [`ResetService::purge_old`] ([`RetentionStores`]) |
//! | the operator | `operator.rs` | [`OperatorView`] (made by [`ResetService::operator_view`] from [`ConsoleStores`]): accounts, timeline, queue, rate limits, a fresh link; the templates |
//! | the host's sign-in | `sign_in.rs` | [`ResetService::check_password`], [`ResetService::rehash_password`], [`ResetService::admit_sign_in`] |
//! | the host's sessions | here | [`SessionRevoker`], the one session hook |
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use resetkit::prelude::*;
//! use secrecy::SecretString;
//!
//! let accounts = InMemoryAccounts::default();
//! accounts.insert(Account::new("1", "alice", "alice@example.com"));
//! let mailer = CapturingMailer::default();
//! let service = ResetService::builder()
//!     .base_url("https://app.example.com")
//!     .accounts(Arc::new(accounts))
//!     .tokens(Arc::new(InMemoryTokenStore::default()))
//!     .events(Arc::new(InMemoryEventLog::default()))
//!     .mailer(Arc::new(mailer.clone()))
//!     .sender(Arc::new(FixedSender::new(Mailbox::address_only("noreply@example.com").unwrap())))
//!     .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
//!     .build()
//!     .unwrap();
//!
//! let outcome = service.request("Alice@Example.com", &RequestContext::default()).await.unwrap();
//! assert_eq!(outcome, RequestAccepted);
//! // By default the request is processed off the request path (the answer
//! // takes as long for unknown identifiers): the mail follows shortly.
//! while mailer.sent().is_empty() {
//!     tokio::task::yield_now().await;
//! }
//! let mail = &mailer.sent()[0];
//! let link = mail.expose_text().lines().find(|l| l.starts_with("https://app.example.com/reset?")).unwrap();
//! let token = link.split("token=").nth(1).unwrap();
//! service.inspect(token).await.unwrap();
//! let pw = SecretString::from("a sufficiently long passphrase");
//! service.complete(token, pw.clone(), pw).await.unwrap();
//! # });
//! ```

mod builder;
mod complete;
mod follow;
mod operator;
mod process;
mod request;
mod sign_in;
pub mod throttle;
mod workers;

pub use builder::ResetServiceBuilder;
pub use complete::DENY_WINDOW;
pub use follow::TemplateChanges;
pub use operator::{
    AccountRateLimit, ConsoleStores, OperatorView, ReissueOutcome, SAMPLE_TOKEN, TemplateCheck,
    TemplateReloadError,
};
pub use sign_in::SIGN_IN_SPREAD;
pub use workers::{
    DEFAULT_MAIL_BACKLOG_LIMIT, MAX_REQUEST_AGE, MAX_REQUEST_ATTEMPTS, PurgeReport, REQUEST_LEASE,
    REQUEST_SETTLE, RequestProcessing, RequestReport, RequestWorker, Retention, RetentionStores,
};

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::account::{Account, AccountDirectory, AccountId};
use crate::clock::Clock;
use crate::delivery::{Dispatcher, RetryPolicy};
use crate::error::{StoreError, ValidationError};
use crate::event::{Event, EventKind};
use crate::fingerprint::FingerprintKey;
use crate::hasher::PasswordHasher;
use crate::identifier::IdentifierMode;
use crate::link::LinkBuilder;
use crate::policy::{DuplicateEmailPolicy, PasswordPolicy, PasswordRejection, RateLimits, TokenPolicy};
use crate::sender::{SenderChoice, SenderError, SenderResolver};
use crate::store::{EventLog, RequestInbox, TokenStore};

/// Per-request information the host passes in. Nothing here ever reaches a link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The client's address (for the per-client rate limit).
    pub client_addr: Option<String>,
    /// Preferred locale, e.g. from `Accept-Language` (`fr-CA`).
    pub locale: Option<String>,
}

impl RequestContext {
    /// A context with a client address.
    pub fn from_client(addr: impl Into<String>) -> Self {
        RequestContext {
            client_addr: Some(addr.into()),
            locale: None,
        }
    }
}

/// The one public outcome of a well-formed request, whether or not an
/// account exists, is disabled, shares its email, or was rate limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestAccepted;

impl RequestAccepted {
    /// The message to show.
    pub const MESSAGE: &'static str =
        "If an account exists for what you entered, we have sent an email with a link to reset its password.";

    /// The message to show.
    pub fn message(&self) -> &'static str {
        Self::MESSAGE
    }
}

/// `request` failed: the input is malformed, or a store is down.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Malformed input; show the message.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A store is unavailable; show a generic "try again later".
    #[error(transparent)]
    Unavailable(#[from] StoreError),
}

/// The one public message for every refused link.
pub const INVALID_LINK_MESSAGE: &str =
    "This password reset link is invalid or has expired. Please request a new one.";

/// `inspect` / `deny` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The link cannot be used (the reason is in the event log only).
    #[error("{}", INVALID_LINK_MESSAGE)]
    InvalidLink,
    /// A store is unavailable.
    #[error(transparent)]
    Unavailable(#[from] StoreError),
}

/// `complete` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompleteError {
    /// The link cannot be used (the reason is in the event log only).
    #[error("{}", INVALID_LINK_MESSAGE)]
    InvalidLink,
    /// The confirmation differs from the new password; the link still works.
    #[error("the two passwords do not match")]
    ConfirmationMismatch,
    /// The new password breaks the policy; the link still works.
    #[error("choose another password: {0}")]
    PasswordRejected(PasswordRejection),
    /// A store is unavailable; the link still works.
    #[error(transparent)]
    Unavailable(#[from] StoreError),
    /// Hashing or randomness failed.
    #[error("internal error: {0}")]
    Internal(String),
    /// [`ResetService::rehash_password`] was given a password that is not
    /// the account's current one; nothing was stored.
    #[error("the password to re-hash is not the account's current password: nothing was stored")]
    NotCurrentPassword,
}

impl From<LinkError> for CompleteError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::InvalidLink => CompleteError::InvalidLink,
            LinkError::Unavailable(s) => CompleteError::Unavailable(s),
        }
    }
}

/// What `inspect` tells the "choose a new password" page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// The account the link resets.
    pub account: AccountId,
    /// Its username (to show which account is being reset).
    pub username: String,
    /// When the link stops working.
    pub expires_at: SystemTime,
}

/// A finished reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// The account.
    pub account: AccountId,
    /// Its username.
    pub username: String,
}

/// What [`ResetService::check_password`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordCheck {
    /// No such account, no password, or another password.
    Wrong,
    /// The password matches the account's argon2id hash.
    Correct,
    /// The password matches a legacy hash: sign the user in, then replace
    /// the hash with [`ResetService::rehash_password`].
    NeedsRehash(crate::legacy_hash::LegacyFormat),
}

impl PasswordCheck {
    /// Whether the password is the account's.
    pub fn is_correct(self) -> bool {
        !matches!(self, PasswordCheck::Wrong)
    }
}

/// The host's one session hook: ends an account's sessions. Called after a
/// reset, and by `resetkit-axum`'s "sign out everywhere" button (its
/// `HostSessions` is built on this trait and only adds who is signed in).
///
/// Implement it with `async fn` under the re-exported
/// [`#[resetkit::async_trait]`](crate::async_trait) attribute (without it,
/// `async fn` in this trait fails with E0195):
///
/// ```
/// use resetkit::account::AccountId;
///
/// struct MySessions;
///
/// #[resetkit::async_trait]
/// impl resetkit::SessionRevoker for MySessions {
///     async fn revoke_sessions(&self, account: &AccountId) -> Result<(), String> {
///         // e.g. DELETE FROM sessions WHERE user_id = $1
///         let _ = account;
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait SessionRevoker: Send + Sync {
    /// Revokes every session of `account`; an error is recorded as an event.
    async fn revoke_sessions(&self, account: &AccountId) -> Result<(), String>;
}

pub(crate) struct Inner {
    pub(crate) accounts: Arc<dyn AccountDirectory>,
    pub(crate) tokens: Arc<dyn TokenStore>,
    pub(crate) limiter: Arc<dyn crate::store::RateLimiter>,
    pub(crate) events: Arc<dyn EventLog>,
    /// The log as given to the builder (without the metrics wrapper):
    /// combined steps write to it, and the flow counts their events.
    pub(crate) step_log: Arc<dyn EventLog>,
    pub(crate) sender: Arc<dyn SenderResolver>,
    pub(crate) hasher: Arc<dyn PasswordHasher>,
    pub(crate) sessions: Option<Arc<dyn SessionRevoker>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) reset_links: LinkBuilder,
    pub(crate) deny_links: LinkBuilder,
    pub(crate) security_link: String,
    pub(crate) site_name: String,
    pub(crate) templates: operator::ActiveTemplates,
    pub(crate) token_policy: TokenPolicy,
    pub(crate) rate_limits: RateLimits,
    pub(crate) password_policy: PasswordPolicy,
    pub(crate) duplicates: DuplicateEmailPolicy,
    pub(crate) identifier_mode: IdentifierMode,
    pub(crate) require_confirmed_email: bool,
    /// Key of the identifier fingerprints in `RequestIgnored` events.
    pub(crate) fingerprint_key: FingerprintKey,
    /// IPv6 clients share a per-client limit per prefix of this length.
    pub(crate) client_ipv6_prefix: u8,
    /// Refusals counted per key and window (one event each, not one per request).
    pub(crate) throttled: throttle::ThrottleTracker,
    pub(crate) retry: RetryPolicy,
    /// Requests recorded by `request`, waiting to be processed.
    pub(crate) inbox: Arc<dyn RequestInbox>,
    pub(crate) processing: workers::RequestProcessing,
    /// Woken by each new request (in-process workers, `RequestWorker::run`).
    pub(crate) inbox_ready: Arc<tokio::sync::Notify>,
    /// How many in-process workers run (0: start them at the next request).
    pub(crate) live_workers: std::sync::atomic::AtomicUsize,
    /// Sheds requests without touching the inbox while it is full.
    pub(crate) shed: workers::ShedGate,
    /// Holds requests in the inbox while too much mail waits.
    pub(crate) mail_backlog: workers::MailBacklog,
    pub(crate) retention: workers::Retention,
    /// What the workers purge (`None`: nothing).
    pub(crate) retention_stores: Option<workers::RetentionStores>,
    /// When the workers purge next (`None`: at the first chance).
    pub(crate) next_purge: std::sync::Mutex<Option<std::time::Instant>>,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) metrics: Option<crate::metrics::ResetMetrics>,
}

/// The password-reset service. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct ResetService {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for ResetService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResetService")
            .field("reset_link_target", &self.inner.reset_links.target().as_str())
            .field("delivery", &self.inner.dispatcher.mode)
            .field("token_policy", &self.inner.token_policy)
            .field("identifier_mode", &self.inner.identifier_mode)
            .field("duplicates", &self.inner.duplicates)
            .finish_non_exhaustive()
    }
}

impl ResetService {
    /// Starts a builder.
    pub fn builder() -> ResetServiceBuilder {
        ResetServiceBuilder::default()
    }

    /// The metrics given to the builder, if any (serve
    /// [`ResetMetrics::render`](crate::metrics::ResetMetrics::render)).
    pub fn metrics(&self) -> Option<&crate::metrics::ResetMetrics> {
        self.inner.metrics.as_ref()
    }

    /// The sender that would be used for `account`, or why there is none:
    /// lets operators and the harness check sender setup ahead of time.
    pub async fn resolve_sender(&self, account: &Account) -> Result<SenderChoice, SenderError> {
        self.inner.sender.resolve(account).await
    }

    /// Every sender the configured resolver could pick (for a sender check).
    pub fn candidate_senders(&self) -> Vec<crate::mail::Mailbox> {
        let mut senders = self.inner.sender.candidate_senders();
        let mut seen = std::collections::HashSet::new();
        senders.retain(|m| seen.insert(m.address().to_ascii_lowercase()));
        senders
    }

    /// Whether a completed reset ends the account's sessions (a
    /// [`SessionRevoker`] is configured), so pages can say so truthfully.
    pub fn revokes_sessions(&self) -> bool {
        self.inner.sessions.is_some()
    }

    /// The page links point at (without token).
    pub fn reset_link_target(&self) -> &url::Url {
        self.inner.reset_links.target()
    }

    /// The per-client rate-limit key of `client` (IPv6 grouped by prefix).
    pub(crate) fn client_rate_key(&self, client: &str) -> crate::store::RateKey {
        crate::store::RateKey::Client(crate::client::client_rate_key(
            client,
            self.inner.client_ipv6_prefix,
        ))
    }

    /// Counts events a combined step wrote (the metrics wrapper of the
    /// event log does not see them).
    pub(crate) fn count_step_events(&self, events: &[Event]) {
        if let Some(metrics) = &self.inner.metrics {
            metrics.count_events(events);
        }
    }

    pub(crate) async fn record(&self, account: Option<AccountId>, kind: EventKind) -> Result<(), StoreError> {
        self.inner
            .events
            .record(Event::new(self.inner.clock.now(), account, kind))
            .await
    }
}

/// Runs CPU-heavy work (argon2) off the async executor when a tokio runtime
/// is present.
pub(crate) async fn run_blocking<T, F>(f: F) -> Result<T, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| format!("hashing task failed: {e}"))
    } else {
        Ok(f())
    }
}
