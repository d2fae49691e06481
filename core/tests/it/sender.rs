//! Acceptance: the sender is resolved per account with named fallbacks, and
//! a sender that cannot send is an early, named error recorded as an event,
//! never a silent failure.

use crate::common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{Fixture, mailbox};
use resetkit::event::EventKind;
use resetkit::mail::{DeliveryError, SentReceipt, SmtpReply};
use resetkit::prelude::*;
use resetkit::sender::{SenderAttempt, SenderChoice, SenderError};

const QUEUE: &str = "support@example.com";

fn owners() -> OwnerSender {
    OwnerSender::new([
        ("system".to_owned(), OwnerMailbox::no_mailbox()),
        (
            "carol".to_owned(),
            OwnerMailbox::not_permitted(mailbox("carol@example.com")),
        ),
        (
            "dave".to_owned(),
            OwnerMailbox::sending(mailbox("dave@example.com")),
        ),
    ])
}

fn fixture() -> Fixture {
    Fixture::with_accounts([
        Account::new("a1", "alice", "alice@example.com").with_owner("system"),
        Account::new("b1", "bob", "bob@example.com").with_owner("carol"),
        Account::new("c1", "cleo", "cleo@example.com").with_owner("dave"),
        Account::new("d1", "dina", "dina@example.com"),
    ])
}

fn account(fx: &Fixture, id: &str) -> Account {
    fx.accounts.get(&AccountId::from(id)).expect("account")
}

/// The `EmailQueued` events recorded so far.
fn queued(fx: &Fixture) -> Vec<(String, String, Vec<String>)> {
    fx.kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::EmailQueued {
                from,
                sender_strategy,
                sender_fallbacks,
                ..
            } => Some((from, sender_strategy, sender_fallbacks)),
            _ => None,
        })
        .collect()
}

