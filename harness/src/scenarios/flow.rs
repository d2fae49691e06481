//! The happy path and what must follow a reset.

use resetkit::event::EventKind;
use resetkit::mail::EmailKind;

use super::{OWASP, defaults, scenario};
use crate::body;
use crate::runner::{Check, Ctx, GOOD_PASSWORD, ensure, fail, tokens_in};
use crate::scenario::Scenario;
use crate::scenario::Severity::{Must, Should};

pub(super) fn scenarios() -> Vec<Scenario<Ctx>> {
    vec![
        scenario(
            "RST-FLOW-001",
            "Request, email, link, new password: the new password signs in",
            Must,
            (
                OWASP,
                "Once they have set their new password, the user should then login through the usual mechanism.",
            ),
            defaults,
            body!(happy_path),
        ),
        scenario(
            "RST-FLOW-002",
            "Opening the link (inspect) does not spend it",
            Must,
            (
                "SPEC: The flow",
                "inspect never consumes the token; only complete does.",
            ),
            defaults,
            body!(inspect_does_not_consume),
        ),
        scenario(
            "RST-FLOW-003",
            "A \"password changed\" notice is sent after a reset, without the password or a link token",
            Must,
            (
                "ASVS v4.0.3 2.5.5",
                "Verify that if an authentication factor is changed or replaced, that the user is notified of this event.",
            ),
            defaults,
            body!(password_changed_notice),
        ),
        scenario(
            "RST-FLOW-004",
            "The account's sessions are revoked after a reset",
            Should,
            (
                "ASVS v4.0.3 3.3.3",
                "Verify that the application gives the option to terminate all other active sessions after a successful password change (including change via password reset/recovery).",
            ),
            defaults,
            body!(sessions_revoked),
        ),
        scenario(
            "RST-FLOW-005",
            "A reset can be requested by username; the email goes to the stored address",
            Must,
            (
                "SPEC: Identifier mode",
                "Either mode accepts an email address or a username; mail always goes to the stored address.",
            ),
            defaults,
            body!(by_username),
        ),
    ]
}

async fn happy_path(ctx: &Ctx) -> Check {
    let alice = ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    let mail = ctx.reset_mail_to("alice@example.test").await?;
    let info = ctx.inspect(&mail.token).await.map_err(|e| {
        fail(
            "the fresh link opens the new-password page",
            format!("inspect: {e}"),
        )
    })?;
    ensure(info.account == alice.id, "the link is for alice", || {
        format!("it is for {}", info.account)
    })?;
    let done = ctx
        .complete(&mail.token, GOOD_PASSWORD)
        .await
        .map_err(|e| fail("complete with a good password succeeds", format!("error: {e}")))?;
    ensure(done.account == alice.id, "alice's password is reset", || {
        format!("{} was reset", done.account)
    })?;
    ensure(
        ctx.signs_in(&alice.id, GOOD_PASSWORD).await?,
        "the new password signs alice in",
        || "verify_password returned false".into(),
    )
}

async fn inspect_does_not_consume(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    let mail = ctx.reset_mail_to("alice@example.test").await?;
    for n in 1..=3 {
        ctx.inspect(&mail.token).await.map_err(|e| {
            fail(
                "the link can be opened repeatedly before use",
                format!("inspect #{n}: {e}"),
            )
        })?;
    }
    ctx.complete(&mail.token, GOOD_PASSWORD).await.map_err(|e| {
        fail(
            "after three inspections the link still completes",
            format!("error: {e}"),
        )
    })?;
    Ok(())
}

async fn password_changed_notice(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    let mail = ctx.reset_mail_to("alice@example.test").await?;
    ctx.complete(&mail.token, GOOD_PASSWORD)
        .await
        .map_err(|e| fail("complete succeeds", format!("error: {e}")))?;
    let notice = ctx.nth_mail_to("alice@example.test", 1).await?;
    let raw = notice.data_text();
    ensure(
        !raw.contains(GOOD_PASSWORD),
        "the notice does not contain the new password",
        || "the new password appears in the notice".into(),
    )?;
    ensure(
        tokens_in(&notice).is_empty(),
        "the notice carries no reset token",
        || "the notice contains a reset link with a token".into(),
    )?;
    let queued = ctx.events().await?.into_iter().any(|e| {
        matches!(
            e.kind,
            EventKind::EmailQueued {
                email: EmailKind::PasswordChanged,
                ..
            }
        )
    });
    ensure(
        queued,
        "an EmailQueued event for the PasswordChanged email",
        || "none recorded".into(),
    )
}

async fn sessions_revoked(ctx: &Ctx) -> Check {
    let alice = ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    let mail = ctx.reset_mail_to("alice@example.test").await?;
    ctx.complete(&mail.token, GOOD_PASSWORD)
        .await
        .map_err(|e| fail("complete succeeds", format!("error: {e}")))?;
    let revoked = ctx.config.sessions.revoked();
    ensure(
        revoked == vec![alice.id.clone()],
        "the session hook is called once, for alice",
        || format!("hook calls: {revoked:?}"),
    )
}

async fn by_username(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    ctx.request("Alice").await?;
    let mail = ctx.reset_mail_to("alice@example.test").await?;
    ensure(
        mail.message.rcpt_to == vec!["alice@example.test".to_owned()],
        "exactly the stored address receives the email",
        || format!("RCPT TO {:?}", mail.message.rcpt_to),
    )
}
