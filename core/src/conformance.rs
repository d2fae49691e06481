//! The store conformance suite, as a library: one set of checks every
//! backend runs, in-memory and PostgreSQL alike (feature `conformance`).
//!
//! Each suite function expects fresh, empty stores and panics with a
//! message naming the broken expectation. A backend does not list them by
//! hand: it implements [`Backend`] (how to open fresh stores for one test)
//! and invokes [`conformance_tests!`](crate::conformance_tests), which
//! generates one `#[tokio::test]` per suite, with the same names for every
//! backend, so a new suite reaches every backend at once.
//!
//! ```toml
//! [dev-dependencies]
//! resetkit = { version = "0.1", features = ["conformance"] }
//! tokio = { version = "1", features = ["rt-multi-thread", "macros"] }
//! ```
//!
//! ```text
//! // a test file of a backend crate (e.g. tests/it/conformance.rs)
//! struct MyBackend { /* a fresh schema, say */ }
//! #[resetkit::async_trait]
//! impl resetkit::conformance::Backend for MyBackend { /* ... */ }
//! resetkit::conformance_tests!(MyBackend);
//! ```
//!
//! A suite can also be called on its own:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use resetkit::memory::InMemoryTokenStore;
//! resetkit::conformance::token_store_suite(&InMemoryTokenStore::default()).await;
//! # });
//! ```
//!
//! The suites by trait: [`TokenStore`] ([`token_store_suite`], the four
//! concurrency suites, [`restamp_suite`]), [`RateLimiter`]
//! ([`rate_limiter_suite`]), [`EventLog`] read back through [`Timeline`]
//! ([`event_log_suite`], [`event_log_paging_suite`]), [`Outbox`]
//! ([`outbox_suite`]), [`RequestInbox`] ([`request_inbox_suite`],
//! [`request_inbox_concurrent_claim`]), [`AccountDirectory`]
//! ([`account_directory_suite`], [`unicode_matching_suite`]), and the
//! capabilities: [`RateLimitAdmin`] ([`rate_limit_admin_suite`]),
//! [`OutboxListing`] ([`outbox_listing_suite`]), retention
//! ([`token_retention_suite`], [`retention_suite`]), [`ActivityLog`]
//! ([`activity_log_suite`]), [`QueueAge`] ([`queue_age_suite`]),
//! [`TemplateStore`] ([`template_store_suite`]), the combined steps
//! across stores ([`find_or_settle_suite`], [`issue_and_record_suite`])
//! and [`TemplateChanges`]
//! ([`template_changes_suite`], not in the macro: the in-memory template
//! store does not implement it).
//!
//! [`TokenStore`]: crate::store::TokenStore
//! [`RateLimiter`]: crate::store::RateLimiter
//! [`EventLog`]: crate::store::EventLog
//! [`Timeline`]: crate::store::Timeline
//! [`Outbox`]: crate::store::Outbox
//! [`RequestInbox`]: crate::store::RequestInbox
//! [`AccountDirectory`]: crate::account::AccountDirectory
//! [`RateLimitAdmin`]: crate::store::RateLimitAdmin
//! [`OutboxListing`]: crate::store::OutboxListing
//! [`ActivityLog`]: crate::activity::ActivityLog
//! [`QueueAge`]: crate::activity::QueueAge
//! [`TemplateStore`]: crate::template::TemplateStore
//! [`TemplateChanges`]: crate::flow::TemplateChanges

#![allow(clippy::missing_panics_doc)]

mod accounts;
mod events;
mod inbox;
mod operator;
mod outbox;
mod overview;
mod steps;
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
pub use steps::{
    find_or_settle_suite, finish_reset_suite, issue_and_record_suite, token_with_account_concurrent_consume,
    token_with_account_suite,
};
pub use tokens::{
    rate_limit_admin_suite, rate_limiter_suite, restamp_suite, token_retention_suite,
    token_store_concurrent_consume, token_store_concurrent_finish_revoke, token_store_concurrent_issue,
    token_store_concurrent_revoke_release, token_store_suite,
};

mod backend;
pub use backend::Backend;

/// A fixed point in time the suites work from (whole seconds, so stores that
/// keep microseconds round-trip it exactly).
pub fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}
