//! What the scenarios run against: a [`TargetFactory`] builds a fresh
//! [`ResetService`] for each scenario from a [`TargetConfig`] the scenario
//! chose (policies, senders, the fake SMTP server's address, a manual
//! clock), with whatever stores and mailer the caller wants.
//!
//! [`ReferenceTarget`] is the built-in reference flow: in-memory stores and
//! `resetkit_smtp::SmtpMailer` pointed at the harness's fake server.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use resetkit::account::{Account, AccountDirectory, AccountId};
use resetkit::clock::ManualClock;
use resetkit::delivery::{DeliveryMode, RetryPolicy};
use resetkit::error::StoreError;
use resetkit::fingerprint::FingerprintKey;
use resetkit::hasher::{Argon2Hasher, PasswordHash};
use resetkit::identifier::IdentifierMode;
use resetkit::mail::{Mailbox, Mailer};
use resetkit::memory::{InMemoryAccounts, InMemoryEventLog, InMemoryOutbox, InMemoryTokenStore};
use resetkit::policy::{DuplicateEmailPolicy, RateLimits, TokenPolicy};
use resetkit::sender::{FixedSender, QueueSender, SenderChain, SenderResolver};
use resetkit::store::{Outbox, Timeline};
use resetkit::template::Templates;
use resetkit::{ResetService, ResetServiceBuilder, SessionRevoker};
use resetkit_smtp::{SmtpConfig, SmtpMailer, TlsMode};

/// The base URL every scenario configures; links must point under it.
pub const BASE_URL: &str = "https://app.example.test";
/// The reset page under [`BASE_URL`].
pub const RESET_PATH: &str = "/reset";
/// The primary sender scenarios configure.
pub const PRIMARY_SENDER: &str = "noreply@app.example.test";
/// The fallback (shared queue) sender scenarios configure.
pub const FALLBACK_SENDER: &str = "support@app.example.test";
/// The deployment key of identifier fingerprints every scenario configures
/// (an operator's key: scenarios compute fingerprints with it).
pub const FINGERPRINT_KEY: &[u8] = b"resetkit harness deployment key";

/// An account directory the harness can also write: seed accounts, change
/// their email (the host's "change email" feature).
#[async_trait]
pub trait TargetAccounts: AccountDirectory {
    /// Inserts or replaces the account with `account.id`.
    async fn upsert(&self, account: &Account) -> Result<(), StoreError>;
}

#[async_trait]
impl TargetAccounts for InMemoryAccounts {
    async fn upsert(&self, account: &Account) -> Result<(), StoreError> {
        self.insert(account.clone());
        Ok(())
    }
}

/// Records every session revocation the flow asks for.
#[derive(Debug, Default)]
pub struct RecordingRevoker {
    revoked: Mutex<Vec<AccountId>>,
}

