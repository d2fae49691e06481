//! Everything behind the pages: stores (memory or PostgreSQL), the mailer
//! (the in-process capture server or a real SMTP server), the demo accounts
//! and the [`ResetService`] with its delivery worker.
//!
//! `request` only records the request in an inbox (in PostgreSQL with
//! `DATABASE_URL`, so nothing accepted is lost in a crash); in-process
//! workers look the accounts up, issue tokens and queue the mail in an
//! outbox that delivery workers drain concurrently over a pool of SMTP
//! connections. So the answer to "forgot password" neither waits for nor
//! depends on the account or the mail server, and when the inbox cannot be
//! written the page answers 503 for every identifier alike.

use std::sync::Arc;
use std::time::Duration;

use resetkit::ResetService;
use resetkit::account::AccountDirectory;
use resetkit::activity::{ActivityLog, QueueAge};
use resetkit::delivery::{DeliveryMode, DeliveryWorker, WorkerThread};
use resetkit::flow::{ConsoleStores, RequestProcessing, Retention, RetentionStores, TemplateChanges};
use resetkit::hasher::{Argon2Hasher, PasswordHash, PasswordHasher};
use resetkit::mail::{Mailbox, Mailer, SenderProbe};
use resetkit::memory::{
    InMemoryAccounts, InMemoryEventLog, InMemoryInbox, InMemoryOutbox, InMemoryTokenStore,
};
use resetkit::metrics::ResetMetrics;
use resetkit::sender::{FixedSender, QueueSender, SenderChain};
use resetkit::store::{EventLog, Outbox, RateLimiter, RequestInbox, TokenStore};
use resetkit::template::{InMemoryTemplateStore, TemplateStore};
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_postgres::PgStores;
use resetkit_smtp::{ConnectionReuse, SmtpConfig, SmtpMailer, TlsMode};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgPoolOptions;
use tokio::sync::watch;
use url::{Host, Url};

use crate::config::{PortalConfig, PortalError};
use crate::seed;
use crate::session::SessionStore;

/// How often the worker looks at the outbox when nothing woke it
/// (retries scheduled for later, messages enqueued by other instances).
const WORKER_POLL: Duration = Duration::from_secs(1);

/// What the portal keeps: a demo keeps a day of activity and an hour of
/// finished mail; the workers purge every minute.
const RETENTION: Retention = Retention {
    events: Duration::from_secs(24 * 3600),
    finished_mail: Duration::from_secs(3600),
    expired_tokens: Duration::from_secs(3600),
    every: Duration::from_secs(60),
    batch: 10_000,
};

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
    /// The same store where several instances share it (PostgreSQL): the
    /// portal follows its changes so a template saved on any instance is
    /// in force on this one within about a second.
    pub(crate) template_changes: Option<Arc<dyn TemplateChanges>>,
    pub(crate) worker: DeliveryWorker,
    /// `capture` or the SMTP URL without its password.
    pub(crate) mail_label: String,
    /// `memory` or `postgres`.
    pub(crate) store_label: &'static str,
    /// The flow's Prometheus metrics (served at `/metrics` to operators).
    pub(crate) metrics: ResetMetrics,
    /// What the console's overview reads.
    pub(crate) activity: Arc<dyn ActivityLog>,
    pub(crate) queue: Arc<dyn QueueAge>,
    /// What the console's timeline, queue and rate-limit pages read.
    pub(crate) console: ConsoleStores,
}

struct Stores {
    accounts: Arc<dyn AccountDirectory>,
    tokens: Arc<dyn TokenStore>,
    limiter: Arc<dyn RateLimiter>,
    /// What the workers purge and what the console reads.
    retention: RetentionStores,
    console: ConsoleStores,
    events: Arc<dyn EventLog>,
    activity: Arc<dyn ActivityLog>,
    outbox: Arc<dyn Outbox>,
    queue: Arc<dyn QueueAge>,
    inbox: Arc<dyn RequestInbox>,
    templates: Arc<dyn TemplateStore>,
    template_changes: Option<Arc<dyn TemplateChanges>>,
    label: &'static str,
}

