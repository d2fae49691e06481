//! The emailed link: the headers of the pages it opens, that opening it does
//! not spend it, that it works exactly once even under concurrent submits,
//! and that it dies when a newer one is requested.

use std::sync::Arc;

use tokio::sync::Barrier;

use super::{OWASP, http_body, needs_account, scenario};
use crate::http::context::{Completion, HttpCtx, driver_error};
use crate::http::exchange::Exchange;
use crate::http::html;
use crate::http::runner::HttpScenario;
use crate::http::steps::submit_password;
use crate::runner::{Check, Problem, ensure, fail};
use crate::scenario::Severity::{Must, Should};

const ONCE: (&str, &str) = (
    "ASVS v4.0.3 2.7.3",
    "Verify that the out of band verifier authentication requests, codes, or tokens are only usable once, and only for the original authentication request.",
);

pub(super) fn scenarios() -> Vec<HttpScenario> {
    vec![
        scenario(
            "RST-HTTP-008",
            "The pages the link opens send Referrer-Policy: no-referrer",
            Must,
            (
                OWASP,
                "Ensure that the reset password page adds the Referrer Policy tag with the noreferrer value in order to avoid referrer leakage.",
            ),
            needs_account,
            http_body!(referrer_policy),
        ),
        scenario(
            "RST-HTTP-009",
            "The pages the link opens send Cache-Control: no-store",
            Must,
            (
                "ASVS v4.0.3 8.2.1",
                "Verify the application sets sufficient anti-caching headers so that sensitive data is not cached in modern browsers.",
            ),
            needs_account,
            http_body!(cache_control),
        ),
        scenario(
            "RST-HTTP-010",
            "GET and HEAD of the link (mail scanners, previews) do not spend it",
            Must,
            (
                "SPEC: The flow",
                "inspect(token) never consumes the token: mail scanners and link previewers fetch GET links, and that must not burn the user's link.",
            ),
            needs_account,
            http_body!(scanners_do_not_spend),
        ),
        scenario(
            "RST-HTTP-011",
            "Parallel submits of one link: exactly one succeeds",
            Must,
            (
                "ASVS v4.0.3 11.1.6",
                "Verify the application does not suffer from \"Time Of Check to Time Of Use\" (TOCTOU) issues or other race conditions for sensitive operations.",
            ),
            needs_account,
            http_body!(parallel_submits),
        ),
        scenario(
            "RST-HTTP-012",
            "An older link stops working once a newer one is requested",
            Should,
            (
                "SPEC: Policies",
                "A new request revokes the account's older links by default (\"newest wins\").",
            ),
            needs_account,
            http_body!(newest_wins),
        ),
        scenario(
            "RST-HTTP-013",
            "A link works once: after the reset it is refused",
            Must,
            ONCE,
            needs_account,
            http_body!(single_use),
        ),
    ]
}

/// The effective referrer policy of a response: the last token a browser
/// knows in the header(s), or a `<meta name="referrer">` of an HTML page.
fn referrer_policy_of(exchange: &Exchange) -> Option<String> {
    const KNOWN: &[&str] = &[
        "no-referrer",
        "no-referrer-when-downgrade",
        "origin",
        "origin-when-cross-origin",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
        "unsafe-url",
    ];
    let from_header = exchange
        .header_all("referrer-policy")
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| KNOWN.contains(&t.as_str()))
        .last();
    from_header
        .or_else(|| html::meta_content(&exchange.body, "referrer").map(|v| v.trim().to_ascii_lowercase()))
}

async fn referrer_policy(ctx: &HttpCtx) -> Check {
    let chain = ctx.reset_page_chain().await?;
    let missing: Vec<String> = chain
        .iter()
        .filter(|e| referrer_policy_of(e).as_deref() != Some("no-referrer"))
        .map(|e| {
            format!(
                "{} {} → {}: Referrer-Policy {}",
                e.method,
                e.url,
                e.status,
                e.header("referrer-policy")
                    .map_or_else(|| "missing".to_owned(), |v| format!("{v:?}"))
            )
        })
        .collect();
    ensure(
        missing.is_empty(),
        "every response from opening the link to the set-password form sends Referrer-Policy: no-referrer",
        || missing.join("\n"),
    )
}

async fn cache_control(ctx: &HttpCtx) -> Check {
    let chain = ctx.reset_page_chain().await?;
    let missing: Vec<String> = chain
        .iter()
        .filter(|e| {
            !e.header_all("cache-control")
                .flat_map(|v| v.split(','))
                .any(|d| d.trim().eq_ignore_ascii_case("no-store"))
        })
        .map(|e| {
            format!(
                "{} {} → {}: Cache-Control {}",
                e.method,
                e.url,
                e.status,
                e.header("cache-control")
                    .map_or_else(|| "missing".to_owned(), |v| format!("{v:?}"))
            )
        })
        .collect();
    ensure(
        missing.is_empty(),
        "every response from opening the link to the set-password form sends Cache-Control: no-store",
        || missing.join("\n"),
    )
}

