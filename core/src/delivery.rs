//! Getting emails out: inline (sent during the request) or through an outbox
//! drained by a [`DeliveryWorker`] that the host spawns, with retries and
//! exponential backoff on transient errors and a recorded reason when it
//! gives up.
//!
//! ```no_run
//! # async fn demo(service: resetkit::ResetService) {
//! use std::time::Duration;
//! let worker = service.delivery_worker().expect("outbox mode");
//! tokio::spawn(async move {
//!     worker.run(Duration::from_secs(1), std::future::pending::<()>()).await;
//! });
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::Instrument as _;

use rand::TryRng as _;

use crate::account::AccountDirectory;
use crate::account::AccountId;
use crate::clock::Clock;
use crate::error::StoreError;
use crate::event::{Event, EventKind};
use crate::fingerprint::FingerprintKey;
use crate::mail::{DeliveryError, MailContent, Mailbox, Mailer, OutgoingEmail, SentReceipt, SmtpReply};
use crate::metrics::ResetMetrics;
use crate::sender::SenderResolver;
use crate::store::TokenStore;
use crate::store::{EventLog, Outbox, OutboxEntry};
use crate::token::{EntropyError, RejectReason, TokenHash};

/// How many refused senders one message may fall back past in the worker.
const MAX_WORKER_FALLBACKS: usize = 4;

/// Messages a [`DeliveryWorker`] sends at once by default.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// How long a [`DeliveryWorker`] holds a claimed message by default. Short,
/// so that the messages of a worker that died are sent by another within
/// seconds; a live worker renews it every third of it while it sends.
pub const DELIVERY_LEASE: Duration = Duration::from_secs(15);

/// Retries of recording "sent" after the server accepted a message (see
/// `DeliveryWorker::commit_sent`).
const SENT_COMMIT_RETRIES: usize = 5;

/// How emails leave the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryMode {
    /// Send while the request is processed (by the request workers, or
    /// within `request` with `RequestProcessing::Immediate`); a failure is
    /// recorded as an event and not retried, and a slow mail server holds
    /// up the request workers: for local use and tests.
    Inline,
    /// Store in the outbox; a [`DeliveryWorker`] sends. The request never
    /// waits for SMTP, and nothing is lost while the server is down.
    Outbox,
}

/// Retry schedule for transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before giving up (including the first).
    pub max_attempts: u32,
    /// Delay after the first failure; doubles each time.
    pub base_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            // 30 s, 1 min, 2 min, 4 min: the last attempt starts 7.5 min
            // after the first, well inside the default 30-minute link lifetime,
            // so the worker does not deliver links that are already dead.
            max_attempts: 5,
            base_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// Delay before the next attempt after `attempts` failed ones, or `None`
    /// to give up.
    pub fn next_delay(&self, attempts: u32) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(30));
        Some(self.base_delay.saturating_mul(factor).min(self.max_delay))
    }
}

/// A fresh `<random@domain>` Message-ID.
pub fn new_message_id(domain: &str) -> Result<String, EntropyError> {
    Ok(message_id_on(&random_id()?, domain))
}

/// 128 random bits, hex.
pub(crate) fn random_id() -> Result<String, EntropyError> {
    let mut bytes = [0u8; 16];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| EntropyError(e.to_string()))?;
    Ok(crate::token::hex(&bytes))
}

/// The Message-ID `<{local}.resetkit@{domain}>` (on `resetkit.invalid`
/// when `domain` is empty).
pub(crate) fn message_id_on(local: &str, domain: &str) -> String {
    let domain = if domain.is_empty() {
        "resetkit.invalid"
    } else {
        domain
    };
    format!("<{local}.resetkit@{domain}>")
}

fn sent_event(now: SystemTime, account: Option<AccountId>, email: &OutgoingEmail) -> Event {
    Event::new(
        now,
        account,
        EventKind::EmailSent {
            message_id: email.message_id.clone(),
            from: email.from.address().to_owned(),
            to: email.to.address().to_owned(),
        },
    )
}

fn failed_event(
    now: SystemTime,
    account: Option<AccountId>,
    email: &OutgoingEmail,
    error: &DeliveryError,
    will_retry: bool,
) -> Event {
    Event::new(
        now,
        account,
        EventKind::DeliveryFailed {
            message_id: email.message_id.clone(),
            reason: error.to_string(),
            permanent: error.is_permanent(),
            will_retry,
            from: email.from.address().to_owned(),
            class: error.class(),
        },
    )
}

