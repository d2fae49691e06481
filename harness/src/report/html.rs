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

use super::{escape_controls, write_file};
use crate::inspect::{ParsedMail, html_links, text_links};
use crate::scenario::{Figure, RunReport, ScenarioResult, Severity, Verdict};

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

/// An email's HTML in a frame that can run nothing and load nothing:
/// `sandbox=""` (no scripts, no forms, no navigation, unique origin), a CSP
/// meta inside the document, and the HTML [defanged](defang) (browsers open
/// connections for `<link rel=preconnect>` and nested frames before any
/// policy is applied).
pub fn sandboxed_frame(html: &str) -> String {
    let doc = format!(
        "<!doctype html><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"{MAIL_CSP}\"><style>a{{color:#0969da;text-decoration:underline;cursor:not-allowed}}</style>{}",
        defang(html)
    );
    format!(
        "<iframe class=\"mailhtml\" sandbox=\"\" referrerpolicy=\"no-referrer\" title=\"email HTML part\" srcdoc=\"{}\"></iframe>",
        esc(&doc)
    )
}

/// Elements that fetch or navigate on their own; renamed (`<blocked-link>`)
/// so the browser sees an inert unknown element.
const BLOCKED_ELEMENTS: &[&str] = &[
    "link",
    "meta",
    "base",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "portal",
    "fencedframe",
    "script",
    "noscript",
    "applet",
    "form",
];

/// An email's HTML made inert for a preview: elements that load or
/// navigate by themselves are renamed, and links (`<a>`, `<area>`) lose
/// `href` / `ping` (kept as `data-blocked-href`), so neither hovering nor a
/// click leaves the page. Text and layout stay as they are.
pub fn defang(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + 64);
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        let after = &rest[1..];
        let (slash, name_start) = match after.strip_prefix('/') {
            Some(rest) => ("/", rest),
            None => ("", after),
        };
        let name_len = name_start
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == ':'))
            .unwrap_or(name_start.len());
        let name = &name_start[..name_len];
        if name.is_empty() {
            out.push('<');
            rest = after;
            continue;
        }
        let lower = name.to_ascii_lowercase();
        let consumed = 1 + slash.len() + name_len;
        if BLOCKED_ELEMENTS.contains(&lower.as_str()) {
            out.push('<');
            out.push_str(slash);
            out.push_str("blocked-");
            out.push_str(name);
            rest = &rest[consumed..];
        } else if (lower == "a" || lower == "area") && slash.is_empty() {
            let tag_end = tag_end(&rest[consumed..]).map_or(rest.len(), |e| consumed + e);
            out.push_str(&rest[..consumed]);
            out.push_str(&rename_link_attributes(&rest[consumed..tag_end]));
            rest = &rest[tag_end..];
        } else {
            out.push_str(&rest[..consumed]);
            rest = &rest[consumed..];
        }
    }
    out.push_str(rest);
    out
}

/// Where a tag's `>` is, skipping quoted attribute values.
fn tag_end(attrs: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in attrs.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// `href`, `xlink:href` and `ping` attribute names prefixed with `data-blocked-`.
fn rename_link_attributes(attrs: &str) -> String {
    let mut out = String::with_capacity(attrs.len() + 16);
    let bytes = attrs.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == q {
                quote = None;
            }
        } else if b == b'"' || b == b'\'' {
            quote = Some(b);
        } else if (i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'/'))
            && let Some(len) = ["xlink:href", "href", "ping"]
                .iter()
                .find(|name| {
                    attrs[i..].len() >= name.len() && attrs[i..i + name.len()].eq_ignore_ascii_case(name)
                })
                .map(|name| name.len())
        {
            out.push_str("data-blocked-");
            out.push_str(&attrs[i..i + len]);
            i += len;
            continue;
        }
        let ch_len = attrs[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&attrs[i..i + ch_len]);
        i += ch_len;
    }
    out
}

// ---- figures ----

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn figure_svg(figure: &Figure) -> String {
    match figure {
        Figure::Latency {
            reference,
            threshold,
            classes,
            ratios,
        } => latency_svg(reference, threshold.0, classes, ratios),
        Figure::Trials {
            what,
            successes,
            submitted,
            expected,
        } => trials_svg(what, successes, *submitted, *expected),
        #[allow(unreachable_patterns)]
        _ => String::new(),
    }
}

