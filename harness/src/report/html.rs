//! The HTML report: one self-contained file that opens from a CI artifact.
//!
//! No network and no script: the page's Content-Security-Policy
//! (`default-src 'none'`, inline styles and `data:` images only) forbids
//! every load, the verdict filter is CSS (radio buttons), and a captured
//! email's HTML is shown in an `<iframe sandbox="" srcdoc=…>` that carries
//! the same policy, so a hostile email can neither run script nor load a
//! remote image (a tracking pixel would tell its sender the report was read).
//!
//! ```
//! use std::time::Duration;
//! use resetkit_harness::report::to_html;
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
//!     actual: Some("<b>http</b>://app.example/reset".into()),
//!     evidence: Evidence::default(),
//!     duration: Duration::from_millis(12),
//! };
//! let run = RunReport { target: "demo".into(), results: vec![result], duration: Duration::from_millis(12), strict: false };
//! let html = to_html(&run);
//! assert!(html.contains("default-src 'none'"));
//! assert!(html.contains("&lt;b&gt;http&lt;/b&gt;"));
//! assert!(!html.contains("<script"));
//! ```

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

mod figures;
mod sandbox;

use super::{escape_controls, write_file};
use crate::inspect::{ParsedMail, html_links, text_links};
use crate::scenario::{RunReport, ScenarioResult, Severity, Verdict};
use figures::figure_svg;
pub use sandbox::{defang, sandboxed_frame};

