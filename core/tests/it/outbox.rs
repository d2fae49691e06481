//! Acceptance: in outbox mode the request never waits for the mail server;
//! the delivery worker sends, retries transient failures with exponential
//! backoff, and gives up on permanent ones with the reason recorded.

use crate::common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{Fixture, GOOD_PASSWORD, secret};
use resetkit::error::StoreError;
use resetkit::event::EventKind;
use resetkit::mail::{DeliveryError, SentReceipt, SmtpReply};
use resetkit::prelude::*;
use resetkit::store::{OutboxCounts, OutboxStatus};

/// A mailer that answers each attempt from a script (then accepts
/// everything) and keeps every attempt.
#[derive(Clone, Default)]
struct ScriptedMailer {
    script: Arc<Mutex<VecDeque<DeliveryError>>>,
    attempts: Arc<Mutex<Vec<OutgoingEmail>>>,
    delivered: Arc<Mutex<Vec<OutgoingEmail>>>,
}

impl ScriptedMailer {
    fn failing_with(errors: impl IntoIterator<Item = DeliveryError>) -> Self {
        let mailer = ScriptedMailer::default();
        mailer.script.lock().expect("lock").extend(errors);
        mailer
    }

    fn attempts(&self) -> usize {
        self.attempts.lock().expect("lock").len()
    }

    fn delivered(&self) -> Vec<OutgoingEmail> {
        self.delivered.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Mailer for ScriptedMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<SentReceipt, DeliveryError> {
        self.attempts.lock().expect("lock").push(email.clone());
        if let Some(error) = self.script.lock().expect("lock").pop_front() {
            return Err(error);
        }
        self.delivered.lock().expect("lock").push(email.clone());
        Ok(SentReceipt {
            message_id: email.message_id.clone(),
            server_reply: Some("250 2.0.0 queued".into()),
        })
    }
}

fn greylisted() -> DeliveryError {
    DeliveryError::Transient {
        reason: "greylisted".into(),
        reply: Some(SmtpReply::new(451, Some("4.7.1"), "try again later")),
    }
}

fn no_such_user() -> DeliveryError {
    DeliveryError::RecipientRejected {
        recipient: "alice@example.com".into(),
        reply: Some(SmtpReply::new(550, Some("5.1.1"), "no such user")),
    }
}

const RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    base_delay: Duration::from_secs(30),
    max_delay: Duration::from_secs(3600),
};

struct Setup {
    fx: Fixture,
    outbox: InMemoryOutbox,
    mailer: ScriptedMailer,
    service: ResetService,
    worker: DeliveryWorker,
}

fn setup(mailer: ScriptedMailer, retry: RetryPolicy) -> Setup {
    let fx = Fixture::with_accounts([Account::new("a1", "alice", "alice@example.com")]);
    let outbox = InMemoryOutbox::default();
    let service = fx
        .builder()
        .mailer(Arc::new(mailer.clone()))
        .outbox(Arc::new(outbox.clone()))
        .retry_policy(retry)
        .build()
        .expect("valid");
    let worker = service.delivery_worker().expect("outbox mode has a worker");
    Setup {
        fx,
        outbox,
        mailer,
        service,
        worker,
    }
}

async fn counts(outbox: &InMemoryOutbox) -> OutboxCounts {
    outbox.counts().await.expect("counts")
}

