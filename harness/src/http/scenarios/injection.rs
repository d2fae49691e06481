//! What an attacker controls in the request must not steer the email: the
//! Host and forwarding headers, a repeated or list-valued identifier, and
//! addresses that only look like an account's.

use std::time::Duration;

use url::Url;

use super::flow::link_on_target;
use super::{OWASP, needs_account, needs_case_variant, needs_unicode_lookalike, scenario};
use crate::body;
use crate::fake_smtp::{CapturedMessage, Direction};
use crate::http::api::IdentifierShape;
use crate::http::context::{HttpCtx, first_link, is_reset_mail};
use crate::http::driver::Submission;
use crate::http::runner::HttpScenario;
use crate::http::target_file::Encoding;
use crate::http::target_file::api::slot_of;
use crate::http::target_file::{LookAlikeKind, TestAccount};
use crate::inspect::{ParsedMail, html_links, text_links};
use crate::runner::{Check, Problem, fail};
use crate::scenario::Severity::Must;

const HOST: (&str, &str) = (
    OWASP,
    "Don't rely on the Host header while creating the reset URLs to avoid Host Header Injection attacks. The URL should be either be hard-coded, or should be validated against a list of trusted domains.",
);

const STORED: (&str, &str) = (
    "SPEC: Policies",
    "The email goes to the address stored for the matched account, never to the address as typed (the GitHub dotless-i and Django CVE-2019-19844 class of bugs).",
);

/// Forwarding headers proxies set, each with its own attacker host so a
/// moved link names the header that moved it.
const FORWARDING: &[(&str, &str)] = &[
    ("X-Forwarded-Host", "x-forwarded-host.attacker.test"),
    ("Forwarded", "host=forwarded.attacker.test"),
    ("X-Host", "x-host.attacker.test"),
    ("X-Forwarded-Server", "x-forwarded-server.attacker.test"),
    ("X-Original-Host", "x-original-host.attacker.test"),
];

pub(super) fn scenarios() -> Vec<HttpScenario> {
    vec![
        scenario(
            "RST-HTTP-003",
            "A forged Host header cannot move the emailed link",
            Must,
            HOST,
            needs_account,
            body!(host_header),
        ),
        scenario(
            "RST-HTTP-004",
            "X-Forwarded-Host, Forwarded and similar headers cannot move the emailed link",
            Must,
            HOST,
            needs_account,
            body!(forwarding_headers),
        ),
        scenario(
            "RST-HTTP-005",
            "A repeated or list-valued identifier is refused and never mails a second address",
            Must,
            (
                "SPEC: Policies; ASVS v4.0.3 5.1.1",
                "The form takes one identifier per request: a list or a repeated field is refused as invalid input and mails no one (GitLab CVE-2023-7028 class).",
            ),
            needs_account,
            body!(repeated_identifier),
        ),
        scenario(
            "RST-HTTP-006",
            "A case variant of an address gets mail only at the stored address",
            Must,
            STORED,
            needs_case_variant,
            body!(case_variant),
        ),
        scenario(
            "RST-HTTP-007",
            "A Unicode look-alike address never receives another account's link",
            Must,
            STORED,
            needs_unicode_lookalike,
            body!(unicode_lookalike),
        ),
    ]
}

/// A short wait for mail that should not come.
fn settle(ctx: &HttpCtx) -> Duration {
    ctx.target.checks.mail_wait().min(Duration::from_secs(2))
}

async fn host_header(ctx: &HttpCtx) -> Check {
    let marker = "host-header.attacker.test";
    poisoned_request(ctx, &[("Host", marker)], "a forged Host header").await
}

async fn forwarding_headers(ctx: &HttpCtx) -> Check {
    poisoned_request(ctx, FORWARDING, "forwarding headers").await
}

