//! PgTokenStore against a real PostgreSQL (see tests/common for skipping).
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{T0, at, db, db_with, record};
use resetkit::account::AccountId;
use resetkit::store::{ConsumeOutcome, RateKey, RateLimitAdmin, RateLimiter, TokenRetention, TokenStore};
use resetkit::token::{RejectReason, RevokeReason, TokenState};
use resetkit_postgres::PgTokenStore;

#[tokio::test]
async fn insert_find_consume_release_revoke() {
    let Some(db) = db("insert_find_consume_release_revoke").await else {
        return;
    };
    let store = db.stores.tokens.clone();
    let (_, rec) = record("u1", T0, 1800);
    common::insert(store.as_ref(), &rec).await;
    assert_eq!(store.find(&rec.hash).await.unwrap(), Some(rec.clone()));

    let now = at(T0 + 10);
    let ConsumeOutcome::Consumed(used) = store.consume(&rec.hash, now).await.unwrap() else {
        panic!("first consume must win")
    };
    assert_eq!(used.state, TokenState::Spending { at: now });
    assert_eq!(
        store.consume(&rec.hash, now).await.unwrap(),
        ConsumeOutcome::Rejected(RejectReason::AlreadyUsed)
    );
    store.release(&rec.hash).await.unwrap();
    assert!(matches!(
        store.consume(&rec.hash, now).await.unwrap(),
        ConsumeOutcome::Consumed(_)
    ));

    let (raw_unknown, _) = record("nobody", T0, 1800);
    assert_eq!(
        store.consume(&raw_unknown.hash(), now).await.unwrap(),
        ConsumeOutcome::Rejected(RejectReason::Unknown)
    );

    // Expiry is exclusive: at expires_at the token is dead.
    let (_, late) = record("u1", T0, 60);
    common::insert(store.as_ref(), &late).await;
    assert_eq!(
        store.consume(&late.hash, at(T0 + 60)).await.unwrap(),
        ConsumeOutcome::Rejected(RejectReason::Expired)
    );

    let (_, a) = record("u2", T0, 1800);
    let (_, b) = record("u2", T0, 1800);
    common::insert(store.as_ref(), &a).await;
    common::insert(store.as_ref(), &b).await;
    let n = store
        .revoke_for_account(&AccountId::from("u2"), RevokeReason::Superseded, now)
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        store.consume(&a.hash, now).await.unwrap(),
        ConsumeOutcome::Rejected(RejectReason::Revoked(RevokeReason::Superseded))
    );
    // Release never revives a revoked token.
    store.release(&a.hash).await.unwrap();
    assert!(matches!(
        store.find(&a.hash).await.unwrap().unwrap().state,
        TokenState::Revoked {
            reason: RevokeReason::Superseded,
            ..
        }
    ));
    db.drop().await;
}

#[tokio::test]
async fn fifty_concurrent_consumes_exactly_one_wins() {
    let Some(db) = db_with("fifty_concurrent_consumes_exactly_one_wins", 55).await else {
        return;
    };
    let store = db.stores.tokens.clone();
    let (_, rec) = record("race", T0, 1800);
    common::insert(store.as_ref(), &rec).await;
    // Open 50 connections first so every consume runs on its own one.
    let mut held = Vec::new();
    for _ in 0..50 {
        held.push(db.pool.acquire().await.unwrap());
    }
    drop(held);
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            let barrier = barrier.clone();
            let hash = rec.hash;
            tokio::spawn(async move {
                barrier.wait().await;
                store.consume(&hash, at(T0 + 1)).await.unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            ConsumeOutcome::Consumed(_) => won += 1,
            ConsumeOutcome::Rejected(reason) => assert_eq!(reason, RejectReason::AlreadyUsed),
        }
    }
    assert_eq!(won, 1);
    db.drop().await;
}

#[tokio::test]
async fn rate_limit_counts_are_shared_by_two_store_instances() {
    let Some(db) = db("rate_limit_counts_are_shared_by_two_store_instances").await else {
        return;
    };
    let other_pool = common::pool(&db.url, 4).await;
    let a = db.stores.tokens.clone();
    let b = Arc::new(PgTokenStore::new(other_pool.clone(), &db.schema));
    let key = RateKey::Client("203.0.113.7".into());
    let window = Duration::from_secs(60);
    let admit = |s: &Arc<PgTokenStore>, key: &RateKey, t: u64| {
        let (s, key) = (s.clone(), key.clone());
        async move { s.admit(&key, at(t), window, 100).await.unwrap() }
    };
    assert!(admit(&a, &key, T0).await);
    assert!(admit(&b, &key, T0 + 1).await);
    assert!(admit(&a, &key, T0 + 2).await);
    assert_eq!(b.rate_count(&key, at(T0 + 2), window).await.unwrap(), 3);
    // Another key is counted apart.
    let acct = RateKey::Account(AccountId::from("42"));
    assert!(admit(&b, &acct, T0 + 2).await);
    assert_eq!(a.rate_count(&acct, at(T0 + 2), window).await.unwrap(), 1);
    // Hits leave the window (now - window, now]: at T0+61 the hits of T0
    // and T0+1 are out, the one of T0+2 is in.
    assert_eq!(b.rate_count(&key, at(T0 + 61), window).await.unwrap(), 1);
    assert_eq!(a.rate_count(&key, at(T0 + 200), window).await.unwrap(), 0);

    // Concurrent admissions from both instances are counted exactly: of
    // 40 attempts under a limit of 25, 25 are admitted.
    let burst = RateKey::Client("198.51.100.1".into());
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store: Arc<dyn RateLimiter> = if i % 2 == 0 { a.clone() } else { b.clone() };
            let key = burst.clone();
            tokio::spawn(async move { store.admit(&key, at(T0 + 300), window, 25).await.unwrap() })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert_eq!(admitted, 25);
    assert_eq!(a.rate_count(&burst, at(T0 + 300), window).await.unwrap(), 25);
    other_pool.close().await;
    db.drop().await;
}

#[tokio::test]
async fn purge_removes_expired_tokens_in_batches() {
    let Some(db) = db("purge_removes_expired_tokens_in_batches").await else {
        return;
    };
    let store = db.stores.tokens.clone();
    let mut live = Vec::new();
    for i in 0..25 {
        let (_, rec) = record(&format!("p{i}"), T0, 60);
        common::insert(store.as_ref(), &rec).await;
        let (_, keep) = record(&format!("k{i}"), T0, 6000);
        live.push(keep.hash);
        common::insert(store.as_ref(), &keep).await;
    }
    let before = at(T0 + 120);
    assert_eq!(store.purge_expired(before, 10).await.unwrap(), 10);
    assert_eq!(store.purge_expired(before, 10).await.unwrap(), 10);
    assert_eq!(store.purge_expired(before, 10).await.unwrap(), 5);
    assert_eq!(store.purge_expired(before, 10).await.unwrap(), 0);
    for hash in live {
        assert!(store.find(&hash).await.unwrap().is_some());
    }
    db.drop().await;
}
