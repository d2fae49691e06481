//! The harness against a django-allauth-shaped app with allauth's default
//! rate limits (5 reset emails per address and 20 requests per client per
//! window, 20 set-password submits per client, 429 over a limit), the
//! window kept to a few seconds: with `limits.window_secs` declared the
//! harness waits for a spent window instead of ending checks in harness
//! errors, recognises the 429 (`limits.throttled`), and reads the link whose
//! account id and key share one segment (`{uidb36}-{token}`).
//!
//! A test binary of its own (not a module of `tests/it`): these checks
//! spend and wait out a 3-second window, and sharing the process with the
//! other harness tests stretches a check past the window.

mod fixtures;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fixtures::allauth;
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::scenario::{RunReport, Verdict};

/// The fixture's window: short, so that a run waits seconds, not minutes.
const WINDOW_SECS: f64 = 3.0;

async fn run(throttle_known_only: bool, edit: impl Fn(String) -> String, ids: &[&str]) -> RunReport {
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let app = allauth::start(
        server.addr(),
        Duration::from_secs_f64(WINDOW_SECS),
        throttle_known_only,
    )
    .await;
    let toml = edit(allauth::target_toml(&app.base_url, server.addr(), WINDOW_SECS));
    let report = fixtures::run_checks(server, &toml, ids).await;
    drop(app);
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allauth_shaped_app_gets_its_verdicts_waiting_for_its_windows() {
    let started = Instant::now();
    let report = run(false, |t| t, &[]).await;
    println!(
        "allauth-shaped, correct: {:.1} s\n{}",
        started.elapsed().as_secs_f64(),
        fixtures::figures(&report)
    );
    assert_eq!(report.results.len(), 16);
    let wrong = fixtures::mismatches(&report, allauth::CORRECT);
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    let errors: Vec<&str> = report
        .results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Error(_)))
        .map(|r| r.info.id)
        .collect();
    assert!(errors.is_empty(), "harness errors: {errors:?}");
    println!("{}", waits(&report).join("\n"));
    // The throttled answers were compared: 429 for the known address, as
    // for an unknown one after as many requests.
    let identical = fixtures::notes(&report, "RST-HTTP-015");
    assert!(
        identical.contains("as was the unknown") && identical.contains("throttles by what is typed"),
        "{identical}"
    );
}

/// The `Waited:` notes of a run.
fn waits(report: &RunReport) -> Vec<String> {
    report
        .results
        .iter()
        .flat_map(|r| r.evidence.notes.iter())
        .filter(|n| n.starts_with("Waited: waiting"))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_window_is_waited_for_with_a_note() {
    // One account with an address of its own: five emails per window are
    // spent within the first checks, so later ones must wait.
    let report = run(
        false,
        |t| {
            t.replace(
                "email = \"bob@example.test\"\npassword = \"bob-fixture-password-22\"",
                "email = \"bob@example.test\"\ndisabled = true",
            )
            .replace(
                "email = \"frank@example.test\"\npassword = \"frank-fixture-password-6\"",
                "email = \"frank@example.test\"\ndisabled = true",
            )
        },
        &[
            "RST-HTTP-001",
            "RST-HTTP-009",
            "RST-HTTP-010",
            "RST-HTTP-012",
            "RST-HTTP-013",
        ],
    )
    .await;
    for r in &report.results {
        assert!(
            !matches!(r.verdict, Verdict::Error(_)),
            "{}: {:?}",
            r.info.id,
            r.verdict
        );
    }
    let waited = waits(&report);
    assert!(
        waited.iter().any(|w| w.contains("limits.per_account = 5")),
        "{waited:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_declared_window_the_run_is_one_window_and_checks_stop() {
    // What the QA engineer saw: the same app, its window not declared.
    let report = run(
        false,
        |t| t.replace(&format!("window_secs = {WINDOW_SECS}\n"), ""),
        &[],
    )
    .await;
    let errors: Vec<String> = report
        .results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Error(_)))
        .map(|r| format!("{}: {:?}", r.info.id, r.verdict))
        .collect();
    assert!(!errors.is_empty(), "expected harness errors without the window");
    assert!(
        errors.iter().any(|e| e.contains("declare limits.window_secs")),
        "{errors:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_only_known_addresses_is_caught() {
    let report = run(true, |t| t, &["RST-HTTP-015"]).await;
    let wrong = fixtures::mismatches(&report, allauth::KNOWN_ONLY_THROTTLED);
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    let actual = fixtures::actual(&report, "RST-HTTP-015");
    assert!(actual.contains("throttles only existing accounts"), "{actual}");
}