/// Requests a reset with `headers` set and checks the email's links.
async fn poisoned_request(ctx: &HttpCtx, headers: &[(&str, &str)], what: &str) -> Check {
    let account = ctx.plain_account(1).await?;
    let user = ctx.user("attacker")?;
    let mark = ctx.mail_mark();
    let extra = headers
        .iter()
        .fold(Submission::new(), |s, (name, value)| s.header(*name, *value));
    let visit = ctx.forgot(&user, &ctx.typed(&account), extra).await?;
    let accepted = ctx.target.forgot.accepted.check(&visit).is_ok();
    let wait = if accepted {
        ctx.target.checks.mail_wait()
    } else {
        ctx.note(format!(
            "The app did not accept the request with {what} ({}): it cannot have mailed a moved link.",
            visit.summary()
        ));
        settle(ctx)
    };
    let is_reset = |m: &CapturedMessage| m.has_recipient(&account.email) && is_reset_mail(&ctx.target, m);
    let Some(message) = ctx.wait_mail_for(mark, wait, is_reset).await else {
        return if accepted {
            let why = ctx.throttling(&account.email).unwrap_or_default();
            if !why.is_empty() {
                ctx.mark_exhausted(&account.email);
            }
            Err(Problem::Error(format!(
                "cannot check: the request with {what} was accepted but no email to {} arrived{} {why}",
                account.email,
                ctx.limit_hint(&account.email)
            )))
        } else {
            Ok(())
        };
    };
    for link in links_in(&message) {
        let host = link.host_str().unwrap_or_default();
        if let Some((header, _)) = headers
            .iter()
            .find(|(_, value)| value.contains(host) && !host.is_empty())
        {
            return Err(fail(
                format!(
                    "{what} cannot move the link: it stays on {}",
                    ctx.target.link_target()
                ),
                format!("the email links to {link}: the host came from the {header} header"),
            ));
        }
    }
    let link = first_link(&ctx.target, &message).ok_or_else(|| {
        fail(
            format!("the email carries a reset link to {}", ctx.target.link_target()),
            "no reset link with a token in the email",
        )
    })?;
    link_on_target(ctx, &link)
}

/// Every absolute link in the text and HTML parts.
fn links_in(message: &CapturedMessage) -> Vec<Url> {
    let Ok(mail) = ParsedMail::parse(&message.data) else {
        return Vec::new();
    };
    let mut links = mail.text.as_deref().map(text_links).unwrap_or_default();
    links.extend(mail.html.as_deref().map(html_links).unwrap_or_default());
    links.iter().filter_map(|l| Url::parse(l).ok()).collect()
}

async fn repeated_identifier(ctx: &HttpCtx) -> Check {
    let account = ctx.plain_account(1).await?;
    let field = ctx.target.forgot.identifier_field.clone();
    let attacker = format!("attacker-{}@attacker.test", ctx.unique());
    let (victim, second) = if ctx.target.forgot.identifier_kind.takes_email() {
        (account.email.clone(), attacker.clone())
    } else {
        (
            account.identifier.clone(),
            format!("attacker{}", ctx.unique().replace('-', "")),
        )
    };
    // Where the identifier goes: the form field, or the API body's key.
    let api = ctx.target.forgot_api();
    let (encoding, key) = match &api {
        Some(call) => (
            call.encoding,
            slot_of(&call.body, "identifier")
                .map(|p| p.join("."))
                .unwrap_or_else(|| "identifier".into()),
        ),
        None => (Encoding::Form, field.clone()),
    };
    let probes = [IdentifierShape::Repeated, IdentifierShape::List];
    let mark = ctx.mail_mark();
    let mut accepted = Vec::new();
    for shape in probes {
        let what = match (&api, shape) {
            (None, IdentifierShape::Repeated) => {
                format!("`{field}` sent twice (the victim's, then the attacker's)")
            }
            (None, _) => format!("a list `{field}[]` of the victim's and the attacker's"),
            (Some(call), _) => format!(
                "{} ({} {})",
                shape.describe(encoding, &key),
                call.method,
                call.url
            ),
        };
        let user = ctx.user("attacker")?;
        ctx.client_room(1).await?;
        ctx.count_request(&ctx.typed(&account));
        let visit = ctx
            .forgot_shaped(&user, &victim, shape, Some(&second), &[])
            .await?;
        let refused = visit.first().status >= 400 || ctx.target.forgot.accepted.check(&visit).is_err();
        ctx.note(format!(
            "{what}: {} ({})",
            if refused { "refused" } else { "accepted" },
            visit.summary()
        ));
        if !refused {
            accepted.push(format!("{what}: {}", visit.summary()));
        }
    }
    let to_attacker = |m: &CapturedMessage| {
        m.has_recipient(&attacker)
            || ParsedMail::parse(&m.data)
                .is_ok_and(|p| p.to.iter().any(|t| t.eq_ignore_ascii_case(&attacker)))
    };
    ctx.wait_mail_for(mark, settle(ctx), to_attacker).await;
    let leaked: Vec<String> = ctx
        .mails_since(mark)
        .iter()
        .filter(|m| to_attacker(m))
        .map(|m| format!("an email with RCPT TO {:?}", m.rcpt_to))
        .chain(rcpt_lines(ctx, &attacker, false))
        .collect();
    if !leaked.is_empty() {
        return Err(fail(
            format!("no email goes to a second address smuggled into `{key}`"),
            leaked.join("; "),
        ));
    }
    if !accepted.is_empty() {
        return Err(Problem::Warn {
            expected: "a repeated or list-valued identifier is refused as invalid input (a 4xx or a form error), not processed".into(),
            actual: format!(
                "accepted like a single identifier (no email went to the second address): {}",
                accepted.join("; ")
            ),
        });
    }
    Ok(())
}

