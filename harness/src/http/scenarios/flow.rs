//! The whole flow over HTTP: forgot → email → link → new password → sign in;
//! the email the app sends; accounts that share an address.

use std::collections::HashSet;

use url::Url;

use super::{OWASP, needs_account, needs_shared, scenario};
use crate::body;
use crate::http::context::{Completion, HttpCtx, THROTTLE_FIX, THROTTLING, first_link, reset_links};
use crate::http::driver::Submission;
use crate::http::runner::HttpScenario;
use crate::http::target_file::SharedAddress;
use crate::http::token_strength;
use crate::inspect::{self, Check as MailCheck, MailExpectation, ParsedMail};
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
            body!(happy_path),
        ),
        scenario(
            "RST-HTTP-002",
            "The app's reset email: one link to the configured page in both parts, a sound token, the stored address in To",
            Must,
            (
                "SPEC: Links and templates",
                "Both parts of the reset email carry the link; the text part shows the full URL on its own so it can be copied into a browser.",
            ),
            needs_account,
            body!(mail_inspection),
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
            "When several accounts share the email, each account gets its own link naming the username (or one email listing each account's link); asking for a reset never fails just because an email is shared.",
        ),
        needs_shared,
        body!(shared_email),
    )]
}

/// Fails unless `link` is a reset link on the target (the target file's
/// link pattern: origin and shape); every check asks this one function.
pub(super) fn link_on_target(ctx: &HttpCtx, link: &Url) -> Check {
    ctx.target
        .link_pattern()
        .on_target(link)
        .map(|_| ())
        .map_err(|why| {
            fail(
                format!("the reset link is like {}", ctx.target.link_target()),
                why,
            )
        })
}

/// Accounts RST-HTTP-001 tries before concluding that no mail comes at all.
const MAX_SILENT_ACCOUNTS: usize = 3;

