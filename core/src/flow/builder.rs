//! The typed builder for [`ResetService`]; everything is validated in
//! [`ResetServiceBuilder::build`], with errors that name the setting.

use std::sync::Arc;

use crate::account::AccountDirectory;
use crate::client::DEFAULT_IPV6_PREFIX;
use crate::clock::{Clock, SystemClock};
use crate::delivery::{DeliveryMode, Dispatcher, RetryPolicy};
use crate::error::BuildError;
use crate::fingerprint::FingerprintKey;
use crate::flow::{Inner, RequestProcessing, ResetService, Retention, RetentionStores, SessionRevoker};
use crate::hasher::{Argon2Hasher, PasswordHasher};
use crate::identifier::IdentifierMode;
use crate::link::{LinkBuilder, TokenPlacement, join_path, parse_base_url};
use crate::mail::Mailer;
use crate::memory::InMemoryInbox;
use crate::metrics::{MeteredEvents, ResetMetrics};
use crate::policy::{DuplicateEmailPolicy, PasswordPolicy, RateLimits, TokenPolicy};
use crate::sender::SenderResolver;
use crate::store::{EventLog, Outbox, RateLimiter, RequestInbox, TokenStore};
use crate::template::Templates;

/// Builds a [`ResetService`]. Required: `base_url`, `accounts`, `tokens`,
/// `events`, `mailer`, `sender`; `outbox` in outbox mode.
pub struct ResetServiceBuilder {
    accounts: Option<Arc<dyn AccountDirectory>>,
    tokens: Option<Arc<dyn TokenStore>>,
    limiter: Option<Arc<dyn RateLimiter>>,
    events: Option<Arc<dyn EventLog>>,
    outbox: Option<Arc<dyn Outbox>>,
    mailer: Option<Arc<dyn Mailer>>,
    sender: Option<Arc<dyn SenderResolver>>,
    clock: Arc<dyn Clock>,
    hasher: Arc<dyn PasswordHasher>,
    sessions: Option<Arc<dyn SessionRevoker>>,
    base_url: Option<String>,
    reset_path: String,
    deny_path: String,
    security_path: String,
    placement: TokenPlacement,
    allow_http: bool,
    site_name: String,
    templates: Templates,
    token_policy: TokenPolicy,
    rate_limits: RateLimits,
    password_policy: PasswordPolicy,
    duplicates: DuplicateEmailPolicy,
    identifier_mode: IdentifierMode,
    require_confirmed_email: bool,
    fingerprint_key: Option<FingerprintKey>,
    client_ipv6_prefix: u8,
    delivery: Option<DeliveryMode>,
    retry: RetryPolicy,
    inbox: Option<Arc<dyn RequestInbox>>,
    processing: RequestProcessing,
    retention: Retention,
    retention_stores: Option<RetentionStores>,
    mail_backlog_limit: usize,
    metrics: Option<ResetMetrics>,
}

impl Default for ResetServiceBuilder {
    fn default() -> Self {
        ResetServiceBuilder {
            accounts: None,
            tokens: None,
            limiter: None,
            events: None,
            metrics: None,
            outbox: None,
            mailer: None,
            sender: None,
            clock: Arc::new(SystemClock),
            hasher: Arc::new(Argon2Hasher::owasp()),
            sessions: None,
            base_url: None,
            reset_path: "/reset".into(),
            deny_path: "/reset/deny".into(),
            security_path: "/account/security".into(),
            placement: TokenPlacement::Query,
            allow_http: false,
            site_name: String::new(),
            templates: Templates::english(),
            token_policy: TokenPolicy::default(),
            rate_limits: RateLimits::default(),
            password_policy: PasswordPolicy::default(),
            duplicates: DuplicateEmailPolicy::default(),
            identifier_mode: IdentifierMode::default(),
            require_confirmed_email: false,
            fingerprint_key: None,
            client_ipv6_prefix: DEFAULT_IPV6_PREFIX,
            delivery: None,
            retry: RetryPolicy::default(),
            inbox: None,
            processing: RequestProcessing::default(),
            retention: Retention::default(),
            retention_stores: None,
            mail_backlog_limit: super::workers::DEFAULT_MAIL_BACKLOG_LIMIT,
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty => $field:ident) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$field = value;
            self
        }
    };
}

