//! The four ways the token lifecycle broke at its seams (adversarial review),
//! each reproduced through the public flow: a revoked token coming back, two
//! live links after concurrent requests, a superseded link delivered after
//! the newer one, and the deny link completing a reset.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{Fixture, GOOD_PASSWORD, deny_token, reset_token, secret};
use resetkit::error::StoreError;
use resetkit::event::EventKind;
use resetkit::hasher::PasswordHash;
use resetkit::policy::RateLimits;
use resetkit::prelude::*;
use resetkit::token::{RejectReason, RevokeReason};

/// A directory whose next password write runs `during_write` (what another
/// request does while the write is in flight) and then fails.
#[derive(Clone)]
struct FailingWrite {
    inner: InMemoryAccounts,
    /// Whether the held write fails (else it succeeds once resumed).
    fail: bool,
    during_write: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
    resume: Arc<tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>>,
}

#[async_trait]
impl AccountDirectory for FailingWrite {
    async fn find_by_email(&self, email: &str) -> Result<Vec<Account>, StoreError> {
        self.inner.find_by_email(email).await
    }
    async fn find_by_username(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.inner.find_by_username(name).await
    }
    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.inner.find_by_id(id).await
    }
    async fn set_password_hash(&self, id: &AccountId, hash: &PasswordHash) -> Result<(), StoreError> {
        let signal = self.during_write.lock().expect("lock").take();
        let Some(signal) = signal else {
            return self.inner.set_password_hash(id, hash).await;
        };
        // Tell the test the token is spent and the write is in flight, wait
        // until it has revoked the account's links, then fail the write.
        let _ = signal.send(());
        if let Some(resume) = self.resume.lock().await.take() {
            let _ = resume.await;
        }
        if !self.fail {
            return self.inner.set_password_hash(id, hash).await;
        }
        Err(StoreError::unavailable(
            "accounts.set_password_hash",
            "connection reset by peer",
        ))
    }
}

/// What happened when the owner denied while a `complete` held its
/// password write.
struct DeniedDuringWrite {
    fx: Fixture,
    service: ResetService,
    token: String,
    completed: Result<Completed, CompleteError>,
}

/// Requests a link for alice, starts `complete` with it, and while its
/// password write is held, has the owner follow the email's "this wasn't
/// me" link; then lets the write fail (`fail`) or go through.
async fn deny_during_write(fail: bool) -> DeniedDuringWrite {
    let fx = Fixture::with_accounts([Account::new("a1", "alice", "alice@example.com")]);
    let (written_tx, written_rx) = tokio::sync::oneshot::channel();
    let (resume_tx, resume_rx) = tokio::sync::oneshot::channel();
    let accounts = FailingWrite {
        inner: fx.accounts.clone(),
        fail,
        during_write: Arc::new(Mutex::new(Some(written_tx))),
        resume: Arc::new(tokio::sync::Mutex::new(Some(resume_rx))),
    };
    let service = fx.builder().accounts(Arc::new(accounts)).build().expect("valid");
    service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("well formed");
    let mail = fx.mailer.sent().pop().expect("one email");
    let (token, deny) = (reset_token(&mail), deny_token(&mail));
    let attacker = {
        let (service, token) = (service.clone(), token.clone());
        tokio::spawn(async move {
            service
                .complete(&token, secret(GOOD_PASSWORD), secret(GOOD_PASSWORD))
                .await
        })
    };
    written_rx.await.expect("the password write started");
    service.deny(&deny).await.expect("the owner's denial is honoured");
    resume_tx.send(()).expect("writer waits");
    let completed = attacker.await.expect("task");
    DeniedDuringWrite {
        fx,
        service,
        token,
        completed,
    }
}

