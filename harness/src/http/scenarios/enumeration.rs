//! Whether the forgot-password answer tells accounts apart: status,
//! redirect, body and cookies for known, unknown, disabled, shared and
//! throttled identifiers, then response time.

use std::time::Duration;

use super::{OWASP, http_body, needs_account, scenario};
use crate::http::context::HttpCtx;
use crate::http::driver::Submission;
use crate::http::exchange::{Exchange, Visit};
use crate::http::html;
use crate::http::runner::HttpScenario;
use crate::http::stats::{Comparison, compare};
use crate::http::target_file::{IdentifierKind, TestAccount};
use crate::runner::{Check, Problem, fail};
use crate::scenario::Severity::{Must, Should};

/// Throttled probes sent at most to reach a declared per-account limit.
const MAX_THROTTLE_REQUESTS: u32 = 60;
/// Untimed requests of each class before sampling.
const WARMUP: usize = 2;

pub(super) fn scenarios() -> Vec<HttpScenario> {
    vec![
        scenario(
            "RST-HTTP-015",
            "Known, unknown, disabled, shared and throttled identifiers get identical status, redirect, body and cookies",
            Must,
            (
                OWASP,
                "Return a consistent message for both existent and non-existent accounts.",
            ),
            needs_account,
            http_body!(identical_answers),
        ),
        scenario(
            "RST-HTTP-016",
            "Known and unknown identifiers answer in the same time (ratio of medians)",
            Should,
            (
                OWASP,
                "Ensure that responses return in a consistent amount of time to prevent an attacker enumerating which accounts exist.",
            ),
            needs_account,
            http_body!(timing),
        ),
    ]
}

/// What an observer sees of one answer, with per-session values masked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    redirect: Option<String>,
    cookies: Vec<String>,
    body: String,
    final_status: u16,
    final_path: String,
    final_body: String,
}

impl Answer {
    fn of(visit: &Visit, typed: &str) -> Answer {
        let first = visit.first();
        let last = visit.last();
        let mut secrets: Vec<String> = vec![typed.to_owned()];
        for exchange in visit.exchanges() {
            secrets.extend(per_session_values(exchange));
        }
        secrets.retain(|s| s.len() >= 4);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut cookies: Vec<String> = visit
            .exchanges()
            .flat_map(|e| e.header_all("set-cookie").map(mask_cookie).collect::<Vec<_>>())
            .collect();
        cookies.sort();
        Answer {
            status: first.status,
            redirect: first.location().map(|u| match u.query() {
                Some(q) => format!("{}?{}", u.path(), mask(q, &secrets)),
                None => u.path().to_owned(),
            }),
            cookies,
            body: mask(&first.body, &secrets),
            final_status: last.status,
            final_path: last.url.path().to_owned(),
            final_body: mask(&last.body, &secrets),
        }
    }

    /// The differences from `other`, one phrase each.
    fn differences(&self, other: &Answer, compare_bodies: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.status != other.status {
            out.push(format!("status {} instead of {}", other.status, self.status));
        }
        if self.redirect != other.redirect {
            out.push(format!(
                "redirect {:?} instead of {:?}",
                other.redirect, self.redirect
            ));
        }
        if self.cookies != other.cookies {
            out.push(format!(
                "Set-Cookie {:?} instead of {:?}",
                other.cookies, self.cookies
            ));
        }
        if self.final_status != other.final_status || self.final_path != other.final_path {
            out.push(format!(
                "final page {} {} instead of {} {}",
                other.final_status, other.final_path, self.final_status, self.final_path
            ));
        }
        if compare_bodies {
            for (what, mine, theirs) in [
                ("body", &self.body, &other.body),
                ("final page body", &self.final_body, &other.final_body),
            ] {
                if mine != theirs {
                    out.push(format!("{what} differs: {}", first_difference(mine, theirs)));
                }
            }
        }
        out
    }
}

/// Values that differ per session: cookie values, hidden field values and
/// CSRF-ish `<meta>` contents.
fn per_session_values(exchange: &Exchange) -> Vec<String> {
    let mut values: Vec<String> = exchange
        .header_all("set-cookie")
        .filter_map(|c| {
            c.split(';')
                .next()?
                .split_once('=')
                .map(|(_, v)| v.trim().to_owned())
        })
        .collect();
    for form in html::forms(&exchange.body) {
        values.extend(
            form.fields
                .into_iter()
                .filter(|f| f.kind == "hidden")
                .map(|f| f.value),
        );
    }
    for name in ["csrf-token", "csrf_token", "_csrf"] {
        values.extend(html::meta_content(&exchange.body, name));
    }
    values
}

fn mask(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        if !secret.is_empty() {
            text = text.replace(secret.as_str(), "…");
        }
    }
    text
}

