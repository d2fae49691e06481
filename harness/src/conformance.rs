//! Store conformance suite: one set of checks every [`TokenStore`],
//! [`EventLog`], [`Outbox`] and [`AccountDirectory`] implementation runs in
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

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use resetkit::account::{Account, AccountDirectory, AccountId, PasswordStamp};
use resetkit::event::{Event, EventKind, IgnoreReason};
use resetkit::hasher::PasswordHash;
use resetkit::mail::{DeliveryError, EmailKind, MailContent, Mailbox, OutgoingEmail, SmtpReply};
use resetkit::store::{ConsumeOutcome, EventLog, Outbox, OutboxEntry, OutboxStatus, RateKey, TokenStore};
use resetkit::token::{RawToken, RejectReason, RevokeReason, TokenHash, TokenRecord, TokenState};

/// A fixed point in time the suites work from (whole seconds, so stores that
/// keep microseconds round-trip it exactly).
pub fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn record(account: &str, issued_at: SystemTime, lifetime: Duration) -> (RawToken, TokenRecord) {
    let token = RawToken::generate().expect("OS random generator");
    let record = TokenRecord {
        hash: token.hash(),
        account: AccountId::from(account),
        sent_to: format!("{account}@example.com"),
        password_stamp: PasswordStamp::of(None),
        issued_at,
        expires_at: issued_at + lifetime,
        state: TokenState::Active,
    };
    (token, record)
}

async fn consume(store: &dyn TokenStore, hash: &TokenHash, now: SystemTime) -> ConsumeOutcome {
    store.consume(hash, now).await.expect("tokens.consume")
}

