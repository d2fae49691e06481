//! The suites of the operator console's read methods: an account's events
//! paged newest first, the outbox listed by state (and a failed message
//! retired), and versioned template storage.

use std::time::Duration;

use crate::account::AccountId;
use crate::event::{Event, EventKind};
use crate::mail::{DeliveryError, EmailKind, SmtpReply};
use crate::store::{OutboxListing, OutboxState, OutboxStatus, Timeline};
use crate::template::{TemplateSource, TemplateStore};

use super::epoch;
use super::outbox::entry;

/// [`Timeline::account_page`]: newest first, `limit` per page, the cursor
/// leads to the next older page and nothing is skipped or repeated, other
/// accounts' events never appear.
pub async fn event_log_paging_suite(log: &dyn Timeline) {
    let t0 = epoch();
    let a = AccountId::from("acct-page-a");
    let b = AccountId::from("acct-page-b");
    let mut mine = Vec::new();
    for n in 0..7u64 {
        let at = t0 + Duration::from_secs(n);
        let event = Event::new(
            at,
            Some(a.clone()),
            EventKind::TokenIssued {
                expires_at: at + Duration::from_secs(1800),
            },
        );
        mine.push(event.clone());
        log.record(event).await.expect("events.record");
        log.record(Event::new(at, Some(b.clone()), EventKind::ResetCompleted))
            .await
            .expect("events.record");
    }
    // Several events of one step in one call keep their order.
    let step = vec![
        Event::new(
            t0 + Duration::from_secs(10),
            Some(a.clone()),
            EventKind::ServerReplied {
                message_id: "<p@example.com>".into(),
                accepted: true,
                reply: SmtpReply::new(250, Some("2.0.0"), "Ok: queued"),
            },
        ),
        Event::new(
            t0 + Duration::from_secs(10),
            Some(a.clone()),
            EventKind::EmailSent {
                message_id: "<p@example.com>".into(),
                from: "noreply@example.com".into(),
                to: "a@example.com".into(),
            },
        ),
    ];
    mine.extend(step.iter().cloned());
    log.record_all(step).await.expect("events.record_all");
    mine.reverse();

    let mut seen = Vec::new();
    let mut before = None;
    let mut pages = 0;
    loop {
        let page = log
            .account_page(&a, before, 4)
            .await
            .expect("events.account_page");
        pages += 1;
        assert!(page.events.len() <= 4, "a page holds at most `limit` events");
        let cursors: Vec<_> = page.events.iter().map(|(c, _)| *c).collect();
        assert!(
            cursors.windows(2).all(|w| w[0] > w[1]),
            "cursors decrease within a page (newest first): {cursors:?}"
        );
        seen.extend(page.events.into_iter().map(|(_, e)| e));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
        assert!(pages < 10, "paging must end");
    }
    assert_eq!(pages, 3, "9 events in pages of 4: 3 pages");
    assert_eq!(seen, mine, "every event of the account once, newest first");
    let empty = log
        .account_page(&AccountId::from("acct-page-none"), None, 4)
        .await
        .expect("events.account_page");
    assert!(empty.events.is_empty() && empty.next.is_none());
    let first = log
        .account_page(&b, None, 100)
        .await
        .expect("events.account_page");
    assert_eq!(first.events.len(), 7);
    assert_eq!(first.next, None, "a page holding the rest has no next");
}