/// `name=…; attributes` (the value hidden, `Expires` dates dropped).
fn mask_cookie(header: &str) -> String {
    let mut parts = header.split(';').map(str::trim);
    let name = parts
        .next()
        .and_then(|p| p.split_once('=').map(|(n, _)| n))
        .unwrap_or_default();
    let attributes: Vec<&str> = parts
        .filter(|a| !a.to_ascii_lowercase().starts_with("expires="))
        .collect();
    format!("{name}=…; {}", attributes.join("; "))
}

fn first_difference(a: &str, b: &str) -> String {
    let at = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i);
    let start = a[..at].char_indices().rev().nth(40).map_or(0, |(i, _)| i);
    let excerpt = |s: &str| -> String {
        s.get(start..)
            .unwrap_or_default()
            .chars()
            .take(100)
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!("{:?} vs {:?}", excerpt(a), excerpt(b))
}

/// Sends one reset request as a new user.
async fn probe(ctx: &HttpCtx, identifier: &str) -> Result<Visit, Problem> {
    let user = ctx.user("probe")?;
    ctx.forgot(&user, identifier, Submission::new()).await
}

async fn identical_answers(ctx: &HttpCtx) -> Check {
    // Any known account will do: past its limit is exactly what is compared.
    let account = ctx.plain_account(0)?;
    let kind = ctx.target.forgot.identifier_kind;
    let known = if kind.takes_email() {
        account.email.clone()
    } else {
        account.identifier.clone()
    };
    let baseline_visit = probe(ctx, &known).await?;
    let baseline = Answer::of(&baseline_visit, &known);
    // Two unknown identifiers: if even they differ, the page varies by itself
    // (a timestamp, a request id) and bodies cannot be compared.
    let (unknown_a, unknown_b) = (ctx.unknown_identifier(), ctx.unknown_identifier());
    let first_unknown = Answer::of(&probe(ctx, &unknown_a).await?, &unknown_a);
    let second_unknown = Answer::of(&probe(ctx, &unknown_b).await?, &unknown_b);
    let compare_bodies =
        first_unknown.body == second_unknown.body && first_unknown.final_body == second_unknown.final_body;
    if !compare_bodies {
        ctx.note("Two unknown identifiers got different bodies: the page varies by itself, so bodies were not compared.");
    }
    ctx.note(format!(
        "The form takes {kind:?} identifiers (forgot.identifier_kind): every probe is of that kind."
    ));
    let mut probes: Vec<(String, String)> = vec![
        (format!("unknown identifier {unknown_a}"), unknown_a.clone()),
        (format!("unknown identifier {unknown_b}"), unknown_b.clone()),
    ];
    let mut answers = vec![first_unknown, second_unknown];
    let mut more: Vec<(String, String)> = Vec::new();
    if account.identifier != known {
        more.push((
            format!("known identifier {}", account.identifier),
            account.identifier.clone(),
        ));
    }
    if kind == IdentifierKind::Either {
        let name = ctx.unknown_username();
        more.push((format!("unknown username {name}"), name));
    }
    for disabled in ctx.target.accounts.iter().filter(|a| a.disabled) {
        more.push((
            format!("disabled account {}", disabled.identifier),
            disabled.identifier.clone(),
        ));
    }
    if let Some(group) = ctx.target.shared_email_groups().first() {
        let typed = if kind.takes_email() {
            group[0].email.clone()
        } else {
            group[0].identifier.clone()
        };
        more.push((format!("shared address {typed}"), typed));
    }
    for (label, identifier) in more.into_iter().chain(throttle_probes(ctx, &account)) {
        let visit = probe(ctx, &identifier).await?;
        answers.push(Answer::of(&visit, &identifier));
        probes.push((label, identifier));
    }
    ctx.note(format!(
        "Baseline (known {known}): status {}, redirect {:?}, cookies {:?}",
        baseline.status, baseline.redirect, baseline.cookies
    ));
    let mut differing = Vec::new();
    for ((label, _), answer) in probes.iter().zip(&answers) {
        let diff = baseline.differences(answer, compare_bodies);
        if !diff.is_empty() {
            differing.push(format!("{label}: {}", diff.join("; ")));
        }
    }
    ctx.note(format!("{} probes compared with the baseline.", probes.len()));
    if differing.is_empty() {
        Ok(())
    } else {
        Err(fail(
            format!("every identifier gets exactly the answer the known {known} gets"),
            differing.join("\n"),
        ))
    }
}