/// Every [`TokenStore`] behaviour the flow relies on.
pub async fn token_store_suite(store: &dyn TokenStore) {
    let t0 = epoch();
    let life = Duration::from_secs(1800);

    // insert / find round-trips every field.
    let (_, a1) = record("acct-a", t0, life);
    store.insert(a1.clone()).await.expect("tokens.insert");
    let found = store.find(&a1.hash).await.expect("tokens.find");
    assert_eq!(
        found.as_ref(),
        Some(&a1),
        "find must return the inserted record unchanged"
    );
    let (unknown, _) = record("nobody", t0, life);
    assert_eq!(
        store.find(&unknown.hash()).await.expect("tokens.find"),
        None,
        "unknown hash"
    );

    // consume once; the second use is refused as already used.
    match consume(store, &a1.hash, t0 + Duration::from_secs(60)).await {
        ConsumeOutcome::Consumed(r) => assert_eq!(r.account, a1.account),
        other => panic!("first consume must succeed, got {other:?}"),
    }
    assert_eq!(
        consume(store, &a1.hash, t0 + Duration::from_secs(61)).await,
        ConsumeOutcome::Rejected(RejectReason::AlreadyUsed),
        "second consume"
    );
    assert!(
        matches!(
            store.find(&a1.hash).await.expect("tokens.find").map(|r| r.state),
            Some(TokenState::Used { .. })
        ),
        "a consumed token reads back as used"
    );
    assert_eq!(
        consume(store, &unknown.hash(), t0).await,
        ConsumeOutcome::Rejected(RejectReason::Unknown),
        "consume of an unknown token"
    );

    // release gives a used token back; nothing else.
    store.release(&a1.hash).await.expect("tokens.release");
    assert!(
        matches!(
            consume(store, &a1.hash, t0 + Duration::from_secs(62)).await,
            ConsumeOutcome::Consumed(_)
        ),
        "a released token can be consumed again"
    );

    // expiry: dead at exactly expires_at, alive one second before.
    let (_, a2) = record("acct-a", t0, life);
    store.insert(a2.clone()).await.expect("tokens.insert");
    assert_eq!(
        consume(store, &a2.hash, a2.expires_at).await,
        ConsumeOutcome::Rejected(RejectReason::Expired),
        "a token is dead at its expiry instant"
    );
    let (_, a3) = record("acct-a", t0, life);
    store.insert(a3.clone()).await.expect("tokens.insert");
    assert!(
        matches!(
            consume(store, &a3.hash, a3.expires_at - Duration::from_secs(1)).await,
            ConsumeOutcome::Consumed(_)
        ),
        "a token works until its expiry"
    );

    // revoke_for_account: only active tokens of that account.
    let (_, b1) = record("acct-b", t0, life);
    let (_, b2) = record("acct-b", t0, life);
    let (_, c1) = record("acct-c", t0, life);
    for r in [&b1, &b2, &c1] {
        store.insert(r.clone()).await.expect("tokens.insert");
    }
    assert!(matches!(
        consume(store, &b2.hash, t0).await,
        ConsumeOutcome::Consumed(_)
    ));
    let revoked = store
        .revoke_for_account(&b1.account, RevokeReason::Superseded, t0 + Duration::from_secs(5))
        .await
        .expect("tokens.revoke_for_account");
    assert_eq!(revoked, 1, "only the one active token of acct-b is revoked");
    assert_eq!(
        consume(store, &b1.hash, t0 + Duration::from_secs(6)).await,
        ConsumeOutcome::Rejected(RejectReason::Revoked(RevokeReason::Superseded)),
        "a revoked token reports why"
    );
    store.release(&b1.hash).await.expect("tokens.release");
    assert_eq!(
        consume(store, &b1.hash, t0 + Duration::from_secs(7)).await,
        ConsumeOutcome::Rejected(RejectReason::Revoked(RevokeReason::Superseded)),
        "release must not resurrect a revoked token"
    );
    assert!(
        matches!(consume(store, &c1.hash, t0).await, ConsumeOutcome::Consumed(_)),
        "another account's token is untouched"
    );

    rate_limit_checks(store).await;

    // purge: only tokens expired before the cut-off, in batches.
    let old = t0 - Duration::from_secs(10 * 86_400);
    let mut old_hashes = Vec::new();
    for _ in 0..5 {
        let (_, r) = record("acct-old", old, life);
        old_hashes.push(r.hash);
        store.insert(r).await.expect("tokens.insert");
    }
    let cutoff = t0 - Duration::from_secs(86_400);
    assert_eq!(
        store
            .purge_expired(cutoff, 2)
            .await
            .expect("tokens.purge_expired"),
        2,
        "first batch"
    );
    assert_eq!(
        store
            .purge_expired(cutoff, 10)
            .await
            .expect("tokens.purge_expired"),
        3,
        "rest"
    );
    assert_eq!(
        store
            .purge_expired(cutoff, 10)
            .await
            .expect("tokens.purge_expired"),
        0,
        "nothing left"
    );
    for h in &old_hashes {
        assert_eq!(
            store.find(h).await.expect("tokens.find"),
            None,
            "purged token is gone"
        );
    }
    assert!(
        store.find(&a3.hash).await.expect("tokens.find").is_some(),
        "purge keeps recent tokens"
    );
}

async fn rate_limit_checks(store: &dyn TokenStore) {
    let t0 = epoch();
    let window = Duration::from_secs(60);
    let key = RateKey::Client("198.51.100.7".into());
    let other = RateKey::Account(AccountId::from("acct-rate"));
    for expected in 1..=3 {
        let n = store
            .hit(&key, t0 + Duration::from_secs(expected), window)
            .await
            .expect("tokens.hit");
        assert_eq!(
            n,
            u32::try_from(expected).unwrap_or(u32::MAX),
            "hits count up within the window"
        );
    }
    assert_eq!(
        store.hit(&other, t0, window).await.expect("tokens.hit"),
        1,
        "keys are independent"
    );
    let later = t0 + Duration::from_secs(62);
    assert_eq!(
        store.hit(&key, later, window).await.expect("tokens.hit"),
        2,
        "hits at or before now - window are not counted (window is (t0+2s, t0+62s]: t0+3s and this one remain)"
    );
}

