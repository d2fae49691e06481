//! Migrations (twice, concurrently), the event log, and clear errors when
//! the database is unreachable.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::{T0, at, db, record};
use resetkit::account::AccountId;
use resetkit::event::{Event, EventKind};
use resetkit::store::{EventLog, Outbox, Timeline, TokenStore};
use resetkit::token::RejectReason;
use resetkit_postgres::{Ident, MIGRATIONS, PgStores, migrate};
use sqlx::postgres::PgPoolOptions;

#[tokio::test]
async fn migrations_twice_and_concurrently_are_harmless() {
    let Some(db) = db("migrations_twice_and_concurrently_are_harmless").await else {
        return;
    };
    // Already applied by the helper: running again applies nothing.
    assert!(db.stores.migrate().await.unwrap().is_empty());

    // A fresh schema migrated by eight instances at once: applied once.
    let fresh = Ident::new(&common::random_schema()).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let pool = db.pool.clone();
            let schema = fresh.clone();
            tokio::spawn(async move { migrate(&pool, &schema).await.unwrap() })
        })
        .collect();
    let mut applied = Vec::new();
    for t in tasks {
        applied.extend(t.await.unwrap());
    }
    applied.sort_unstable();
    let all: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(applied, all, "each migration applied exactly once");
    let stores = PgStores::new(db.pool.clone(), fresh.as_str())
        .unwrap()
        .with_queue_clock(resetkit_postgres::QueueClock::Caller);
    let (_, rec) = record("m", T0, 60);
    common::insert(stores.tokens.as_ref(), &rec).await;
    assert!(stores.tokens.find(&rec.hash).await.unwrap().is_some());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA {} CASCADE",
        fresh.quoted()
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    db.drop().await;
}

#[tokio::test]
async fn invalid_schema_names_are_refused() {
    // No database needed.
    let pool = PgPoolOptions::new()
        .connect_lazy("postgres://x@127.0.0.1:1/x")
        .unwrap();
    let err = PgStores::new(pool, "public; DROP TABLE users").unwrap_err();
    assert!(err.to_string().contains("`schema`"), "{err}");
}

#[tokio::test]
async fn event_log_round_trips_in_order() {
    let Some(db) = db("event_log_round_trips_in_order").await else {
        return;
    };
    let log = db.stores.events.clone();
    let alice = AccountId::from("alice");
    let events = vec![
        Event::new(
            at(T0),
            Some(alice.clone()),
            EventKind::ResetRequested {
                via: "email",
                client: None,
            },
        ),
        Event::new(
            at(T0 + 1),
            None,
            EventKind::TokenRejected {
                reason: RejectReason::Expired,
            },
        ),
        Event::new(at(T0 + 2), Some(alice.clone()), EventKind::ResetCompleted),
    ];
    for e in &events {
        log.record(e.clone()).await.unwrap();
    }
    assert_eq!(
        log.for_account(&alice).await.unwrap(),
        vec![events[0].clone(), events[2].clone()]
    );
    assert_eq!(log.recent(2).await.unwrap(), events[1..].to_vec());
    assert_eq!(log.recent(10).await.unwrap(), events);
    db.drop().await;
}

#[tokio::test]
async fn connection_refused_names_the_store_operation() {
    // A port nothing listens on (bound then released).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        .unwrap();
    let stores = PgStores::new(pool, "resetkit")
        .unwrap()
        .with_queue_clock(resetkit_postgres::QueueClock::Caller);
    let (_, rec) = record("x", T0, 60);
    let err = stores.tokens.consume(&rec.hash, at(T0)).await.unwrap_err();
    assert_eq!(err.operation(), "tokens.consume");
    assert!(err.is_transient());
    assert!(err.to_string().contains("tokens.consume"), "{err}");
    let err = stores
        .outbox
        .claim(at(T0), 1, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.operation(), "outbox.claim");
    let err = stores.migrate().await.unwrap_err();
    assert_eq!(err.operation(), "migrate");
}

#[tokio::test]
async fn database_gone_mid_flow_is_a_clear_store_error() {
    let Some(db) = db("database_gone_mid_flow_is_a_clear_store_error").await else {
        return;
    };
    let (_, rec) = record("y", T0, 600);
    common::insert(db.stores.tokens.as_ref(), &rec).await;
    // The pool goes away between issuing and using the link.
    db.pool.close().await;
    let err = db.stores.tokens.consume(&rec.hash, at(T0 + 1)).await.unwrap_err();
    assert_eq!(err.operation(), "tokens.consume");
    assert!(err.to_string().contains("backend unavailable"), "{err}");
    let err = db.stores.events.recent(1).await.unwrap_err();
    assert_eq!(err.operation(), "events.recent");
    // Clean up through a new pool.
    let pool = common::pool(&db.url, 1).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA {} CASCADE",
        db.schema.quoted()
    )))
    .execute(&pool)
    .await
    .unwrap();
}
