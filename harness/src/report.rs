//! Reports of a run: the console (progress and colour), a JSON file with one
//! record per scenario, and JUnit XML with one `<testsuite>` per scenario
//! group.
//!
//! - [`ConsoleReporter`] prints one line per scenario; for `fail`, `warn` and
//!   `error` it adds the requirement, Expected, Actual and a short evidence
//!   summary (whole emails only when verbose). Colour follows
//!   [`colour_enabled`]: off when `NO_COLOR` is set or stdout is no terminal.
//!   Control characters from evidence are shown escaped (`\x1b`), so a hostile
//!   email cannot drive the terminal.
//! - [`to_json`] / [`write_json`]: the run with every scenario's evidence,
//!   raw emails byte for byte, fields in a stable, readable order.
//! - [`to_junit`] / [`write_junit`]: JUnit XML as CI systems read it. Suites
//!   are named after the ID without its number (`RST-LINK`); characters XML 1.0
//!   forbids are written escaped (`\x00`), so the document stays valid.
//!
//! # JUnit mapping
//!
//! CI colours a run red from `<failure>` and `<error>`, so these appear exactly
//! when the scenario makes the exit code non-zero ([`ScenarioResult::fails_run`]):
//!
//! | verdict | JUnit |
//! |---|---|
//! | pass | passing `<testcase>` |
//! | fail / warn that fails the run (a MUST failure; with `--strict` any fail or warn) | `<failure type="MUST">` with the requirement, Expected and Actual as body |
//! | fail / warn that does not fail the run | passing `<testcase>` whose `<system-out>` starts with `WARN (SHOULD), does not fail the run` |
//! | skipped | `<skipped message="reason">` |
//! | error | `<error type="harness-error">` (a harness fault, not a target failure) |
//!
//! Evidence (events, notes, SMTP transcript, raw emails) goes into the
//! testcase's `<system-out>`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use resetkit_harness::report::{self, ConsoleReporter};
//! use resetkit_harness::scenario::*;
//!
//! let info = ScenarioInfo {
//!     id: "RST-LINK-001",
//!     title: "The link uses https",
//!     severity: Severity::Must,
//!     requirement: Requirement { source: "OWASP Forgot Password Cheat Sheet", text: "Use HTTPS." },
//! };
//! let result = ScenarioResult {
//!     group: info.group(),
//!     info,
//!     verdict: Verdict::Fail,
//!     expected: Some("an https:// link".into()),
//!     actual: Some("http://app.example/reset?token=…".into()),
//!     evidence: Evidence::default(),
//!     duration: Duration::from_millis(12),
//! };
//! let run = RunReport { target: "demo".into(), results: vec![result], duration: Duration::from_millis(12), strict: false };
//!
//! let mut console = ConsoleReporter::new(Vec::new(), false, false);
//! console.start(&run.target, run.results.len())?;
//! console.scenario_finished(&run.results[0])?;
//! console.finish(&run)?;
//! let text = String::from_utf8_lossy(&console.into_inner()).into_owned();
//! assert!(text.contains("FAIL  RST-LINK-001") && text.contains("Expected: an https:// link"));
//!
//! assert!(report::to_json(&run)?.contains(r#""verdict": "fail""#));
//! assert!(report::to_junit(&run)?.contains(r#"<failure message="MUST failed: http://app.example"#));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use crate::scenario::{
    Evidence, Requirement, RunReport, ScenarioInfo, ScenarioResult, Severity, Tally, Verdict,
};

/// Receives a run's progress, scenario by scenario.
pub trait Progress {
    /// A scenario is about to run; `index` counts from 0.
    fn started(&mut self, index: usize, total: usize, info: &ScenarioInfo);
    /// A scenario has finished.
    fn finished(&mut self, result: &ScenarioResult);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn started(&mut self, _index: usize, _total: usize, _info: &ScenarioInfo) {}
    fn finished(&mut self, _result: &ScenarioResult) {}
}

/// Whether console output should be coloured: not when `NO_COLOR` holds a
/// non-empty value (<https://no-color.org>), and only on a terminal.
pub fn colour_enabled(no_color: Option<&OsStr>, is_terminal: bool) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

