//! The emailed link: the headers of the pages it opens, that opening it does
//! not spend it, that it works exactly once even under concurrent submits,
//! and that it dies when a newer one is requested.

use super::{OWASP, needs_account, scenario};
use crate::body;
use crate::http::context::{Completion, HttpCtx, driver_error};
use crate::http::exchange::Exchange;
use crate::http::html;
use crate::http::race::race;
use crate::http::runner::HttpScenario;
use crate::http::steps::{classify_submit, password_submission};
use crate::http::target_file::{HttpTarget, LinkPage};
use crate::runner::{Check, Problem, ensure, fail};
use crate::scenario::Severity::{Must, Should};

/// Applies when the target lists an account and the harness can load the
/// link's page (served by the app, or a front end at `link.front_end_url`).
fn needs_link_page(target: &HttpTarget) -> Option<String> {
    needs_account(target).or_else(|| {
        (target.link.page == LinkPage::FrontEnd && target.link.front_end_url.is_none())
            .then(|| crate::http::target_file::FRONT_END_NOT_LOADED.to_owned())
    })
}

const ONCE: (&str, &str) = (
    "ASVS v4.0.3 2.7.3",
    "Verify that the out of band verifier authentication requests, codes, or tokens are only usable once, and only for the original authentication request.",
);

