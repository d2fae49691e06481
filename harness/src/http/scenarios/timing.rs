//! Whether response time tells accounts apart (RST-HTTP-016): interleaved
//! samples of known, unknown, disabled and shared identifiers, judged by
//! the bootstrap interval of each class's ratio of medians to unknown
//! identifiers and a rank test ([`crate::http::stats`]), with samples added
//! while the interval cannot decide.

use std::time::Duration;

use super::{OWASP, needs_account, scenario};
use crate::body;
use crate::http::context::HttpCtx;
use crate::http::driver::Submission;
use crate::http::runner::HttpScenario;
use crate::http::stats::{Comparison, compare};
use crate::runner::{Check, fail};
use crate::scenario::Severity::Should;
use crate::scenario::{Figure, LatencyClass, Num, RatioEstimate};

/// Untimed requests of each class before sampling.
const WARMUP: usize = 2;

pub(super) fn scenarios() -> Vec<HttpScenario> {
    vec![scenario(
        "RST-HTTP-016",
        "Known, unknown, disabled and shared identifiers answer in the same time (ratio of medians, bootstrap interval, rank test)",
        Should,
        (
            OWASP,
            "Ensure that responses return in a consistent amount of time to prevent an attacker enumerating which accounts exist.",
        ),
        needs_account,
        body!(timing),
    )]
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
    // Past its limit or not: a throttled answer is a timing sample too.
    let account = ctx.known_account()?;
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
            ctx.forgot_unplanned(user, &id, Submission::new()).await?;
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
                let visit = ctx
                    .forgot_unplanned(&users[index], &id, Submission::new())
                    .await?;
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
    ctx.figure(latency_figure(&classes, &comparisons, threshold));
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

fn latency_figure(
    classes: &[Class],
    comparisons: &[(&'static str, Comparison, Decision)],
    threshold: f64,
) -> Figure {
    Figure::Latency {
        reference: "unknown".into(),
        threshold: Num(threshold),
        classes: classes
            .iter()
            .map(|c| LatencyClass {
                name: c.name.to_owned(),
                samples_ms: c.samples.iter().copied().map(Num).collect(),
            })
            .collect(),
        ratios: comparisons
            .iter()
            .map(|(name, c, d)| RatioEstimate {
                name: (*name).to_owned(),
                ratio: Num(c.ratio),
                low: Num(c.ratio_low),
                high: Num(c.ratio_high),
                decision: match d {
                    Decision::Differs => "differs",
                    Decision::Same => "same",
                    Decision::Undecided => "undecided",
                }
                .to_owned(),
            })
            .collect(),
    }
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
}
