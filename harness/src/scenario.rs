//! The scenario model, one for both suites (in-process and HTTP): what a
//! scenario checks, where the requirement comes from, how its body reports
//! ([`Check`], [`Problem`]), and what a run found. [`crate::runner`] runs
//! scenarios of either kind with one loop.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

/// How much a failure matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// A failure fails the run.
    Must,
    /// A failure is reported as a warning (fails with `--strict`).
    Should,
    /// Informational: reported, never fails.
    Info,
}

impl Severity {
    /// `MUST`, `SHOULD` or `INFO`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Must => "MUST",
            Severity::Should => "SHOULD",
            Severity::Info => "INFO",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The requirement a scenario checks, quoted, with its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// Where it comes from, e.g. `OWASP Forgot Password Cheat Sheet` or `ASVS v4.0.3 2.5.6`.
    pub source: &'static str,
    /// The requirement's words.
    pub text: &'static str,
}

/// A scenario's fixed description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScenarioInfo {
    /// Stable ID, e.g. `RST-LINK-001`. The group is the middle part (`LINK`).
    pub id: &'static str,
    /// One line saying what is checked.
    pub title: &'static str,
    /// How much a failure matters.
    pub severity: Severity,
    /// The requirement checked.
    pub requirement: Requirement,
}

impl ScenarioInfo {
    /// The scenario group: the part of the ID between the first and last dash
    /// (`RST-LINK-001` → `LINK`).
    pub fn group(&self) -> &'static str {
        let id = self.id;
        match (id.find('-'), id.rfind('-')) {
            (Some(a), Some(b)) if a < b => &id[a + 1..b],
            _ => id,
        }
    }

    /// Whether `pattern` selects this scenario: a prefix of the ID, or a glob
    /// with `*` (any run of characters) and `?` (one character). Case-insensitive.
    pub fn matches(&self, pattern: &str) -> bool {
        let id = self.id.to_ascii_uppercase();
        let pattern = pattern.to_ascii_uppercase();
        if pattern.contains(['*', '?']) {
            glob_match(pattern.as_bytes(), id.as_bytes())
        } else {
            id.starts_with(&pattern)
        }
    }
}

/// Why a scenario did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The requirement is broken.
    Fail {
        /// What the requirement expects.
        expected: String,
        /// What happened.
        actual: String,
    },
    /// Something doubtful that does not break a MUST.
    Warn {
        /// What was expected.
        expected: String,
        /// What happened.
        actual: String,
    },
    /// Not applicable.
    Skip(String),
    /// The harness or environment failed.
    Error(String),
}

/// A scenario body's result.
pub type Check = Result<(), Problem>;

/// A failure.
pub fn fail(expected: impl Into<String>, actual: impl Into<String>) -> Problem {
    Problem::Fail {
        expected: expected.into(),
        actual: actual.into(),
    }
}

/// Fails with `expected` / `actual()` unless `cond` holds.
pub fn ensure(cond: bool, expected: impl Into<String>, actual: impl FnOnce() -> String) -> Check {
    if cond {
        Ok(())
    } else {
        Err(fail(expected, actual()))
    }
}

/// A boxed scenario body.
pub type BoxCheck<'a> = Pin<Box<dyn Future<Output = Check> + Send + 'a>>;

/// What a kind of scenario works with: [`crate::runner::Ctx`] (the
/// in-process service) or [`crate::http::context::HttpCtx`] (an app over HTTP).
pub trait ScenarioCtx: Send + Sync + 'static {
    /// What a scenario declares besides its body: how the in-process target
    /// is configured ([`crate::runner::Prepare`]), or when an HTTP scenario
    /// applies to a target ([`crate::http::runner::Applies`]).
    type Setup: Send + Sync + 'static;
}

/// One scenario: its description, its setup, its body.
pub struct Scenario<C: ScenarioCtx> {
    /// The description.
    pub info: ScenarioInfo,
    /// What it needs of the target (see [`ScenarioCtx::Setup`]).
    pub setup: C::Setup,
    /// The checks.
    pub run: for<'a> fn(&'a C) -> BoxCheck<'a>,
}