/// What the server answered to one attempt, as an event (when the mailer
/// reports a reply).
fn reply_event(
    now: SystemTime,
    account: Option<AccountId>,
    email: &OutgoingEmail,
    result: &Result<SentReceipt, DeliveryError>,
) -> Option<Event> {
    let (accepted, reply) = match result {
        Ok(receipt) => (
            true,
            receipt.server_reply.as_deref().and_then(SmtpReply::parse_line)?,
        ),
        Err(error) => (false, error.reply()?.clone()),
    };
    Some(Event::new(
        now,
        account,
        EventKind::ServerReplied {
            message_id: email.message_id.clone(),
            accepted,
            reply,
        },
    ))
}

/// The attempt's outcome event, preceded by the server's reply when known.
fn with_reply(reply: Option<Event>, outcome: Event) -> Vec<Event> {
    reply.into_iter().chain(std::iter::once(outcome)).collect()
}

/// Hands emails to delivery according to the mode.
#[derive(Clone)]
pub(crate) struct Dispatcher {
    pub(crate) mode: DeliveryMode,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) outbox: Option<Arc<dyn Outbox>>,
    pub(crate) events: Arc<dyn EventLog>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Woken by each enqueued message (the service's delivery workers).
    pub(crate) ready: Arc<tokio::sync::Notify>,
    pub(crate) metrics: Option<ResetMetrics>,
}

impl Dispatcher {
    /// Queues or sends `email`; returns the delivery error of an inline send.
    pub(crate) async fn dispatch(
        &self,
        email: OutgoingEmail,
        account: Option<AccountId>,
        tokens: Vec<TokenHash>,
        requested_at: Option<SystemTime>,
    ) -> Result<Option<DeliveryError>, StoreError> {
        match (self.mode, &self.outbox) {
            (DeliveryMode::Outbox, Some(outbox)) => {
                outbox
                    .enqueue(OutboxEntry {
                        email,
                        account,
                        attempts: 0,
                        next_attempt_at: self.clock.now(),
                        tokens,
                        requested_at,
                    })
                    .await?;
                self.ready.notify_one();
                Ok(None)
            }
            _ => {
                let result = self.mailer.send(&email).await;
                let reply = reply_event(self.clock.now(), account.clone(), &email, &result);
                let (event, failure) = match result {
                    Ok(_) => {
                        if let Some(metrics) = &self.metrics {
                            metrics.delivered_after(requested_at, self.clock.now());
                        }
                        (sent_event(self.clock.now(), account, &email), None)
                    }
                    Err(error) => {
                        tracing::warn!(message_id = %email.message_id, %error, "reset email not delivered");
                        let event = failed_event(self.clock.now(), account, &email, &error, false);
                        (event, Some(error))
                    }
                };
                self.events.record_all(with_reply(reply, event)).await?;
                Ok(failure)
            }
        }
    }
}

/// What one pass of the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Messages the server accepted.
    pub sent: usize,
    /// Transient failures scheduled for retry.
    pub retried: usize,
    /// Messages given up on.
    pub failed: usize,
    /// Messages not sent because their links died while they waited.
    pub dropped: usize,
}

/// Drains an outbox: claims due messages, sends, records the result.
/// Several workers (on several hosts, with a shared outbox) never send one
/// message twice while its lease holds.
#[derive(Clone)]
pub struct DeliveryWorker {
    outbox: Arc<dyn Outbox>,
    mailer: Arc<dyn Mailer>,
    events: Arc<dyn EventLog>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    batch: usize,
    lease: Duration,
    fallback: Option<SenderFallback>,
    tokens: Option<Arc<dyn TokenStore>>,
    concurrency: usize,
    wake: Option<Arc<tokio::sync::Notify>>,
    metrics: Option<ResetMetrics>,
    /// Keys the account fingerprint on the delivery spans.
    tracing_key: Option<FingerprintKey>,
}

