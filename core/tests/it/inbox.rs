//! The request inbox: `request` records and returns; workers process.
//! Nothing accepted is lost (a store that is down makes `request` fail for
//! every identifier alike; a worker that dies half-way leaves its requests
//! to the next one, which neither loses nor repeats their mail), the inbox
//! and the per-client counters stay bounded, and retention purges.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use common::{Fixture, reset_token};
use resetkit::error::StoreError;
use resetkit::flow::RequestProcessing;
use resetkit::hasher::PasswordHash;
use resetkit::policy::Limit;
use resetkit::prelude::*;
use resetkit::store::{InboxRequest, OutboxEntry};

fn accounts(n: usize) -> Vec<Account> {
    (0..n)
        .map(|i| Account::new(format!("{i}"), format!("user{i}"), format!("user{i}@example.com")))
        .collect()
}

/// An inbox that cannot be written (its database is down).
struct DownInbox;

#[async_trait]
impl RequestInbox for DownInbox {
    async fn push(&self, _: InboxRequest) -> Result<(), StoreError> {
        Err(StoreError::unavailable("inbox.push", "connection refused"))
    }
    async fn claim(&self, _: SystemTime, _: usize, _: Duration) -> Result<Vec<InboxRequest>, StoreError> {
        Err(StoreError::unavailable("inbox.claim", "connection refused"))
    }
    async fn done(&self, _: &str, _: u32) -> Result<(), StoreError> {
        Err(StoreError::unavailable("inbox.done", "connection refused"))
    }
    async fn retry_later(&self, _: &str, _: u32, _: SystemTime, _: Duration) -> Result<(), StoreError> {
        Err(StoreError::unavailable("inbox.retry_later", "connection refused"))
    }
    async fn renew(&self, _: &str, _: u32, _: SystemTime, _: Duration) -> Result<bool, StoreError> {
        Err(StoreError::unavailable("inbox.renew", "connection refused"))
    }
    async fn len(&self) -> Result<usize, StoreError> {
        Err(StoreError::unavailable("inbox.len", "connection refused"))
    }
}

#[tokio::test]
async fn a_request_that_cannot_be_recorded_is_unavailable_for_every_identifier() {
    let mut list = accounts(2);
    list[1].disabled = true;
    let fx = Fixture::with_accounts(list);
    let service = fx.builder().inbox(Arc::new(DownInbox)).build().expect("service");
    for identifier in [
        "user0@example.com",
        "nobody@example.com",
        "user1@example.com",
        "user0",
    ] {
        let answer = service.request(identifier, &RequestContext::default()).await;
        match answer {
            Err(RequestError::Unavailable(error)) => {
                assert_eq!(error.operation(), "inbox.push", "{identifier}")
            }
            other => panic!("{identifier}: expected Unavailable, got {other:?}"),
        }
    }
    assert!(fx.mailer.sent().is_empty());
    // Malformed input is still reported as such.
    assert!(matches!(
        service.request("a@b@c", &RequestContext::default()).await,
        Err(RequestError::Invalid(_))
    ));
}

#[tokio::test]
async fn a_full_inbox_sheds_load_until_it_is_drained() {
    let fx = Fixture::with_accounts(accounts(1));
    let service = fx
        .builder()
        .request_processing(RequestProcessing::External)
        .inbox(Arc::new(InMemoryInbox::with_capacity(3)))
        .rate_limits(RateLimits::unlimited())
        .build()
        .expect("service");
    let ctx = RequestContext::default();
    for _ in 0..3 {
        service
            .request("nobody@example.com", &ctx)
            .await
            .expect("room left");
    }
    for identifier in ["nobody@example.com", "user0@example.com"] {
        assert!(matches!(
            service.request(identifier, &ctx).await,
            Err(RequestError::Unavailable(StoreError::Full { capacity: 3, .. }))
        ));
    }
    let report = service.process_pending().await.expect("processed");
    assert_eq!(report.processed, 3);
    service
        .request("user0@example.com", &ctx)
        .await
        .expect("room again");
    service.process_pending().await.expect("processed");
    assert_eq!(fx.mailer.sent().len(), 1);
}

