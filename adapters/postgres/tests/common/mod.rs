//! Test database helper: a fresh schema per test on `DATABASE_URL`.
//!
//! Without `DATABASE_URL` a test prints a loud skip message and returns;
//! with `RESETKIT_REQUIRE_DB=1` it fails instead.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use resetkit::account::{AccountId, PasswordStamp};
use resetkit::token::{RawToken, TokenRecord, TokenState};
use resetkit_postgres::{Ident, PgStores};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub struct TestDb {
    pub url: String,
    pub pool: PgPool,
    pub schema: Ident,
    pub stores: PgStores,
}

/// Connects, creates a random schema and migrates it; `None` means skip.
pub async fn db(test: &str) -> Option<TestDb> {
    db_with(test, 10).await
}

pub async fn db_with(test: &str, connections: u32) -> Option<TestDb> {
    let url = database_url(test)?;
    let pool = pool(&url, connections).await;
    let schema = Ident::new(&random_schema()).unwrap();
    let stores = PgStores::new(pool.clone(), schema.as_str())
        .unwrap()
        .with_queue_clock(resetkit_postgres::QueueClock::Caller);
    stores.migrate().await.unwrap();
    Some(TestDb {
        url,
        pool,
        schema,
        stores,
    })
}

pub fn database_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("RESETKIT_REQUIRE_DB").is_ok_and(|v| v == "1") => {
            panic!("{test}: DATABASE_URL is not set but RESETKIT_REQUIRE_DB=1 requires a database")
        }
        _ => {
            eprintln!(
                "\n!!!!! SKIPPED {test}: DATABASE_URL is not set. Run `eval \"$(scripts/start-postgres.sh)\"` \
                 first (set RESETKIT_REQUIRE_DB=1 to make this a failure) !!!!!\n"
            );
            None
        }
    }
}

pub async fn pool(url: &str, connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(20))
        .connect(url)
        .await
        .unwrap()
}

pub fn random_schema() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "rk_test_{:x}_{}_{}",
        nanos & 0xffff_ffff_ffff,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestDb {
    /// Drops the schema.
    pub async fn drop(self) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema.quoted()
        )))
        .execute(&self.pool)
        .await
        .unwrap();
        self.pool.close().await;
    }
}

/// A second-precision time (timestamptz keeps microseconds).
pub fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

pub const T0: u64 = 1_800_000_000;

pub fn record(account: &str, issued: u64, lifetime: u64) -> (RawToken, TokenRecord) {
    let raw = RawToken::generate().unwrap();
    let rec = TokenRecord {
        hash: raw.hash(),
        account: AccountId::from(account),
        sent_to: format!("{account}@example.com"),
        password_stamp: PasswordStamp::of(None),
        issued_at: at(issued),
        expires_at: at(issued + lifetime),
        state: TokenState::Active,
        deny_hash: Some(RawToken::generate().unwrap().hash()),
    };
    (raw, rec)
}

/// Stores `rec` as a plain insert (no limit, no newest-wins).
pub async fn insert(store: &dyn resetkit::store::TokenStore, rec: &TokenRecord) {
    let outcome = store
        .issue(resetkit::store::TokenIssue {
            record: rec.clone(),
            limit: None,
            supersede: false,
        })
        .await
        .unwrap();
    assert_eq!(outcome, resetkit::store::IssueOutcome::Issued { superseded: 0 });
}
