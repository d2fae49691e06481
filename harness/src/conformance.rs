//! Store conformance suite: one set of checks every [`TokenStore`],
//! [`EventLog`], [`Outbox`], [`RequestInbox`] and [`AccountDirectory`] implementation runs in
//! its own tests, in-memory and PostgreSQL alike.
//!
//! Each function expects a fresh, empty store and panics with a message
//! naming the broken expectation, so it is called from a `#[tokio::test]`:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use resetkit::memory::InMemoryTokenStore;
//! resetkit_harness::conformance::token_store_suite(&InMemoryTokenStore::default()).await;
//! # });
//! ```
//!
//! [`TokenStore`]: resetkit::store::TokenStore
//! [`EventLog`]: resetkit::store::EventLog
//! [`Outbox`]: resetkit::store::Outbox
//! [`RequestInbox`]: resetkit::store::RequestInbox
//! [`AccountDirectory`]: resetkit::account::AccountDirectory

mod accounts;
mod events;
mod inbox;
mod operator;
mod outbox;
mod overview;
mod tokens;

use std::time::{Duration, SystemTime};

pub use accounts::{
    MatchingVector, Typed, account_directory_suite, fixture_accounts, matching_accounts, matching_vectors,
    unicode_matching_suite,
};
pub use events::event_log_suite;
pub use inbox::{request_inbox_concurrent_claim, request_inbox_suite, retention_suite};
pub use operator::{
    event_log_paging_suite, outbox_listing_suite, template_changes_suite, template_store_suite,
};
pub use outbox::{outbox_suite, sample_email};
pub use overview::{activity_log_suite, queue_age_suite};
pub use tokens::{
    restamp_and_rate_admin_suite, token_store_concurrent_consume, token_store_concurrent_finish_revoke,
    token_store_concurrent_issue, token_store_concurrent_revoke_release, token_store_suite,
};

/// A fixed point in time the suites work from (whole seconds, so stores that
/// keep microseconds round-trip it exactly).
pub fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}