/// A worker running on a thread of its own, with a tokio runtime of its
/// own (see [`DeliveryWorker::spawn_on_own_thread`] and
/// [`RequestWorker::spawn_on_own_thread`](crate::flow::RequestWorker::spawn_on_own_thread)).
/// Dropping it leaves the thread running until the worker's `shutdown`
/// future completes.
#[derive(Debug)]
pub struct WorkerThread {
    stopped: tokio::sync::oneshot::Receiver<()>,
    thread: std::thread::JoinHandle<()>,
}

impl WorkerThread {
    /// Runs `work` to completion on a new thread named `name`, on a
    /// current-thread runtime of its own.
    pub(crate) fn spawn<W>(name: &str, work: W) -> std::io::Result<WorkerThread>
    where
        W: Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (done, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || {
            runtime.block_on(work);
            drop(runtime);
            let _ = done.send(());
        })?;
        Ok(WorkerThread { stopped, thread })
    }

    /// Waits until the worker has stopped: its `shutdown` future completed
    /// and the work it had started was finished. (A worker that panicked
    /// counts as stopped.)
    pub async fn stopped(self) {
        let WorkerThread { stopped, thread } = self;
        let _ = stopped.await;
        // It has ended, or is ending: its last step was to signal.
        let _ = thread.join();
    }
}

/// Runs `n` loops made by `make` as tasks until `shutdown` completes, then
/// tells them to stop (their receiver turns `true`) and waits until they
/// have finished what they were doing.
pub(crate) async fn run_loops<S, M, L>(n: usize, shutdown: S, mut make: M)
where
    S: Future<Output = ()>,
    M: FnMut(tokio::sync::watch::Receiver<bool>) -> L,
    L: Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..n {
        loops.spawn(make(stop_rx.clone()));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    while loops.join_next().await.is_some() {}
}

/// What the worker needs to pick another sender when the server refuses one.
#[derive(Clone)]
struct SenderFallback {
    senders: Arc<dyn SenderResolver>,
    accounts: Arc<dyn AccountDirectory>,
}

