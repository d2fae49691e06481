//! The reset flow: [`ResetService::request`], [`ResetService::inspect`],
//! [`ResetService::complete`] and [`ResetService::deny`].
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
mod inbox;
mod operator;
mod request;
pub mod throttle;

pub use builder::ResetServiceBuilder;
pub use complete::DENY_WINDOW;
pub use follow::TemplateChanges;
pub use inbox::{
    MAX_REQUEST_ATTEMPTS, PurgeReport, REQUEST_LEASE, REQUEST_SETTLE, RequestProcessing, RequestReport,
    RequestWorker, Retention,
};
pub use operator::{AccountRateLimit, ReissueOutcome, SAMPLE_TOKEN, TemplateCheck, TemplateReloadError};

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::account::{Account, AccountDirectory, AccountId};
use crate::clock::Clock;
use crate::delivery::{DeliveryWorker, Dispatcher, RetryPolicy};
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

/// Called after a reset to end the account's sessions.
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
    pub(crate) events: Arc<dyn EventLog>,
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
    pub(crate) processing: inbox::RequestProcessing,
    /// Woken by each new request (in-process workers, `RequestWorker::run`).
    pub(crate) inbox_ready: Arc<tokio::sync::Notify>,
    /// How many in-process workers run (0: start them at the next request).
    pub(crate) live_workers: std::sync::atomic::AtomicUsize,
    /// Sheds requests without touching the inbox while it is full.
    pub(crate) shed: inbox::ShedGate,
    pub(crate) retention: inbox::Retention,
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

    /// A worker that drains this service's outbox (`None` in inline mode).
    pub fn delivery_worker(&self) -> Option<DeliveryWorker> {
        let d = &self.inner.dispatcher;
        d.outbox.clone().map(|outbox| {
            DeliveryWorker::new(outbox, d.mailer.clone(), d.events.clone(), d.clock.clone())
                .with_wake(d.ready.clone())
                .with_retry(self.inner.retry)
                .with_sender_fallback(self.inner.sender.clone(), self.inner.accounts.clone())
                .with_token_check(self.inner.tokens.clone())
                .with_tracing_key(self.inner.fingerprint_key.clone())
                .with_metrics(d.metrics.clone())
        })
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

    /// Whether a completed reset ends the account's sessions (a
    /// [`SessionRevoker`] is configured), so pages can say so truthfully.
    pub fn revokes_sessions(&self) -> bool {
        self.inner.sessions.is_some()
    }

    /// The page links point at (without token).
    pub fn reset_link_target(&self) -> &url::Url {
        self.inner.reset_links.target()
    }

    /// Checks a sign-in password the way `complete` stored it (NFKC).
    /// Hashes in a legacy format (bcrypt, PBKDF2-SHA256, scrypt; see
    /// [`legacy_hash`](crate::legacy_hash)) verify too; use
    /// [`check_password`](Self::check_password) to learn that one needs rehashing.
    pub async fn verify_password(
        &self,
        account: &AccountId,
        password: &secrecy::SecretString,
    ) -> Result<bool, CompleteError> {
        Ok(self.check_password(account, password).await?.is_correct())
    }

    /// Checks a sign-in password: wrong, correct, or correct against a
    /// legacy hash that should be replaced by an argon2id one (call
    /// [`rehash_password`](Self::rehash_password) with the same password).
    pub async fn check_password(
        &self,
        account: &AccountId,
        password: &secrecy::SecretString,
    ) -> Result<PasswordCheck, CompleteError> {
        use secrecy::ExposeSecret as _;
        let Some(account) = self.inner.accounts.find_by_id(account).await? else {
            return Ok(PasswordCheck::Wrong);
        };
        let Some(hash) = account.password_hash else {
            return Ok(PasswordCheck::Wrong);
        };
        if let Some(format) = crate::legacy_hash::LegacyFormat::detect(hash.expose()) {
            // Legacy hashes were made from the password as typed; accept the
            // NFKC form too (what a reset stores).
            let typed = password.clone();
            let normalized = secrecy::SecretString::from(PasswordPolicy::normalize(password.expose_secret()));
            let stored = hash.expose().to_owned();
            let matched = run_blocking(move || -> Result<bool, crate::hasher::HashError> {
                if crate::legacy_hash::verify_legacy(&typed, &stored)? == Some(true) {
                    return Ok(true);
                }
                Ok(crate::legacy_hash::verify_legacy(&normalized, &stored)? == Some(true))
            })
            .await
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(CompleteError::Internal)?;
            return Ok(if matched {
                PasswordCheck::NeedsRehash(format)
            } else {
                PasswordCheck::Wrong
            });
        }
        let normalized = secrecy::SecretString::from(PasswordPolicy::normalize(password.expose_secret()));
        let hasher = self.inner.hasher.clone();
        let ok = run_blocking(move || hasher.verify(&normalized, &hash))
            .await
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(CompleteError::Internal)?;
        Ok(if ok {
            PasswordCheck::Correct
        } else {
            PasswordCheck::Wrong
        })
    }

    /// Stores an argon2id hash of `password` (NFKC, as `complete` does) for
    /// `account`: the upgrade after [`PasswordCheck::NeedsRehash`].
    ///
    /// Re-hashing the same password is not a password change: the
    /// account's pending reset links stay valid (their binding moves to
    /// the new hash with [`TokenStore::restamp`](crate::store::TokenStore::restamp)),
    /// and no "password changed" notice is sent. So that this cannot keep a
    /// link alive across a real change, the password is verified against
    /// the stored hash first (one more legacy verification, once per
    /// account); a password that is not the account's is refused with
    /// [`CompleteError::NotCurrentPassword`] and nothing is stored.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use resetkit::prelude::*;
    /// use resetkit::SecretString; // re-exported: no `secrecy` dependency needed
    ///
    /// let accounts = InMemoryAccounts::default();
    /// // A Django-format PBKDF2 hash of "legacy password 1", stored by the previous framework.
    /// let django = "pbkdf2_sha256$1000$c2FsdHNhbHQ$bT86YLGvDWl732f3wJjiqRNnY/5Czo0VlS7c5JZrgEI=";
    /// accounts.insert(Account::new("1", "ann", "ann@example.com").with_password_hash(PasswordHash::new(django)));
    /// let service = ResetService::builder()
    ///     .base_url("https://app.example.com")
    ///     .accounts(Arc::new(accounts))
    ///     .tokens(Arc::new(InMemoryTokenStore::default()))
    ///     .events(Arc::new(InMemoryEventLog::default()))
    ///     .mailer(Arc::new(CapturingMailer::default()))
    ///     .sender(Arc::new(FixedSender::new(Mailbox::address_only("noreply@example.com").unwrap())))
    ///     .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
    ///     .build()
    ///     .unwrap();
    /// let id = AccountId::from("1");
    /// let typed = SecretString::from("legacy password 1");
    /// // At sign-in: check, then upgrade the hash (pending reset links keep working).
    /// if let PasswordCheck::NeedsRehash(_) = service.check_password(&id, &typed).await.unwrap() {
    ///     service.rehash_password(&id, &typed).await.unwrap();
    /// }
    /// assert_eq!(service.check_password(&id, &typed).await.unwrap(), PasswordCheck::Correct);
    /// # });
    /// ```
    pub async fn rehash_password(
        &self,
        account: &AccountId,
        password: &secrecy::SecretString,
    ) -> Result<(), CompleteError> {
        use secrecy::ExposeSecret as _;
        let Some(current) = self.inner.accounts.find_by_id(account).await? else {
            return Err(CompleteError::Unavailable(StoreError::NotFound {
                operation: "accounts.find_by_id",
                what: format!("account `{account}`"),
            }));
        };
        if !self.check_password(account, password).await?.is_correct() {
            return Err(CompleteError::NotCurrentPassword);
        }
        let normalized = secrecy::SecretString::from(PasswordPolicy::normalize(password.expose_secret()));
        let hasher = self.inner.hasher.clone();
        let hash = run_blocking(move || hasher.hash(&normalized))
            .await
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(CompleteError::Internal)?;
        let before = current.password_stamp();
        let after = crate::account::PasswordStamp::of(Some(&hash));
        self.inner.accounts.set_password_hash(account, &hash).await?;
        match self.inner.tokens.restamp(account, &before, &after).await {
            Ok(_) => Ok(()),
            Err(StoreError::Unsupported { operation }) => {
                tracing::warn!(
                    operation,
                    "the token store cannot move pending reset links to the re-hashed password: \
                     they stop working (implement TokenStore::restamp)"
                );
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Counts one sign-in attempt against `limits`, in the engine's
    /// rate-limit store (shared by every instance on PostgreSQL): per
    /// client address (`limits.per_client`, IPv6 grouped like the reset
    /// limit); per identifier as typed and client (`limits.per_account`),
    /// so a stranger guessing from one place cannot lock the owner out from
    /// another; and per identifier from everywhere at
    /// [`SIGN_IN_SPREAD`](crate::flow::SIGN_IN_SPREAD) times that, which
    /// bounds a guess spread over many addresses. Identifiers are keyed by
    /// their fingerprint: every spelling of one identifier shares a count,
    /// and known and unknown identifiers are throttled alike. Returns
    /// `false` when any is spent: answer "too many attempts" without
    /// checking the password. Refused attempts are not counted.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use resetkit::prelude::*;
    /// use resetkit::policy::{Limit, RateLimits};
    /// let service = ResetService::builder()
    ///     .base_url("https://app.example.com")
    ///     .accounts(Arc::new(InMemoryAccounts::default()))
    ///     .tokens(Arc::new(InMemoryTokenStore::default()))
    ///     .events(Arc::new(InMemoryEventLog::default()))
    ///     .mailer(Arc::new(CapturingMailer::default()))
    ///     .sender(Arc::new(FixedSender::new(Mailbox::address_only("noreply@example.com").unwrap())))
    ///     .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
    ///     .build()
    ///     .unwrap();
    /// let limits = RateLimits {
    ///     per_account: Some(Limit { max: 2, window: Duration::from_secs(900) }),
    ///     per_client: None,
    /// };
    /// let client = RequestContext::from_client("203.0.113.9");
    /// assert!(service.admit_sign_in("bob", &client, &limits).await.unwrap());
    /// assert!(service.admit_sign_in("BOB", &client, &limits).await.unwrap());
    /// assert!(!service.admit_sign_in("bob", &client, &limits).await.unwrap());
    /// // The owner, elsewhere, is not locked out by the stranger.
    /// let owner = RequestContext::from_client("198.51.100.4");
    /// assert!(service.admit_sign_in("bob", &owner, &limits).await.unwrap());
    /// # });
    /// ```
    pub async fn admit_sign_in(
        &self,
        identifier: &str,
        client: &RequestContext,
        limits: &crate::policy::RateLimits,
    ) -> Result<bool, StoreError> {
        use crate::store::RateKey;
        let inner = &self.inner;
        let now = inner.clock.now();
        let client_key = client
            .client_addr
            .as_deref()
            .map(|addr| crate::client::client_rate_key(addr, inner.client_ipv6_prefix));
        // (key, window, max), checked in this order; the first refusal ends it.
        let mut checks = Vec::with_capacity(3);
        if let (Some(limit), Some(client_key)) = (limits.per_client, &client_key) {
            let key = RateKey::Host {
                scope: "sign-in-client",
                key: client_key.clone(),
            };
            checks.push((key, limit.window, limit.max));
        }
        if let Some(limit) = limits.per_account {
            let identifier = crate::fingerprint::fingerprint(&inner.fingerprint_key, identifier);
            if let Some(client_key) = &client_key {
                let key = RateKey::Host {
                    scope: "sign-in-pair",
                    key: format!("{identifier}:{client_key}"),
                };
                checks.push((key, limit.window, limit.max));
            }
            let key = RateKey::Host {
                scope: "sign-in",
                key: identifier,
            };
            checks.push((key, limit.window, limit.max.saturating_mul(SIGN_IN_SPREAD)));
        }
        for (key, window, max) in checks {
            if !inner.tokens.admit(&key, now, window, max).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The per-client rate-limit key of `client` (IPv6 grouped by prefix).
    pub(crate) fn client_rate_key(&self, client: &str) -> crate::store::RateKey {
        crate::store::RateKey::Client(crate::client::client_rate_key(
            client,
            self.inner.client_ipv6_prefix,
        ))
    }

    pub(crate) async fn record(&self, account: Option<AccountId>, kind: EventKind) -> Result<(), StoreError> {
        self.inner
            .events
            .record(Event::new(self.inner.clock.now(), account, kind))
            .await
    }
}

/// How many times the per-identifier sign-in limit one identifier may be
/// tried from every client together (see [`ResetService::admit_sign_in`]).
pub const SIGN_IN_SPREAD: u32 = 10;

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