/// Builds a scenario; `requirement` is `(source, text)`, `setup` anything
/// that converts into the kind's setup (a configure function in process,
/// an applies-when function over HTTP), `run` usually [`crate::body!`].
pub fn scenario<C: ScenarioCtx>(
    id: &'static str,
    title: &'static str,
    severity: Severity,
    requirement: (&'static str, &'static str),
    setup: impl Into<C::Setup>,
    run: for<'a> fn(&'a C) -> BoxCheck<'a>,
) -> Scenario<C> {
    Scenario {
        info: ScenarioInfo {
            id,
            title,
            severity,
            requirement: Requirement {
                source: requirement.0,
                text: requirement.1,
            },
        },
        setup: setup.into(),
        run,
    }
}

/// The scenarios of `all` that `patterns` select (ID prefix or glob; none
/// selects all), in their order.
pub fn select<C: ScenarioCtx>(all: Vec<Scenario<C>>, patterns: &[String]) -> Vec<Scenario<C>> {
    all.into_iter()
        .filter(|s| patterns.is_empty() || patterns.iter().any(|p| s.info.matches(p)))
        .collect()
}

/// Wraps an `async fn(&C) -> Check` as a scenario body, for either kind of
/// context.
#[macro_export]
macro_rules! body {
    ($f:path) => {
        |ctx| ::std::boxed::Box::pin($f(ctx))
    };
}

fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// What a scenario concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "lowercase")]
pub enum Verdict {
    /// The requirement holds.
    Pass,
    /// The requirement is broken.
    Fail,
    /// A SHOULD requirement is broken, or something looks doubtful.
    Warn,
    /// Not applicable to this target (the reason says why).
    Skipped(String),
    /// The harness could not run the scenario (its own fault or the
    /// environment's), kept apart from failures.
    Error(String),
}

impl Verdict {
    /// `pass`, `fail`, `warn`, `skipped` or `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Warn => "warn",
            Verdict::Skipped(_) => "skipped",
            Verdict::Error(_) => "error",
        }
    }
}

/// What was seen, kept so a failure can be understood without rerunning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// Captured emails as raw `.eml` text.
    pub emails: Vec<String>,
    /// The SMTP transcript of the fake server.
    pub transcript: Option<String>,
    /// The flow's events, one line each.
    pub events: Vec<String>,
    /// Free-form notes (e.g. measured figures).
    pub notes: Vec<String>,
    /// Measurements worth drawing (latency samples, race trials); the HTML
    /// report draws them, the JSON report lists them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub figures: Vec<Figure>,
    /// The secrets (reset and "this wasn't me" tokens) of every link in the
    /// mail the scenario caused, also those not kept in `emails`: reports
    /// replace them by a fingerprint ([`crate::report::TokenRedactor`]).
    /// Never written to any report.
    #[serde(skip)]
    pub secrets: Vec<String>,
}

impl Evidence {
    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.emails.is_empty()
            && self.transcript.is_none()
            && self.events.is_empty()
            && self.notes.is_empty()
            && self.figures.is_empty()
    }
}

/// A number in a figure (compared bit for bit, so evidence stays `Eq`).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(transparent)]
pub struct Num(pub f64);

impl PartialEq for Num {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Num {}

/// Latency samples of one class of identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatencyClass {
    /// `known`, `unknown`, `disabled`, `shared`.
    pub name: String,
    /// Response times in milliseconds, in the order taken.
    pub samples_ms: Vec<Num>,
}

/// One class's ratio of medians against the reference class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RatioEstimate {
    /// The class compared with the reference.
    pub name: String,
    /// Ratio of medians.
    pub ratio: Num,
    /// 95 % interval of the ratio: low end.
    pub low: Num,
    /// ... high end.
    pub high: Num,
    /// What the check concluded (`same`, `differs`, `undecided`).
    pub decision: String,
}

/// A measurement the HTML report draws.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Figure {
    /// Response-time distributions per class, with ratios to a reference.
    Latency {
        /// The class the ratios are taken against (`unknown`).
        reference: String,
        /// Flag a ratio outside `[1/threshold, threshold]`.
        threshold: Num,
        /// Samples per class.
        classes: Vec<LatencyClass>,
        /// Each other class against the reference.
        ratios: Vec<RatioEstimate>,
    },
    /// Successes per trial of simultaneous submits of one link.
    Trials {
        /// What is counted.
        what: String,
        /// How many succeeded in each trial.
        successes: Vec<usize>,
        /// How many were submitted per trial.
        submitted: usize,
        /// How many successes a correct app gives per trial.
        expected: usize,
    },
}

