//! What the flow stores and matches: no clear-text identifiers in the event
//! trail, Unicode caseless matching, password length as typed, IPv6 clients
//! grouped by prefix, and template edits that hide the link refused.

use std::time::Duration;

use resetkit::CompleteError;
use resetkit::account::Account;
use resetkit::event::{EventKind, IgnoreReason, RateScope};
use resetkit::fingerprint::fingerprint;
use resetkit::identifier::canonicalize;
use resetkit::policy::{Limit, RateLimits};

use super::{NIST, OWASP, SEED, defaults, scenario};
use crate::body;
use crate::inspect::{ParsedMail, html_links};
use crate::runner::{Check, Ctx, Prepare, Problem, ensure, fail};
use crate::scenario::Scenario;
use crate::scenario::Severity::{Must, Should};
use crate::target::{BASE_URL, RESET_PATH, TargetConfig};

const SECRETS: (&str, &str) = (
    "OWASP Logging Cheat Sheet",
    "The following should usually not be recorded directly in the logs: ... Authentication passwords ... Sensitive personal data.",
);
const CASELESS: (&str, &str) = (
    "SPEC: Policies",
    "Identifiers are canonicalised one way everywhere (trim, Unicode NFKC, case folding for matching). Mail always goes to the stored address of the matched account.",
);
const TEMPLATE: (&str, &str) = (
    SEED,
    "Someone edits the email template and drops or breaks the callback link: a template that drops the link is a build-time error.",
);

/// A password someone typed into the identifier field.
const TYPED_PASSWORD: &str = "Lantern Harbour 2026 quiet";

pub(super) fn scenarios() -> Vec<Scenario<Ctx>> {
    vec![
        scenario(
            "RST-STORE-001",
            "An identifier that matches no account (often a password typed in the wrong field) is not stored in clear",
            Must,
            SECRETS,
            defaults,
            body!(no_clear_text_identifier),
        ),
        scenario(
            "RST-STORE-002",
            "An operator holding the deployment key finds an ignored request by the identifier's fingerprint",
            Should,
            (
                "SPEC: EventLog",
                "Operators and the harness read it to see what happened.",
            ),
            defaults,
            body!(fingerprint_lookup),
        ),
        scenario(
            "RST-STORE-003",
            "Identifiers match caselessly (ß/ss, final sigma, Kelvin sign) and the dotless ı stays apart",
            Must,
            CASELESS,
            defaults,
            body!(caseless_matching),
        ),
        scenario(
            "RST-STORE-004",
            "IPv6 clients of one /64 share the per-client limit; IPv4-mapped addresses count as IPv4",
            Must,
            (
                OWASP,
                "Implement protections against excessive automated submissions such as rate-limiting on a per-account basis, requiring a CAPTCHA, or other controls.",
            ),
            client_limit,
            body!(ipv6_prefix_limit),
        ),
        scenario(
            "RST-PW-007",
            "Length is counted as typed: one character that NFKC expands to 18 (U+FDFA) is too short",
            Must,
            (
                NIST,
                "Verifiers SHALL require passwords that are used as a single-factor authentication mechanism to be a minimum of 15 characters in length.",
            ),
            defaults,
            body!(expanding_character),
        ),
        scenario(
            "RST-TPL-001",
            "A template edit that leaves the reset link only inside an HTML comment is refused",
            Must,
            TEMPLATE,
            Prepare::refused(link_in_comment),
            body!(visible_link),
        ),
        scenario(
            "RST-TPL-002",
            "A template edit that shows the reset link only for the build-time sample account is refused",
            Must,
            TEMPLATE,
            Prepare::refused(link_for_sample_only),
            body!(visible_link),
        ),
    ]
}

fn client_limit(config: &mut TargetConfig) {
    config.rate_limits = RateLimits {
        per_account: None,
        per_client: Some(Limit {
            max: 20,
            window: Duration::from_secs(900),
        }),
    };
}

fn link_in_comment(config: &mut TargetConfig) {
    config.templates.locale_mut("en").reset.html = "<!doctype html><html><body><p>Hello {{ username }},</p>\
         <!-- <p><a href=\"{{ link }}\">Choose a new password</a></p> -->\
         <p><a href=\"{{ deny_link }}\">This wasn't me</a></p></body></html>"
        .into();
}

fn link_for_sample_only(config: &mut TargetConfig) {
    config.templates.locale_mut("en").reset.html = "<!doctype html><html><body><p>Hello {{ username }},</p>\
         {% if username == \"sample-user-a\" %}<p><a href=\"{{ link }}\">Choose a new password</a></p>{% endif %}\
         <p><a href=\"{{ deny_link }}\">This wasn't me</a></p></body></html>"
        .into();
}

/// Every event: the plain line people read, and the whole value (every
/// field, also of event kinds the plain form does not know) to search.
async fn trail(ctx: &Ctx) -> Result<Vec<(String, String)>, Problem> {
    Ok(ctx
        .events()
        .await?
        .iter()
        .map(|e| {
            (
                crate::event_text::line(e),
                format!("{:?} {:?}", e.account, e.kind).to_lowercase(),
            )
        })
        .collect())
}

