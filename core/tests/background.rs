//! Background request processing is bounded: beyond
//! `MAX_BACKGROUND_REQUESTS` in flight, a request is processed before it
//! returns instead of piling up tasks.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use common::Fixture;
use resetkit::error::StoreError;
use resetkit::flow::MAX_BACKGROUND_REQUESTS;
use resetkit::hasher::PasswordHash;
use resetkit::prelude::*;

/// Counts lookups by email.
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
        self.inner.find_by_username(u).await
    }
    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.inner.find_by_id(id).await
    }
    async fn set_password_hash(&self, id: &AccountId, hash: &PasswordHash) -> Result<(), StoreError> {
        self.inner.set_password_hash(id, hash).await
    }
}

#[tokio::test(flavor = "current_thread")]
async fn requests_beyond_the_background_bound_are_processed_inline() {
    let fx = Fixture::default();
    let directory = Arc::new(Counting {
        inner: fx.accounts.clone(),
        lookups: AtomicUsize::new(0),
    });
    let service = fx
        .builder()
        .accounts(directory.clone())
        .rate_limits(RateLimits::unlimited())
        .process_requests_in_background(true)
        .build()
        .expect("service");
    // On a current-thread runtime spawned tasks cannot run until the test
    // yields, and the in-memory stores never yield: the first requests are
    // only queued, the one past the bound runs before `request` returns.
    for n in 0..MAX_BACKGROUND_REQUESTS {
        service
            .request(&format!("nobody{n}@example.com"), &RequestContext::default())
            .await
            .expect("accepted");
    }
    assert_eq!(
        directory.lookups.load(Ordering::SeqCst),
        0,
        "all queued in the background"
    );
    service
        .request("one-more@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    assert_eq!(
        directory.lookups.load(Ordering::SeqCst),
        1,
        "the request past the bound ran inline"
    );
    for _ in 0..100 {
        tokio::task::yield_now().await;
        if directory.lookups.load(Ordering::SeqCst) == MAX_BACKGROUND_REQUESTS + 1 {
            break;
        }
    }
    assert_eq!(
        directory.lookups.load(Ordering::SeqCst),
        MAX_BACKGROUND_REQUESTS + 1,
        "every request processed"
    );
}