pub(super) fn scenarios() -> Vec<HttpScenario> {
    vec![
        scenario(
            "RST-HTTP-008",
            "The token cannot leak through Referer: no rendered page keeps it in its URL, or the page's Referrer-Policy sends no full URL cross-origin",
            Must,
            (
                OWASP,
                "Ensure that the reset password page adds the Referrer Policy tag with the noreferrer value in order to avoid referrer leakage.",
            ),
            needs_link_page,
            body!(referrer_policy),
        ),
        scenario(
            "RST-HTTP-009",
            "The pages the link opens send Cache-Control: no-store",
            Must,
            (
                "ASVS v4.0.3 8.2.1",
                "Verify the application sets sufficient anti-caching headers so that sensitive data is not cached in modern browsers.",
            ),
            needs_link_page,
            body!(cache_control),
        ),
        scenario(
            "RST-HTTP-010",
            "GET and HEAD of the link (mail scanners, previews) do not spend it",
            Must,
            (
                "SPEC: The flow",
                "Opening the link (GET or HEAD) only shows the page and never uses the link up: mail scanners and link previewers fetch GET links, and that must not burn the user's link.",
            ),
            needs_link_page,
            body!(scanners_do_not_spend),
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
            body!(parallel_submits),
        ),
        scenario(
            "RST-HTTP-012",
            "An older link stops working once a newer one is requested",
            Should,
            (
                "SPEC: Policies",
                "Once a newer reset is requested, the account's older links stop working (\"newest wins\").",
            ),
            needs_account,
            body!(newest_wins),
        ),
        scenario(
            "RST-HTTP-013",
            "A link works once: after the reset it is refused",
            Must,
            ONCE,
            needs_account,
            body!(single_use),
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

/// Referrer policies that never send a full URL to another origin.
const NO_CROSS_ORIGIN_URL: &[&str] = &[
    "no-referrer",
    "same-origin",
    "origin",
    "strict-origin",
    "origin-when-cross-origin",
    "strict-origin-when-cross-origin",
];

async fn referrer_policy(ctx: &HttpCtx) -> Check {
    let chain = ctx.reset_page_chain().await?;
    let pattern = ctx.target.link_pattern();
    let token = chain.first().and_then(|e| pattern.token(&e.url));
    let policy_of = |e: &Exchange| referrer_policy_of(e).unwrap_or_else(|| "none".to_owned());
    // A page renders when the browser shows it: not a redirect. Only a
    // rendered page's URL becomes the Referer of what it loads or links to.
    let rendered: Vec<&Exchange> = chain.iter().filter(|e| !e.is_redirect()).collect();
    let mut leaking = Vec::new();
    let mut safe = Vec::new();
    for page in &rendered {
        let keeps_token = token
            .as_deref()
            .is_some_and(|t| page.url.as_str().contains(t) || decoded(page.url.as_str()).contains(t));
        let policy = policy_of(page);
        let line = format!(
            "{} {} → {}: Referrer-Policy {policy}",
            page.method, page.url, page.status
        );
        if keeps_token && !NO_CROSS_ORIGIN_URL.contains(&policy.as_str()) {
            leaking.push(line);
        } else if keeps_token {
            safe.push(line);
        }
    }
    let policies: Vec<String> = rendered
        .iter()
        .map(|e| format!("{} {}: {}", e.url.path(), e.status, policy_of(e)))
        .collect();
    if !leaking.is_empty() {
        return Err(fail(
            "a page that keeps the token in its URL sends a Referrer-Policy that never sends full URLs cross-origin \
             (no-referrer, same-origin, strict-origin, strict-origin-when-cross-origin), or the link redirects to a URL without the token first",
            format!(
                "case: the token stays in the rendered page's URL with a leaking policy (or none), so the page's \
                 links and resources get it in Referer:\n{}",
                leaking.join("\n")
            ),
        ));
    }
    if safe.is_empty() {
        ctx.note(format!(
            "Case: no rendered page keeps the token in its URL (the link redirected first), so Referer cannot carry it. \
             Rendered pages and their policies: {}",
            policies.join("; ")
        ));
        let loose: Vec<&String> = policies
            .iter()
            .filter(|p| p.ends_with(": unsafe-url") || p.ends_with(": no-referrer-when-downgrade"))
            .collect();
        if !loose.is_empty() {
            return Err(Problem::Warn {
                expected: "a Referrer-Policy that sends no full URL cross-origin on the reset pages".into(),
                actual: format!(
                    "no token in any rendered URL, but the policy sends full URLs cross-origin: {}",
                    loose.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; ")
                ),
            });
        }
    } else {
        ctx.note(format!(
            "Case: the token stays in the rendered page's URL, and its Referrer-Policy sends no full URL cross-origin: {}",
            safe.join("; ")
        ));
    }
    Ok(())
}

fn decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
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
    let (account, mail) = ctx.fresh_link(1).await?;
    let page = ctx.target.link_page_url(&mail.link).map_err(Problem::Skip)?;
    let whose = if page == mail.link {
        "the link".to_owned()
    } else {
        format!("the link's front-end page ({page})")
    };
    let scanner = ctx.user("mail-scanner")?;
    scanner
        .open(&page)
        .await
        .map_err(|e| driver_error("GET of the link by a scanner", e))?;
    let preview = ctx.user("link-preview")?;
    preview
        .head(&page)
        .await
        .map_err(|e| driver_error("HEAD of the link", e))?;
    preview
        .get(&page)
        .await
        .map_err(|e| driver_error("second GET of the link", e))?;
    let password = ctx.new_password();
    let done = ctx.complete(&mail.link, &password).await?;
    if done.is_completed() {
        ctx.remember_password(&account, &password);
    }
    ensure(
        done.is_completed(),
        format!(
            "after a scanner's GET of {whose} (redirects followed), a HEAD and another GET, the user can still set a password with the link{}",
            if ctx.target.set_password_api().is_some() {
                " (through the set-password API)"
            } else {
                ""
            }
        ),
        || done.describe(),
    )
}

async fn parallel_submits(ctx: &HttpCtx) -> Check {
    let n = ctx.target.checks.parallel_submits;
    let trials = ctx.target.checks.race_trials;
    let mut counts = Vec::new();
    let mut over = Vec::new();
    for trial in 1..=trials {
        let (account, mail) = ctx.fresh_link(1).await?;
        let mut ready = Vec::new();
        let mut refused_early = Vec::new();
        let mut entries = Vec::new();
        let mut passwords = Vec::new();
        let api = ctx.target.set_password_api().is_some();
        for i in 0..n {
            if api {
                // Each racer is a front end calling the set-password API.
                let user = ctx.user(&format!("racer-{trial}.{i}"))?;
                let password = ctx.new_password();
                entries.push((
                    user.clone(),
                    ctx.prepare_confirm(&user, &mail.link, &password).await?,
                ));
                passwords.push(password);
                continue;
            }
            let user = ctx.user(&format!("racer-{trial}.{i}"))?;
            match ctx.open_reset_form(&user, &mail.link).await? {
                Ok(page) => ready.push((user, page)),
                Err(refused) => refused_early.push(refused.describe()),
            }
        }
        ensure(
            api || !ready.is_empty(),
            "the link opens the set-password form",
            || refused_early.join("; "),
        )?;
        if !refused_early.is_empty() {
            ctx.note(format!(
                "Trial {trial}: {} of {n} clients could not open the form (the link may be bound to the first session): {}",
                refused_early.len(),
                refused_early.join("; ")
            ));
        }
        for (user, page) in &ready {
            let password = ctx.new_password();
            let prepared = user
                .prepare(page, None, &password_submission(&ctx.target, page, &password))
                .map_err(|e| driver_error("filling the set-password form", e))?;
            entries.push((user.clone(), prepared));
            passwords.push(password);
        }
        ctx.submit_room(u32::try_from(entries.len()).unwrap_or(u32::MAX))
            .await?;
        let visits = race(entries).await;
        let mut winners = Vec::new();
        let mut others = Vec::new();
        for (visit, password) in visits.into_iter().zip(passwords) {
            let visit = visit.map_err(|e| driver_error("a raced submit", e))?;
            match classify_submit(&ctx.target, visit) {
                Completion::Completed(visit) => winners.push((password, visit.summary())),
                other => others.push(other.describe()),
            }
        }
        ctx.note(format!(
            "Trial {trial}: {} simultaneous {} of one link (last bytes sent together): {} completed, {} not",
            winners.len() + others.len(),
            if api { "set-password API calls" } else { "submits" },
            winners.len(),
            others.len()
        ));
        if let Some((password, _)) = winners.last() {
            // Whichever won last set the password the app now holds, as far
            // as the harness can tell; with one winner it is exact.
            ctx.remember_password(&account, password);
        }
        if winners.len() > 1 {
            let shown: Vec<&str> = winners.iter().map(|(_, s)| s.as_str()).collect();
            over.push(format!(
                "trial {trial}: {} succeeded: {}",
                winners.len(),
                shown.join("; ")
            ));
        }
        counts.push(winners.len());
    }
    let listed: Vec<String> = counts.iter().map(usize::to_string).collect();
    ctx.note(format!("Successes per trial: [{}]", listed.join(", ")));
    ctx.figure(crate::scenario::Figure::Trials {
        what: "simultaneous submits of one link that set the password".into(),
        successes: counts.clone(),
        submitted: n,
        expected: 1,
    });
    ensure(
        over.is_empty() && counts.iter().all(|c| *c == 1),
        format!(
            "in each of {trials} trials, exactly one of {n} simultaneous submits of one link sets the password"
        ),
        || {
            if over.is_empty() {
                format!(
                    "successes per trial: [{}] (a trial where none succeeded)",
                    listed.join(", ")
                )
            } else {
                format!(
                    "successes per trial: [{}]; {}",
                    listed.join(", "),
                    over.join("\n")
                )
            }
        },
    )
}

async fn newest_wins(ctx: &HttpCtx) -> Check {
    let (account, older) = ctx.fresh_link(2).await?;
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
    let (account, mail) = ctx.fresh_link(1).await?;
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
    match ctx.login(account.login_name(), &first_password).await? {
        Some(Err(why)) => {
            return Err(fail(
                "the password set with the link's first use still signs in",
                why,
            ));
        }
        None => ctx.not_checked("that the password set with the link's first use still signs in"),
        Some(Ok(())) => {}
    }
    Ok(())
}