async fn no_clear_text_identifier(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    ctx.request(TYPED_PASSWORD).await?;
    ctx.request("nobody.at.all@example.test").await?;
    let trail = trail(ctx).await?;
    for clear in [TYPED_PASSWORD, "nobody.at.all@example.test"] {
        for form in [clear.to_lowercase(), canonicalize(clear)] {
            let holding: Vec<&str> = trail
                .iter()
                .filter(|(_, full)| full.contains(&form))
                .map(|(line, _)| line.as_str())
                .collect();
            if !holding.is_empty() {
                return Err(fail(
                    format!("the event trail does not hold the unknown identifier {clear:?} in clear"),
                    format!("it does, in:\n{}", holding.join("\n")),
                ));
            }
        }
    }
    Ok(())
}

async fn fingerprint_lookup(ctx: &Ctx) -> Check {
    ctx.request(TYPED_PASSWORD).await?;
    let wanted = fingerprint(&TargetConfig::fingerprint_key(), TYPED_PASSWORD);
    let events = ctx.events().await?;
    ensure(
        events.iter().any(|e| {
            matches!(&e.kind, EventKind::RequestIgnored { reason: IgnoreReason::UnknownIdentifier, fingerprint }
                if *fingerprint == wanted)
        }),
        "a RequestIgnored event whose fingerprint is fingerprint(deployment key, identifier)",
        || {
            let lines: Vec<String> = events.iter().map(crate::event_text::line).collect();
            format!("events:\n{}", lines.join("\n"))
        },
    )
}

async fn caseless_matching(ctx: &Ctx) -> Check {
    ctx.seed(Account::new("acct-sharp-s", "straße", "sharp-s@example.test"))
        .await?;
    ctx.seed(Account::new("acct-sigma", "σίσυφος", "sigma@example.test"))
        .await?;
    ctx.seed(Account::new(
        "acct-kelvin",
        "\u{212A}elvin",
        "kelvin@example.test",
    ))
    .await?;
    ctx.seed(Account::new("acct-dotless", "mıke", "dotless@example.test"))
        .await?;
    for (typed, stored) in [
        ("STRASSE", "sharp-s@example.test"),
        ("ΣΊΣΥΦΟΣ", "sigma@example.test"),
        ("KELVIN", "kelvin@example.test"),
    ] {
        ctx.request(typed).await?;
        ctx.nth_mail_to(stored, 0).await.map_err(|_| {
            fail(
                format!("{typed:?} finds the account and mails {stored}"),
                "no email arrived",
            )
        })?;
    }
    ctx.request("MIKE").await?;
    ctx.request("mike").await?;
    ensure(
        ctx.mails_to("dotless@example.test").is_empty(),
        "MIKE and mike do not reach the account `mıke` (dotless ı)",
        || "the dotless account got an email".into(),
    )
}

/// How many requests the per-client limit refused so far: the first of
/// each window is recorded at once, the rest as a count when the window
/// has passed, so the clock is moved past it and the counts flushed.
async fn limited(ctx: &Ctx) -> Result<u64, Problem> {
    ctx.config
        .clock
        .advance(std::time::Duration::from_secs(24 * 3600));
    ctx.service()
        .flush_throttled()
        .await
        .map_err(|e| Problem::Error(format!("recording the rate-limit counts: {e}")))?;
    Ok(ctx
        .events()
        .await?
        .iter()
        .map(|e| match e.kind {
            EventKind::RateLimited {
                scope: RateScope::Client,
                count,
                ..
            } => count,
            _ => 0,
        })
        .sum())
}

async fn ipv6_prefix_limit(ctx: &Ctx) -> Check {
    for i in 1..=25u32 {
        ctx.request_from(
            "nobody@example.test",
            &format!("2001:db8:77:1:{:x}::{i:x}", i * 2591),
        )
        .await?;
    }
    let after_v6 = limited(ctx).await?;
    ensure(
        after_v6 == 5,
        "25 requests from 25 addresses of one /64 under a limit of 20: 5 are limited",
        || format!("{after_v6} were limited"),
    )?;
    for _ in 0..10 {
        ctx.request_from("nobody@example.test", "198.51.100.30").await?;
        ctx.request_from("nobody@example.test", "::ffff:198.51.100.30")
            .await?;
    }
    ctx.request_from("nobody@example.test", "::ffff:198.51.100.30")
        .await?;
    let after_v4 = limited(ctx).await? - after_v6;
    ensure(
        after_v4 == 1,
        "21 requests from one IPv4 client, 11 of them written IPv4-mapped: 1 is limited",
        || format!("{after_v4} were limited"),
    )
}

async fn expanding_character(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    let token = ctx.reset_mail_to("alice@example.test").await?.token;
    match ctx.complete(&token, "\u{FDFA}").await {
        Err(CompleteError::PasswordRejected(_)) => Ok(()),
        other => Err(fail(
            "a one-character password is refused as too short",
            format!("{:?}", other.map(|d| d.account)),
        )),
    }
}

/// Runs only when the target accepted an edited template: does the email
/// it sends still carry a reset link the user can click?
async fn visible_link(ctx: &Ctx) -> Check {
    ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    let mail = ctx.nth_mail_to("alice@example.test", 0).await?;
    let parsed =
        ParsedMail::parse(&mail.data).map_err(|e| Problem::Error(format!("parsing the email: {e}")))?;
    let reset = format!("{BASE_URL}{RESET_PATH}?");
    let clickable = parsed
        .html
        .as_deref()
        .map(html_links)
        .unwrap_or_default()
        .into_iter()
        .any(|l| l.starts_with(&reset));
    ensure(
        clickable,
        "the HTML part has a reset link the user can click",
        || "the email went out without one (see the raw message)".into(),
    )
}
