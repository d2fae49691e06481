//! The combined steps suite ([`crate::store::steps`]): what
//! [`AccountDirectory::find_or_settle`], [`TokenStore::issue_and_record`]
//! and [`RequestInbox::settle`] write, whether a backend composes them
//! from the primitives (the default) or does each in one statement.

use std::time::{Duration, SystemTime};

use crate::account::{AccountDirectory, AccountId, PasswordStamp};
use crate::event::{Event, EventKind, IgnoreReason};
use crate::identifier::Identifier;
use crate::mail::EmailKind;
use crate::policy::Limit;
use crate::store::{
    InboxRequest, IssueOutcome, IssueWrites, OutboxListing, OutboxStatus, QueuedMail, RequestInbox, Settle,
    Timeline, TokenIssue, TokenStore,
};
use crate::token::{RawToken, RevokeReason, TokenRecord, TokenState};

use super::outbox::entry;

/// A request pushed now and claimed: (id, attempt).
async fn claimed(inbox: &dyn RequestInbox, n: usize, identifier: Identifier) -> (String, u32) {
    let id = format!("steps-{n:03}");
    inbox
        .push(InboxRequest {
            id: id.clone(),
            identifier,
            client: None,
            locale: None,
            received_at: SystemTime::now(),
            attempts: 0,
        })
        .await
        .expect("inbox.push");
    let got = inbox
        .claim(
            SystemTime::now() + Duration::from_secs(1),
            1,
            Duration::from_secs(60),
        )
        .await
        .expect("inbox.claim");
    assert_eq!(got.len(), 1, "the pushed request is claimed");
    assert_eq!(got[0].id, id);
    (id, got[0].attempts)
}

fn settle<'a>(inbox: &'a dyn RequestInbox, id: &'a str, attempt: u32) -> Settle<'a> {
    Settle { inbox, id, attempt }
}

fn ignored(at: SystemTime) -> Vec<Event> {
    vec![Event::new(
        at,
        None,
        EventKind::RequestIgnored {
            reason: IgnoreReason::UnknownIdentifier,
            fingerprint: "fp-steps".into(),
        },
    )]
}

async fn unknown_events(events: &dyn Timeline) -> usize {
    events
        .recent(100)
        .await
        .expect("events.recent")
        .iter()
        .filter(|e| matches!(e.kind, EventKind::RequestIgnored { .. }))
        .count()
}

/// [`AccountDirectory::find_or_settle`]: an unknown identifier settles the
/// request (its events recorded, the request done); known, shared and
/// disabled accounts are returned with nothing written. The directory must
/// hold exactly [`fixture_accounts`](super::fixture_accounts); the inbox
/// and the log must be empty.
pub async fn find_or_settle_suite(
    accounts: &dyn AccountDirectory,
    events: &dyn Timeline,
    inbox: &dyn RequestInbox,
) {
    let now = SystemTime::now();
    // Unknown email and unknown username: settled.
    for (n, identifier) in [
        Identifier::Email("nobody@example.com".into()),
        Identifier::Username("nobody".into()),
    ]
    .into_iter()
    .enumerate()
    {
        let (id, attempt) = claimed(inbox, n, identifier.clone()).await;
        let found = accounts
            .find_or_settle(&identifier, ignored(now), events, settle(inbox, &id, attempt))
            .await
            .expect("accounts.find_or_settle");
        assert!(found.is_empty(), "an unknown identifier finds nothing");
        assert_eq!(
            inbox.len().await.expect("inbox.len"),
            0,
            "an unknown identifier's request is done in the same step"
        );
        assert_eq!(
            unknown_events(events).await,
            n + 1,
            "an unknown identifier's events are recorded in the same step"
        );
    }
    // Known (a shared address: both accounts), disabled, by username:
    // returned as `find_by_*` returns them, nothing written.
    let cases = [
        (
            Identifier::Email("alice@example.com".into()),
            vec!["fx-1", "fx-2"],
        ),
        (Identifier::Email("bob@example.org".into()), vec!["fx-3"]),
        (Identifier::Username("carol".into()), vec!["fx-4"]),
    ];
    for (n, (identifier, want)) in cases.into_iter().enumerate() {
        let (id, attempt) = claimed(inbox, 10 + n, identifier.clone()).await;
        let mut found = accounts
            .find_or_settle(&identifier, ignored(now), events, settle(inbox, &id, attempt))
            .await
            .expect("accounts.find_or_settle");
        found.sort_by(|a, b| a.id.cmp(&b.id));
        let ids: Vec<&str> = found.iter().map(|a| a.id.0.as_str()).collect();
        assert_eq!(ids, want, "find_or_settle finds what find_by_* finds");
        if want == ["fx-3"] {
            assert!(found[0].disabled, "a disabled account is returned as such");
        }
        assert_eq!(
            inbox.len().await.expect("inbox.len"),
            1,
            "a request whose accounts were found is not settled"
        );
        assert_eq!(
            unknown_events(events).await,
            2,
            "nothing is recorded when accounts match"
        );
        inbox
            .settle(&id, attempt, Vec::new(), events)
            .await
            .expect("inbox.settle");
        assert_eq!(
            inbox.len().await.expect("inbox.len"),
            0,
            "settle marks the request done"
        );
    }
}

