//! Whether the forgot-password answer tells accounts apart: status,
//! redirect, body and cookies for known, unknown, disabled, shared and
//! throttled identifiers (response time: [`super::timing`]).

use super::{OWASP, needs_account, scenario};
use crate::body;
use crate::http::context::HttpCtx;
use crate::http::driver::Submission;
use crate::http::exchange::{Exchange, Visit};
use crate::http::html;
use crate::http::runner::HttpScenario;
use crate::http::target_file::{IdentifierKind, TestAccount};
use crate::runner::{Check, Problem, fail};
use crate::scenario::Severity::Must;

/// Throttled probes sent at most to reach a declared per-account limit.
const MAX_THROTTLE_REQUESTS: u32 = 60;

pub(super) fn scenarios() -> Vec<HttpScenario> {
    vec![scenario(
        "RST-HTTP-015",
        "Known, unknown, disabled, shared and throttled identifiers get identical status, redirect, body and cookies",
        Must,
        (
            OWASP,
            "Return a consistent message for both existent and non-existent accounts.",
        ),
        needs_account,
        body!(identical_answers),
    )]
}

/// What an observer sees of one answer, with per-session values masked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    redirect: Option<String>,
    cookies: Vec<String>,
    /// Response header names (lower case, sorted), compared for API
    /// targets, whose answers a script reads whole.
    headers: Vec<String>,
    body: String,
    final_status: u16,
    final_path: String,
    final_body: String,
    compare_headers: bool,
}

