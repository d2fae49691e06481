//! Everything behind the pages: stores (memory or PostgreSQL), the mailer
//! (the in-process capture server or a real SMTP server), the demo accounts
//! and the [`ResetService`] with its delivery worker.
//!
//! Requests are processed off the request path
//! (`process_requests_in_background`) and mail goes through an outbox that a
//! worker drains, so the answer to "forgot password" neither waits for nor
//! depends on the account or the mail server. The outbox is wrapped so that
//! each new message wakes the worker at once instead of at its next poll.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use resetkit::ResetService;
use resetkit::account::AccountDirectory;
use resetkit::delivery::{DeliveryMode, DeliveryWorker};
use resetkit::error::StoreError;
use resetkit::hasher::{Argon2Hasher, PasswordHash, PasswordHasher};
use resetkit::mail::{DeliveryError, Mailbox, Mailer, SenderProbe};
use resetkit::memory::{InMemoryAccounts, InMemoryEventLog, InMemoryOutbox, InMemoryTokenStore};
use resetkit::sender::{FixedSender, QueueSender, SenderChain};
use resetkit::store::{
    EventLog, Outbox, OutboxCounts, OutboxEntry, OutboxMessage, OutboxState, OutboxStatus, TokenStore,
};
use resetkit::template::{InMemoryTemplateStore, TemplateStore};
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_postgres::PgStores;
use resetkit_smtp::{SmtpConfig, SmtpMailer, TlsMode};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgPoolOptions;
use tokio::sync::{Notify, watch};
use url::{Host, Url};

use crate::config::{PortalConfig, PortalError};
use crate::seed;
use crate::session::SessionStore;

/// How often the worker looks at the outbox when nothing woke it
/// (retries scheduled for later, messages enqueued by other instances).
const WORKER_POLL: Duration = Duration::from_secs(1);

/// How often the worker deletes expired tokens, and how many per pass.
const PURGE_EVERY: Duration = Duration::from_secs(60);
const PURGE_BATCH: usize = 1000;

/// The parts the pages use.
pub(crate) struct Backend {
    pub(crate) service: ResetService,
    pub(crate) accounts: Arc<dyn AccountDirectory>,
    pub(crate) hasher: Arc<dyn PasswordHasher>,
    /// A hash of a random password, verified when signing in to an unknown
    /// account so that the answer takes as long as for a known one.
    pub(crate) decoy_hash: PasswordHash,
    pub(crate) capture: Option<FakeSmtpServer>,
    /// The SMTP preflight behind the console's sender check.
    pub(crate) probe: Arc<dyn SenderProbe>,
    /// Operator-edited email templates.
    pub(crate) templates: Arc<dyn TemplateStore>,
    pub(crate) worker: DeliveryWorker,
    pub(crate) wake: Arc<Notify>,
    /// The token store, for purging expired tokens.
    pub(crate) tokens: Arc<dyn TokenStore>,
    /// `capture` or the SMTP URL without its password.
    pub(crate) mail_label: String,
    /// `memory` or `postgres`.
    pub(crate) store_label: &'static str,
}

struct Stores {
    accounts: Arc<dyn AccountDirectory>,
    tokens: Arc<dyn TokenStore>,
    events: Arc<dyn EventLog>,
    outbox: Arc<dyn Outbox>,
    templates: Arc<dyn TemplateStore>,
    label: &'static str,
}

