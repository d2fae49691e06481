//! The workers: who processes the request inbox ([`RequestProcessing`]),
//! the request worker ([`RequestWorker`]), the delivery worker
//! ([`ResetService::delivery_worker`]) and the retention purges they run
//! ([`Retention`], [`RetentionStores`]).
//!
//! `request` only records a request; the work behind it (account lookup,
//! token, mail) happens here, off the request path:
//!
//! ```no_run
//! # async fn demo(service: resetkit::ResetService) {
//! use std::time::Duration;
//! // With `RequestProcessing::External`, e.g. in a separate worker process
//! // sharing a PostgreSQL inbox with the web processes:
//! let worker = service.request_worker();
//! worker.run(Duration::from_secs(1), std::future::pending::<()>()).await;
//! # }
//! ```

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};
use tracing::Instrument as _;

use std::sync::Arc;

use crate::delivery::{DeliveryWorker, WorkerThread, run_loops};
use crate::error::StoreError;
use crate::flow::{Inner, ResetService};
use crate::store::{EventRetention, InboxRequest, OutboxRetention, TokenRetention};

/// Who processes the requests that [`ResetService::request`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestProcessing {
    /// Tasks in this process (the default, with 2): spawned when the
    /// service is built (on the tokio runtime it is built on; else on the
    /// runtime of the first request), so that requests accepted before a
    /// restart are processed without waiting for a new one; woken by each
    /// new request, ended when the last clone of the service is dropped. They also run the
    /// [`Retention`] purges. Without a tokio runtime, `request` processes
    /// the inbox itself before returning.
    InProcess {
        /// How many requests are processed at once (at least 1).
        workers: usize,
    },
    /// The host runs [`ResetService::request_worker`] (in this process or in
    /// others that share a PostgreSQL inbox).
    External,
    /// `request` processes the inbox before it returns, so the mail is
    /// queued or sent when it does: for tests and walk-throughs only (a
    /// known identifier then answers measurably slower than an unknown one).
    Immediate,
}

impl Default for RequestProcessing {
    fn default() -> Self {
        RequestProcessing::InProcess { workers: 2 }
    }
}

/// How long records are kept, and how often the workers purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events older than this are deleted (default 90 days).
    pub events: Duration,
    /// Sent, given-up and dropped outbox messages older than this are
    /// deleted (default 7 days).
    pub finished_mail: Duration,
    /// Tokens expired for longer than this are deleted (default 1 day;
    /// until then a late click is told "expired" rather than "unknown").
    pub expired_tokens: Duration,
    /// How often a worker purges (default 60 s).
    pub every: Duration,
    /// Most rows one purge deletes per kind (default 10,000).
    pub batch: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            events: Duration::from_secs(90 * 24 * 3600),
            finished_mail: Duration::from_secs(7 * 24 * 3600),
            expired_tokens: Duration::from_secs(24 * 3600),
            every: Duration::from_secs(60),
            batch: 10_000,
        }
    }
}

/// The stores the workers purge per [`Retention`]: each must implement
/// its retention capability, so a store that cannot purge cannot be given
/// here (it is a compile error, not a purge that silently deletes nothing).
///
/// ```
/// use std::sync::Arc;
/// use resetkit::flow::RetentionStores;
/// use resetkit::memory::{InMemoryEventLog, InMemoryOutbox, InMemoryTokenStore};
///
/// let stores = RetentionStores::new(
///     Arc::new(InMemoryTokenStore::default()),
///     Arc::new(InMemoryEventLog::default()),
/// )
/// .with_outbox(Arc::new(InMemoryOutbox::default()));
/// # let _ = stores;
/// ```
#[derive(Clone)]
pub struct RetentionStores {
    pub(crate) tokens: Arc<dyn TokenRetention>,
    pub(crate) events: Arc<dyn EventRetention>,
    pub(crate) outbox: Option<Arc<dyn OutboxRetention>>,
}

impl RetentionStores {
    /// Purges expired tokens and old rate-limit entries from `tokens`, old
    /// events from `events`.
    pub fn new(tokens: Arc<dyn TokenRetention>, events: Arc<dyn EventRetention>) -> Self {
        RetentionStores {
            tokens,
            events,
            outbox: None,
        }
    }

