//! The [`RequestInbox`] suite (push, claim with leases, fenced done and
//! retry, concurrent workers) and the retention suite (the purges of the
//! token store, event log and outbox).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::account::AccountId;
use crate::event::{Event, EventKind};
use crate::identifier::Identifier;
use crate::mail::DeliveryError;
use crate::store::{
    EventRetention, InboxRequest, OutboxEntry, OutboxRetention, RateKey, RequestInbox, Timeline,
    TokenRetention,
};

use super::{epoch, sample_email};

fn request(n: usize, at_secs: u64) -> InboxRequest {
    InboxRequest {
        id: format!("req-{n:04}"),
        identifier: if n.is_multiple_of(2) {
            Identifier::Email(format!("üser{n}@exämple.com"))
        } else {
            Identifier::Username(format!("user{n}"))
        },
        client: (!n.is_multiple_of(3)).then(|| format!("2001:db8::{n}")),
        locale: (n % 2 == 1).then(|| "pt-BR".to_owned()),
        received_at: epoch() + Duration::from_secs(at_secs),
        attempts: 0,
    }
}

/// Push, claim in arrival order with leases, fenced `done` and
/// `retry_later`, and a request's fields kept exactly.
pub async fn request_inbox_suite(inbox: &dyn RequestInbox) {
    let lease = Duration::from_secs(60);
    assert_eq!(
        inbox.len().await.expect("len"),
        0,
        "the suite needs an empty inbox"
    );
    for n in 0..4 {
        inbox.push(request(n, n as u64)).await.expect("push");
    }
    assert_eq!(inbox.len().await.expect("len"), 4);
    let now = epoch() + Duration::from_secs(10);
    assert!(
        inbox
            .claim(epoch() - Duration::from_secs(1), 10, lease)
            .await
            .expect("claim")
            .is_empty(),
        "nothing is due before it was received"
    );
    let first = inbox.claim(now, 2, lease).await.expect("claim");
    let ids: Vec<&str> = first.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["req-0000", "req-0001"], "oldest first, at most `max`");
    for (n, got) in first.iter().enumerate() {
        let want = InboxRequest {
            attempts: 1,
            ..request(n, n as u64)
        };
        assert_eq!(
            got, &want,
            "a claimed request comes back exactly as pushed, one attempt counted"
        );
    }
    let second = inbox.claim(now, 10, lease).await.expect("claim");
    let ids: Vec<&str> = second.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["req-0002", "req-0003"],
        "claimed requests are not handed out twice"
    );
    assert!(inbox.claim(now, 10, lease).await.expect("claim").is_empty());

    inbox.done("req-0000", 1).await.expect("done");
    inbox
        .retry_later("req-0001", 1, now, Duration::from_secs(5))
        .await
        .expect("retry");
    assert_eq!(inbox.len().await.expect("len"), 3);
    assert!(
        inbox
            .claim(now + Duration::from_secs(4), 10, lease)
            .await
            .expect("claim")
            .is_empty(),
        "a retried request waits for its time"
    );
    let retried = inbox
        .claim(now + Duration::from_secs(5), 10, lease)
        .await
        .expect("claim");
    assert_eq!(retried.len(), 1);
    assert_eq!((retried[0].id.as_str(), retried[0].attempts), ("req-0001", 2));
    inbox.done("req-0001", 2).await.expect("done");

    // The worker holding req-0002 renews its lease; req-0003's runs out.
    let renewed_at = now + Duration::from_secs(30);
    assert!(
        inbox
            .renew("req-0002", 1, renewed_at, lease)
            .await
            .expect("renew"),
        "the worker holding a request renews its lease"
    );
    let expired = inbox
        .claim(now + lease + Duration::from_secs(1), 10, lease)
        .await
        .expect("claim");
    let ids: Vec<&str> = expired.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["req-0003"], "a renewed lease holds past its first end");
    inbox
        .retry_later(
            "req-0003",
            2,
            now + lease + Duration::from_secs(1),
            Duration::ZERO,
        )
        .await
        .expect("retry");
    // Then req-0002's lease runs out too: a second worker takes both over,
    // and the first worker's late calls change nothing.
    let later = renewed_at + lease + Duration::from_secs(1);
    let taken_over = inbox.claim(later, 10, lease).await.expect("claim");
    let ids: HashSet<&str> = taken_over.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, HashSet::from(["req-0002", "req-0003"]));
    let attempts: Vec<(&str, u32)> = {
        let mut a: Vec<(&str, u32)> = taken_over.iter().map(|r| (r.id.as_str(), r.attempts)).collect();
        a.sort();
        a
    };
    assert_eq!(attempts, [("req-0002", 2), ("req-0003", 3)]);
    assert!(
        !inbox.renew("req-0002", 1, later, lease).await.expect("renew"),
        "a lease that was taken over is not renewed"
    );
    inbox.done("req-0002", 1).await.expect("stale done");
    inbox
        .retry_later("req-0003", 2, later, Duration::ZERO)
        .await
        .expect("stale retry");
    assert_eq!(inbox.len().await.expect("len"), 2, "stale calls are fenced off");
    assert!(inbox.claim(later, 10, lease).await.expect("claim").is_empty());
    for (id, attempt) in [("req-0002", 2), ("req-0003", 3)] {
        inbox.done(id, attempt).await.expect("done");
    }
    assert!(inbox.is_empty().await.expect("len"));
}

