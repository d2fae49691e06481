//! Combined steps: one flow step that writes to several stores, as one
//! store call.
//!
//! Processing an inbox request writes to the token store, the event log,
//! the outbox and the inbox; each write is a round trip when the stores
//! are separate. The combined steps are **provided** methods of the store
//! traits ([`TokenStore::issue_and_record`],
//! [`RequestInbox::settle`],
//! [`AccountDirectory::find_or_settle`]; for `complete`,
//! [`TokenStore::find_with_account`] and
//! [`TokenStore::consume_with_account`], which read the token's account
//! with it, and [`TokenStore::finish_reset`], which stores the password,
//! finishes the token and records the reset with its notice):
//! their default composes the primitives in the order the flow used to call
//! them, so a backend implements nothing more. A backend whose stores share
//! one database (PostgreSQL) overrides them with one statement each, once it
//! has recognised the other stores as its own through their
//! [`colocated`](super::EventLog::colocated) hook (a decorator that does not
//! forward the hook gets the composed default: same result, more round
//! trips).
//!
//! # What is atomic
//!
//! - Composed (the default): each primitive is atomic on its own, the
//!   sequence is not. A failure part-way leaves the earlier writes (the
//!   token issued and its events recorded, say, but not the mail queued) and
//!   fails the step: the inbox request is not done, so it is retried; a
//!   retried request finds mail an interrupted attempt queued (its
//!   Message-ID is derived from the request) and does not queue it twice.
//! - One statement (PostgreSQL): all or nothing.
//!
//! Either way, what is written when the step succeeds is the same.

use crate::account::{Account, AccountDirectory, AccountId};
use crate::error::StoreError;
use crate::event::{Event, EventKind};
use crate::hasher::PasswordHash;
use crate::identifier::Identifier;
use crate::store::{
    ConsumeOutcome, EventLog, FinishOutcome, IssueOutcome, Outbox, OutboxEntry, RequestInbox, TokenIssue,
    TokenStore,
};
use crate::token::{RevokeReason, TokenHash, TokenRecord};
use std::time::SystemTime;

/// An inbox request to mark done ([`RequestInbox::done`]) as part of a
/// combined step, fenced by the attempt it was claimed for.
#[derive(Clone, Copy)]
pub struct Settle<'a> {
    /// The inbox the request was claimed from.
    pub inbox: &'a dyn RequestInbox,
    /// The request's id.
    pub id: &'a str,
    /// Its `attempts` as claimed.
    pub attempt: u32,
}

impl std::fmt::Debug for Settle<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settle")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// A message to queue in an outbox as part of a combined step.
pub struct QueuedMail<'a> {
    /// The message.
    pub entry: OutboxEntry,
    /// Where it goes.
    pub outbox: &'a dyn Outbox,
}

impl std::fmt::Debug for QueuedMail<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedMail")
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

/// What [`TokenStore::issue_and_record`]
/// writes once the token is issued. When the per-account limit refuses the
/// token, none of it is written.
pub struct IssueWrites<'a> {
    /// The step's events, in order.
    pub events: Vec<Event>,
    /// The index in `events` of a [`EventKind::LinksRevoked`] placeholder
    /// (reason [`RevokeReason::Superseded`]) whose count is how many older
    /// links the issue revoked, known only to the store: it is written with
    /// that count, or left out when none was revoked.
    pub superseded_at: Option<usize>,
    /// The log the events go to.
    pub log: &'a dyn EventLog,
    /// The mail carrying the new link, queued after the events.
    pub mail: Option<QueuedMail<'a>>,
    /// The inbox request to mark done last.
    pub settle: Option<Settle<'a>>,
}

impl std::fmt::Debug for IssueWrites<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssueWrites")
            .field("events", &self.events)
            .field("superseded_at", &self.superseded_at)
            .field("mail", &self.mail)
            .field("settle", &self.settle)
            .finish_non_exhaustive()
    }
}

/// `events` as written once the issue revoked `superseded` older links:
/// the placeholder at `superseded_at` carries the count, or is left out
/// when it is 0. An index that is not such a placeholder changes nothing.
pub fn with_superseded(events: Vec<Event>, superseded_at: Option<usize>, superseded: usize) -> Vec<Event> {
    with_count(events, superseded_at, RevokeReason::Superseded, superseded)
}

/// `events` as written once a finished reset revoked `revoked` other
/// links: the [`EventKind::LinksRevoked`] placeholder (reason
/// [`RevokeReason::PasswordReset`]) at `revoked_at` carries the count, or
/// is left out when it is 0. An index that is not such a placeholder
/// changes nothing.
pub fn with_revoked(events: Vec<Event>, revoked_at: Option<usize>, revoked: usize) -> Vec<Event> {
    with_count(events, revoked_at, RevokeReason::PasswordReset, revoked)
}

