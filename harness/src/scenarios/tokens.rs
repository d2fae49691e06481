//! Tokens: single use, expiry, replacement, binding to the account, tampering.

use std::sync::Arc;
use std::time::Duration;

use resetkit::CompleteError;
use resetkit::account::Account;
use resetkit::hasher::PasswordHash;
use resetkit::token::{RejectReason, RevokeReason};

use super::{OWASP, SEED, defaults, scenario};
use crate::body;
use crate::runner::{Check, Ctx, GOOD_PASSWORD, ensure, fail, link_tokens};
use crate::scenario::Scenario;
use crate::scenario::Severity::Must;
use crate::target::TargetConfig;

pub(super) const SINGLE_USE: (&str, &str) = (
    "ASVS v4.0.3 2.7.3",
    "Verify that the out of band verifier authentication requests, codes, or tokens are only usable once, and only for the original authentication request.",
);
pub(super) const NO_CHANGE: (&str, &str) = (
    OWASP,
    "Do not make a change to the account until a valid token is presented.",
);
const EXPIRE: (&str, &str) = (
    OWASP,
    "Ensure that generated tokens or codes are ... Single use and expire after an appropriate period.",
);
const LINKED: (&str, &str) = (
    OWASP,
    "Ensure that generated tokens or codes are ... Linked to an individual user in the database.",
);

pub(super) fn scenarios() -> Vec<Scenario<Ctx>> {
    vec![
        scenario(
            "RST-TOKEN-001",
            "A link works once; the second use is refused",
            Must,
            SINGLE_USE,
            defaults,
            body!(single_use),
        ),
        scenario(
            "RST-TOKEN-002",
            "A link works until its lifetime ends and not at or after the end",
            Must,
            EXPIRE,
            defaults,
            body!(expiry_boundary),
        ),
        scenario(
            "RST-TOKEN-003",
            "A newer request kills the older link (newest wins)",
            Must,
            (SEED, "Tokens live forever or work twice."),
            defaults,
            body!(newest_wins),
        ),
        scenario(
            "RST-TOKEN-004",
            "A link issued before a password change is refused",
            Must,
            EXPIRE,
            defaults,
            body!(after_password_change),
        ),
        scenario(
            "RST-TOKEN-005",
            "A link issued before an email change is refused",
            Must,
            LINKED,
            defaults,
            body!(after_email_change),
        ),
        scenario(
            "RST-TOKEN-006",
            "A tampered token (one character changed) is refused",
            Must,
            (
                OWASP,
                "Ensure that generated tokens or codes are: Randomly generated using a cryptographically safe algorithm.",
            ),
            defaults,
            body!(tampered),
        ),
        scenario(
            "RST-TOKEN-007",
            "Truncated, padded, re-cased or space-wrapped tokens are refused",
            Must,
            SINGLE_USE,
            defaults,
            body!(malformed_variants),
        ),
        scenario(
            "RST-TOKEN-008",
            "One account's link resets only that account",
            Must,
            LINKED,
            defaults,
            body!(other_account),
        ),
        scenario(
            "RST-TOKEN-009",
            "After a reset, the account's other outstanding links are dead",
            Must,
            SINGLE_USE,
            keep_older_links,
            body!(others_revoked_after_reset),
        ),
        scenario(
            "RST-TOKEN-010",
            "A link for an account disabled after it was sent is refused",
            Must,
            LINKED,
            defaults,
            body!(after_disable),
        ),
        scenario(
            "RST-CONC-001",
            "20 simultaneous completes with one link: exactly one succeeds",
            Must,
            SINGLE_USE,
            defaults,
            body!(parallel_completes),
        ),
        scenario(
            "RST-DENY-001",
            "The \"this wasn't me\" link revokes the outstanding link",
            Must,
            NO_CHANGE,
            defaults,
            body!(deny_revokes),
        ),
    ]
}

fn keep_older_links(config: &mut TargetConfig) {
    config.token_policy.newest_wins = false;
}

async fn alice_token(ctx: &Ctx) -> Result<(Account, String), crate::runner::Problem> {
    let alice = ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    let mail = ctx.reset_mail_to("alice@example.test").await?;
    Ok((alice, mail.token))
}