impl Backend {
    pub(crate) async fn start(
        config: &PortalConfig,
        base: &Url,
        allow_http: bool,
        sessions: Arc<SessionStore>,
    ) -> Result<Backend, PortalError> {
        let hasher: Arc<dyn PasswordHasher> = Arc::new(if config.fast_hash {
            Argon2Hasher::fast_insecure_for_tests()
        } else {
            Argon2Hasher::owasp()
        });
        let from = sender_mailbox(config, base)?;
        let fallback = fallback_mailbox(&from)?;
        let (mailer, probe, capture, mail_label) = mailer(config)?;
        let stores = stores(config, hasher.clone()).await?;
        let wake = Arc::new(Notify::new());
        let outbox: Arc<dyn Outbox> = Arc::new(WakingOutbox {
            inner: stores.outbox,
            wake: wake.clone(),
        });
        let mut builder = ResetService::builder()
            .base_url(base.as_str())
            .site_name("resetkit portal")
            .accounts(stores.accounts.clone())
            .tokens(stores.tokens.clone())
            .events(stores.events)
            .outbox(outbox)
            .delivery(DeliveryMode::Outbox)
            .mailer(mailer)
            // noreply@, and when the server refuses it the shared support
            // mailbox: the console shows the refusal and the fallback.
            .sender(Arc::new(SenderChain::new(vec![
                Arc::new(FixedSender::new(from)),
                Arc::new(QueueSender::new(fallback)),
            ])))
            .hasher(hasher.clone())
            .rate_limits(config.rate_limits.unwrap_or_default())
            .session_revoker(sessions)
            .process_requests_in_background(true);
        if allow_http {
            builder = builder.allow_insecure_http_for_local_testing();
        }
        let service = builder.build()?;
        service
            .reload_templates_from(stores.templates.as_ref())
            .await
            .map_err(|e| PortalError::Startup(format!("the stored email templates: {e}")))?;
        let worker = service
            .delivery_worker()
            .ok_or_else(|| PortalError::Startup("the service has no outbox worker".into()))?;
        let decoy_hash = {
            let hasher = hasher.clone();
            let mut bytes = [0u8; 24];
            rand::fill(&mut bytes[..]);
            let decoy = SecretString::from(format!("{bytes:02x?}"));
            tokio::task::spawn_blocking(move || hasher.hash(&decoy))
                .await
                .map_err(|e| PortalError::Startup(format!("hashing the decoy password: {e}")))?
                .map_err(|e| PortalError::Startup(format!("hashing the decoy password: {e}")))?
        };
        Ok(Backend {
            service,
            accounts: stores.accounts,
            hasher,
            decoy_hash,
            capture,
            probe,
            templates: stores.templates,
            worker,
            wake,
            tokens: stores.tokens,
            mail_label,
            store_label: stores.label,
        })
    }
}

/// `--from`, or `noreply@` the base URL's domain, or `noreply@portal.localhost`.
fn sender_mailbox(config: &PortalConfig, base: &Url) -> Result<Mailbox, PortalError> {
    let address = match (&config.from, base.host()) {
        (Some(from), _) => from.clone(),
        (None, Some(Host::Domain(domain))) if domain.contains('.') => format!("noreply@{domain}"),
        (None, _) => "noreply@portal.localhost".to_owned(),
    };
    Mailbox::new(Some("resetkit portal"), &address).map_err(|e| PortalError::From {
        value: address.clone(),
        reason: e.to_string(),
    })
}

/// `support@` the sender's domain: the chain's fallback sender.
fn fallback_mailbox(from: &Mailbox) -> Result<Mailbox, PortalError> {
    let address = format!("support@{}", from.domain());
    Mailbox::new(Some("resetkit portal support"), &address).map_err(|e| PortalError::From {
        value: address.clone(),
        reason: e.to_string(),
    })
}

type MailerParts = (
    Arc<dyn Mailer>,
    Arc<dyn SenderProbe>,
    Option<FakeSmtpServer>,
    String,
);

fn mailer(config: &PortalConfig) -> Result<MailerParts, PortalError> {
    if let Some(url) = &config.smtp {
        let mailer = Arc::new(SmtpMailer::from_url(url.expose_secret())?);
        return Ok((mailer.clone(), mailer, None, redact_url(url.expose_secret())));
    }
    let capture = FakeSmtpServer::builder()
        .name("portal-capture.localhost")
        .start()?;
    let smtp = SmtpConfig::builder(capture.addr().ip().to_string())
        .port(capture.port())
        .tls(TlsMode::None)
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(5))
        .build()?;
    let mailer = Arc::new(SmtpMailer::new(smtp)?);
    Ok((mailer.clone(), mailer, Some(capture), "capture".into()))
}

/// The URL with its password (if any) replaced by `***`.
pub(crate) fn redact_url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "[unparseable URL]".into(),
    }
}

async fn stores(config: &PortalConfig, hasher: Arc<dyn PasswordHasher>) -> Result<Stores, PortalError> {
    let demo = seed::demo_accounts(hasher).await?;
    let Some(url) = &config.database_url else {
        let accounts = InMemoryAccounts::default();
        for account in demo {
            accounts.insert(account);
        }
        return Ok(Stores {
            accounts: Arc::new(accounts),
            tokens: Arc::new(InMemoryTokenStore::default()),
            events: Arc::new(InMemoryEventLog::default()),
            outbox: Arc::new(InMemoryOutbox::default()),
            templates: Arc::new(InMemoryTemplateStore::default()),
            label: "memory",
        });
    };
    let db = |step: &'static str| {
        move |e: &dyn std::fmt::Display| PortalError::Database {
            step,
            reason: e.to_string(),
        }
    };
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url.expose_secret())
        .await
        .map_err(|e| db("connect")(&e))?;
    let stores = PgStores::new(pool, &config.db_schema).map_err(|e| db("schema (`--db-schema`)")(&e))?;
    stores.migrate().await.map_err(|e| db("migrate")(&e))?;
    let accounts = stores.own_accounts().map_err(|e| db("accounts table")(&e))?;
    for account in &demo {
        accounts
            .upsert(account)
            .await
            .map_err(|e| db("seeding the demo accounts")(&e))?;
    }
    Ok(Stores {
        accounts,
        tokens: stores.tokens.clone(),
        events: stores.events.clone(),
        outbox: stores.outbox.clone(),
        templates: stores.templates.clone(),
        label: "postgres",
    })
}

