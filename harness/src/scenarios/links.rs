//! Link and message correctness of the reset email, checked with
//! [`crate::inspect`].

use crate::body;
use crate::inspect::{Check, LinkExpectation, MailExpectation, ParsedMail, check};
use crate::runner::{Check as Outcome, Ctx, Problem, ensure, fail};
use crate::scenario::Scenario;
use crate::scenario::Severity::{Must, Should};
use crate::target::{BASE_URL, PRIMARY_SENDER, RESET_PATH};

use super::{OWASP, SEED, defaults, scenario};

const HOST: (&str, &str) = (
    OWASP,
    "Don't rely on the Host header while creating the reset URLs to avoid Host Header Injection attacks. The URL should be either be hard-coded, or should be validated against a list of trusted domains.",
);
const DROPPED: (&str, &str) = (
    SEED,
    "Someone edits the template and drops the link; the link points at the wrong host.",
);

pub(super) fn scenarios() -> Vec<Scenario<Ctx>> {
    vec![
        scenario(
            "RST-LINK-001",
            "The reset email has a text and an HTML part and exactly one reset link",
            Must,
            DROPPED,
            defaults,
            body!(one_link),
        ),
        scenario(
            "RST-LINK-002",
            "The text and HTML parts carry the same link",
            Must,
            DROPPED,
            defaults,
            body!(same_link),
        ),
        scenario(
            "RST-LINK-003",
            "The link's scheme, host, port and path are the configured base; the token goes nowhere else",
            Must,
            HOST,
            defaults,
            body!(matches_base),
        ),
        scenario(
            "RST-LINK-004",
            "The full URL stands alone on a line of the text part",
            Should,
            (
                "SPEC: Links and templates",
                "The text part carries the full URL on its own line.",
            ),
            defaults,
            body!(own_line),
        ),
        scenario(
            "RST-LINK-005",
            "The token is URL-safe base64 without padding with at least 128 bits",
            Must,
            (
                OWASP,
                "Ensure that generated tokens or codes are: Randomly generated using a cryptographically safe algorithm. Sufficiently long to protect against brute-force attacks.",
            ),
            defaults,
            body!(token_shape),
        ),
        scenario(
            "RST-LINK-006",
            "No token in the subject or any other header",
            Must,
            ("SPEC: Links and templates", "The subject must not carry a token."),
            defaults,
            body!(no_token_in_headers),
        ),
        scenario(
            "RST-LINK-007",
            "Auto-Submitted, Message-ID and Date headers are present and well-formed",
            Should,
            (
                "RFC 3834 / RFC 5322",
                "Automatic responses SHOULD carry Auto-Submitted: auto-generated; Message-ID and Date identify the message.",
            ),
            defaults,
            body!(headers),
        ),
        scenario(
            "RST-LINK-008",
            "From is the configured sender and To the account's stored address",
            Must,
            (SEED, "The reset email goes out from a sender that may not send."),
            defaults,
            body!(from_and_to),
        ),
        scenario(
            "RST-LINK-009",
            "Each request gets a fresh, unpredictable token",
            Must,
            (
                OWASP,
                "Ensure that generated tokens or codes are: Randomly generated using a cryptographically safe algorithm.",
            ),
            defaults,
            body!(fresh_tokens),
        ),
    ]
}

fn expectation() -> Result<MailExpectation, Problem> {
    let link = LinkExpectation::parse(&format!("{BASE_URL}{RESET_PATH}"))
        .map_err(|e| Problem::Error(format!("reset target URL: {e}")))?;
    Ok(MailExpectation::new(link)
        .from(PRIMARY_SENDER)
        .to("alice@example.test"))
}

/// Requests a reset for alice and inspects the email; fails on any finding
/// of `wanted` that did not pass.
async fn checks(ctx: &Ctx, wanted: &[Check]) -> Outcome {
    ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    let message = ctx.nth_mail_to("alice@example.test", 0).await?;
    let mail = ParsedMail::parse(&message.data)
        .map_err(|e| fail("the reset email is a parseable MIME message", format!("{e}")))?;
    let findings = check(&mail, &expectation()?);
    let failed: Vec<String> = findings
        .iter()
        .filter(|f| wanted.contains(&f.check) && !f.ok)
        .map(|f| format!("{}: {}", f.check, f.actual))
        .collect();
    let expected: Vec<String> = findings
        .iter()
        .filter(|f| wanted.contains(&f.check) && !f.ok)
        .map(|f| format!("{}: {}", f.check, f.expected))
        .collect();
    let missing: Vec<&Check> = wanted
        .iter()
        .filter(|w| !findings.iter().any(|f| f.check == **w))
        .collect();
    ensure(missing.is_empty(), "every check ran", || {
        format!("not run (no reset link?): {missing:?}")
    })?;
    ensure(failed.is_empty(), expected.join("; "), || failed.join("; "))
}

async fn one_link(ctx: &Ctx) -> Outcome {
    checks(ctx, &[Check::BothParts, Check::OneResetLink]).await
}

async fn same_link(ctx: &Ctx) -> Outcome {
    checks(ctx, &[Check::SameLinkBothParts]).await
}

async fn matches_base(ctx: &Ctx) -> Outcome {
    checks(
        ctx,
        &[
            Check::OneResetLink,
            Check::LinkMatchesBase,
            Check::TokenStaysOnSite,
        ],
    )
    .await
}

async fn own_line(ctx: &Ctx) -> Outcome {
    checks(ctx, &[Check::LinkOnOwnLine]).await
}

async fn token_shape(ctx: &Ctx) -> Outcome {
    checks(ctx, &[Check::TokenShape]).await
}

async fn no_token_in_headers(ctx: &Ctx) -> Outcome {
    checks(ctx, &[Check::NoTokenInSubject, Check::NoTokenInHeaders]).await
}

async fn headers(ctx: &Ctx) -> Outcome {
    checks(ctx, &[Check::AutoSubmitted, Check::MessageId, Check::Date]).await
}

async fn from_and_to(ctx: &Ctx) -> Outcome {
    checks(ctx, &[Check::FromMatches, Check::ToMatches]).await
}

async fn fresh_tokens(ctx: &Ctx) -> Outcome {
    ctx.alice().await?;
    let mut seen = Vec::new();
    for _ in 0..3 {
        ctx.request("alice@example.test").await?;
        let token = ctx.reset_mail_to("alice@example.test").await?.token;
        ensure(
            !seen.contains(&token),
            "a different token for every request",
            || format!("token repeated after {} requests", seen.len() + 1),
        )?;
        seen.push(token);
    }
    Ok(())
}