/// Of `concurrency` simultaneous consumes of one token, exactly one wins.
pub async fn token_store_concurrent_consume(store: Arc<dyn TokenStore>, concurrency: usize) {
    let t0 = epoch();
    let (_, r) = record("acct-race", t0, Duration::from_secs(1800));
    store.insert(r.clone()).await.expect("tokens.insert");
    let barrier = Arc::new(tokio::sync::Barrier::new(concurrency));
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let store = store.clone();
        let barrier = barrier.clone();
        let hash = r.hash;
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.consume(&hash, t0 + Duration::from_secs(1)).await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task
            .await
            .expect("consume task panicked")
            .expect("tokens.consume")
        {
            ConsumeOutcome::Consumed(_) => wins += 1,
            ConsumeOutcome::Rejected(RejectReason::AlreadyUsed) => {}
            other => panic!("losers must see AlreadyUsed, got {other:?}"),
        }
    }
    assert_eq!(
        wins, 1,
        "exactly one of {concurrency} concurrent consumes must win"
    );
}

/// Every [`EventLog`] behaviour the flow and the harness rely on.
pub async fn event_log_suite(log: &dyn EventLog) {
    let t0 = epoch();
    let a = AccountId::from("acct-ev-a");
    let b = AccountId::from("acct-ev-b");
    let events = vec![
        Event::new(
            t0,
            Some(a.clone()),
            EventKind::ResetRequested {
                via: "email",
                client: Some("192.0.2.1".into()),
            },
        ),
        Event::new(
            t0 + Duration::from_secs(1),
            None,
            EventKind::RequestIgnored {
                reason: IgnoreReason::UnknownIdentifier,
                identifier: "x@example.com".into(),
            },
        ),
        Event::new(
            t0 + Duration::from_secs(2),
            Some(b.clone()),
            EventKind::ResetCompleted,
        ),
        Event::new(
            t0 + Duration::from_secs(3),
            Some(a.clone()),
            EventKind::TokenRejected {
                reason: RejectReason::Revoked(RevokeReason::PasswordReset),
            },
        ),
        Event::new(
            t0 + Duration::from_secs(4),
            Some(a.clone()),
            EventKind::DeliveryFailed {
                message_id: "<m1@example.com>".into(),
                reason: "sender <noreply@example.com> rejected".into(),
                permanent: true,
                will_retry: false,
            },
        ),
    ];
    for e in &events {
        log.record(e.clone()).await.expect("events.record");
    }
    let of_a = log.for_account(&a).await.expect("events.for_account");
    assert_eq!(
        of_a,
        vec![events[0].clone(), events[3].clone(), events[4].clone()],
        "account trail, oldest first"
    );
    assert_eq!(
        log.for_account(&b).await.expect("events.for_account"),
        vec![events[2].clone()]
    );
    assert!(
        log.for_account(&AccountId::from("none"))
            .await
            .expect("events.for_account")
            .is_empty()
    );
    let recent = log.recent(2).await.expect("events.recent");
    assert_eq!(
        recent,
        vec![events[3].clone(), events[4].clone()],
        "recent(2): the last two, oldest first"
    );
}

/// A sample email for outbox tests.
pub fn sample_email(n: usize) -> OutgoingEmail {
    let from = Mailbox::new(Some("Support \"Team\""), "support@example.com").expect("valid mailbox");
    let reply = Mailbox::address_only("help@example.com").expect("valid mailbox");
    let to = Mailbox::address_only(&format!("user{n}@example.org")).expect("valid mailbox");
    OutgoingEmail::new(
        format!("<msg{n}.conformance@example.com>"),
        EmailKind::Reset,
        from,
        Some(reply),
        to,
        MailContent {
            subject: format!("Reset your password #{n} — ünïcödé"),
            text: format!("Open:\n\nhttps://app.example.com/reset?token=t{n}\n"),
            html: format!("<a href=\"https://app.example.com/reset?token=t{n}&amp;x=1\">reset</a>"),
        },
    )
}