async fn happy_path(ctx: &HttpCtx) -> Check {
    let mut throttled: Vec<String> = Vec::new();
    let (account, mail) = loop {
        let next = if throttled.len() >= MAX_SILENT_ACCOUNTS {
            Err(Problem::Skip("enough accounts tried".into()))
        } else {
            ctx.plain_account(1).await
        };
        let account = match next {
            Ok(account) => account,
            Err(e) if throttled.is_empty() => return Err(e),
            Err(_) => {
                let names = throttled.join(", ");
                return Err(fail(
                    "a reset email arrives for one of the listed accounts",
                    format!(
                        "no email within {:?} for any of {names} (if the app throttles and a previous run used \
                         its budget, restart it or wait for the window; {THROTTLE_FIX})",
                        ctx.target.checks.mail_wait()
                    ),
                ));
            }
        };
        let user = ctx.user("requester")?;
        let mark = ctx.mail_mark();
        let visit = ctx.forgot(&user, &ctx.typed(&account), Submission::new()).await?;
        let accepted = &ctx.target.forgot.accepted;
        accepted.check(&visit).map_err(|why| {
            fail(
                format!("the forgot-password form answers {accepted}"),
                format!("{why} ({})", visit.summary()),
            )
        })?;
        match ctx.wait_link_mail(mark, &account.email).await? {
            Some(mail) => break (account, mail),
            None => {
                let hint = ctx.limit_hint(&account.email);
                if !hint.is_empty() {
                    return Err(Problem::Error(format!(
                        "cannot check: no email to {}{hint}",
                        account.email
                    )));
                }
                if let Some(why) = ctx.throttling(&account.email) {
                    ctx.mark_exhausted(&account.email);
                    return Err(Problem::Error(why));
                }
                // Nothing arrived yet in this run: a broken app, or one that
                // still throttles this account after an earlier run. Another
                // account tells them apart.
                ctx.note(format!(
                    "No reset email to {} within {:?}; trying another listed account.",
                    account.email,
                    ctx.target.checks.mail_wait()
                ));
                ctx.mark_exhausted(&account.email);
                throttled.push(format!("`{}` <{}>", account.key(), account.email));
            }
        }
    };
    let old_password = ctx.current_password(&account);
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
    match ctx.login(account.login_name(), &password).await? {
        None => ctx.not_checked("signing in with the new password, and that the old one is refused"),
        Some(Ok(())) => {
            if let Some(old) = old_password.filter(|old| *old != password) {
                let still = ctx.login(account.login_name(), &old).await?;
                ensure(
                    !matches!(still, Some(Ok(()))),
                    "the old password no longer signs in",
                    || "it still does".into(),
                )?;
            }
        }
        Some(Err(why)) => {
            return Err(fail("signing in with the new password succeeds", why));
        }
    }
    if !throttled.is_empty() {
        return Err(Problem::Warn {
            expected: "every listed account gets its reset email".into(),
            actual: format!(
                "no email for {} although `{}` got one: {THROTTLING}. {THROTTLE_FIX}",
                throttled.join(", "),
                account.key()
            ),
        });
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
            let (account, mail) = ctx.fresh_link(1).await?;
            (mail.message, account.email)
        }
    };
    if ctx.tokens_seen().len() < 2 {
        // A second token shows which characters and parts vary.
        match ctx.fresh_link(1).await {
            Ok(_) => {}
            Err(e) => ctx.note(format!(
                "A second link for the token estimate could not be had: {e:?}"
            )),
        }
    }
    let parsed = ParsedMail::parse(&message.data)
        .map_err(|e| fail("the reset email is a well-formed MIME message", e.to_string()))?;
    let pattern = ctx.target.link_pattern();
    let link = first_link(&ctx.target, &message)
        .ok_or_else(|| fail(format!("a reset link like {pattern}"), "none in the email"))?;
    let expectation = MailExpectation::new(pattern.expectation_for(&link)).to(address);
    let mut findings: Vec<inspect::Finding> = inspect::check(&parsed, &expectation)
        .into_iter()
        .filter(|f| !matches!(f.check, MailCheck::LinkMatchesBase | MailCheck::TokenShape))
        .collect();
    findings.push(match pattern.on_target(&link) {
        Ok(_) => finding(
            MailCheck::LinkMatchesBase,
            true,
            pattern.to_string(),
            link.to_string(),
        ),
        Err(why) => finding(MailCheck::LinkMatchesBase, false, pattern.to_string(), why),
    });
    findings.push(token_finding(ctx, &link));
    let failed: Vec<_> = findings.into_iter().filter(|f| !f.ok).collect();
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

fn finding(check: MailCheck, ok: bool, expected: String, actual: String) -> inspect::Finding {
    inspect::Finding {
        check,
        ok,
        expected,
        actual,
    }
}

/// The token's shape (URL-safe characters, no padding) and its strength,
/// estimated from every token the run saw ([`token_strength`]).
fn token_finding(ctx: &HttpCtx, link: &Url) -> inspect::Finding {
    let expected = format!(
        "a token of URL-safe characters, no `=` padding, at least {MIN_TOKEN_BITS} bits of entropy \
         (estimated from the alphabet and parts of the run's tokens)"
    );
    let Some(token) = ctx.target.link_pattern().token(link) else {
        return finding(
            MailCheck::TokenShape,
            false,
            expected,
            format!("no token in {link}"),
        );
    };
    if token.contains('=') || token.contains(['+', '/']) || token.chars().any(|c| !c.is_ascii_graphic()) {
        return finding(
            MailCheck::TokenShape,
            false,
            expected,
            format!("the token `{token}` has characters outside the URL-safe set (`+`, `/`, `=` or others)"),
        );
    }
    let mut tokens = ctx.tokens_seen();
    if !tokens.contains(&token) {
        tokens.push(token);
    }
    let estimate = token_strength::estimate(&tokens);
    ctx.note(format!("Token strength: {}", estimate.explanation));
    finding(
        MailCheck::TokenShape,
        estimate.bits >= f64::from(MIN_TOKEN_BITS),
        expected,
        estimate.explanation,
    )
}