fn latency_svg(
    reference: &str,
    threshold: f64,
    classes: &[crate::scenario::LatencyClass],
    ratios: &[crate::scenario::RatioEstimate],
) -> String {
    let (w, left, right) = (720.0, 130.0, 20.0);
    let row = 40.0;
    let plot_w = w - left - right;
    let sorted: Vec<Vec<f64>> = classes
        .iter()
        .map(|c| {
            let mut v: Vec<f64> = c
                .samples_ms
                .iter()
                .map(|n| n.0)
                .filter(|x| x.is_finite())
                .collect();
            v.sort_by(f64::total_cmp);
            v
        })
        .collect();
    // Scale to the 99th percentile of everything, so one outlier does not
    // squash the boxes; samples beyond are drawn at the edge.
    let mut all: Vec<f64> = sorted.iter().flatten().copied().collect();
    all.sort_by(f64::total_cmp);
    let max = (quantile(&all, 0.99) * 1.1).max(0.001);
    let x = |v: f64| left + (v.min(max) / max) * plot_w;
    let top = 30.0;
    let height = top + row * classes.len() as f64 + 40.0;
    let mut s = format!(
        "<figure><figcaption>Response time of the forgot-password request per class of identifier (box: quartiles, line: median, whiskers: 5th–95th percentile, dots: samples)</figcaption>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\" role=\"img\" aria-label=\"latency distributions\">"
    );
    for i in 0..=5 {
        let v = max * f64::from(i) / 5.0;
        let xx = x(v);
        let _ = write!(
            s,
            "<line x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{:.1}\" class=\"grid\"/><text x=\"{xx:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">{v:.1} ms</text>",
            height - 30.0,
            height - 14.0
        );
    }
    for (i, (class, v)) in classes.iter().zip(&sorted).enumerate() {
        let cy = top + row * i as f64 + row / 2.0;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" text-anchor=\"end\">{} (n={})</text>",
            left - 8.0,
            cy + 4.0,
            esc(&class.name),
            v.len()
        );
        if v.is_empty() {
            continue;
        }
        let (p5, q1, med, q3, p95) = (
            quantile(v, 0.05),
            quantile(v, 0.25),
            quantile(v, 0.5),
            quantile(v, 0.75),
            quantile(v, 0.95),
        );
        for (k, sample) in v.iter().enumerate() {
            // Deterministic jitter.
            let jitter = ((k * 7919) % 17) as f64 - 8.0;
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.6\" class=\"dot\"/>",
                x(*sample),
                cy + jitter
            );
        }
        let _ = write!(
            s,
            "<line x1=\"{:.1}\" y1=\"{cy:.1}\" x2=\"{:.1}\" y2=\"{cy:.1}\" class=\"whisker\"/>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" class=\"box c{}\"/>\
             <line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" class=\"median\"/>\
             <title>{}: median {med:.2} ms, quartiles {q1:.2}–{q3:.2} ms</title>",
            x(p5),
            x(p95),
            x(q1),
            cy - 10.0,
            (x(q3) - x(q1)).max(1.0),
            20.0,
            i % 4,
            x(med),
            cy - 12.0,
            x(med),
            cy + 12.0,
            esc(&class.name),
        );
    }
    s.push_str("</svg>");
    if !ratios.is_empty() {
        s.push_str(&ratio_svg(reference, threshold, ratios));
    }
    s.push_str("</figure>");
    s
}

fn ratio_svg(reference: &str, threshold: f64, ratios: &[crate::scenario::RatioEstimate]) -> String {
    let (w, left, right) = (720.0, 130.0, 230.0);
    let row = 30.0;
    let plot_w = w - left - right;
    let threshold = threshold.max(1.0001);
    let mut lo = 1.0 / threshold / 1.25;
    let mut hi = threshold * 1.25;
    for r in ratios {
        for v in [r.low.0, r.high.0, r.ratio.0] {
            if v.is_finite() && v > 0.0 {
                lo = lo.min(v / 1.1);
                hi = hi.max(v * 1.1);
            }
        }
    }
    let (llo, lhi) = (lo.ln(), hi.ln());
    let x = |v: f64| left + ((v.max(lo).min(hi).ln() - llo) / (lhi - llo)) * plot_w;
    let top = 24.0;
    let height = top + row * ratios.len() as f64 + 34.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\" role=\"img\" aria-label=\"ratios of medians\">\
         <text x=\"{left}\" y=\"14\" class=\"label\">Ratio of medians to {} identifiers, 95% interval (log scale); shaded: within 1/{threshold}..{threshold}</text>\
         <rect x=\"{:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\" class=\"band\"/>\
         <line x1=\"{:.1}\" y1=\"{top}\" x2=\"{:.1}\" y2=\"{:.1}\" class=\"one\"/>",
        esc(reference),
        x(1.0 / threshold),
        x(threshold) - x(1.0 / threshold),
        row * ratios.len() as f64,
        x(1.0),
        x(1.0),
        top + row * ratios.len() as f64,
    );
    for v in [1.0 / threshold, 1.0, threshold] {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">{v:.2}</text>",
            x(v),
            height - 14.0
        );
    }
    for (i, r) in ratios.iter().enumerate() {
        let cy = top + row * i as f64 + row / 2.0;
        let class = match r.decision.as_str() {
            "differs" => "bad",
            "same" => "good",
            _ => "maybe",
        };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" text-anchor=\"end\">{}</text>\
             <line x1=\"{:.1}\" y1=\"{cy:.1}\" x2=\"{:.1}\" y2=\"{cy:.1}\" class=\"ci {class}\"/>\
             <circle cx=\"{:.1}\" cy=\"{cy:.1}\" r=\"4\" class=\"pt {class}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"label\">{:.2} ({:.2}–{:.2}) {}</text>",
            left - 8.0,
            cy + 4.0,
            esc(&r.name),
            x(r.low.0),
            x(r.high.0),
            x(r.ratio.0),
            w - right + 10.0,
            cy + 4.0,
            r.ratio.0,
            r.low.0,
            r.high.0,
            esc(&r.decision),
        );
    }
    s.push_str("</svg>");
    s
}

