//! The token lifecycle at its seams: a link revoked while it is being spent
//! stays dead, concurrent requests leave one live link, a superseded email
//! is not delivered after the newer one, and the "this wasn't me" link has
//! a secret of its own.

use std::time::Duration;

use resetkit::CompleteError;
use resetkit::delivery::DeliveryMode;
use resetkit::event::EventKind;
use resetkit::token::{RejectReason, RevokeReason};

use super::tokens::{NO_CHANGE, SINGLE_USE};
use super::{SEED, defaults, scenario};
use crate::body;
use crate::runner::{Check, Ctx, GOOD_PASSWORD, Problem, ensure, fail, link_tokens, tokens_in};
use crate::scenario::Scenario;
use crate::scenario::Severity::Must;
use crate::target::TargetConfig;

/// How many requests race in RST-RACE-002.
const CONCURRENT_REQUESTS: usize = 20;

pub(super) fn scenarios() -> Vec<Scenario<Ctx>> {
    vec![
        scenario(
            "RST-RACE-001",
            "A link revoked while its password change is failing is never revived",
            Must,
            SINGLE_USE,
            defaults,
            body!(revoked_never_revived),
        ),
        scenario(
            "RST-RACE-002",
            "20 simultaneous requests for one account leave exactly one live link",
            Must,
            (SEED, "Tokens live forever or work twice."),
            defaults,
            body!(one_live_link),
        ),
        scenario(
            "RST-RACE-003",
            "An email whose link was superseded while it waited is not delivered",
            Must,
            (SEED, "Tokens live forever or work twice."),
            outbox_mode,
            body!(superseded_not_delivered),
        ),
        scenario(
            "RST-DENY-002",
            "The \"this wasn't me\" link cannot set a password and dies with its reset link",
            Must,
            NO_CHANGE,
            defaults,
            body!(deny_link_cannot_complete),
        ),
    ]
}

fn outbox_mode(config: &mut TargetConfig) {
    config.delivery = DeliveryMode::Outbox;
}

async fn reset_and_deny(ctx: &Ctx) -> Result<(String, String), Problem> {
    ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    let mail = ctx.reset_mail_to("alice@example.test").await?;
    let deny = link_tokens(&mail.message, "/reset/deny");
    let deny = deny.into_iter().next().ok_or_else(|| {
        fail(
            "the email carries a \"this wasn't me\" link (/reset/deny)",
            "none found",
        )
    })?;
    Ok((mail.token, deny))
}

async fn revoked_never_revived(ctx: &Ctx) -> Check {
    let (token, deny) = reset_and_deny(ctx).await?;
    let held = ctx.config.faults.fail_next_password_write();
    let service = ctx.service().clone();
    let attacker_token = token.clone();
    let mut attacker = tokio::spawn(async move {
        let pw = secrecy::SecretString::from(GOOD_PASSWORD.to_owned());
        service.complete(&attacker_token, pw.clone(), pw).await
    });
    // Wait until the token is spent and the password write hangs.
    let mut started = held.started;
    tokio::select! {
        started = &mut started => {
            if started.is_err() {
                return Err(Problem::Error("the injected fault was dropped".into()));
            }
        }
        done = &mut attacker => {
            let done = done.map_err(|e| Problem::Error(format!("task failed: {e}")))?;
            return Err(Problem::Skip(format!(
                "the target's account directory does not honour TargetConfig::faults \
                 (wrap it with TargetConfig::with_faults); complete returned {:?}",
                done.map(|c| c.account)
            )));
        }
    }
    // The owner says "this wasn't me" while the attacker's write is in flight.
    let denied = ctx.service().deny(&deny).await;
    let _ = held.resume.send(());
    let outcome = attacker
        .await
        .map_err(|e| Problem::Error(format!("task failed: {e}")))?;
    denied.map_err(|e| {
        fail(
            "the owner's \"this wasn't me\" is honoured while another request spends the link",
            format!("error: {e}"),
        )
    })?;
    ensure(
        matches!(outcome, Err(CompleteError::Unavailable(_))),
        "the failed password write is reported as unavailable",
        || format!("{outcome:?}"),
    )?;
    ctx.expect_rejected(
        &token,
        RejectReason::Revoked(RevokeReason::UserDenied),
        "the link after the failed write, revoked meanwhile",
    )
    .await
}

