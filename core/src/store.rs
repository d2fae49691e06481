//! Storage traits: tokens (with rate-limit counters), the event log and the
//! delivery outbox. In-memory implementations are in [`crate::memory`];
//! `resetkit-postgres` provides PostgreSQL ones, and both pass the harness's
//! store conformance suite.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use std::time::{Duration, SystemTime};
//! use resetkit::memory::InMemoryTokenStore;
//! use resetkit::store::{RateKey, TokenStore};
//!
//! let store = InMemoryTokenStore::default();
//! let now = SystemTime::now();
//! let key = RateKey::Client("203.0.113.9".into());
//! assert_eq!(store.hit(&key, now, Duration::from_secs(60)).await.unwrap(), 1);
//! assert_eq!(store.hit(&key, now, Duration::from_secs(60)).await.unwrap(), 2);
//! # });
//! ```

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::account::AccountId;
use crate::error::StoreError;
use crate::event::Event;
use crate::mail::{DeliveryError, OutgoingEmail};
use crate::token::{RejectReason, RevokeReason, TokenHash, TokenRecord};

/// What [`TokenStore::consume`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumeOutcome {
    /// This call spent the token; exactly one concurrent caller sees this.
    Consumed(TokenRecord),
    /// The token could not be spent.
    Rejected(RejectReason),
}

/// A rate-limit counter key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// Emails issued to an account.
    Account(AccountId),
    /// Requests from a client address.
    Client(String),
}

impl RateKey {
    /// Stable text form, e.g. `account:42`.
    pub fn as_text(&self) -> String {
        match self {
            RateKey::Account(id) => format!("account:{id}"),
            RateKey::Client(addr) => format!("client:{addr}"),
        }
    }
}

/// Reset tokens, stored by hash.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a newly issued token.
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError>;

    /// Reads a token without changing it (for `inspect`).
    async fn find(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError>;

    /// Atomically spends an active, unexpired token. Of any number of
    /// concurrent calls for one token, exactly one gets `Consumed`.
    async fn consume(&self, hash: &TokenHash, now: SystemTime) -> Result<ConsumeOutcome, StoreError>;

    /// Undoes a `consume` whose password change could not be stored, so the
    /// user can retry with the same link. Only a `Used` token goes back to
    /// `Active`; revoked tokens stay revoked.
    async fn release(&self, hash: &TokenHash) -> Result<(), StoreError>;

    /// Revokes every active token of the account; returns how many.
    async fn revoke_for_account(
        &self,
        account: &AccountId,
        reason: RevokeReason,
        now: SystemTime,
    ) -> Result<usize, StoreError>;

    /// Records one hit for `key` at `now` and returns the number of hits in
    /// `(now - window, now]`, this one included.
    async fn hit(&self, key: &RateKey, now: SystemTime, window: Duration) -> Result<u32, StoreError>;

    /// Records a hit for `key` at `now` only if fewer than `max` hits fall
    /// in `(now - window, now]`; returns whether it was recorded. Refused
    /// attempts are not counted, so someone requesting resets for another
    /// person's account cannot keep its window full for ever. Atomic per key.
    async fn admit(
        &self,
        key: &RateKey,
        now: SystemTime,
        window: Duration,
        max: u32,
    ) -> Result<bool, StoreError>;

    /// Deletes up to `batch` tokens that expired before `before`; returns how many.
    async fn purge_expired(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError>;
}

/// The activity trail.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends an event.
    async fn record(&self, event: Event) -> Result<(), StoreError>;

    /// Events of one account, oldest first.
    async fn for_account(&self, account: &AccountId) -> Result<Vec<Event>, StoreError>;

    /// The most recent `limit` events of all accounts, oldest first.
    async fn recent(&self, limit: usize) -> Result<Vec<Event>, StoreError>;
}

/// A message waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// The email.
    pub email: OutgoingEmail,
    /// The account it concerns.
    pub account: Option<AccountId>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Not to be sent before.
    pub next_attempt_at: SystemTime,
}

/// Where an outbox message stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutboxStatus {
    /// Waiting (new or retry scheduled).
    Pending,
    /// Claimed by a worker until the lease ends.
    Claimed,
    /// Sent.
    Sent,
    /// Given up.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Counts of outbox messages by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Pending or claimed.
    pub waiting: usize,
    /// Sent.
    pub sent: usize,
    /// Given up.
    pub failed: usize,
}

/// Delivery queue shared by workers. Claiming leases a message so that
/// several workers never send one message twice; an expired lease (a worker
/// that died) makes the message claimable again.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Adds a message.
    async fn enqueue(&self, entry: OutboxEntry) -> Result<(), StoreError>;

    /// Leases up to `max` messages due at `now` for `lease`.
    async fn claim(
        &self,
        now: SystemTime,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Marks a claimed message sent. `attempt` is the entry's `attempts` as
    /// [`claim`](Self::claim) returned it: the update applies only while the
    /// message is still claimed for that attempt, so a worker whose lease ran
    /// out and was taken over by another changes nothing. An unknown
    /// message is [`StoreError::NotFound`].
    async fn mark_sent(&self, message_id: &str, attempt: u32, now: SystemTime) -> Result<(), StoreError>;

    /// Records a failed attempt: retry at `retry_at`, or give up when `None`.
    /// Fenced by `attempt` like [`mark_sent`](Self::mark_sent).
    async fn mark_failed(
        &self,
        message_id: &str,
        attempt: u32,
        error: &DeliveryError,
        retry_at: Option<SystemTime>,
    ) -> Result<(), StoreError>;

    /// Status of one message.
    async fn status(&self, message_id: &str) -> Result<Option<OutboxStatus>, StoreError>;

    /// Counts by status.
    async fn counts(&self) -> Result<OutboxCounts, StoreError>;
}
