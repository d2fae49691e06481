//! The in-memory stores pass the store conformance suite.

use std::sync::Arc;

use resetkit::memory::{InMemoryAccounts, InMemoryEventLog, InMemoryOutbox, InMemoryTokenStore};
use resetkit_harness::conformance;

#[tokio::test]
async fn in_memory_token_store_conforms() {
    conformance::token_store_suite(&InMemoryTokenStore::default()).await;
}

#[tokio::test]
async fn in_memory_token_store_restamps_and_clears_limits() {
    conformance::restamp_and_rate_admin_suite(&InMemoryTokenStore::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_token_store_consume_is_atomic() {
    conformance::token_store_concurrent_consume(Arc::new(InMemoryTokenStore::default()), 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_concurrent_requests_leave_one_live_link() {
    conformance::token_store_concurrent_issue(Arc::new(InMemoryTokenStore::default()), 50, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_revoked_token_is_never_revived() {
    conformance::token_store_concurrent_revoke_release(Arc::new(InMemoryTokenStore::default()), 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_finish_never_hides_a_revocation() {
    conformance::token_store_concurrent_finish_revoke(Arc::new(InMemoryTokenStore::default()), 50).await;
}

#[tokio::test]
async fn in_memory_event_log_conforms() {
    conformance::event_log_suite(&InMemoryEventLog::default()).await;
}

#[tokio::test]
async fn in_memory_outbox_conforms() {
    conformance::outbox_suite(&InMemoryOutbox::default()).await;
}

#[tokio::test]
async fn in_memory_account_directory_conforms() {
    let dir = InMemoryAccounts::default();
    for account in conformance::fixture_accounts() {
        dir.insert(account);
    }
    conformance::account_directory_suite(&dir).await;
}

#[tokio::test]
async fn item2_in_memory_directory_matches_the_unicode_vectors() {
    let dir = InMemoryAccounts::default();
    for account in conformance::matching_accounts() {
        dir.insert(account);
    }
    conformance::unicode_matching_suite(&dir).await;
}

#[tokio::test]
async fn in_memory_inbox_conforms() {
    conformance::request_inbox_suite(&resetkit::memory::InMemoryInbox::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_inbox_hands_each_request_to_one_worker() {
    conformance::request_inbox_concurrent_claim(Arc::new(resetkit::memory::InMemoryInbox::default()), 200, 8)
        .await;
}

#[tokio::test]
async fn in_memory_stores_purge_per_retention() {
    conformance::retention_suite(
        &InMemoryTokenStore::default(),
        &InMemoryEventLog::default(),
        &InMemoryOutbox::default(),
    )
    .await;
}

/// A log that implements only the required methods: the trait's default
/// `account_page` (built on `for_account`) passes the paging suite too.
#[derive(Default)]
struct RequiredMethodsOnly(InMemoryEventLog);

#[resetkit::async_trait]
impl resetkit::store::EventLog for RequiredMethodsOnly {
    async fn record(&self, event: resetkit::event::Event) -> Result<(), resetkit::error::StoreError> {
        self.0.record(event).await
    }

    async fn for_account(
        &self,
        account: &resetkit::account::AccountId,
    ) -> Result<Vec<resetkit::event::Event>, resetkit::error::StoreError> {
        self.0.for_account(account).await
    }

    async fn recent(&self, limit: usize) -> Result<Vec<resetkit::event::Event>, resetkit::error::StoreError> {
        self.0.recent(limit).await
    }
}

#[tokio::test]
async fn the_default_account_page_pages_newest_first() {
    conformance::event_log_paging_suite(&RequiredMethodsOnly::default()).await;
}

#[tokio::test]
async fn in_memory_event_log_pages_newest_first() {
    conformance::event_log_paging_suite(&InMemoryEventLog::default()).await;
}

#[tokio::test]
async fn in_memory_event_log_counts_activity() {
    conformance::activity_log_suite(&InMemoryEventLog::default()).await;
}

#[tokio::test]
async fn in_memory_outbox_tells_its_oldest_waiting() {
    conformance::queue_age_suite(&InMemoryOutbox::default()).await;
}

#[tokio::test]
async fn in_memory_outbox_lists_by_state() {
    conformance::outbox_listing_suite(&InMemoryOutbox::default()).await;
}

#[tokio::test]
async fn in_memory_template_store_conforms() {
    conformance::template_store_suite(&resetkit::template::InMemoryTemplateStore::default()).await;
}