impl std::fmt::Debug for DeliveryWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryWorker")
            .field("retry", &self.retry)
            .field("batch", &self.batch)
            .field("lease", &self.lease)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl DeliveryWorker {
    /// A worker over these parts, with the default retry policy, batches of
    /// 32, a [`DELIVERY_LEASE`] renewed while it sends and
    /// [`DEFAULT_CONCURRENCY`] sends in flight.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        mailer: Arc<dyn Mailer>,
        events: Arc<dyn EventLog>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        DeliveryWorker {
            outbox,
            mailer,
            events,
            clock,
            retry: RetryPolicy::default(),
            batch: 32,
            lease: DELIVERY_LEASE,
            fallback: None,
            tokens: None,
            concurrency: DEFAULT_CONCURRENCY,
            wake: None,
            metrics: None,
            tracing_key: None,
        }
    }

    /// Observes the request-to-delivery time of each message the server
    /// accepts (see [`crate::metrics`]); `None` observes nothing.
    pub fn with_metrics(mut self, metrics: Option<ResetMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Puts the account's keyed fingerprint (never its address) on each
    /// delivery's `tracing` span, under this key (the service's
    /// fingerprint key, so the request, delivery and completion spans of
    /// one account carry the same value).
    pub fn with_tracing_key(mut self, key: FingerprintKey) -> Self {
        self.tracing_key = Some(key);
        self
    }

    /// Sets how many messages [`run`](Self::run) sends at once (at least
    /// 1): that many loops claim and send independently, so one slow
    /// recipient server does not hold up the rest. Pair it with a mailer
    /// that keeps as many connections (`resetkit-smtp`'s pool).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// [`run`](Self::run) looks at the outbox as soon as `wake` is
    /// notified (the service notifies it for every message it queues),
    /// instead of at its next poll.
    pub fn with_wake(mut self, wake: Arc<tokio::sync::Notify>) -> Self {
        self.wake = Some(wake);
        self
    }

    /// When the server refuses a message's sender at `MAIL FROM`, ask
    /// `senders` for the next sender allowed for the account (looked up in
    /// `accounts`) and send from it, as inline delivery does.
    pub fn with_sender_fallback(
        mut self,
        senders: Arc<dyn SenderResolver>,
        accounts: Arc<dyn AccountDirectory>,
    ) -> Self {
        self.fallback = Some(SenderFallback { senders, accounts });
        self
    }

    /// Before each send, check in `tokens` that the message's links are
    /// still active; a message whose link died while it waited (superseded
    /// by a newer request, used, revoked, expired) is dropped with the
    /// reason recorded instead of arriving after the newer one.
    pub fn with_token_check(mut self, tokens: Arc<dyn TokenStore>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Why `entry` must not be sent: every link it carries is dead (the
    /// first one's reason). A combined email with one live link left is
    /// still sent, so that account is not left without its link.
    async fn dead_link(&self, entry: &OutboxEntry) -> Result<Option<RejectReason>, StoreError> {
        let Some(tokens) = &self.tokens else {
            return Ok(None);
        };
        let now = self.clock.now();
        let mut first_reason = None;
        for hash in &entry.tokens {
            let reason = match tokens.find(hash).await? {
                None => RejectReason::Unknown,
                Some(record) => match record.unusable_reason(now) {
                    Some(reason) => reason,
                    None => return Ok(None),
                },
            };
            first_reason.get_or_insert(reason);
        }
        Ok(first_reason)
    }

    /// Sends `email`; on a refused sender, falls back along the resolver
    /// (recording each refusal and the new sender). Returns the last email
    /// tried and its result.
    async fn send(
        &self,
        email: &OutgoingEmail,
        account: Option<&AccountId>,
    ) -> Result<(OutgoingEmail, Result<SentReceipt, DeliveryError>), StoreError> {
        let mut email = email.clone();
        let mut refused: Vec<Mailbox> = Vec::new();
        loop {
            let result = self.mailer.send(&email).await;
            let (Err(DeliveryError::SenderRejected { reply, .. }), Some(fallback), Some(id)) =
                (&result, &self.fallback, account)
            else {
                return Ok((email, result));
            };
            if refused.len() >= MAX_WORKER_FALLBACKS {
                return Ok((email, result));
            }
            let Some(owner) = fallback.accounts.find_by_id(id).await? else {
                return Ok((email, result));
            };
            let why = reply
                .as_ref()
                .map_or_else(|| "rejected at MAIL FROM".to_owned(), ToString::to_string);
            refused.push(email.from.clone());
            let choice = match fallback.senders.resolve_excluding(&owner, &refused, &why).await {
                Ok(choice) => choice,
                Err(error) => {
                    let reason = error.to_string();
                    self.events
                        .record(Event::new(
                            self.clock.now(),
                            Some(id.clone()),
                            EventKind::SenderUnavailable { reason },
                        ))
                        .await?;
                    return Ok((email, result));
                }
            };
            if let Err(error) = &result {
                let reply = reply_event(self.clock.now(), Some(id.clone()), &email, &result);
                let failed = failed_event(self.clock.now(), Some(id.clone()), &email, error, false);
                self.events.record_all(with_reply(reply, failed)).await?;
            }
            let message_id =
                new_message_id(choice.from.domain()).unwrap_or_else(|_| email.message_id.clone());
            let next = OutgoingEmail::new(
                message_id,
                email.kind,
                choice.from.clone(),
                choice.reply_to.clone(),
                email.to.clone(),
                MailContent {
                    subject: email.subject.clone(),
                    text: email.expose_text().to_owned(),
                    html: email.expose_html().to_owned(),
                },
            );
            self.events
                .record(Event::new(
                    self.clock.now(),
                    Some(id.clone()),
                    EventKind::EmailQueued {
                        message_id: next.message_id.clone(),
                        email: next.kind,
                        from: next.from.address().to_owned(),
                        to: next.to.address().to_owned(),
                        sender_strategy: choice.strategy.clone(),
                        sender_fallbacks: choice.fallbacks.iter().map(ToString::to_string).collect(),
                    },
                ))
                .await?;
            email = next;
        }
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets how many messages one pass claims.
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Sets how long a claim holds before another worker may take the
    /// message (renewed every third of it while the worker holds it).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Claims and sends the messages due now, renewing the leases of the
    /// claimed messages not finished yet every third of the lease (on a
    /// tokio runtime), so a short lease never runs out under a live worker.
    pub async fn run_once(&self) -> Result<WorkerReport, StoreError> {
        let claimed = self
            .outbox
            .claim(self.clock.now(), self.batch, self.lease)
            .await?;
        if claimed.is_empty() {
            return Ok(WorkerReport::default());
        }
        let held: std::sync::Mutex<Vec<(String, u32)>> = std::sync::Mutex::new(
            claimed
                .iter()
                .map(|e| (e.email.message_id.clone(), e.attempts))
                .collect(),
        );
        if tokio::runtime::Handle::try_current().is_err() {
            return self.send_claimed(claimed, &held).await;
        }
        let renew = async {
            let every = (self.lease / 3).max(Duration::from_millis(100));
            loop {
                tokio::time::sleep(every).await;
                let ids = held
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                for (id, attempt) in ids {
                    match self
                        .outbox
                        .renew(&id, attempt, self.clock.now(), self.lease)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(message_id = %id, "the lease of a message being sent was taken over")
                        }
                        Err(error) => {
                            tracing::warn!(message_id = %id, %error, "renewing a message's lease failed")
                        }
                    }
                }
            }
        };
        tokio::select! {
            report = self.send_claimed(claimed, &held) => report,
            never = renew => never,
        }
    }

    /// Records a message the server accepted as sent: the first store call
    /// after the server's 250 (one round trip), retried on a transient
    /// failure for up to about 1.5 s (well within the lease), so a
    /// database blip after the 250 does not leave the message to be sent
    /// again when its lease ends.
    async fn commit_sent(&self, message_id: &str, attempt: u32) -> Result<(), StoreError> {
        let mut delay = Duration::from_millis(50);
        for _ in 0..SENT_COMMIT_RETRIES {
            match self.outbox.mark_sent(message_id, attempt, self.clock.now()).await {
                Err(error) if error.is_transient() => {
                    tracing::warn!(%message_id, %error, "recording a sent message failed; retrying");
                    if tokio::runtime::Handle::try_current().is_ok() {
                        tokio::time::sleep(delay).await;
                    }
                    delay = delay.saturating_mul(2);
                }
                other => return other,
            }
        }
        self.outbox.mark_sent(message_id, attempt, self.clock.now()).await
    }

    async fn send_claimed(
        &self,
        claimed: Vec<OutboxEntry>,
        held: &std::sync::Mutex<Vec<(String, u32)>>,
    ) -> Result<WorkerReport, StoreError> {
        let release = |id: &str| {
            held.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|(held_id, _)| held_id != id);
        };
        let mut report = WorkerReport::default();
        for entry in claimed {
            let account = match (&self.tracing_key, &entry.account) {
                (Some(key), Some(id)) => Some(crate::fingerprint::account_fingerprint(key, id)),
                _ => None,
            };
            let span = tracing::info_span!(
                "resetkit.deliver",
                message_id = %entry.email.message_id,
                attempt = entry.attempts,
                account,
            );
            self.deliver_one(entry, &mut report, &release)
                .instrument(span)
                .await?;
        }
        Ok(report)
    }

    /// Sends one claimed message (or drops it when its links died) and
    /// records the result; `release` stops renewing its lease once the
    /// outcome is stored.
    async fn deliver_one(
        &self,
        entry: OutboxEntry,
        report: &mut WorkerReport,
        release: &(dyn Fn(&str) + Sync),
    ) -> Result<(), StoreError> {
        if let Some(reason) = self.dead_link(&entry).await? {
            let message_id = &entry.email.message_id;
            tracing::info!(%message_id, reason = reason.as_str(), "reset email not sent: its link is no longer active");
            let why = format!("not sent: its reset link is no longer active ({reason})");
            self.outbox.mark_dropped(message_id, entry.attempts, &why).await?;
            release(message_id);
            self.events
                .record(Event::new(
                    self.clock.now(),
                    entry.account.clone(),
                    EventKind::EmailDropped {
                        message_id: message_id.clone(),
                        reason,
                    },
                ))
                .await?;
            report.dropped += 1;
            return Ok(());
        }
        let (sent, result) = self.send(&entry.email, entry.account.as_ref()).await?;
        let email = &entry.email;
        let reply = reply_event(self.clock.now(), entry.account.clone(), &sent, &result);
        match result {
            Ok(_) => {
                self.commit_sent(&email.message_id, entry.attempts).await?;
                release(&email.message_id);
                if let Some(metrics) = &self.metrics {
                    metrics.delivered_after(entry.requested_at, self.clock.now());
                }
                let event = sent_event(self.clock.now(), entry.account.clone(), &sent);
                self.events.record_all(with_reply(reply, event)).await?;
                report.sent += 1;
            }
            Err(error) => {
                let retry_in = if error.is_transient() {
                    self.retry.next_delay(entry.attempts)
                } else {
                    None
                };
                tracing::warn!(message_id = %email.message_id, attempts = entry.attempts, %error, retry = retry_in.is_some(), "reset email delivery failed");
                self.outbox
                    .mark_failed(
                        &email.message_id,
                        entry.attempts,
                        &error,
                        self.clock.now(),
                        retry_in,
                    )
                    .await?;
                release(&email.message_id);
                let event = failed_event(
                    self.clock.now(),
                    entry.account.clone(),
                    &sent,
                    &error,
                    retry_in.is_some(),
                );
                self.events.record_all(with_reply(reply, event)).await?;
                if retry_in.is_some() {
                    report.retried += 1;
                } else {
                    report.failed += 1;
                }
            }
        }
        Ok(())
    }

    /// Runs until `shutdown` completes: [`with_concurrency`](Self::with_concurrency)
    /// loops, each claiming and sending messages right away while there is
    /// work, when woken (see [`with_wake`](Self::with_wake)), else every
    /// `poll`. Store errors are logged and retried on the next pass.
    /// Messages being sent when `shutdown` completes are finished first.
    pub async fn run<F: Future<Output = ()>>(&self, poll: Duration, shutdown: F) {
        // Each loop claims a share of the batch, so that they all get work.
        let share = (self.batch / self.concurrency).max(1);
        run_loops(self.concurrency, shutdown, |stop| {
            self.clone().with_batch(share).run_loop(poll, stop)
        })
        .await;
    }

    /// Runs [`run`](Self::run) on a thread of its own, with a tokio
    /// runtime of its own: a flood of requests on the application's
    /// runtime then cannot hold up the mail that is going out (each step of
    /// an SMTP conversation would otherwise wait its turn behind every
    /// request ready to run). Sending is mostly waiting on the mail
    /// server, so one thread carries [`with_concurrency`](Self::with_concurrency)
    /// sends at once.
    ///
    /// The mailer's connections opened by this thread belong to its
    /// runtime: use the mailer for this worker only (a pooled connection
    /// of a thread that ended fails and is opened again).
    ///
    /// ```no_run
    /// # async fn demo(service: resetkit::ResetService) -> std::io::Result<()> {
    /// use std::time::Duration;
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let delivery = service
    ///     .delivery_worker()
    ///     .expect("outbox delivery")
    ///     .spawn_on_own_thread(Duration::from_secs(1), async {
    ///         let _ = stopped.await;
    ///     })?;
    /// // ... serve requests; at shutdown:
    /// let _ = stop.send(());
    /// delivery.stopped().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn spawn_on_own_thread<F>(self, poll: Duration, shutdown: F) -> std::io::Result<WorkerThread>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        WorkerThread::spawn("resetkit-delivery", async move { self.run(poll, shutdown).await })
    }

    async fn run_loop(self, poll: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let wake = self.wake.clone().unwrap_or_default();
        loop {
            if *stop.borrow() {
                return;
            }
            let busy = match self.run_once().await {
                Ok(report) => {
                    let busy = report.sent + report.retried + report.failed + report.dropped > 0;
                    if busy {
                        tracing::debug!(?report, "delivery pass");
                    }
                    busy
                }
                Err(error) => {
                    tracing::error!(%error, "delivery worker: outbox unavailable");
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                changed = stop.changed() => if changed.is_err() { return },
                () = wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_gives_up() {
        let p = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(25),
        };
        assert_eq!(p.next_delay(1), Some(Duration::from_secs(10)));
        assert_eq!(p.next_delay(2), Some(Duration::from_secs(20)));
        assert_eq!(p.next_delay(3), Some(Duration::from_secs(25)));
        assert_eq!(p.next_delay(4), None);
    }

    #[test]
    fn message_ids_are_unique_on_the_sender_domain() {
        let a = new_message_id("example.com").unwrap();
        let b = new_message_id("example.com").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with('<') && a.ends_with("@example.com>"));
    }
}