fn trials_svg(what: &str, successes: &[usize], submitted: usize, expected: usize) -> String {
    let (w, left) = (720.0, 50.0);
    let top = 10.0;
    let plot_h = 120.0;
    let max = successes.iter().copied().max().unwrap_or(0).max(expected).max(1) as f64;
    let n = successes.len().max(1) as f64;
    let bar_w = ((w - left - 20.0) / n).min(60.0);
    let y = |v: f64| top + plot_h - v / max * plot_h;
    let height = top + plot_h + 36.0;
    let mut s = format!(
        "<figure><figcaption>Per trial: how many of {submitted} {} (bars); a correct app gives exactly {expected} per trial (dashed line)</figcaption>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\" role=\"img\" aria-label=\"successes per trial\">",
        esc(what),
    );
    for (i, &count) in successes.iter().enumerate() {
        let bx = left + bar_w * i as f64 + 4.0;
        let class = if count == expected { "good" } else { "bad" };
        let _ = write!(
            s,
            "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" class=\"bar {class}\"><title>trial {}: {count}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" text-anchor=\"middle\">{count}</text>",
            y(count as f64),
            bar_w - 8.0,
            (top + plot_h - y(count as f64)).max(0.0),
            i + 1,
            bx + (bar_w - 8.0) / 2.0,
            top + plot_h + 14.0,
            i + 1,
            bx + (bar_w - 8.0) / 2.0,
            (y(count as f64) - 3.0).max(9.0),
        );
    }
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" class=\"expected\"/>\
         <line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" class=\"axis\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\">trial</text></svg></figure>",
        y(expected as f64),
        w - 10.0,
        y(expected as f64),
        top + plot_h,
        w - 10.0,
        top + plot_h,
        left - 40.0,
        top + plot_h + 14.0,
    );
    s
}

