//! The [`Outbox`] suite: enqueue, claim with leases, retries, sent and
//! failed messages.

use std::time::{Duration, SystemTime};

use crate::account::AccountId;
use crate::mail::{DeliveryError, EmailKind, MailContent, Mailbox, OutgoingEmail, SmtpReply};
use crate::store::{Outbox, OutboxEntry, OutboxStatus};
use crate::token::TokenHash;

use super::epoch;

/// A sample email for outbox tests.
pub fn sample_email(n: usize) -> OutgoingEmail {
    let from = Mailbox::new(Some("Support \"Team\""), "support@example.com").expect("valid mailbox");
    let reply = Mailbox::address_only("help@example.com").expect("valid mailbox");
    let to = Mailbox::address_only(&format!("user{n}@example.org")).expect("valid mailbox");
    OutgoingEmail::new(
        format!("<msg{n}.conformance@example.com>"),
        EmailKind::Reset,
        from,
        Some(reply),
        to,
        MailContent {
            subject: format!("Reset your password #{n} — ünïcödé"),
            text: format!("Open:\n\nhttps://app.example.com/reset?token=t{n}\n"),
            html: format!("<a href=\"https://app.example.com/reset?token=t{n}&amp;x=1\">reset</a>"),
        },
    )
}

pub(crate) fn entry(n: usize, due: SystemTime) -> OutboxEntry {
    OutboxEntry {
        email: sample_email(n),
        account: Some(AccountId::from(format!("acct-{n}"))),
        attempts: 0,
        next_attempt_at: due,
        tokens: vec![TokenHash([u8::try_from(n % 256).unwrap_or(0); 32])],
        requested_at: Some(due),
    }
}

