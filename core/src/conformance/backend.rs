//! [`Backend`]: how a backend opens fresh stores for one generated test,
//! and the [`conformance_tests!`](crate::conformance_tests) macro.

use std::sync::Arc;

use async_trait::async_trait;

use crate::account::{Account, AccountDirectory};
use crate::activity::{ActivityLog, QueueAge};
use crate::store::{
    EventRetention, OutboxListing, OutboxRetention, RateLimitAdmin, RequestInbox, Timeline, TokenRetention,
};
use crate::template::TemplateStore;

/// A backend under test: fresh, empty stores per test, each with every
/// capability the generated tests exercise.
#[async_trait]
pub trait Backend: Sized + Send + Sync + 'static {
    /// Tokens, the rate limiter and its admin, token retention.
    type Tokens: RateLimitAdmin + TokenRetention + 'static;
    /// The event log, read back, purged and counted.
    type Events: Timeline + EventRetention + ActivityLog + 'static;
    /// The outbox, listed, purged and aged.
    type Outbox: OutboxListing + OutboxRetention + QueueAge + 'static;
    /// The request inbox.
    type Inbox: RequestInbox + 'static;
    /// The account directory.
    type Accounts: AccountDirectory + 'static;
    /// The template store.
    type Templates: TemplateStore + 'static;

    /// Fresh, empty stores for the test `test`, which runs up to
    /// `concurrency` store calls at once (size a pool for it). `None` skips
    /// the test: say why loudly (e.g. no database configured), or panic
    /// when the environment requires the backend.
    async fn open(test: &'static str, concurrency: usize) -> Option<Self>;

    /// The token store (also the rate limiter).
    fn tokens(&self) -> Arc<Self::Tokens>;

    /// The event log.
    fn events(&self) -> Arc<Self::Events>;

    /// The outbox.
    fn outbox(&self) -> Arc<Self::Outbox>;

    /// The request inbox.
    fn inbox(&self) -> Arc<Self::Inbox>;

    /// The template store.
    fn templates(&self) -> Arc<Self::Templates>;

    /// A directory holding exactly `accounts`.
    async fn accounts(&self, accounts: Vec<Account>) -> Arc<Self::Accounts>;

    /// Cleans up after a passing test (drop a schema, say).
    async fn close(self) {}
}

