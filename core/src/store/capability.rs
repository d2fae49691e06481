//! Optional capabilities, each a trait built on a core store trait (as
//! tower-sessions' `ExpiredDeletion: SessionStore`): what a store can do
//! shows in its type, and the code that needs a capability says so in its
//! bounds. A backend without one is a compile error where it is needed,
//! never an `Unsupported` or a silent `Ok(0)` at run time.
//!
//! | trait | built on | needed by |
//! | --- | --- | --- |
//! | [`RateLimitAdmin`] | [`RateLimiter`] | the console's rate-limit section ([`ConsoleStores`](crate::flow::ConsoleStores)) |
//! | [`Timeline`] | [`EventLog`] | the console's account timeline, the harness's event reads |
//! | [`OutboxListing`] | [`Outbox`] | the console's delivery queue |
//! | [`TokenRetention`] | [`TokenStore`] + [`RateLimiter`] | retention purges ([`RetentionStores`](crate::flow::RetentionStores)) |
//! | [`EventRetention`] | [`EventLog`] | retention purges |
//! | [`OutboxRetention`] | [`Outbox`] | retention purges |
//!
//! The overview's [`ActivityLog`](crate::activity::ActivityLog) and
//! [`QueueAge`](crate::activity::QueueAge) and the template store's
//! [`TemplateChanges`](crate::flow::TemplateChanges) follow the same rule.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::account::AccountId;
use crate::error::StoreError;
use crate::event::Event;

use super::{
    EventCursor, EventLog, EventPage, Outbox, OutboxMessage, OutboxState, RateKey, RateLimiter, TokenStore,
};

/// The operator's view of the rate limits: read an account's count, clear it.
#[async_trait]
pub trait RateLimitAdmin: RateLimiter {
    /// How many hits `key` has in `(now - window, now]`, recording
    /// nothing: what the operator console shows for an account's limit.
    async fn rate_count(&self, key: &RateKey, now: SystemTime, window: Duration) -> Result<u32, StoreError>;

    /// Forgets every hit recorded for `key`, so its limit starts afresh
    /// (an operator unblocking an account on a test deployment); returns
    /// how many were removed.
    async fn rate_clear(&self, key: &RateKey) -> Result<usize, StoreError>;
}

/// An event log that can be read back: one account's trail, the most
/// recent events, and a page of a trail for the operator console.
#[async_trait]
pub trait Timeline: EventLog {
    /// Events of one account, oldest first.
    async fn for_account(&self, account: &AccountId) -> Result<Vec<Event>, StoreError>;

    /// The most recent `limit` events of all accounts, oldest first.
    async fn recent(&self, limit: usize) -> Result<Vec<Event>, StoreError>;

    /// One page of an account's trail, **newest first**: at most `limit`
    /// events older than `before` (the newest when `None`). Pass the page's
    /// [`EventPage::next`] as `before` to read the next (older) page. For
    /// the operator console's timeline: a database log answers it from an
    /// index on (account, id) without reading the account's whole trail.
    ///
    /// The default reads [`for_account`](Self::for_account) and numbers the
    /// account's events 1, 2, ... oldest first.
    async fn account_page(
        &self,
        account: &AccountId,
        before: Option<EventCursor>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let all = self.for_account(account).await?;
        let numbered = all.into_iter().enumerate().map(|(i, e)| {
            (
                EventCursor(u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1)),
                e,
            )
        });
        Ok(EventPage::newest_first(numbered, before, limit))
    }
}

/// An outbox the operator console can list: messages by state, one
/// message, and retiring a failed message replaced by a fresh link.
#[async_trait]
pub trait OutboxListing: Outbox {
    /// Messages in `state`, for the operator console's delivery queue:
    /// waiting ones soonest attempt first, failed and dropped ones most
    /// recent first; at most `limit`. Never returns the bodies (they
    /// carry live links).
    async fn list_by_state(&self, state: OutboxState, limit: usize)
    -> Result<Vec<OutboxMessage>, StoreError>;

    /// One message's listing (as [`list_by_state`](Self::list_by_state)
    /// shows it), or `None`.
    async fn message(&self, message_id: &str) -> Result<Option<OutboxMessage>, StoreError>;

    /// Retires a **failed** message after an operator sent a fresh link in
    /// its place: it becomes [`OutboxStatus::Dropped`](super::OutboxStatus::Dropped)
    /// with `reason`, and stops being listed as failed. Returns whether it
    /// was failed (a message in any other state is left alone).
    async fn retire_failed(&self, message_id: &str, reason: &str) -> Result<bool, StoreError>;
}

/// Retention for tokens and rate-limit entries.
#[async_trait]
pub trait TokenRetention: TokenStore + RateLimiter {
    /// Deletes up to `batch` tokens that expired before `before`; returns how many.
    async fn purge_expired(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError>;

    /// Deletes up to `batch` rate-limit entries recorded before `before`
    /// (pass `now` minus the longest limit window); returns how many.
    async fn purge_rate_entries(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError>;
}

/// Retention for the event log.
#[async_trait]
pub trait EventRetention: EventLog {
    /// Deletes up to `batch` events older than `before`; returns how many.
    async fn purge_before(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError>;
}

/// Retention for the outbox.
#[async_trait]
pub trait OutboxRetention: Outbox {
    /// Deletes up to `batch` messages that were sent, given up or dropped
    /// before `before`; returns how many. Waiting messages are never purged.
    async fn purge_finished(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError>;
}
