//! Processing the request inbox: who does it ([`RequestProcessing`]), the
//! worker ([`RequestWorker`]) and the retention purges it runs
//! ([`Retention`]).
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

use crate::error::StoreError;
use crate::flow::{Inner, ResetService};

/// Who processes the requests that [`ResetService::request`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestProcessing {
    /// Tasks in this process (the default, with 2): spawned on the tokio
    /// runtime of the first request, woken by each new request, ended when
    /// the last clone of the service is dropped. They also run the
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
    /// Requests given up after [`MAX_REQUEST_ATTEMPTS`] attempts.
    pub abandoned: usize,
}

/// Attempts after which a request that keeps failing is given up (and
/// logged); a store that is down fails the attempts until it is back.
pub const MAX_REQUEST_ATTEMPTS: u32 = 10;

/// How long a claimed request is leased to one worker.
const LEASE: Duration = Duration::from_secs(60);
/// Requests one pass claims.
const BATCH: usize = 16;
/// How long in-process workers wait for a wake-up before looking again
/// (leases that ran out, retries).
const IN_PROCESS_POLL: Duration = Duration::from_secs(1);

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
}

impl RequestWorker {
    /// Sets how many requests one pass claims (at least 1).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Claims and processes the requests due now.
    pub async fn run_once(&self) -> Result<RequestReport, StoreError> {
        self.service.process_batch(self.batch).await
    }

    /// Runs passes until `shutdown` completes: right away while there is
    /// work, after a new request in this process, else every `poll`; purges
    /// per the service's [`Retention`]. Store errors are logged and retried.
    /// A request being processed when `shutdown` completes is finished
    /// first.
    pub async fn run<F: Future<Output = ()>>(&self, poll: Duration, shutdown: F) {
        tokio::pin!(shutdown);
        let inner = &self.service.inner;
        let mut next_purge = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_purge {
                next_purge = tokio::time::Instant::now() + inner.retention.every;
                self.service.purge_logged().await;
            }
            let busy = match self.run_once().await {
                Ok(report) => report.processed + report.retried + report.abandoned > 0,
                Err(error) => {
                    tracing::error!(%error, "request worker: inbox unavailable");
                    false
                }
            };
            let wait = if busy { Duration::ZERO } else { poll };
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = inner.inbox_ready.notified(), if !busy => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

impl ResetService {
    /// A worker over this service's inbox, for
    /// [`RequestProcessing::External`] (or to drain the inbox by hand).
    pub fn request_worker(&self) -> RequestWorker {
        RequestWorker {
            service: self.clone(),
            batch: BATCH,
        }
    }

    /// Processes every request waiting in the inbox now (in this task);
    /// returns what it did. Tests use it to process what they requested.
    pub async fn process_pending(&self) -> Result<RequestReport, StoreError> {
        let mut total = RequestReport::default();
        loop {
            let report = self.process_batch(BATCH).await?;
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

    /// Deletes what [`Retention`] says is old enough: events, finished
    /// mail, expired tokens, and rate-limit entries older than the longest
    /// limit window. The workers call it every `retention.every`.
    pub async fn purge_old(&self) -> Result<PurgeReport, StoreError> {
        let inner = &self.inner;
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
            events: inner.events.purge_before(ago(r.events), r.batch).await?,
            tokens: inner.tokens.purge_expired(ago(r.expired_tokens), r.batch).await?,
            rate_entries: inner
                .tokens
                .purge_rate_entries(ago(longest_window), r.batch)
                .await?,
            mail: 0,
        };
        if let Some(outbox) = &inner.dispatcher.outbox {
            report.mail = outbox.purge_finished(ago(r.finished_mail), r.batch).await?;
        }
        Ok(report)
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
            RequestProcessing::Immediate => {
                // One request per claim, so that concurrent callers each
                // process about their own request at the same time (as
                // the store would see them in production), instead of
                // the first one taking the whole inbox.
                while self.process_batch(1).await? != RequestReport::default() {}
            }
            RequestProcessing::External => inner.inbox_ready.notify_one(),
            RequestProcessing::InProcess { workers } => {
                if tokio::runtime::Handle::try_current().is_err() {
                    self.process_pending().await?;
                    return Ok(());
                }
                // (Re)start them when none runs: the first request, or the
                // runtime they ran on was shut down (a service used from
                // several runtimes, e.g. in tests).
                let workers = workers.max(1);
                if inner
                    .live_workers
                    .compare_exchange(0, workers, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    for index in 0..workers {
                        let alive = LiveWorker(self.inner.clone());
                        tokio::spawn(in_process_worker(alive, index == 0));
                    }
                }
                inner.inbox_ready.notify_one();
            }
        }
        Ok(())
    }

    /// Claims up to `max` requests and processes them one by one.
    pub(crate) async fn process_batch(&self, max: usize) -> Result<RequestReport, StoreError> {
        let inner = &self.inner;
        let claimed = inner.inbox.claim(inner.clock.now(), max, LEASE).await?;
        let mut report = RequestReport::default();
        for job in claimed {
            match self.process_request(&job).await {
                Ok(()) => {
                    inner.inbox.done(&job.id, job.attempts).await?;
                    report.processed += 1;
                }
                Err(error) if job.attempts >= MAX_REQUEST_ATTEMPTS => {
                    tracing::error!(request = %job.id, attempts = job.attempts, %error, "password reset request given up");
                    inner.inbox.done(&job.id, job.attempts).await?;
                    report.abandoned += 1;
                }
                Err(error) => {
                    let delay = retry_delay(job.attempts);
                    tracing::warn!(request = %job.id, attempts = job.attempts, %error, ?delay, "password reset request will be retried");
                    let at = inner
                        .clock
                        .now()
                        .checked_add(delay)
                        .unwrap_or(SystemTime::UNIX_EPOCH);
                    inner.inbox.retry_later(&job.id, job.attempts, at).await?;
                    report.retried += 1;
                }
            }
        }
        Ok(report)
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
/// the service and the inbox has nothing due, it ends.
async fn in_process_worker(alive: LiveWorker, purges: bool) {
    let service = ResetService {
        inner: alive.0.clone(),
    };
    let mut next_purge = tokio::time::Instant::now();
    loop {
        if purges && tokio::time::Instant::now() >= next_purge {
            next_purge = tokio::time::Instant::now() + service.inner.retention.every;
            service.purge_logged().await;
        }
        let busy = match service.process_batch(BATCH).await {
            Ok(report) => report.processed + report.retried + report.abandoned > 0,
            Err(error) => {
                tracing::error!(%error, "request worker: inbox unavailable");
                false
            }
        };
        if busy {
            continue;
        }
        // Each worker holds two references (its `alive` and `service`).
        let workers = service.inner.live_workers.load(Ordering::Acquire);
        if std::sync::Arc::strong_count(&service.inner) <= 2 * workers
            && service.inner.inbox.is_empty().await.unwrap_or(false)
        {
            return;
        }
        tokio::select! {
            () = service.inner.inbox_ready.notified() => {}
            () = tokio::time::sleep(IN_PROCESS_POLL) => {}
        }
    }
}
