//! Prints figures for the PostgreSQL stores: round trips per `request` and
//! per `complete`, their median latency on loopback, and `request` latency
//! with 1,000 vs 1,000,000 accounts and tokens.
//!
//! ```text
//! eval "$(scripts/start-postgres.sh)"
//! cargo run --release -p resetkit-postgres --example pg_figures
//! ```
//!
//! Round trips are counted by a wrapper around each store: every store call
//! is one SQL statement (one round trip). Latencies are medians of 300
//! interleaved rounds (single-row INSERT, known request, unknown request,
//! complete) and are also given as a multiple of the INSERT. Hashing uses the fast test parameters so the figures show
//! the database's share; real argon2id adds ~20 ms to `complete`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use resetkit::account::{Account, AccountDirectory, AccountId};
use resetkit::error::StoreError;
use resetkit::event::Event;
use resetkit::hasher::PasswordHash;
use resetkit::policy::{Limit, RateLimits};
use resetkit::prelude::*;
use resetkit::store::{
    ConsumeOutcome, DenyOutcome, FinishOutcome, IssueOutcome, RateKey, RateLimiter, TokenIssue,
};
use resetkit::token::{RevokeReason, TokenHash, TokenRecord};
use resetkit_postgres::PgStores;
use secrecy::SecretString;
use sqlx::AssertSqlSafe;

static CALLS: AtomicU64 = AtomicU64::new(0);

fn tick() {
    CALLS.fetch_add(1, Ordering::Relaxed);
}

struct Counted<T>(Arc<T>);

#[async_trait]
impl<T: TokenStore> TokenStore for Counted<T> {
    async fn issue(&self, i: TokenIssue) -> Result<IssueOutcome, StoreError> {
        tick();
        self.0.issue(i).await
    }
    async fn find(&self, h: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        tick();
        self.0.find(h).await
    }
    async fn find_by_deny(&self, h: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        tick();
        self.0.find_by_deny(h).await
    }
    async fn consume(&self, h: &TokenHash, now: SystemTime) -> Result<ConsumeOutcome, StoreError> {
        tick();
        self.0.consume(h, now).await
    }
    async fn finish(&self, h: &TokenHash, now: SystemTime) -> Result<FinishOutcome, StoreError> {
        tick();
        self.0.finish(h, now).await
    }
    async fn release(&self, h: &TokenHash) -> Result<bool, StoreError> {
        tick();
        self.0.release(h).await
    }
    async fn revoke_for_account(
        &self,
        a: &AccountId,
        r: RevokeReason,
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        tick();
        self.0.revoke_for_account(a, r, now).await
    }
    async fn deny(&self, h: &TokenHash, now: SystemTime) -> Result<DenyOutcome, StoreError> {
        tick();
        self.0.deny(h, now).await
    }
    async fn restamp(
        &self,
        a: &AccountId,
        from: &resetkit::account::PasswordStamp,
        to: &resetkit::account::PasswordStamp,
    ) -> Result<usize, StoreError> {
        tick();
        self.0.restamp(a, from, to).await
    }
}

#[async_trait]
impl<T: RateLimiter> RateLimiter for Counted<T> {
    async fn admit(&self, k: &RateKey, now: SystemTime, w: Duration, max: u32) -> Result<bool, StoreError> {
        tick();
        self.0.admit(k, now, w, max).await
    }
}

#[async_trait]
impl<T: EventLog> EventLog for Counted<T> {
    async fn record(&self, e: Event) -> Result<(), StoreError> {
        tick();
        self.0.record(e).await
    }
    async fn record_all(&self, e: Vec<Event>) -> Result<(), StoreError> {
        tick();
        self.0.record_all(e).await
    }
}

#[async_trait]
impl<T: AccountDirectory> AccountDirectory for Counted<T> {
    async fn find_by_email(&self, e: &str) -> Result<Vec<Account>, StoreError> {
        tick();
        self.0.find_by_email(e).await
    }
    async fn find_by_username(&self, u: &str) -> Result<Option<Account>, StoreError> {
        tick();
        self.0.find_by_username(u).await
    }
    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        tick();
        self.0.find_by_id(id).await
    }
    async fn set_password_hash(&self, id: &AccountId, h: &PasswordHash) -> Result<(), StoreError> {
        tick();
        self.0.set_password_hash(id, h).await
    }
}

struct Setup {
    stores: PgStores,
    service: ResetService,
    mailer: CapturingMailer,
}

