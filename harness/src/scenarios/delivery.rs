//! Sending: senders the server refuses, refused recipients, retries, the
//! outbox, the address mail goes to, and per-account rate limits.

use std::time::Duration;

use resetkit::account::Account;
use resetkit::delivery::DeliveryMode;
use resetkit::event::{Event, EventKind};
use resetkit::policy::{Limit, RateLimits};

use super::{OWASP, SEED, defaults, scenario};
use crate::body;
use crate::fake_smtp::{FaultRule, Stage};
use crate::runner::{Check, Ctx, ensure};
use crate::scenario::Scenario;
use crate::scenario::Severity::{Must, Should};
use crate::target::{FALLBACK_SENDER, PRIMARY_SENDER, TargetConfig};

const SENDER: (&str, &str) = (SEED, "The reset email goes out from a sender that may not send.");

pub(super) fn scenarios() -> Vec<Scenario<Ctx>> {
    vec![
        scenario(
            "RST-SEND-001",
            "The server refuses the sender at MAIL FROM: the email goes out from the fallback sender",
            Must,
            SENDER,
            defaults,
            body!(sender_fallback),
        ),
        scenario(
            "RST-SEND-006",
            "Outbox delivery: a sender refused at MAIL FROM is replaced by the fallback sender too",
            Must,
            SENDER,
            outbox,
            body!(sender_fallback),
        ),
        scenario(
            "RST-SEND-002",
            "Every sender refused: the answer is unchanged and an event names the account and each refusal",
            Must,
            SENDER,
            defaults,
            body!(all_senders_refused),
        ),
        scenario(
            "RST-SEND-003",
            "The server refuses the recipient: a permanent failure event carries the server's reply",
            Must,
            (
                "SPEC: Delivery",
                "Permanent failures are not retried; the event records why, with the server's reply.",
            ),
            defaults,
            body!(recipient_refused),
        ),
        scenario(
            "RST-SEND-004",
            "A transient failure (451) is retried with backoff and the email is delivered",
            Must,
            (
                "SPEC: Delivery",
                "The worker retries transient errors with backoff.",
            ),
            outbox,
            body!(transient_then_delivered),
        ),
        scenario(
            "RST-SEND-005",
            "In outbox mode the request does not wait for SMTP; the worker delivers",
            Should,
            (
                OWASP,
                "Ensure that the time taken for the user response message is uniform.",
            ),
            outbox,
            body!(outbox_decouples_request),
        ),
        scenario(
            "RST-MAIL-001",
            "Mail goes to the stored address, not to the spelling the user typed",
            Must,
            (
                "SPEC: Identifiers",
                "Lookups use the canonical form; mail goes to the stored address.",
            ),
            defaults,
            body!(stored_address),
        ),
        scenario(
            "RST-RATE-001",
            "Per-account rate limit caps the number of reset emails",
            Should,
            (
                OWASP,
                "Implement protections against excessive automated submissions such as rate-limiting on a per-account basis.",
            ),
            default_limits,
            body!(account_rate_limit),
        ),
    ]
}

fn outbox(config: &mut TargetConfig) {
    config.delivery = DeliveryMode::Outbox;
}

fn default_limits(config: &mut TargetConfig) {
    config.rate_limits = RateLimits {
        per_account: Some(Limit {
            max: 3,
            window: Duration::from_secs(900),
        }),
        per_client: None,
    };
}

fn describe(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| crate::event_text::kind(&e.kind))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn sender_fallback(ctx: &Ctx) -> Check {
    ctx.server.add_rule(
        FaultRule::reply(
            Stage::MailFrom,
            550,
            Some("5.7.1"),
            "Sender address not permitted",
        )
        .sender(PRIMARY_SENDER),
    );
    ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    let mail = ctx.reset_mail_to("alice@example.test").await?;
    ensure(
        mail.message.mail_from.eq_ignore_ascii_case(FALLBACK_SENDER),
        format!("the email is sent from the fallback sender {FALLBACK_SENDER}"),
        || format!("MAIL FROM {}", mail.message.mail_from),
    )?;
    let events = ctx.events().await?;
    let recorded = events.iter().any(|e| match &e.kind {
        EventKind::EmailQueued {
            from,
            sender_fallbacks,
            ..
        } => from.eq_ignore_ascii_case(FALLBACK_SENDER) && sender_fallbacks.iter().any(|f| f.contains("550")),
        _ => false,
    });
    ensure(
        recorded,
        "the event for the fallback email says the primary was refused (550)",
        || describe(&events),
    )
}