fn token(account: &str, at: SystemTime) -> TokenRecord {
    let raw = RawToken::generate().expect("OS random generator");
    let deny = RawToken::generate().expect("OS random generator");
    TokenRecord {
        hash: raw.hash(),
        account: AccountId::from(account),
        sent_to: format!("{account}@example.com"),
        password_stamp: PasswordStamp::of(None),
        issued_at: at,
        expires_at: at + Duration::from_secs(1800),
        state: TokenState::Active,
        deny_hash: Some(deny.hash()),
    }
}

/// The step's events as the flow notes them: requested, the superseded
/// placeholder, issued, queued.
fn step_events(account: &AccountId, at: SystemTime, message_id: &str) -> (Vec<Event>, Option<usize>) {
    let a = || Some(account.clone());
    let events = vec![
        Event::new(
            at,
            a(),
            EventKind::ResetRequested {
                via: "email",
                client: None,
            },
        ),
        Event::new(
            at,
            a(),
            EventKind::LinksRevoked {
                reason: RevokeReason::Superseded,
                count: 0,
            },
        ),
        Event::new(
            at,
            a(),
            EventKind::TokenIssued {
                expires_at: at + Duration::from_secs(1800),
            },
        ),
        Event::new(
            at,
            a(),
            EventKind::EmailQueued {
                message_id: message_id.to_owned(),
                email: EmailKind::Reset,
                from: "support@example.com".into(),
                to: "user@example.org".into(),
                sender_strategy: "fixed".into(),
                sender_fallbacks: Vec::new(),
            },
        ),
    ];
    (events, Some(1))
}

fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match &e.kind {
            EventKind::LinksRevoked { count, .. } => format!("links_revoked({count})"),
            other => other.name().to_owned(),
        })
        .collect()
}

