//! The whole flow over HTTP: forgot → email → link → new password → sign in;
//! the email the app sends; accounts that share an address.

use std::collections::HashSet;

use url::Url;

use super::{OWASP, http_body, needs_account, needs_shared, scenario};
use crate::http::context::{Completion, HttpCtx};
use crate::http::driver::Submission;
use crate::http::runner::HttpScenario;
use crate::inspect::{self, Check as MailCheck, MailExpectation, ParsedMail, find_reset_links};
use crate::runner::{Check, Problem, ensure, fail};
use crate::scenario::Severity::Must;

pub(super) fn first() -> Vec<HttpScenario> {
    vec![
        scenario(
            "RST-HTTP-001",
            "Happy path: forgot form → email → link → new password → sign in with it",
            Must,
            (
                OWASP,
                "Once they have set their new password, the user should then login through the usual mechanism.",
            ),
            needs_account,
            http_body!(happy_path),
        ),
        scenario(
            "RST-HTTP-002",
            "The app's reset email: one link to the configured page in both parts, a sound token, the stored address in To",
            Must,
            (
                "SPEC: Links and templates",
                "Both bodies must contain the link; the text body must contain the full URL on its own so it can be copied into a browser.",
            ),
            needs_account,
            http_body!(mail_inspection),
        ),
    ]
}

pub(super) fn shared() -> Vec<HttpScenario> {
    vec![scenario(
        "RST-HTTP-014",
        "Accounts sharing one address can each reset their own password",
        Must,
        (
            "SPEC: Policies",
            "When several accounts share the email, the default sends each account its own link naming the username. The flow never fails just because an email is shared.",
        ),
        needs_shared,
        http_body!(shared_email),
    )]
}

/// Fails unless `link` is on the configured link target's origin and path.
pub(super) fn link_on_target(ctx: &HttpCtx, link: &Url) -> Check {
    let expected = ctx.target.link_target();
    ensure(
        link.origin() == expected.origin() && link.path() == expected.path(),
        format!("the reset link points at {expected}"),
        || format!("it points at {link}"),
    )
}

async fn happy_path(ctx: &HttpCtx) -> Check {
    let account = ctx.plain_account(1)?;
    let old_password = ctx.current_password(&account);
    let user = ctx.user("requester")?;
    let mark = ctx.mail_mark();
    let visit = ctx.forgot(&user, &account.identifier, Submission::new()).await?;
    let accepted = &ctx.target.forgot.accepted;
    accepted.check(&visit).map_err(|why| {
        fail(
            format!("the forgot-password form answers {accepted}"),
            format!("{why} ({})", visit.summary()),
        )
    })?;
    let mail = ctx.link_mail(mark, &account.email, true).await?;
    ctx.keep_sample_mail(&mail.message, &account.email);
    link_on_target(ctx, &mail.link)?;
    let password = ctx.new_password();
    let done = ctx.complete(&mail.link, &password).await?;
    ensure(
        done.is_completed(),
        format!(
            "the link leads to the set-password form and submitting it gives {}",
            ctx.target.set_password.success
        ),
        || done.describe(),
    )?;
    ctx.remember_password(&account, &password);
    match ctx.login(&account.identifier, &password).await? {
        None => {
            ctx.note(
                "The target file describes no [login]: signing in with the new password was not checked.",
            );
            return Ok(());
        }
        Some(Ok(())) => {}
        Some(Err(why)) => {
            return Err(fail("signing in with the new password succeeds", why));
        }
    }
    if let Some(old) = old_password.filter(|old| *old != password) {
        let still = ctx.login(&account.identifier, &old).await?;
        ensure(
            !matches!(still, Some(Ok(()))),
            "the old password no longer signs in",
            || "it still does".into(),
        )?;
    }
    Ok(())
}

/// Checks whose failure only warns (the in-process suite rates them SHOULD).
fn advisory(check: MailCheck) -> bool {
    matches!(
        check,
        MailCheck::LinkOnOwnLine | MailCheck::AutoSubmitted | MailCheck::MessageId | MailCheck::Date
    )
}