    /// Also purges finished mail from `outbox`.
    pub fn with_outbox(mut self, outbox: Arc<dyn OutboxRetention>) -> Self {
        self.outbox = Some(outbox);
        self
    }
}

impl std::fmt::Debug for RetentionStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetentionStores")
            .field("outbox", &self.outbox.is_some())
            .finish_non_exhaustive()
    }
}

/// What one purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Events past retention.
    pub events: usize,
    /// Finished outbox messages past retention.
    pub mail: usize,
    /// Expired tokens.
    pub tokens: usize,
    /// Rate-limit entries older than the longest window.
    pub rate_entries: usize,
}

/// Work waiting: requests not processed yet and mail not sent yet (a
/// figure for health checks and dashboards).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Requests in the inbox.
    pub requests: usize,
    /// Messages waiting in the outbox (pending or being sent).
    pub mail: usize,
}

impl Backlog {
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.requests == 0 && self.mail == 0
    }
}

/// What one pass of a [`RequestWorker`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestReport {
    /// Requests processed and deleted from the inbox.
    pub processed: usize,
    /// Requests given back for a later attempt (a store failed).
    pub retried: usize,
    /// Requests given up (see [`MAX_REQUEST_ATTEMPTS`]).
    pub abandoned: usize,
}

/// Attempts after which a request that keeps failing for a reason other
/// than an unavailable store (corrupt data, say) is given up and logged.
/// A store that is down is waited for, up to [`MAX_REQUEST_AGE`].
pub const MAX_REQUEST_ATTEMPTS: u32 = 10;

/// Age after which a request still failing is given up and logged (a reset
/// mail hours late helps nobody; the user has asked again by then).
pub const MAX_REQUEST_AGE: Duration = Duration::from_secs(3600);

/// How long a claimed request is leased to one worker. Short, so that the
/// requests of a worker that died come back within seconds; a live worker
/// renews it every 5 s (`RENEW_EVERY`) for as long as it works on the request
/// (inline delivery with sender fallbacks included).
pub const REQUEST_LEASE: Duration = Duration::from_secs(15);
/// How often a worker renews the lease of the request it works on.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// Requests one claim takes: one, so that no claimed request waits behind
/// others while its lease runs.
const CLAIM: usize = 1;
/// Requests one pass processes (claimed one at a time).
const BATCH: usize = 16;
/// How long in-process workers of a service nobody holds any more keep
/// waiting for requests scheduled for later before they end.
const ORPHAN_GRACE: Duration = Duration::from_secs(300);
/// How long in-process workers wait for a wake-up before looking again
/// (leases that ran out, retries).
const IN_PROCESS_POLL: Duration = Duration::from_secs(1);
/// How old a request must be before a worker processes it: its answer has
/// long been written by then, so the work that differs by account (lookup,
/// token, mail) never runs while that request's own response is being
/// sent. A queue with a backlog is processed without waiting.
pub const REQUEST_SETTLE: Duration = Duration::from_millis(5);
/// How long `request` answers "full" without trying the inbox after it was
/// found full (unless a worker of this service makes room sooner).
const SHED_RECHECK: Duration = Duration::from_millis(10);

/// Cheap shedding: once the inbox said it is full, `request` answers
/// "full" without touching the inbox until a worker of this service
/// finished a request (one place freed: the next request may take it) or
/// [`SHED_RECHECK`] passed (room freed by other instances). A flood of
/// refused requests then costs no store call, no random id and no lock.
#[derive(Debug)]
pub(crate) struct ShedGate {
    epoch: std::time::Instant,
    /// Until when (microseconds since `epoch`) to shed; 0: open.
    until: std::sync::atomic::AtomicU64,
    capacity: std::sync::atomic::AtomicUsize,
}