async fn all_senders_refused(ctx: &Ctx) -> Check {
    ctx.server.add_rule(
        FaultRule::reply(
            Stage::MailFrom,
            550,
            Some("5.7.1"),
            "Sender address not permitted",
        )
        .sender("*"),
    );
    let alice = ctx.alice().await?;
    let known = ctx.request("alice@example.test").await?;
    let unknown = ctx.request("nobody@example.test").await?;
    ensure(
        known == unknown,
        "the answer does not change when mail cannot be sent",
        || "the answers differ".into(),
    )?;
    let events = ctx.events().await?;
    let named = events.iter().any(|e| match &e.kind {
        EventKind::SenderUnavailable { reason } => {
            reason.contains(alice.id.0.as_str())
                && reason.contains(PRIMARY_SENDER)
                && reason.contains(FALLBACK_SENDER)
        }
        _ => false,
    });
    ensure(
        named,
        "a SenderUnavailable event naming the account and both refused senders",
        || describe(&events),
    )
}

async fn recipient_refused(ctx: &Ctx) -> Check {
    ctx.server.add_rule(
        FaultRule::reply(Stage::RcptTo, 550, Some("5.1.1"), "Mailbox unavailable")
            .recipient("alice@example.test"),
    );
    ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    let events = ctx.events().await?;
    let failed = events.iter().any(|e| match &e.kind {
        EventKind::DeliveryFailed {
            reason,
            permanent,
            will_retry,
            ..
        } => *permanent && !*will_retry && reason.contains("550") && reason.contains("Mailbox unavailable"),
        _ => false,
    });
    ensure(
        failed,
        "a permanent DeliveryFailed event with the server's 550 reply",
        || describe(&events),
    )
}

async fn transient_then_delivered(ctx: &Ctx) -> Check {
    ctx.server.add_rule(
        FaultRule::reply(Stage::RcptTo, 451, Some("4.7.1"), "Greylisted, try again later")
            .recipient("alice@example.test")
            .times(1),
    );
    ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    ctx.deliver_outbox().await?;
    let after_first = ctx.mails_to("alice@example.test").len();
    ensure(after_first == 0, "the first attempt is refused (451)", || {
        format!("{after_first} emails")
    })?;
    let events = ctx.events().await?;
    let retrying = events.iter().any(|e| {
        matches!(&e.kind, EventKind::DeliveryFailed { permanent: false, will_retry: true, reason, .. } if reason.contains("451"))
    });
    ensure(retrying, "a DeliveryFailed event that schedules a retry", || {
        describe(&events)
    })?;
    ctx.deliver_outbox().await?;
    let early = ctx.mails_to("alice@example.test").len();
    ensure(early == 0, "no retry before the backoff delay", || {
        format!("{early} emails")
    })?;
    ctx.config.clock.advance(ctx.config.retry.max_delay);
    ctx.reset_mail_to("alice@example.test").await.map(|_| ())
}

async fn outbox_decouples_request(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    let before = ctx.server.messages().len();
    ensure(before == 0, "nothing reaches SMTP during the request", || {
        format!("{before} emails")
    })?;
    ctx.reset_mail_to("alice@example.test").await.map(|_| ())
}

async fn stored_address(ctx: &Ctx) -> Check {
    let stored = "Alice.Smith@Example.test";
    ctx.seed(Account::new("acct-as", "asmith", stored)).await?;
    ctx.request("  alice.smith@EXAMPLE.TEST ").await?;
    let mail = ctx.nth_mail_to(stored, 0).await?;
    ensure(
        mail.rcpt_to == vec![stored.to_owned()],
        format!("RCPT TO exactly the stored address <{stored}>"),
        || format!("RCPT TO {:?}", mail.rcpt_to),
    )?;
    let header_to = mail
        .data_text()
        .lines()
        .any(|l| l.starts_with("To:") && l.contains(stored));
    ensure(header_to, format!("the To header carries <{stored}>"), || {
        "it does not".into()
    })
}

async fn account_rate_limit(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    for _ in 0..6 {
        ctx.request("alice@example.test").await?;
    }
    let sent = ctx.mails_to("alice@example.test").len();
    ensure(
        sent == 3,
        "at most 3 reset emails in 15 minutes (the configured limit)",
        || format!("{sent} emails"),
    )?;
    ctx.config.clock.advance(Duration::from_secs(901));
    ctx.request("alice@example.test").await?;
    let later = ctx.mails_to("alice@example.test").len();
    ensure(later == 4, "after the window another email is allowed", || {
        format!("{later} emails in total")
    })
}
