//! An existing database upgrades in place to the store contract v2
//! (migration 3): tokens and outbox rows written by the previous version
//! keep working, and the new steps work next to them.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::{T0, at};
use resetkit::account::AccountId;
use resetkit::store::{ConsumeOutcome, DenyOutcome, FinishOutcome, Outbox, TokenStore};
use resetkit::token::{RawToken, RejectReason, TokenState};
use resetkit_postgres::{Ident, MIGRATIONS, PgStores, migrate, migrate_up_to};
use sqlx::AssertSqlSafe;

#[tokio::test]
async fn a_version_2_database_upgrades_in_place() {
    let Some(url) = common::database_url("a_version_2_database_upgrades_in_place") else {
        return;
    };
    let pool = common::pool(&url, 4).await;
    let schema = Ident::new(&common::random_schema()).unwrap();
    assert_eq!(migrate_up_to(&pool, &schema, 2).await.unwrap(), vec![1, 2]);

    // Rows as the previous version wrote them: an active token, a used one,
    // and a pending outbox message (no deny secret, no token hashes).
    let live = RawToken::generate().unwrap();
    let used = RawToken::generate().unwrap();
    let s = schema.quoted();
    let seed = format!(
        "INSERT INTO {s}.tokens (hash, account_id, sent_to, password_stamp, issued_at, expires_at, state, state_at) VALUES \
           ('\\x{live}', 'old', 'old@example.com', 'none', to_timestamp({T0}), to_timestamp({T0} + 1800), 'active', NULL), \
           ('\\x{used}', 'old', 'old@example.com', 'none', to_timestamp({T0}), to_timestamp({T0} + 1800), 'used', to_timestamp({T0} + 5)); \
         INSERT INTO {s}.outbox (message_id, account_id, kind, from_address, to_address, subject, body_text, body_html, next_attempt_at) \
           VALUES ('<old@example.com>', 'old', 'reset', 'noreply@example.com', 'old@example.com', 'Reset', 'text', '<p>html</p>', to_timestamp({T0}));",
        live = live.hash().to_hex(),
        used = used.hash().to_hex(),
    );
    sqlx::raw_sql(AssertSqlSafe(seed)).execute(&pool).await.unwrap();

    // The upgrade applies every later migration (3, 4, 5, ...), once.
    let later: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).filter(|v| *v > 2).collect();
    assert!(later.starts_with(&[3, 4, 5]), "{later:?}");
    assert_eq!(migrate(&pool, &schema).await.unwrap(), later);
    assert!(migrate(&pool, &schema).await.unwrap().is_empty());

    let stores = PgStores::new(pool.clone(), schema.as_str())
        .unwrap()
        .with_queue_clock(resetkit_postgres::QueueClock::Caller);
    let tokens = stores.tokens.clone();
    let old = tokens.find(&live.hash()).await.unwrap().unwrap();
    assert_eq!(old.state, TokenState::Active);
    assert_eq!(old.deny_hash, None, "old tokens have no deny secret");
    assert!(matches!(
        tokens.find(&used.hash()).await.unwrap().unwrap().state,
        TokenState::Used { .. }
    ));
    // An old deny link (it carried the reset token) is dead, not a reset.
    assert_eq!(
        tokens.deny(&live.hash(), at(T0 + 10)).await.unwrap(),
        DenyOutcome::Rejected(RejectReason::Unknown)
    );
    // The old link still resets, through the new states.
    let ConsumeOutcome::Consumed(spent) = tokens.consume(&live.hash(), at(T0 + 10)).await.unwrap() else {
        panic!("the old active token can be consumed")
    };
    assert_eq!(spent.state, TokenState::Spending { at: at(T0 + 10) });
    // A new token issued next to the old ones, newest wins.
    let (_, fresh) = common::record("old", T0 + 20, 1800);
    common::insert(tokens.as_ref(), &fresh).await;
    assert_eq!(
        tokens.finish(&live.hash(), at(T0 + 30)).await.unwrap(),
        FinishOutcome::Finished { revoked: 1 }
    );

    // The old outbox message is claimable, carries no token hashes (so it is
    // sent as before), and the new `dropped` state is accepted.
    let outbox = stores.outbox.clone();
    let claimed = outbox
        .claim(at(T0 + 60), 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].tokens.is_empty());
    outbox
        .mark_dropped("<old@example.com>", claimed[0].attempts, "not sent: test")
        .await
        .unwrap();
    assert_eq!(outbox.counts().await.unwrap().dropped, 1);
    assert_eq!(
        tokens
            .revoke_for_account(
                &AccountId::from("old"),
                resetkit::token::RevokeReason::UserDenied,
                at(T0 + 90)
            )
            .await
            .unwrap(),
        0,
        "nothing live is left"
    );

    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {s} CASCADE")))
        .execute(&pool)
        .await
        .unwrap();
}