fn entry(n: usize, due: SystemTime) -> OutboxEntry {
    OutboxEntry {
        email: sample_email(n),
        account: Some(AccountId::from(format!("acct-{n}"))),
        attempts: 0,
        next_attempt_at: due,
    }
}

/// Every [`Outbox`] behaviour the delivery worker relies on.
pub async fn outbox_suite(outbox: &dyn Outbox) {
    let t0 = epoch();
    let lease = Duration::from_secs(300);
    outbox.enqueue(entry(1, t0)).await.expect("outbox.enqueue");
    outbox
        .enqueue(entry(2, t0 + Duration::from_secs(600)))
        .await
        .expect("outbox.enqueue");

    let claimed = outbox.claim(t0, 10, lease).await.expect("outbox.claim");
    assert_eq!(claimed.len(), 1, "only due messages are claimed");
    let got = &claimed[0];
    let want = sample_email(1);
    assert_eq!(got.email.message_id, want.message_id);
    assert_eq!(got.email.kind, want.kind);
    assert_eq!(got.email.from, want.from, "From (with display name) round-trips");
    assert_eq!(got.email.reply_to, want.reply_to);
    assert_eq!(got.email.to, want.to);
    assert_eq!(got.email.subject, want.subject);
    assert_eq!(got.email.expose_text(), want.expose_text());
    assert_eq!(got.email.expose_html(), want.expose_html());
    assert_eq!(got.account, Some(AccountId::from("acct-1")));
    assert_eq!(got.attempts, 1, "claiming counts an attempt");
    let id1 = want.message_id.clone();
    assert_eq!(
        outbox.status(&id1).await.expect("outbox.status"),
        Some(OutboxStatus::Claimed)
    );

    assert!(
        outbox
            .claim(t0 + Duration::from_secs(1), 10, lease)
            .await
            .expect("outbox.claim")
            .is_empty(),
        "a leased message is not claimed twice"
    );
    let reclaimed = outbox
        .claim(t0 + lease + Duration::from_secs(1), 10, lease)
        .await
        .expect("outbox.claim");
    assert_eq!(
        reclaimed
            .iter()
            .map(|e| e.email.message_id.clone())
            .collect::<Vec<_>>(),
        vec![id1.clone()],
        "an expired lease makes the message claimable again"
    );
    assert_eq!(reclaimed[0].attempts, 2);

    let transient = DeliveryError::Transient {
        reason: "greylisted".into(),
        reply: Some(SmtpReply::new(451, Some("4.7.1"), "later")),
    };
    let retry_at = t0 + Duration::from_secs(900);
    outbox
        .mark_failed(&id1, &transient, Some(retry_at))
        .await
        .expect("outbox.mark_failed");
    assert_eq!(
        outbox.status(&id1).await.expect("outbox.status"),
        Some(OutboxStatus::Pending),
        "retry scheduled"
    );
    let before = outbox
        .claim(retry_at - Duration::from_secs(1), 10, lease)
        .await
        .expect("outbox.claim");
    assert_eq!(
        before
            .iter()
            .map(|e| e.email.message_id.clone())
            .collect::<Vec<_>>(),
        vec![sample_email(2).message_id],
        "retry not before its time"
    );
    let at = outbox.claim(retry_at, 10, lease).await.expect("outbox.claim");
    assert_eq!(at.len(), 1, "retry due");
    assert_eq!(at[0].attempts, 3);

    outbox.mark_sent(&id1, retry_at).await.expect("outbox.mark_sent");
    assert_eq!(
        outbox.status(&id1).await.expect("outbox.status"),
        Some(OutboxStatus::Sent)
    );
    let permanent = DeliveryError::SenderRejected {
        sender: "support@example.com".into(),
        reply: Some(SmtpReply::new(550, Some("5.7.1"), "not authorised")),
    };
    let id2 = sample_email(2).message_id;
    outbox
        .mark_failed(&id2, &permanent, None)
        .await
        .expect("outbox.mark_failed");
    match outbox.status(&id2).await.expect("outbox.status") {
        Some(OutboxStatus::Failed { reason }) => {
            assert!(reason.contains("550"), "failure reason keeps the reply: {reason}")
        }
        other => panic!("given-up message must be Failed, got {other:?}"),
    }
    assert!(
        outbox
            .claim(retry_at + Duration::from_secs(3600), 10, lease)
            .await
            .expect("outbox.claim")
            .is_empty(),
        "sent and failed messages are never claimed"
    );
    assert_eq!(
        outbox.status("<nope@example.com>").await.expect("outbox.status"),
        None
    );
    let counts = outbox.counts().await.expect("outbox.counts");
    assert_eq!((counts.waiting, counts.sent, counts.failed), (0, 1, 1));
    assert!(
        outbox.mark_sent("<nope@example.com>", t0).await.is_err(),
        "marking an unknown message is an error"
    );
}