/// [`TokenStore::issue_and_record`] and [`RequestInbox::settle`]: an
/// issued token's events (the superseded count filled in, or the
/// placeholder left out), its mail and the request's settling are
/// written; a token the limit refuses writes nothing. Fresh, empty stores.
pub async fn issue_and_record_suite(
    tokens: &dyn TokenStore,
    events: &dyn Timeline,
    outbox: &dyn OutboxListing,
    inbox: &dyn RequestInbox,
) {
    let account = AccountId::from("steps-1");
    let limit = Limit {
        max: 2,
        window: Duration::from_secs(900),
    };
    let now = SystemTime::now();
    let mut live = Vec::new();
    let mut want = Vec::new();
    for n in 0..3usize {
        let at = now + Duration::from_secs(n as u64);
        let (id, attempt) = claimed(inbox, 100 + n, Identifier::Email("steps@example.com".into())).await;
        let record = token(&account.0, at);
        let mail = entry(100 + n, at);
        let message_id = mail.email.message_id.clone();
        let (step, superseded_at) = step_events(&account, at, &message_id);
        let outcome = tokens
            .issue_and_record(
                TokenIssue {
                    record: record.clone(),
                    limit: Some(limit),
                    supersede: true,
                },
                IssueWrites {
                    events: step,
                    superseded_at,
                    log: events,
                    mail: Some(QueuedMail {
                        entry: mail,
                        outbox: outbox as &dyn crate::store::Outbox,
                    }),
                    settle: Some(settle(inbox, &id, attempt)),
                },
            )
            .await
            .expect("tokens.issue_and_record");
        let status = outbox.status(&message_id).await.expect("outbox.status");
        if n < 2 {
            assert_eq!(
                outcome,
                IssueOutcome::Issued { superseded: n },
                "newest wins: the previous link is superseded"
            );
            assert_eq!(
                status,
                Some(OutboxStatus::Pending),
                "the mail is queued in the same step"
            );
            assert_eq!(
                inbox.len().await.expect("inbox.len"),
                0,
                "the request is done in the same step"
            );
            want.extend(if n == 0 {
                ["reset_requested", "token_issued", "email_queued"]
                    .map(String::from)
                    .to_vec()
            } else {
                [
                    "reset_requested",
                    "links_revoked(1)",
                    "token_issued",
                    "email_queued",
                ]
                .map(String::from)
                .to_vec()
            });
            live.push(record);
        } else {
            assert_eq!(
                outcome,
                IssueOutcome::RateLimited,
                "the per-account limit refuses the third"
            );
            assert_eq!(status, None, "a refused token's mail is not queued");
            assert_eq!(
                inbox.len().await.expect("inbox.len"),
                1,
                "a refused token's request is not settled (the flow notes the refusal first)"
            );
            assert!(
                tokens.find(&record.hash).await.expect("tokens.find").is_none(),
                "a refused token is not stored"
            );
            inbox
                .settle(&id, attempt, Vec::new(), events)
                .await
                .expect("inbox.settle");
        }
        let trail = events.for_account(&account).await.expect("events.for_account");
        assert_eq!(
            kinds(&trail),
            want,
            "the step's events, in order, with the superseded count (left out when 0)"
        );
    }
    let first = tokens
        .find(&live[0].hash)
        .await
        .expect("tokens.find")
        .map(|t| t.state);
    assert!(
        matches!(
            first,
            Some(TokenState::Revoked {
                reason: RevokeReason::Superseded,
                ..
            })
        ),
        "the first link is superseded"
    );
    let second = tokens
        .find(&live[1].hash)
        .await
        .expect("tokens.find")
        .map(|t| t.state);
    assert_eq!(second, Some(TokenState::Active));

    // Inline delivery: no mail, no settling; the events alone.
    let other = AccountId::from("steps-2");
    let (step, superseded_at) = step_events(&other, now, "<inline.steps@example.com>");
    let outcome = tokens
        .issue_and_record(
            TokenIssue {
                record: token(&other.0, now),
                limit: None,
                supersede: true,
            },
            IssueWrites {
                events: step,
                superseded_at,
                log: events,
                mail: None,
                settle: None,
            },
        )
        .await
        .expect("tokens.issue_and_record");
    assert_eq!(outcome, IssueOutcome::Issued { superseded: 0 });
    let trail = events.for_account(&other).await.expect("events.for_account");
    assert_eq!(kinds(&trail), ["reset_requested", "token_issued", "email_queued"]);
    assert!(
        outbox
            .status("<inline.steps@example.com>")
            .await
            .expect("outbox.status")
            .is_none()
    );

    // `settle` is fenced like `done`: a stale attempt deletes nothing.
    let (id, attempt) = claimed(inbox, 200, Identifier::Username("steps".into())).await;
    inbox
        .settle(&id, attempt + 1, ignored(now), events)
        .await
        .expect("inbox.settle");
    assert_eq!(
        inbox.len().await.expect("inbox.len"),
        1,
        "a stale settle leaves the request"
    );
    inbox
        .settle(&id, attempt, ignored(now), events)
        .await
        .expect("inbox.settle");
    assert_eq!(inbox.len().await.expect("inbox.len"), 0);
}

/// A live token for `account` bound to its current address and password
/// state (as the flow issues one), stored with a plain issue.
async fn bound_token(
    tokens: &dyn TokenStore,
    account: &crate::account::Account,
    at: SystemTime,
) -> TokenRecord {
    let raw = RawToken::generate().expect("OS random generator");
    let record = TokenRecord {
        hash: raw.hash(),
        account: account.id.clone(),
        sent_to: crate::identifier::canonicalize(account.email.as_deref().unwrap_or_default()),
        password_stamp: account.password_stamp(),
        issued_at: at,
        expires_at: at + Duration::from_secs(1800),
        state: TokenState::Active,
        deny_hash: None,
    };
    let outcome = tokens
        .issue(TokenIssue {
            record: record.clone(),
            limit: None,
            supersede: false,
        })
        .await
        .expect("tokens.issue");
    assert_eq!(outcome, IssueOutcome::Issued { superseded: 0 });
    record
}