/// One scenario's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScenarioResult {
    /// The scenario.
    #[serde(flatten)]
    pub info: ScenarioInfo,
    /// The group (from the ID).
    pub group: &'static str,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// What the requirement expects (set on fail / warn).
    pub expected: Option<String>,
    /// What happened instead (set on fail / warn).
    pub actual: Option<String>,
    /// What was seen.
    pub evidence: Evidence,
    /// Wall time of the scenario.
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl ScenarioResult {
    /// Whether this result fails the run (`strict`: warnings fail too).
    pub fn fails_run(&self, strict: bool) -> bool {
        match self.verdict {
            Verdict::Fail => {
                self.info.severity == Severity::Must || (strict && self.info.severity == Severity::Should)
            }
            Verdict::Warn => strict,
            _ => false,
        }
    }
}

/// Counts of verdicts in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Passed.
    pub pass: usize,
    /// Failed.
    pub fail: usize,
    /// Warned.
    pub warn: usize,
    /// Skipped.
    pub skipped: usize,
    /// Harness errors.
    pub error: usize,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// What was tested (e.g. `reference flow (in-memory stores + SmtpMailer)`).
    pub target: String,
    /// Every scenario run, in order.
    pub results: Vec<ScenarioResult>,
    /// Wall time of the run.
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    /// Whether warnings fail the run.
    pub strict: bool,
}

impl RunReport {
    /// Counts of verdicts.
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for r in &self.results {
            match r.verdict {
                Verdict::Pass => t.pass += 1,
                Verdict::Fail => t.fail += 1,
                Verdict::Warn => t.warn += 1,
                Verdict::Skipped(_) => t.skipped += 1,
                Verdict::Error(_) => t.error += 1,
            }
        }
        t
    }

    /// The IDs of scenarios whose verdict is `fail`.
    pub fn failed_ids(&self) -> Vec<&'static str> {
        self.results
            .iter()
            .filter(|r| r.verdict == Verdict::Fail)
            .map(|r| r.info.id)
            .collect()
    }

    /// One block per scenario that did not pass (ID, verdict, expected,
    /// actual, events), for assertion messages in conformance tests.
    pub fn non_passing(&self) -> Vec<String> {
        self.results
            .iter()
            .filter(|r| r.verdict != Verdict::Pass)
            .map(|r| {
                format!(
                    "{} {:?}\n  expected: {:?}\n  actual: {:?}\n  events: {:#?}",
                    r.info.id, r.verdict, r.expected, r.actual, r.evidence.events
                )
            })
            .collect()
    }

    /// Process exit code: 2 if the harness had an error, else 1 if a MUST
    /// failed (or, with `strict`, anything warned or a SHOULD failed), else 0.
    pub fn exit_code(&self) -> i32 {
        if self
            .results
            .iter()
            .any(|r| matches!(r.verdict, Verdict::Error(_)))
        {
            2
        } else if self.results.iter().any(|r| r.fails_run(self.strict)) {
            1
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &'static str) -> ScenarioInfo {
        ScenarioInfo {
            id,
            title: "t",
            severity: Severity::Must,
            requirement: Requirement {
                source: "s",
                text: "r",
            },
        }
    }

    #[test]
    fn group_is_the_middle_of_the_id() {
        assert_eq!(info("RST-LINK-001").group(), "LINK");
        assert_eq!(info("RST-TOKEN-EXP-002").group(), "TOKEN-EXP");
        assert_eq!(info("ODD").group(), "ODD");
    }

    #[test]
    fn filters_by_prefix_and_glob() {
        let s = info("RST-LINK-001");
        assert!(s.matches("RST-LINK"));
        assert!(s.matches("rst-link-0"));
        assert!(s.matches("*LINK*"));
        assert!(s.matches("RST-*-001"));
        assert!(s.matches("RST-LINK-00?"));
        assert!(!s.matches("RST-TOKEN"));
        assert!(!s.matches("*TOKEN*"));
        assert!(s.matches("RST-LINK-00*"));
    }
}