/// `workers` concurrent workers drain `requests` requests: each is
/// processed by exactly one of them.
pub async fn request_inbox_concurrent_claim(inbox: Arc<dyn RequestInbox>, requests: usize, workers: usize) {
    for n in 0..requests {
        inbox.push(request(n, 0)).await.expect("push");
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (inbox, seen) = (inbox.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let claimed = inbox
                    .claim(epoch() + Duration::from_secs(1), 3, Duration::from_secs(60))
                    .await
                    .expect("claim");
                if claimed.is_empty() {
                    return;
                }
                for r in claimed {
                    seen.lock().expect("lock").push(r.id.clone());
                    tokio::task::yield_now().await;
                    inbox.done(&r.id, r.attempts).await.expect("done");
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker");
    }
    let seen = seen.lock().expect("lock").clone();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), requests, "every request processed once: {seen:?}");
    assert_eq!(unique.len(), requests, "no request processed twice");
    assert!(inbox.is_empty().await.expect("len"));
}

/// The retention purges: rate-limit entries, events and finished outbox
/// messages older than the cut-off go, newer ones and waiting messages stay.
pub async fn retention_suite<E: EventRetention + Timeline + ?Sized>(
    tokens: &dyn TokenRetention,
    events: &E,
    outbox: &dyn OutboxRetention,
) {
    let t0 = epoch();
    let later = t0 + Duration::from_secs(3600);
    let window = Duration::from_secs(7200);
    let old_key = RateKey::Client("198.51.100.1".into());
    let new_key = RateKey::Client("198.51.100.2".into());
    for i in 0..3 {
        assert!(
            tokens
                .admit(&old_key, t0 + Duration::from_secs(i), window, 10)
                .await
                .expect("admit")
        );
    }
    assert!(tokens.admit(&new_key, later, window, 10).await.expect("admit"));
    let cut = t0 + Duration::from_secs(1800);
    assert_eq!(
        tokens.purge_rate_entries(cut, 2).await.expect("purge"),
        2,
        "at most `batch`"
    );
    assert_eq!(tokens.purge_rate_entries(cut, 100).await.expect("purge"), 1);
    assert_eq!(tokens.purge_rate_entries(cut, 100).await.expect("purge"), 0);
    // The purged key starts over; the recent one still counts.
    assert!(!tokens.admit(&new_key, later, window, 1).await.expect("admit"));
    assert!(tokens.admit(&old_key, later, window, 1).await.expect("admit"));

    let account = Some(AccountId::from("retained"));
    let kind = || EventKind::ResetCompleted;
    events
        .record_all(vec![
            Event::new(t0, account.clone(), kind()),
            Event::new(t0 + Duration::from_secs(1), account.clone(), kind()),
            Event::new(later, account.clone(), kind()),
        ])
        .await
        .expect("record");
    assert_eq!(events.purge_before(cut, 100).await.expect("purge"), 2);
    let left = events
        .for_account(&AccountId::from("retained"))
        .await
        .expect("read");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].at, later);

    let entry = |n: usize| OutboxEntry {
        email: sample_email(1000 + n),
        account: None,
        attempts: 0,
        next_attempt_at: t0,
        tokens: Vec::new(),
        requested_at: None,
    };
    for n in 0..3 {
        outbox.enqueue(entry(n)).await.expect("enqueue");
    }
    let claimed = outbox.claim(t0, 2, Duration::from_secs(60)).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    outbox
        .mark_sent(&claimed[0].email.message_id, 1, t0)
        .await
        .expect("sent");
    outbox
        .mark_failed(
            &claimed[1].email.message_id,
            1,
            &DeliveryError::Transient {
                reason: "try later".into(),
                reply: None,
            },
            t0,
            Some(Duration::from_secs(30)),
        )
        .await
        .expect("retry");
    // The sent one is finished; the retried and the untouched one wait.
    let far = SystemTime::now() + Duration::from_secs(365 * 24 * 3600);
    assert_eq!(
        outbox
            .purge_finished(t0 - Duration::from_secs(1), 100)
            .await
            .expect("purge"),
        0
    );
    assert_eq!(outbox.purge_finished(far, 100).await.expect("purge"), 1);
    let counts = outbox.counts().await.expect("counts");
    assert_eq!(
        (counts.sent, counts.waiting),
        (0, 2),
        "waiting messages are never purged"
    );
}
