//! Whether the answer to a request reveals anything about the account.

use std::time::Duration;

use resetkit::account::Account;
use resetkit::event::{EventKind, IgnoreReason};
use resetkit::policy::{Limit, RateLimits};
use resetkit::{RequestContext, RequestError};

use super::{OWASP, SEED, defaults, scenario};
use crate::body;
use crate::runner::{Check, Ctx, ensure};
use crate::scenario::Scenario;
use crate::scenario::Severity::{Must, Should};
use crate::target::TargetConfig;

const UNIFORM: (&str, &str) = (
    OWASP,
    "Return a consistent message for both existent and non-existent accounts.",
);

pub(super) fn scenarios() -> Vec<Scenario<Ctx>> {
    vec![
        scenario(
            "RST-ENUM-001",
            "Unknown email gets the same answer as a known one, and no email is sent",
            Must,
            UNIFORM,
            defaults,
            body!(unknown_email),
        ),
        scenario(
            "RST-ENUM-002",
            "Unknown username gets the same answer as a known one",
            Must,
            UNIFORM,
            defaults,
            body!(unknown_username),
        ),
        scenario(
            "RST-ENUM-003",
            "A disabled account gets the same answer, no email, and an event says why",
            Must,
            UNIFORM,
            defaults,
            body!(disabled_account),
        ),
        scenario(
            "RST-ENUM-004",
            "Rate limits stop the emails but not the answer",
            Must,
            (
                SEED,
                "The site leaks which emails have accounts (e.g. a 429 only for known accounts).",
            ),
            tight_limits,
            body!(rate_limit_invisible),
        ),
        scenario(
            "RST-ENUM-005",
            "An unconfirmed email (when confirmation is required) gets the same answer and no email",
            Must,
            UNIFORM,
            require_confirmed,
            body!(unconfirmed_email),
        ),
        scenario(
            "RST-ENUM-006",
            "Malformed input is refused with a message naming the problem, the same for every account",
            Should,
            (
                "SPEC: The flow",
                "Every bad input gets a clear error that names what is wrong.",
            ),
            defaults,
            body!(malformed_input),
        ),
    ]
}

fn tight_limits(config: &mut TargetConfig) {
    config.rate_limits = RateLimits {
        per_account: Some(Limit {
            max: 1,
            window: Duration::from_secs(900),
        }),
        per_client: Some(Limit {
            max: 4,
            window: Duration::from_secs(900),
        }),
    };
}

fn require_confirmed(config: &mut TargetConfig) {
    config.require_confirmed_email = true;
}

type Outcome = Result<String, String>;

async fn outcome(ctx: &Ctx, identifier: &str, client: &str) -> Outcome {
    ctx.service()
        .request(identifier, &RequestContext::from_client(client))
        .await
        .map(|accepted| accepted.message().to_owned())
        .map_err(|e| e.to_string())
}

fn same(known: &Outcome, other: &Outcome, what: &str) -> Check {
    ensure(
        known == other && known.is_ok(),
        format!("{what} gets exactly the answer a known account gets: {known:?}"),
        || format!("{other:?}"),
    )
}

async fn ignored(ctx: &Ctx, reason: IgnoreReason) -> Check {
    let events = ctx.events().await?;
    ensure(
        events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::RequestIgnored { reason: r, .. } if *r == reason)),
        format!("a RequestIgnored event with reason `{}`", reason.as_str()),
        || "no such event".into(),
    )
}

async fn unknown_email(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    let known = outcome(ctx, "alice@example.test", "192.0.2.1").await;
    let unknown = outcome(ctx, "nobody@example.test", "192.0.2.1").await;
    same(&known, &unknown, "an unknown email")?;
    let stray = ctx.mails_to("nobody@example.test");
    ensure(
        stray.is_empty(),
        "no email to an address without an account",
        || format!("{} email(s) sent to nobody@example.test", stray.len()),
    )?;
    ignored(ctx, IgnoreReason::UnknownIdentifier).await
}

async fn unknown_username(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    let known = outcome(ctx, "alice", "192.0.2.1").await;
    let unknown = outcome(ctx, "mallory", "192.0.2.1").await;
    same(&known, &unknown, "an unknown username")
}

async fn disabled_account(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    ctx.seed(Account::new("acct-carol", "carol", "carol@example.test").with_disabled(true))
        .await?;
    let known = outcome(ctx, "alice@example.test", "192.0.2.1").await;
    let disabled = outcome(ctx, "carol@example.test", "192.0.2.1").await;
    same(&known, &disabled, "a disabled account")?;
    ensure(
        ctx.mails_to("carol@example.test").is_empty(),
        "no email to a disabled account",
        || "an email was sent".into(),
    )?;
    ignored(ctx, IgnoreReason::AccountDisabled).await
}

async fn rate_limit_invisible(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    let first = outcome(ctx, "alice@example.test", "192.0.2.1").await;
    let mut answers = Vec::new();
    // Account limit (1 per window) on the 2nd, client limit (4) on the 5th+.
    for n in 0..6 {
        answers.push(outcome(ctx, "alice@example.test", "192.0.2.1").await);
        answers.push(outcome(ctx, &format!("nobody{n}@example.test"), "192.0.2.1").await);
    }
    for (n, answer) in answers.iter().enumerate() {
        same(&first, answer, &format!("rate-limited request #{}", n + 2))?;
    }
    let sent = ctx.mails_to("alice@example.test").len();
    ensure(
        sent == 1,
        "the per-account limit lets exactly one email through",
        || format!("{sent} emails to alice"),
    )?;
    let limited = ctx
        .events()
        .await?
        .iter()
        .filter(|e| matches!(e.kind, EventKind::RateLimited { .. }))
        .count();
    ensure(
        limited > 0,
        "RateLimited events record the silent refusals",
        || "none".into(),
    )
}

async fn unconfirmed_email(ctx: &Ctx) -> Check {
    ctx.seed(Account::new("acct-alice", "alice", "alice@example.test").with_email_confirmed(true))
        .await?;
    ctx.seed(Account::new("acct-dan", "dan", "dan@example.test").with_email_confirmed(false))
        .await?;
    let known = outcome(ctx, "alice@example.test", "192.0.2.1").await;
    let unconfirmed = outcome(ctx, "dan@example.test", "192.0.2.1").await;
    same(&known, &unconfirmed, "an unconfirmed email")?;
    ensure(
        ctx.mails_to("dan@example.test").is_empty(),
        "no email to an unconfirmed address",
        || "an email was sent".into(),
    )?;
    ignored(ctx, IgnoreReason::EmailUnconfirmed).await
}

async fn malformed_input(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    for (input, what) in [
        ("", "empty input"),
        ("alice@example.test\r\nBcc: x@evil.example", "CR/LF"),
        ("alice\u{0}@example.test", "a NUL character"),
        (&"a".repeat(10_000), "a 10,000-character identifier"),
    ] {
        let answer = ctx.service().request(input, &RequestContext::default()).await;
        match answer {
            Err(RequestError::Invalid(e)) => ensure(
                !e.to_string().is_empty(),
                format!("{what} is refused with a message"),
                || "an empty message".into(),
            )?,
            other => ensure(false, format!("{what} is refused as invalid input"), || {
                format!("{other:?}")
            })?,
        }
    }
    let sent = ctx.server.messages().len();
    ensure(sent == 0, "no email for malformed input", || {
        format!("{sent} emails")
    })
}
