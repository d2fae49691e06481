//! The overview's capabilities: [`ActivityLog`] (counts per minute from
//! rollups, the newest delivery results) and [`QueueAge`].

use std::time::{Duration, SystemTime};

use crate::account::AccountId;
use crate::activity::{Activity, ActivityLog, Bucket, QueueAge, minute_of};
use crate::event::{Event, EventKind, IgnoreReason, RateScope};
use crate::mail::SmtpReply;

use super::epoch;
use super::outbox::entry;

fn sent(at: SystemTime, n: u32, from: &str) -> Event {
    Event::new(
        at,
        Some(AccountId::from("a")),
        EventKind::EmailSent {
            message_id: format!("<{n}@example.com>"),
            from: from.into(),
            to: "a@example.com".into(),
        },
    )
}

fn refused(at: SystemTime, n: u32, from: &str) -> Vec<Event> {
    let message_id = format!("<{n}@example.com>");
    vec![
        Event::new(
            at,
            Some(AccountId::from("a")),
            EventKind::ServerReplied {
                message_id: message_id.clone(),
                accepted: false,
                reply: SmtpReply::new(550, Some("5.7.1"), "sender not allowed"),
            },
        ),
        Event::new(
            at,
            Some(AccountId::from("a")),
            EventKind::DeliveryFailed {
                message_id,
                reason: format!("sender <{from}> rejected by the mail server"),
                permanent: true,
                will_retry: false,
                from: from.into(),
                class: "sender_rejected",
            },
        ),
    ]
}

/// Counts per minute and kind, whichever way the events were recorded
/// (`record` or `record_all`), the range bounds, and the newest delivery
/// results newest first.
pub async fn activity_log_suite(log: &dyn ActivityLog) {
    let t0 = epoch();
    let min = |m: u64| t0 + Duration::from_secs(60 * m);
    log.record(Event::new(
        min(0) + Duration::from_secs(5),
        Some(AccountId::from("a")),
        EventKind::ResetRequested {
            via: "email",
            client: None,
        },
    ))
    .await
    .expect("events.record");
    log.record_all(vec![
        Event::new(
            min(0) + Duration::from_secs(59),
            None,
            EventKind::RequestIgnored {
                reason: IgnoreReason::UnknownIdentifier,
                fingerprint: "f".into(),
            },
        ),
        Event::new(
            min(1),
            None,
            // A throttling window's closing event: four refusals.
            EventKind::RateLimited {
                scope: RateScope::Client,
                client: None,
                count: 4,
            },
        ),
        sent(min(1) + Duration::from_secs(1), 1, "noreply@example.com"),
        Event::new(min(1), None, EventKind::TokenIssued { expires_at: min(30) }),
    ])
    .await
    .expect("events.record_all");
    log.record_all(refused(min(2), 2, "noreply@example.com"))
        .await
        .expect("events.record_all");
    log.record_all(refused(min(3), 3, "noreply@example.com"))
        .await
        .expect("events.record_all");

    let mut counts = log
        .activity(Bucket::Minute, min(0), min(4))
        .await
        .expect("activity");
    counts.sort_by_key(|c| (c.start, c.activity));
    let got: Vec<(u64, Activity, u64)> = counts
        .iter()
        .map(|c| {
            let m = c.start.duration_since(t0).map_or(u64::MAX, |d| d.as_secs() / 60);
            (m, c.activity, c.count)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, Activity::Requested, 2),
            (0, Activity::Unknown, 1),
            (1, Activity::Requested, 4),
            (1, Activity::Delivered, 1),
            (1, Activity::Throttled, 4),
            (2, Activity::RefusedSender, 1),
            (3, Activity::RefusedSender, 1),
        ],
        "counts per minute (a request throttled at the door is requested and throttled, as many times as the event's count)"
    );
    for c in &counts {
        assert_eq!(c.start, minute_of(c.start), "minutes start on the minute");
    }
    let ranged = log
        .activity(Bucket::Minute, min(1), min(3))
        .await
        .expect("activity");
    let total: u64 = ranged.iter().map(|c| c.count).sum();
    assert_eq!(total, 10, "[from, until): minutes 1 and 2 only: {ranged:?}");
    // The same events by hour: epoch() is on the hour, so all in one.
    let mut hours = log
        .activity(Bucket::Hour, t0, t0 + Duration::from_secs(3600))
        .await
        .expect("activity");
    hours.sort_by_key(|c| c.activity);
    let by_hour: Vec<(Activity, u64)> = hours
        .iter()
        .inspect(|c| assert_eq!(c.start, t0, "hours start on the hour"))
        .map(|c| (c.activity, c.count))
        .collect();
    assert_eq!(
        by_hour,
        vec![
            (Activity::Requested, 6),
            (Activity::Delivered, 1),
            (Activity::RefusedSender, 2),
            (Activity::Throttled, 4),
            (Activity::Unknown, 1),
        ],
        "counts per hour"
    );
    let none = log
        .activity(
            Bucket::Hour,
            t0 + Duration::from_secs(3600),
            t0 + Duration::from_secs(7200),
        )
        .await
        .expect("activity");
    assert!(none.is_empty(), "nothing in the next hour: {none:?}");

    let results = log.deliveries(min(1), 10).await.expect("deliveries");
    let kinds: Vec<&str> = results.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        vec![
            "delivery_failed",
            "server_replied",
            "delivery_failed",
            "server_replied",
            "email_sent"
        ],
        "newest first, delivery results only"
    );
    assert!(
        matches!(&results[0].kind, EventKind::DeliveryFailed { from, class: "sender_rejected", .. } if from == "noreply@example.com"),
        "a failure keeps its sender and class: {:?}",
        results[0]
    );
    let limited = log.deliveries(min(1), 2).await.expect("deliveries");
    assert_eq!(limited.len(), 2);
    let since = log
        .deliveries(min(2) + Duration::from_secs(1), 10)
        .await
        .expect("deliveries");
    assert_eq!(since.len(), 2, "only results at or after `since`");
}

/// The oldest waiting message's queue time: `None` when nothing waits.
pub async fn queue_age_suite(outbox: &dyn QueueAge) {
    assert_eq!(outbox.oldest_waiting().await.expect("oldest_waiting"), None);
    let t0 = epoch();
    outbox.enqueue(entry(1, t0)).await.expect("outbox.enqueue");
    outbox
        .enqueue(entry(2, t0 + Duration::from_secs(60)))
        .await
        .expect("outbox.enqueue");
    let first = outbox.oldest_waiting().await.expect("oldest_waiting");
    assert!(first.is_some(), "two messages wait");
    let claimed = outbox
        .claim(t0 + Duration::from_secs(120), 10, Duration::from_secs(300))
        .await
        .expect("outbox.claim");
    assert_eq!(claimed.len(), 2);
    assert_eq!(
        outbox.oldest_waiting().await.expect("oldest_waiting"),
        first,
        "a claimed message still waits"
    );
    for e in &claimed {
        outbox
            .mark_sent(&e.email.message_id, e.attempts, t0 + Duration::from_secs(121))
            .await
            .expect("outbox.mark_sent");
    }
    assert_eq!(
        outbox.oldest_waiting().await.expect("oldest_waiting"),
        None,
        "sent messages no longer wait"
    );
}