/// [`TokenStore::find_with_account`] and
/// [`TokenStore::consume_with_account`] (`complete`'s reads): the token
/// with its account as `find` and `find_by_id` return them, `None` for an
/// account the directory does not have; consume takes the token once, with
/// the account, and a refused token comes back without one. The directory
/// must hold exactly [`fixture_accounts`](super::fixture_accounts).
pub async fn token_with_account_suite(tokens: &dyn TokenStore, accounts: &dyn AccountDirectory) {
    let now = super::epoch();
    let fixtures = super::fixture_accounts();
    let unknown = RawToken::generate().expect("OS random generator").hash();
    assert!(
        tokens
            .find_with_account(&unknown, accounts)
            .await
            .expect("tokens.find_with_account")
            .is_none(),
        "an unknown token is not found"
    );
    for account in &fixtures {
        let record = bound_token(tokens, account, now).await;
        let (found, with) = tokens
            .find_with_account(&record.hash, accounts)
            .await
            .expect("tokens.find_with_account")
            .expect("the token is found");
        assert_eq!(found, record, "find_with_account reads the token as find does");
        let with = with.expect("the token's account is read with it");
        assert_eq!(with.id, account.id);
        assert_eq!(with.username, account.username);
        assert_eq!(with.email, account.email);
        assert_eq!(
            with.disabled, account.disabled,
            "a disabled account is returned as such"
        );
        assert_eq!(with.email_confirmed, account.email_confirmed);
        assert_eq!(with.owner, account.owner);
        assert!(with.password_stamp() == record.password_stamp);

        let later = now + Duration::from_secs(60);
        let (outcome, current) = tokens
            .consume_with_account(&record.hash, later, accounts)
            .await
            .expect("tokens.consume_with_account");
        let crate::store::ConsumeOutcome::Consumed(taken) = outcome else {
            panic!("a live token is consumed, got {outcome:?}");
        };
        assert_eq!(taken.hash, record.hash);
        assert_eq!(
            current.map(|a| a.id),
            Some(account.id.clone()),
            "the winner gets the account as it is now"
        );
        assert!(
            matches!(
                tokens
                    .find(&record.hash)
                    .await
                    .expect("tokens.find")
                    .map(|r| r.state),
                Some(TokenState::Spending { .. })
            ),
            "the consumed token is being spent"
        );
        let (again, none) = tokens
            .consume_with_account(&record.hash, later, accounts)
            .await
            .expect("tokens.consume_with_account");
        assert_eq!(
            again,
            crate::store::ConsumeOutcome::Rejected(crate::token::RejectReason::AlreadyUsed),
            "a token is consumed once"
        );
        assert!(none.is_none(), "a refused token comes back without its account");
    }
    // A token whose account the directory does not have (deleted, or an
    // id that cannot be one of the directory's).
    for missing in ["fx-gone", "12345678901234567890123", "not-a-uuid-or-number"] {
        let gone = crate::account::Account::new(missing, "gone", "gone@example.com");
        let record = bound_token(tokens, &gone, now).await;
        let (_, with) = tokens
            .find_with_account(&record.hash, accounts)
            .await
            .expect("tokens.find_with_account")
            .expect("the token is found");
        assert!(with.is_none(), "no account for `{missing}`");
        let (outcome, with) = tokens
            .consume_with_account(&record.hash, now, accounts)
            .await
            .expect("tokens.consume_with_account");
        assert!(matches!(outcome, crate::store::ConsumeOutcome::Consumed(_)));
        assert!(with.is_none(), "no account for `{missing}`");
    }
    // Expired and unknown tokens are refused with the reason.
    let expired = bound_token(tokens, &fixtures[0], now).await;
    let (outcome, with) = tokens
        .consume_with_account(&expired.hash, now + Duration::from_secs(3600), accounts)
        .await
        .expect("tokens.consume_with_account");
    assert_eq!(
        outcome,
        crate::store::ConsumeOutcome::Rejected(crate::token::RejectReason::Expired)
    );
    assert!(with.is_none());
    let (outcome, with) = tokens
        .consume_with_account(&unknown, now, accounts)
        .await
        .expect("tokens.consume_with_account");
    assert_eq!(
        outcome,
        crate::store::ConsumeOutcome::Rejected(crate::token::RejectReason::Unknown)
    );
    assert!(with.is_none());
}