/// An inbox that counts the pushes it is asked for.
struct CountingPushes {
    inner: InMemoryInbox,
    pushes: AtomicUsize,
}

#[async_trait]
impl RequestInbox for CountingPushes {
    async fn push(&self, r: InboxRequest) -> Result<(), StoreError> {
        self.pushes.fetch_add(1, Ordering::SeqCst);
        self.inner.push(r).await
    }
    async fn claim(
        &self,
        now: SystemTime,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<InboxRequest>, StoreError> {
        self.inner.claim(now, max, lease).await
    }
    async fn done(&self, id: &str, attempt: u32) -> Result<(), StoreError> {
        self.inner.done(id, attempt).await
    }
    async fn retry_later(
        &self,
        id: &str,
        attempt: u32,
        now: SystemTime,
        delay: Duration,
    ) -> Result<(), StoreError> {
        self.inner.retry_later(id, attempt, now, delay).await
    }
    async fn renew(
        &self,
        id: &str,
        attempt: u32,
        now: SystemTime,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.renew(id, attempt, now, lease).await
    }
    async fn len(&self) -> Result<usize, StoreError> {
        self.inner.len().await
    }
}

#[tokio::test]
async fn a_full_inbox_is_not_asked_again_until_a_request_leaves_it() {
    let fx = Fixture::with_accounts(accounts(1));
    let inbox = Arc::new(CountingPushes {
        inner: InMemoryInbox::with_capacity(2),
        pushes: AtomicUsize::new(0),
    });
    let service = fx
        .builder()
        .request_processing(RequestProcessing::External)
        .inbox(inbox.clone())
        .rate_limits(RateLimits::unlimited())
        .build()
        .expect("service");
    let ctx = RequestContext::default();
    for identifier in ["nobody@example.com", "user0@example.com"] {
        service.request(identifier, &ctx).await.expect("room left");
    }
    // The first refusal asks the inbox; the flood after it does not (the
    // same answer for every identifier, no store call, no random id).
    for identifier in [
        "nobody@example.com",
        "user0@example.com",
        "user0",
        "x@example.com",
    ] {
        assert!(matches!(
            service.request(identifier, &ctx).await,
            Err(RequestError::Unavailable(StoreError::Full { capacity: 2, .. }))
        ));
    }
    assert_eq!(inbox.pushes.load(Ordering::SeqCst), 3);
    // Malformed input is still told so.
    assert!(matches!(
        service.request("a@b@c", &ctx).await,
        Err(RequestError::Invalid(_))
    ));
    // One request processed frees one place: the next request takes it.
    service
        .request_worker()
        .with_batch(1)
        .run_once()
        .await
        .expect("processed one");
    service
        .request("user0@example.com", &ctx)
        .await
        .expect("room again");
    assert_eq!(inbox.pushes.load(Ordering::SeqCst), 4);
    service.process_pending().await.expect("processed");
    assert_eq!(
        fx.mailer.sent_to("user0@example.com").len(),
        2,
        "both accepted requests mailed"
    );
}

/// Counts directory lookups.
struct Counting {
    inner: InMemoryAccounts,
    lookups: AtomicUsize,
}

#[async_trait]
impl AccountDirectory for Counting {
    async fn find_by_email(&self, e: &str) -> Result<Vec<Account>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.find_by_email(e).await
    }
    async fn find_by_username(&self, u: &str) -> Result<Option<Account>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.find_by_username(u).await
    }
    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.inner.find_by_id(id).await
    }
    async fn set_password_hash(&self, id: &AccountId, hash: &PasswordHash) -> Result<(), StoreError> {
        self.inner.set_password_hash(id, hash).await
    }
}

