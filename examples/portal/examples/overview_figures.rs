//! Prints how fast the operator console's overview renders with 1,000,000
//! events in PostgreSQL, all of them in the last 24 hours (the worst case:
//! every event falls in the overview's window).
//!
//! ```text
//! eval "$(scripts/start-postgres.sh)"
//! cargo run --release -p resetkit-portal --example overview_figures [EVENTS]
//! ```
//!
//! The events go through the real write path, `PgEventLog::record_all`, in
//! batches of 1,000 (so the per-minute rollups are what production writes),
//! spread evenly over the last 24 hours, in the mix of a busy site: a
//! request, its token, the queued email, the server's reply and the
//! delivery, an opened link and a completed reset, plus unknown identifiers,
//! throttled requests and refused senders. Then, medians of 200 calls on
//! loopback: `Overview::load` (the store reads), the whole page (`GET
//! /admin` through the console's router over HTTP), and for comparison the
//! same counts by scanning the events of the last 24 hours. A throwaway
//! schema is dropped at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use resetkit::ResetService;
use resetkit::account::AccountId;
use resetkit::activity::{ActivityLog, Bucket, Overview};
use resetkit::event::{Event, EventKind, IgnoreReason, RateScope};
use resetkit::hasher::Argon2Hasher;
use resetkit::mail::{Mailbox, SmtpReply};
use resetkit::memory::CapturingMailer;
use resetkit::sender::FixedSender;
use resetkit::store::EventLog;
use resetkit_axum::admin::{AdminConsole, guard_fn};
use resetkit_postgres::PgStores;
use sqlx::AssertSqlSafe;

