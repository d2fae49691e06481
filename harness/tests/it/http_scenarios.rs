//! The HTTP scenarios against a small web app: the sound app passes every
//! one; each deliberately broken variant fails the scenario for its flaw.

use crate::http_app;

use std::sync::Arc;

use http_app::{Flaws, MiniApp};
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::http::runner;
use resetkit_harness::http::scenarios;
use resetkit_harness::http::target_file::HttpTarget;
use resetkit_harness::report::NoProgress;
use resetkit_harness::scenario::{RunReport, ScenarioInfo, Verdict};

async fn run(flaws: Flaws, filter: &[&str]) -> (RunReport, MiniApp) {
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let app = http_app::start(server.addr(), flaws).await;
    let toml = http_app::target_toml(&app.base_url, server.addr());
    let target = Arc::new(HttpTarget::from_toml_str(&toml, "mini.toml").expect("target file"));
    let filter: Vec<String> = filter.iter().map(|s| (*s).to_owned()).collect();
    let selected = resetkit_harness::scenario::select(scenarios::all(), &filter);
    let report = runner::run(target, server, &selected, &[], false, &mut NoProgress).await;
    (report, app)
}

fn explain(report: &RunReport) -> String {
    report
        .results
        .iter()
        .filter(|r| r.verdict != Verdict::Pass)
        .map(|r| {
            format!(
                "{} {:?}\n  expected: {:?}\n  actual: {:?}\n  notes: {}",
                r.info.id,
                r.verdict,
                r.expected,
                r.actual,
                r.evidence.notes.join("\n    ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sound_app_passes_every_http_scenario() {
    let (report, _app) = run(Flaws::default(), &[]).await;
    assert_eq!(report.results.len(), 16);
    // Timing is measured and reported, never asserted: the app shares this
    // test's runtime and a busy machine, so RST-HTTP-016 may warn.
    let not_passed: Vec<&str> = report
        .results
        .iter()
        .filter(|r| r.verdict != Verdict::Pass && r.info.id != "RST-HTTP-016")
        .map(|r| r.info.id)
        .collect();
    assert!(not_passed.is_empty(), "{}", explain(&report));
    let timing = report
        .results
        .iter()
        .find(|r| r.info.id == "RST-HTTP-016")
        .unwrap();
    assert!(
        matches!(timing.verdict, Verdict::Pass | Verdict::Warn),
        "{}",
        explain(&report)
    );
    let figures = timing.evidence.notes.join("\n");
    assert!(
        figures.contains("ratio of medians")
            && figures.contains("95% bootstrap interval")
            && figures.contains("Mann–Whitney"),
        "{figures}"
    );
    // Evidence carries the HTTP exchanges.
    let happy = &report.results[0];
    assert!(
        happy
            .evidence
            .notes
            .iter()
            .any(|n| n.starts_with("HTTP [") && n.contains("POST")),
        "{:#?}",
        happy.evidence.notes
    );
    assert!(!happy.evidence.emails.is_empty());
    assert!(
        !happy.evidence.notes.iter().any(|n| n.contains("quiet lantern")),
        "passwords are redacted in evidence"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_built_from_the_host_header_fails_the_injection_checks() {
    let flaws = Flaws {
        link_from_host: true,
        ..Flaws::default()
    };
    let (report, _app) = run(flaws, &["RST-HTTP-001", "RST-HTTP-003", "RST-HTTP-004"]).await;
    assert_eq!(
        report.failed_ids(),
        ["RST-HTTP-003", "RST-HTTP-004"],
        "{}",
        explain(&report)
    );
    let host = &report.results[1];
    assert!(
        host.actual
            .as_deref()
            .unwrap_or_default()
            .contains("host-header.attacker.test"),
        "{:?}",
        host.actual
    );
    let forwarded = &report.results[2];
    assert!(
        forwarded
            .actual
            .as_deref()
            .unwrap_or_default()
            .contains("X-Forwarded-Host"),
        "{:?}",
        forwarded.actual
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_only_for_known_accounts_fails_the_identical_answer_check() {
    let flaws = Flaws {
        throttle_429_for_known: true,
        ..Flaws::default()
    };
    let (report, _app) = run(flaws, &["RST-HTTP-015"]).await;
    assert_eq!(report.failed_ids(), ["RST-HTTP-015"], "{}", explain(&report));
    let actual = report.results[0].actual.clone().unwrap_or_default();
    assert!(actual.contains("status 429 instead of 303"), "{actual}");
    assert!(actual.contains("throttled known alice@example.test"), "{actual}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_spent_on_get_fails_the_scanner_check() {
    let flaws = Flaws {
        spend_on_get: true,
        ..Flaws::default()
    };
    let (report, _app) = run(flaws, &["RST-HTTP-010"]).await;
    assert_eq!(report.failed_ids(), ["RST-HTTP-010"], "{}", explain(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_referrer_policy_is_no_leak_when_the_link_redirects_first() {
    // The link redirects to a page without the token in its URL: Referer
    // cannot carry the token whatever the policy (issue 10, item 4). The
    // leaking case (token kept in a rendered URL, no policy) is failed by
    // the Devise-shaped fixture's broken variant (fixture_devise.rs).
    let flaws = Flaws {
        no_referrer_policy: true,
        ..Flaws::default()
    };
    let (report, _app) = run(flaws, &["RST-HTTP-008", "RST-HTTP-009"]).await;
    assert!(report.failed_ids().is_empty(), "{}", explain(&report));
    assert_eq!(report.results[0].verdict, Verdict::Pass, "{}", explain(&report));
    let notes = report.results[0].evidence.notes.join("\n");
    assert!(
        notes.contains("Case: no rendered page keeps the token in its URL"),
        "{notes}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_accounts_answering_20_ms_later_are_flagged_as_a_warning() {
    let flaws = Flaws {
        slow_for_known: true,
        ..Flaws::default()
    };
    let (report, _app) = run(flaws, &["RST-HTTP-016"]).await;
    let timing = &report.results[0];
    assert_eq!(timing.verdict, Verdict::Warn, "{}", explain(&report));
    assert!(
        report.failed_ids().is_empty(),
        "a SHOULD: a warning, never a failure"
    );
    let actual = timing.actual.clone().unwrap_or_default();
    assert!(
        actual.contains("known vs unknown")
            && actual.contains("95% bootstrap interval")
            && actual.contains("differs"),
        "{actual}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_scenarios_are_reported_skipped() {
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let toml = http_app::target_toml("http://127.0.0.1:9", server.addr());
    let target = Arc::new(HttpTarget::from_toml_str(&toml, "mini.toml").unwrap());
    let in_process: Vec<ScenarioInfo> = resetkit_harness::scenarios::all()
        .into_iter()
        .map(|s| s.info)
        .collect();
    let report = runner::run(target, server, &[], &in_process, false, &mut NoProgress).await;
    assert_eq!(report.results.len(), in_process.len());
    assert!(report.results.iter().all(|r| matches!(
        &r.verdict,
        Verdict::Skipped(reason) if reason.contains("needs the in-process target")
    )));
    assert_eq!(report.exit_code(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints the sound app's whole report; run by hand"]
async fn print_sound_app_report() {
    let (report, _app) = run(Flaws::default(), &[]).await;
    let mut console = resetkit_harness::report::ConsoleReporter::new(Vec::new(), false, true);
    for r in &report.results {
        console.scenario_finished(r).unwrap();
    }
    console.finish(&report).unwrap();
    println!("{}", String::from_utf8_lossy(&console.into_inner()));
}
