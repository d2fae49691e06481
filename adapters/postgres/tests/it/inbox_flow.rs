//! The request inbox on PostgreSQL: workers in several "processes" (here,
//! services sharing the stores) process every accepted request exactly
//! once, also when one dies half-way; a flood from one client keeps at most
//! the limit's worth of rate rows.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{at, db_with};
use resetkit::flow::RequestProcessing;
use resetkit::policy::Limit;
use resetkit::prelude::*;
use resetkit::template::TemplateStore as _;
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

/// Stores on the database's clock (the default) over the test's schema.
fn db_clock_stores(db: &common::TestDb) -> resetkit_postgres::PgStores {
    resetkit_postgres::PgStores::new(db.pool.clone(), db.schema.as_str()).unwrap()
}

fn inbox_request(id: &str, received_at: std::time::SystemTime) -> resetkit::store::InboxRequest {
    resetkit::store::InboxRequest {
        id: id.into(),
        identifier: resetkit::identifier::Identifier::Email("user0@example.com".into()),
        client: None,
        locale: None,
        received_at,
        attempts: 0,
    }
}

/// Issue 20: an instance whose clock is 10 minutes fast takes over no
/// lease early, and one 10 minutes slow writes no lease that has already
/// run out: due times and leases come from the database's `now()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_clock_is_ten_minutes_off_takes_over_no_lease_early() {
    let Some(db) = db_with(
        "an_instance_whose_clock_is_ten_minutes_off_takes_over_no_lease_early",
        4,
    )
    .await
    else {
        return;
    };
    let stores = db_clock_stores(&db);
    let (inbox, outbox) = (stores.inbox.clone(), stores.outbox.clone());
    let skew = Duration::from_secs(600);
    let lease = Duration::from_secs(15);
    let right = std::time::SystemTime::now();
    let (fast, slow) = (right + skew, right - skew);

    // Inbox: a worker with a right clock holds a request; the fast one
    // finds nothing to take.
    inbox.push(inbox_request("held", right)).await.unwrap();
    let held = inbox.claim(right, 10, lease).await.unwrap();
    assert_eq!(held.len(), 1);
    assert!(
        inbox.claim(fast, 10, lease).await.unwrap().is_empty(),
        "the fast instance took a live lease over"
    );
    // A slow instance's claim is as long as anyone's.
    inbox.push(inbox_request("slow", right)).await.unwrap();
    let by_slow = inbox.claim(slow, 10, lease).await.unwrap();
    assert_eq!(by_slow.len(), 1, "a request pushed now is due for everyone");
    assert!(inbox.claim(fast, 10, lease).await.unwrap().is_empty());
    assert!(inbox.renew("held", 1, fast, lease).await.unwrap());
    assert!(inbox.claim(fast, 10, lease).await.unwrap().is_empty());

    // Outbox: the same.
    let email = OutgoingEmail::new(
        "<skew.1@example.com>".into(),
        EmailKind::Reset,
        Mailbox::address_only("noreply@example.com").unwrap(),
        None,
        Mailbox::address_only("user0@example.com").unwrap(),
        resetkit::mail::MailContent {
            subject: "Reset".into(),
            text: "text".into(),
            html: "<p>html</p>".into(),
        },
    );
    outbox
        .enqueue(resetkit::store::OutboxEntry {
            email,
            account: None,
            attempts: 0,
            // A fast instance queues it: it is due now all the same.
            next_attempt_at: fast,
            tokens: Vec::new(),
            requested_at: None,
        })
        .await
        .unwrap();
    let claimed = outbox.claim(slow, 10, lease).await.unwrap();
    assert_eq!(
        claimed.len(),
        1,
        "queued by a fast instance, due at once for a slow one"
    );
    assert!(
        outbox.claim(fast, 10, lease).await.unwrap().is_empty(),
        "the fast instance took a live lease over"
    );
    db.drop().await;
}