/// The least entropy a reset token must have.
const MIN_TOKEN_BITS: u32 = 128;

async fn shared_email(ctx: &HttpCtx) -> Check {
    let groups = ctx.target.shared_email_groups();
    let Some(group) = groups.first() else {
        return Err(Problem::Skip("no shared address".into()));
    };
    let group: Vec<_> = group.iter().map(|a| (*a).clone()).collect();
    let address = group[0].email.clone();
    let policy = ctx.target.forgot.shared_address;
    // What the user types: the address when the form takes one, else the
    // identifier the accounts share.
    let typed = if ctx.target.forgot.identifier_kind.takes_email() {
        address.clone()
    } else {
        group[0].identifier.clone()
    };
    let user = ctx.user("shared-requester")?;
    let mark = ctx.mail_mark();
    let visit = ctx.forgot(&user, &typed, Submission::new()).await?;
    let accepted = &ctx.target.forgot.accepted;
    accepted.check(&visit).map_err(|why| {
        fail(
            format!("a request for the shared address {typed} gets the usual answer: {accepted}"),
            format!("{why} ({})", visit.summary()),
        )
    })?;
    let names: Vec<&str> = group.iter().map(|a| a.key()).collect();
    let (mails, links) = collect_links(ctx, mark, &address, group.len()).await;
    ctx.note(format!(
        "A request for {typed} brought {mails} email(s) with {} distinct reset link(s) for {} accounts ({}); \
         declared policy: {policy:?}.",
        links.len(),
        group.len(),
        names.join(", ")
    ));
    if links.is_empty()
        && let Some(why) = ctx.throttling(&address)
    {
        return Err(Problem::Error(why));
    }
    let (expected, ok) = match policy {
        SharedAddress::OneMailPerAccount => (
            format!(
                "each account sharing {address} ({}) gets its own email with its own link (forgot.shared_address = \"one_mail_per_account\")",
                names.join(", ")
            ),
            mails >= group.len() && links.len() >= group.len(),
        ),
        SharedAddress::OneCombinedMail => (
            format!(
                "one email to {address} listing each account ({}) with its own link (forgot.shared_address = \"one_combined_mail\")",
                names.join(", ")
            ),
            mails == 1 && links.len() >= group.len(),
        ),
    };
    ensure(ok, expected, || {
        format!(
            "{mails} email(s) with {} distinct reset link(s){}",
            links.len(),
            ctx.limit_hint(&address)
        )
    })?;
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
        ctx.not_checked("which account each link reset (signing in as each account)");
        return Ok(());
    }
    let mut used = HashSet::new();
    for account in &group {
        let mut signed_in = None;
        for (i, password) in passwords.iter().enumerate() {
            if matches!(ctx.login(account.login_name(), password).await?, Some(Ok(()))) {
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
                        account.key(),
                        i + 1
                    ),
                ));
            }
            None => {
                return Err(fail(
                    format!(
                        "`{}` signs in with the password set through its link",
                        account.key()
                    ),
                    "none of the new passwords signs it in",
                ));
            }
        }
    }
    Ok(())
}

/// Emails to `address` after `mark` with a reset link, and their distinct
/// links, oldest first; waits until `want` links are there or the mail wait
/// passes.
async fn collect_links(ctx: &HttpCtx, mark: usize, address: &str, want: usize) -> (usize, Vec<Url>) {
    let deadline = std::time::Instant::now() + ctx.target.checks.mail_wait();
    loop {
        let mut links: Vec<Url> = Vec::new();
        let mut mails = 0;
        for message in ctx.mails_since(mark).iter().filter(|m| m.has_recipient(address)) {
            let found = reset_links(&ctx.target, message);
            if !found.is_empty() {
                mails += 1;
            }
            for link in found {
                if !links.contains(&link) {
                    links.push(link);
                }
            }
        }
        if links.len() >= want || std::time::Instant::now() >= deadline {
            return (mails, links);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