async fn single_use(ctx: &Ctx) -> Check {
    let (_, token) = alice_token(ctx).await?;
    ctx.complete(&token, GOOD_PASSWORD)
        .await
        .map_err(|e| fail("the first use succeeds", format!("error: {e}")))?;
    ctx.expect_rejected(&token, RejectReason::AlreadyUsed, "second use")
        .await
}

async fn expiry_boundary(ctx: &Ctx) -> Check {
    let (_, token) = alice_token(ctx).await?;
    let lifetime = ctx.config.token_policy.lifetime;
    ctx.config.clock.advance(lifetime - Duration::from_secs(1));
    ctx.inspect(&token).await.map_err(|e| {
        fail(
            "one second before expiry the link still opens",
            format!("inspect: {e}"),
        )
    })?;
    ctx.config.clock.advance(Duration::from_secs(1));
    ctx.expect_rejected(&token, RejectReason::Expired, "at the end of its lifetime")
        .await
}

async fn newest_wins(ctx: &Ctx) -> Check {
    let (_, old) = alice_token(ctx).await?;
    ctx.request("alice@example.test").await?;
    let new = ctx.reset_mail_to("alice@example.test").await?.token;
    ensure(new != old, "the second request sends a new token", || {
        "the same token was sent twice".into()
    })?;
    ctx.expect_rejected(
        &old,
        RejectReason::Revoked(RevokeReason::Superseded),
        "the older link",
    )
    .await?;
    ctx.complete(&new, GOOD_PASSWORD)
        .await
        .map_err(|e| fail("the newest link works", format!("error: {e}")))?;
    Ok(())
}

async fn after_password_change(ctx: &Ctx) -> Check {
    let (alice, token) = alice_token(ctx).await?;
    // The host's own "change password" feature stores a new hash.
    let hash = PasswordHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$aG9zdHNhbHQ$aG9zdGNoYW5nZWRwYXNzd29yZA");
    ctx.target
        .accounts
        .set_password_hash(&alice.id, &hash)
        .await
        .map_err(|e| crate::runner::Problem::Error(format!("host password change: {e}")))?;
    ctx.expect_rejected(&token, RejectReason::PasswordChanged, "after a password change")
        .await
}

async fn after_email_change(ctx: &Ctx) -> Check {
    let (alice, token) = alice_token(ctx).await?;
    ctx.seed(alice.with_email(Some("alice.new@example.test".into())))
        .await?;
    ctx.expect_rejected(&token, RejectReason::EmailChanged, "after an email change")
        .await
}

async fn after_disable(ctx: &Ctx) -> Check {
    let (alice, token) = alice_token(ctx).await?;
    ctx.seed(alice.with_disabled(true)).await?;
    ctx.expect_rejected(
        &token,
        RejectReason::AccountDisabled,
        "after the account was disabled",
    )
    .await
}

fn flip_last(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    if let Some(last) = chars.last_mut() {
        *last = if *last == 'A' { 'B' } else { 'A' };
    }
    chars.into_iter().collect()
}

async fn tampered(ctx: &Ctx) -> Check {
    let (_, token) = alice_token(ctx).await?;
    let changed = flip_last(&token);
    let first = flip_first(&token);
    for variant in [changed, first] {
        match ctx.complete(&variant, GOOD_PASSWORD).await {
            Err(CompleteError::InvalidLink) => {}
            other => {
                return Err(fail(
                    "a tampered token is refused as an invalid link",
                    format!("{other:?}"),
                ));
            }
        }
    }
    ctx.complete(&token, GOOD_PASSWORD).await.map_err(|e| {
        fail(
            "the genuine link still works after tampering attempts",
            format!("error: {e}"),
        )
    })?;
    Ok(())
}

fn flip_first(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    if let Some(first) = chars.first_mut() {
        *first = if *first == 'z' { 'y' } else { 'z' };
    }
    chars.into_iter().collect()
}