/// Headers whose presence may vary per response by themselves.
const VARYING_HEADERS: &[&str] = &[
    "date",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

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
        let mut headers: Vec<String> = first
            .headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .filter(|n| !VARYING_HEADERS.contains(&n.as_str()))
            .collect();
        headers.sort();
        headers.dedup();
        Answer {
            headers,
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
            compare_headers: false,
        }
    }

    /// The differences from `other`, one phrase each.
    fn differences(&self, other: &Answer, compare_bodies: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.compare_headers && self.headers != other.headers {
            out.push(format!(
                "response headers {:?} instead of {:?}",
                other.headers, self.headers
            ));
        }
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

/// [`Answer::of`], with headers compared when the target is an API.
fn answer_of(ctx: &HttpCtx, visit: &Visit, typed: &str) -> Answer {
    let mut answer = Answer::of(visit, typed);
    answer.compare_headers = ctx.target.forgot_api().is_some();
    answer
}

/// Sends one reset request as a new user.
async fn probe(ctx: &HttpCtx, identifier: &str) -> Result<Visit, Problem> {
    let user = ctx.user("probe")?;
    ctx.forgot(&user, identifier, Submission::new()).await
}

async fn identical_answers(ctx: &HttpCtx) -> Check {
    // Any known account will do: past its limit is exactly what is compared.
    let account = ctx.known_account()?;
    let kind = ctx.target.forgot.identifier_kind;
    let known = if kind.takes_email() {
        account.email.clone()
    } else {
        account.identifier.clone()
    };
    let (unknown_a, unknown_b) = (ctx.unknown_identifier(), ctx.unknown_identifier());
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
    // Every probe of this check from the client's window at once (a
    // throttled answer for the client is not what is compared here); the
    // baseline request counts for the account's limit.
    let throttles = throttle_plan(ctx, ctx.requests_for(&account) + 1).0 as usize;
    let unknown_repeats = match (&ctx.target.limits.throttled, ctx.target.limits.per_account) {
        (Some(_), Some(limit)) if throttles > 0 => limit as usize + 1,
        _ => 0,
    };
    let planned = 3 + more.len() + throttles + unknown_repeats;
    ctx.client_room(u32::try_from(planned).unwrap_or(u32::MAX))
        .await?;

    let baseline_visit = probe(ctx, &known).await?;
    let baseline = answer_of(ctx, &baseline_visit, &known);
    // Two unknown identifiers: if even they differ, the page varies by itself
    // (a timestamp, a request id) and bodies cannot be compared.
    let first_unknown = answer_of(ctx, &probe(ctx, &unknown_a).await?, &unknown_a);
    let second_unknown = answer_of(ctx, &probe(ctx, &unknown_b).await?, &unknown_b);
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
    let mut visits: Vec<Option<Visit>> = vec![None, None];
    let declared = ctx.target.limits.throttled.clone();
    let repeats = match (&declared, ctx.target.limits.per_account) {
        // The app says how it answers over the limit: repeat until it does
        // (its window and the harness's count may be a request apart).
        (Some(_), Some(limit)) if throttles > 0 => repeat_until_throttled(ctx, &known, limit + 1),
        _ => throttle_probes(ctx, &account),
    };
    let mut throttled_seen = false;
    for (label, identifier) in more.into_iter().chain(repeats) {
        if throttled_seen && label.starts_with("repeated known") {
            continue;
        }
        let visit = probe(ctx, &identifier).await?;
        let label = match &declared {
            Some(t) if label.starts_with("repeated known") && t.check(&visit).is_ok() => {
                throttled_seen = true;
                label.replacen("repeated known", "throttled known", 1)
            }
            _ => label,
        };
        answers.push(answer_of(ctx, &visit, &identifier));
        visits.push(Some(visit));
        probes.push((label, identifier));
    }
    ctx.note(format!(
        "Baseline (known {known}): status {}, redirect {:?}, cookies {:?}",
        baseline.status, baseline.redirect, baseline.cookies
    ));
    let mut unknown_throttled: Option<(String, Answer)> = None;
    let mut differing = Vec::new();
    for (((label, _), answer), visit) in probes.iter().zip(&answers).zip(&visits) {
        let diff = baseline.differences(answer, compare_bodies);
        if diff.is_empty() {
            continue;
        }
        // The app declares how it answers a throttled request: fine, as
        // long as it throttles an address no account has alike.
        if let (Some(throttled), Some(limit), Some(visit)) = (
            &ctx.target.limits.throttled,
            ctx.target.limits.per_account,
            visit.as_ref(),
        ) && label.starts_with("throttled known")
            && throttled.check(visit).is_ok()
        {
            if unknown_throttled.is_none() {
                unknown_throttled = Some(repeated_unknown(ctx, limit + 1).await?);
            }
            if let Some((typed, other)) = &unknown_throttled {
                let diff = other.differences(answer, compare_bodies);
                if diff.is_empty() {
                    ctx.note(format!(
                        "{label}: answered as throttled (limits.throttled), as was the unknown {typed} after the \
                         same number of requests: the app throttles by what is typed, not by account."
                    ));
                    continue;
                }
                differing.push(format!(
                    "{label}: answered as throttled (limits.throttled), but the unknown {typed} after the same \
                     number of requests got another answer ({}): the app throttles only existing accounts",
                    diff.join("; ")
                ));
                continue;
            }
        }
        differing.push(format!("{label}: {}", diff.join("; ")));
    }
    ctx.note(format!("{} probes compared with the baseline.", probes.len()));
    if differing.is_empty() {
        Ok(())
    } else {
        Err(fail(
            format!(
                "every identifier gets exactly the answer the known {known} gets ({})",
                if ctx.target.forgot_api().is_some() {
                    "status, JSON body, response headers and cookies of the forgot API"
                } else {
                    "status, redirect, page and cookies of the forgot form"
                }
            ),
            differing.join("\n"),
        ))
    }
}

/// Up to `max` repeated requests for `typed`, labelled `repeated known`
/// (relabelled `throttled known` by the caller once the answer is the
/// declared throttled one, and not sent further).
fn repeat_until_throttled(ctx: &HttpCtx, typed: &str, max: u32) -> Vec<(String, String)> {
    let used = ctx.requests_for_identifier(typed);
    (0..max)
        .map(|i| {
            (
                format!("repeated known {typed} (request #{})", used + i + 1),
                typed.to_owned(),
            )
        })
        .collect()
}

/// Requests for one new unknown identifier until the answer is the
/// declared throttled one (at most `times`); its last answer.
async fn repeated_unknown(ctx: &HttpCtx, times: u32) -> Result<(String, Answer), Problem> {
    let typed = ctx.unknown_identifier();
    let mut last = None;
    for _ in 0..times {
        let visit = probe(ctx, &typed).await?;
        let done = ctx
            .target
            .limits
            .throttled
            .as_ref()
            .is_some_and(|t| t.check(&visit).is_ok());
        last = Some(visit);
        if done {
            break;
        }
    }
    let visit = last.ok_or_else(|| Problem::Error("no request sent".into()))?;
    let answer = answer_of(ctx, &visit, &typed);
    Ok((typed, answer))
}

/// How many requests take an account that has had `used` in this window
/// past the declared per-account limit (the last ones are throttled), or
/// three repeats when none is declared; and what could not be checked.
fn throttle_plan(ctx: &HttpCtx, used: u32) -> (u32, Option<String>) {
    match ctx.target.limits.per_account {
        Some(limit) if limit + 1 > used + MAX_THROTTLE_REQUESTS => (
            0,
            Some(format!(
                "{} throttled answers: limits.per_account = {limit} is too high to reach with \
                 {MAX_THROTTLE_REQUESTS} requests, so no throttled answer was compared (start the app with a \
                 lower limit to check them)",
                crate::report::NOT_CHECKED
            )),
        ),
        Some(limit) => ((limit + 1).saturating_sub(used).max(1), None),
        None => (
            3,
            Some(format!(
                "{} throttled answers: no limits.per_account in the target file, so three repeated requests \
                 were compared instead of known-throttled ones",
                crate::report::NOT_CHECKED
            )),
        ),
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
    let (count, not_checked) = throttle_plan(ctx, used);
    if let Some(note) = not_checked {
        ctx.note(note);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