/// Two (or more) concurrent completes of one link: of `concurrency`
/// simultaneous [`TokenStore::consume_with_account`] calls exactly one
/// wins (with the account), the rest see `AlreadyUsed`. The directory must
/// hold [`fixture_accounts`](super::fixture_accounts).
pub async fn token_with_account_concurrent_consume(
    tokens: std::sync::Arc<dyn TokenStore>,
    accounts: std::sync::Arc<dyn AccountDirectory>,
    concurrency: usize,
) {
    let now = super::epoch();
    let account = super::fixture_accounts().remove(0);
    let record = bound_token(tokens.as_ref(), &account, now).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(concurrency));
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (tokens, accounts, barrier) = (tokens.clone(), accounts.clone(), barrier.clone());
        let hash = record.hash;
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            tokens
                .consume_with_account(&hash, now + Duration::from_secs(1), accounts.as_ref())
                .await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task
            .await
            .expect("consume task panicked")
            .expect("tokens.consume_with_account")
        {
            (crate::store::ConsumeOutcome::Consumed(_), Some(a)) if a.id == account.id => wins += 1,
            (crate::store::ConsumeOutcome::Rejected(crate::token::RejectReason::AlreadyUsed), None) => {}
            other => panic!("the winner gets the account, losers AlreadyUsed; got {other:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one of {concurrency} concurrent completes wins");
}

/// The step's events as `complete` notes them: completed, the
/// password-reset placeholder, the notice queued.
fn reset_events(account: &AccountId, at: SystemTime, message_id: &str) -> Vec<Event> {
    let a = || Some(account.clone());
    vec![
        Event::new(at, a(), EventKind::ResetCompleted),
        Event::new(
            at,
            a(),
            EventKind::LinksRevoked {
                reason: RevokeReason::PasswordReset,
                count: 0,
            },
        ),
        Event::new(
            at,
            a(),
            EventKind::EmailQueued {
                message_id: message_id.to_owned(),
                email: EmailKind::PasswordChanged,
                from: "support@example.com".into(),
                to: "user@example.org".into(),
                sender_strategy: "fixed".into(),
                sender_fallbacks: Vec::new(),
            },
        ),
    ]
}