async fn mail_inspection(ctx: &HttpCtx) -> Check {
    let (message, address) = match ctx.sample_mail() {
        Some(sample) => {
            ctx.note("Inspecting the reset email captured by RST-HTTP-001.");
            sample
        }
        None => {
            let account = ctx.plain_account(1)?;
            let mail = ctx.request_link(&account).await?;
            (mail.message, account.email)
        }
    };
    let parsed = ParsedMail::parse(&message.data)
        .map_err(|e| fail("the reset email is a well-formed MIME message", e.to_string()))?;
    let expectation = MailExpectation::new(ctx.target.link_expectation()).to(address);
    let failed: Vec<_> = inspect::check(&parsed, &expectation)
        .into_iter()
        .filter(|f| !f.ok)
        .collect();
    let describe = |findings: Vec<&inspect::Finding>| {
        findings
            .iter()
            .map(|f| format!("{}: expected {}; got {}", f.check, f.expected, f.actual))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (should, must): (Vec<_>, Vec<_>) = failed.iter().partition(|f| advisory(f.check));
    if !must.is_empty() {
        return Err(fail(
            "every mail-inspection check holds",
            describe(must.into_iter().chain(should).collect()),
        ));
    }
    if !should.is_empty() {
        return Err(Problem::Warn {
            expected:
                "the advisory mail checks hold (link on its own line, Auto-Submitted, Message-ID, Date)"
                    .into(),
            actual: describe(should),
        });
    }
    Ok(())
}

async fn shared_email(ctx: &HttpCtx) -> Check {
    let groups = ctx.target.shared_email_groups();
    let Some(group) = groups.first() else {
        return Err(Problem::Skip("no shared address".into()));
    };
    let group: Vec<_> = group.iter().map(|a| (*a).clone()).collect();
    let address = group[0].email.clone();
    let user = ctx.user("shared-requester")?;
    let mark = ctx.mail_mark();
    let visit = ctx.forgot(&user, &address, Submission::new()).await?;
    let accepted = &ctx.target.forgot.accepted;
    accepted.check(&visit).map_err(|why| {
        fail(
            format!("a request for the shared address {address} gets the usual answer: {accepted}"),
            format!("{why} ({})", visit.summary()),
        )
    })?;
    let mut links = collect_links(ctx, mark, &address, group.len()).await;
    if links.len() < group.len() {
        ctx.note(format!(
            "A request for {address} brought {} reset link(s) for {} accounts; asking by each account's identifier too.",
            links.len(),
            group.len()
        ));
        for account in &group {
            let user = ctx.user("shared-requester")?;
            ctx.forgot(&user, &account.identifier, Submission::new()).await?;
        }
        links = collect_links(ctx, mark, &address, group.len()).await;
    }
    let names: Vec<&str> = group.iter().map(|a| a.identifier.as_str()).collect();
    ensure(
        links.len() >= group.len(),
        format!(
            "each account sharing {address} ({}) gets its own reset link",
            names.join(", ")
        ),
        || {
            format!(
                "{} distinct reset link(s) arrived{}",
                links.len(),
                ctx.limit_hint(&address)
            )
        },
    )?;
    // Newest links last: the newest link per account is the one that works.
    let mut passwords = Vec::new();
    for link in links.iter().rev().take(group.len()) {
        let password = ctx.new_password();
        match ctx.complete(link, &password).await? {
            Completion::Completed(_) => passwords.push(password),
            other => {
                return Err(fail(
                    format!("each of the {} links sets its account's password", group.len()),
                    format!("{link}: {}", other.describe()),
                ));
            }
        }
    }
    if ctx.target.login.is_none() {
        ctx.note("No [login] in the target file: which account each link reset was not checked.");
        return Ok(());
    }
    let mut used = HashSet::new();
    for account in &group {
        let mut signed_in = None;
        for (i, password) in passwords.iter().enumerate() {
            if matches!(ctx.login(&account.identifier, password).await?, Some(Ok(()))) {
                signed_in = Some(i);
                break;
            }
        }
        match signed_in {
            Some(i) if used.insert(i) => ctx.remember_password(account, &passwords[i]),
            Some(i) => {
                return Err(fail(
                    "each account's own link resets that account only",
                    format!(
                        "`{}` signs in with the password set through link #{}, as another account does",
                        account.identifier,
                        i + 1
                    ),
                ));
            }
            None => {
                return Err(fail(
                    format!(
                        "`{}` signs in with the password set through its link",
                        account.identifier
                    ),
                    "none of the new passwords signs it in",
                ));
            }
        }
    }
    Ok(())
}

/// Distinct reset links in mail to `address` after `mark`, oldest first;
/// waits until `want` are there or the mail wait passes.
async fn collect_links(ctx: &HttpCtx, mark: usize, address: &str, want: usize) -> Vec<Url> {
    let deadline = std::time::Instant::now() + ctx.target.checks.mail_wait();
    loop {
        let mut links: Vec<Url> = Vec::new();
        for message in ctx.mails_since(mark).iter().filter(|m| m.has_recipient(address)) {
            let Ok(parsed) = ParsedMail::parse(&message.data) else {
                continue;
            };
            for link in find_reset_links(&parsed, &ctx.target.link_expectation()) {
                if link.token.is_some() && !link.relative && !links.contains(&link.url) {
                    links.push(link.url);
                }
            }
        }
        if links.len() >= want || std::time::Instant::now() >= deadline {
            return links;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