async fn setup(pool: &sqlx::PgPool, schema: &str, rows: u64) -> Setup {
    let stores = PgStores::new(pool.clone(), schema).unwrap();
    stores.migrate().await.unwrap();
    let s = stores.schema().quoted();
    let load = format!(
        "INSERT INTO {s}.accounts (id, username, email) \
           SELECT 'u' || i, 'user' || i, 'user' || i || '@example.com' FROM generate_series(1, {rows}) i; \
         INSERT INTO {s}.tokens (hash, account_id, sent_to, password_stamp, issued_at, expires_at) \
           SELECT sha256(('t' || i)::bytea), 'u' || i, 'user' || i || '@example.com', 'x', now(), \
                  now() + interval '30 minutes' FROM generate_series(1, {rows}) i; \
         ANALYZE {s}.accounts; ANALYZE {s}.tokens;"
    );
    let started = Instant::now();
    sqlx::raw_sql(AssertSqlSafe(load)).execute(pool).await.unwrap();
    eprintln!(
        "loaded {rows} accounts and tokens into {schema} in {:?}",
        started.elapsed()
    );
    let limit = Limit {
        max: 1_000_000,
        window: Duration::from_secs(900),
    };
    let mailer = CapturingMailer::default();
    let service = ResetService::builder()
        .request_processing(resetkit::flow::RequestProcessing::Immediate) // measure the work a request does, inline
        .base_url("https://app.example.com")
        .accounts(Arc::new(Counted(stores.own_accounts().unwrap())))
        .tokens(Arc::new(Counted(stores.tokens.clone())))
        .events(Arc::new(Counted(stores.events.clone())))
        .mailer(Arc::new(mailer.clone()))
        .sender(Arc::new(FixedSender::new(
            Mailbox::address_only("noreply@example.com").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .rate_limits(RateLimits {
            per_account: Some(limit),
            per_client: Some(limit),
        })
        .build()
        .unwrap();
    Setup {
        stores,
        service,
        mailer,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn token_of(mail: &OutgoingEmail) -> String {
    let link = mail.expose_text().lines().find(|l| l.contains("token=")).unwrap();
    link.split("token=").nth(1).unwrap().trim().to_owned()
}

/// Median `request` latency over `n` requests to distinct accounts among `rows`.
async fn request_latency(setup: &Setup, rows: u64, n: u64) -> Duration {
    let ctx = RequestContext::from_client("203.0.113.5");
    let mut times = Vec::new();
    for i in 0..n {
        let k = 1 + (i * 7919) % rows;
        let started = Instant::now();
        setup
            .service
            .request(&format!("user{k}@example.com"), &ctx)
            .await
            .unwrap();
        times.push(started.elapsed());
    }
    median(times)
}

/// One `INSERT` of a single row: the unit the flow's latencies are given in.
async fn baseline_insert(pool: &sqlx::PgPool, table: &str, i: u64) -> Duration {
    let started = Instant::now();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {table} (n, at) VALUES ($1, now())"
    )))
    .bind(i64::try_from(i).unwrap())
    .execute(pool)
    .await
    .unwrap();
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL is not set: run `eval \"$(scripts/start-postgres.sh)\"` first");
        std::process::exit(2);
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap();
    let tag = std::process::id();
    let small_name = format!("rk_figures_small_{tag}");
    let large_name = format!("rk_figures_large_{tag}");
    let small = setup(&pool, &small_name, 1_000).await;
    let baseline = format!("{}.baseline", small.stores.schema().quoted());
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE {baseline} (id bigserial PRIMARY KEY, n bigint NOT NULL, at timestamptz NOT NULL)"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let ctx = RequestContext::from_client("203.0.113.5");
    let pw = SecretString::from("a sufficiently long passphrase");

    // Round trips of one known request, one unknown request, one complete.
    let before = CALLS.load(Ordering::Relaxed);
    small.service.request("user1@example.com", &ctx).await.unwrap();
    let request_trips = CALLS.load(Ordering::Relaxed) - before;
    let token = token_of(small.mailer.sent().last().unwrap());
    let before = CALLS.load(Ordering::Relaxed);
    small
        .service
        .complete(&token, pw.clone(), pw.clone())
        .await
        .unwrap();
    let complete_trips = CALLS.load(Ordering::Relaxed) - before;
    let before = CALLS.load(Ordering::Relaxed);
    small.service.request("nobody@example.com", &ctx).await.unwrap();
    let unknown_trips = CALLS.load(Ordering::Relaxed) - before;

    // Interleaved: each round times one single-row INSERT, one known
    // request, one unknown request and the complete of the known request's
    // link, so all four see the same machine load.
    let (mut insert_t, mut known_t, mut unknown_t, mut complete_t) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..300u64 {
        let k = 2 + i;
        insert_t.push(baseline_insert(&pool, &baseline, i).await);
        let started = Instant::now();
        small
            .service
            .request(&format!("user{k}@example.com"), &ctx)
            .await
            .unwrap();
        known_t.push(started.elapsed());
        let started = Instant::now();
        small
            .service
            .request(&format!("nobody{k}@example.com"), &ctx)
            .await
            .unwrap();
        unknown_t.push(started.elapsed());
        let token = token_of(small.mailer.sent().last().unwrap());
        let started = Instant::now();
        small
            .service
            .complete(&token, pw.clone(), pw.clone())
            .await
            .unwrap();
        complete_t.push(started.elapsed());
    }
    let (insert_m, known_m, unknown_m, complete_m) = (
        median(insert_t),
        median(known_t),
        median(unknown_t),
        median(complete_t),
    );
    let ratio = |d: Duration| d.as_secs_f64() / insert_m.as_secs_f64();

    let large = setup(&pool, &large_name, 1_000_000).await;
    request_latency(&large, 1_000_000, 50).await;
    let request_large = request_latency(&large, 1_000_000, 300).await;
    let request_small_again = request_latency(&small, 1_000, 300).await;

    println!("round trips per request (known account, inline delivery): {request_trips}");
    println!("round trips per request (unknown identifier):             {unknown_trips}");
    println!("round trips per complete (with the password-changed notice): {complete_trips}");
    println!("median single-row INSERT:          {insert_m:?}");
    println!(
        "median request, known account:     {known_m:?} ({:.1}x an INSERT)",
        ratio(known_m)
    );
    println!(
        "median request, unknown identifier: {unknown_m:?} ({:.1}x an INSERT)",
        ratio(unknown_m)
    );
    println!(
        "median complete (fast argon2):     {complete_m:?} ({:.1}x an INSERT)",
        ratio(complete_m)
    );
    println!("median request latency (1,000,000 accounts and tokens): {request_large:?}");
    println!(
        "ratio 1M / 1k: {:.2} (1k again after the large load: {request_small_again:?})",
        request_large.as_secs_f64() / request_small_again.as_secs_f64()
    );
    for stores in [&small.stores, &large.stores] {
        let drop = format!("DROP SCHEMA {} CASCADE", stores.schema().quoted());
        sqlx::raw_sql(AssertSqlSafe(drop)).execute(&pool).await.unwrap();
    }
}