const RUNS: usize = 200;
const BATCH: usize = 1000;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn chrono_at(t: SystemTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::from(t)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `i`-th event of the mix, at `at`.
fn event(i: usize, at: SystemTime) -> Event {
    let account = Some(AccountId::from(format!("acct-{}", i / 10 % 50_000)));
    let message_id = format!("<{}.figures@example.com>", i / 10);
    let kind = match i % 10 {
        0 => EventKind::ResetRequested {
            via: "email",
            client: Some("203.0.113.9".into()),
        },
        1 => EventKind::TokenIssued {
            expires_at: at + Duration::from_secs(1800),
        },
        2 => EventKind::EmailQueued {
            message_id,
            email: resetkit::mail::EmailKind::Reset,
            from: "noreply@example.com".into(),
            to: "user@example.com".into(),
            sender_strategy: "fixed".into(),
            sender_fallbacks: Vec::new(),
        },
        3 => EventKind::ServerReplied {
            message_id,
            accepted: true,
            reply: SmtpReply::new(250, Some("2.0.0"), "Ok: queued"),
        },
        4 => EventKind::EmailSent {
            message_id,
            from: "noreply@example.com".into(),
            to: "user@example.com".into(),
        },
        5 => EventKind::LinkOpened {
            expires_at: at + Duration::from_secs(1800),
        },
        6 => EventKind::ResetCompleted,
        7 => EventKind::RequestIgnored {
            reason: IgnoreReason::UnknownIdentifier,
            fingerprint: "0".repeat(64),
        },
        8 => EventKind::RateLimited {
            scope: RateScope::Client,
            client: Some("203.0.113.9".into()),
            count: 1,
        },
        _ => EventKind::DeliveryFailed {
            message_id,
            reason: "sender <bulk@example.com> rejected by the mail server (server said: 550 5.7.1 no)"
                .into(),
            permanent: true,
            will_retry: false,
            from: "bulk@example.com".into(),
            class: "sender_rejected",
        },
    };
    Event::new(at, account, kind)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL is not set: run `eval \"$(scripts/start-postgres.sh)\"` first");
        std::process::exit(2);
    };
    let total: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |n| n.parse().expect("EVENTS is a number"));
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .expect("connect");
    let schema = format!("overview_figures_{}", std::process::id());
    let stores = PgStores::new(pool.clone(), &schema).unwrap();
    stores.migrate().await.unwrap();
    let q = |sql: &str| sql.replace("__S__", &format!("\"{schema}\""));

    // Spread evenly over the last 24 hours, oldest first.
    let now = SystemTime::now();
    let start_at = now - Duration::from_secs(24 * 3600 - 60);
    let step = Duration::from_secs(24 * 3600 - 120).as_nanos() / total.max(1) as u128;
    let started = Instant::now();
    let mut batch_times = Vec::new();
    for first in (0..total).step_by(BATCH) {
        let events: Vec<Event> = (first..(first + BATCH).min(total))
            .map(|i| event(i, start_at + Duration::from_nanos((step * i as u128) as u64)))
            .collect();
        let t = Instant::now();
        stores.events.record_all(events).await.unwrap();
        batch_times.push(t.elapsed());
    }
    let write = started.elapsed();
    sqlx::raw_sql(AssertSqlSafe(q(
        "ANALYZE __S__.events; ANALYZE __S__.activity_minutes; ANALYZE __S__.activity_hours",
    )))
    .execute(&pool)
    .await
    .unwrap();
    let (events, rollup_rows): (i64, i64) =
        sqlx::query_as(AssertSqlSafe(q("SELECT (SELECT count(*) FROM __S__.events), \
         (SELECT count(*) FROM __S__.activity_minutes) + (SELECT count(*) FROM __S__.activity_hours)")))
        .fetch_one(&pool)
        .await
        .unwrap();
    println!(
        "events: {events} in the last 24 h, written through record_all in {:.1} s \
         ({:.0} events/s; batch of {BATCH}: median {:.1} ms); rollup rows: {rollup_rows}",
        write.as_secs_f64(),
        events as f64 / write.as_secs_f64(),
        ms(median(batch_times)),
    );

    // What the rollups cost a flow step's write: the events of a request
    // (requested, token issued, email queued) through record_all, against
    // the same rows inserted by the statement record_all used before the
    // rollups (events only).
    let step = |i: usize| -> Vec<Event> {
        [0, 1, 2]
            .iter()
            .map(|k| event(i * 10 + k, SystemTime::now()))
            .collect()
    };
    let mut with_rollups = Vec::with_capacity(RUNS * 2);
    let mut events_only = Vec::with_capacity(RUNS * 2);
    let plain = q("INSERT INTO __S__.events (at, account_id, kind, detail) \
         SELECT at, account_id, kind, detail::jsonb \
         FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[]) \
           WITH ORDINALITY AS e(at, account_id, kind, detail, n) ORDER BY n");
    for i in 0..RUNS * 2 {
        let t = Instant::now();
        stores.events.record_all(step(i)).await.unwrap();
        with_rollups.push(t.elapsed());
        let rows = step(i);
        let t = Instant::now();
        sqlx::query(AssertSqlSafe(plain.clone()))
            .bind(rows.iter().map(|e| chrono_at(e.at)).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|e| e.account.as_ref().map(|a| a.0.clone()))
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|e| e.kind.name().to_owned()).collect::<Vec<_>>())
            .bind(rows.iter().map(|_| "{}".to_owned()).collect::<Vec<_>>())
            .execute(&pool)
            .await
            .unwrap();
        events_only.push(t.elapsed());
    }
    let (with_rollups, events_only) = (median(with_rollups), median(events_only));
    println!(
        "a request's 3 events: record_all with the rollups {:.3} ms, the events alone {:.3} ms ({:.2}x)",
        ms(with_rollups),
        ms(events_only),
        with_rollups.as_secs_f64() / events_only.as_secs_f64()
    );

    // The store reads of the overview.
    let mut samples = Vec::with_capacity(RUNS);
    let mut overview = None;
    for _ in 0..RUNS {
        let t = Instant::now();
        let o = Overview::load(
            stores.events.as_ref(),
            Some(stores.outbox.as_ref()),
            SystemTime::now(),
        )
        .await
        .unwrap();
        samples.push(t.elapsed());
        overview = Some(o);
    }
    let load = median(samples);
    let overview = overview.unwrap();
    println!(
        "Overview::load (counts of the hour and the day, 24 hourly bars, senders, queue): median {:.2} ms",
        ms(load)
    );
    println!(
        "  it counted: {} requests and {} delivered in 24 h, {} refused; {} senders; {} alert(s)",
        overview.last_day.get(resetkit::activity::Activity::Requested),
        overview.last_day.get(resetkit::activity::Activity::Delivered),
        overview.last_day.refused(),
        overview.senders.len(),
        overview.alerts.len()
    );

    // Its parts.
    let now = SystemTime::now();
    let part = |f: &'static str| f;
    let mut parts: Vec<(&str, Duration)> = Vec::new();
    for (name, bucket, from) in [
        (
            part("activity(Minute), the last hour"),
            Bucket::Minute,
            now - Duration::from_secs(3600),
        ),
        (
            part("activity(Hour), the last 24 hours"),
            Bucket::Hour,
            now - Duration::from_secs(24 * 3600),
        ),
    ] {
        let mut samples = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let t = Instant::now();
            stores.events.activity(bucket, from, now).await.unwrap();
            samples.push(t.elapsed());
        }
        parts.push((name, median(samples)));
    }
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        let results = stores
            .events
            .deliveries(
                now - Duration::from_secs(24 * 3600),
                resetkit::activity::DELIVERY_RESULTS_READ,
            )
            .await
            .unwrap();
        samples.push(t.elapsed());
        assert_eq!(results.len(), resetkit::activity::DELIVERY_RESULTS_READ);
    }
    parts.push(("deliveries(1000), the senders' results", median(samples)));
    for (name, took) in parts {
        println!("  {name}: median {:.2} ms", ms(took));
    }

    // The whole page over HTTP, through the console's router.
    let service = ResetService::builder()
        .base_url("https://app.example.com")
        .accounts(stores.own_accounts().unwrap())
        .tokens(stores.tokens.clone())
        .events(stores.events.clone())
        .outbox(stores.outbox.clone())
        .retention_stores(stores.retention_stores())
        .mailer(Arc::new(CapturingMailer::default()))
        .sender(Arc::new(FixedSender::new(
            Mailbox::address_only("noreply@example.com").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .build()
        .unwrap();
    let pages = resetkit_axum::ResetPages::builder(service).build().unwrap();
    let guard = guard_fn(|parts| {
        parts
            .headers
            .get("x-operator")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let console = AdminConsole::builder(&pages, Arc::new(guard), stores.console_stores())
        .overview(stores.events.clone(), Some(stores.outbox.clone()))
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, console.router()).await.unwrap();
    });
    let client = reqwest::Client::new();
    let mut samples = Vec::with_capacity(RUNS);
    let mut size = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let page = client
            .get(format!("http://{addr}/admin"))
            .header("x-operator", "figures")
            .send()
            .await
            .unwrap();
        assert!(page.status().is_success());
        size = page.text().await.unwrap().len();
        samples.push(t.elapsed());
    }
    println!(
        "GET /admin (the overview page, rendered and sent over loopback HTTP): median {:.2} ms, {size} bytes",
        ms(median(samples))
    );

    // For comparison: the same day's counts by reading the events.
    let mut samples = Vec::with_capacity(20);
    for _ in 0..20 {
        let t = Instant::now();
        let _: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(q(
            "SELECT kind, count(*) FROM __S__.events WHERE at > now() - interval '24 hours' GROUP BY kind",
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        samples.push(t.elapsed());
    }
    let scan = median(samples);
    println!(
        "  (counting the day by reading the events instead: median {:.1} ms, {:.0}x Overview::load)",
        ms(scan),
        scan.as_secs_f64() / load.as_secs_f64()
    );

    let plan: Vec<(String,)> = sqlx::query_as(AssertSqlSafe(q(
        "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) SELECT start, activity, sum(n)::bigint FROM __S__.activity_hours \
         WHERE start >= now() - interval '24 hours' AND start < now() + interval '1 hour' GROUP BY start, activity",
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    println!("plan of the hourly counts query:");
    for (line,) in plan {
        println!("  {line}");
    }

    sqlx::raw_sql(AssertSqlSafe(q("DROP SCHEMA __S__ CASCADE")))
        .execute(&pool)
        .await
        .unwrap();
}
