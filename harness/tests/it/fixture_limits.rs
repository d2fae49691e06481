//! Rate limits in target files: checks that stay honest when a declared
//! limit cannot be reached, do not stop when earlier checks spent the
//! limits, and (with a declared window) wait for the window to pass.

use crate::fixtures;

use std::sync::Arc;

use fixtures::{Flaws, django};
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::report::ConsoleReporter;
use resetkit_harness::scenario::{RunReport, Verdict};

async fn django_run(edit: impl Fn(String) -> String, ids: &[&str]) -> RunReport {
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let app = django::start(server.addr(), Flaws::default()).await;
    let toml = edit(django::target_toml(&app.base_url, server.addr()));
    let report = fixtures::run_checks(server, &toml, ids).await;
    drop(app);
    report
}

fn console_line(report: &RunReport, id: &str) -> String {
    let result = report.results.iter().find(|r| r.info.id == id).expect("ran");
    let mut console = ConsoleReporter::new(Vec::new(), false, false);
    console.scenario_finished(result).expect("writing to a Vec");
    String::from_utf8(console.into_inner()).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_without_throttled_answers_says_so_on_its_verdict_line() {
    let report = django_run(
        |t| format!("{t}\n[limits]\nper_account = 500\n"),
        &["RST-HTTP-015"],
    )
    .await;
    let result = &report.results[0];
    assert_eq!(result.verdict, Verdict::Pass, "{result:#?}");
    let shown = console_line(&report, "RST-HTTP-015");
    let verdict_line = shown.lines().next().unwrap_or_default();
    assert!(
        verdict_line.starts_with("PASS") && verdict_line.contains("[partly checked"),
        "{shown}"
    );
    assert!(
        shown.contains("Not checked: throttled answers: limits.per_account = 500 is too high"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timing_runs_when_earlier_checks_spent_every_listed_accounts_limit() {
    // One plain account with a limit of 1: RST-HTTP-015 spends it (and
    // goes past it on purpose); RST-HTTP-016 then still has valid samples.
    let report = django_run(
        |t| {
            let t = t
                .replace("identifier = \"bob@example.test\"\nusername = \"bob\"\nemail = \"bob@example.test\"", "identifier = \"bob@example.test\"\nusername = \"bob\"\nemail = \"bob@example.test\"\ndisabled = true")
                .replace("identifier = \"frank@example.test\"\nusername = \"frank\"\nemail = \"frank@example.test\"", "identifier = \"frank@example.test\"\nusername = \"frank\"\nemail = \"frank@example.test\"\ndisabled = true");
            format!("{t}\n[limits]\nper_account = 1\n")
        },
        &["RST-HTTP-015", "RST-HTTP-016"],
    )
    .await;
    for result in &report.results {
        assert!(
            matches!(result.verdict, Verdict::Pass),
            "{}: {:?}\n{:?}",
            result.info.id,
            result.verdict,
            result.actual
        );
    }
    let timing = fixtures::notes(&report, "RST-HTTP-016");
    assert!(timing.contains("sent past limits.per_account = 1"), "{timing}");
}
