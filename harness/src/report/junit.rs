//! The JUnit XML report: one `<testsuite>` per scenario group.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use super::{escape_controls, write_file};
use crate::scenario::{Evidence, RunReport, ScenarioResult, Verdict};

/// Text made valid for XML 1.0 (tabs and line breaks kept).
fn xml_safe(s: &str) -> String {
    escape_controls(s, &['\t', '\n', '\r'], false).into_owned()
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
}

/// The run as JUnit XML: one `<testsuite>` per ID prefix (`RST-LINK`), in
/// order of first appearance, a `<testcase name="ID title" classname="RST-LINK">`
/// per scenario; see the [module docs](super) for how verdicts map.
pub fn to_junit(report: &RunReport) -> io::Result<String> {
    let mut xml = Vec::new();
    junit_report(report)
        .serialize(&mut xml)
        .map_err(io::Error::other)?;
    String::from_utf8(xml).map_err(io::Error::other)
}

/// Writes [`to_junit`] to `path`, creating missing parent directories.
pub fn write_junit(report: &RunReport, path: &Path) -> io::Result<()> {
    let xml = to_junit(report)?;
    write_file(path, "JUnit", |out| out.write_all(xml.as_bytes()))
}

fn suite_name(id: &str) -> &str {
    id.rfind('-').map_or(id, |i| &id[..i])
}

fn junit_report(report: &RunReport) -> quick_junit::Report {
    let mut suites: Vec<TestSuite> = Vec::new();
    let mut times: Vec<Duration> = Vec::new();
    for result in &report.results {
        let name = suite_name(result.info.id);
        let index = match suites.iter().position(|s| s.name.as_str() == xml_safe(name)) {
            Some(index) => index,
            None => {
                let mut suite = TestSuite::new(xml_safe(name));
                suite.add_property(Property::new("target", xml_safe(&report.target)));
                suite.add_property(Property::new("strict", report.strict.to_string()));
                suites.push(suite);
                times.push(Duration::ZERO);
                suites.len() - 1
            }
        };
        suites[index].add_test_case(junit_case(result, name, report.strict));
        times[index] += result.duration;
    }
    let mut junit = quick_junit::Report::new("resetkit-harness");
    junit.set_time(report.duration);
    for (mut suite, time) in suites.into_iter().zip(times) {
        suite.set_time(time);
        junit.add_test_suite(suite);
    }
    junit
}

fn junit_case(r: &ScenarioResult, classname: &str, strict: bool) -> TestCase {
    let info = &r.info;
    let body = failure_body(r);
    let mut out = String::new();
    let status = match &r.verdict {
        Verdict::Pass => TestCaseStatus::success(),
        Verdict::Fail | Verdict::Warn if r.fails_run(strict) => {
            let word = if r.verdict == Verdict::Fail {
                "failed"
            } else {
                "warning"
            };
            let summary = r.actual.as_deref().map(first_line).unwrap_or(info.title);
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status
                .set_message(xml_safe(&format!("{} {word}: {summary}", info.severity)))
                .set_type(info.severity.as_str())
                .set_description(xml_safe(&body));
            status
        }
        Verdict::Fail | Verdict::Warn => {
            let verdict = r.verdict.as_str().to_ascii_uppercase();
            let _ = write!(
                out,
                "{verdict} ({}), does not fail the run\n{body}\n",
                info.severity
            );
            TestCaseStatus::success()
        }
        Verdict::Skipped(reason) => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(xml_safe(&reason.lines().collect::<Vec<_>>().join(" ")));
            status
        }
        Verdict::Error(reason) => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status
                .set_message(xml_safe(first_line(reason)))
                .set_type("harness-error")
                .set_description(xml_safe(&format!(
                    "Harness error (not a target failure): {reason}\n{body}"
                )));
            status
        }
    };
    evidence_text(&mut out, &r.evidence);
    let mut case = TestCase::new(xml_safe(&format!("{} {}", info.id, info.title)), status);
    case.set_classname(xml_safe(classname))
        .set_time(r.duration)
        .add_property(Property::new("verdict", r.verdict.as_str()))
        .add_property(Property::new("severity", info.severity.as_str()))
        .add_property(Property::new("requirement", xml_safe(info.requirement.source)));
    if !out.is_empty() {
        case.set_system_out(xml_safe(&out));
    }
    case
}

/// `Requirement (source): text`, then `Expected: …` and `Actual: …` when recorded.
fn failure_body(r: &ScenarioResult) -> String {
    let requirement = &r.info.requirement;
    let mut body = format!("Requirement ({}): {}", requirement.source, requirement.text);
    for (label, value) in [("Expected", &r.expected), ("Actual", &r.actual)] {
        if let Some(value) = value {
            let _ = write!(body, "\n{label}: {value}");
        }
    }
    body
}

fn evidence_text(out: &mut String, e: &Evidence) {
    let mut section = |title: &str, text: &str| {
        let _ = writeln!(out, "== {title} ==\n{}", text.trim_end_matches(['\r', '\n']));
    };
    if !e.events.is_empty() {
        section("Events", &e.events.join("\n"));
    }
    if !e.notes.is_empty() {
        section("Notes", &e.notes.join("\n"));
    }
    if let Some(transcript) = &e.transcript {
        section("SMTP transcript", transcript);
    }
    for (i, email) in e.emails.iter().enumerate() {
        section(
            &format!("Email {} of {} (raw .eml)", i + 1, e.emails.len()),
            email,
        );
    }
}