impl RecordingRevoker {
    /// Accounts whose sessions were revoked, in order.
    pub fn revoked(&self) -> Vec<AccountId> {
        self.revoked.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl SessionRevoker for RecordingRevoker {
    async fn revoke_sessions(&self, account: &AccountId) -> Result<(), String> {
        self.revoked
            .lock()
            .map_err(|_| "revocation log poisoned".to_owned())?
            .push(account.clone());
        Ok(())
    }
}

/// Faults a scenario can inject into the account directory, through the
/// [`FaultyAccounts`] decorator that factories put around their directory
/// with [`TargetConfig::with_faults`].
#[derive(Debug, Default)]
pub struct AccountFaults {
    next_write: Mutex<Option<WriteFault>>,
}

#[derive(Debug)]
struct WriteFault {
    started: tokio::sync::oneshot::Sender<()>,
    resume: tokio::sync::oneshot::Receiver<()>,
}

/// The two ends a scenario holds while a password write hangs.
#[derive(Debug)]
pub struct HeldWrite {
    /// Fires when the flow starts the password write (the token is spent).
    pub started: tokio::sync::oneshot::Receiver<()>,
    /// Send (or drop) to let the write go on and fail.
    pub resume: tokio::sync::oneshot::Sender<()>,
}

impl AccountFaults {
    /// Arms a fault: the next password write tells `started`, waits for
    /// `resume`, then fails as if the database connection dropped.
    pub fn fail_next_password_write(&self) -> HeldWrite {
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (resume, resume_rx) = tokio::sync::oneshot::channel();
        if let Ok(mut slot) = self.next_write.lock() {
            *slot = Some(WriteFault {
                started: started_tx,
                resume: resume_rx,
            });
        }
        HeldWrite { started, resume }
    }

    fn take_write(&self) -> Option<WriteFault> {
        self.next_write.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// A decorator that injects [`AccountFaults`] into any directory.
pub struct FaultyAccounts {
    inner: Arc<dyn TargetAccounts>,
    faults: Arc<AccountFaults>,
}

#[async_trait]
impl AccountDirectory for FaultyAccounts {
    async fn find_by_email(&self, canonical_email: &str) -> Result<Vec<Account>, StoreError> {
        self.inner.find_by_email(canonical_email).await
    }
    async fn find_by_username(&self, canonical_username: &str) -> Result<Option<Account>, StoreError> {
        self.inner.find_by_username(canonical_username).await
    }
    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.inner.find_by_id(id).await
    }
    async fn set_password_hash(&self, id: &AccountId, hash: &PasswordHash) -> Result<(), StoreError> {
        let Some(fault) = self.faults.take_write() else {
            return self.inner.set_password_hash(id, hash).await;
        };
        let _ = fault.started.send(());
        let _ = fault.resume.await;
        Err(StoreError::unavailable(
            "accounts.set_password_hash",
            "injected fault: connection to the database lost",
        ))
    }
}

#[async_trait]
impl TargetAccounts for FaultyAccounts {
    async fn upsert(&self, account: &Account) -> Result<(), StoreError> {
        self.inner.upsert(account).await
    }
}

/// Everything a scenario decides about the service under test.
#[derive(Clone)]
pub struct TargetConfig {
    /// The scenario's clock (starts at a fixed instant).
    pub clock: Arc<ManualClock>,
    /// The fake SMTP server's address.
    pub smtp: SocketAddr,
    /// Token lifetime and newest-wins.
    pub token_policy: TokenPolicy,
    /// Rate limits (scenarios other than the rate-limit ones use generous ones).
    pub rate_limits: RateLimits,
    /// Shared-email policy.
    pub duplicates: DuplicateEmailPolicy,
    /// Accepted identifiers.
    pub identifier_mode: IdentifierMode,
    /// Reset only confirmed emails.
    pub require_confirmed_email: bool,
    /// Inline or outbox delivery.
    pub delivery: DeliveryMode,
    /// Retry schedule of the delivery worker.
    pub retry: RetryPolicy,
    /// The session-revocation hook the harness watches.
    pub sessions: Arc<RecordingRevoker>,
    /// Faults scenarios inject into the account directory (honoured when
    /// the factory wraps its directory with [`TargetConfig::with_faults`]).
    pub faults: Arc<AccountFaults>,
    /// The email templates (default: the built-in English ones; template
    /// scenarios edit them).
    pub templates: Templates,
    /// The name [`smtp_mailer`](Self::smtp_mailer) greets the fake server
    /// with (EHLO): the runner gives each scenario its own, so that the
    /// one server of a run keeps each scenario's mail apart.
    pub smtp_hello: Option<String>,
}

impl fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetConfig")
            .field("smtp", &self.smtp)
            .field("token_policy", &self.token_policy)
            .field("rate_limits", &self.rate_limits)
            .field("duplicates", &self.duplicates)
            .field("identifier_mode", &self.identifier_mode)
            .field("require_confirmed_email", &self.require_confirmed_email)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

/// The instant every scenario's clock starts at (2026-01-01T00:00:00Z).
pub fn scenario_epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

impl TargetConfig {
    /// The defaults: 30-minute newest-wins tokens, no rate limits, one email
    /// per account, email or username, inline delivery.
    pub fn new(smtp: SocketAddr) -> Self {
        TargetConfig {
            clock: Arc::new(ManualClock::new(scenario_epoch())),
            smtp,
            token_policy: TokenPolicy::default(),
            rate_limits: RateLimits::unlimited(),
            duplicates: DuplicateEmailPolicy::default(),
            identifier_mode: IdentifierMode::default(),
            require_confirmed_email: false,
            delivery: DeliveryMode::Inline,
            retry: RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_secs(30),
                max_delay: Duration::from_secs(600),
            },
            sessions: Arc::new(RecordingRevoker::default()),
            faults: Arc::new(AccountFaults::default()),
            templates: Templates::english(),
            smtp_hello: None,
        }
    }

    /// Wraps a factory's account directory so that scenarios can inject
    /// faults (a password write that fails mid-flight). Pass the result to
    /// the builder's `accounts`; scenarios that need a fault are skipped,
    /// with a note saying so, for a directory that is not wrapped.
    pub fn with_faults(&self, accounts: Arc<dyn TargetAccounts>) -> Arc<FaultyAccounts> {
        Arc::new(FaultyAccounts {
            inner: accounts,
            faults: self.faults.clone(),
        })
    }

    /// The key of [`FINGERPRINT_KEY`].
    pub fn fingerprint_key() -> FingerprintKey {
        // A constant longer than the minimum.
        #[allow(clippy::expect_used)]
        FingerprintKey::new(FINGERPRINT_KEY.to_vec()).expect("the harness key is long enough")
    }

    /// The primary sender's mailbox.
    pub fn primary_sender() -> Mailbox {
        mailbox(PRIMARY_SENDER)
    }

    /// The fallback sender's mailbox.
    pub fn fallback_sender() -> Mailbox {
        mailbox(FALLBACK_SENDER)
    }

    /// The sender setup scenarios expect: the primary address, falling back
    /// to the shared queue mailbox.
    pub fn sender_resolver(&self) -> Arc<dyn SenderResolver> {
        Arc::new(SenderChain::new(vec![
            Arc::new(FixedSender::new(Self::primary_sender())),
            Arc::new(QueueSender::new(Self::fallback_sender())),
        ]))
    }

    /// An `SmtpMailer` pointed at the fake server (plain SMTP, short timeouts).
    pub fn smtp_mailer(&self) -> Result<SmtpMailer, String> {
        let mut builder = SmtpConfig::builder(self.smtp.ip().to_string())
            .port(self.smtp.port())
            .tls(TlsMode::None)
            .connect_timeout(Duration::from_secs(2))
            .command_timeout(Duration::from_secs(2));
        if let Some(hello) = &self.smtp_hello {
            builder = builder.hello_name(hello.clone());
        }
        let config = builder
            .build()
            .map_err(|e| format!("SMTP configuration for the fake server: {e}"))?;
        SmtpMailer::new(config).map_err(|e| format!("SMTP mailer: {e}"))
    }

    /// Applies everything the scenario chose to a builder: base URL, clock,
    /// policies, senders, delivery mode, session hook, templates, the
    /// fingerprint key, and fast argon2 parameters. The factory adds stores
    /// and the mailer.
    pub fn apply(&self, builder: ResetServiceBuilder) -> ResetServiceBuilder {
        builder
            // Scenarios read the events and the mail a request produced as
            // soon as it returns (the default processes it in the background).
            .request_processing(resetkit::flow::RequestProcessing::Immediate)
            .base_url(BASE_URL)
            .reset_path(RESET_PATH)
            .site_name("Harness Example")
            .clock(self.clock.clone())
            .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
            .token_policy(self.token_policy)
            .rate_limits(self.rate_limits)
            .duplicate_email_policy(self.duplicates)
            .identifier_mode(self.identifier_mode)
            .require_confirmed_email(self.require_confirmed_email)
            .retry_policy(self.retry)
            .delivery(self.delivery)
            .sender(self.sender_resolver())
            .session_revoker(self.sessions.clone())
            .templates(self.templates.clone())
            .fingerprint_key(Self::fingerprint_key())
    }
}

fn mailbox(address: &'static str) -> Mailbox {
    // Only called with the constants above, which are valid addresses.
    #[allow(clippy::expect_used)]
    Mailbox::address_only(address).expect("harness sender constants are valid addresses")
}

/// A service built for one scenario, with the handles the harness needs.
pub struct Target {
    /// The service under test.
    pub service: ResetService,
    /// Its accounts (the harness seeds and edits them).
    pub accounts: Arc<dyn TargetAccounts>,
    /// Its event log, read back (the harness reads reasons from it).
    pub events: Arc<dyn Timeline>,
}

/// Builds a fresh service per scenario.
#[async_trait]
pub trait TargetFactory: Send + Sync {
    /// A short description for reports.
    fn describe(&self) -> String;

    /// Builds a service for one scenario. Start from
    /// `config.apply(ResetService::builder())`, then add stores and a mailer
    /// (normally `config.smtp_mailer()`); stores must be empty and private
    /// to this scenario.
    async fn build(&self, scenario: &str, config: &TargetConfig) -> Result<Target, String>;
}

/// The reference flow: in-memory stores and `SmtpMailer` to the fake server.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReferenceTarget;

/// The in-memory stores of one scenario.
#[derive(Clone, Default)]
pub struct MemoryStores {
    /// Accounts.
    pub accounts: Arc<InMemoryAccounts>,
    /// Tokens.
    pub tokens: Arc<InMemoryTokenStore>,
    /// Events.
    pub events: Arc<InMemoryEventLog>,
    /// Outbox.
    pub outbox: Arc<InMemoryOutbox>,
}

impl MemoryStores {
    /// Adds the stores to a builder (the outbox only in outbox mode).
    pub fn apply(&self, builder: ResetServiceBuilder, config: &TargetConfig) -> ResetServiceBuilder {
        let builder = builder
            .accounts(config.with_faults(self.accounts.clone()))
            .tokens(self.tokens.clone())
            .events(self.events.clone());
        if config.delivery == DeliveryMode::Outbox {
            builder.outbox(self.outbox.clone() as Arc<dyn Outbox>)
        } else {
            builder
        }
    }

    /// Wraps a built service with these stores' handles.
    pub fn target(&self, service: ResetService) -> Target {
        Target {
            service,
            accounts: self.accounts.clone(),
            events: self.events.clone(),
        }
    }
}

#[async_trait]
impl TargetFactory for ReferenceTarget {
    fn describe(&self) -> String {
        "reference flow (in-memory stores + SmtpMailer to the fake server)".into()
    }

    async fn build(&self, _scenario: &str, config: &TargetConfig) -> Result<Target, String> {
        let stores = MemoryStores::default();
        let mailer: Arc<dyn Mailer> = Arc::new(config.smtp_mailer()?);
        let service = stores
            .apply(config.apply(ResetService::builder()), config)
            .mailer(mailer)
            .build()
            .map_err(|e| format!("building the reference service: {e}"))?;
        Ok(stores.target(service))
    }
}