/// Requests for `account` until the declared per-account limit is passed
/// (the last ones are throttled), or three repeats when none is declared.
fn throttle_probes(ctx: &HttpCtx, account: &TestAccount) -> Vec<(String, String)> {
    let used = ctx.requests_for(account);
    let typed = if ctx.target.forgot.identifier_kind.takes_email() {
        account.email.clone()
    } else {
        account.identifier.clone()
    };
    let count = match ctx.target.limits.per_account {
        Some(limit) if limit + 1 > used + MAX_THROTTLE_REQUESTS => {
            ctx.note(format!(
                "limits.per_account = {limit} is too high to reach with {MAX_THROTTLE_REQUESTS} requests: \
                 throttled answers were not compared"
            ));
            0
        }
        Some(limit) => (limit + 1).saturating_sub(used).max(1),
        None => {
            ctx.note("No limits.per_account in the target file: three repeated requests were compared instead of known-throttled ones.");
            3
        }
    };
    (0..count)
        .map(|i| {
            let over = ctx
                .target
                .limits
                .per_account
                .is_some_and(|limit| used + i + 1 > limit);
            let label = if over {
                format!("throttled known {} (request #{})", typed, used + i + 1)
            } else {
                format!("repeated known {} (request #{})", typed, used + i + 1)
            };
            (label, typed.clone())
        })
        .collect()
}

/// One class of identifiers in the timing check.
struct Class {
    name: &'static str,
    /// A fixed identifier, or `None` for a fresh unknown one per request.
    identifier: Option<String>,
    samples: Vec<f64>,
}

/// What the interval says about one class against unknown identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// The whole interval lies beyond the threshold (and the rank test agrees).
    Differs,
    /// The whole interval lies within the threshold (or within the least difference).
    Same,
    /// The interval straddles the threshold.
    Undecided,
}

fn decide(c: &Comparison, threshold: f64, min_diff: f64) -> Decision {
    let beyond = c.ratio_low > threshold || c.ratio_high < 1.0 / threshold;
    let far = c.diff_low >= min_diff || c.diff_high <= -min_diff;
    if beyond && far && c.p_value < 0.01 {
        return Decision::Differs;
    }
    let within = c.ratio_low >= 1.0 / threshold && c.ratio_high <= threshold;
    let close = c.diff_low > -min_diff && c.diff_high < min_diff;
    if within || close {
        Decision::Same
    } else {
        Decision::Undecided
    }
}

fn describe(name: &str, c: &Comparison, decision: Decision) -> String {
    format!(
        "{name} vs unknown: ratio of medians {:.2} (95% bootstrap interval {:.2}–{:.2}); medians {:.2} vs {:.2} ms, \
         difference {:+.2} ms ({:+.2} to {:+.2}); Mann–Whitney U = {:.0}, p = {:.2e}; {}+{} interleaved samples → {}",
        c.ratio,
        c.ratio_low,
        c.ratio_high,
        c.median_a,
        c.median_b,
        c.median_a - c.median_b,
        c.diff_low,
        c.diff_high,
        c.u,
        c.p_value,
        c.n_a,
        c.n_b,
        match decision {
            Decision::Differs => "differs",
            Decision::Same => "same",
            Decision::Undecided => "undecided",
        }
    )
}