const EVENT_LINES: usize = 12;
const TRANSCRIPT_LINES: usize = 8;
const PROGRESS_WIDTH: usize = 79;
const INDENT: usize = 6;

/// Prints a run for people: progress, one line per scenario, details of what
/// went wrong, and a summary that says what the exit code means.
#[derive(Debug)]
pub struct ConsoleReporter<W: Write> {
    out: W,
    colour: bool,
    verbose: bool,
    progress: bool,
    /// Width of the progress line on screen, 0 when none is shown.
    progress_shown: usize,
}

impl ConsoleReporter<io::Stdout> {
    /// Prints to stdout; colour and the progress line only on a terminal,
    /// colour not when `NO_COLOR` is set.
    pub fn stdout(verbose: bool) -> Self {
        let tty = io::stdout().is_terminal();
        let colour = colour_enabled(std::env::var_os("NO_COLOR").as_deref(), tty);
        ConsoleReporter::new(io::stdout(), colour, verbose).with_progress(tty)
    }
}

impl<W: Write> ConsoleReporter<W> {
    /// Prints to `out`, with ANSI colour if `colour`; `verbose` prints whole
    /// emails and transcripts, and details for every scenario with evidence.
    /// No progress line (see [`with_progress`](Self::with_progress)).
    pub fn new(out: W, colour: bool, verbose: bool) -> Self {
        ConsoleReporter {
            out,
            colour,
            verbose,
            progress: false,
            progress_shown: 0,
        }
    }

    /// Whether to show a single updating progress line while a scenario runs
    /// (only sensible on a terminal).
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// The writer, e.g. to read what was printed.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Announces the run.
    pub fn start(&mut self, target: &str, total: usize) -> io::Result<()> {
        let target = terminal_safe(target);
        let head = self.paint(BOLD, "resetkit-harness");
        writeln!(self.out, "{head}: {total} scenario(s) against {target}\n")
    }

    /// Shows which scenario runs now (progress line only; nothing otherwise).
    pub fn scenario_started(&mut self, index: usize, total: usize, info: &ScenarioInfo) -> io::Result<()> {
        if !self.progress {
            return Ok(());
        }
        self.clear_progress()?;
        let text = format!(
            "[{}/{total}] {} {}",
            index + 1,
            info.id,
            terminal_safe(info.title)
        );
        let text: String = text.chars().take(PROGRESS_WIDTH).collect();
        write!(self.out, "{text}")?;
        self.progress_shown = text.chars().count();
        self.out.flush()
    }

    /// Prints a scenario's line and, when something went wrong (or when
    /// verbose), the details.
    pub fn scenario_finished(&mut self, result: &ScenarioResult) -> io::Result<()> {
        self.clear_progress()?;
        let (label, code) = badge(&result.verdict);
        let mut text = format!(
            "{} {} {} {}\n",
            self.paint(code, &format!("{label:<5}")),
            result.info.id,
            terminal_safe(result.info.title),
            self.paint(DIM, &format!("({})", human_duration(result.duration))),
        );
        let details = !matches!(result.verdict, Verdict::Pass | Verdict::Skipped(_))
            || (self.verbose && !result.evidence.is_empty());
        if let Verdict::Skipped(reason) = &result.verdict {
            self.field(&mut text, "Skipped", reason);
        }
        if details {
            self.details(&mut text, result);
        }
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }

    /// Prints the tally, the IDs that did not pass, and what the exit code means.
    pub fn finish(&mut self, report: &RunReport) -> io::Result<()> {
        self.clear_progress()?;
        let t = report.tally();
        let count = |n: usize, word: &str, code: &str| {
            if n > 0 {
                self.paint(code, &format!("{n} {word}"))
            } else {
                format!("{n} {word}")
            }
        };
        let mut text = format!(
            "\n{} {} scenario(s) in {}: {}, {}, {}, {}, {}\n",
            self.paint(BOLD, "Summary:"),
            report.results.len(),
            human_duration(report.duration),
            count(t.pass, "passed", GREEN),
            count(t.fail, "failed", RED),
            count(t.warn, "warned", YELLOW),
            count(t.skipped, "skipped", CYAN),
            count(t.error, "harness error(s)", MAGENTA),
        );
        for (label, verdict) in [
            ("Failed:", "fail"),
            ("Warned:", "warn"),
            ("Harness errors:", "error"),
        ] {
            let ids: Vec<&str> = report
                .results
                .iter()
                .filter(|r| r.verdict.as_str() == verdict)
                .map(|r| r.info.id)
                .collect();
            if !ids.is_empty() {
                let _ = writeln!(text, "{label} {}", ids.join(", "));
            }
        }
        let code = report.exit_code();
        let meaning = match code {
            0 if t.fail + t.warn > 0 && !report.strict => {
                "no MUST requirement failed; warnings do not fail the run (--strict makes them)"
            }
            0 => "every requirement checked holds",
            1 if report.strict => "a requirement failed (--strict: warnings and SHOULD failures count)",
            1 => "a MUST requirement failed",
            _ => {
                "the harness could not run every scenario (its own or the environment's fault), so the results are incomplete"
            }
        };
        let code_text = self.paint(if code == 0 { GREEN } else { RED }, &format!("Exit code {code}:"));
        let _ = writeln!(text, "{code_text} {meaning}.");
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }

    fn details(&self, text: &mut String, result: &ScenarioResult) {
        let info = &result.info;
        self.line(
            text,
            &self.paint(DIM, &format!("{} · {}", info.severity, info.requirement.source)),
        );
        self.field(text, "Requirement", &format!("\"{}\"", info.requirement.text));
        if let Verdict::Error(reason) = &result.verdict {
            self.field(text, "Harness error (not a target failure)", reason);
        }
        if let Some(expected) = &result.expected {
            self.field(text, "Expected", expected);
        }
        if let Some(actual) = &result.actual {
            self.field(text, "Actual", actual);
        }
        let evidence = &result.evidence;
        let events = &evidence.events;
        let shown = if self.verbose {
            events.len()
        } else {
            events.len().min(EVENT_LINES)
        };
        if !events.is_empty() {
            let earlier = events.len() - shown;
            let more = if earlier > 0 {
                format!(" (last {shown}; {earlier} earlier, see --verbose or --json)")
            } else {
                String::new()
            };
            self.block(text, &format!("Events{more}:"), &events[earlier..].join("\n"));
        }
        if !evidence.notes.is_empty() {
            self.block(text, "Notes:", &evidence.notes.join("\n"));
        }
        if let Some(transcript) = &evidence.transcript {
            let lines: Vec<&str> = transcript.lines().collect();
            if self.verbose || lines.len() <= TRANSCRIPT_LINES {
                self.block(text, "SMTP transcript:", transcript);
            } else {
                let head = format!(
                    "SMTP transcript (first {TRANSCRIPT_LINES} of {} lines; --verbose or --json for all):",
                    lines.len()
                );
                self.block(text, &head, &lines[..TRANSCRIPT_LINES].join("\n"));
            }
        }
        for (i, email) in evidence.emails.iter().enumerate() {
            let head = format!(
                "Email {} of {}: {}",
                i + 1,
                evidence.emails.len(),
                email_summary(email)
            );
            if self.verbose {
                self.block(text, &format!("{head}, raw:"), email);
            } else {
                self.line(text, &head);
            }
        }
    }

    /// `Label: value`, later lines of the value aligned under the first.
    fn field(&self, text: &mut String, label: &str, value: &str) {
        let pad = " ".repeat(INDENT + label.len() + 2);
        let mut lines = value.lines();
        let first = lines.next().unwrap_or_default();
        let _ = writeln!(
            text,
            "{}{}: {}",
            " ".repeat(INDENT),
            self.paint(BOLD, label),
            terminal_safe(first)
        );
        for line in lines {
            let _ = writeln!(text, "{pad}{}", terminal_safe(line));
        }
    }

    /// A heading and the value's lines indented under it.
    fn block(&self, text: &mut String, heading: &str, value: &str) {
        self.line(text, &self.paint(BOLD, heading));
        for line in value.lines() {
            let _ = writeln!(text, "{}  {}", " ".repeat(INDENT), terminal_safe(line));
        }
    }