/// [`OutboxListing::list_by_state`], [`OutboxListing::message`] and
/// [`OutboxListing::retire_failed`]: waiting messages soonest first with their
/// last error, failed ones with the reason, no bodies, and a retired
/// failed message leaves the failed list.
pub async fn outbox_listing_suite(outbox: &dyn OutboxListing) {
    let t0 = epoch();
    let lease = Duration::from_secs(300);
    outbox
        .enqueue(entry(11, t0 + Duration::from_secs(60)))
        .await
        .expect("outbox.enqueue");
    outbox.enqueue(entry(12, t0)).await.expect("outbox.enqueue");
    outbox.enqueue(entry(13, t0)).await.expect("outbox.enqueue");
    let claimed = outbox.claim(t0, 2, lease).await.expect("outbox.claim");
    assert_eq!(claimed.len(), 2);
    let id12 = claimed[0].email.message_id.clone();
    let id13 = claimed[1].email.message_id.clone();
    let transient = DeliveryError::Transient {
        reason: "greylisted".into(),
        reply: Some(SmtpReply::new(451, Some("4.7.1"), "try later")),
    };
    let retry_at = t0 + Duration::from_secs(120);
    outbox
        .mark_failed(
            &id12,
            1,
            &transient,
            t0,
            Some(retry_at.duration_since(t0).expect("later")),
        )
        .await
        .expect("outbox.mark_failed");
    let refused = DeliveryError::SenderRejected {
        sender: "noreply@example.com".into(),
        reply: Some(SmtpReply::new(550, Some("5.7.1"), "not authorised")),
    };
    outbox
        .mark_failed(&id13, 1, &refused, t0, None)
        .await
        .expect("outbox.mark_failed");

    let waiting = outbox
        .list_by_state(OutboxState::Waiting, 10)
        .await
        .expect("outbox.list_by_state");
    let ids: Vec<_> = waiting.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(
        ids,
        vec![entry(11, t0).email.message_id, id12.clone()],
        "waiting: soonest next attempt first"
    );
    let retrying = &waiting[1];
    assert_eq!(retrying.status, OutboxStatus::Pending);
    assert_eq!(retrying.attempts, 1);
    assert_eq!(retrying.next_attempt_at, retry_at);
    assert!(
        retrying
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("451 4.7.1 try later")),
        "a retrying message shows its last reply: {:?}",
        retrying.last_error
    );
    assert_eq!(retrying.kind, EmailKind::Reset);
    assert_eq!(retrying.to, "user12@example.org");
    assert_eq!(retrying.from, "support@example.com");
    assert_eq!(retrying.account, Some(AccountId::from("acct-12")));
    let limited = outbox
        .list_by_state(OutboxState::Waiting, 1)
        .await
        .expect("outbox.list_by_state");
    assert_eq!(limited.len(), 1, "at most `limit`");

    let failed = outbox
        .list_by_state(OutboxState::Failed, 10)
        .await
        .expect("outbox.list_by_state");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].message_id, id13);
    assert!(
        matches!(&failed[0].status, OutboxStatus::Failed { reason } if reason.contains("550 5.7.1")),
        "{:?}",
        failed[0].status
    );
    assert_eq!(
        outbox
            .message(&id13)
            .await
            .expect("outbox.message")
            .map(|m| m.message_id),
        Some(id13.clone())
    );
    assert_eq!(outbox.message("<none@x>").await.expect("outbox.message"), None);

    assert!(
        !outbox
            .retire_failed(&id12, "re-issued")
            .await
            .expect("outbox.retire_failed"),
        "only a failed message can be retired"
    );
    assert!(
        outbox
            .retire_failed(&id13, "a fresh link was sent instead")
            .await
            .expect("outbox.retire_failed")
    );
    assert!(
        !outbox
            .retire_failed(&id13, "again")
            .await
            .expect("outbox.retire_failed"),
        "retiring twice does nothing"
    );
    assert!(
        outbox
            .list_by_state(OutboxState::Failed, 10)
            .await
            .expect("outbox.list_by_state")
            .is_empty()
    );
    let dropped = outbox
        .list_by_state(OutboxState::Dropped, 10)
        .await
        .expect("outbox.list_by_state");
    assert_eq!(dropped.len(), 1);
    assert_eq!(
        dropped[0].status,
        OutboxStatus::Dropped {
            reason: "a fresh link was sent instead".into()
        }
    );
    assert!(
        outbox
            .claim(t0 + Duration::from_secs(3600), 10, lease)
            .await
            .expect("outbox.claim")
            .iter()
            .all(|e| e.email.message_id != id13),
        "a retired message is never sent"
    );
}