/// [`TokenStore::finish_reset`] (`complete`'s writes): the password
/// stored, the token used, the account's other links revoked, the events
/// written with the count filled in (or the placeholder left out) and the
/// notice queued; a token revoked meanwhile stores the password and writes
/// nothing else; an account the directory does not have fails the step
/// with nothing written (the token stays spending, for the caller to give
/// back). The directory must hold exactly
/// [`fixture_accounts`](super::fixture_accounts); the log and the outbox
/// must be empty.
pub async fn finish_reset_suite(
    tokens: &dyn TokenStore,
    accounts: &dyn AccountDirectory,
    events: &dyn Timeline,
    outbox: &dyn OutboxListing,
) {
    use crate::hasher::PasswordHash;
    use crate::store::{ConsumeOutcome, FinishOutcome, PasswordWrite, ResetWrites};

    let now = super::epoch();
    let later = now + Duration::from_secs(60);
    let fixtures = super::fixture_accounts();
    let kinds = |list: Vec<Event>, account: &AccountId| -> Vec<EventKind> {
        list.into_iter()
            .filter(|e| e.account.as_ref() == Some(account))
            .map(|e| e.kind)
            .collect()
    };
    // fx-1 with another live link (revoked: the count is filled in), fx-2
    // without (the placeholder is left out).
    for (n, account, other) in [(0usize, &fixtures[0], true), (1, &fixtures[1], false)] {
        let spent = bound_token(tokens, account, now).await;
        let second = if other {
            Some(bound_token(tokens, account, now).await)
        } else {
            None
        };
        assert!(matches!(
            tokens.consume(&spent.hash, later).await.expect("tokens.consume"),
            ConsumeOutcome::Consumed(_)
        ));
        let mail = super::outbox::entry(900 + n, later);
        let message_id = mail.email.message_id.clone();
        let hash = PasswordHash::from_phc(format!("$argon2id$v=19$m=8,t=1,p=1$conformance{n}"));
        let done = tokens
            .finish_reset(
                &spent.hash,
                later,
                PasswordWrite {
                    accounts,
                    account: &account.id,
                    hash: &hash,
                },
                ResetWrites {
                    events: reset_events(&account.id, later, &message_id),
                    revoked_at: Some(1),
                    log: events,
                    mail: Some(QueuedMail { entry: mail, outbox }),
                },
            )
            .await
            .expect("tokens.finish_reset");
        let want = usize::from(other);
        assert!(done.recorded, "a finished reset writes its events and notice");
        assert_eq!(
            done.finish.expect("finish"),
            FinishOutcome::Finished { revoked: want }
        );
        let stored = accounts
            .find_by_id(&account.id)
            .await
            .expect("accounts.find_by_id")
            .expect("the account");
        assert!(
            stored.password_stamp() == PasswordStamp::of(Some(&hash)),
            "the new password is stored"
        );
        assert!(matches!(
            tokens
                .find(&spent.hash)
                .await
                .expect("tokens.find")
                .map(|r| r.state),
            Some(TokenState::Used { .. })
        ));
        if let Some(second) = second {
            assert!(
                matches!(
                    tokens
                        .find(&second.hash)
                        .await
                        .expect("tokens.find")
                        .map(|r| r.state),
                    Some(TokenState::Revoked {
                        reason: RevokeReason::PasswordReset,
                        ..
                    })
                ),
                "the account's other links are revoked"
            );
        }
        let written = kinds(events.recent(100).await.expect("events.recent"), &account.id);
        let mut expected = vec![EventKind::ResetCompleted];
        if other {
            expected.push(EventKind::LinksRevoked {
                reason: RevokeReason::PasswordReset,
                count: 1,
            });
        }
        assert_eq!(
            written
                .iter()
                .filter(|k| !matches!(k, EventKind::EmailQueued { .. }))
                .count(),
            expected.len(),
            "the placeholder carries the count or is left out: {written:?}"
        );
        for kind in &expected {
            assert!(written.contains(kind), "{kind:?} recorded: {written:?}");
        }
        assert!(
            written.iter().any(|k| matches!(k, EventKind::EmailQueued { .. })),
            "the notice's event is recorded"
        );
        assert_eq!(
            outbox.status(&message_id).await.expect("outbox.status"),
            Some(OutboxStatus::Pending),
            "the notice is queued"
        );
    }
    // Revoked while being spent: the password is stored, nothing else.
    let account = &fixtures[2];
    let spent = bound_token(tokens, account, now).await;
    assert!(matches!(
        tokens.consume(&spent.hash, later).await.expect("tokens.consume"),
        ConsumeOutcome::Consumed(_)
    ));
    tokens
        .revoke_for_account(&account.id, RevokeReason::UserDenied, later)
        .await
        .expect("tokens.revoke_for_account");
    let mail = super::outbox::entry(910, later);
    let message_id = mail.email.message_id.clone();
    let hash = PasswordHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$revoked".to_owned());
    let done = tokens
        .finish_reset(
            &spent.hash,
            later,
            PasswordWrite {
                accounts,
                account: &account.id,
                hash: &hash,
            },
            ResetWrites {
                events: reset_events(&account.id, later, &message_id),
                revoked_at: Some(1),
                log: events,
                mail: Some(QueuedMail { entry: mail, outbox }),
            },
        )
        .await
        .expect("tokens.finish_reset");
    assert!(!done.recorded, "nothing is recorded for a link revoked meanwhile");
    assert_eq!(
        done.finish.expect("finish"),
        FinishOutcome::RevokedMeanwhile(RevokeReason::UserDenied)
    );
    let stored = accounts
        .find_by_id(&account.id)
        .await
        .expect("accounts.find_by_id")
        .expect("the account");
    assert!(stored.password_stamp() == PasswordStamp::of(Some(&hash)));
    assert!(kinds(events.recent(100).await.expect("events.recent"), &account.id).is_empty());
    assert_eq!(outbox.status(&message_id).await.expect("outbox.status"), None);
    // An account the directory does not have: an error, nothing written.
    let gone = crate::account::Account::new("fx-gone", "gone", "gone@example.com");
    let spent = bound_token(tokens, &gone, now).await;
    assert!(matches!(
        tokens.consume(&spent.hash, later).await.expect("tokens.consume"),
        ConsumeOutcome::Consumed(_)
    ));
    let mail = super::outbox::entry(920, later);
    let message_id = mail.email.message_id.clone();
    let result = tokens
        .finish_reset(
            &spent.hash,
            later,
            PasswordWrite {
                accounts,
                account: &gone.id,
                hash: &hash,
            },
            ResetWrites {
                events: reset_events(&gone.id, later, &message_id),
                revoked_at: Some(1),
                log: events,
                mail: Some(QueuedMail { entry: mail, outbox }),
            },
        )
        .await;
    assert!(result.is_err(), "no account to store the password in: {result:?}");
    assert!(
        matches!(
            tokens
                .find(&spent.hash)
                .await
                .expect("tokens.find")
                .map(|r| r.state),
            Some(TokenState::Spending { .. })
        ),
        "the token is not finished (the caller gives it back)"
    );
    assert!(kinds(events.recent(100).await.expect("events.recent"), &gone.id).is_empty());
    assert_eq!(outbox.status(&message_id).await.expect("outbox.status"), None);
}
