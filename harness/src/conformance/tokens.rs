//! The [`TokenStore`] suite: insert, find, consume, release, expiry,
//! revocation, rate limits, purge, and concurrent consumes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use resetkit::account::{AccountId, PasswordStamp};
use resetkit::store::{ConsumeOutcome, RateKey, TokenStore};
use resetkit::token::{RawToken, RejectReason, RevokeReason, TokenHash, TokenRecord, TokenState};

use super::epoch;

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
    admit_checks(store).await;
}

async fn admit_checks(store: &dyn TokenStore) {
    let t0 = epoch();
    let window = Duration::from_secs(60);
    let key = RateKey::Account(AccountId::from("acct-admit"));
    for n in 1..=2u64 {
        assert!(
            store
                .admit(&key, t0 + Duration::from_secs(n), window, 2)
                .await
                .expect("tokens.admit"),
            "admit #{n} of 2 is recorded"
        );
    }
    // Refused attempts are not recorded: a steady stream of them must not
    // keep the window full once the admitted hits age out.
    for n in 3..=60u64 {
        assert!(
            !store
                .admit(&key, t0 + Duration::from_secs(n), window, 2)
                .await
                .expect("tokens.admit"),
            "over the limit at t0+{n}s"
        );
    }
    assert!(
        store
            .admit(&key, t0 + Duration::from_secs(61), window, 2)
            .await
            .expect("tokens.admit"),
        "at t0+61s the hit of t0+1s has left the window, however many attempts were refused"
    );
    assert!(
        !store
            .admit(&key, t0 + Duration::from_secs(61), window, 2)
            .await
            .expect("tokens.admit"),
        "the slot just freed was taken"
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