fn with_count(mut events: Vec<Event>, at: Option<usize>, wanted: RevokeReason, n: usize) -> Vec<Event> {
    let Some(i) = at.filter(|i| *i < events.len()) else {
        return events;
    };
    let EventKind::LinksRevoked { reason, count } = &mut events[i].kind else {
        return events;
    };
    if *reason != wanted {
        return events;
    }
    if n > 0 {
        *count = n;
    } else {
        events.remove(i);
    }
    events
}

/// The new password of [`TokenStore::finish_reset`]: where it goes.
#[derive(Clone, Copy)]
pub struct PasswordWrite<'a> {
    /// The directory that stores it.
    pub accounts: &'a dyn AccountDirectory,
    /// The account.
    pub account: &'a AccountId,
    /// The new hash (computed before the step: no store waits on argon2).
    pub hash: &'a PasswordHash,
}

impl std::fmt::Debug for PasswordWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordWrite")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// What [`TokenStore::finish_reset`] writes once the reset is finished
/// ([`FinishOutcome::Finished`]).
pub struct ResetWrites<'a> {
    /// The step's events, in order.
    pub events: Vec<Event>,
    /// The index in `events` of a [`EventKind::LinksRevoked`] placeholder
    /// (reason [`RevokeReason::PasswordReset`]) whose count is how many
    /// other links `finish` revoked: written with that count, or left out
    /// when none was revoked ([`with_revoked`]).
    pub revoked_at: Option<usize>,
    /// The log the events go to.
    pub log: &'a dyn EventLog,
    /// The "password changed" notice, queued after the events.
    pub mail: Option<QueuedMail<'a>>,
}

impl std::fmt::Debug for ResetWrites<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetWrites")
            .field("events", &self.events)
            .field("revoked_at", &self.revoked_at)
            .field("mail", &self.mail)
            .finish_non_exhaustive()
    }
}

/// What [`TokenStore::finish_reset`] did once the password was stored.
#[derive(Debug)]
pub struct ResetFinished {
    /// What [`TokenStore::finish`] returned.
    pub finish: Result<FinishOutcome, StoreError>,
    /// Whether the [`ResetWrites`] were written (only when `finish` is
    /// [`FinishOutcome::Finished`]); otherwise the caller records what
    /// happened itself.
    pub recorded: bool,
}

/// [`TokenStore::finish_reset`] composed of the primitives (its default).
pub async fn compose_finish_reset<T: TokenStore + ?Sized>(
    store: &T,
    hash: &TokenHash,
    now: SystemTime,
    password: PasswordWrite<'_>,
    writes: ResetWrites<'_>,
) -> Result<ResetFinished, StoreError> {
    password
        .accounts
        .set_password_hash(password.account, password.hash)
        .await?;
    let finish = store.finish(hash, now).await;
    let Ok(FinishOutcome::Finished { revoked }) = finish else {
        return Ok(ResetFinished {
            finish,
            recorded: false,
        });
    };
    // The password is stored: the rest is best effort, and a failing event
    // log does not hold back the notice.
    let events = with_revoked(writes.events, writes.revoked_at, revoked);
    if !events.is_empty()
        && let Err(error) = writes.log.record_all(events).await
    {
        tracing::error!(%error, "events after a completed password reset were not recorded; the reset stands");
    }
    if let Some(mail) = writes.mail
        && let Err(error) = mail.outbox.enqueue(mail.entry).await
    {
        tracing::error!(%error, "the password-changed notice was not queued; the reset stands");
    }
    Ok(ResetFinished {
        finish,
        recorded: true,
    })
}

/// [`TokenStore::issue_and_record`] composed of the primitives (its
/// default; an override calls it for stores it cannot combine).
pub async fn compose_issue_and_record<T: TokenStore + ?Sized>(
    store: &T,
    issue: TokenIssue,
    writes: IssueWrites<'_>,
) -> Result<IssueOutcome, StoreError> {
    let outcome = store.issue(issue).await?;
    let IssueOutcome::Issued { superseded } = outcome else {
        return Ok(outcome);
    };
    let events = with_superseded(writes.events, writes.superseded_at, superseded);
    if !events.is_empty() {
        writes.log.record_all(events).await?;
    }
    if let Some(mail) = writes.mail {
        mail.outbox.enqueue(mail.entry).await?;
    }
    if let Some(settle) = writes.settle {
        settle.inbox.done(settle.id, settle.attempt).await?;
    }
    Ok(outcome)
}

/// [`TokenStore::find_with_account`] composed of the primitives.
pub async fn compose_find_with_account<T: TokenStore + ?Sized>(
    store: &T,
    hash: &TokenHash,
    accounts: &dyn AccountDirectory,
) -> Result<Option<(TokenRecord, Option<Account>)>, StoreError> {
    let Some(record) = store.find(hash).await? else {
        return Ok(None);
    };
    let account = accounts.find_by_id(&record.account).await?;
    Ok(Some((record, account)))
}