async fn scanners_do_not_spend(ctx: &HttpCtx) -> Check {
    let account = ctx.plain_account(1)?;
    let mail = ctx.request_link(&account).await?;
    let scanner = ctx.user("mail-scanner")?;
    scanner
        .open(&mail.link)
        .await
        .map_err(|e| driver_error("GET of the link by a scanner", e))?;
    let preview = ctx.user("link-preview")?;
    preview
        .head(&mail.link)
        .await
        .map_err(|e| driver_error("HEAD of the link", e))?;
    preview
        .get(&mail.link)
        .await
        .map_err(|e| driver_error("second GET of the link", e))?;
    let password = ctx.new_password();
    let done = ctx.complete(&mail.link, &password).await?;
    if done.is_completed() {
        ctx.remember_password(&account, &password);
    }
    ensure(
        done.is_completed(),
        "after a scanner's GET (redirects followed), a HEAD and another GET, the user can still set a password with the link",
        || done.describe(),
    )
}

async fn parallel_submits(ctx: &HttpCtx) -> Check {
    let account = ctx.plain_account(1)?;
    let mail = ctx.request_link(&account).await?;
    let n = ctx.target.checks.parallel_submits;
    let mut ready = Vec::new();
    let mut refused_early = Vec::new();
    for i in 0..n {
        let user = ctx.user(&format!("racer-{i}"))?;
        match ctx.open_reset_form(&user, &mail.link).await? {
            Ok(page) => ready.push((user, page)),
            Err(refused) => refused_early.push(refused.describe()),
        }
    }
    ensure(!ready.is_empty(), "the link opens the set-password form", || {
        refused_early.join("; ")
    })?;
    if !refused_early.is_empty() {
        ctx.note(format!(
            "{} of {n} clients could not open the form (the link may be bound to the first session): {}",
            refused_early.len(),
            refused_early.join("; ")
        ));
    }
    let barrier = Arc::new(Barrier::new(ready.len()));
    let mut tasks = Vec::new();
    for (user, page) in ready {
        let target = ctx.target.clone();
        let barrier = barrier.clone();
        let password = ctx.new_password();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let outcome = submit_password(&target, &user, &page, &password).await;
            (password, outcome)
        }));
    }
    let mut winners = Vec::new();
    let mut others = Vec::new();
    for task in tasks {
        let (password, outcome) = task
            .await
            .map_err(|e| Problem::Error(format!("a submitting task failed: {e}")))?;
        match outcome? {
            Completion::Completed(visit) => winners.push((password, visit.summary())),
            other => others.push(other.describe()),
        }
    }
    ctx.note(format!(
        "{} parallel submits: {} completed, {} not",
        winners.len() + others.len(),
        winners.len(),
        others.len()
    ));
    if let [(password, _)] = winners.as_slice() {
        ctx.remember_password(&account, password);
    }
    ensure(
        winners.len() == 1,
        format!("exactly one of {n} simultaneous submits of one link sets the password"),
        || {
            let shown: Vec<&str> = winners.iter().map(|(_, s)| s.as_str()).collect();
            format!("{} succeeded: {}", winners.len(), shown.join("; "))
        },
    )
}

async fn newest_wins(ctx: &HttpCtx) -> Check {
    let account = ctx.plain_account(2)?;
    let older = ctx.request_link(&account).await?;
    let newer = ctx.request_link(&account).await?;
    if older.link == newer.link {
        return Err(fail(
            "a new request sends a new link",
            format!("both emails carry {}", older.link),
        ));
    }
    let password = ctx.new_password();
    let old_try = ctx.complete(&older.link, &password).await?;
    if old_try.is_completed() {
        ctx.remember_password(&account, &password);
        return Err(fail(
            "the older link is refused once a newer one was requested",
            format!("the older link still set the password: {}", old_try.describe()),
        ));
    }
    let password = ctx.new_password();
    let new_try = ctx.complete(&newer.link, &password).await?;
    if !new_try.is_completed() {
        return Err(Problem::Error(format!(
            "cannot tell: the newer link did not work either ({})",
            new_try.describe()
        )));
    }
    ctx.remember_password(&account, &password);
    Ok(())
}

async fn single_use(ctx: &HttpCtx) -> Check {
    let account = ctx.plain_account(1)?;
    let mail = ctx.request_link(&account).await?;
    let first_password = ctx.new_password();
    let first = ctx.complete(&mail.link, &first_password).await?;
    if !first.is_completed() {
        return Err(Problem::Error(format!(
            "cannot check: the fresh link did not complete ({})",
            first.describe()
        )));
    }
    ctx.remember_password(&account, &first_password);
    let again = ctx.complete(&mail.link, &ctx.new_password()).await?;
    ensure(!again.is_completed(), "the used link is refused", || {
        format!("it set the password again: {}", again.describe())
    })?;
    if let Some(Err(why)) = ctx.login(&account.identifier, &first_password).await? {
        return Err(fail(
            "the password set with the link's first use still signs in",
            why,
        ));
    }
    Ok(())
}