/// SMTP transcript `RCPT TO` lines naming `address` (exactly, or ignoring case).
fn rcpt_lines(ctx: &HttpCtx, address: &str, exact: bool) -> Vec<String> {
    let wanted = format!("<{address}>");
    ctx.server
        .transcripts()
        .iter()
        .flat_map(|t| t.entries.iter())
        .filter(|e| e.direction == Direction::Client && e.line.to_ascii_uppercase().starts_with("RCPT"))
        .filter(|e| {
            if exact {
                e.line.contains(&wanted)
            } else {
                e.line.to_lowercase().contains(&wanted.to_lowercase())
            }
        })
        .map(|e| format!("SMTP transcript: {}", e.line))
        .collect()
}

async fn case_variant(ctx: &HttpCtx) -> Check {
    lookalikes(ctx, LookAlikeKind::CaseVariant).await
}

async fn unicode_lookalike(ctx: &HttpCtx) -> Check {
    lookalikes(ctx, LookAlikeKind::Unicode).await
}

async fn lookalikes(ctx: &HttpCtx, kind: LookAlikeKind) -> Check {
    let cases: Vec<(String, TestAccount)> = ctx
        .target
        .lookalikes
        .iter()
        .filter_map(|l| {
            let account = ctx.target.account(&l.account)?;
            (l.kind(&account.email) == kind).then(|| (l.typed.clone(), account.clone()))
        })
        .collect();
    for (typed, account) in cases {
        let user = ctx.user("lookalike")?;
        let mark = ctx.mail_mark();
        let visit = ctx.forgot(&user, &typed, Submission::new()).await?;
        let accepted = ctx.target.forgot.accepted.check(&visit);
        ctx.note(format!(
            "{typed:?} (looks like `{}` <{}>): {} ({})",
            account.identifier,
            account.email,
            if accepted.is_ok() {
                "accepted"
            } else {
                "not accepted"
            },
            visit.summary()
        ));
        // A case variant may be matched to the account (then mail goes to the
        // stored address): wait for it. A look-alike should get nothing.
        let wait = match kind {
            LookAlikeKind::CaseVariant if accepted.is_ok() => ctx.target.checks.mail_wait(),
            _ => settle(ctx),
        };
        let lower = typed.to_lowercase();
        let to_typed = |address: &str| match kind {
            LookAlikeKind::CaseVariant => address == typed,
            LookAlikeKind::Unicode => address == typed || address.to_lowercase() == lower,
        };
        ctx.wait_mail_for(mark, wait, |m| {
            m.has_recipient(&account.email) || m.rcpt_to.iter().any(|r| to_typed(r))
        })
        .await;
        let mut wrong = Vec::new();
        let mails = ctx.mails_since(mark);
        for message in &mails {
            for rcpt in message.rcpt_to.iter().filter(|r| to_typed(r)) {
                wrong.push(format!("an email with RCPT TO <{rcpt}>"));
            }
            if let Ok(parsed) = ParsedMail::parse(&message.data) {
                for to in parsed.to.iter().filter(|t| to_typed(t)) {
                    wrong.push(format!("an email with To: {to}"));
                }
            }
        }
        wrong.extend(rcpt_lines(ctx, &typed, kind == LookAlikeKind::CaseVariant));
        if !wrong.is_empty() {
            return Err(fail(
                format!(
                    "mail for {typed:?} goes only to the stored address <{}> (or nowhere), never to the address as typed",
                    account.email
                ),
                wrong.join("; "),
            ));
        }
        let delivered: Vec<String> = mails.iter().flat_map(|m| m.rcpt_to.clone()).collect();
        ctx.note(if delivered.is_empty() {
            format!("No email for {typed:?}: the app did not match it to an account.")
        } else {
            format!("Emails for {typed:?} went to {delivered:?}.")
        });
    }
    Ok(())
}
