//! Accounts that share one email address.

use resetkit::account::Account;
use resetkit::identifier::IdentifierMode;
use resetkit::policy::DuplicateEmailPolicy;

use super::{SEED, defaults, scenario};
use crate::body;
use crate::runner::{Check, Ctx, GOOD_PASSWORD, Problem, ensure, fail, tokens_in};
use crate::scenario::Scenario;
use crate::scenario::Severity::Must;
use crate::target::TargetConfig;

const SHARED: &str = "family@example.test";
const OTHER_PASSWORD: &str = "seven ravens over the grey meadow";
const REQ: (&str, &str) = (SEED, "Accounts that share an email cannot reset.");

pub(super) fn scenarios() -> Vec<Scenario<Ctx>> {
    vec![
        scenario(
            "RST-DUP-001",
            "Shared email, one email per account: each account resets with its own link, neither resets the other",
            Must,
            REQ,
            defaults,
            body!(per_account),
        ),
        scenario(
            "RST-DUP-002",
            "Shared email, combined email: one email lists each account with its own working link",
            Must,
            REQ,
            combined,
            body!(combined_email),
        ),
        scenario(
            "RST-DUP-003",
            "Shared email, username required: no link by email, a link by username",
            Must,
            REQ,
            username_required,
            body!(username_required_flow),
        ),
    ]
}

fn combined(config: &mut TargetConfig) {
    config.duplicates = DuplicateEmailPolicy::CombinedEmail;
}

fn username_required(config: &mut TargetConfig) {
    config.duplicates = DuplicateEmailPolicy::RequireUsername;
    config.identifier_mode = IdentifierMode::Either;
}

async fn seed_family(ctx: &Ctx) -> Result<(Account, Account), Problem> {
    let dave = Account::new("acct-dave", "dave", SHARED);
    let erin = Account::new("acct-erin", "erin", SHARED);
    ctx.seed(dave.clone()).await?;
    ctx.seed(erin.clone()).await?;
    Ok((dave, erin))
}

/// Resets each account with its own token and checks the other is untouched.
async fn reset_each(ctx: &Ctx, tokens: &[String], dave: &Account, erin: &Account) -> Check {
    let mut by_account = Vec::new();
    for token in tokens {
        let info = ctx
            .inspect(token)
            .await
            .map_err(|e| fail("every link in the email opens", format!("inspect: {e}")))?;
        by_account.push((info.account, token.clone()));
    }
    let dave_token = by_account
        .iter()
        .find(|(a, _)| *a == dave.id)
        .map(|(_, t)| t.clone());
    let erin_token = by_account
        .iter()
        .find(|(a, _)| *a == erin.id)
        .map(|(_, t)| t.clone());
    let (Some(dave_token), Some(erin_token)) = (dave_token, erin_token) else {
        return Err(fail(
            "one link for dave and one for erin",
            format!(
                "links are for {:?}",
                by_account.iter().map(|(a, _)| a.to_string()).collect::<Vec<_>>()
            ),
        ));
    };
    let done = ctx
        .complete(&dave_token, GOOD_PASSWORD)
        .await
        .map_err(|e| fail("dave's link resets dave", format!("error: {e}")))?;
    ensure(done.account == dave.id, "dave's link resets dave", || {
        format!("it reset {}", done.account)
    })?;
    ensure(
        !ctx.signs_in(&erin.id, GOOD_PASSWORD).await?,
        "dave's reset leaves erin's password alone",
        || "erin signs in with dave's new password".into(),
    )?;
    let done = ctx.complete(&erin_token, OTHER_PASSWORD).await.map_err(|e| {
        fail(
            "erin's link still works after dave's reset",
            format!("error: {e}"),
        )
    })?;
    ensure(done.account == erin.id, "erin's link resets erin", || {
        format!("it reset {}", done.account)
    })?;
    ensure(
        ctx.signs_in(&dave.id, GOOD_PASSWORD).await?,
        "erin's reset leaves dave's new password alone",
        || "dave's password changed again".into(),
    )
}

async fn per_account(ctx: &Ctx) -> Check {
    let (dave, erin) = seed_family(ctx).await?;
    ctx.request(SHARED).await?;
    let first = ctx.nth_mail_to(SHARED, 0).await?;
    let second = ctx.nth_mail_to(SHARED, 1).await?;
    let tokens: Vec<String> = [tokens_in(&first), tokens_in(&second)].concat();
    ensure(tokens.len() == 2, "two emails with one link each", || {
        format!("{} links", tokens.len())
    })?;
    reset_each(ctx, &tokens, &dave, &erin).await
}

async fn combined_email(ctx: &Ctx) -> Check {
    let (dave, erin) = seed_family(ctx).await?;
    ctx.request(SHARED).await?;
    let mail = ctx.nth_mail_to(SHARED, 0).await?;
    let count = ctx.mails_to(SHARED).len();
    ensure(count == 1, "one combined email", || format!("{count} emails"))?;
    let tokens = tokens_in(&mail);
    ensure(tokens.len() == 2, "the email lists two links", || {
        format!("{} links", tokens.len())
    })?;
    let raw = mail.data_text();
    ensure(
        raw.contains("dave") && raw.contains("erin"),
        "each link is labelled with its username",
        || "usernames missing from the email".into(),
    )?;
    reset_each(ctx, &tokens, &dave, &erin).await
}

async fn username_required_flow(ctx: &Ctx) -> Check {
    let (dave, _) = seed_family(ctx).await?;
    ctx.request(SHARED).await?;
    let mail = ctx.nth_mail_to(SHARED, 0).await?;
    ensure(
        tokens_in(&mail).is_empty(),
        "the email asks for a username and carries no link",
        || "it carries a reset link".into(),
    )?;
    ctx.request("dave").await?;
    let mail = ctx.reset_mail_to(SHARED).await?;
    let info = ctx.inspect(&mail.token).await.map_err(|e| {
        fail(
            "the link from the username request opens",
            format!("inspect: {e}"),
        )
    })?;
    ensure(info.account == dave.id, "the link is for dave", || {
        format!("it is for {}", info.account)
    })
}