    fn line(&self, text: &mut String, line: &str) {
        let _ = writeln!(text, "{}{line}", " ".repeat(INDENT));
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn clear_progress(&mut self) -> io::Result<()> {
        if self.progress_shown > 0 {
            write!(self.out, "\r{}\r", " ".repeat(self.progress_shown))?;
            self.progress_shown = 0;
        }
        Ok(())
    }
}

/// Console output is best effort while scenarios run: a write error (e.g. a
/// closed pipe) is ignored so the run and its JSON / JUnit files still finish.
impl<W: Write> Progress for ConsoleReporter<W> {
    fn started(&mut self, index: usize, total: usize, info: &ScenarioInfo) {
        let _ = self.scenario_started(index, total, info);
    }

    fn finished(&mut self, result: &ScenarioResult) {
        let _ = self.scenario_finished(result);
    }
}

const BOLD: &str = "1";
const DIM: &str = "2";
const GREEN: &str = "32";
const RED: &str = "1;31";
const YELLOW: &str = "1;33";
const CYAN: &str = "36";
const MAGENTA: &str = "1;35";

fn badge(verdict: &Verdict) -> (&'static str, &'static str) {
    match verdict {
        Verdict::Pass => ("PASS", GREEN),
        Verdict::Fail => ("FAIL", RED),
        Verdict::Warn => ("WARN", YELLOW),
        Verdict::Skipped(_) => ("SKIP", CYAN),
        Verdict::Error(_) => ("ERROR", MAGENTA),
    }
}

fn human_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        "<1 ms".to_owned()
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// `To: … · Subject: … · N bytes` of a raw email.
fn email_summary(raw: &str) -> String {
    let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes());
    let to = parsed
        .as_ref()
        .and_then(|m| m.to())
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or("?");
    let subject = parsed.as_ref().and_then(|m| m.subject()).unwrap_or("?");
    terminal_safe(&format!("To: {to} · Subject: {subject} · {} bytes", raw.len())).into_owned()
}

/// Escapes characters that must not reach the destination raw: C0 and C1
/// controls, U+FFFE / U+FFFF, and for a terminal also Unicode bidi controls
/// (which can reorder what is shown). `keep` lists controls left as they are.
fn escape_controls<'a>(s: &'a str, keep: &[char], terminal: bool) -> Cow<'a, str> {
    let bad = |c: char| {
        !keep.contains(&c)
            && (c.is_control()
                || matches!(c, '\u{fffe}' | '\u{ffff}')
                || (terminal
                    && matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')))
    };
    if !s.contains(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if !bad(c) => out.push(c),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// One line of text made safe for a terminal.
fn terminal_safe(s: &str) -> Cow<'_, str> {
    escape_controls(s, &['\t'], true)
}

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

fn millis(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

/// The run as pretty-printed JSON: `version` (1), `target`, `strict`,
/// `exit_code`, `duration_ms`, `tally {pass, fail, warn, skipped, error}` and
/// `scenarios`, one record per scenario in run order with `id`, `title`,
/// `group`, `severity` (`MUST` / `SHOULD` / `INFO`), `requirement {source,
/// text}`, `verdict` (`pass` / `fail` / `warn` / `skipped` / `error`), `reason`
/// (for skipped and error, else null), `fails_run`, `expected`, `actual`,
/// `duration_ms` and `evidence {emails, transcript, events, notes}`, the emails
/// raw.
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

/// The run as JUnit XML: one `<testsuite>` per ID prefix (`RST-LINK`), in
/// order of first appearance, a `<testcase name="ID title" classname="RST-LINK">`
/// per scenario; see the [module docs](self) for how verdicts map.
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

fn write_file(
    path: &Path,
    what: &str,
    fill: impl FnOnce(&mut BufWriter<fs::File>) -> io::Result<()>,
) -> io::Result<()> {
    let context = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("writing the {what} report to {}: {e}", path.display()),
        )
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(context)?;
    }
    let mut out = BufWriter::new(fs::File::create(path).map_err(context)?);
    fill(&mut out).map_err(context)?;
    out.flush().map_err(context)
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