async fn timing(ctx: &HttpCtx) -> Check {
    let account = ctx.plain_account(0)?;
    let checks = &ctx.target.checks;
    let threshold = checks.timing_warn_ratio;
    let min_diff = checks.timing_min_difference_ms;
    let budget = Duration::from_secs_f64(checks.timing_budget_secs);
    let kind = ctx.target.forgot.identifier_kind;
    let mut classes = vec![
        Class {
            name: "known",
            identifier: Some(ctx.typed(&account)),
            samples: Vec::new(),
        },
        Class {
            name: "unknown",
            identifier: None,
            samples: Vec::new(),
        },
    ];
    if let Some(disabled) = ctx.target.accounts.iter().find(|a| a.disabled) {
        classes.push(Class {
            name: "disabled",
            identifier: Some(disabled.identifier.clone()),
            samples: Vec::new(),
        });
    }
    if let Some(group) = ctx.target.shared_email_groups().first() {
        classes.push(Class {
            name: "shared",
            identifier: Some(if kind.takes_email() {
                group[0].email.clone()
            } else {
                group[0].identifier.clone()
            }),
            samples: Vec::new(),
        });
    }
    let used_before = ctx.requests_for(&account);
    // One virtual user per class, so every class pays the same session cost.
    let mut users = Vec::new();
    for class in &classes {
        users.push(ctx.user(&format!("timing-{}", class.name))?);
    }
    for _ in 0..WARMUP {
        for (class, user) in classes.iter().zip(&users) {
            let id = class
                .identifier
                .clone()
                .unwrap_or_else(|| ctx.unknown_identifier());
            ctx.forgot(user, &id, Submission::new()).await?;
        }
    }
    let started = std::time::Instant::now();
    let mut batch = checks.timing_samples;
    let mut round = 0usize;
    let (comparisons, exhausted) = loop {
        for _ in 0..batch {
            // Rotate which class goes first, so drift hits all alike.
            let n = classes.len();
            for k in 0..n {
                let index = (round + k) % n;
                let id = classes[index]
                    .identifier
                    .clone()
                    .unwrap_or_else(|| ctx.unknown_identifier());
                let visit = ctx.forgot(&users[index], &id, Submission::new()).await?;
                classes[index].samples.push(ms(visit.first().elapsed));
            }
            round += 1;
        }
        let unknown = classes[1].samples.clone();
        let comparisons: Vec<(&'static str, Comparison, Decision)> = classes
            .iter()
            .filter(|c| c.name != "unknown")
            .map(|c| {
                let comparison = compare(&c.samples, &unknown);
                (c.name, comparison, decide(&comparison, threshold, min_diff))
            })
            .collect();
        let undecided = comparisons.iter().any(|(_, _, d)| *d == Decision::Undecided);
        let taken = classes[0].samples.len();
        let out_of_room = started.elapsed() >= budget || taken >= checks.timing_max_samples;
        if !undecided || out_of_room {
            break (comparisons, undecided && out_of_room);
        }
        let per_sample = started.elapsed() / u32::try_from(taken.max(1)).unwrap_or(u32::MAX);
        let left = budget.saturating_sub(started.elapsed());
        let affordable = (left.as_secs_f64() / per_sample.as_secs_f64().max(1e-6)) as usize;
        batch = batch
            .min(affordable.max(1))
            .min(checks.timing_max_samples.saturating_sub(taken).max(1));
    };
    ctx.note(format!(
        "Flag a class when the 95% interval of its ratio of medians to unknown identifiers lies wholly outside \
         [1/{threshold}, {threshold}], the medians differ by at least {min_diff} ms, and the rank test gives p < 0.01; \
         samples are added in batches while an interval straddles the threshold (budget {budget:?}, at most {} per class). \
         {} classes, {:.1} s of sampling.",
        checks.timing_max_samples,
        classes.len(),
        started.elapsed().as_secs_f64()
    ));
    for (name, comparison, decision) in &comparisons {
        ctx.note(describe(name, comparison, *decision));
    }
    if let Some(l) = ctx.target.limits.per_account {
        let sent = WARMUP + classes[0].samples.len();
        let throttled = (0..sent)
            .filter(|j| used_before as usize + j + 1 > l as usize)
            .count();
        ctx.note(format!(
            "{throttled} of the {sent} known requests were sent past limits.per_account = {l}."
        ));
    }
    let mut flagged: Vec<String> = comparisons
        .iter()
        .filter(|(_, _, d)| *d == Decision::Differs)
        .map(|(name, c, d)| describe(name, c, *d))
        .collect();
    if exhausted {
        // The budget ran out before the interval decided: fall back on the
        // point estimate, and only with a clear rank test.
        for (name, c, d) in &comparisons {
            let r = c.ratio.max(1.0 / c.ratio.max(1e-9));
            if *d == Decision::Undecided
                && r > threshold
                && (c.median_a - c.median_b).abs() >= min_diff
                && c.p_value < 0.001
            {
                flagged.push(format!(
                    "{} (undecided interval; point estimate and rank test)",
                    describe(name, c, *d)
                ));
            }
        }
        ctx.note("The sampling budget ran out before every interval decided: undecided classes are judged by the point estimate and p < 0.001.");
    }
    if flagged.is_empty() {
        return Ok(());
    }
    Err(fail(
        format!(
            "known, unknown, disabled and shared identifiers answer alike: each class's ratio of medians to unknown \
             identifiers within 1/{threshold}..{threshold} (or medians less than {min_diff} ms apart)"
        ),
        flagged.join("\n"),
    ))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_the_interval() {
        let b: Vec<f64> = (0..30).map(|i| 1.0 + f64::from(i % 7) * 0.1).collect();
        let slow: Vec<f64> = b.iter().map(|x| x + 40.0).collect();
        assert_eq!(decide(&compare(&slow, &b), 1.5, 0.5), Decision::Differs);
        assert_eq!(decide(&compare(&b, &b), 1.5, 0.5), Decision::Same);
    }

    #[test]
    fn cookies_are_compared_without_values_or_dates() {
        assert_eq!(
            mask_cookie("sid=abc123; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT; HttpOnly"),
            "sid=…; Path=/; HttpOnly"
        );
    }

    #[test]
    fn first_difference_shows_both_sides() {
        let text = first_difference("<p>We sent it</p>", "<p>No such user</p>");
        assert!(text.contains("We sent") && text.contains("No such"), "{text}");
    }
}