/// `DeliveryFailed` events as (permanent, will_retry, reason).
fn failures(fx: &Fixture) -> Vec<(bool, bool, String)> {
    fx.kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::DeliveryFailed {
                reason,
                permanent,
                will_retry,
                ..
            } => Some((permanent, will_retry, reason)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_request_only_queues_and_the_worker_sends() {
    let s = setup(ScriptedMailer::default(), RETRY);
    s.service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    assert_eq!(
        s.mailer.attempts(),
        0,
        "the request does not talk to the mail server"
    );
    assert_eq!(
        counts(&s.outbox).await,
        OutboxCounts {
            waiting: 1,
            sent: 0,
            failed: 0,
            dropped: 0
        }
    );
    assert_eq!(s.fx.count("email_queued"), 1);
    assert_eq!(s.fx.count("email_sent"), 0);

    let report = s.worker.run_once().await.expect("pass");
    assert_eq!((report.sent, report.retried, report.failed), (1, 0, 0));
    assert_eq!(
        counts(&s.outbox).await,
        OutboxCounts {
            waiting: 0,
            sent: 1,
            failed: 0,
            dropped: 0
        }
    );
    let delivered = s.mailer.delivered();
    assert_eq!(delivered.len(), 1);
    let status = s.outbox.status(&delivered[0].message_id).await.expect("status");
    assert_eq!(status, Some(OutboxStatus::Sent));
    assert!(s.fx.kinds().contains(&EventKind::EmailSent {
        message_id: delivered[0].message_id.clone(),
        from: common::NOREPLY.into(),
        to: "alice@example.com".into(),
    }));

    // Nothing is sent twice, by this worker or another one.
    assert_eq!(s.worker.run_once().await.expect("pass").sent, 0);
    let other = s.service.delivery_worker().expect("worker");
    assert_eq!(other.run_once().await.expect("pass").sent, 0);
    assert_eq!(s.mailer.attempts(), 1);

    // The delivered link works, and the password-changed notice goes
    // through the outbox as well.
    let token = common::reset_token(&delivered[0]);
    s.service
        .complete(&token, secret(GOOD_PASSWORD), secret(GOOD_PASSWORD))
        .await
        .expect("reset");
    assert_eq!(s.mailer.attempts(), 1);
    s.worker.run_once().await.expect("pass");
    assert_eq!(s.mailer.delivered()[1].kind, EmailKind::PasswordChanged);
}

#[tokio::test]
async fn transient_failures_are_retried_with_exponential_backoff_until_delivered() {
    let s = setup(ScriptedMailer::failing_with([greylisted(), greylisted()]), RETRY);
    s.service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("accepted");

    let report = s.worker.run_once().await.expect("pass");
    assert_eq!((report.sent, report.retried, report.failed), (0, 1, 0));
    assert_eq!(s.mailer.attempts(), 1);
    assert_eq!(counts(&s.outbox).await.waiting, 1, "nothing is lost");

    // First retry after 30 s, not before.
    assert_eq!(s.worker.run_once().await.expect("pass"), Default::default());
    s.fx.clock.advance(Duration::from_secs(29));
    assert_eq!(s.worker.run_once().await.expect("pass"), Default::default());
    s.fx.clock.advance(Duration::from_secs(1));
    assert_eq!(s.worker.run_once().await.expect("pass").retried, 1);
    assert_eq!(s.mailer.attempts(), 2);

    // Second retry after 60 s (doubled).
    s.fx.clock.advance(Duration::from_secs(59));
    assert_eq!(s.worker.run_once().await.expect("pass"), Default::default());
    s.fx.clock.advance(Duration::from_secs(1));
    assert_eq!(s.worker.run_once().await.expect("pass").sent, 1);
    assert_eq!(s.mailer.attempts(), 3);
    assert_eq!(s.mailer.delivered().len(), 1);
    assert_eq!(
        counts(&s.outbox).await,
        OutboxCounts {
            waiting: 0,
            sent: 1,
            failed: 0,
            dropped: 0
        }
    );

    let failures = failures(&s.fx);
    assert_eq!(failures.len(), 2);
    for (permanent, will_retry, reason) in &failures {
        assert!(!permanent && *will_retry, "{reason}");
        assert!(reason.contains("451 4.7.1 try again later"), "{reason}");
    }
    assert_eq!(s.fx.count("email_sent"), 1);
    // The same message (same Message-ID) was retried, not a new one.
    let attempts = s.mailer.attempts.lock().expect("lock").clone();
    assert!(attempts.iter().all(|m| m.message_id == attempts[0].message_id));
}

#[tokio::test]
async fn a_permanent_failure_gives_up_at_once_and_records_why() {
    let s = setup(ScriptedMailer::failing_with([no_such_user()]), RETRY);
    s.service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    let report = s.worker.run_once().await.expect("pass");
    assert_eq!((report.sent, report.retried, report.failed), (0, 0, 1));

    let message_id = s.mailer.attempts.lock().expect("lock")[0].message_id.clone();
    match s.outbox.status(&message_id).await.expect("status") {
        Some(OutboxStatus::Failed { reason }) => {
            assert!(
                reason.contains("recipient <alice@example.com> rejected"),
                "{reason}"
            );
            assert!(reason.contains("550 5.1.1 no such user"), "{reason}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let failures = failures(&s.fx);
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].0 && !failures[0].1,
        "permanent, no retry: {failures:?}"
    );

    s.fx.clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(s.worker.run_once().await.expect("pass"), Default::default());
    assert_eq!(s.mailer.attempts(), 1, "never retried");
}

#[tokio::test]
async fn transient_failures_give_up_after_the_last_attempt() {
    let retry = RetryPolicy {
        max_attempts: 3,
        ..RETRY
    };
    let s = setup(
        ScriptedMailer::failing_with([greylisted(), greylisted(), greylisted(), greylisted()]),
        retry,
    );
    s.service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    // Retries at +30 s and +60 s: all inside the 30-minute link lifetime.
    for _ in 0..10 {
        s.worker.run_once().await.expect("pass");
        s.fx.clock.advance(Duration::from_secs(60));
    }
    assert_eq!(s.mailer.attempts(), 3);
    assert_eq!(
        counts(&s.outbox).await,
        OutboxCounts {
            waiting: 0,
            sent: 0,
            failed: 1,
            dropped: 0
        }
    );
    let failures = failures(&s.fx);
    let will_retry: Vec<bool> = failures.iter().map(|f| f.1).collect();
    assert_eq!(will_retry, vec![true, true, false]);
    assert!(failures.iter().all(|f| !f.0), "transient, not permanent");
}

#[tokio::test]
async fn a_link_that_expires_while_waiting_for_a_retry_is_not_delivered() {
    let s = setup(ScriptedMailer::failing_with([greylisted()]), RETRY);
    s.service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    assert_eq!(s.worker.run_once().await.expect("pass").retried, 1);
    s.fx.clock.advance(Duration::from_secs(31 * 60));
    let report = s.worker.run_once().await.expect("pass");
    assert_eq!((report.sent, report.dropped), (0, 1), "{report:?}");
    assert_eq!(s.mailer.attempts(), 1, "the dead link is not sent");
    assert_eq!(
        counts(&s.outbox).await,
        OutboxCounts {
            waiting: 0,
            sent: 0,
            failed: 0,
            dropped: 1
        }
    );
    assert!(s.fx.kinds().contains(&EventKind::EmailDropped {
        message_id: s.mailer.attempts.lock().expect("lock")[0].message_id.clone(),
        reason: resetkit::token::RejectReason::Expired,
    }));
}

#[tokio::test]
async fn a_message_claimed_by_a_worker_that_died_is_sent_after_its_lease() {
    let s = setup(ScriptedMailer::default(), RETRY);
    s.service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    // A worker claims the message and dies before sending.
    let claimed = s
        .outbox
        .claim(s.fx.clock.now(), 10, Duration::from_secs(300))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        s.worker.run_once().await.expect("pass").sent,
        0,
        "leased to the dead worker"
    );
    s.fx.clock.advance(Duration::from_secs(300));
    assert_eq!(s.worker.run_once().await.expect("pass").sent, 1);
    assert_eq!(s.mailer.delivered().len(), 1);
}

#[tokio::test]
async fn inline_mode_has_no_worker_and_records_failures_without_retrying() {
    let fx = Fixture::with_accounts([Account::new("a1", "alice", "alice@example.com")]);
    let mailer = ScriptedMailer::failing_with([greylisted()]);
    let service = fx
        .builder()
        .mailer(Arc::new(mailer.clone()))
        .build()
        .expect("valid");
    assert!(service.delivery_worker().is_none());
    service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("accepted: delivery failures are not shown to the requester");
    assert_eq!(mailer.attempts(), 1);
    let failures = failures(&fx);
    assert_eq!(failures.len(), 1);
    assert!(!failures[0].0 && !failures[0].1, "{failures:?}");
}

/// An outbox whose first `blips` calls to `mark_sent` fail as a database
/// that is briefly unreachable would (after the server's 250).
struct BlipOnSent {
    inner: InMemoryOutbox,
    blips: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Outbox for BlipOnSent {
    async fn enqueue(&self, entry: resetkit::store::OutboxEntry) -> Result<(), StoreError> {
        self.inner.enqueue(entry).await
    }
    async fn claim(
        &self,
        now: std::time::SystemTime,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<resetkit::store::OutboxEntry>, StoreError> {
        self.inner.claim(now, max, lease).await
    }
    async fn mark_sent(&self, id: &str, attempt: u32, now: std::time::SystemTime) -> Result<(), StoreError> {
        let left = self.blips.load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            self.blips.store(left - 1, std::sync::atomic::Ordering::SeqCst);
            return Err(StoreError::unavailable("outbox.mark_sent", "connection reset"));
        }
        self.inner.mark_sent(id, attempt, now).await
    }
    async fn mark_failed(
        &self,
        id: &str,
        attempt: u32,
        error: &DeliveryError,
        now: std::time::SystemTime,
        retry_in: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.inner.mark_failed(id, attempt, error, now, retry_in).await
    }
    async fn renew(
        &self,
        id: &str,
        attempt: u32,
        now: std::time::SystemTime,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.renew(id, attempt, now, lease).await
    }
    async fn mark_dropped(&self, id: &str, attempt: u32, reason: &str) -> Result<(), StoreError> {
        self.inner.mark_dropped(id, attempt, reason).await
    }
    async fn status(&self, id: &str) -> Result<Option<OutboxStatus>, StoreError> {
        self.inner.status(id).await
    }
    async fn counts(&self) -> Result<OutboxCounts, StoreError> {
        self.inner.counts().await
    }
}

/// Issue 21, finding 5: the store failing to record "sent" after the
/// server's 250 used to leave the message claimed, and it was sent again
/// when the lease ended. The worker now retries the commit.
#[tokio::test]
async fn a_database_blip_after_the_servers_250_does_not_send_twice() {
    let fx = Fixture::with_accounts([Account::new("a1", "alice", "alice@example.com")]);
    let inner = InMemoryOutbox::default();
    let mailer = ScriptedMailer::default();
    let service = fx
        .builder()
        .mailer(Arc::new(mailer.clone()))
        .outbox(Arc::new(BlipOnSent {
            inner: inner.clone(),
            blips: std::sync::atomic::AtomicUsize::new(2),
        }))
        .build()
        .expect("valid");
    service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    let worker = service.delivery_worker().expect("worker");
    let first = worker.run_once().await;
    // Whatever the first pass says, the lease ends and another pass runs.
    fx.clock
        .advance(resetkit::delivery::DELIVERY_LEASE + Duration::from_secs(1));
    let second = worker.run_once().await.expect("pass");
    assert_eq!(
        mailer.delivered().len(),
        1,
        "sent once (first pass: {first:?}, second: {second:?})"
    );
    let id = &mailer.delivered()[0].message_id;
    assert_eq!(inner.status(id).await.expect("status"), Some(OutboxStatus::Sent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_its_own_thread_sends_and_stops_when_told() {
    let s = setup(ScriptedMailer::default(), RETRY);
    s.service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = s
        .worker
        .clone()
        .spawn_on_own_thread(Duration::from_millis(10), async {
            let _ = stopped.await;
        })
        .expect("a thread");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while s.mailer.delivered().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delivery thread sent nothing"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), thread.stopped())
        .await
        .expect("the thread ended when told");
    assert_eq!(s.mailer.delivered().len(), 1);
    assert_eq!(counts(&s.outbox).await.sent, 1);
}