impl Default for ShedGate {
    fn default() -> Self {
        ShedGate {
            epoch: std::time::Instant::now(),
            until: std::sync::atomic::AtomicU64::new(0),
            capacity: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl ShedGate {
    fn now_micros(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The error to answer with while the inbox is known to be full.
    pub(crate) fn shedding(&self) -> Option<StoreError> {
        let until = self.until.load(Ordering::Relaxed);
        (until != 0 && self.now_micros() < until).then(|| StoreError::Full {
            operation: "inbox.push",
            what: "the request inbox",
            capacity: self.capacity.load(Ordering::Relaxed),
        })
    }

    /// The inbox refused a request: shed for a while.
    pub(crate) fn close(&self, error: &StoreError) {
        if let StoreError::Full { capacity, .. } = error {
            self.capacity.store(*capacity, Ordering::Relaxed);
            let until = self
                .now_micros()
                .saturating_add(SHED_RECHECK.as_micros() as u64)
                .max(1);
            self.until.store(until, Ordering::Relaxed);
        }
    }

    /// A request left the inbox: let the next one try.
    pub(crate) fn open(&self) {
        if self.until.load(Ordering::Relaxed) != 0 {
            self.until.store(0, Ordering::Relaxed);
        }
    }
}

/// Messages that may wait in the outbox before the request workers stop
/// taking requests (see
/// [`ResetServiceBuilder::mail_backlog_limit`](crate::ResetServiceBuilder::mail_backlog_limit)).
pub const DEFAULT_MAIL_BACKLOG_LIMIT: usize = 10_000;
/// How often a worker held by the mail backlog looks again.
const BACKLOG_RECHECK: Duration = Duration::from_millis(50);

/// The mail backlog limit, and whether the workers hold requests because
/// of it (so that starting and ending a hold is logged once, not per pass).
#[derive(Debug)]
pub(crate) struct MailBacklog {
    limit: usize,
    holding: std::sync::atomic::AtomicBool,
}

impl MailBacklog {
    pub(crate) fn new(limit: usize) -> Self {
        MailBacklog {
            limit: limit.max(1),
            holding: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Notes whether the backlog holds requests now; logs a change.
    fn set(&self, holding: bool) {
        if self.holding.swap(holding, Ordering::Relaxed) != holding {
            if holding {
                tracing::warn!(
                    limit = self.limit,
                    "password reset requests wait in the inbox: this many reset emails wait to be sent"
                );
            } else {
                tracing::info!("password reset requests are processed again: the mail backlog went down");
            }
        }
    }
}

/// What one pass of a worker found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// It processed requests (or failed some): look again right away.
    Worked,
    /// Nothing was due: wait for a new request.
    Idle,
    /// Too much mail waits: look again after [`BACKLOG_RECHECK`] (a new
    /// request must not wake it).
    Held,
}

fn retry_delay(attempts: u32) -> Duration {
    Duration::from_millis(250).saturating_mul(2u32.saturating_pow(attempts.min(8)))
}

/// Takes requests from the inbox and processes them. Several workers (in
/// one process or several sharing a PostgreSQL inbox) never process one
/// request at once while its lease holds.
#[derive(Debug, Clone)]
pub struct RequestWorker {
    service: ResetService,
    batch: usize,
    concurrency: usize,
}

impl RequestWorker {
    /// Sets how many requests [`run`](Self::run) processes at once (at
    /// least 1; default 1): that many loops claim and process
    /// independently (worth it when the stores are across a network).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Runs [`run`](Self::run) on a thread of its own, with a tokio
    /// runtime of its own, like
    /// [`DeliveryWorker::spawn_on_own_thread`](crate::delivery::DeliveryWorker::spawn_on_own_thread):
    /// a flood of requests on the application's runtime then cannot hold
    /// up the processing of the requests it accepted. For
    /// [`RequestProcessing::External`] (the in-process workers run on the
    /// runtime the service was built on).
    pub fn spawn_on_own_thread<F>(self, poll: Duration, shutdown: F) -> std::io::Result<WorkerThread>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        WorkerThread::spawn("resetkit-requests", async move { self.run(poll, shutdown).await })
    }

    /// Sets how many requests one pass claims (at least 1).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Claims and processes the requests due now.
    pub async fn run_once(&self) -> Result<RequestReport, StoreError> {
        self.service.process_batch(self.batch, Duration::ZERO).await
    }

    /// Runs passes until `shutdown` completes: right away while there is
    /// work, after a new request in this process, else every `poll`; purges
    /// per the service's [`Retention`]. Store errors are logged and retried.
    /// A request being processed when `shutdown` completes is finished
    /// first.
    pub async fn run<F: Future<Output = ()>>(&self, poll: Duration, shutdown: F) {
        if self.concurrency > 1 {
            run_loops(self.concurrency, shutdown, |mut stop| {
                let worker = self.clone();
                async move {
                    let stopped = async move {
                        let _ = stop.wait_for(|stop| *stop).await;
                    };
                    worker.run_loop(poll, stopped).await;
                }
            })
            .await;
            return;
        }
        self.run_loop(poll, shutdown).await;
    }

    async fn run_loop<F: Future<Output = ()>>(&self, poll: Duration, shutdown: F) {
        tokio::pin!(shutdown);
        let inner = &self.service.inner;
        loop {
            let pass = self.service.work_pass(self.batch).await;
            let wait = match pass {
                Pass::Worked => Duration::ZERO,
                Pass::Idle => poll,
                Pass::Held => BACKLOG_RECHECK.min(poll),
            };
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = inner.inbox_ready.notified(), if pass == Pass::Idle => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

impl ResetService {
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

    /// A worker over this service's inbox, for
    /// [`RequestProcessing::External`] (or to drain the inbox by hand).
    pub fn request_worker(&self) -> RequestWorker {
        RequestWorker {
            service: self.clone(),
            batch: BATCH,
            concurrency: 1,
        }
    }

    /// Processes every request waiting in the inbox now (in this task);
    /// returns what it did. Tests use it to process what they requested.
    pub async fn process_pending(&self) -> Result<RequestReport, StoreError> {
        let mut total = RequestReport::default();
        loop {
            let report = self.process_batch(BATCH, Duration::ZERO).await?;
            total.processed += report.processed;
            total.retried += report.retried;
            total.abandoned += report.abandoned;
            if report == RequestReport::default() {
                return Ok(total);
            }
        }
    }

    /// What waits: requests in the inbox, mail in the outbox.
    pub async fn backlog(&self) -> Result<Backlog, StoreError> {
        let requests = self.inner.inbox.len().await?;
        let mail = match &self.inner.dispatcher.outbox {
            Some(outbox) => outbox.counts().await?.waiting,
            None => 0,
        };
        Ok(Backlog { requests, mail })
    }

    /// Deletes what [`Retention`] says is old enough from the
    /// [`RetentionStores`] given to the builder: events, finished mail,
    /// expired tokens, and rate-limit entries older than the longest limit
    /// window (a service built without them keeps everything and reports
    /// nothing purged). The in-process workers and [`RequestWorker::run`]
    /// call it every `retention.every`; with [`RequestProcessing::Immediate`]
    /// (or without a tokio runtime) call it yourself.
    pub async fn purge_old(&self) -> Result<PurgeReport, StoreError> {
        let inner = &self.inner;
        let Some(stores) = &inner.retention_stores else {
            return Ok(PurgeReport::default());
        };
        let r = inner.retention;
        let now = inner.clock.now();
        let ago = |d: Duration| now.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH);
        let longest_window = [inner.rate_limits.per_account, inner.rate_limits.per_client]
            .into_iter()
            .flatten()
            .map(|l| l.window)
            .max()
            .unwrap_or_default();
        let mut report = PurgeReport {
            events: stores.events.purge_before(ago(r.events), r.batch).await?,
            tokens: stores
                .tokens
                .purge_expired(ago(r.expired_tokens), r.batch)
                .await?,
            rate_entries: stores
                .tokens
                .purge_rate_entries(ago(longest_window), r.batch)
                .await?,
            mail: 0,
        };
        if let Some(outbox) = &stores.outbox {
            report.mail = outbox.purge_finished(ago(r.finished_mail), r.batch).await?;
        }
        Ok(report)
    }

    /// One pass of a worker: purge when due; unless the mail backlog holds
    /// requests, process up to `batch` requests, each once it is
    /// [`REQUEST_SETTLE`] old. Store errors are logged.
    async fn work_pass(&self, batch: usize) -> Pass {
        self.purge_if_due().await;
        self.flush_throttled_now_and_then().await;
        if self.mail_backlog_full().await {
            return Pass::Held;
        }
        match self.process_batch(batch, REQUEST_SETTLE).await {
            Ok(report) if report != RequestReport::default() => Pass::Worked,
            Ok(_) => Pass::Idle,
            Err(error) => {
                tracing::error!(%error, "request worker: inbox unavailable");
                Pass::Idle
            }
        }
    }

    /// Whether the outbox holds the mail backlog limit or more (outbox
    /// delivery only). An outbox that cannot tell is taken as not full: the
    /// requests are processed, and their own store calls meet the outage.
    async fn mail_backlog_full(&self) -> bool {
        let inner = &self.inner;
        let Some(outbox) = &inner.dispatcher.outbox else {
            return false;
        };
        let full = match outbox.waiting_at_least(inner.mail_backlog.limit).await {
            Ok(full) => full,
            Err(error) => {
                tracing::error!(%error, "request worker: the outbox's backlog is unknown");
                false
            }
        };
        inner.mail_backlog.set(full);
        full
    }

    /// Purges when `retention.every` has passed since the last purge of
    /// this service (whichever of its workers gets there first).
    pub(crate) async fn purge_if_due(&self) {
        let due = {
            let mut next = self
                .inner
                .next_purge
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = std::time::Instant::now();
            if next.is_some_and(|at| now < at) {
                false
            } else {
                *next = Some(now + self.inner.retention.every);
                true
            }
        };
        if due {
            self.purge_logged().await;
        }
    }

    async fn purge_logged(&self) {
        match self.purge_old().await {
            Ok(report) if report == PurgeReport::default() => {}
            Ok(report) => tracing::info!(?report, "purged records past retention"),
            Err(error) => tracing::error!(%error, "purging records past retention failed"),
        }
    }

    /// After a request was recorded: wake or start the workers, or process
    /// it now (see [`RequestProcessing`]).
    pub(crate) async fn after_push(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        match inner.processing {
            RequestProcessing::Immediate => self.process_now().await,
            RequestProcessing::External => inner.inbox_ready.notify_one(),
            RequestProcessing::InProcess { .. } => {
                if !self.start_workers() {
                    self.process_now().await;
                    return Ok(());
                }
                inner.inbox_ready.notify_one();
            }
        }
        Ok(())
    }

    /// Processes the inbox in the caller's task, after a request was
    /// recorded. Requests are claimed one at a time, so concurrent callers
    /// each process about their own request at the same time (as the store
    /// would see them in production). The request is recorded, so a failure
    /// here is logged, not returned (the caller must not be told to ask
    /// again).
    async fn process_now(&self) {
        if let Err(error) = self.process_pending().await {
            tracing::error!(%error, "recorded password reset requests could not be processed now; a worker will retry");
        }
    }

    /// Processes up to `max` requests, claiming them one at a time (a
    /// claimed request never waits for others while its lease runs); a
    /// request younger than `settle` is processed once it is that old.
    pub(crate) async fn process_batch(
        &self,
        max: usize,
        settle: Duration,
    ) -> Result<RequestReport, StoreError> {
        let mut report = RequestReport::default();
        for _ in 0..max.max(1) {
            let inner = &self.inner;
            let Some(job) = inner
                .inbox
                .claim(inner.clock.now(), CLAIM, REQUEST_LEASE)
                .await?
                .pop()
            else {
                break;
            };
            let age = inner
                .clock
                .now()
                .duration_since(job.received_at)
                .unwrap_or_default();
            if age < settle && tokio::runtime::Handle::try_current().is_ok() {
                tokio::time::sleep(settle - age).await;
            }
            let span = tracing::info_span!(
                "resetkit.process_request",
                request_id = %job.id,
                attempt = job.attempts,
                identifier = crate::fingerprint::fingerprint(&inner.fingerprint_key, job.identifier.as_str()).get(..16),
            );
            match self.process_renewing(&job).instrument(span).await {
                // Processing marked it done (with its last writes).
                Ok(()) => {
                    inner.shed.open();
                    report.processed += 1;
                }
                Err(error) if self.give_up(&job, &error) => {
                    tracing::error!(request = %job.id, attempts = job.attempts, %error, "password reset request given up");
                    inner.inbox.done(&job.id, job.attempts).await?;
                    inner.shed.open();
                    report.abandoned += 1;
                }
                Err(error) => {
                    let delay = retry_delay(job.attempts);
                    tracing::warn!(request = %job.id, attempts = job.attempts, %error, ?delay, "password reset request will be retried");
                    inner
                        .inbox
                        .retry_later(&job.id, job.attempts, inner.clock.now(), delay)
                        .await?;
                    report.retried += 1;
                }
            }
        }
        Ok(report)
    }

    /// Processes one claimed request, renewing its lease every
    /// [`RENEW_EVERY`] while it runs (on a tokio runtime; without one the
    /// lease is not renewed).
    async fn process_renewing(&self, job: &InboxRequest) -> Result<(), StoreError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.process_request(job).await;
        }
        let inner = &self.inner;
        let renew = async {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                match inner
                    .inbox
                    .renew(&job.id, job.attempts, inner.clock.now(), REQUEST_LEASE)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(request = %job.id, "the lease of a request being processed was taken over");
                    }
                    Err(error) => {
                        tracing::warn!(request = %job.id, %error, "renewing a request's lease failed");
                    }
                }
            }
        };
        tokio::select! {
            result = self.process_request(job) => result,
            never = renew => never,
        }
    }

    /// Starts the in-process workers if none runs (see
    /// [`RequestProcessing::InProcess`]); `false` without a tokio runtime.
    pub(crate) fn start_workers(&self) -> bool {
        let inner = &self.inner;
        let RequestProcessing::InProcess { workers } = inner.processing else {
            return false;
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return false;
        }
        // (Re)start them when none runs: at build, or the runtime they ran
        // on was shut down (a service used from several runtimes, e.g. in
        // tests).
        let workers = workers.max(1);
        if inner
            .live_workers
            .compare_exchange(0, workers, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            for _ in 0..workers {
                // Both of the worker's references exist before it runs (its
                // exit test counts them).
                let alive = LiveWorker(self.inner.clone());
                tokio::spawn(in_process_worker(alive, self.clone()));
            }
        }
        true
    }

    /// Whether a request that failed with `error` is given up: a store
    /// that is down is waited for up to [`MAX_REQUEST_AGE`]; other errors
    /// get [`MAX_REQUEST_ATTEMPTS`].
    fn give_up(&self, job: &InboxRequest, error: &StoreError) -> bool {
        let age = self
            .inner
            .clock
            .now()
            .duration_since(job.received_at)
            .unwrap_or_default();
        age >= MAX_REQUEST_AGE || (!error.is_transient() && job.attempts >= MAX_REQUEST_ATTEMPTS)
    }
}

/// An in-process worker's hold on the service: counted as live until its
/// task ends or is dropped (with its runtime).
struct LiveWorker(std::sync::Arc<Inner>);

impl Drop for LiveWorker {
    fn drop(&mut self) {
        self.0.live_workers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One in-process worker. It holds the service, so that requests recorded
/// by a service the host dropped right after `request` (one built per
/// request, say) are still processed; once nothing but the workers holds
/// the service, it ends when nothing is left to do now and the inbox is
/// empty, or after [`ORPHAN_GRACE`] of waiting for requests scheduled later.
async fn in_process_worker(alive: LiveWorker, service: ResetService) {
    let mut orphaned_since: Option<tokio::time::Instant> = None;
    loop {
        let pass = service.work_pass(BATCH).await;
        if pass == Pass::Worked {
            continue;
        }
        // Each worker holds two references (`alive` and `service`).
        let workers = service.inner.live_workers.load(Ordering::Acquire);
        if std::sync::Arc::strong_count(&alive.0) <= 2 * workers {
            let since = *orphaned_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() >= ORPHAN_GRACE || service.inner.inbox.is_empty().await.unwrap_or(false) {
                return;
            }
        } else {
            orphaned_since = None;
        }
        let wait = if pass == Pass::Held {
            BACKLOG_RECHECK
        } else {
            IN_PROCESS_POLL
        };
        tokio::select! {
            () = service.inner.inbox_ready.notified(), if pass == Pass::Idle => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}
