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
//! assert!(html.contains("&lt;b&gt;http&lt;&#x2f;b&gt;")); // minijinja also escapes `/`
//! assert!(!html.contains("<script"));
//! ```

use std::io::{self, Write};
use std::path::Path;
use std::sync::LazyLock;

mod figures;
mod sandbox;

use minijinja::{Environment, Value, context};

use super::{escape_controls, write_file};
use crate::inspect::{ParsedMail, html_links, text_links};
use crate::scenario::{RunReport, ScenarioResult, Severity, Verdict};
use figures::figure_svg;
pub use sandbox::{defang, sandboxed_frame};

/// The page's policy: nothing may load but inline styles and `data:` images.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'; base-uri 'none'; form-action 'none'";
/// The policy inside an email's sandboxed frame.
const MAIL_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// The harness's templates: the report, the inbox's pages, the email frame.
const TEMPLATES: [(&str, &str); 9] = [
    ("figures.html", include_str!("html/templates/figures.html")),
    ("report.html", include_str!("html/templates/report.html")),
    ("scenario.html", include_str!("html/templates/scenario.html")),
    ("email.html", include_str!("html/templates/email.html")),
    ("mail_frame.html", include_str!("html/templates/mail_frame.html")),
    ("mail_doc.html", include_str!("html/templates/mail_doc.html")),
    ("inbox_base.html", include_str!("html/templates/inbox_base.html")),
    (
        "inbox_index.html",
        include_str!("html/templates/inbox_index.html"),
    ),
    (
        "inbox_message.html",
        include_str!("html/templates/inbox_message.html"),
    ),
];

/// The one engine every HTML page of the harness renders through
/// (minijinja, HTML auto-escaping), with the `shown` filter: control
/// characters written as escapes (`\x1b`), so captured text cannot
/// rewrite what a reader sees.
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_filter("shown", |s: String| {
        escape_controls(&s, &['\t', '\n', '\r'], false).into_owned()
    });
    for (name, source) in TEMPLATES {
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, template = name, "a harness template does not compile");
        }
    }
    env
});

/// Renders template `name` (a fixed page of the harness; a failure is a
/// bug, logged, and answered with a short error page).
pub(crate) fn render(name: &str, ctx: Value) -> String {
    ENV.get_template(name)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|error| {
            tracing::error!(%error, template = name, "rendering a harness page failed");
            "<!doctype html><title>Error</title><p>Rendering this page failed.</p>".to_owned()
        })
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
    let t = report.tally();
    let code = report.exit_code();
    let meaning = match code {
        0 => "every MUST requirement checked holds",
        1 => "a requirement failed",
        _ => "the harness could not run every scenario: results are incomplete",
    };
    let filters: Vec<Value> = [
        ("all", "All", "all", report.results.len()),
        ("fail", "Failed", "failed", t.fail),
        ("warn", "Warned", "warned", t.warn),
        ("error", "Harness errors", "harness errors", t.error),
        ("pass", "Passed", "passed", t.pass),
        ("skipped", "Skipped", "skipped", t.skipped),
    ]
    .iter()
    .map(|(id, radio, label, n)| context! { id, radio, label, n })
    .collect();
    let verdicts = ["pass", "fail", "warn", "skipped", "error"];
    let severities: Vec<Value> = [Severity::Must, Severity::Should, Severity::Info]
        .into_iter()
        .filter_map(|severity| {
            let of: Vec<&ScenarioResult> = report
                .results
                .iter()
                .filter(|r| r.info.severity == severity)
                .collect();
            let counts: Vec<Value> = verdicts
                .iter()
                .map(|v| context! { verdict => v, n => of.iter().filter(|r| r.verdict.as_str() == *v).count() })
                .collect();
            (!of.is_empty()).then(|| context! { severity => severity.to_string(), counts, total => of.len() })
        })
        .collect();
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
    let groups: Vec<Value> = groups
        .iter()
        .map(|(group, list)| {
            let classes: String = list
                .iter()
                .map(|r| format!(" has-{}", r.verdict.as_str()))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let scenarios: Vec<Value> = list.iter().map(|r| scenario(r, report.strict)).collect();
            context! { name => group, classes, scenarios }
        })
        .collect();
    render(
        "report.html",
        context! {
            page_csp => Value::from_safe_string(PAGE_CSP.to_owned()),
            style => Value::from_safe_string(STYLE.to_owned()),
            target => report.target,
            filters,
            count => report.results.len(),
            seconds => format!("{:.2}", report.duration.as_secs_f64()),
            strict => report.strict,
            code,
            code_class => code.min(2),
            meaning,
            generated => crate::event_text::time(std::time::SystemTime::now()),
            verdicts,
            severities,
            totals => [t.pass, t.fail, t.warn, t.skipped, t.error],
            groups,
        },
    )
}

/// Writes [`to_html`] to `path`, creating missing parent directories.
pub fn write_html(report: &RunReport, path: &Path) -> io::Result<()> {
    let html = to_html(report);
    write_file(path, "HTML", |out| out.write_all(html.as_bytes()))
}

fn scenario(r: &ScenarioResult, strict: bool) -> Value {
    let open =
        matches!(r.verdict, Verdict::Fail | Verdict::Error(_)) || (r.verdict == Verdict::Warn && strict);
    let e = &r.evidence;
    let (exchanges, notes): (Vec<&String>, Vec<&String>) =
        e.notes.iter().partition(|n| n.starts_with("HTTP "));
    let exchanges: Vec<&str> = exchanges.iter().map(|x| x.trim_start_matches("HTTP ")).collect();
    let figures: Vec<Value> = e
        .figures
        .iter()
        .map(|f| Value::from_safe_string(figure_svg(f)))
        .collect();
    let emails: Vec<Value> = e
        .emails
        .iter()
        .enumerate()
        .map(|(i, raw)| email(i + 1, raw))
        .collect();
    context! {
        verdict => r.verdict.as_str(),
        id => r.info.id,
        title => r.info.title,
        severity => r.info.severity.to_string(),
        severity_class => r.info.severity.as_str().to_ascii_lowercase(),
        open,
        fails_run => r.fails_run(strict),
        ms => r.duration.as_millis(),
        requirement => r.info.requirement.text,
        source => r.info.requirement.source,
        skipped => match &r.verdict { Verdict::Skipped(reason) => Some(reason.clone()), _ => None },
        error => match &r.verdict { Verdict::Error(reason) => Some(reason.clone()), _ => None },
        expected => r.expected,
        actual => r.actual,
        figures,
        notes,
        exchanges,
        emails,
        transcript => e.transcript,
        events => e.events,
    }
}

fn email(n: usize, raw: &str) -> Value {
    match ParsedMail::parse(raw.as_bytes()) {
        Ok(mail) => {
            let mut links = mail.text.as_deref().map(text_links).unwrap_or_default();
            for link in mail.html.as_deref().map(html_links).unwrap_or_default() {
                if !links.contains(&link) {
                    links.push(link);
                }
            }
            context! {
                parsed => true,
                n,
                subject => mail.subject,
                from => mail.from.join(", "),
                to => mail.to.join(", "),
                // Shown as text, never as live links.
                links,
                text => mail.text,
                frame => mail.html.as_deref().map(|h| Value::from_safe_string(sandboxed_frame(h))),
                raw,
            }
        }
        Err(e) => context! { parsed => false, n, error => e.to_string(), raw },
    }
}

const STYLE: &str = include_str!("html/style.css");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        for (name, _) in TEMPLATES {
            assert!(ENV.get_template(name).is_ok(), "{name}");
        }
    }
}