/// Uniform timing by construction: `request` does the same work whatever
/// the identifier (no lookup, no token, no event, one inbox row), so there
/// is nothing for a stopwatch to tell apart.
#[tokio::test]
async fn the_request_path_is_the_same_work_for_every_identifier() {
    let mut list = accounts(3);
    list[1].disabled = true;
    list[2].email = Some("user0@example.com".into()); // shares user0's address
    let fx = Fixture::with_accounts(list);
    let directory = Arc::new(Counting {
        inner: fx.accounts.clone(),
        lookups: AtomicUsize::new(0),
    });
    let service = fx
        .builder()
        .accounts(directory.clone())
        .request_processing(RequestProcessing::External)
        .build()
        .expect("service");
    let ctx = RequestContext::from_client("198.51.100.7");
    for (n, identifier) in [
        "user0@example.com",
        "nobody@example.com",
        "user1@example.com",
        "user2",
    ]
    .into_iter()
    .enumerate()
    {
        service.request(identifier, &ctx).await.expect("accepted");
        assert_eq!(directory.lookups.load(Ordering::SeqCst), 0, "{identifier}");
        assert!(fx.events.is_empty(), "{identifier}: no event on the request path");
        assert_eq!(fx.tokens.len(), 0, "{identifier}");
        assert_eq!(fx.tokens.rate_entries(), n + 1, "one client hit per request");
    }
    let report = service.request_worker().run_once().await.expect("processed");
    assert_eq!(report.processed, 4);
    assert_eq!(directory.lookups.load(Ordering::SeqCst), 4);
    // user0@ (two accounts), user2 (the second of them again) → 3 mails.
    assert_eq!(fx.mailer.sent().len(), 3);
}

#[tokio::test]
async fn a_flood_from_one_client_stores_no_more_entries_than_the_limit() {
    let fx = Fixture::with_accounts(accounts(1));
    let limit = Limit {
        max: 5,
        window: Duration::from_secs(60),
    };
    let service = fx
        .builder()
        .request_processing(RequestProcessing::External)
        .rate_limits(RateLimits {
            per_account: None,
            per_client: Some(limit),
        })
        .build()
        .expect("service");
    let ctx = RequestContext::from_client("203.0.113.50");
    for _ in 0..2000 {
        service
            .request("user0@example.com", &ctx)
            .await
            .expect("accepted");
        fx.clock.advance(Duration::from_millis(10));
    }
    assert_eq!(
        fx.tokens.rate_entries(),
        5,
        "refused hits are not stored: the flood keeps exactly the limit's worth"
    );
    // Only the admitted requests reach the inbox (20 s of flood = one window).
    let report = service.process_pending().await.expect("processed");
    assert!(report.processed <= 5 * 2, "{report:?}");
}

/// An inbox whose worker dies after `fail_at` successful `done` calls:
/// right after processing a request, before deleting it (processing marks
/// the request done with its last writes). From then on `done` and
/// `retry_later` fail: a dead worker gives nothing back either.
struct DiesBeforeDone {
    inner: InMemoryInbox,
    calls: AtomicUsize,
    fail_at: usize,
}

#[async_trait]
impl RequestInbox for DiesBeforeDone {
    async fn push(&self, r: InboxRequest) -> Result<(), StoreError> {
        self.inner.push(r).await
    }
    async fn claim(
        &self,
        now: SystemTime,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<InboxRequest>, StoreError> {
        self.inner.claim(now, max, lease).await
    }
    async fn done(&self, id: &str, attempt: u32) -> Result<(), StoreError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.fail_at {
            return Err(StoreError::unavailable("inbox.done", "the worker process died"));
        }
        self.inner.done(id, attempt).await
    }
    async fn retry_later(
        &self,
        id: &str,
        attempt: u32,
        now: SystemTime,
        delay: Duration,
    ) -> Result<(), StoreError> {
        if self.calls.load(Ordering::SeqCst) > self.fail_at {
            return Err(StoreError::unavailable(
                "inbox.retry_later",
                "the worker process died",
            ));
        }
        self.inner.retry_later(id, attempt, now, delay).await
    }
    async fn renew(
        &self,
        id: &str,
        attempt: u32,
        now: SystemTime,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.renew(id, attempt, now, lease).await
    }
    async fn len(&self) -> Result<usize, StoreError> {
        self.inner.len().await
    }
}

