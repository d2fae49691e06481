//! Prints figures for the PostgreSQL stores: round trips per step of the
//! reset flow beside the issue's goals, their median latency on loopback,
//! and `request` latency with 1,000 vs 1,000,000 accounts and tokens.
//!
//! ```text
//! eval "$(scripts/start-postgres.sh)"
//! cargo run --release -p resetkit-postgres --example pg_figures
//! ```
//!
//! Round trips are the SQL statements the pool sends, counted from sqlx's
//! statement log (`sqlx::query`, one event per executed statement) by a
//! tracing subscriber of this program: every store call is one statement,
//! and one round trip once the connection's prepared statements are cached
//! (the first use of a statement adds a prepare, so each is used before
//! counting). sqlx's pool by default also pings a connection before
//! handing it out (`test_before_acquire`), one more round trip per store
//! call that is not a statement; it is turned off here for the latencies.
//! The flow is measured as it runs: `request` records the request in the
//! inbox, a request worker claims it (1 statement, counted apart) and
//! processes it, with outbox delivery (the PostgreSQL deployment's mode)
//! and, for comparison, inline delivery.
//! Latencies are medians of 300 interleaved rounds (single-row INSERT,
//! known request, unknown request, complete; each request processed before
//! the round goes on) and are also given as a multiple of the INSERT.
//! Hashing uses the fast test parameters so the figures show the database's
//! share; real argon2id adds ~20 ms to `complete`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use resetkit::policy::{Limit, RateLimits};
use resetkit::prelude::*;
use resetkit_postgres::PgStores;
use secrecy::SecretString;
use sqlx::AssertSqlSafe;

static STATEMENTS: AtomicU64 = AtomicU64::new(0);

fn statements() -> u64 {
    STATEMENTS.load(Ordering::SeqCst)
}

/// Counts sqlx's statement log events: one per statement executed.
struct StatementCounter;

impl tracing::Subscriber for StatementCounter {
    fn register_callsite(&self, m: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        if m.target() == "sqlx::query" {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        m.target() == "sqlx::query"
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        if e.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
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
        .accounts(stores.own_accounts().unwrap())
        .tokens(stores.tokens.clone())
        .events(stores.events.clone())
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

/// A service as a PostgreSQL deployment runs it: requests recorded in the
/// PostgreSQL inbox and processed by a request worker, mail delivered by
/// `delivery`.
fn flow_service(stores: &PgStores, delivery: DeliveryMode) -> (ResetService, CapturingMailer) {
    let limit = Limit {
        max: 1_000_000,
        window: Duration::from_secs(900),
    };
    let mailer = CapturingMailer::default();
    let service = ResetService::builder()
        .request_processing(resetkit::flow::RequestProcessing::External)
        .inbox(stores.inbox.clone())
        .outbox(stores.outbox.clone())
        .delivery(delivery)
        .base_url("https://app.example.com")
        .accounts(stores.own_accounts().unwrap())
        .tokens(stores.tokens.clone())
        .events(stores.events.clone())
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
    (service, mailer)
}

/// Statements of one `request` and of its processing (the claim apart).
async fn request_trips(service: &ResetService, identifier: &str) -> (u64, u64) {
    let ctx = RequestContext::from_client("203.0.113.5");
    let before = statements();
    service.request(identifier, &ctx).await.unwrap();
    let request = statements() - before;
    let before = statements();
    let report = service.request_worker().with_batch(1).run_once().await.unwrap();
    assert_eq!(report.processed, 1, "the request was processed");
    // One of them is the claim.
    (request, statements() - before - 1)
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
    tracing::subscriber::set_global_default(StatementCounter).unwrap();
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL is not set: run `eval \"$(scripts/start-postgres.sh)\"` first");
        std::process::exit(2);
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
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

    // Round trips: warm each statement's prepared form on the pool's
    // connections first (a first use adds a prepare), then count.
    let (outboxed, _) = flow_service(&small.stores, DeliveryMode::Outbox);
    let (inline, inline_mailer) = flow_service(&small.stores, DeliveryMode::Inline);
    let worker = outboxed.delivery_worker().unwrap();
    let mut figures = Vec::new();
    for round in 0..5 {
        let (_, known) = request_trips(&outboxed, &format!("user{}@example.com", 900 + round)).await;
        let (http, unknown) = request_trips(&outboxed, &format!("nobody{round}@example.com")).await;
        let (_, known_inline) = request_trips(&inline, &format!("user{}@example.com", 910 + round)).await;
        let (_, unknown_inline) = request_trips(&inline, &format!("nobody-inline{round}@example.com")).await;
        // Complete with the link of the inline mail (outbox delivery queues
        // the notice, inline sends it).
        let token = token_of(inline_mailer.sent().last().unwrap());
        let before = statements();
        outboxed.complete(&token, pw.clone(), pw.clone()).await.unwrap();
        let complete = statements() - before;
        let (_, known_again) = request_trips(&inline, &format!("user{}@example.com", 920 + round)).await;
        let _ = known_again;
        let token = token_of(inline_mailer.sent().last().unwrap());
        let before = statements();
        inline.complete(&token, pw.clone(), pw.clone()).await.unwrap();
        let complete_inline = statements() - before;
        while worker.run_once().await.unwrap().sent > 0 {}
        figures = vec![
            http,
            known,
            unknown,
            complete,
            known_inline,
            unknown_inline,
            complete_inline,
        ];
    }
    let [
        http_trips,
        known_trips,
        unknown_trips,
        complete_trips,
        known_inline,
        unknown_inline,
        complete_inline,
    ] = figures[..]
    else {
        unreachable!()
    };

    let verdict = |n: u64, goal: u64| if n <= goal { "met" } else { "NOT met" };
    println!("round trips (statements) per step, outbox delivery; goal beside each:");
    println!("  request (HTTP: per-client limit + inbox insert): {http_trips}");
    println!(
        "  processing a known request:   {known_trips}  (goal <= 2: {}; plus 1 claim per claimed batch)",
        verdict(known_trips, 2)
    );
    println!(
        "  processing an unknown one:    {unknown_trips}  (goal <= 1: {}; plus 1 claim)",
        verdict(unknown_trips, 1)
    );
    println!(
        "  complete, with the notice:    {complete_trips}  (goal <= 3: {}; the link read with its account, \
         consume with the account re-read, then password, finish, events and notice in one statement)",
        verdict(complete_trips, 3)
    );
    println!(
        "inline delivery (mail sent by the worker): known {known_inline}, unknown {unknown_inline}, complete {complete_inline}"
    );

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
