//! The command line, run as a process.

use std::process::{Command, Output};

use resetkit_harness::fake_smtp::{FakeSmtpServer, FaultRule, Stage};

fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resetkit-harness"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the harness binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn doctor_names_the_refused_step_and_exits_non_zero() {
    let server = FakeSmtpServer::builder()
        .rule(
            FaultRule::reply(Stage::MailFrom, 550, Some("5.7.1"), "Sender not permitted")
                .sender("noreply@example.com"),
        )
        .start()
        .expect("fake server");
    let url = format!("smtp://127.0.0.1:{}?tls=none", server.port());
    let out = harness(&[
        "doctor",
        "--smtp",
        &url,
        "--from",
        "noreply@example.com",
        "--probe-rcpt",
        "probe@example.com",
    ]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("mail_from"), "{shown}");
    assert!(
        shown.contains("550") && shown.contains("Sender not permitted"),
        "{shown}"
    );
    assert!(shown.contains("FAIL"), "{shown}");
    assert!(server.messages().is_empty(), "doctor delivers nothing");
}

#[test]
fn doctor_passes_an_accepted_sender_without_delivering() {
    let server = FakeSmtpServer::start().expect("fake server");
    let url = format!("smtp://127.0.0.1:{}?tls=none", server.port());
    let out = harness(&[
        "doctor",
        "--smtp",
        &url,
        "--from",
        "noreply@example.com",
        "--probe-rcpt",
        "probe@example.com",
    ]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("PASS"), "{shown}");
    assert!(server.messages().is_empty(), "doctor delivers nothing");
}

#[test]
fn doctor_refuses_a_bad_url_with_exit_code_2() {
    let out = harness(&[
        "doctor",
        "--smtp",
        "ftp://x",
        "--from",
        "a@example.com",
        "--probe-rcpt",
        "b@example.com",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--smtp"), "{}", text(&out));
}

#[test]
fn list_shows_the_filtered_scenarios() {
    let out = harness(&["run", "--list", "--filter", "RST-TOKEN-00?"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("RST-TOKEN-001") && shown.contains("RST-TOKEN-009"),
        "{shown}"
    );
    assert!(
        !shown.contains("RST-TOKEN-010") && !shown.contains("RST-FLOW"),
        "{shown}"
    );
}

#[test]
fn run_writes_json_and_junit_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    let junit = dir.path().join("report.xml");
    let out = harness(&[
        "run",
        "--filter",
        "RST-FLOW",
        "--filter",
        "RST-LINK",
        "--json",
        json.to_str().expect("utf-8 path"),
        "--junit",
        junit.to_str().expect("utf-8 path"),
    ]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        !shown.contains("\u{1b}["),
        "NO_COLOR and a pipe: no ANSI escapes\n{shown}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("valid JSON");
    let records = report["scenarios"].as_array().expect("scenarios array");
    assert!(records.iter().all(|r| {
        r["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("RST-FLOW") || id.starts_with("RST-LINK"))
    }));
    assert!(!records.is_empty());
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(
        xml.contains("<testsuites") && xml.contains("RST-FLOW-001"),
        "{xml}"
    );
}

#[test]
fn unknown_filter_is_a_harness_error() {
    let out = harness(&["run", "--filter", "NOPE-*"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