/// Mail per recipient, and every link opens.
async fn one_working_mail_each(fx: &Fixture, service: &ResetService, n: usize) {
    let mut per_recipient: BTreeMap<String, usize> = BTreeMap::new();
    for mail in fx.mailer.sent() {
        *per_recipient.entry(mail.to.address().to_owned()).or_default() += 1;
        service
            .inspect(&reset_token(&mail))
            .await
            .expect("the delivered link works");
    }
    assert_eq!(per_recipient.len(), n, "{per_recipient:?}");
    assert!(per_recipient.values().all(|&c| c == 1), "{per_recipient:?}");
}

#[tokio::test]
async fn a_worker_that_dies_half_way_loses_nothing_and_repeats_nothing() {
    const N: usize = 20;
    let fx = Fixture::with_accounts(accounts(N));
    let outbox = InMemoryOutbox::default();
    let inbox = InMemoryInbox::default();
    let build = |inbox: Arc<dyn RequestInbox>| {
        fx.builder()
            .request_processing(RequestProcessing::External)
            .rate_limits(RateLimits::unlimited())
            .outbox(Arc::new(outbox.clone()))
            .inbox(inbox)
            .build()
            .expect("service")
    };
    let dying = build(Arc::new(DiesBeforeDone {
        inner: inbox.clone(),
        calls: AtomicUsize::new(0),
        fail_at: 6,
    }));
    for i in 0..N {
        dying
            .request(&format!("user{i}@example.com"), &RequestContext::default())
            .await
            .expect("accepted");
    }
    // The first worker processes six requests, then dies after processing
    // the seventh (before deleting it), leaving the rest of its claimed
    // batch unprocessed.
    assert!(dying.request_worker().run_once().await.is_err());
    assert_eq!(outbox.counts().await.expect("counts").waiting, 7);
    // A new worker, once the dead one's leases ran out, does the rest.
    fx.clock.advance(Duration::from_secs(301));
    let restarted = build(Arc::new(inbox.clone()));
    let report = restarted.process_pending().await.expect("processed");
    assert_eq!(report.processed, N - 6);
    assert_eq!(inbox.len().await.expect("len"), 0);
    let worker = restarted.delivery_worker().expect("outbox mode");
    while worker.run_once().await.expect("delivered").sent > 0 {}
    let counts = outbox.counts().await.expect("counts");
    assert_eq!((counts.sent, counts.dropped, counts.waiting), (N, 0, 0));
    one_working_mail_each(&fx, &restarted, N).await;
}

/// An outbox that refuses the first enqueue (full, or down).
struct RefusesOnce {
    inner: InMemoryOutbox,
    refused: AtomicUsize,
}

#[async_trait]
impl Outbox for RefusesOnce {
    async fn enqueue(&self, entry: OutboxEntry) -> Result<(), StoreError> {
        if self.refused.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(StoreError::Full {
                operation: "outbox.enqueue",
                what: "the outbox",
                capacity: 0,
            });
        }
        self.inner.enqueue(entry).await
    }
    async fn claim(
        &self,
        now: SystemTime,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.inner.claim(now, max, lease).await
    }
    async fn mark_sent(&self, id: &str, attempt: u32, now: SystemTime) -> Result<(), StoreError> {
        self.inner.mark_sent(id, attempt, now).await
    }
    async fn mark_failed(
        &self,
        id: &str,
        attempt: u32,
        error: &DeliveryError,
        now: SystemTime,
        retry_in: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.inner.mark_failed(id, attempt, error, now, retry_in).await
    }
    async fn renew(
        &self,
        id: &str,
        attempt: u32,
        now: SystemTime,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.renew(id, attempt, now, lease).await
    }
    async fn mark_dropped(&self, id: &str, attempt: u32, reason: &str) -> Result<(), StoreError> {
        self.inner.mark_dropped(id, attempt, reason).await
    }
    async fn status(&self, id: &str) -> Result<Option<resetkit::store::OutboxStatus>, StoreError> {
        self.inner.status(id).await
    }
    async fn counts(&self) -> Result<resetkit::store::OutboxCounts, StoreError> {
        self.inner.counts().await
    }
}