impl ResetServiceBuilder {
    /// The canonical public base URL links are built on (required; https).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Path of the "choose a new password" page under the base URL (default `/reset`).
    pub fn reset_path(mut self, path: impl Into<String>) -> Self {
        self.reset_path = path.into();
        self
    }

    /// Path of the "this wasn't me" endpoint (default `/reset/deny`).
    pub fn deny_path(mut self, path: impl Into<String>) -> Self {
        self.deny_path = path.into();
        self
    }

    /// Path the password-changed notice links to for securing the account
    /// (default `/account/security`); the host wires it to session revocation.
    pub fn security_path(mut self, path: impl Into<String>) -> Self {
        self.security_path = path.into();
        self
    }

    /// Allows `http://` base URLs. Only for local testing.
    pub fn allow_insecure_http_for_local_testing(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// The site name shown in emails (default: the base URL's host).
    pub fn site_name(mut self, name: impl Into<String>) -> Self {
        self.site_name = name.into();
        self
    }

    /// The account directory (required).
    pub fn accounts(mut self, accounts: Arc<dyn AccountDirectory>) -> Self {
        self.accounts = Some(accounts);
        self
    }

    /// The token store and the rate limiter (required; one store is both,
    /// as the in-memory and PostgreSQL ones). Give another limiter with
    /// [`rate_limiter`](Self::rate_limiter).
    pub fn tokens<T: TokenStore + RateLimiter + 'static>(mut self, tokens: Arc<T>) -> Self {
        self.limiter = Some(tokens.clone());
        self.tokens = Some(tokens);
        self
    }

