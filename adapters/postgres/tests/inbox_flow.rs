//! The request inbox on PostgreSQL: workers in several "processes" (here,
//! services sharing the stores) process every accepted request exactly
//! once, also when one dies half-way; a flood from one client keeps at most
//! the limit's worth of rate rows.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{at, db_with};
use resetkit::flow::RequestProcessing;
use resetkit::policy::Limit;
use resetkit::prelude::*;
use resetkit::token::RawToken;

fn service(
    db: &common::TestDb,
    mailer: &CapturingMailer,
    clock: &ManualClock,
    limits: RateLimits,
) -> ResetService {
    ResetService::builder()
        .request_processing(RequestProcessing::External)
        .base_url("https://app.example.com")
        .accounts(db.stores.own_accounts().unwrap())
        .tokens(db.stores.tokens.clone())
        .events(db.stores.events.clone())
        .outbox(db.stores.outbox.clone())
        .inbox(db.stores.inbox.clone())
        .mailer(Arc::new(mailer.clone()))
        .sender(Arc::new(FixedSender::new(
            Mailbox::address_only("noreply@example.com").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .clock(Arc::new(clock.clone()))
        .rate_limits(limits)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_in_several_processes_send_each_accepted_request_once() {
    const N: usize = 40;
    let Some(db) = db_with("workers_in_several_processes_send_each_accepted_request_once", 12).await else {
        return;
    };
    let accounts = db.stores.own_accounts().unwrap();
    for i in 0..N {
        accounts
            .upsert(&Account::new(
                format!("{i}"),
                format!("user{i}"),
                format!("user{i}@example.com"),
            ))
            .await
            .unwrap();
    }
    let mailer = CapturingMailer::default();
    let clock = ManualClock::new(at(common::T0));
    let web = service(&db, &mailer, &clock, RateLimits::unlimited());
    for i in 0..N {
        web.request(
            &format!("user{i}@example.com"),
            &RequestContext::from_client("192.0.2.9"),
        )
        .await
        .unwrap();
    }
    assert_eq!(db.stores.inbox.len().await.unwrap(), N);

    // A worker process claims a batch and dies before processing it.
    let lease_holder = db
        .stores
        .inbox
        .claim(clock.now(), 7, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(lease_holder.len(), 7);
    // Three other worker processes share the rest, concurrently.
    let workers: Vec<ResetService> = (0..3)
        .map(|_| service(&db, &mailer, &clock, RateLimits::unlimited()))
        .collect();
    let mut tasks = Vec::new();
    for worker in &workers {
        let worker = worker.request_worker().with_batch(2);
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            loop {
                let report = worker.run_once().await.unwrap();
                if report.processed == 0 {
                    return done;
                }
                done += report.processed;
            }
        }));
    }
    let mut processed = 0;
    for task in tasks {
        processed += task.await.unwrap();
    }
    assert_eq!(processed, N - 7);
    assert_eq!(
        db.stores.inbox.len().await.unwrap(),
        7,
        "the dead worker's batch waits for its lease"
    );
    // The lease ends; a restarted worker takes the dead one's requests.
    clock.advance(Duration::from_secs(301));
    let report = workers[0].request_worker().run_once().await.unwrap();
    assert_eq!(report.processed, 7);
    assert_eq!(
        db.stores.inbox.len().await.unwrap(),
        0,
        "processed requests are deleted"
    );

    let delivery = workers[1].delivery_worker().unwrap();
    while delivery.run_once().await.unwrap().sent > 0 {}
    let mut per_recipient: BTreeMap<String, usize> = BTreeMap::new();
    for mail in mailer.sent() {
        *per_recipient.entry(mail.to.address().to_owned()).or_default() += 1;
        let text = mail.expose_text();
        let token = text
            .split("token=")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .unwrap();
        assert!(RawToken::parse(token).is_ok());
        web.inspect(token).await.unwrap();
    }
    assert_eq!(per_recipient.len(), N);
    assert!(per_recipient.values().all(|&n| n == 1), "{per_recipient:?}");
    db.drop().await;
}

#[tokio::test]
async fn a_flood_from_one_client_keeps_at_most_the_limit_of_rate_rows() {
    let Some(db) = db_with("a_flood_from_one_client_keeps_at_most_the_limit_of_rate_rows", 4).await else {
        return;
    };
    let mailer = CapturingMailer::default();
    let clock = ManualClock::new(at(common::T0));
    let limits = RateLimits {
        per_account: None,
        per_client: Some(Limit {
            max: 5,
            window: Duration::from_secs(60),
        }),
    };
    let web = service(&db, &mailer, &clock, limits);
    let ctx = RequestContext::from_client("203.0.113.77");
    for _ in 0..300 {
        web.request("nobody@example.com", &ctx).await.unwrap();
        clock.advance(Duration::from_millis(100));
    }
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}.rate_hits",
        db.schema.as_str()
    )))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows, 5, "refused hits are not stored");
    // 30 s of flood is one window: only the admitted five were recorded.
    assert_eq!(db.stores.inbox.len().await.unwrap(), 5);
    // Finding 3 of the fourth review: every refused request wrote an event
    // row (99,220 rows for 99,218 requests). Now one per window: the first
    // refusal at once, the rest as one count when the window has passed.
    let limited = || async {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {}.events WHERE kind = 'rate_limited'",
            db.schema.as_str()
        )))
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    assert_eq!(
        limited().await,
        1,
        "one event for the window's 295 refusals so far"
    );
    web.flush_throttled().await.unwrap();
    assert_eq!(limited().await, 1, "the window is still open");
    clock.advance(Duration::from_secs(61));
    web.flush_throttled().await.unwrap();
    assert_eq!(limited().await, 2);
    let counts: Vec<u64> = db
        .stores
        .events
        .recent(100)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::RateLimited { count, .. } => Some(count),
            _ => None,
        })
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 295, "{counts:?}");
    db.drop().await;
}
