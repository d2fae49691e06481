//! Prints how fast the operator console's timeline reads with 1,000,000
//! events in the table: the first page (50 events, newest first) of an
//! account with 100 events and of one with 100,000, a page deep into the
//! latter, against reading the whole trail with `for_account`, and the
//! query plan of the page query.
//!
//! ```text
//! eval "$(scripts/start-postgres.sh)"
//! cargo run --release -p resetkit-postgres --example timeline_figures
//! ```
//!
//! The events are inserted with one `INSERT ... SELECT generate_series`
//! into a throwaway schema (dropped at the end): 900,000 spread over 9,000
//! accounts (100 each, interleaved as real traffic would be) and 100,000 for
//! one busy account. Latencies are medians of 200 calls on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use resetkit::account::AccountId;
use resetkit::store::{EventCursor, Timeline};
use resetkit_postgres::PgStores;
use sqlx::AssertSqlSafe;

const RUNS: usize = 200;
const PAGE: usize = 50;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn time_page(log: &dyn Timeline, account: &AccountId, before: Option<EventCursor>) -> Duration {
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let page = log.account_page(account, before, PAGE).await.unwrap();
        samples.push(start.elapsed());
        assert_eq!(page.events.len(), PAGE);
    }
    median(samples)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL is not set: run `eval \"$(scripts/start-postgres.sh)\"` first");
        std::process::exit(2);
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("connect");
    let schema = format!("timeline_figures_{}", std::process::id());
    let stores = PgStores::new(pool.clone(), &schema).unwrap();
    stores.migrate().await.unwrap();
    let q = |sql: &str| sql.replace("__S__", &format!("\"{schema}\""));

    let start = Instant::now();
    sqlx::raw_sql(AssertSqlSafe(q(
        "INSERT INTO __S__.events (at, account_id, kind, detail) \
         SELECT now() - make_interval(secs => 1000000 - g), \
                CASE WHEN g % 10 = 0 THEN 'acct-busy' ELSE 'acct-' || (g % 10000) END, \
                'token_issued', \
                jsonb_build_object('expires_at_unix_nanos', 1700000000000000000::bigint + g) \
         FROM generate_series(1, 1000000) AS g; \
         ANALYZE __S__.events;",
    )))
    .execute(&pool)
    .await
    .unwrap();
    let insert = start.elapsed();
    let counts: (i64, i64, i64) = sqlx::query_as(AssertSqlSafe(q(
        "SELECT count(*), count(*) FILTER (WHERE account_id = 'acct-busy'), \
         count(*) FILTER (WHERE account_id = 'acct-7') FROM __S__.events",
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    println!(
        "events: {} in the table ({} for acct-busy, {} for acct-7), inserted in {:.1} s",
        counts.0,
        counts.1,
        counts.2,
        insert.as_secs_f64()
    );

    let log = stores.events.as_ref();
    let quiet = AccountId::from("acct-7");
    let busy = AccountId::from("acct-busy");
    let first_quiet = time_page(log, &quiet, None).await;
    let first_busy = time_page(log, &busy, None).await;
    let middle = log.account_page(&busy, None, 50_000).await.unwrap().next;
    let deep_busy = time_page(log, &busy, middle).await;
    let mut whole = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let all = log.for_account(&busy).await.unwrap();
        whole.push(start.elapsed());
        assert_eq!(all.len(), 100_000);
    }
    let whole = median(whole);
    println!("first page of {PAGE}, newest first (median of {RUNS}):");
    println!(
        "  account with 100 events:      {:>8.3} ms",
        first_quiet.as_secs_f64() * 1e3
    );
    println!(
        "  account with 100,000 events:  {:>8.3} ms",
        first_busy.as_secs_f64() * 1e3
    );
    println!(
        "  the latter, 50,000 events in: {:>8.3} ms",
        deep_busy.as_secs_f64() * 1e3
    );
    println!(
        "  (reading that account's whole trail with for_account: {:.1} ms, {:.0}x the first page)",
        whole.as_secs_f64() * 1e3,
        whole.as_secs_f64() / first_busy.as_secs_f64()
    );

    let plan: Vec<(String,)> = sqlx::query_as(AssertSqlSafe(q(
        "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) SELECT id, at, account_id, kind, detail::text FROM __S__.events \
         WHERE account_id = 'acct-busy' AND id < 9223372036854775807 ORDER BY id DESC LIMIT 51",
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    println!("plan of the page query:");
    for (line,) in plan {
        println!("  {line}");
    }

    sqlx::raw_sql(AssertSqlSafe(q("DROP SCHEMA __S__ CASCADE")))
        .execute(&pool)
        .await
        .unwrap();
}