/// Issue 21, finding 4: requests accepted before a crash are processed as
/// soon as the service starts again (no new request needed), and a request
/// the dead worker had claimed comes back when its short lease ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_accepted_requests_are_processed_without_a_new_request() {
    let Some(db) = db_with(
        "after_a_restart_accepted_requests_are_processed_without_a_new_request",
        8,
    )
    .await
    else {
        return;
    };
    let stores = db_clock_stores(&db);
    let accounts = stores.own_accounts().unwrap();
    const N: usize = 6;
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
    let now = std::time::SystemTime::now();
    for i in 0..N {
        let mut request = inbox_request(&format!("req-{i}"), now);
        request.identifier = resetkit::identifier::Identifier::Email(format!("user{i}@example.com"));
        stores.inbox.push(request).await.unwrap();
    }
    // The process that accepted them died while working on the first one.
    let dead = stores
        .inbox
        .claim(now, 1, resetkit::flow::REQUEST_LEASE)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);

    // The restarted instance: default in-process workers, and no request.
    let mailer = CapturingMailer::default();
    let started = std::time::Instant::now();
    let restarted = ResetService::builder()
        .base_url("https://app.example.com")
        .accounts(accounts.clone())
        .tokens(stores.tokens.clone())
        .events(stores.events.clone())
        .inbox(stores.inbox.clone())
        .mailer(Arc::new(mailer.clone()))
        .sender(Arc::new(FixedSender::new(
            Mailbox::address_only("noreply@example.com").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .rate_limits(RateLimits::unlimited())
        .build()
        .unwrap();
    let deadline = resetkit::flow::REQUEST_LEASE + Duration::from_secs(20);
    let mut first_batch = None;
    while started.elapsed() < deadline {
        let waiting = stores.inbox.len().await.unwrap();
        if waiting <= 1 && first_batch.is_none() {
            first_batch = Some(started.elapsed());
        }
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stores.inbox.len().await.unwrap(),
        0,
        "requests still waiting {:?} after the restart",
        started.elapsed()
    );
    let mut to: Vec<String> = mailer.sent().iter().map(|m| m.to.address().to_owned()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), N, "every accepted request got its mail");
    eprintln!(
        "restart: {} of {N} unclaimed requests processed after {:?}, the dead worker's claim after {:?}",
        N - 1,
        first_batch.unwrap_or_default(),
        started.elapsed()
    );
    drop(restarted);
    db.drop().await;
}

/// Issue 20: a template saved through one instance is in force on another
/// within about a second (the other follows the store's generation), with
/// no call between them and no cost per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_saved_on_one_instance_is_in_force_on_another_within_a_second_or_so() {
    let Some(db) = db_with("a_template_saved_on_one_instance_is_in_force_on_another", 6).await else {
        return;
    };
    let stores = db_clock_stores(&db);
    let clock = ManualClock::new(std::time::SystemTime::now());
    let mailer = CapturingMailer::default();
    let one = service(&db, &mailer, &clock, RateLimits::unlimited());
    let three = service(&db, &mailer, &clock, RateLimits::unlimited());
    let store: Arc<dyn resetkit::flow::TemplateChanges> = stores.templates.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let three = three.clone();
        let store = store.clone();
        tokio::spawn(async move {
            three
                .follow_templates(store, Duration::from_secs(1), async {
                    let _ = stopped.await;
                })
                .await;
        })
    };
    // What the operator console does on instance one: save, apply locally.
    let mut edited = one
        .templates()
        .locale("en")
        .unwrap()
        .get(EmailKind::Reset)
        .clone();
    edited.subject = "Saved on instance one".into();
    let saved_at = std::time::Instant::now();
    stores
        .templates
        .save("en", EmailKind::Reset, &edited, "operator", clock.now())
        .await
        .unwrap();
    one.reload_templates_from(stores.templates.as_ref())
        .await
        .unwrap();
    let in_force = loop {
        let subject = three
            .templates()
            .locale("en")
            .unwrap()
            .get(EmailKind::Reset)
            .subject
            .clone();
        if subject == "Saved on instance one" {
            break saved_at.elapsed();
        }
        assert!(
            saved_at.elapsed() < Duration::from_secs(5),
            "not in force after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The cost of one look (a primary-key read), for the README.
    let looks = 200;
    let timer = std::time::Instant::now();
    for _ in 0..looks {
        store.generation().await.unwrap();
    }
    eprintln!(
        "template saved on one instance in force on the other after {in_force:?}; one look {:?}",
        timer.elapsed() / looks
    );
    let _ = stop.send(());
    follower.await.unwrap();
    db.drop().await;
}
