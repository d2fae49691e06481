//! Storage traits, by capability.
//!
//! **Required** for the user's flow (request, open link, complete, deny):
//! [`AccountDirectory`](crate::account::AccountDirectory) (4 methods),
//! [`TokenStore`] (8), [`RateLimiter`] (1) and [`EventLog`] (1): 14 in all.
//! Outbox delivery adds [`Outbox`] (8), a durable request inbox
//! [`RequestInbox`] (6). Everything else is an optional capability built on
//! these ([`capability`]: the console's reads, retention purges), required
//! in the types of the code that uses it. Steps that write to several
//! stores at once ([`steps`]) are provided methods: composed of the
//! primitives by default, one statement on PostgreSQL.
//!
//! In-memory implementations are in [`crate::memory`];
//! `resetkit-postgres` provides PostgreSQL ones, and both pass the
//! conformance suite (`resetkit::conformance`, feature `conformance`).
//!
//! # What is atomic
//!
//! Each [`TokenStore`] method is one atomic step (on PostgreSQL, one
//! statement). The password write is not part of them: it goes to the
//! host's [`AccountDirectory`](crate::account::AccountDirectory), which may
//! live in another database. `complete` therefore runs
//! `consume` (the token becomes *spending*) → re-check the account → write
//! the password → `finish` (combined as
//! [`TokenStore::consume_with_account`] and [`TokenStore::finish_reset`]:
//! one statement each on PostgreSQL when the directory is in the same
//! database), and the guarantees hold whatever happens between those
//! calls:
//!
//! - a revocation (a denial, a newer request) while the token is spending
//!   kills it for good: `release` after a failed write gives back only a
//!   token still spending, and `finish` leaves a revoked token revoked;
//! - if the process dies after `consume`, the token stays spending, which no
//!   step accepts: the link is dead and the user asks for a new one;
//! - if the password was written but `finish` failed, the reset stands and
//!   the flow still revokes the account's other links.
//!
//! What is not atomic across the two stores: a password written by a
//! `complete` whose link was revoked during the write stays written (the
//! revocation came after the link was presented).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use std::time::{Duration, SystemTime};
//! use resetkit::memory::InMemoryTokenStore;
//! use resetkit::store::{RateKey, RateLimiter};
//!
//! let store = InMemoryTokenStore::default();
//! let now = SystemTime::now();
//! let key = RateKey::Client("203.0.113.9".into());
//! let window = Duration::from_secs(60);
//! assert!(store.admit(&key, now, window, 2).await.unwrap());
//! assert!(store.admit(&key, now, window, 2).await.unwrap());
//! assert!(!store.admit(&key, now, window, 2).await.unwrap(), "the third is refused");
//! # });
//! ```

pub mod capability;
pub mod steps;

pub use capability::{
    EventRetention, OutboxListing, OutboxRetention, RateLimitAdmin, Timeline, TokenRetention,
};
pub use steps::{IssueWrites, PasswordWrite, QueuedMail, ResetFinished, ResetWrites, Settle};

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::account::{AccountId, PasswordStamp};
use crate::error::StoreError;
use crate::event::Event;
use crate::identifier::Identifier;
use crate::mail::{DeliveryError, OutgoingEmail};
use crate::policy::Limit;
#[cfg(doc)]
use crate::token::TokenState;
use crate::token::{RejectReason, RevokeReason, TokenHash, TokenRecord};

/// What [`TokenStore::consume`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumeOutcome {
    /// This call took the token (now [`TokenState::Spending`]); exactly one
    /// concurrent caller sees this. It must [`finish`](TokenStore::finish)
    /// or [`release`](TokenStore::release) it.
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
    /// A host's own limit (e.g. sign-in attempts) kept in the same store:
    /// `scope` names the limit, `key` what it counts (identifiers by their
    /// fingerprint, clients by their rate key as [`RateKey::Client`]; see
    /// [`ResetService::admit_sign_in`](crate::ResetService::admit_sign_in)).
    Host {
        /// Which limit, e.g. `sign-in`.
        scope: &'static str,
        /// What it counts within the scope.
        key: String,
    },
}