async fn one_live_link(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    let mut tasks = Vec::with_capacity(CONCURRENT_REQUESTS);
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(CONCURRENT_REQUESTS));
    for _ in 0..CONCURRENT_REQUESTS {
        let (service, start) = (ctx.service().clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            service
                .request(
                    "alice@example.test",
                    &resetkit::RequestContext::from_client("192.0.2.10"),
                )
                .await
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| Problem::Error(format!("task failed: {e}")))?
            .map_err(|e| fail("every request is accepted", format!("error: {e}")))?;
    }
    ctx.nth_mail_to("alice@example.test", CONCURRENT_REQUESTS - 1)
        .await?;
    let mut live = Vec::new();
    let mails = ctx.mails_to("alice@example.test");
    for (n, mail) in mails.iter().enumerate() {
        for token in tokens_in(mail) {
            if ctx.inspect(&token).await.is_ok() {
                live.push(n + 1);
            }
        }
    }
    ensure(
        live.len() == 1,
        format!("exactly one of the {} emailed links still opens", mails.len()),
        || format!("live links in emails #{live:?}"),
    )
}

async fn superseded_not_delivered(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    ctx.config.clock.advance(Duration::from_secs(30));
    ctx.request("alice@example.test").await?;
    // Both messages wait in the outbox; one worker pass finds them due.
    let newest = ctx.reset_mail_to("alice@example.test").await?;
    // Let a straggler arrive if it is going to.
    ctx.deliver_outbox().await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mails = ctx.mails_to("alice@example.test");
    ensure(
        mails.len() == 1,
        "only the newest link's email is delivered",
        || format!("{} emails delivered to alice", mails.len()),
    )?;
    ctx.inspect(&newest.token).await.map_err(|e| {
        fail(
            "the delivered email holds the live (newest) link",
            format!("inspect: {e}"),
        )
    })?;
    let events = ctx.events().await?;
    ensure(
        events.iter().any(|e| {
            matches!(
                e.kind,
                EventKind::EmailDropped {
                    reason: RejectReason::Revoked(RevokeReason::Superseded),
                    ..
                }
            )
        }),
        "the event log says the older email was not sent because its link was superseded",
        || "no email_dropped event".into(),
    )
}

async fn deny_link_cannot_complete(ctx: &Ctx) -> Check {
    let (token, deny) = reset_and_deny(ctx).await?;
    ensure(
        deny != token,
        "the \"this wasn't me\" link carries a secret of its own",
        || "it carries the reset token".into(),
    )?;
    match ctx.complete(&deny, GOOD_PASSWORD).await {
        Err(CompleteError::InvalidLink) => {}
        other => {
            return Err(fail(
                "the deny link's secret cannot set a password",
                format!("{:?}", other.map(|c| c.account)),
            ));
        }
    }
    ctx.complete(&token, GOOD_PASSWORD)
        .await
        .map_err(|e| fail("the reset link works", format!("error: {e}")))?;
    ctx.request("alice@example.test").await?;
    let newer = ctx.reset_mail_to("alice@example.test").await?;
    ensure(
        ctx.service().deny(&deny).await.is_err(),
        "a used link's \"this wasn't me\" link is dead",
        || "it was accepted".into(),
    )?;
    ctx.inspect(&newer.token).await.map_err(|e| {
        fail(
            "the owner's newer link survives an old email's deny link",
            format!("inspect: {e}"),
        )
    })?;
    Ok(())
}