const STYLE: &str = r#"
:root { --pass:#1a7f37; --fail:#cf222e; --warn:#9a6700; --skip:#57606a; --err:#8250df; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1100px; padding: 16px 24px; color: #1f2328; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 6px; border-bottom: 1px solid #d0d7de; } h3 { font-size: 14px; margin: 12px 0 4px; }
.code.c0 { color: var(--pass); } .code.c1, .code.c2 { color: var(--fail); }
table.summary { border-collapse: collapse; margin: 10px 0; } table.summary th, table.summary td { border: 1px solid #d0d7de; padding: 3px 10px; text-align: right; }
td.zero { color: #8c959f; } td.v-pass, th.v-pass { color: var(--pass); } td.v-fail, th.v-fail { color: var(--fail); font-weight: bold; } td.v-warn, th.v-warn { color: var(--warn); } td.v-skipped, th.v-skipped { color: var(--skip); } td.v-error, th.v-error { color: var(--err); font-weight: bold; }
input.filter { position: absolute; opacity: 0; pointer-events: none; }
nav.filters label { display: inline-block; padding: 2px 10px; margin: 2px; border: 1px solid #d0d7de; border-radius: 12px; cursor: pointer; user-select: none; }
#f-all:checked ~ nav .l-all, #f-fail:checked ~ nav .l-fail, #f-warn:checked ~ nav .l-warn, #f-error:checked ~ nav .l-error, #f-pass:checked ~ nav .l-pass, #f-skipped:checked ~ nav .l-skipped { background: #0969da; color: #fff; border-color: #0969da; }
#f-fail:checked ~ main .scenario:not(.v-fail), #f-warn:checked ~ main .scenario:not(.v-warn), #f-error:checked ~ main .scenario:not(.v-error), #f-pass:checked ~ main .scenario:not(.v-pass), #f-skipped:checked ~ main .scenario:not(.v-skipped) { display: none; }
#f-fail:checked ~ main .group:not(.has-fail), #f-warn:checked ~ main .group:not(.has-warn), #f-error:checked ~ main .group:not(.has-error), #f-pass:checked ~ main .group:not(.has-pass), #f-skipped:checked ~ main .group:not(.has-skipped) { display: none; }
details.scenario { border: 1px solid #d0d7de; border-left: 6px solid var(--skip); border-radius: 4px; margin: 4px 0; }
details.scenario.v-pass { border-left-color: var(--pass); } details.scenario.v-fail { border-left-color: var(--fail); background: #fff8f8; } details.scenario.v-warn { border-left-color: var(--warn); background: #fffbef; } details.scenario.v-error { border-left-color: var(--err); background: #fbf8ff; }
details.scenario > summary { padding: 5px 8px; cursor: pointer; }
.badge { display: inline-block; min-width: 58px; text-align: center; font-weight: bold; font-size: 12px; border-radius: 3px; color: #fff; background: var(--skip); }
.b-pass { background: var(--pass); } .b-fail { background: var(--fail); } .b-warn { background: var(--warn); } .b-error { background: var(--err); }
.id { font-family: ui-monospace, monospace; } .sev { font-size: 11px; border: 1px solid #8c959f; border-radius: 3px; padding: 0 4px; } .s-must { border-color: var(--fail); } .fails { font-size: 11px; color: var(--fail); font-weight: bold; } .dur { color: #8c959f; font-size: 12px; float: right; }
.body { padding: 4px 14px 10px; }
blockquote.requirement { margin: 6px 0; padding: 4px 12px; border-left: 3px solid #0969da; background: #f6f8fa; } blockquote.requirement p { margin: 0; } blockquote cite { color: #57606a; font-size: 12px; }
dl.ea dt { font-weight: bold; } dl.ea dd { margin: 0 0 6px 16px; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f8fa; padding: 6px; margin: 2px 0; font-size: 12px; max-height: 480px; overflow: auto; }
ul.notes li, ol.events li { font-size: 13px; } details.ev, details.email { margin: 6px 0; } details.email { border: 1px solid #d0d7de; padding: 4px 8px; border-radius: 4px; }
iframe.mailhtml { width: 100%; height: 320px; border: 1px solid #d0d7de; background: #fff; }
svg.chart { display: block; background: #fff; } svg .grid { stroke: #eaeef2; } svg .tick { font-size: 10px; fill: #57606a; } svg .label { font-size: 11px; fill: #1f2328; }
svg .dot { fill: #0969da; fill-opacity: .25; } svg .box { fill-opacity: .35; stroke: #1f2328; } svg .box.c0 { fill: #cf222e; } svg .box.c1 { fill: #0969da; } svg .box.c2 { fill: #8250df; } svg .box.c3 { fill: #9a6700; }
svg .median { stroke: #1f2328; stroke-width: 2.5; } svg .whisker { stroke: #57606a; stroke-width: 1.5; }
svg .band { fill: #dafbe1; } svg .one { stroke: #8c959f; stroke-dasharray: 3 3; } svg .ci { stroke-width: 3; } svg .ci.good, svg .pt.good { stroke: var(--pass); fill: var(--pass); } svg .ci.bad, svg .pt.bad { stroke: var(--fail); fill: var(--fail); } svg .ci.maybe, svg .pt.maybe { stroke: var(--warn); fill: var(--warn); }
svg .bar.good { fill: var(--pass); } svg .bar.bad { fill: var(--fail); } svg .expected { stroke: #1f2328; stroke-dasharray: 5 4; } svg .axis { stroke: #57606a; }
figure { margin: 8px 0; } figcaption { font-size: 12px; color: #57606a; }
footer { margin-top: 24px; color: #57606a; font-size: 12px; }
"#;

#[cfg(test)]
mod tests {
    use super::defang;

    #[test]
    fn defang_renames_loading_elements_and_unlinks_anchors() {
        let html = r#"<LINK rel=preconnect href="http://x/"><iframe/src="http://x/f"></iframe><p>Hi <a class=b HREF="http://x/r?a>b" ping=http://x/p>go</a></p><img src="http://x/i">"#;
        let out = defang(html);
        assert!(out.contains("<blocked-LINK rel=preconnect"), "{out}");
        assert!(
            out.contains("<blocked-iframe/src") && out.contains("</blocked-iframe>"),
            "{out}"
        );
        assert!(
            out.contains(
                r#"<a class=b data-blocked-HREF="http://x/r?a>b" data-blocked-ping=http://x/p>go</a>"#
            ),
            "{out}"
        );
        assert!(out.contains("<img src=") && out.contains("<p>Hi "), "{out}");
        assert_eq!(defang("a < b and <3 and <"), "a < b and <3 and <");
    }
}