impl RateKey {
    /// Stable text form, e.g. `account:42`.
    pub fn as_text(&self) -> String {
        match self {
            RateKey::Account(id) => format!("account:{id}"),
            RateKey::Client(addr) => format!("client:{addr}"),
            RateKey::Host { scope, key } => format!("host:{scope}:{key}"),
        }
    }
}

/// One [`TokenStore::issue`]: everything "newest wins" needs, done as one
/// atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIssue {
    /// The new token (state [`TokenState::Active`]); its `issued_at` is "now".
    pub record: TokenRecord,
    /// Per-account admission: refuse (and store nothing) when the account
    /// already had `max` tokens issued within `window` before `issued_at`.
    /// Refused attempts are not counted.
    pub limit: Option<Limit>,
    /// Revoke the account's live tokens (active or being spent) as
    /// [`RevokeReason::Superseded`] before inserting ("newest wins").
    pub supersede: bool,
}

/// What [`TokenStore::issue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueOutcome {
    /// The token is stored; `superseded` older tokens were revoked.
    Issued {
        /// How many older tokens were revoked.
        superseded: usize,
    },
    /// The per-account limit refused it; nothing changed.
    RateLimited,
}

/// What [`TokenStore::finish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishOutcome {
    /// The token is used; `revoked` other live tokens of the account were
    /// revoked as [`RevokeReason::PasswordReset`].
    Finished {
        /// How many other tokens were revoked.
        revoked: usize,
    },
    /// The token was revoked while it was being spent (a denial, a newer
    /// request); it stays revoked. Nothing else changed.
    RevokedMeanwhile(RevokeReason),
}

/// What [`TokenStore::deny`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyOutcome {
    /// The deny link's token was live: every live token of its account
    /// (that one included) is now revoked as [`RevokeReason::UserDenied`].
    Revoked {
        /// How many tokens were revoked.
        count: usize,
    },
    /// The deny link is dead (unknown, or its reset link was used or
    /// revoked); nothing changed.
    Rejected(RejectReason),
}

