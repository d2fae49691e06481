//! The console report: progress line, one line per scenario, details and
//! summary.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use super::{Progress, escape_controls};
use crate::scenario::{RunReport, ScenarioInfo, ScenarioResult, Verdict};

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
    /// Tokens are shown as fingerprints (`None`: `--reveal-tokens`).
    redactor: Option<super::TokenRedactor>,
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
            redactor: Some(super::TokenRedactor::default()),
        }
    }

    /// Whether reset tokens are printed as they are (default: no, each is
    /// shown as its fingerprint, `tok#3f9a1c2e…`).
    pub fn reveal_tokens(mut self, reveal: bool) -> Self {
        self.redactor = if reveal {
            None
        } else {
            Some(super::TokenRedactor::default())
        };
        self
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
        let redacted;
        let result = match &mut self.redactor {
            Some(redactor) => {
                redactor.learn_result(result);
                let mut copy = result.clone();
                redactor.redact_result(&mut copy);
                redacted = copy;
                &redacted
            }
            None => result,
        };
        self.clear_progress()?;
        let (label, code) = badge(&result.verdict);
        // A pass that could not check part of its title says so on the
        // verdict line itself, not only in a note below it.
        let partly = result
            .evidence
            .notes
            .iter()
            .filter(|n| n.starts_with(crate::report::NOT_CHECKED))
            .count();
        let partly = if partly > 0 && matches!(result.verdict, Verdict::Pass) {
            format!(
                " {}",
                self.paint(YELLOW, &format!("[partly checked: {partly} part(s) not checked]"))
            )
        } else {
            String::new()
        };
        let mut text = format!(
            "{} {} {}{partly} {}\n",
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
        if !details {
            // Parts of a check that could not be made are shown even when
            // it passed, so a pass is never read as more than it is.
            for note in result
                .evidence
                .notes
                .iter()
                .filter(|n| n.starts_with(crate::report::NOT_CHECKED))
            {
                self.field(&mut text, "Note", note);
            }
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

/// One line of text made safe for a terminal.
fn terminal_safe(s: &str) -> Cow<'_, str> {
    escape_controls(s, &['\t'], true)
}