/// Every [`Outbox`] behaviour the delivery worker relies on.
pub async fn outbox_suite(outbox: &dyn Outbox) {
    let t0 = epoch();
    let lease = Duration::from_secs(300);
    outbox.enqueue(entry(1, t0)).await.expect("outbox.enqueue");
    outbox
        .enqueue(entry(2, t0 + Duration::from_secs(600)))
        .await
        .expect("outbox.enqueue");

    assert!(
        outbox.waiting_at_least(2).await.expect("outbox.waiting_at_least"),
        "two messages wait (one of them due later)"
    );
    assert!(
        !outbox.waiting_at_least(3).await.expect("outbox.waiting_at_least"),
        "not three"
    );

    let claimed = outbox.claim(t0, 10, lease).await.expect("outbox.claim");
    assert_eq!(claimed.len(), 1, "only due messages are claimed");
    assert!(
        outbox.waiting_at_least(2).await.expect("outbox.waiting_at_least"),
        "a claimed message still waits"
    );
    let got = &claimed[0];
    let want = sample_email(1);
    assert_eq!(got.email.message_id, want.message_id);
    assert_eq!(got.email.kind, want.kind);
    assert_eq!(got.email.from, want.from, "From (with display name) round-trips");
    assert_eq!(got.email.reply_to, want.reply_to);
    assert_eq!(got.email.to, want.to);
    assert_eq!(got.email.subject, want.subject);
    assert_eq!(got.email.expose_text(), want.expose_text());
    assert_eq!(got.email.expose_html(), want.expose_html());
    assert_eq!(got.account, Some(AccountId::from("acct-1")));
    assert_eq!(got.attempts, 1, "claiming counts an attempt");
    assert_eq!(got.requested_at, Some(t0), "the request's time round-trips");
    assert_eq!(
        got.tokens,
        entry(1, t0).tokens,
        "the hashes of the tokens the message carries round-trip"
    );
    let id1 = want.message_id.clone();
    assert_eq!(
        outbox.status(&id1).await.expect("outbox.status"),
        Some(OutboxStatus::Claimed)
    );

    assert!(
        outbox
            .claim(t0 + Duration::from_secs(1), 10, lease)
            .await
            .expect("outbox.claim")
            .is_empty(),
        "a leased message is not claimed twice"
    );
    let renewed_at = t0 + Duration::from_secs(200);
    assert!(
        outbox
            .renew(&id1, 1, renewed_at, lease)
            .await
            .expect("outbox.renew"),
        "the worker holding a message renews its lease"
    );
    assert!(
        outbox
            .claim(t0 + lease + Duration::from_secs(1), 10, lease)
            .await
            .expect("outbox.claim")
            .is_empty(),
        "a renewed lease holds past its first end"
    );
    let reclaimed = outbox
        .claim(renewed_at + lease + Duration::from_secs(1), 10, lease)
        .await
        .expect("outbox.claim");
    assert_eq!(
        reclaimed
            .iter()
            .map(|e| e.email.message_id.clone())
            .collect::<Vec<_>>(),
        vec![id1.clone()],
        "an expired lease makes the message claimable again"
    );
    assert_eq!(reclaimed[0].attempts, 2);
    assert!(
        !outbox
            .renew(&id1, 1, renewed_at + lease, lease)
            .await
            .expect("outbox.renew"),
        "a lease that was taken over is not renewed"
    );

    let transient = DeliveryError::Transient {
        reason: "greylisted".into(),
        reply: Some(SmtpReply::new(451, Some("4.7.1"), "later")),
    };
    let retry_at = t0 + Duration::from_secs(900);
    // The worker of attempt 1 lost its lease to attempt 2: its late report
    // must not touch the message (else a third send would follow).
    outbox
        .mark_failed(&id1, 1, &transient, t0, Some(Duration::ZERO))
        .await
        .expect("outbox.mark_failed (stale)");
    outbox
        .mark_sent(&id1, 1, t0)
        .await
        .expect("outbox.mark_sent (stale)");
    assert_eq!(
        outbox.status(&id1).await.expect("outbox.status"),
        Some(OutboxStatus::Claimed),
        "a report for a lease that was taken over changes nothing"
    );
    outbox
        .mark_failed(
            &id1,
            2,
            &transient,
            t0,
            Some(retry_at.duration_since(t0).expect("later")),
        )
        .await
        .expect("outbox.mark_failed");
    assert_eq!(
        outbox.status(&id1).await.expect("outbox.status"),
        Some(OutboxStatus::Pending),
        "retry scheduled"
    );
    let before = outbox
        .claim(retry_at - Duration::from_secs(1), 10, lease)
        .await
        .expect("outbox.claim");
    assert_eq!(
        before
            .iter()
            .map(|e| e.email.message_id.clone())
            .collect::<Vec<_>>(),
        vec![sample_email(2).message_id],
        "retry not before its time"
    );
    let at = outbox.claim(retry_at, 10, lease).await.expect("outbox.claim");
    assert_eq!(at.len(), 1, "retry due");
    assert_eq!(at[0].attempts, 3);

    outbox
        .mark_sent(&id1, 3, retry_at)
        .await
        .expect("outbox.mark_sent");
    assert_eq!(
        outbox.status(&id1).await.expect("outbox.status"),
        Some(OutboxStatus::Sent)
    );
    let permanent = DeliveryError::SenderRejected {
        sender: "support@example.com".into(),
        reply: Some(SmtpReply::new(550, Some("5.7.1"), "not authorised")),
    };
    let id2 = sample_email(2).message_id;
    outbox
        .mark_failed(&id2, before[0].attempts, &permanent, retry_at, None)
        .await
        .expect("outbox.mark_failed");
    match outbox.status(&id2).await.expect("outbox.status") {
        Some(OutboxStatus::Failed { reason }) => {
            assert!(reason.contains("550"), "failure reason keeps the reply: {reason}")
        }
        other => panic!("given-up message must be Failed, got {other:?}"),
    }
    assert!(
        outbox
            .claim(retry_at + Duration::from_secs(3600), 10, lease)
            .await
            .expect("outbox.claim")
            .is_empty(),
        "sent and failed messages are never claimed"
    );
    assert_eq!(
        outbox.status("<nope@example.com>").await.expect("outbox.status"),
        None
    );
    // A message whose links died while it waited is dropped, not sent.
    outbox.enqueue(entry(3, retry_at)).await.expect("outbox.enqueue");
    let third = outbox.claim(retry_at, 10, lease).await.expect("outbox.claim");
    assert_eq!(third.len(), 1);
    let id3 = sample_email(3).message_id;
    outbox
        .mark_dropped(&id3, 0, "stale attempt")
        .await
        .expect("outbox.mark_dropped (stale)");
    assert_eq!(
        outbox.status(&id3).await.expect("outbox.status"),
        Some(OutboxStatus::Claimed),
        "mark_dropped is fenced by the attempt"
    );
    outbox
        .mark_dropped(&id3, third[0].attempts, "not sent: superseded")
        .await
        .expect("outbox.mark_dropped");
    assert_eq!(
        outbox.status(&id3).await.expect("outbox.status"),
        Some(OutboxStatus::Dropped {
            reason: "not sent: superseded".into()
        })
    );
    let counts = outbox.counts().await.expect("outbox.counts");
    assert_eq!(
        (counts.waiting, counts.sent, counts.failed, counts.dropped),
        (0, 1, 1, 1)
    );
    assert!(
        !outbox.waiting_at_least(1).await.expect("outbox.waiting_at_least"),
        "sent, failed and dropped messages do not wait"
    );
    assert!(
        outbox.mark_sent("<nope@example.com>", 1, t0).await.is_err(),
        "marking an unknown message is an error"
    );
}