async fn malformed_variants(ctx: &Ctx) -> Check {
    let (_, token) = alice_token(ctx).await?;
    let half = token.get(..token.len() / 2).unwrap_or_default().to_owned();
    let variants = [
        ("truncated", half),
        ("padded with =", format!("{token}=")),
        ("with an extra character", format!("{token}A")),
        ("upper-cased", token.to_uppercase()),
        ("space-wrapped", format!(" {token} ")),
        ("empty", String::new()),
        ("huge", "A".repeat(100_000)),
    ];
    for (what, variant) in &variants {
        if *variant == token {
            continue;
        }
        match ctx.complete(variant, GOOD_PASSWORD).await {
            Err(CompleteError::InvalidLink) => {}
            other => {
                return Err(fail(
                    format!("a {what} token is refused as an invalid link"),
                    format!("{other:?}"),
                ));
            }
        }
    }
    ctx.complete(&token, GOOD_PASSWORD)
        .await
        .map_err(|e| fail("the genuine link still works afterwards", format!("error: {e}")))?;
    Ok(())
}

async fn other_account(ctx: &Ctx) -> Check {
    let alice = ctx.alice().await?;
    let bob = Account::new("acct-bob", "bob", "bob@example.test");
    ctx.seed(bob.clone()).await?;
    ctx.request("alice@example.test").await?;
    ctx.request("bob@example.test").await?;
    let bob_token = ctx.reset_mail_to("bob@example.test").await?.token;
    let done = ctx
        .complete(&bob_token, GOOD_PASSWORD)
        .await
        .map_err(|e| fail("bob's link works", format!("error: {e}")))?;
    ensure(done.account == bob.id, "bob's link resets bob", || {
        format!("it reset {}", done.account)
    })?;
    ensure(
        !ctx.signs_in(&alice.id, GOOD_PASSWORD).await?,
        "alice's password is untouched",
        || "alice signs in with the password set through bob's link".into(),
    )?;
    let alice_token = ctx.reset_mail_to("alice@example.test").await?.token;
    ctx.inspect(&alice_token).await.map_err(|e| {
        fail(
            "alice's own link is unaffected by bob's reset",
            format!("inspect: {e}"),
        )
    })?;
    Ok(())
}

async fn others_revoked_after_reset(ctx: &Ctx) -> Check {
    let (_, first) = alice_token(ctx).await?;
    ctx.request("alice@example.test").await?;
    let second = ctx.reset_mail_to("alice@example.test").await?.token;
    ctx.complete(&second, GOOD_PASSWORD)
        .await
        .map_err(|e| fail("the second link works", format!("error: {e}")))?;
    ctx.expect_rejected(
        &first,
        RejectReason::Revoked(RevokeReason::PasswordReset),
        "an older link after the reset",
    )
    .await
}

async fn parallel_completes(ctx: &Ctx) -> Check {
    let (_, token) = alice_token(ctx).await?;
    let token = Arc::new(token);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let service = ctx.service().clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let pw = secrecy::SecretString::from(GOOD_PASSWORD.to_owned());
            service.complete(&token, pw.clone(), pw).await
        }));
    }
    let mut ok = 0;
    let mut invalid = 0;
    let mut other = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(CompleteError::InvalidLink)) => invalid += 1,
            Ok(Err(e)) => other.push(e.to_string()),
            Err(e) => return Err(crate::runner::Problem::Error(format!("task failed: {e}"))),
        }
    }
    ensure(
        ok == 1 && invalid == 19,
        "exactly 1 success and 19 \"invalid link\" answers",
        || format!("{ok} successes, {invalid} invalid-link answers, other errors: {other:?}"),
    )
}

async fn deny_revokes(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    let mail = ctx.reset_mail_to("alice@example.test").await?;
    let deny = link_tokens(&mail.message, "/reset/deny");
    let Some(deny_token) = deny.first() else {
        return Err(fail(
            "the email carries a \"this wasn't me\" link (/reset/deny)",
            "none found",
        ));
    };
    ctx.service()
        .deny(deny_token)
        .await
        .map_err(|e| fail("the \"this wasn't me\" link is accepted", format!("error: {e}")))?;
    ctx.expect_rejected(
        &mail.token,
        RejectReason::Revoked(RevokeReason::UserDenied),
        "the link after \"this wasn't me\"",
    )
    .await
}