/// Race 1: `complete` spends the token, the password write fails, and the
/// owner's "this wasn't me" revokes the account's links meanwhile. The
/// release after the failed write must not bring the revoked link back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_is_never_revived() {
    let DeniedDuringWrite {
        fx,
        service,
        token,
        completed,
    } = deny_during_write(true).await;
    assert!(
        matches!(completed, Err(CompleteError::Unavailable(_))),
        "the failed write is reported as unavailable"
    );

    let again = service
        .complete(&token, secret(GOOD_PASSWORD), secret(GOOD_PASSWORD))
        .await;
    assert!(
        matches!(again, Err(CompleteError::InvalidLink)),
        "a link revoked while it was being spent stays dead, got {again:?}"
    );
    assert_eq!(
        fx.last_rejection(),
        Some(RejectReason::Revoked(RevokeReason::UserDenied))
    );
    assert!(service.inspect(&token).await.is_err(), "inspect refuses it too");
}

/// The other side of race 1: the write succeeds after the owner denied.
/// The password is changed (the link was presented before the denial), and
/// the trail says so instead of a plain "reset completed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_during_a_successful_write_is_recorded() {
    let DeniedDuringWrite { fx, completed, .. } = deny_during_write(false).await;
    completed.expect("the write went through");
    assert!(
        fx.kinds().contains(&EventKind::RevokedDuringReset {
            reason: RevokeReason::UserDenied
        }),
        "{:?}",
        fx.kinds()
    );
    assert_eq!(
        fx.mailer.sent_to("alice@example.com").len(),
        2,
        "the owner gets the password-changed notice"
    );
}

/// Race 2: newest-wins must be one atomic step. 50 concurrent requests for
/// one account leave exactly one live link, 20 times in a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_leave_one_live_link() {
    const REQUESTS: usize = 50;
    for round in 0..20 {
        let fx = Fixture::with_accounts([Account::new("a1", "alice", "alice@example.com")]);
        let service = fx
            .builder()
            .rate_limits(RateLimits::unlimited())
            .build()
            .expect("valid");
        let start = Arc::new(tokio::sync::Barrier::new(REQUESTS));
        let mut tasks = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            let (service, start) = (service.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                service
                    .request("alice@example.com", &RequestContext::default())
                    .await
            }));
        }
        for task in tasks {
            task.await.expect("task").expect("accepted");
        }
        let mails = fx.mailer.sent();
        assert_eq!(mails.len(), REQUESTS, "round {round}: one email per request");
        let mut live = 0;
        for mail in &mails {
            if service.inspect(&reset_token(mail)).await.is_ok() {
                live += 1;
            }
        }
        assert_eq!(
            live, 1,
            "round {round}: exactly one live link after {REQUESTS} concurrent requests"
        );
    }
}

/// Race 3: a message whose link was superseded while it waited in the
/// outbox (e.g. behind a 451 retry) is not delivered after the newer one.
#[tokio::test]
async fn superseded_mail_is_not_delivered() {
    let fx = Fixture::with_accounts([Account::new("a1", "alice", "alice@example.com")]);
    let outbox = InMemoryOutbox::default();
    let service = fx
        .builder()
        .outbox(Arc::new(outbox.clone()))
        .rate_limits(RateLimits::unlimited())
        .build()
        .expect("valid");
    let ctx = RequestContext::default();
    service
        .request("alice@example.com", &ctx)
        .await
        .expect("accepted");
    fx.clock.advance(Duration::from_secs(30));
    service
        .request("alice@example.com", &ctx)
        .await
        .expect("accepted");

    let worker = service.delivery_worker().expect("outbox mode");
    let report = worker.run_once().await.expect("outbox up");
    let delivered = fx.mailer.sent();
    assert_eq!(
        delivered.len(),
        1,
        "only the newest link is delivered: {report:?}"
    );
    assert!(
        service.inspect(&reset_token(&delivered[0])).await.is_ok(),
        "the delivered link is the live one"
    );
    assert!(
        fx.kinds().iter().any(|k| matches!(
            k,
            EventKind::EmailDropped {
                reason: RejectReason::Revoked(RevokeReason::Superseded),
                ..
            }
        )),
        "the event log says why the older email was not sent: {:?}",
        fx.kinds()
    );
}

