//! Uniform timing is the default: with the builder exactly as the README
//! shows it (no timing option), `request` answers before the account lookup,
//! the token and the mail, so a known account cannot answer slower than an
//! unknown one. Checked without measuring time: the account directory below
//! blocks until released, and `request` must return while it is blocked.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use resetkit::error::StoreError;
use resetkit::hasher::PasswordHash;
use resetkit::prelude::*;
use tokio::sync::Semaphore;

/// A directory whose email lookups wait for a permit.
struct Gated {
    inner: InMemoryAccounts,
    gate: Semaphore,
    started: AtomicUsize,
    /// When each email lookup started.
    lookups: std::sync::Mutex<Vec<std::time::Instant>>,
}

#[resetkit::async_trait]
impl AccountDirectory for Gated {
    async fn find_by_email(&self, e: &str) -> Result<Vec<Account>, StoreError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.lookups.lock().unwrap().push(std::time::Instant::now());
        let _permit = self.gate.acquire().await;
        self.inner.find_by_email(e).await
    }
    async fn find_by_username(&self, u: &str) -> Result<Option<Account>, StoreError> {
        self.inner.find_by_username(u).await
    }
    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.inner.find_by_id(id).await
    }
    async fn set_password_hash(&self, id: &AccountId, hash: &PasswordHash) -> Result<(), StoreError> {
        self.inner.set_password_hash(id, hash).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_builder_answers_before_looking_the_account_up() {
    let accounts = InMemoryAccounts::default();
    accounts.insert(Account::new("1", "alice", "alice@example.com"));
    let directory = Arc::new(Gated {
        inner: accounts,
        gate: Semaphore::new(0),
        started: AtomicUsize::new(0),
        lookups: std::sync::Mutex::default(),
    });
    let mailer = CapturingMailer::default();
    // The README's builder, with a fast hasher.
    let service = ResetService::builder()
        .base_url("https://app.example.com")
        .accounts(directory.clone())
        .tokens(Arc::new(InMemoryTokenStore::default()))
        .events(Arc::new(InMemoryEventLog::default()))
        .mailer(Arc::new(mailer.clone()))
        .sender(Arc::new(FixedSender::new(
            Mailbox::address_only("noreply@example.com").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .build()
        .unwrap();
    for identifier in ["alice@example.com", "nobody@example.com"] {
        // A generous bound: an inline request would wait here forever.
        let answer = tokio::time::timeout(
            Duration::from_secs(30),
            service.request(identifier, &RequestContext::from_client("203.0.113.9")),
        )
        .await
        .expect("request answered while the account lookup was still blocked");
        assert_eq!(answer.unwrap(), RequestAccepted);
    }
    assert!(
        mailer.sent().is_empty(),
        "nothing was sent yet: the lookups are blocked"
    );
    // Releasing the directory lets the background work finish: alice's mail.
    directory.gate.add_permits(2);
    for _ in 0..3000 {
        if !mailer.sent_to("alice@example.com").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(mailer.sent_to("alice@example.com").len(), 1);
    assert_eq!(directory.started.load(Ordering::SeqCst), 2);
}

/// The work that differs by account starts only once the request is
/// `REQUEST_SETTLE` old: never while its own answer is being written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_leave_a_request_alone_until_its_answer_is_out() {
    let accounts = InMemoryAccounts::default();
    accounts.insert(Account::new("1", "alice", "alice@example.com"));
    let directory = Arc::new(Gated {
        inner: accounts,
        gate: Semaphore::new(100),
        started: AtomicUsize::new(0),
        lookups: std::sync::Mutex::default(),
    });
    let mailer = CapturingMailer::default();
    let service = ResetService::builder()
        .base_url("https://app.example.com")
        .accounts(directory.clone())
        .tokens(Arc::new(InMemoryTokenStore::default()))
        .events(Arc::new(InMemoryEventLog::default()))
        .mailer(Arc::new(mailer.clone()))
        .sender(Arc::new(FixedSender::new(
            Mailbox::address_only("noreply@example.com").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .build()
        .unwrap();
    let mut asked = Vec::new();
    for identifier in ["alice@example.com", "nobody@example.com", "alice@example.com"] {
        asked.push(std::time::Instant::now());
        service
            .request(identifier, &RequestContext::from_client("203.0.113.9"))
            .await
            .unwrap();
    }
    for _ in 0..3000 {
        if directory.started.load(Ordering::SeqCst) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lookups = directory.lookups.lock().unwrap().clone();
    assert_eq!(lookups.len(), 3);
    // Each lookup comes REQUEST_SETTLE or more after its request (both
    // lists are in time order, so pairing them in order is a fair check).
    for (asked, looked) in asked.iter().zip(&lookups) {
        assert!(
            looked.duration_since(*asked) >= resetkit::flow::REQUEST_SETTLE,
            "a lookup started {:?} after its request",
            looked.duration_since(*asked)
        );
    }
}
