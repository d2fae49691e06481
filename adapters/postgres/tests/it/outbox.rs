//! PgOutbox: leases, retries, and two workers draining 1,000 messages.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{T0, at, db_with};
use resetkit::clock::ManualClock;
use resetkit::delivery::DeliveryWorker;
use resetkit::mail::{DeliveryError, EmailKind, MailContent, Mailbox, OutgoingEmail};
use resetkit::memory::{CapturingMailer, InMemoryEventLog};
use resetkit::store::{Outbox, OutboxCounts, OutboxEntry, OutboxStatus};
use resetkit_postgres::PgOutbox;

fn entry(i: usize) -> OutboxEntry {
    let from = Mailbox::new(Some("Example Support"), "support@example.com").unwrap();
    let to = Mailbox::address_only(&format!("user{i}@example.com")).unwrap();
    OutboxEntry {
        email: OutgoingEmail::new(
            format!("<{i}.test@example.com>"),
            EmailKind::Reset,
            from.clone(),
            Some(from),
            to,
            MailContent {
                subject: "Reset your password".into(),
                text: format!("https://app.example.com/reset?token=T{i}"),
                html: format!("<a href=\"https://app.example.com/reset?token=T{i}\">reset</a>"),
            },
        ),
        account: Some(format!("{i}").as_str().into()),
        attempts: 0,
        next_attempt_at: at(T0),
        tokens: Vec::new(),
        requested_at: None,
    }
}

#[tokio::test]
async fn claim_lease_retry_give_up() {
    let Some(db) = db_with("claim_lease_retry_give_up", 4).await else {
        return;
    };
    let outbox = db.stores.outbox.clone();
    outbox.enqueue(entry(1)).await.unwrap();
    outbox.enqueue(entry(2)).await.unwrap();
    let lease = Duration::from_secs(60);
    assert!(
        outbox.claim(at(T0 - 1), 10, lease).await.unwrap().is_empty(),
        "not due yet"
    );
    let got = outbox.claim(at(T0), 1, lease).await.unwrap();
    assert_eq!(got.len(), 1);
    let first = &got[0].email;
    assert_eq!(first.message_id, "<1.test@example.com>");
    assert_eq!(first.expose_text(), "https://app.example.com/reset?token=T1");
    assert_eq!(
        first.reply_to.as_ref().and_then(Mailbox::name),
        Some("Example Support")
    );
    assert_eq!(got[0].attempts, 1);
    assert_eq!(
        outbox.status(&first.message_id).await.unwrap(),
        Some(OutboxStatus::Claimed)
    );
    // While leased nobody else gets it; the other message is still there.
    let second = outbox.claim(at(T0 + 30), 10, lease).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].email.message_id, "<2.test@example.com>");
    // An expired lease (dead worker) makes it claimable again.
    let again = outbox.claim(at(T0 + 61), 10, lease).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].email.message_id, "<1.test@example.com>");
    assert_eq!(again[0].attempts, 2);
    outbox
        .mark_sent("<2.test@example.com>", second[0].attempts, at(T0 + 62))
        .await
        .unwrap();

    let transient = DeliveryError::Transient {
        reason: "connection refused".into(),
        reply: None,
    };
    outbox
        .mark_failed(
            "<1.test@example.com>",
            again[0].attempts,
            &transient,
            at(T0 + 61),
            Some(Duration::from_secs(439)),
        )
        .await
        .unwrap();
    assert_eq!(
        outbox.status("<1.test@example.com>").await.unwrap(),
        Some(OutboxStatus::Pending)
    );
    assert!(outbox.claim(at(T0 + 499), 10, lease).await.unwrap().is_empty());
    let retried = outbox.claim(at(T0 + 500), 10, lease).await.unwrap();
    assert_eq!((retried.len(), retried[0].attempts), (1, 3));
    let last_error: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT last_error FROM {}.outbox WHERE message_id = '<1.test@example.com>'",
        db.schema.quoted()
    )))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(last_error.unwrap().contains("connection refused"));
    outbox
        .mark_failed(
            "<1.test@example.com>",
            retried[0].attempts,
            &transient,
            at(T0 + 500),
            None,
        )
        .await
        .unwrap();
    assert!(matches!(
        outbox.status("<1.test@example.com>").await.unwrap(),
        Some(OutboxStatus::Failed { reason }) if reason.contains("connection refused")
    ));
    assert_eq!(
        outbox.counts().await.unwrap(),
        OutboxCounts {
            waiting: 0,
            sent: 1,
            failed: 1,
            dropped: 0
        }
    );
    // Bodies with live links are blanked once done.
    let bodies: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}.outbox WHERE body_text <> '' OR body_html <> ''",
        db.schema.quoted()
    )))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(bodies, 0);
    assert!(outbox.mark_sent("<nope@x>", 1, at(T0)).await.is_err());
    assert_eq!(outbox.status("<nope@x>").await.unwrap(), None);
    db.drop().await;
}

#[tokio::test]
async fn two_workers_send_each_of_1000_messages_exactly_once() {
    let Some(db) = db_with("two_workers_send_each_of_1000_messages_exactly_once", 8).await else {
        return;
    };
    let outbox = db.stores.outbox.clone();
    // Enqueue concurrently, 100 at a time.
    for chunk in (0..1000).collect::<Vec<_>>().chunks(100) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let outbox = outbox.clone();
                tokio::spawn(async move { outbox.enqueue(entry(i)).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }
    // Each worker has its own pool: two hosts sharing the database.
    let mailer = CapturingMailer::default();
    let clock = Arc::new(ManualClock::new(at(T0 + 1)));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let pool = common::pool(&db.url, 2).await;
        let outbox: Arc<dyn Outbox> =
            Arc::new(PgOutbox::new(pool, &db.schema).with_clock(resetkit_postgres::QueueClock::Caller));
        let worker = DeliveryWorker::new(
            outbox,
            Arc::new(mailer.clone()),
            Arc::new(InMemoryEventLog::default()),
            clock.clone(),
        )
        .with_batch(25);
        workers.push(tokio::spawn(async move {
            let mut sent = 0;
            loop {
                let report = worker.run_once().await.unwrap();
                if report.sent == 0 {
                    return sent;
                }
                sent += report.sent;
            }
        }));
    }
    let mut per_worker = Vec::new();
    for w in workers {
        per_worker.push(w.await.unwrap());
    }
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for m in mailer.sent() {
        *by_id.entry(m.message_id).or_default() += 1;
    }
    assert_eq!(by_id.len(), 1000, "every message sent");
    assert!(by_id.values().all(|&n| n == 1), "no message sent twice");
    assert_eq!(per_worker.iter().sum::<usize>(), 1000);
    assert_eq!(
        outbox.counts().await.unwrap(),
        OutboxCounts {
            waiting: 0,
            sent: 1000,
            failed: 0,
            dropped: 0
        }
    );
    db.drop().await;
}
