//! Reports of a run: the console (progress and colour), a JSON file with one
//! record per scenario, JUnit XML with one `<testsuite>` per scenario
//! group, and a self-contained HTML page ([`to_html`]).
//!
//! Reports are safe to keep: every reset token is shown as a fingerprint
//! (`tok#3f9a1c2e…`, see [`TokenRedactor`]) unless the run asked for
//! `--reveal-tokens`.
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

mod console;
pub(crate) mod html;
mod json;
mod junit;
pub(crate) mod redact;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::scenario::{ScenarioInfo, ScenarioResult};

pub use console::{ConsoleReporter, colour_enabled};

/// How an evidence note starts when part of a check could not be made
/// (e.g. signing in, without a sign-in page); the console shows such notes
/// even for a pass.
pub const NOT_CHECKED: &str = "Not checked:";
pub use html::{defang, sandboxed_frame, to_html, write_html};
pub use json::{to_json, write_json};
pub use junit::{to_junit, write_junit};
pub use redact::{TokenRedactor, redacted, token_fingerprint};

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