/// [`TokenStore::consume_with_account`] composed of the primitives: a
/// failed account read gives the token back before the error is returned.
pub async fn compose_consume_with_account<T: TokenStore + ?Sized>(
    store: &T,
    hash: &TokenHash,
    now: SystemTime,
    accounts: &dyn AccountDirectory,
) -> Result<(ConsumeOutcome, Option<Account>), StoreError> {
    let outcome = store.consume(hash, now).await?;
    let ConsumeOutcome::Consumed(record) = &outcome else {
        return Ok((outcome, None));
    };
    match accounts.find_by_id(&record.account).await {
        Ok(account) => Ok((outcome, account)),
        Err(error) => {
            match store.release(hash).await {
                Ok(true) => {}
                Ok(false) => tracing::info!("reset link revoked while it was being spent; it stays dead"),
                Err(release_error) => {
                    tracing::error!(%release_error, "could not release token after a failed account read");
                }
            }
            Err(error)
        }
    }
}

/// [`RequestInbox::settle`] composed of the primitives.
pub async fn compose_settle<I: RequestInbox + ?Sized>(
    inbox: &I,
    id: &str,
    attempt: u32,
    events: Vec<Event>,
    log: &dyn EventLog,
) -> Result<(), StoreError> {
    if !events.is_empty() {
        log.record_all(events).await?;
    }
    inbox.done(id, attempt).await
}

/// [`AccountDirectory::find_or_settle`] composed of the primitives.
pub async fn compose_find_or_settle<A: AccountDirectory + ?Sized>(
    accounts: &A,
    identifier: &Identifier,
    unknown: Vec<Event>,
    log: &dyn EventLog,
    settle: Settle<'_>,
) -> Result<Vec<Account>, StoreError> {
    let found = match identifier {
        Identifier::Email(email) => accounts.find_by_email(email).await?,
        Identifier::Username(name) => accounts.find_by_username(name).await?.into_iter().collect(),
    };
    if found.is_empty() {
        settle
            .inbox
            .settle(settle.id, settle.attempt, unknown, log)
            .await?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::AccountId;
    use std::time::SystemTime;

    fn ev(kind: EventKind) -> Event {
        Event::new(SystemTime::UNIX_EPOCH, Some(AccountId("1".into())), kind)
    }

    fn placeholder() -> Event {
        ev(EventKind::LinksRevoked {
            reason: RevokeReason::Superseded,
            count: 0,
        })
    }

    /// A directory whose reads fail (the store is down).
    struct Down;

    #[async_trait::async_trait]
    impl AccountDirectory for Down {
        async fn find_by_email(&self, _: &str) -> Result<Vec<Account>, StoreError> {
            Err(StoreError::unavailable("accounts.find_by_email", "down"))
        }
        async fn find_by_username(&self, _: &str) -> Result<Option<Account>, StoreError> {
            Err(StoreError::unavailable("accounts.find_by_username", "down"))
        }
        async fn find_by_id(&self, _: &AccountId) -> Result<Option<Account>, StoreError> {
            Err(StoreError::unavailable("accounts.find_by_id", "down"))
        }
        async fn set_password_hash(&self, _: &AccountId, _: &PasswordHash) -> Result<(), StoreError> {
            Err(StoreError::unavailable("accounts.set_password_hash", "down"))
        }
    }

    #[tokio::test]
    async fn a_failed_account_read_gives_the_consumed_token_back() {
        use crate::memory::InMemoryTokenStore;
        use crate::token::{RawToken, TokenState};
        let store = InMemoryTokenStore::default();
        let now = SystemTime::now();
        let raw = RawToken::generate().unwrap();
        let record = TokenRecord {
            hash: raw.hash(),
            account: AccountId("1".into()),
            sent_to: "a@example.com".into(),
            password_stamp: crate::account::PasswordStamp::of(None),
            issued_at: now,
            expires_at: now + std::time::Duration::from_secs(600),
            state: TokenState::Active,
            deny_hash: None,
        };
        store
            .issue(TokenIssue {
                record,
                limit: None,
                supersede: false,
            })
            .await
            .unwrap();
        let err = store
            .consume_with_account(&raw.hash(), now, &Down)
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert_eq!(
            store.find(&raw.hash()).await.unwrap().map(|r| r.state),
            Some(TokenState::Active),
            "nothing stays consumed: the user can retry"
        );
        assert!(store.find_with_account(&raw.hash(), &Down).await.is_err());
    }

    #[test]
    fn the_placeholder_carries_the_count_or_goes() {
        let events = vec![
            ev(EventKind::ResetCompleted),
            placeholder(),
            ev(EventKind::ResetCompleted),
        ];
        let kept = with_superseded(events.clone(), Some(1), 2);
        assert_eq!(kept.len(), 3);
        assert!(matches!(kept[1].kind, EventKind::LinksRevoked { count: 2, .. }));
        let dropped = with_superseded(events.clone(), Some(1), 0);
        assert_eq!(dropped.len(), 2);
        assert!(dropped.iter().all(|e| e.kind == EventKind::ResetCompleted));
        assert_eq!(with_superseded(events.clone(), None, 5), events);
        assert_eq!(with_superseded(events.clone(), Some(9), 5), events);
        // Not a placeholder: nothing changes.
        assert_eq!(with_superseded(events.clone(), Some(0), 5), events);
    }
}