/// Drains the outbox until `stop` changes (or its sender is dropped): right
/// away when woken, else every [`WORKER_POLL`]; and deletes expired tokens
/// every [`PURGE_EVERY`].
pub(crate) async fn run_worker(
    worker: DeliveryWorker,
    wake: Arc<Notify>,
    tokens: Arc<dyn TokenStore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next_purge = tokio::time::Instant::now() + PURGE_EVERY;
    loop {
        if *stop.borrow() {
            return;
        }
        if tokio::time::Instant::now() >= next_purge {
            next_purge += PURGE_EVERY;
            match tokens.purge_expired(SystemTime::now(), PURGE_BATCH).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "purged expired reset tokens"),
                Err(error) => tracing::error!(%error, "purging expired reset tokens failed"),
            }
        }
        let busy = match worker.run_once().await {
            Ok(report) => report.sent + report.retried + report.failed > 0,
            Err(error) => {
                tracing::error!(%error, "delivery worker: outbox unavailable");
                false
            }
        };
        if busy {
            continue;
        }
        tokio::select! {
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
            () = wake.notified() => {}
            () = tokio::time::sleep(WORKER_POLL) => {}
        }
    }
}

/// An outbox that wakes the delivery worker whenever a message is added.
struct WakingOutbox {
    inner: Arc<dyn Outbox>,
    wake: Arc<Notify>,
}

#[async_trait]
impl Outbox for WakingOutbox {
    async fn enqueue(&self, entry: OutboxEntry) -> Result<(), StoreError> {
        self.inner.enqueue(entry).await?;
        self.wake.notify_one();
        Ok(())
    }

    async fn claim(
        &self,
        now: SystemTime,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.inner.claim(now, max, lease).await
    }

    async fn mark_sent(&self, message_id: &str, attempt: u32, now: SystemTime) -> Result<(), StoreError> {
        self.inner.mark_sent(message_id, attempt, now).await
    }

    async fn mark_failed(
        &self,
        message_id: &str,
        attempt: u32,
        error: &DeliveryError,
        retry_at: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        self.inner.mark_failed(message_id, attempt, error, retry_at).await
    }

    async fn mark_dropped(&self, message_id: &str, attempt: u32, reason: &str) -> Result<(), StoreError> {
        self.inner.mark_dropped(message_id, attempt, reason).await
    }

    async fn status(&self, message_id: &str) -> Result<Option<OutboxStatus>, StoreError> {
        self.inner.status(message_id).await
    }

    async fn counts(&self) -> Result<OutboxCounts, StoreError> {
        self.inner.counts().await
    }

    async fn list_by_state(
        &self,
        state: OutboxState,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.inner.list_by_state(state, limit).await
    }

    async fn message(&self, message_id: &str) -> Result<Option<OutboxMessage>, StoreError> {
        self.inner.message(message_id).await
    }

    async fn retire_failed(&self, message_id: &str, reason: &str) -> Result<bool, StoreError> {
        self.inner.retire_failed(message_id, reason).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_passwords_never_reach_the_start_line() {
        let shown = redact_url("smtp://mailer:hunter2@mail.example.com:587?tls=starttls");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("mailer") && shown.contains("mail.example.com:587"));
        assert_eq!(
            redact_url("smtp://127.0.0.1:2525?tls=none"),
            "smtp://127.0.0.1:2525?tls=none"
        );
    }

    #[test]
    fn the_sender_follows_the_base_url_unless_configured() {
        let config = PortalConfig::default();
        let base = Url::parse("https://app.example.com").unwrap();
        assert_eq!(
            sender_mailbox(&config, &base).unwrap().address(),
            "noreply@app.example.com"
        );
        let local = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            sender_mailbox(&config, &local).unwrap().address(),
            "noreply@portal.localhost"
        );
        let bad = PortalConfig {
            from: Some("not an address".into()),
            ..PortalConfig::default()
        };
        assert!(
            sender_mailbox(&bad, &base)
                .unwrap_err()
                .to_string()
                .contains("--from")
        );
    }
}