/// Reset tokens, stored by hash. The rate-limit counters are the
/// [`RateLimiter`]; retention ([`TokenRetention`]) is a capability of its own.
///
/// Each method is one step of the flow and must be atomic on its own: the
/// flow never reads, decides and writes across several calls. The conformance
/// suite (`resetkit::conformance`) holds every
/// implementation to this, concurrency included.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Issues a token in one atomic step: admit under the per-account
    /// limit, revoke the account's older live tokens when `supersede`, then
    /// insert. Of any number of concurrent issues for one account with
    /// `supersede`, exactly one token is left live.
    async fn issue(&self, issue: TokenIssue) -> Result<IssueOutcome, StoreError>;

    /// Reads a token without changing it (for `inspect`).
    async fn find(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError>;

    /// Reads the token whose "this wasn't me" secret hashes to `deny_hash`.
    async fn find_by_deny(&self, deny_hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError>;

    /// Atomically takes an active, unexpired token: `Active` becomes
    /// `Spending`. Of any number of concurrent calls for one token, exactly
    /// one gets `Consumed`; the rest see `AlreadyUsed`.
    async fn consume(&self, hash: &TokenHash, now: SystemTime) -> Result<ConsumeOutcome, StoreError>;

    /// The password change of a consumed token is stored: `Spending`
    /// becomes `Used` and every other live token of the account is revoked
    /// ([`RevokeReason::PasswordReset`]), in one step. A token revoked
    /// meanwhile stays revoked.
    async fn finish(&self, hash: &TokenHash, now: SystemTime) -> Result<FinishOutcome, StoreError>;

    /// Gives back a consumed token whose password change could not be
    /// stored, so the user can retry: only `Spending` goes back to
    /// `Active`. Returns whether it did; a token revoked while it was being
    /// spent is never revived.
    async fn release(&self, hash: &TokenHash) -> Result<bool, StoreError>;

    /// Revokes every live token (active or being spent) of the account;
    /// returns how many.
    async fn revoke_for_account(
        &self,
        account: &AccountId,
        reason: RevokeReason,
        now: SystemTime,
    ) -> Result<usize, StoreError>;

    /// "This wasn't me", in one step: when the token whose deny secret
    /// hashes to `deny_hash` is still live, revokes every live token of its
    /// account ([`RevokeReason::UserDenied`]).
    async fn deny(&self, deny_hash: &TokenHash, now: SystemTime) -> Result<DenyOutcome, StoreError>;

    /// Moves the account's live tokens (active or being spent) bound to
    /// the password state `from` to the state `to`, in one step; returns
    /// how many. Used when the stored hash is rewritten for the *same*
    /// password (a legacy hash upgraded at sign-in,
    /// [`ResetService::rehash_password`](crate::flow::ResetService::rehash_password)):
    /// that is not a password change, so a pending link must keep working.
    /// Tokens bound to any other state are left alone.
    async fn restamp(
        &self,
        account: &AccountId,
        from: &PasswordStamp,
        to: &PasswordStamp,
    ) -> Result<usize, StoreError> {
        let _ = (account, from, to);
        Err(StoreError::Unsupported {
            operation: "tokens.restamp",
        })
    }

    /// [`issue`](Self::issue) and, when the token is issued, the step's
    /// writes ([`IssueWrites`]): its events (with the count of superseded
    /// links filled in), its mail queued, its inbox request done, in that
    /// order. When the limit refuses the token nothing is written and
    /// [`IssueOutcome::RateLimited`] is returned.
    ///
    /// The default calls the primitives in turn (each atomic, the sequence
    /// not: see [`steps`]); a backend that holds the other stores too may do
    /// it in one atomic step.
    async fn issue_and_record(
        &self,
        issue: TokenIssue,
        writes: IssueWrites<'_>,
    ) -> Result<IssueOutcome, StoreError> {
        steps::compose_issue_and_record(self, issue, writes).await
    }

    /// [`find`](Self::find) and the found token's account
    /// ([`AccountDirectory::find_by_id`](crate::account::AccountDirectory::find_by_id)
    /// in `accounts`), for checking a link: `None` for an unknown token,
    /// the account `None` when the directory no longer has it.
    ///
    /// The default makes the two calls; a backend whose directory is in the
    /// same database may read both in one statement. Read-only either way.
    async fn find_with_account(
        &self,
        hash: &TokenHash,
        accounts: &dyn crate::account::AccountDirectory,
    ) -> Result<Option<(TokenRecord, Option<crate::account::Account>)>, StoreError> {
        steps::compose_find_with_account(self, hash, accounts).await
    }

    /// [`consume`](Self::consume) and, when this call took the token, its
    /// account as it is now (re-read from `accounts`: it may have changed
    /// since the link was checked), `None` when the directory no longer has
    /// it. A rejected token comes back with no account.
    ///
    /// On an error nothing stays consumed: the default, whose account
    /// read may fail after the token was taken, gives it back
    /// ([`release`](Self::release)) before returning the error (a token
    /// revoked meanwhile stays revoked); a backend that does both in one
    /// statement writes nothing when it fails.
    async fn consume_with_account(
        &self,
        hash: &TokenHash,
        now: SystemTime,
        accounts: &dyn crate::account::AccountDirectory,
    ) -> Result<(ConsumeOutcome, Option<crate::account::Account>), StoreError> {
        steps::compose_consume_with_account(self, hash, now, accounts).await
    }

    /// The end of `complete` once the token is consumed: stores the new
    /// password ([`PasswordWrite`]), [`finish`](Self::finish)es the token
    /// and, when it is finished, writes the step's [`ResetWrites`] (its
    /// events with the count of revoked links filled in, then the "password
    /// changed" notice queued).
    ///
    /// An error means the password was **not** stored and nothing was
    /// written (the caller gives the token back,
    /// [`release`](Self::release)). Otherwise [`ResetFinished`] says what
    /// `finish` returned and whether the writes were made (only for
    /// [`FinishOutcome::Finished`]: a token revoked meanwhile or a failed
    /// `finish` is left to the caller to record).
    ///
    /// The default makes the calls in turn (a failing event log or outbox
    /// after the password is stored is logged: the reset stands); a backend
    /// whose directory, log and outbox share its database may do it all in
    /// one statement, all or nothing.
    async fn finish_reset(
        &self,
        hash: &TokenHash,
        now: SystemTime,
        password: PasswordWrite<'_>,
        writes: ResetWrites<'_>,
    ) -> Result<ResetFinished, StoreError> {
        steps::compose_finish_reset(self, hash, now, password, writes).await
    }

    /// This store as its concrete type, for a [combined step](steps) of a
    /// backend whose stores share one database to recognise it as one of
    /// its own. Default `None`: combined steps then compose the primitives.
    /// A decorator forwards it only when the combined steps may bypass it.
    fn colocated(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// The rate limits' counters (per account, per client, the host's own),
/// shared through the store so they hold across several app instances.
/// One required method: the flow admits or refuses, nothing else.
#[async_trait]
pub trait RateLimiter: Send + Sync {
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
}

/// The activity trail, as the flow writes it (reading it back is
/// [`Timeline`], retention [`EventRetention`]).
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends an event.
    async fn record(&self, event: Event) -> Result<(), StoreError>;

    /// Appends the events of one flow step, in order. The default calls
    /// [`record`](Self::record) for each; a database log should write them
    /// in one statement.
    async fn record_all(&self, events: Vec<Event>) -> Result<(), StoreError> {
        for event in events {
            self.record(event).await?;
        }
        Ok(())
    }

    /// This store as its concrete type, for a [combined step](steps) of a
    /// backend whose stores share one database to recognise it as one of
    /// its own. Default `None`: combined steps then compose the primitives.
    /// A decorator forwards it only when the combined steps may bypass it.
    fn colocated(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// A position in an account's event trail (a store-assigned, increasing
/// number), for paging with [`Timeline::account_page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventCursor(pub u64);

/// One page of an account's events, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventPage {
    /// The events, each with its position, newest first.
    pub events: Vec<(EventCursor, Event)>,
    /// Where the next (older) page starts, when there are older events.
    pub next: Option<EventCursor>,
}

impl EventPage {
    /// The page of `events` (numbered, oldest first) older than `before`,
    /// newest first, at most `limit` long (at least 1).
    pub fn newest_first(
        events: impl DoubleEndedIterator<Item = (EventCursor, Event)>,
        before: Option<EventCursor>,
        limit: usize,
    ) -> EventPage {
        let limit = limit.max(1);
        let mut older = events.rev().filter(|(c, _)| before.is_none_or(|b| *c < b));
        let page: Vec<(EventCursor, Event)> = older.by_ref().take(limit).collect();
        let next = match (older.next(), page.last()) {
            (Some(_), Some((last, _))) => Some(*last),
            _ => None,
        };
        EventPage { events: page, next }
    }
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
    /// Hashes of the reset tokens whose links the email carries (empty for
    /// notices). The worker does not send a message whose tokens are no
    /// longer active: a superseded link never arrives after the newer one.
    pub tokens: Vec<TokenHash>,
    /// When the request that produced the email was accepted, if known
    /// (for the request-to-delivery time; `None` for notices and for
    /// messages queued before stores kept it).
    pub requested_at: Option<SystemTime>,
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
    /// Not sent because its links died while it waited (superseded,
    /// used, revoked, expired).
    Dropped {
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
    /// Not sent: their links died while they waited.
    pub dropped: usize,
}

/// Delivery queue shared by workers (the console's listing is
/// [`OutboxListing`], retention [`OutboxRetention`]). Claiming leases a message so that
/// several workers never send one message twice; an expired lease (a worker
/// that died) makes the message claimable again.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Adds a message.
    async fn enqueue(&self, entry: OutboxEntry) -> Result<(), StoreError>;

    /// Leases up to `max` messages due at `now` for `lease`. A store with a
    /// clock of its own shared by every instance (PostgreSQL's `now()`) may
    /// use it instead of `now`, here and in every method that takes a
    /// `now`, so that no host's clock decides a due time or a takeover.
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

    /// Records a failed attempt: retry `retry_in` after `now`, or give up
    /// when `None`. Fenced by `attempt` like [`mark_sent`](Self::mark_sent).
    async fn mark_failed(
        &self,
        message_id: &str,
        attempt: u32,
        error: &DeliveryError,
        now: SystemTime,
        retry_in: Option<Duration>,
    ) -> Result<(), StoreError>;

    /// Extends the lease of a message still claimed for `attempt` to `lease`
    /// after `now` (a worker renews while it sends, so leases can be short
    /// and a dead worker's messages come back soon). Returns whether it was
    /// still held.
    async fn renew(
        &self,
        message_id: &str,
        attempt: u32,
        now: SystemTime,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Gives up on a claimed message without sending it because its links
    /// are dead (`reason` says why). Fenced by `attempt` like
    /// [`mark_sent`](Self::mark_sent).
    async fn mark_dropped(&self, message_id: &str, attempt: u32, reason: &str) -> Result<(), StoreError>;

    /// Status of one message.
    async fn status(&self, message_id: &str) -> Result<Option<OutboxStatus>, StoreError>;

    /// Counts by status.
    async fn counts(&self) -> Result<OutboxCounts, StoreError>;

    /// Whether at least `n` messages wait (pending or claimed): the request
    /// workers ask before each batch, and hold requests in the inbox while
    /// it is so (see
    /// [`ResetServiceBuilder::mail_backlog_limit`](crate::ResetServiceBuilder::mail_backlog_limit)).
    /// The default reads [`counts`](Self::counts); a store whose `counts`
    /// scans every message overrides it with a query that stops at `n`.
    async fn waiting_at_least(&self, n: usize) -> Result<bool, StoreError> {
        Ok(self.counts().await?.waiting >= n)
    }

    /// This store as its concrete type, for a [combined step](steps) of a
    /// backend whose stores share one database to recognise it as one of
    /// its own. Default `None`: combined steps then compose the primitives.
    /// A decorator forwards it only when the combined steps may bypass it.
    fn colocated(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// A password-reset request accepted by
/// [`ResetService::request`](crate::ResetService::request) and waiting to be
/// processed (accounts looked up, tokens issued, mail queued).
///
/// **Sensitive:** it holds the identifier as typed (canonicalised) until it
/// is processed; the inbox deletes it then.
#[derive(Clone, PartialEq, Eq)]
pub struct InboxRequest {
    /// Unique id (128 random bits, hex). Messages queued for the request
    /// get ids derived from it, so that a request retried after an
    /// interrupted attempt (a worker died half-way) finds the mail that
    /// attempt queued in the outbox instead of queueing it again.
    pub id: String,
    /// What was asked for.
    pub identifier: Identifier,
    /// The client's address, bounded and without control characters.
    pub client: Option<String>,
    /// The preferred locale.
    pub locale: Option<String>,
    /// When it was accepted.
    pub received_at: SystemTime,
    /// Processing attempts so far: 0 when pushed; [`RequestInbox::claim`]
    /// counts one more. More than 1 means an earlier attempt did not finish.
    pub attempts: u32,
}

impl std::fmt::Debug for InboxRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The identifier is personal data: its kind only.
        f.debug_struct("InboxRequest")
            .field("id", &self.id)
            .field("identifier", &self.identifier.kind())
            .field("received_at", &self.received_at)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// The durable inbox of reset requests: `request` pushes, workers claim,
/// process and delete. Claiming leases a request so that concurrent workers
/// (on PostgreSQL: several processes, `FOR UPDATE SKIP LOCKED`) never
/// process one request at the same time; an expired lease (a worker that
/// died) makes it claimable again.
#[async_trait]
pub trait RequestInbox: Send + Sync {
    /// Records a request, or fails: [`StoreError::Full`] when a bounded
    /// inbox is full, [`StoreError::Unavailable`] when the backend is down.
    /// `request` then answers "try again later" instead of losing it.
    async fn push(&self, request: InboxRequest) -> Result<(), StoreError>;

    /// Leases up to `max` requests that are due at `now`, oldest first, for
    /// `lease`, counting one more attempt on each. A store with a clock of
    /// its own shared by every instance (PostgreSQL's `now()`) may use it
    /// instead of `now`, here and in every method that takes a `now`.
    async fn claim(
        &self,
        now: SystemTime,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<InboxRequest>, StoreError>;

    /// Deletes a processed request. Fenced by `attempt` (the request's
    /// `attempts` as claimed): a worker whose lease was taken over changes
    /// nothing.
    async fn done(&self, id: &str, attempt: u32) -> Result<(), StoreError>;

    /// Gives a claimed request back, to be claimed again `delay` after
    /// `now` (processing hit a store error). Fenced like [`done`](Self::done).
    async fn retry_later(
        &self,
        id: &str,
        attempt: u32,
        now: SystemTime,
        delay: Duration,
    ) -> Result<(), StoreError>;

    /// Extends the lease of a request still claimed for `attempt` to
    /// `lease` after `now` (a worker renews while it works, so leases can
    /// be short and a dead worker's requests come back soon). Returns
    /// whether it was still held.
    async fn renew(
        &self,
        id: &str,
        attempt: u32,
        now: SystemTime,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// How many requests are waiting or being processed.
    async fn len(&self) -> Result<usize, StoreError>;

    /// Whether nothing is waiting.
    async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len().await? == 0)
    }

    /// Finishes processing a request in one step: records `events` in
    /// `log` (the step's last ones), then marks the request
    /// [`done`](Self::done) (fenced the same way). The default makes the two
    /// calls (a failure after the events leaves the request claimed: it is
    /// retried); a backend that holds the log too may do both atomically.
    async fn settle(
        &self,
        id: &str,
        attempt: u32,
        events: Vec<Event>,
        log: &dyn EventLog,
    ) -> Result<(), StoreError> {
        steps::compose_settle(self, id, attempt, events, log).await
    }

    /// This store as its concrete type, for a [combined step](steps) of a
    /// backend whose stores share one database to recognise it as one of
    /// its own. Default `None`: combined steps then compose the primitives.
    /// A decorator forwards it only when the combined steps may bypass it.
    fn colocated(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// Which messages [`OutboxListing::list_by_state`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutboxState {
    /// Pending (new or retrying) or claimed by a worker.
    Waiting,
    /// Given up.
    Failed,
    /// Not sent because their links died (or retired by an operator).
    Dropped,
}

impl OutboxState {
    /// Stable text form (`waiting`, `failed`, `dropped`).
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Waiting => "waiting",
            OutboxState::Failed => "failed",
            OutboxState::Dropped => "dropped",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "waiting" => OutboxState::Waiting,
            "failed" => OutboxState::Failed,
            "dropped" => OutboxState::Dropped,
            _ => return None,
        })
    }
}

/// An outbox message as the operator sees it: envelope, state and the last
/// error, never the bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Message-ID.
    pub message_id: String,
    /// The account it concerns.
    pub account: Option<AccountId>,
    /// What kind of email.
    pub kind: crate::mail::EmailKind,
    /// From address.
    pub from: String,
    /// To address.
    pub to: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (meaningful while waiting).
    pub next_attempt_at: SystemTime,
    /// Where it stands.
    pub status: OutboxStatus,
    /// The last delivery error (with the server's reply), if any.
    pub last_error: Option<String>,
}