    /// The token store alone, as a trait object; give the rate limiter
    /// with [`rate_limiter`](Self::rate_limiter) (both are required).
    pub fn token_store(mut self, tokens: Arc<dyn TokenStore>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// The rate limiter's counters, when they are not the store given to
    /// [`tokens`](Self::tokens) (set it after), or with
    /// [`token_store`](Self::token_store).
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// The event log (required).
    pub fn events(mut self, events: Arc<dyn EventLog>) -> Self {
        self.events = Some(events);
        self
    }

    /// Counts the flow into `metrics` (requests, deliveries, links opened,
    /// resets; see [`crate::metrics`]). The service's event log is wrapped
    /// so that every recorded event is counted, the delivery workers the
    /// service makes observe the request-to-delivery time.
    pub fn metrics(mut self, metrics: ResetMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The outbox; setting it makes outbox delivery the default mode.
    pub fn outbox(mut self, outbox: Arc<dyn Outbox>) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// The mailer (required).
    pub fn mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// The sender resolver (required).
    pub fn sender(mut self, sender: Arc<dyn SenderResolver>) -> Self {
        self.sender = Some(sender);
        self
    }

    /// The clock (default: system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The password hasher (default: argon2id with OWASP parameters).
    pub fn hasher(mut self, hasher: Arc<dyn PasswordHasher>) -> Self {
        self.hasher = hasher;
        self
    }

    /// Hook called after a reset to revoke the account's sessions.
    pub fn session_revoker(mut self, hook: Arc<dyn SessionRevoker>) -> Self {
        self.sessions = Some(hook);
        self
    }

    /// The deployment key of the identifier fingerprints recorded for
    /// requests that produce no email (see [`crate::fingerprint`]). Default:
    /// a random key per built service, so fingerprints can only be compared
    /// within that process; set a fixed key (shared by every instance) so an
    /// operator can compute a fingerprint and look it up later.
    pub fn fingerprint_key(mut self, key: FingerprintKey) -> Self {
        self.fingerprint_key = Some(key);
        self
    }

    /// The deployment's secrets (see [`crate::secrets`]): sets the
    /// fingerprint key. Give every instance of a site the same secrets.
    pub fn secrets(self, secrets: &crate::secrets::DeploymentSecrets) -> Self {
        self.fingerprint_key(secrets.fingerprint_key().clone())
    }

    /// IPv6 clients share one per-client rate limit per prefix of this many
    /// bits (default 64, one subscriber's network; 1..=128). IPv4 clients and
    /// IPv4-mapped addresses are limited per address. See [`crate::client`].
    pub fn client_ipv6_prefix(mut self, bits: u8) -> Self {
        self.client_ipv6_prefix = bits;
        self
    }

    /// Delivery mode (default: outbox when an outbox is set, else inline).
    pub fn delivery(mut self, mode: DeliveryMode) -> Self {
        self.delivery = Some(mode);
        self
    }

    setter!(
        /// Where the token travels in links (default: query).
        token_placement: TokenPlacement => placement);
    setter!(
        /// Email templates (default: English).
        templates: Templates => templates);
    setter!(
        /// Token lifetime and newest-wins (default: 30 min, on).
        token_policy: TokenPolicy => token_policy);
    setter!(
        /// Rate limits (default: 3 per account, 20 per client, per 15 min).
        rate_limits: RateLimits => rate_limits);
    setter!(
        /// Password rules (default: NIST SP 800-63B-4 style, 15 characters).
        password_policy: PasswordPolicy => password_policy);
    setter!(
        /// What to do with shared email addresses (default: one email per account).
        duplicate_email_policy: DuplicateEmailPolicy => duplicates);
    setter!(
        /// Which identifiers are accepted (default: email or username).
        identifier_mode: IdentifierMode => identifier_mode);
    setter!(
        /// Reset only accounts whose email is confirmed (default: off).
        require_confirmed_email: bool => require_confirmed_email);
    setter!(
        /// Retry policy of [`ResetService::delivery_worker`].
        retry_policy: RetryPolicy => retry);
    setter!(
        /// Who processes recorded requests (default: two tasks in this
        /// process; see [`RequestProcessing`]).
        request_processing: RequestProcessing => processing);
    setter!(
        /// How long events, finished mail, expired tokens and rate-limit
        /// entries are kept, and how often the workers purge (see
        /// [`Retention`]); the purges need [`retention_stores`](Self::retention_stores).
        retention: Retention => retention);

    /// The stores the workers purge per [`Retention`] (stores that
    /// implement the retention capabilities, e.g. the in-memory ones or
    /// `PgStores::retention_stores()`). Without them the service keeps
    /// every record: a store that cannot purge is not a reason to fail.
    pub fn retention_stores(mut self, stores: RetentionStores) -> Self {
        self.retention_stores = Some(stores);
        self
    }

    /// How many messages may wait in the outbox before the request workers
    /// stop taking requests from the inbox (default
    /// [`DEFAULT_MAIL_BACKLOG_LIMIT`](crate::flow::DEFAULT_MAIL_BACKLOG_LIMIT);
    /// at least 1; outbox delivery only). It is looked at before each pass
    /// of a worker, so each worker's pass (16 requests) may go past it. The sustainable rate is the
    /// delivery rate: past it, requests wait in the inbox (their links are
    /// issued when they are processed, so they are not older than the wait
    /// when they go out) and, once a bounded inbox is full, new ones are
    /// refused with "try again later" for almost no work, so that the
    /// flood does not take the machine from the mail that is going out.
    pub fn mail_backlog_limit(mut self, limit: usize) -> Self {
        self.mail_backlog_limit = limit.max(1);
        self
    }

    /// The request inbox (default: an [`InMemoryInbox`] of
    /// [`DEFAULT_INBOX_CAPACITY`](crate::memory::DEFAULT_INBOX_CAPACITY)
    /// requests, lost if the process dies; use a database inbox where that
    /// matters, and to share the work between processes).
    pub fn inbox(mut self, inbox: Arc<dyn RequestInbox>) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// Validates everything and builds the service.
    pub fn build(self) -> Result<ResetService, BuildError> {
        let base = self
            .base_url
            .as_deref()
            .ok_or(BuildError::Missing { setting: "base_url" })?;
        let base = parse_base_url(base, self.allow_http)?;
        let reset_links = LinkBuilder::under(&base, &self.reset_path, self.placement, "reset_path")?;
        let deny_links = LinkBuilder::under(&base, &self.deny_path, TokenPlacement::Query, "deny_path")?;
        let security_link = join_path(&base, &self.security_path, "security_path")?.to_string();
        if reset_links.target() == deny_links.target() {
            return Err(BuildError::invalid("deny_path", "must differ from reset_path"));
        }
        let site_name = if self.site_name.is_empty() {
            base.host_str().unwrap_or("your account").to_owned()
        } else {
            self.site_name
        };
        if site_name.trim().is_empty() || site_name.chars().any(char::is_control) {
            return Err(BuildError::invalid(
                "site_name",
                "must be non-empty text without control characters",
            ));
        }
        self.token_policy.validate()?;
        self.rate_limits.validate()?;
        self.password_policy.validate()?;
        if self.retention.every.is_zero() || self.retention.batch == 0 {
            return Err(BuildError::invalid(
                "retention",
                "`every` must be longer than zero and `batch` at least 1",
            ));
        }
        if self.processing == (RequestProcessing::InProcess { workers: 0 }) {
            return Err(BuildError::invalid(
                "request_processing",
                "InProcess needs at least one worker",
            ));
        }
        if !(1..=128).contains(&self.client_ipv6_prefix) {
            return Err(BuildError::invalid(
                "client_ipv6_prefix",
                format!("{} is outside 1..=128 bits", self.client_ipv6_prefix),
            ));
        }
        let fingerprint_key = match self.fingerprint_key {
            Some(key) => key,
            None => {
                FingerprintKey::random().map_err(|e| BuildError::invalid("fingerprint_key", e.to_string()))?
            }
        };
        if self.duplicates == DuplicateEmailPolicy::RequireUsername
            && self.identifier_mode == IdentifierMode::EmailOnly
        {
            return Err(BuildError::invalid(
                "duplicate_email_policy",
                "RequireUsername needs an identifier mode that accepts usernames, but identifier_mode is EmailOnly",
            ));
        }
        let accounts = self.accounts.ok_or(BuildError::Missing { setting: "accounts" })?;
        let tokens = self.tokens.ok_or(BuildError::Missing { setting: "tokens" })?;
        let limiter = self.limiter.ok_or(BuildError::Missing {
            setting: "rate_limiter",
        })?;
        let events = self.events.ok_or(BuildError::Missing { setting: "events" })?;
        let step_log = events.clone();
        let events: Arc<dyn EventLog> = match &self.metrics {
            Some(metrics) => Arc::new(MeteredEvents {
                log: events,
                metrics: metrics.clone(),
            }),
            None => events,
        };
        let mailer = self.mailer.ok_or(BuildError::Missing { setting: "mailer" })?;
        let sender = self.sender.ok_or(BuildError::Missing { setting: "sender" })?;
        let mode = self.delivery.unwrap_or(if self.outbox.is_some() {
            DeliveryMode::Outbox
        } else {
            DeliveryMode::Inline
        });
        if mode == DeliveryMode::Outbox && self.outbox.is_none() {
            return Err(BuildError::Missing { setting: "outbox" });
        }
        let templates = self.templates.compile_for_site(
            &reset_links,
            &deny_links,
            &security_link,
            &site_name,
            self.token_policy.lifetime.as_secs() / 60,
        )?;
        let service = ResetService {
            inner: Arc::new(Inner {
                accounts,
                tokens,
                limiter,
                events: events.clone(),
                step_log,
                sender,
                hasher: self.hasher,
                sessions: self.sessions,
                clock: self.clock.clone(),
                reset_links,
                deny_links,
                security_link,
                site_name,
                templates: super::operator::ActiveTemplates::new(templates, self.templates),
                token_policy: self.token_policy,
                rate_limits: self.rate_limits,
                password_policy: self.password_policy,
                duplicates: self.duplicates,
                identifier_mode: self.identifier_mode,
                require_confirmed_email: self.require_confirmed_email,
                fingerprint_key,
                client_ipv6_prefix: self.client_ipv6_prefix,
                throttled: super::throttle::ThrottleTracker::default(),
                retry: self.retry,
                inbox: self.inbox.unwrap_or_else(|| Arc::new(InMemoryInbox::default())),
                processing: self.processing,
                inbox_ready: Arc::new(tokio::sync::Notify::new()),
                live_workers: std::sync::atomic::AtomicUsize::new(0),
                shed: super::workers::ShedGate::default(),
                mail_backlog: super::workers::MailBacklog::new(self.mail_backlog_limit),
                retention: self.retention,
                retention_stores: self.retention_stores,
                next_purge: std::sync::Mutex::new(None),
                dispatcher: Dispatcher {
                    mode,
                    mailer,
                    outbox: self.outbox,
                    events,
                    clock: self.clock,
                    ready: Arc::new(tokio::sync::Notify::new()),
                    metrics: self.metrics.clone(),
                },
                metrics: self.metrics,
            }),
        };
        // Requests accepted before a restart (a durable inbox) are processed
        // now, not when the next one arrives.
        service.start_workers();
        Ok(service)
    }
}
