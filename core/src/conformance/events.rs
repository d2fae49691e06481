//! The [`EventLog`] suite.

use std::time::Duration;

use crate::account::AccountId;
use crate::event::{Event, EventKind, IgnoreReason};
use crate::store::Timeline;
use crate::token::{RejectReason, RevokeReason};

use super::epoch;

/// Every [`EventLog`](crate::store::EventLog) behaviour the flow and the harness rely on.
pub async fn event_log_suite(log: &dyn Timeline) {
    let t0 = epoch();
    let a = AccountId::from("acct-ev-a");
    let b = AccountId::from("acct-ev-b");
    let events = vec![
        Event::new(
            t0,
            Some(a.clone()),
            EventKind::ResetRequested {
                via: "email",
                client: Some("192.0.2.1".into()),
            },
        ),
        Event::new(
            t0 + Duration::from_secs(1),
            None,
            EventKind::RequestIgnored {
                reason: IgnoreReason::UnknownIdentifier,
                fingerprint: "5f0c3e9a1b7d2c4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6".into(),
            },
        ),
        Event::new(
            t0 + Duration::from_secs(2),
            Some(b.clone()),
            EventKind::ResetCompleted,
        ),
        Event::new(
            t0 + Duration::from_secs(3),
            Some(a.clone()),
            EventKind::TokenRejected {
                reason: RejectReason::Revoked(RevokeReason::PasswordReset),
            },
        ),
        Event::new(
            t0 + Duration::from_secs(4),
            Some(a.clone()),
            EventKind::DeliveryFailed {
                message_id: "<m1@example.com>".into(),
                reason: "sender <noreply@example.com> rejected".into(),
                permanent: true,
                will_retry: false,
                from: "noreply@example.com".into(),
                class: "sender_rejected",
            },
        ),
    ];
    for e in &events {
        log.record(e.clone()).await.expect("events.record");
    }
    let of_a = log.for_account(&a).await.expect("events.for_account");
    assert_eq!(
        of_a,
        vec![events[0].clone(), events[3].clone(), events[4].clone()],
        "account trail, oldest first"
    );
    assert_eq!(
        log.for_account(&b).await.expect("events.for_account"),
        vec![events[2].clone()]
    );
    assert!(
        log.for_account(&AccountId::from("none"))
            .await
            .expect("events.for_account")
            .is_empty()
    );
    let recent = log.recent(2).await.expect("events.recent");
    assert_eq!(
        recent,
        vec![events[3].clone(), events[4].clone()],
        "recent(2): the last two, oldest first"
    );
}