/// Generates the conformance tests for a [`Backend`]: one
/// `#[tokio::test]` per suite, named alike for every backend.
///
/// The calling crate needs `tokio` with the `macros` and
/// `rt-multi-thread` features among its dev-dependencies.
#[macro_export]
macro_rules! conformance_tests {
    ($backend:ty) => {
        $crate::conformance_tests!(@one $backend, token_store_conforms, 1, |b| {
            $crate::conformance::token_store_suite(b.tokens().as_ref()).await;
        });
        $crate::conformance_tests!(@one $backend, token_store_restamps, 1, |b| {
            $crate::conformance::restamp_suite(b.tokens().as_ref()).await;
        });
        $crate::conformance_tests!(@one $backend, rate_limiter_conforms, 1, |b| {
            $crate::conformance::rate_limiter_suite(b.tokens().as_ref()).await;
        });
        $crate::conformance_tests!(@one $backend, rate_limit_admin_conforms, 1, |b| {
            $crate::conformance::rate_limit_admin_suite(b.tokens().as_ref()).await;
        });
        $crate::conformance_tests!(@one $backend, token_retention_conforms, 1, |b| {
            $crate::conformance::token_retention_suite(b.tokens().as_ref()).await;
        });
        $crate::conformance_tests!(@many $backend, token_store_concurrent_consume_conforms, 20, |b| {
            $crate::conformance::token_store_concurrent_consume(b.tokens(), 20).await;
        });
        $crate::conformance_tests!(@many $backend, concurrent_requests_leave_one_live_link, 20, |b| {
            $crate::conformance::token_store_concurrent_issue(b.tokens(), 50, 20).await;
        });
        $crate::conformance_tests!(@many $backend, revoked_token_is_never_revived, 4, |b| {
            $crate::conformance::token_store_concurrent_revoke_release(b.tokens(), 50).await;
        });
        $crate::conformance_tests!(@many $backend, finish_never_hides_a_revocation, 4, |b| {
            $crate::conformance::token_store_concurrent_finish_revoke(b.tokens(), 50).await;
        });
        $crate::conformance_tests!(@one $backend, event_log_conforms, 1, |b| {
            $crate::conformance::event_log_suite(b.events().as_ref()).await;
        });
        $crate::conformance_tests!(@one $backend, event_log_pages_newest_first, 1, |b| {
            $crate::conformance::event_log_paging_suite(b.events().as_ref()).await;
        });
        $crate::conformance_tests!(@one $backend, event_log_counts_activity, 1, |b| {
            $crate::conformance::activity_log_suite(b.events().as_ref()).await;
        });
        $crate::conformance_tests!(@one $backend, outbox_conforms, 1, |b| {
            $crate::conformance::outbox_suite(b.outbox().as_ref()).await;
        });
        $crate::conformance_tests!(@one $backend, outbox_lists_by_state, 1, |b| {
            $crate::conformance::outbox_listing_suite(b.outbox().as_ref()).await;
        });
        $crate::conformance_tests!(@one $backend, outbox_tells_its_oldest_waiting, 1, |b| {
            $crate::conformance::queue_age_suite(b.outbox().as_ref()).await;
        });
        $crate::conformance_tests!(@one $backend, inbox_conforms, 1, |b| {
            $crate::conformance::request_inbox_suite(b.inbox().as_ref()).await;
        });
        $crate::conformance_tests!(@many $backend, inbox_hands_each_request_to_one_worker, 8, |b| {
            $crate::conformance::request_inbox_concurrent_claim(b.inbox(), 200, 8).await;
        });
        $crate::conformance_tests!(@one $backend, stores_purge_per_retention, 1, |b| {
            $crate::conformance::retention_suite(
                b.tokens().as_ref(),
                b.events().as_ref(),
                b.outbox().as_ref(),
            )
            .await;
        });
        $crate::conformance_tests!(@one $backend, account_directory_conforms, 1, |b| {
            let accounts = b.accounts($crate::conformance::fixture_accounts()).await;
            $crate::conformance::account_directory_suite(accounts.as_ref()).await;
        });
        $crate::conformance_tests!(@one $backend, account_directory_matches_the_unicode_vectors, 1, |b| {
            let accounts = b.accounts($crate::conformance::matching_accounts()).await;
            $crate::conformance::unicode_matching_suite(accounts.as_ref()).await;
        });
        $crate::conformance_tests!(@one $backend, find_or_settle_conforms, 1, |b| {
            let accounts = b.accounts($crate::conformance::fixture_accounts()).await;
            $crate::conformance::find_or_settle_suite(
                accounts.as_ref(),
                b.events().as_ref(),
                b.inbox().as_ref(),
            )
            .await;
        });
        $crate::conformance_tests!(@one $backend, issue_and_record_conforms, 1, |b| {
            $crate::conformance::issue_and_record_suite(
                b.tokens().as_ref(),
                b.events().as_ref(),
                b.outbox().as_ref(),
                b.inbox().as_ref(),
            )
            .await;
        });
        $crate::conformance_tests!(@one $backend, token_with_account_conforms, 1, |b| {
            let accounts = b.accounts($crate::conformance::fixture_accounts()).await;
            $crate::conformance::token_with_account_suite(b.tokens().as_ref(), accounts.as_ref()).await;
        });
        $crate::conformance_tests!(@many $backend, concurrent_completes_consume_once, 20, |b| {
            let accounts = b.accounts($crate::conformance::fixture_accounts()).await;
            $crate::conformance::token_with_account_concurrent_consume(b.tokens(), accounts, 20).await;
        });
        $crate::conformance_tests!(@one $backend, finish_reset_conforms, 1, |b| {
            let accounts = b.accounts($crate::conformance::fixture_accounts()).await;
            $crate::conformance::finish_reset_suite(
                b.tokens().as_ref(),
                accounts.as_ref(),
                b.events().as_ref(),
                b.outbox().as_ref(),
            )
            .await;
        });
        $crate::conformance_tests!(@one $backend, template_store_conforms, 1, |b| {
            $crate::conformance::template_store_suite(b.templates().as_ref()).await;
        });
    };
    (@one $backend:ty, $name:ident, $concurrency:expr, |$b:ident| $body:block) => {
        #[tokio::test]
        async fn $name() {
            $crate::conformance_tests!(@body $backend, $name, $concurrency, |$b| $body);
        }
    };
    (@many $backend:ty, $name:ident, $concurrency:expr, |$b:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $crate::conformance_tests!(@body $backend, $name, $concurrency, |$b| $body);
        }
    };
    (@body $backend:ty, $name:ident, $concurrency:expr, |$b:ident| $body:block) => {
        let Some($b) = <$backend as $crate::conformance::Backend>::open(stringify!($name), $concurrency).await
        else {
            return;
        };
        #[allow(unused_imports)]
        use $crate::conformance::Backend as _;
        $body
        $crate::conformance::Backend::close($b).await;
    };
}