impl Backend {
    pub(crate) async fn start(
        config: &PortalConfig,
        secrets: &resetkit::secrets::DeploymentSecrets,
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
        let metrics = ResetMetrics::new();
        let mut builder = ResetService::builder()
            .metrics(metrics.clone())
            .base_url(base.as_str())
            .secrets(secrets)
            .site_name("resetkit portal")
            .accounts(stores.accounts.clone())
            .token_store(stores.tokens.clone())
            .rate_limiter(stores.limiter)
            .events(stores.events)
            .outbox(stores.outbox)
            .inbox(stores.inbox)
            .retention(RETENTION)
            .retention_stores(stores.retention)
            .delivery(DeliveryMode::Outbox)
            .mail_backlog_limit(config.mail_backlog_limit)
            // The request worker runs on a thread of its own (`start_workers`).
            .request_processing(RequestProcessing::External)
            .mailer(mailer)
            // noreply@, and when the server refuses it the shared support
            // mailbox: the console shows the refusal and the fallback.
            .sender(Arc::new(SenderChain::new(vec![
                Arc::new(FixedSender::new(from)),
                Arc::new(QueueSender::new(fallback)),
            ])))
            .hasher(hasher.clone())
            .rate_limits(config.rate_limits.unwrap_or_default())
            .session_revoker(sessions);
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
            .ok_or_else(|| PortalError::Startup("the service has no outbox worker".into()))?
            .with_concurrency(config.delivery_workers);
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
            template_changes: stores.template_changes,
            worker,
            mail_label,
            store_label: stores.label,
            metrics,
            activity: stores.activity,
            queue: stores.queue,
            console: stores.console,
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
        .reuse_connections(ConnectionReuse::default())
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
    let mut demo = seed::demo_accounts(hasher).await?;
    demo.extend(seed::load_test_accounts(config.load_test_accounts));
    let Some(url) = &config.database_url else {
        let accounts = InMemoryAccounts::default();
        for account in demo {
            accounts.insert(account);
        }
        let events = Arc::new(InMemoryEventLog::default());
        let outbox = Arc::new(InMemoryOutbox::default());
        let tokens = Arc::new(InMemoryTokenStore::default());
        return Ok(Stores {
            accounts: Arc::new(accounts),
            tokens: tokens.clone(),
            limiter: tokens.clone(),
            retention: RetentionStores::new(tokens.clone(), events.clone()).with_outbox(outbox.clone()),
            console: ConsoleStores::new(events.clone(), tokens).with_outbox(outbox.clone()),
            events: events.clone(),
            activity: events,
            outbox: outbox.clone(),
            queue: outbox,
            inbox: Arc::new(InMemoryInbox::default()),
            templates: Arc::new(InMemoryTemplateStore::default()),
            template_changes: None,
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
        limiter: stores.tokens.clone(),
        retention: stores.retention_stores(),
        console: stores.console_stores(),
        events: stores.events.clone(),
        activity: stores.events.clone(),
        outbox: stores.outbox.clone(),
        queue: stores.outbox.clone(),
        inbox: stores.inbox.clone(),
        templates: stores.templates.clone(),
        template_changes: Some(stores.templates.clone()),
        label: "postgres",
    })
}

/// How often an instance on PostgreSQL looks whether the templates changed
/// (one primary-key read; none per request).
const TEMPLATE_LOOK: Duration = Duration::from_secs(1);

/// Follows the shared template store until `stop` changes: a template saved
/// on another instance is in force here within about [`TEMPLATE_LOOK`].
pub(crate) async fn follow_templates(
    service: ResetService,
    store: Arc<dyn TemplateChanges>,
    mut stop: watch::Receiver<bool>,
) {
    let stopped = async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                return;
            }
        }
    };
    service.follow_templates(store, TEMPLATE_LOOK, stopped).await;
}

/// How many requests the request worker processes at once.
const REQUEST_WORKERS: usize = 2;

/// The workers, each on a thread and runtime of its own (a flood of
/// requests on the portal's runtime must not hold up the processing of
/// accepted requests or the mail going out), until `stop` changes (or its
/// sender is dropped): the request worker (processes the inbox, purges),
/// woken by each accepted request, and the delivery worker (drains the
/// outbox with its concurrency), woken by each queued message.
pub(crate) fn start_workers(
    service: &ResetService,
    delivery: DeliveryWorker,
    stop: &watch::Receiver<bool>,
) -> Result<[WorkerThread; 2], PortalError> {
    let stopped = |mut stop: watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let thread_error = |e: std::io::Error| PortalError::Startup(format!("starting a worker thread: {e}"));
    let requests = service
        .request_worker()
        .with_concurrency(REQUEST_WORKERS)
        .spawn_on_own_thread(WORKER_POLL, stopped(stop.clone()))
        .map_err(thread_error)?;
    let delivery = delivery
        .spawn_on_own_thread(WORKER_POLL, stopped(stop.clone()))
        .map_err(thread_error)?;
    Ok([requests, delivery])
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
