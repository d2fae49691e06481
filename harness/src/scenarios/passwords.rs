//! The new-password step: confirmation and password policy.

use resetkit::CompleteError;
use secrecy::SecretString;

use super::{NIST, OWASP, defaults, scenario};
use crate::body;
use crate::runner::{Check, Ctx, GOOD_PASSWORD, Problem, ensure, fail};
use crate::scenario::Scenario;
use crate::scenario::Severity::{Must, Should};

pub(super) fn scenarios() -> Vec<Scenario<Ctx>> {
    vec![
        scenario(
            "RST-PW-001",
            "A confirmation that differs is refused and the link stays usable",
            Must,
            (
                OWASP,
                "The user should confirm the password they set by writing it twice.",
            ),
            defaults,
            body!(confirmation_mismatch),
        ),
        scenario(
            "RST-PW-002",
            "A password shorter than 15 characters is refused (link stays usable)",
            Must,
            (
                NIST,
                "Verifiers SHALL require passwords that are used as a single-factor authentication mechanism to be a minimum of 15 characters in length.",
            ),
            defaults,
            body!(too_short),
        ),
        scenario(
            "RST-PW-003",
            "A commonly used password is refused",
            Must,
            (
                NIST,
                "Verifiers SHALL compare the prospective secret against a blocklist that contains known commonly used, expected, or compromised passwords.",
            ),
            defaults,
            body!(blocklisted),
        ),
        scenario(
            "RST-PW-004",
            "A password equal to the account's email address or username is refused",
            Should,
            (
                NIST,
                "The blocklist SHOULD include ... context-specific words, such as the name of the service, the username, and derivatives thereof.",
            ),
            defaults,
            body!(equals_identity),
        ),
        scenario(
            "RST-PW-005",
            "64-character passwords are accepted; a 10,000-character one is refused cleanly",
            Should,
            (
                NIST,
                "Verifiers SHOULD permit a maximum password length of at least 64 characters.",
            ),
            defaults,
            body!(long_passwords),
        ),
        scenario(
            "RST-PW-006",
            "Unicode and spaces are accepted, and the NFKC-equivalent form signs in",
            Should,
            (
                NIST,
                "Unicode characters SHOULD be accepted ... the verifier SHOULD apply the Normalization Process for Stabilized Strings using either the NFKC or NFKD normalization.",
            ),
            defaults,
            body!(unicode),
        ),
    ]
}

async fn token(ctx: &Ctx) -> Result<String, Problem> {
    ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    Ok(ctx.reset_mail_to("alice@example.test").await?.token)
}

async fn refused(ctx: &Ctx, token: &str, password: &str, what: &str) -> Check {
    match ctx.complete(token, password).await {
        Err(CompleteError::PasswordRejected(_)) => {}
        other => {
            return Err(fail(
                format!("{what} is refused by the password policy"),
                format!("{:?}", other.map(|d| d.account)),
            ));
        }
    }
    ctx.inspect(token).await.map_err(|e| {
        fail(
            format!("after refusing {what} the link still works"),
            format!("inspect: {e}"),
        )
    })?;
    Ok(())
}

async fn accepted(ctx: &Ctx, token: &str, password: &str, what: &str) -> Check {
    ctx.complete(token, password)
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("{what} is accepted"), format!("error: {e}")))
}

async fn confirmation_mismatch(ctx: &Ctx) -> Check {
    let token = token(ctx).await?;
    let result = ctx
        .service()
        .complete(
            &token,
            SecretString::from(GOOD_PASSWORD.to_owned()),
            SecretString::from(format!("{GOOD_PASSWORD}!")),
        )
        .await;
    ensure(
        matches!(result, Err(CompleteError::ConfirmationMismatch)),
        "a differing confirmation is refused as a mismatch",
        || format!("{:?}", result.map(|d| d.account)),
    )?;
    accepted(
        ctx,
        &token,
        GOOD_PASSWORD,
        "the same link with a matching confirmation",
    )
    .await
}

async fn too_short(ctx: &Ctx) -> Check {
    let token = token(ctx).await?;
    refused(ctx, &token, "Tr0ub4dor&3xyz", "a 14-character password").await?;
    accepted(ctx, &token, "Tr0ub4dor&3wxyz", "a 15-character password").await
}

async fn blocklisted(ctx: &Ctx) -> Check {
    let token = token(ctx).await?;
    refused(ctx, &token, "qwertyuiopasdfghjkl", "a keyboard-walk password").await?;
    refused(ctx, &token, "passwordpassword", "\"passwordpassword\"").await
}

async fn equals_identity(ctx: &Ctx) -> Check {
    let token = token(ctx).await?;
    refused(ctx, &token, "alice@example.test", "the account's email address").await?;
    refused(
        ctx,
        &token,
        "alice@example.test!!",
        "the email address with a suffix",
    )
    .await
}

async fn long_passwords(ctx: &Ctx) -> Check {
    let token = token(ctx).await?;
    refused(ctx, &token, &"xq7!".repeat(2_500), "a 10,000-character password").await?;
    let sixty_four: String = "mountain river forest lake ".chars().cycle().take(64).collect();
    accepted(ctx, &token, &sixty_four, "a 64-character password").await
}

async fn unicode(ctx: &Ctx) -> Check {
    let alice = ctx.alice().await?;
    ctx.request("alice@example.test").await?;
    let token = ctx.reset_mail_to("alice@example.test").await?.token;
    // "ﬁ" (U+FB01) is NFKC-equivalent to "fi"; "é" composed vs decomposed.
    let typed = "ﬁnal café 🔑 пароль secret";
    let equivalent = "final cafe\u{301} 🔑 пароль secret";
    accepted(ctx, &token, typed, "a password with Unicode, emoji and spaces").await?;
    ensure(
        ctx.signs_in(&alice.id, typed).await?,
        "the same Unicode password signs in",
        || "it does not".into(),
    )?;
    ensure(
        ctx.signs_in(&alice.id, equivalent).await?,
        "an NFKC-equivalent spelling signs in",
        || "it does not (no normalisation)".into(),
    )
}
