//! The JSON report: one record per scenario with all its evidence.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::write_file;
use crate::scenario::{Evidence, Requirement, RunReport, ScenarioResult, Severity, Tally, Verdict};

fn millis(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

/// The run as pretty-printed JSON: `version` (1), `target`, `strict`,
/// `exit_code`, `duration_ms`, `tally {pass, fail, warn, skipped, error}` and
/// `scenarios`, one record per scenario in run order with `id`, `title`,
/// `group`, `severity` (`MUST` / `SHOULD` / `INFO`), `requirement {source,
/// text}`, `verdict` (`pass` / `fail` / `warn` / `skipped` / `error`), `reason`
/// (for skipped and error, else null), `fails_run`, `expected`, `actual`,
/// `duration_ms` and `evidence {emails, transcript, events, notes, figures}`
/// (`figures` only when the check measured something to draw: latency
/// samples per class, successes per race trial), the emails raw but for
/// their tokens (see [`redacted`](super::redacted), applied by the CLI unless
/// `--reveal-tokens`).
pub fn to_json(report: &RunReport) -> io::Result<String> {
    let scenarios = report
        .results
        .iter()
        .map(|r| JsonScenario::new(r, report.strict))
        .collect();
    let run = JsonRun {
        version: 1,
        target: &report.target,
        strict: report.strict,
        exit_code: report.exit_code(),
        duration_ms: millis(report.duration),
        tally: report.tally(),
        scenarios,
    };
    let mut json = serde_json::to_string_pretty(&run)?;
    json.push('\n');
    Ok(json)
}

/// Writes [`to_json`] to `path`, creating missing parent directories.
pub fn write_json(report: &RunReport, path: &Path) -> io::Result<()> {
    let json = to_json(report)?;
    write_file(path, "JSON", |out| out.write_all(json.as_bytes()))
}

#[derive(Serialize)]
struct JsonRun<'a> {
    version: u32,
    target: &'a str,
    strict: bool,
    exit_code: i32,
    duration_ms: f64,
    tally: Tally,
    scenarios: Vec<JsonScenario<'a>>,
}

#[derive(Serialize)]
struct JsonScenario<'a> {
    id: &'a str,
    title: &'a str,
    group: &'a str,
    severity: Severity,
    requirement: &'a Requirement,
    verdict: &'static str,
    reason: Option<&'a str>,
    fails_run: bool,
    expected: Option<&'a str>,
    actual: Option<&'a str>,
    duration_ms: f64,
    evidence: &'a Evidence,
}

impl<'a> JsonScenario<'a> {
    fn new(r: &'a ScenarioResult, strict: bool) -> Self {
        let reason = match &r.verdict {
            Verdict::Skipped(reason) | Verdict::Error(reason) => Some(reason.as_str()),
            _ => None,
        };
        JsonScenario {
            id: r.info.id,
            title: r.info.title,
            group: r.group,
            severity: r.info.severity,
            requirement: &r.info.requirement,
            verdict: r.verdict.as_str(),
            reason,
            fails_run: r.fails_run(strict),
            expected: r.expected.as_deref(),
            actual: r.actual.as_deref(),
            duration_ms: millis(r.duration),
            evidence: &r.evidence,
        }
    }
}