/// The accounts [`account_directory_suite`] expects the directory to hold.
/// Two of them share one email address, written with different case.
pub fn fixture_accounts() -> Vec<Account> {
    vec![
        Account::new("fx-1", "Alice", "Alice@Example.com"),
        Account::new("fx-2", "alice-work", "alice@example.COM"),
        Account::new("fx-3", "bob", "bob@example.org")
            .with_disabled(true)
            .with_owner("owner-1"),
        Account::new("fx-4", "carol", "carol@example.net").with_email_confirmed(false),
    ]
}

/// Every [`AccountDirectory`] behaviour the flow relies on. The directory
/// must hold exactly [`fixture_accounts`].
pub async fn account_directory_suite(dir: &dyn AccountDirectory) {
    let mut shared = dir
        .find_by_email("alice@example.com")
        .await
        .expect("accounts.find_by_email");
    shared.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<&str> = shared.iter().map(|a| a.id.0.as_str()).collect();
    assert_eq!(
        ids,
        vec!["fx-1", "fx-2"],
        "canonical lookup finds every account sharing the address"
    );
    assert_eq!(
        shared[0].email.as_deref(),
        Some("Alice@Example.com"),
        "the stored address is returned as stored"
    );
    assert!(
        dir.find_by_email("nobody@example.com")
            .await
            .expect("accounts.find_by_email")
            .is_empty()
    );

    let alice = dir
        .find_by_username("alice")
        .await
        .expect("accounts.find_by_username")
        .expect("alice exists");
    assert_eq!(alice.id, AccountId::from("fx-1"), "usernames match canonically");
    assert!(
        dir.find_by_username("mallory")
            .await
            .expect("accounts.find_by_username")
            .is_none()
    );

    let bob = dir
        .find_by_id(&AccountId::from("fx-3"))
        .await
        .expect("accounts.find_by_id")
        .expect("bob exists");
    assert!(bob.disabled, "disabled flag round-trips");
    assert_eq!(bob.owner.as_deref(), Some("owner-1"), "owner round-trips");
    let carol = dir
        .find_by_id(&AccountId::from("fx-4"))
        .await
        .expect("accounts.find_by_id")
        .expect("carol exists");
    assert!(!carol.email_confirmed, "email_confirmed round-trips");
    assert!(
        dir.find_by_id(&AccountId::from("fx-404"))
            .await
            .expect("accounts.find_by_id")
            .is_none()
    );

    let before = alice.password_stamp();
    let hash = PasswordHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA");
    dir.set_password_hash(&alice.id, &hash)
        .await
        .expect("accounts.set_password_hash");
    let after = dir
        .find_by_id(&alice.id)
        .await
        .expect("accounts.find_by_id")
        .expect("alice exists");
    assert_eq!(
        after.password_hash.as_ref().map(PasswordHash::expose),
        Some(hash.expose()),
        "new hash is stored"
    );
    assert_ne!(
        after.password_stamp(),
        before,
        "the password stamp changes with the hash"
    );
    assert!(
        dir.set_password_hash(&AccountId::from("fx-404"), &hash)
            .await
            .is_err(),
        "setting the password of an unknown account is an error"
    );
}