/// [`TemplateStore`]: versions numbered per (locale, email), the newest
/// saved is active, earlier ones kept and restorable, listed newest first.
pub async fn template_store_suite(store: &dyn TemplateStore) {
    let t0 = epoch();
    let v1 = TemplateSource::new(
        "Reset {{ site_name }}",
        "One\n{{ link }}\n",
        "<a href=\"{{ link }}\">1</a>",
    );
    let v2 = TemplateSource::new("Reset", "Two\n{{ link }}\n", "<a href=\"{{ link }}\">2 ünï</a>");
    assert!(store.active().await.expect("templates.active").is_empty());
    assert_eq!(
        store
            .save("en", EmailKind::Reset, &v1, "op-a", t0)
            .await
            .expect("templates.save"),
        1
    );
    assert_eq!(
        store
            .save("en", EmailKind::Reset, &v2, "op-b", t0 + Duration::from_secs(1))
            .await
            .expect("templates.save"),
        2
    );
    assert_eq!(
        store
            .save("FR", EmailKind::PasswordChanged, &v1, "op-a", t0)
            .await
            .expect("templates.save"),
        1,
        "versions count per (locale, email)"
    );
    let versions = store
        .versions("en", EmailKind::Reset)
        .await
        .expect("templates.versions");
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), vec![2, 1]);
    assert!(
        versions[0].active && !versions[1].active,
        "the newest save is active"
    );
    assert_eq!(versions[0].source, v2);
    assert_eq!(versions[0].saved_by, "op-b");
    assert_eq!(versions[0].saved_at, t0 + Duration::from_secs(1));
    assert_eq!(versions[1].source, v1, "earlier versions are kept");

    assert!(
        store
            .activate("en", EmailKind::Reset, 1)
            .await
            .expect("templates.activate")
    );
    assert!(
        !store
            .activate("en", EmailKind::Reset, 9)
            .await
            .expect("templates.activate")
    );
    assert!(
        !store
            .activate("de", EmailKind::Reset, 1)
            .await
            .expect("templates.activate")
    );
    let mut active = store.active().await.expect("templates.active");
    active.sort_by(|a, b| a.locale.cmp(&b.locale));
    assert_eq!(active.len(), 2);
    assert_eq!(active[0].locale, "en");
    assert_eq!(
        (active[0].version, &active[0].source),
        (1, &v1),
        "restored version 1"
    );
    assert_eq!(active[1].locale, "fr", "locales are stored lower case");
    assert_eq!(active[1].kind, EmailKind::PasswordChanged);
    assert_eq!(
        store
            .save("en", EmailKind::Reset, &v2, "op-c", t0)
            .await
            .expect("templates.save"),
        3,
        "a save after a restore gets the next number"
    );
}

/// [`crate::flow::TemplateChanges`]: the generation moves with every
/// save and restore, and not with reads (call on an empty store).
pub async fn template_changes_suite(store: &dyn crate::flow::TemplateChanges) {
    let t0 = epoch();
    let source = |n: u32| {
        TemplateSource::new(
            format!("Reset {n}"),
            format!("Body {n}\n{{{{ link }}}}\n"),
            "<a href=\"{{ link }}\">reset</a>",
        )
    };
    let start = store.generation().await.expect("templates.generation");
    store.active().await.expect("templates.active");
    assert_eq!(
        store.generation().await.expect("templates.generation"),
        start,
        "reading changes nothing"
    );
    store
        .save("en", EmailKind::Reset, &source(1), "op", t0)
        .await
        .expect("templates.save");
    let saved = store.generation().await.expect("templates.generation");
    assert_ne!(saved, start, "a save moves the generation");
    store
        .save("en", EmailKind::Reset, &source(2), "op", t0)
        .await
        .expect("templates.save");
    let again = store.generation().await.expect("templates.generation");
    assert_ne!(again, saved, "every save moves it");
    assert!(
        store
            .activate("en", EmailKind::Reset, 1)
            .await
            .expect("templates.activate")
    );
    assert_ne!(
        store.generation().await.expect("templates.generation"),
        again,
        "a restore moves it"
    );
}
