//! Reports are safe to keep: no report format (console, JSON, JUnit, HTML)
//! holds a full reset token unless `--reveal-tokens`, for in-process and
//! HTTP runs; JUnit text is for people (no Rust `Debug` output).
#![allow(clippy::unwrap_used)]

use crate::fixtures;

use std::sync::Arc;

use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::report::{self, ConsoleReporter, TokenRedactor};
use resetkit_harness::scenario::RunReport;
use resetkit_harness::target::ReferenceTarget;
use resetkit_harness::{runner, scenarios};

/// Every token of the run: the evidence's secrets plus whatever the test's
/// own reading of the captured mail finds.
fn raw_tokens(report: &RunReport, captured: &[Vec<u8>]) -> Vec<String> {
    let mut r = TokenRedactor::default();
    r.learn_report(report);
    for raw in captured {
        r.learn_message(raw);
    }
    r.tokens().map(str::to_owned).collect()
}

/// Every format, as the CLI writes it; `reveal` as `--reveal-tokens`.
fn outputs(report: &RunReport, captured: &[Vec<u8>], reveal: bool) -> Vec<(&'static str, String)> {
    let mut console = ConsoleReporter::new(Vec::new(), false, true).reveal_tokens(reveal);
    console.start(&report.target, report.results.len()).unwrap();
    for r in &report.results {
        console.scenario_finished(r).unwrap();
    }
    console.finish(report).unwrap();
    let console = String::from_utf8(console.into_inner()).unwrap();
    let written = if reveal {
        report.clone()
    } else {
        report::redacted(report.clone(), captured.iter().map(Vec::as_slice))
    };
    vec![
        ("console", console),
        ("json", report::to_json(&written).unwrap()),
        ("junit", report::to_junit(&written).unwrap()),
        ("html", report::to_html(&written)),
    ]
}

/// The text with quoted-printable soft line breaks (raw, JSON-escaped and
/// XML-escaped) removed, so a token split over two lines is found too.
fn joined(text: &str) -> String {
    let mut t = text.to_owned();
    for soft in ["=\r\n", "=\n", "=\\r\\n", "=\\n", "=&#xD;\n", "=&#13;\n"] {
        t = t.replace(soft, "");
    }
    t
}

fn assert_no_token(name: &str, text: &str, tokens: &[String]) {
    let text = joined(text);
    for token in tokens {
        assert!(
            !text.contains(token.as_str()),
            "the {name} report holds the raw token {token}"
        );
    }
}

fn check(report: &RunReport, captured: &[Vec<u8>]) {
    let tokens = raw_tokens(report, captured);
    assert!(tokens.len() >= 4, "the run captured reset links: {tokens:?}");
    for (name, text) in outputs(report, captured, false) {
        assert_no_token(name, &text, &tokens);
        assert!(text.contains("tok#"), "the {name} report shows fingerprints");
    }
    // With --reveal-tokens, the JSON and HTML keep the emails as captured.
    let revealed = outputs(report, captured, true);
    for (name, text) in &revealed {
        if *name == "json" || *name == "html" {
            let text = joined(text);
            assert!(
                tokens.iter().any(|t| text.contains(t.as_str())),
                "--reveal-tokens keeps tokens in the {name} report"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_reports_hold_no_full_token() {
    let filter: Vec<String> = ["RST-FLOW", "RST-TOKEN", "RST-LINK", "RST-DUP"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let report = runner::run(
        &ReferenceTarget,
        &resetkit_harness::scenario::select(scenarios::all(), &filter),
        false,
        &mut report::NoProgress,
    )
    .await;
    check(&report, &[]);
    // JUnit is plain text for people: events without Rust Debug output.
    let junit = report::to_junit(&report).unwrap();
    for debug in ["SystemTime", "tv_sec", "Some(", "{ via:"] {
        assert!(!junit.contains(debug), "JUnit holds Rust Debug output `{debug}`");
    }
    assert!(
        junit.contains("token_issued expires_at=20"),
        "events are plain lines"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_reports_hold_no_full_token() {
    let server = Arc::new(FakeSmtpServer::start().unwrap());
    let app = fixtures::django::start(server.addr(), fixtures::django::broken()).await;
    let toml = fixtures::django::target_toml(&app.base_url, server.addr());
    let report = fixtures::run_checks(
        server.clone(),
        &toml,
        &["RST-HTTP-001", "RST-HTTP-003", "RST-HTTP-010", "RST-HTTP-013"],
    )
    .await;
    let captured: Vec<Vec<u8>> = server.messages().into_iter().map(|m| m.data).collect();
    assert!(
        report.results.iter().any(|r| r.verdict.as_str() == "fail"),
        "the broken fixture fails RST-HTTP-003"
    );
    check(&report, &captured);
}