/// Race 4: the "this wasn't me" link carries its own secret. It cannot
/// complete a reset, and it dies once its reset link is used, so an old
/// email cannot kill the owner's newer link.
#[tokio::test]
async fn deny_link_cannot_complete_a_reset() {
    let fx = Fixture::with_accounts([Account::new("a1", "alice", "alice@example.com")]);
    let service = fx
        .builder()
        .rate_limits(RateLimits::unlimited())
        .build()
        .expect("valid");
    service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    let mail = fx.mailer.sent().pop().expect("one email");
    let (token, deny) = (reset_token(&mail), deny_token(&mail));
    assert_ne!(token, deny, "the deny link has its own secret");
    assert!(
        matches!(
            service
                .complete(&deny, secret(GOOD_PASSWORD), secret(GOOD_PASSWORD))
                .await,
            Err(CompleteError::InvalidLink)
        ),
        "the deny secret cannot set a password"
    );
    assert!(
        service.inspect(&deny).await.is_err(),
        "nor open the password form"
    );
    assert!(
        service.deny(&token).await.is_err(),
        "the reset secret cannot deny"
    );

    service
        .complete(&token, secret(GOOD_PASSWORD), secret(GOOD_PASSWORD))
        .await
        .expect("the reset link works");
    let newer = fx.request_token(&service, "alice@example.com").await;
    assert!(
        service.deny(&deny).await.is_err(),
        "a used link's deny link is dead"
    );
    assert!(
        service.inspect(&newer).await.is_ok(),
        "the owner's newer link survives an old email's deny link"
    );
}

/// The deny link also dies when its reset link is revoked (superseded).
#[tokio::test]
async fn deny_link_dies_with_its_superseded_reset_link() {
    let fx = Fixture::with_accounts([Account::new("a1", "alice", "alice@example.com")]);
    let service = fx
        .builder()
        .rate_limits(RateLimits::unlimited())
        .build()
        .expect("valid");
    service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    let old_deny = deny_token(&fx.mailer.sent().pop().expect("email"));
    let newer = fx.request_token(&service, "alice@example.com").await;
    assert!(
        service.deny(&old_deny).await.is_err(),
        "superseded link's deny is dead"
    );
    assert!(service.inspect(&newer).await.is_ok(), "newer link untouched");
}

/// A combined email (accounts sharing an address) whose one link was
/// superseded while it waited is still delivered for the other account's
/// live link; only an email whose every link died is dropped.
#[tokio::test]
async fn a_combined_email_with_a_live_link_left_is_still_delivered() {
    use resetkit::policy::DuplicateEmailPolicy;
    let fx = Fixture::with_accounts([
        Account::new("a1", "dave", "family@example.com"),
        Account::new("a2", "erin", "family@example.com"),
    ]);
    let service = fx
        .builder()
        .outbox(Arc::new(InMemoryOutbox::default()))
        .duplicate_email_policy(DuplicateEmailPolicy::CombinedEmail)
        .rate_limits(RateLimits::unlimited())
        .build()
        .expect("valid");
    let ctx = RequestContext::default();
    service
        .request("family@example.com", &ctx)
        .await
        .expect("accepted");
    service.request("erin", &ctx).await.expect("accepted");
    let worker = service.delivery_worker().expect("outbox mode");
    let report = worker.run_once().await.expect("outbox up");
    assert_eq!((report.sent, report.dropped), (2, 0), "{report:?}");
    let combined = fx
        .mailer
        .sent()
        .into_iter()
        .find(|m| common::reset_tokens(m).len() == 2)
        .expect("the combined email was delivered");
    let live: Vec<bool> = {
        let mut live = Vec::new();
        for token in common::reset_tokens(&combined) {
            live.push(service.inspect(&token).await.is_ok());
        }
        live
    };
    assert_eq!(
        live.iter().filter(|l| **l).count(),
        1,
        "dave's link is live, erin's superseded"
    );
}