/// The page's policy: nothing may load but inline styles and `data:` images.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'; base-uri 'none'; form-action 'none'";
/// The policy inside an email's sandboxed frame.
const MAIL_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// HTML-escapes text (and shows control characters escaped).
pub(crate) fn esc(s: &str) -> String {
    let s = escape_controls(s, &['\t', '\n', '\r'], false);
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn verdict_rank(v: &Verdict) -> u8 {
    match v {
        Verdict::Fail => 0,
        Verdict::Error(_) => 1,
        Verdict::Warn => 2,
        Verdict::Pass => 3,
        Verdict::Skipped(_) => 4,
    }
}

/// The report as one HTML page.
pub fn to_html(report: &RunReport) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let t = report.tally();
    let code = report.exit_code();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{PAGE_CSP}\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>resetkit-harness report: {}</title>\n<style>{STYLE}</style></head><body>\n",
        esc(&report.target)
    );
    // The filter: radio buttons before everything they control (CSS `~`).
    for (id, label, checked) in [
        ("all", "All", true),
        ("fail", "Failed", false),
        ("warn", "Warned", false),
        ("error", "Harness errors", false),
        ("pass", "Passed", false),
        ("skipped", "Skipped", false),
    ] {
        let _ = writeln!(
            h,
            "<input type=\"radio\" name=\"filter\" id=\"f-{id}\" class=\"filter\"{}><!-- {label} -->",
            if checked { " checked" } else { "" }
        );
    }
    let meaning = match code {
        0 => "every MUST requirement checked holds",
        1 => "a requirement failed",
        _ => "the harness could not run every scenario: results are incomplete",
    };
    let _ = write!(
        h,
        "<header><h1>resetkit-harness report</h1>\n<p class=\"target\">Target: <b>{}</b></p>\n\
         <p>{} scenario(s) in {:.2} s{} · exit code <b class=\"code c{}\">{code}</b>: {meaning} · generated {}</p></header>\n",
        esc(&report.target),
        report.results.len(),
        report.duration.as_secs_f64(),
        if report.strict {
            " (strict: warnings fail)"
        } else {
            ""
        },
        code.min(2),
        crate::event_text::time(std::time::SystemTime::now()),
    );
    summary_table(&mut h, report, t);
    h.push_str("<nav class=\"filters\">Show: ");
    for (id, label, n) in [
        ("all", "all", report.results.len()),
        ("fail", "failed", t.fail),
        ("warn", "warned", t.warn),
        ("error", "harness errors", t.error),
        ("pass", "passed", t.pass),
        ("skipped", "skipped", t.skipped),
    ] {
        let _ = write!(h, "<label for=\"f-{id}\" class=\"l-{id}\">{label} ({n})</label> ");
    }
    h.push_str("</nav>\n<main>\n");
    // Groups ordered by their worst verdict, scenarios by verdict within.
    let mut groups: Vec<(&str, Vec<&ScenarioResult>)> = Vec::new();
    for r in &report.results {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, list)) => list.push(r),
            None => groups.push((r.group, vec![r])),
        }
    }
    for (_, list) in &mut groups {
        list.sort_by_key(|r| verdict_rank(&r.verdict));
    }
    groups.sort_by_key(|(_, list)| list.iter().map(|r| verdict_rank(&r.verdict)).min().unwrap_or(9));
    for (group, list) in &groups {
        let classes: String = list
            .iter()
            .map(|r| format!(" has-{}", r.verdict.as_str()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let _ = writeln!(h, "<section class=\"group{classes}\"><h2>{}</h2>", esc(group));
        for r in list {
            scenario(&mut h, r, report.strict);
        }
        h.push_str("</section>\n");
    }
    h.push_str("</main>\n<footer>Written by resetkit-harness. Tokens in links are shown as fingerprints (<code>tok#…</code>) unless the run used <code>--reveal-tokens</code>.</footer>\n</body></html>\n");
    h
}

/// Writes [`to_html`] to `path`, creating missing parent directories.
pub fn write_html(report: &RunReport, path: &Path) -> io::Result<()> {
    let html = to_html(report);
    write_file(path, "HTML", |out| out.write_all(html.as_bytes()))
}

fn summary_table(h: &mut String, report: &RunReport, t: crate::scenario::Tally) {
    let verdicts = ["pass", "fail", "warn", "skipped", "error"];
    h.push_str("<table class=\"summary\"><thead><tr><th>severity</th>");
    for v in verdicts {
        let _ = write!(h, "<th class=\"v-{v}\">{v}</th>");
    }
    h.push_str("<th>total</th></tr></thead><tbody>\n");
    for severity in [Severity::Must, Severity::Should, Severity::Info] {
        let of: Vec<&ScenarioResult> = report
            .results
            .iter()
            .filter(|r| r.info.severity == severity)
            .collect();
        if of.is_empty() {
            continue;
        }
        let _ = write!(h, "<tr><th>{severity}</th>");
        for v in verdicts {
            let n = of.iter().filter(|r| r.verdict.as_str() == v).count();
            let _ = write!(
                h,
                "<td class=\"{}\">{n}</td>",
                if n > 0 { format!("v-{v}") } else { "zero".into() }
            );
        }
        let _ = writeln!(h, "<td>{}</td></tr>", of.len());
    }
    let _ = writeln!(
        h,
        "<tr class=\"total\"><th>all</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></tbody></table>",
        t.pass,
        t.fail,
        t.warn,
        t.skipped,
        t.error,
        report.results.len()
    );
}

fn scenario(h: &mut String, r: &ScenarioResult, strict: bool) {
    let v = r.verdict.as_str();
    let open =
        matches!(r.verdict, Verdict::Fail | Verdict::Error(_)) || (r.verdict == Verdict::Warn && strict);
    let _ = write!(
        h,
        "<details class=\"scenario v-{v}\" id=\"{}\"{}><summary><span class=\"badge b-{v}\">{}</span> \
         <span class=\"id\">{}</span> {} <span class=\"sev s-{}\">{}</span>{} <span class=\"dur\">{} ms</span></summary>\n<div class=\"body\">\n",
        esc(r.info.id),
        if open { " open" } else { "" },
        v.to_ascii_uppercase(),
        esc(r.info.id),
        esc(r.info.title),
        r.info.severity.as_str().to_ascii_lowercase(),
        r.info.severity,
        if r.fails_run(strict) {
            " <span class=\"fails\">fails the run</span>"
        } else {
            ""
        },
        r.duration.as_millis(),
    );
    let q = &r.info.requirement;
    let _ = writeln!(
        h,
        "<blockquote class=\"requirement\"><p>{}</p><cite>{}</cite></blockquote>",
        esc(q.text),
        esc(q.source)
    );
    match &r.verdict {
        Verdict::Skipped(reason) => {
            let _ = writeln!(h, "<p class=\"reason\"><b>Skipped:</b> {}</p>", esc(reason));
        }
        Verdict::Error(reason) => {
            let _ = writeln!(
                h,
                "<div class=\"reason\"><b>Harness error</b> (not a target failure): <pre>{}</pre></div>",
                esc(reason)
            );
        }
        _ => {}
    }
    if r.expected.is_some() || r.actual.is_some() {
        h.push_str("<dl class=\"ea\">");
        for (label, value) in [("Expected", &r.expected), ("Actual", &r.actual)] {
            if let Some(value) = value {
                let _ = write!(h, "<dt>{label}</dt><dd><pre>{}</pre></dd>", esc(value));
            }
        }
        h.push_str("</dl>\n");
    }
    let e = &r.evidence;
    for figure in &e.figures {
        h.push_str("<div class=\"figure\">");
        h.push_str(&figure_svg(figure));
        h.push_str("</div>\n");
    }
    let (exchanges, notes): (Vec<&String>, Vec<&String>) =
        e.notes.iter().partition(|n| n.starts_with("HTTP "));
    if !notes.is_empty() {
        h.push_str("<h3>Notes</h3><ul class=\"notes\">");
        for n in notes {
            let _ = write!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul>\n");
    }
    if !exchanges.is_empty() {
        let _ = write!(
            h,
            "<details class=\"ev\"><summary>HTTP exchanges ({})</summary><ol class=\"exchanges\">",
            exchanges.len()
        );
        for x in exchanges {
            let _ = write!(h, "<li><pre>{}</pre></li>", esc(x.trim_start_matches("HTTP ")));
        }
        h.push_str("</ol></details>\n");
    }
    if !e.emails.is_empty() {
        let _ = writeln!(h, "<h3>Captured emails ({})</h3>", e.emails.len());
        for (i, raw) in e.emails.iter().enumerate() {
            email(h, i + 1, raw);
        }
    }
    if let Some(transcript) = &e.transcript {
        let _ = writeln!(
            h,
            "<details class=\"ev\"><summary>SMTP transcript</summary><pre class=\"transcript\">{}</pre></details>",
            esc(transcript)
        );
    }
    if !e.events.is_empty() {
        let _ = write!(
            h,
            "<details class=\"ev\"><summary>Events ({})</summary><ol class=\"events\">",
            e.events.len()
        );
        for event in &e.events {
            let _ = write!(h, "<li><code>{}</code></li>", esc(event));
        }
        h.push_str("</ol></details>\n");
    }
    h.push_str("</div></details>\n");
}

fn email(h: &mut String, n: usize, raw: &str) {
    match ParsedMail::parse(raw.as_bytes()) {
        Ok(mail) => {
            let _ = writeln!(
                h,
                "<details class=\"email\"><summary>Email {n}: <b>{}</b> · from {} · to {}</summary>",
                esc(&mail.subject),
                esc(&mail.from.join(", ")),
                esc(&mail.to.join(", "))
            );
            let mut links = mail.text.as_deref().map(text_links).unwrap_or_default();
            for link in mail.html.as_deref().map(html_links).unwrap_or_default() {
                if !links.contains(&link) {
                    links.push(link);
                }
            }
            if !links.is_empty() {
                h.push_str("<p>Links:</p><ul class=\"links\">");
                for link in links {
                    // Shown as text, never as a live link.
                    let _ = write!(h, "<li><code>{}</code></li>", esc(&link));
                }
                h.push_str("</ul>");
            }
            if let Some(text) = &mail.text {
                let _ = writeln!(
                    h,
                    "<details open><summary>Text part</summary><pre class=\"mailtext\">{}</pre></details>",
                    esc(text)
                );
            }
            if let Some(html) = &mail.html {
                let _ = writeln!(
                    h,
                    "<details><summary>HTML part (sandboxed: no scripts, no remote images)</summary>{}</details>",
                    sandboxed_frame(html)
                );
            }
            let _ = writeln!(
                h,
                "<details><summary>Raw message</summary><pre class=\"raw\">{}</pre></details></details>",
                esc(raw)
            );
        }
        Err(e) => {
            let _ = writeln!(
                h,
                "<details class=\"email\"><summary>Email {n} (not parseable: {})</summary><pre class=\"raw\">{}</pre></details>",
                esc(&e.to_string()),
                esc(raw)
            );
        }
    }
}

const STYLE: &str = include_str!("html/style.css");