fn unavailable(fx: &Fixture) -> Vec<String> {
    fx.kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::SenderUnavailable { reason } => Some(reason),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_owner_who_cannot_send_falls_back_to_the_queue_and_the_event_says_why() {
    let fx = fixture();
    let chain = SenderChain::new(vec![
        Arc::new(owners()),
        Arc::new(QueueSender::new(mailbox(QUEUE))),
    ]);
    let service = fx.builder().sender(Arc::new(chain)).build().expect("valid");

    let choice = service
        .resolve_sender(&account(&fx, "a1"))
        .await
        .expect("a sender");
    assert_eq!(choice.from.address(), QUEUE);
    assert_eq!(choice.reply_to.as_ref().map(Mailbox::address), Some(QUEUE));
    assert_eq!(choice.strategy, "queue");
    assert_eq!(
        choice.fallbacks,
        vec![SenderAttempt {
            strategy: "owner".into(),
            reason: "owner `system` has no mailbox".into()
        }]
    );

    fx.request_token(&service, "alice@example.com").await;
    let mail = fx.mailer.sent().pop().expect("mail");
    assert_eq!(mail.from.address(), QUEUE);
    assert_eq!(mail.reply_to.as_ref().map(Mailbox::address), Some(QUEUE));
    let events = queued(&fx);
    assert_eq!(events.len(), 1);
    let (from, strategy, fallbacks) = &events[0];
    assert_eq!(from, QUEUE);
    assert_eq!(strategy, "queue");
    assert_eq!(
        fallbacks,
        &vec!["owner: owner `system` has no mailbox".to_owned()]
    );

    // An owner whose address may not send also falls back, and says so.
    fx.request_token(&service, "bob@example.com").await;
    let (_, strategy, fallbacks) = queued(&fx).pop().expect("event");
    assert_eq!(strategy, "queue");
    assert_eq!(
        fallbacks,
        vec!["owner: owner `carol` (carol@example.com) is not permitted to send".to_owned()]
    );

    // An owner who may send is used, with no fallback.
    fx.request_token(&service, "cleo@example.com").await;
    assert_eq!(
        fx.mailer.sent().pop().expect("mail").from.address(),
        "dave@example.com"
    );
    let (_, strategy, fallbacks) = queued(&fx).pop().expect("event");
    assert_eq!(strategy, "owner");
    assert!(fallbacks.is_empty());

    // Every sender the chain could pick is listed for preflight checks.
    let candidates: Vec<String> = SenderChain::new(vec![
        Arc::new(owners()),
        Arc::new(QueueSender::new(mailbox(QUEUE))),
    ])
    .candidate_senders()
    .iter()
    .map(|m| m.address().to_owned())
    .collect();
    assert_eq!(candidates, vec!["dave@example.com", QUEUE]);
}

/// A resolver that always fails, like a directory lookup that is down.
struct Unreachable;

#[async_trait]
impl SenderResolver for Unreachable {
    async fn resolve(&self, account: &Account) -> Result<SenderChoice, SenderError> {
        Err(SenderError {
            account: account.id.clone(),
            attempts: vec![SenderAttempt {
                strategy: "directory".into(),
                reason: "the staff directory did not answer".into(),
            }],
        })
    }

    fn candidate_senders(&self) -> Vec<Mailbox> {
        Vec::new()
    }
}

#[tokio::test]
async fn without_a_fallback_the_request_records_which_strategies_failed_and_why() {
    let fx = fixture();
    let chain = SenderChain::new(vec![Arc::new(owners()), Arc::new(Unreachable)]);
    let service = fx.builder().sender(Arc::new(chain)).build().expect("valid");

    let error = service
        .resolve_sender(&account(&fx, "a1"))
        .await
        .expect_err("no sender");
    assert_eq!(error.account, AccountId::from("a1"));
    assert_eq!(error.attempts.len(), 2);
    let text = error.to_string();
    for needle in [
        "`a1`",
        "owner: owner `system` has no mailbox",
        "directory: the staff directory did not answer",
    ] {
        assert!(text.contains(needle), "`{text}` lacks `{needle}`");
    }

    // The public outcome does not change; nothing is sent and no link is
    // issued; the event names the account and every strategy.
    let outcome = service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    assert_eq!(outcome, RequestAccepted);
    assert!(fx.mailer.sent().is_empty());
    assert!(fx.tokens.is_empty(), "no link is issued when it cannot be sent");
    assert_eq!(unavailable(&fx), vec![text]);
    let event = fx
        .events
        .all()
        .into_iter()
        .find(|e| e.kind.name() == "sender_unavailable")
        .expect("event");
    assert_eq!(event.account, Some(AccountId::from("a1")));

    // An account without an owner says so.
    let error = service
        .resolve_sender(&account(&fx, "d1"))
        .await
        .expect_err("no sender");
    assert!(
        error.to_string().contains("owner: the account has no owner"),
        "{error}"
    );
}

/// A mail server that refuses some senders at MAIL FROM and captures the rest.
#[derive(Clone, Default)]
struct PickyServer {
    refused: Vec<String>,
    accepted: Arc<Mutex<Vec<OutgoingEmail>>>,
}

#[async_trait]
impl Mailer for PickyServer {
    async fn send(&self, email: &OutgoingEmail) -> Result<SentReceipt, DeliveryError> {
        if self.refused.iter().any(|r| r == email.from.address()) {
            return Err(DeliveryError::SenderRejected {
                sender: email.from.address().to_owned(),
                reply: Some(SmtpReply::new(550, Some("5.7.1"), "not authorised to send")),
            });
        }
        self.accepted.lock().expect("lock").push(email.clone());
        Ok(SentReceipt {
            message_id: email.message_id.clone(),
            server_reply: None,
        })
    }
}

#[tokio::test]
async fn a_sender_refused_by_the_server_falls_back_along_the_chain() {
    let fx = fixture();
    let server = PickyServer {
        refused: vec![common::NOREPLY.to_owned()],
        ..PickyServer::default()
    };
    let chain = SenderChain::new(vec![
        Arc::new(FixedSender::new(mailbox(common::NOREPLY))),
        Arc::new(QueueSender::new(mailbox(QUEUE))),
    ]);
    let service = fx
        .builder()
        .mailer(Arc::new(server.clone()))
        .sender(Arc::new(chain))
        .build()
        .expect("valid");
    service
        .request("dina@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    let accepted = server.accepted.lock().expect("lock").clone();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].from.address(), QUEUE);
    common::reset_token(&accepted[0]);

    let failures: Vec<(String, bool)> = fx
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::DeliveryFailed {
                reason, permanent, ..
            } => Some((reason, permanent)),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 1);
    assert!(failures[0].0.contains("noreply@example.com"), "{failures:?}");
    assert!(failures[0].0.contains("550 5.7.1"), "{failures:?}");
    assert!(failures[0].1, "a refused sender is permanent");
    let (_, strategy, fallbacks) = queued(&fx).pop().expect("event");
    assert_eq!(strategy, "queue");
    assert_eq!(fallbacks.len(), 1);
    assert!(
        fallbacks[0].contains("fixed: the mail server refused sender <noreply@example.com>: 550 5.7.1"),
        "{fallbacks:?}"
    );

    // With nowhere to fall back to, the refusal becomes a named event.
    let fx = fixture();
    let server = PickyServer {
        refused: vec![common::NOREPLY.to_owned()],
        ..PickyServer::default()
    };
    let service = fx
        .builder()
        .mailer(Arc::new(server.clone()))
        .build()
        .expect("valid");
    service
        .request("dina@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    assert!(server.accepted.lock().expect("lock").is_empty());
    let reasons = unavailable(&fx);
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("`d1`"), "{reasons:?}");
    assert!(
        reasons[0].contains("refused sender <noreply@example.com>"),
        "{reasons:?}"
    );
}