#[tokio::test]
async fn a_request_whose_mail_could_not_be_queued_is_retried_with_a_fresh_link() {
    let fx = Fixture::with_accounts(accounts(1));
    let outbox = Arc::new(RefusesOnce {
        inner: InMemoryOutbox::default(),
        refused: AtomicUsize::new(0),
    });
    let service = fx
        .builder()
        .request_processing(RequestProcessing::External)
        .outbox(outbox.clone())
        .build()
        .expect("service");
    service
        .request("user0@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    let first = service.process_pending().await.expect("processed");
    assert_eq!((first.processed, first.retried), (0, 1));
    fx.clock.advance(Duration::from_secs(5));
    let second = service.process_pending().await.expect("processed");
    assert_eq!(second.processed, 1);
    let worker = service.delivery_worker().expect("outbox mode");
    assert_eq!(worker.run_once().await.expect("delivered").sent, 1);
    one_working_mail_each(&fx, &service, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_workers_in_this_process_handle_requests() {
    let fx = Fixture::with_accounts(accounts(3));
    let service = fx
        .builder()
        .request_processing(RequestProcessing::default())
        .build()
        .expect("service");
    for i in 0..3 {
        service
            .request(&format!("user{i}@example.com"), &RequestContext::default())
            .await
            .expect("accepted");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fx.mailer.sent().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the in-process workers did not run"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    one_working_mail_each(&fx, &service, 3).await;
}

#[tokio::test]
async fn retention_purges_old_events_finished_mail_expired_tokens_and_rate_entries() {
    let fx = Fixture::with_accounts(accounts(2));
    let outbox = InMemoryOutbox::default();
    let retention = Retention {
        events: Duration::from_secs(3600),
        finished_mail: Duration::from_secs(600),
        expired_tokens: Duration::from_secs(60),
        ..Retention::default()
    };
    let service = fx
        .builder()
        .outbox(Arc::new(outbox.clone()))
        .retention(retention)
        .retention_stores(
            RetentionStores::new(Arc::new(fx.tokens.clone()), Arc::new(fx.events.clone()))
                .with_outbox(Arc::new(outbox.clone())),
        )
        .build()
        .expect("service");
    let ctx = RequestContext::from_client("192.0.2.1");
    service
        .request("user0@example.com", &ctx)
        .await
        .expect("accepted");
    let worker = service.delivery_worker().expect("outbox mode");
    assert_eq!(worker.run_once().await.expect("sent").sent, 1);
    assert!(!fx.events.is_empty());
    assert_eq!(outbox.len(), 1);
    assert_eq!(fx.tokens.len(), 1);
    assert!(fx.tokens.rate_entries() > 0);

    // Ten minutes on: nothing is old enough yet but the rate entries
    // stay (their 15-minute window is still open).
    fx.clock.advance(Duration::from_secs(600));
    assert_eq!(service.purge_old().await.expect("purged").events, 0);
    // Two hours on: everything of the first request is past retention.
    fx.clock.advance(Duration::from_secs(2 * 3600));
    service
        .request("user1@example.com", &ctx)
        .await
        .expect("accepted");
    let before = fx.events.len();
    let report = service.purge_old().await.expect("purged");
    assert_eq!(report.mail, 1, "{report:?}");
    assert_eq!(report.tokens, 1, "{report:?}");
    assert!(
        report.events > 0 && fx.events.len() == before - report.events,
        "{report:?}"
    );
    // The client's old hit went when the client came back; user0's
    // per-account entry is only purged here.
    assert_eq!(report.rate_entries, 1, "{report:?}");
    // What the second request made is kept (its client and account hits).
    assert_eq!(fx.tokens.rate_entries(), 2);
    assert_eq!(fx.tokens.len(), 1);
    assert_eq!(outbox.len(), 1);
}

/// A service outlives the runtime its workers were started on (a test
/// suite, a CLI that builds one runtime per command): the next request on
/// another runtime starts them again.
#[test]
fn in_process_workers_restart_on_a_new_runtime() {
    let fx = Fixture::with_accounts(accounts(2));
    let service = fx
        .builder()
        .request_processing(RequestProcessing::default())
        .build()
        .expect("service");
    for i in 0..2 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            service
                .request(&format!("user{i}@example.com"), &RequestContext::default())
                .await
                .expect("accepted");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while fx.mailer.sent().len() < i + 1 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "runtime {i}: no worker ran"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        drop(runtime);
    }
}

/// An integrator who builds the service per request and drops it right
/// after `request` must not lose the request (the in-process workers hold
/// the service until its inbox is drained).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_dropped_right_after_request_still_sends_the_mail() {
    let fx = Fixture::with_accounts(accounts(3));
    for i in 0..3 {
        let service = fx
            .builder()
            .request_processing(RequestProcessing::default())
            .build()
            .expect("service");
        service
            .request(&format!("user{i}@example.com"), &RequestContext::default())
            .await
            .expect("accepted");
        drop(service);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fx.mailer.sent().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a request was lost with its service"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A shared address with one combined email, whose first account is past
/// its limit: a retry after an interrupted attempt must find the mail that
/// attempt queued (its Message-ID derives from the same account both times).
#[tokio::test]
async fn a_retried_combined_request_finds_its_queued_mail() {
    let mut list = accounts(2);
    list[1].email = Some("user0@example.com".into());
    let fx = Fixture::with_accounts(list);
    let outbox = InMemoryOutbox::default();
    let inbox = InMemoryInbox::default();
    let build = |inbox: Arc<dyn RequestInbox>| {
        fx.builder()
            .request_processing(RequestProcessing::External)
            .duplicate_email_policy(DuplicateEmailPolicy::CombinedEmail)
            .rate_limits(RateLimits {
                per_account: Some(Limit {
                    max: 1,
                    window: Duration::from_secs(3600),
                }),
                per_client: None,
            })
            .outbox(Arc::new(outbox.clone()))
            .inbox(inbox)
            .build()
            .expect("service")
    };
    let ok = build(Arc::new(inbox.clone()));
    // user0 spends its one email first (by username).
    ok.request("user0", &RequestContext::default())
        .await
        .expect("accepted");
    ok.process_pending().await.expect("processed");
    // The shared address: only user1 gets a link; the worker dies after
    // queueing the mail, before deleting the request.
    let dying = build(Arc::new(DiesBeforeDone {
        inner: inbox.clone(),
        calls: AtomicUsize::new(0),
        fail_at: 0,
    }));
    dying
        .request("user0@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    assert!(dying.request_worker().run_once().await.is_err());
    fx.clock.advance(Duration::from_secs(301));
    let report = ok.process_pending().await.expect("processed");
    assert_eq!((report.processed, report.retried), (1, 0), "{report:?}");
    let worker = ok.delivery_worker().expect("outbox mode");
    while worker.run_once().await.expect("delivered").sent > 0 {}
    assert_eq!(
        fx.mailer.sent().len(),
        2,
        "user0's own mail and one for the shared address"
    );
    ok.inspect(&reset_token(&fx.mailer.sent()[1]))
        .await
        .expect("the shared address's link works");
}

#[tokio::test]
async fn without_retention_stores_nothing_is_purged() {
    let fx = Fixture::with_accounts(accounts(1));
    let service = fx
        .builder()
        .retention(Retention {
            events: Duration::from_secs(60),
            expired_tokens: Duration::from_secs(60),
            ..Retention::default()
        })
        .build()
        .expect("service");
    service
        .request("user0@example.com", &RequestContext::from_client("192.0.2.1"))
        .await
        .expect("accepted");
    service.process_pending().await.expect("processed");
    let events = fx.events.len();
    assert!(events > 0 && fx.tokens.len() == 1);
    fx.clock.advance(Duration::from_secs(48 * 3600));
    assert_eq!(
        service.purge_old().await.expect("purge"),
        resetkit::flow::PurgeReport::default(),
        "the host gave no stores to purge: the service keeps every record"
    );
    assert_eq!(fx.events.len(), events);
    assert_eq!(fx.tokens.len(), 1);
}

/// Waits (up to 10 s) until the backlog is `want`.
async fn backlog_becomes(service: &ResetService, want: (usize, usize)) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let backlog = service.backlog().await.expect("backlog");
        if (backlog.requests, backlog.mail) == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backlog (requests, mail) stayed {:?}, want {want:?}",
            (backlog.requests, backlog.mail)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_in_the_inbox_while_the_mail_backlog_is_at_its_limit() {
    let fx = Fixture::with_accounts(accounts(5));
    let service = fx
        .builder()
        .request_processing(RequestProcessing::External)
        .outbox(Arc::new(InMemoryOutbox::default()))
        .inbox(Arc::new(InMemoryInbox::with_capacity(3)))
        .mail_backlog_limit(2)
        .rate_limits(RateLimits::unlimited())
        .build()
        .expect("service");
    let ctx = RequestContext::default();
    for i in 0..3 {
        service
            .request(&format!("user{i}@example.com"), &ctx)
            .await
            .expect("accepted");
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // One request per pass: the limit is looked at before each pass.
    let worker = service.request_worker().with_batch(1);
    let running = tokio::spawn(async move {
        worker
            .run(Duration::from_millis(10), async {
                let _ = stopped.await;
            })
            .await;
    });
    // Two messages wait: the third request stays in the inbox, and the
    // inbox fills up with the next ones until mail goes out.
    backlog_becomes(&service, (1, 2)).await;
    for i in 3..5 {
        service
            .request(&format!("user{i}@example.com"), &ctx)
            .await
            .expect("accepted");
    }
    assert!(
        matches!(
            service.request("user0@example.com", &ctx).await,
            Err(RequestError::Unavailable(StoreError::Full { capacity: 3, .. }))
        ),
        "the inbox is full while the workers hold its requests"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        service.backlog().await.expect("backlog").mail,
        2,
        "no request is processed while the mail backlog is at its limit"
    );
    let delivery = service.delivery_worker().expect("outbox mode");
    assert_eq!(delivery.run_once().await.expect("sent").sent, 2);
    backlog_becomes(&service, (1, 2)).await;
    assert_eq!(delivery.run_once().await.expect("sent").sent, 2);
    backlog_becomes(&service, (0, 1)).await;
    assert_eq!(delivery.run_once().await.expect("sent").sent, 1);
    let _ = stop.send(());
    running.await.expect("worker ended");
    one_working_mail_each(&fx, &service, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_worker_on_its_own_thread_processes_and_stops_when_told() {
    let fx = Fixture::with_accounts(accounts(3));
    let service = fx
        .builder()
        .request_processing(RequestProcessing::External)
        .build()
        .expect("service");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = service
        .request_worker()
        .with_concurrency(2)
        .spawn_on_own_thread(Duration::from_secs(1), async {
            let _ = stopped.await;
        })
        .expect("a thread");
    for i in 0..3 {
        service
            .request(&format!("user{i}@example.com"), &RequestContext::default())
            .await
            .expect("accepted");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fx.mailer.sent().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request worker's thread did not process the requests"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), thread.stopped())
        .await
        .expect("the thread ended when told");
    one_working_mail_each(&fx, &service, 3).await;
}
