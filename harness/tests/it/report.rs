//! Console, JSON and JUnit reports of a hand-built run with every verdict.

use std::ffi::OsStr;
use std::time::Duration;

use quick_junit::{NonSuccessKind, TestCaseStatus};
use resetkit_harness::report::{self, ConsoleReporter, NoProgress, Progress};
use resetkit_harness::scenario::{
    Evidence, Requirement, RunReport, ScenarioInfo, ScenarioResult, Severity, Verdict,
};

/// A raw email with characters XML forbids and a terminal must not receive.
const HOSTILE_EMAIL: &str = "From: noreply@app.example\r\nTo: alice@example.com\r\n\
Subject: Reset your password\r\n\r\nClick <a href=\"http://app.example/reset?token=abc&x=1\">here</a>\
\x1b[31m red \x00 nul \x07 bell\r\nUNIQUE-BODY-MARKER\r\n";

fn result(
    id: &'static str,
    severity: Severity,
    verdict: Verdict,
    expected_actual: Option<(&str, &str)>,
    evidence: Evidence,
) -> ScenarioResult {
    let info = ScenarioInfo {
        id,
        title: "checks <something> & more",
        severity,
        requirement: Requirement {
            source: "OWASP Forgot Password Cheat Sheet",
            text: "Ensure that generated tokens or codes are single use.",
        },
    };
    ScenarioResult {
        group: info.group(),
        info,
        verdict,
        expected: expected_actual.map(|(e, _)| e.to_owned()),
        actual: expected_actual.map(|(_, a)| a.to_owned()),
        evidence,
        duration: Duration::from_millis(7),
    }
}

fn run(strict: bool) -> RunReport {
    let transcript: String = (1..=12).map(|i| format!("S: 250 line {i}\r\n")).collect();
    let fail_evidence = Evidence {
        emails: vec![HOSTILE_EMAIL.to_owned()],
        transcript: Some(transcript),
        events: vec!["[alice] ResetRequested".into(), "[alice] ResetCompleted".into()],
        notes: vec!["token reused after 3 ms".into()],
        ..Evidence::default()
    };
    let results = vec![
        result(
            "RST-LINK-001",
            Severity::Must,
            Verdict::Pass,
            None,
            Evidence {
                notes: vec!["link length 92".into()],
                ..Evidence::default()
            },
        ),
        result(
            "RST-LINK-002",
            Severity::Must,
            Verdict::Fail,
            Some((
                "the second use is refused",
                "second use accepted: <200 OK> & \x1b[2Jcleared",
            )),
            fail_evidence,
        ),
        result(
            "RST-MAIL-001",
            Severity::Should,
            Verdict::Warn,
            Some(("Referrer-Policy: no-referrer", "no Referrer-Policy header")),
            Evidence::default(),
        ),
        result(
            "RST-MAIL-002",
            Severity::Must,
            Verdict::Skipped("needs an HTTP target".into()),
            None,
            Evidence::default(),
        ),
        result(
            "RST-HTTP-001",
            Severity::Must,
            Verdict::Error("starting the fake SMTP server: address in use".into()),
            None,
            Evidence::default(),
        ),
    ];
    RunReport {
        target: "reference flow (in-memory stores + SmtpMailer)".into(),
        results,
        duration: Duration::from_millis(1234),
        strict,
    }
}

fn console(report: &RunReport, colour: bool, verbose: bool) -> String {
    let mut console = ConsoleReporter::new(Vec::new(), colour, verbose);
    console
        .start(&report.target, report.results.len())
        .expect("writing to a Vec");
    for (i, r) in report.results.iter().enumerate() {
        console
            .scenario_started(i, report.results.len(), &r.info)
            .expect("writing to a Vec");
        console.scenario_finished(r).expect("writing to a Vec");
    }
    console.finish(report).expect("writing to a Vec");
    String::from_utf8(console.into_inner()).expect("UTF-8 output")
}

/// Characters a terminal must not receive raw, or XML 1.0 forbids.
fn has_raw_controls(s: &str, allowed: &[char]) -> bool {
    s.chars().any(|c| c.is_control() && !allowed.contains(&c))
}

#[test]
fn console_without_colour_shows_verdicts_expected_actual_and_no_escapes() {
    let text = console(&run(false), false, false);
    for needle in [
        "PASS  RST-LINK-001",
        "FAIL  RST-LINK-002 checks <something> & more (7 ms)",
        "WARN  RST-MAIL-001",
        "SKIP  RST-MAIL-002",
        "Skipped: needs an HTTP target",
        "ERROR RST-HTTP-001",
        "Harness error (not a target failure): starting the fake SMTP server: address in use",
        "MUST · OWASP Forgot Password Cheat Sheet",
        "Requirement: \"Ensure that generated tokens or codes are single use.\"",
        "Expected: the second use is refused",
        "Actual: second use accepted: <200 OK> & \\x1b[2Jcleared",
        "[alice] ResetCompleted",
        "token reused after 3 ms",
        "SMTP transcript (first 8 of 12 lines",
        "S: 250 line 8",
        "Email 1 of 1: To: alice@example.com · Subject: Reset your password",
        "Failed: RST-LINK-002",
        "Warned: RST-MAIL-001",
        "Harness errors: RST-HTTP-001",
        "Exit code 2:",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(
        !text.contains("S: 250 line 9"),
        "transcript is cut when not verbose"
    );
    assert!(
        !text.contains("UNIQUE-BODY-MARKER"),
        "whole emails only when verbose"
    );
    assert!(
        !text.contains("link length 92"),
        "a pass has no details when not verbose"
    );
    assert!(!text.contains('\x1b'), "no ANSI escapes without colour:\n{text}");
    assert!(
        !has_raw_controls(&text, &['\n']),
        "raw control characters reached the console"
    );
}

#[test]
fn console_verbose_prints_whole_emails_and_transcripts_escaped() {
    let text = console(&run(false), false, true);
    assert!(text.contains("UNIQUE-BODY-MARKER"));
    assert!(text.contains("S: 250 line 12"));
    assert!(
        text.contains("link length 92"),
        "verbose shows evidence of passes too"
    );
    assert!(text.contains(r"\x1b[31m red \x00 nul \x07 bell"));
    assert!(!has_raw_controls(&text, &['\n']));
}

#[test]
fn console_with_colour_uses_ansi_escapes() {
    let text = console(&run(false), true, false);
    assert!(text.contains("\x1b[32mPASS"));
    assert!(text.contains("\x1b[1;31mFAIL"));
    assert!(text.contains("RST-LINK-002"));
    // Escapes from evidence are still shown, not obeyed.
    assert!(text.contains(r"\x1b[2Jcleared"));
}

#[test]
fn exit_code_is_explained() {
    let mut report = run(false);
    report.results.retain(|r| !matches!(r.verdict, Verdict::Error(_)));
    assert!(console(&report, false, false).contains("Exit code 1: a MUST requirement failed."));

    report.results.retain(|r| r.verdict != Verdict::Fail);
    let text = console(&report, false, false);
    assert!(text.contains("Exit code 0: no MUST requirement failed; warnings do not fail the run"));

    report.strict = true;
    assert!(console(&report, false, false).contains("Exit code 1: a requirement failed (--strict"));
}

#[test]
fn colour_respects_no_color_and_terminals() {
    assert!(report::colour_enabled(None, true));
    assert!(
        report::colour_enabled(Some(OsStr::new("")), true),
        "an empty NO_COLOR is ignored"
    );
    assert!(!report::colour_enabled(Some(OsStr::new("1")), true));
    assert!(!report::colour_enabled(None, false));
}

#[test]
fn progress_line_only_when_asked_and_cleared_before_the_result() {
    let report = run(false);
    let first = &report.results[0];

    let mut quiet = ConsoleReporter::new(Vec::new(), false, false);
    quiet.scenario_started(0, 5, &first.info).unwrap();
    assert!(quiet.into_inner().is_empty(), "no progress line off a terminal");

    let mut console = ConsoleReporter::new(Vec::new(), false, false).with_progress(true);
    let progress: &mut dyn Progress = &mut console;
    progress.started(0, 5, &first.info);
    progress.finished(first);
    let text = String::from_utf8(console.into_inner()).unwrap();
    let (line, rest) = text.split_once('\r').unwrap();
    assert_eq!(line, "[1/5] RST-LINK-001 checks <something> & more");
    assert!(
        rest.trim_start_matches([' ', '\r'])
            .starts_with("PASS  RST-LINK-001")
    );

    NoProgress.started(0, 5, &first.info);
    NoProgress.finished(first);
}

#[test]
fn json_has_one_record_per_scenario_with_evidence() {
    let report = run(false);
    let text = report::to_json(&report).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        text.trim_start().starts_with("{\n  \"version\": 1,"),
        "stable field order:\n{text}"
    );
    assert!(text.contains("\"id\": \"RST-LINK-001\",\n      \"title\""));
    assert_eq!(
        serde_json::to_string_pretty(&parsed).unwrap().len(),
        text.trim_end().len()
    );

    assert_eq!(parsed["target"], report.target);
    assert_eq!(parsed["strict"], false);
    assert_eq!(parsed["exit_code"], 2);
    assert_eq!(parsed["tally"]["pass"], 1);
    assert_eq!(parsed["tally"]["error"], 1);
    let scenarios = parsed["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), report.results.len());
    let ids: Vec<&str> = scenarios.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "RST-LINK-001",
            "RST-LINK-002",
            "RST-MAIL-001",
            "RST-MAIL-002",
            "RST-HTTP-001"
        ]
    );

    let fail = &scenarios[1];
    assert_eq!(fail["verdict"], "fail");
    assert_eq!(fail["group"], "LINK");
    assert_eq!(fail["severity"], "MUST");
    assert_eq!(fail["requirement"]["source"], "OWASP Forgot Password Cheat Sheet");
    assert_eq!(fail["expected"], "the second use is refused");
    assert_eq!(fail["fails_run"], true);
    assert_eq!(fail["reason"], serde_json::Value::Null);
    assert_eq!(
        fail["evidence"]["emails"][0], HOSTILE_EMAIL,
        "raw email kept byte for byte"
    );
    assert_eq!(fail["evidence"]["events"][1], "[alice] ResetCompleted");
    assert!(
        fail["evidence"]["transcript"]
            .as_str()
            .unwrap()
            .contains("S: 250 line 12")
    );
    assert_eq!(fail["duration_ms"], 7.0);
    assert_eq!(
        scenarios[2]["fails_run"], false,
        "a warning does not fail a non-strict run"
    );
    assert_eq!(scenarios[3]["verdict"], "skipped");
    assert_eq!(scenarios[3]["reason"], "needs an HTTP target");
    assert_eq!(scenarios[4]["verdict"], "error");
    assert_eq!(
        scenarios[4]["reason"],
        "starting the fake SMTP server: address in use"
    );
}

#[test]
fn json_and_junit_files_are_written_into_new_directories() {
    let dir = tempfile::tempdir().unwrap();
    let report = run(false);
    let json_path = dir.path().join("reports/run.json");
    let junit_path = dir.path().join("reports/junit/run.xml");
    report::write_json(&report, &json_path).unwrap();
    report::write_junit(&report, &junit_path).unwrap();
    assert_eq!(
        std::fs::read_to_string(&json_path).unwrap(),
        report::to_json(&report).unwrap()
    );
    let xml = std::fs::read_to_string(&junit_path).unwrap();
    assert_eq!(xml, report::to_junit(&report).unwrap());

    let err = report::write_json(&report, dir.path()).unwrap_err();
    assert!(err.to_string().contains("writing the JSON report to"), "{err}");
}

#[test]
fn junit_parses_back_with_one_suite_per_group() {
    let report = run(false);
    let xml = report::to_junit(&report).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"));
    assert!(
        !has_raw_controls(&xml, &['\n', '\r', '\t']),
        "XML 1.0 forbids raw control characters"
    );
    assert!(!xml.contains(['\u{fffe}', '\u{ffff}']));

    let junit = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(junit.name.as_deref(), Some("resetkit-harness"));
    assert_eq!(
        (junit.tests, junit.failures, junit.errors, junit.skipped),
        (5, 1, 1, 1)
    );
    let names: Vec<&str> = junit.test_suites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["RST-LINK", "RST-MAIL", "RST-HTTP"]);
    let counts: Vec<_> = junit
        .test_suites
        .iter()
        .map(|s| (s.tests, s.failures, s.errors, s.skipped))
        .collect();
    assert_eq!(counts, [(2, 1, 0, 0), (2, 0, 0, 1), (1, 0, 1, 0)]);

    let link = &junit.test_suites[0];
    let pass = &link.test_cases[0];
    assert_eq!(pass.name.as_str(), "RST-LINK-001 checks <something> & more");
    assert_eq!(pass.classname.as_deref(), Some("RST-LINK"));
    assert!(matches!(pass.status, TestCaseStatus::Success { .. }));

    let fail = &link.test_cases[1];
    let TestCaseStatus::NonSuccess {
        kind: NonSuccessKind::Failure,
        message,
        ty,
        description,
        ..
    } = &fail.status
    else {
        panic!("expected a failure: {:?}", fail.status);
    };
    assert_eq!(ty.as_deref(), Some("MUST"));
    assert_eq!(
        message.as_deref(),
        Some(r"MUST failed: second use accepted: <200 OK> & \x1b[2Jcleared")
    );
    let body = description.as_deref().unwrap();
    assert!(body.starts_with(
        "Requirement (OWASP Forgot Password Cheat Sheet): Ensure that generated tokens or codes are single use.\n"
    ));
    assert!(body.contains("\nExpected: the second use is refused\n"));
    assert!(body.contains(r"Actual: second use accepted: <200 OK> & \x1b[2Jcleared"));
    let out = fail.system_out.as_deref().unwrap();
    assert!(out.contains("== Events ==\n[alice] ResetRequested\n[alice] ResetCompleted"));
    assert!(out.contains("== SMTP transcript ==") && out.contains("S: 250 line 12"));
    assert!(out.contains("== Email 1 of 1 (raw .eml) =="));
    assert!(out.contains(
        r#"<a href="http://app.example/reset?token=abc&x=1">here</a>\x1b[31m red \x00 nul \x07 bell"#
    ));
    assert!(out.contains("UNIQUE-BODY-MARKER"));

    let warn = &junit.test_suites[1].test_cases[0];
    assert!(
        matches!(warn.status, TestCaseStatus::Success { .. }),
        "a warning passes without --strict"
    );
    let out = warn.system_out.as_deref().unwrap();
    assert!(out.starts_with("WARN (SHOULD), does not fail the run\nRequirement (OWASP"));
    assert!(out.contains("Actual: no Referrer-Policy header"));

    let skipped = &junit.test_suites[1].test_cases[1];
    let TestCaseStatus::Skipped { message, .. } = &skipped.status else {
        panic!("expected skipped: {:?}", skipped.status);
    };
    assert_eq!(message.as_deref(), Some("needs an HTTP target"));

    let error = &junit.test_suites[2].test_cases[0];
    let TestCaseStatus::NonSuccess {
        kind: NonSuccessKind::Error,
        message,
        ty,
        description,
        ..
    } = &error.status
    else {
        panic!("expected an error: {:?}", error.status);
    };
    assert_eq!(ty.as_deref(), Some("harness-error"));
    assert_eq!(
        message.as_deref(),
        Some("starting the fake SMTP server: address in use")
    );
    let body = description.as_deref().unwrap();
    assert!(body.starts_with("Harness error (not a target failure): starting the fake SMTP server"));
    assert!(
        body.contains("\nRequirement (OWASP") && !body.contains("Expected:"),
        "{body}"
    );
}

#[test]
fn junit_strict_makes_warnings_failures() {
    let xml = report::to_junit(&run(true)).unwrap();
    let junit = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(
        (junit.tests, junit.failures, junit.errors, junit.skipped),
        (5, 2, 1, 1)
    );
    let warn = &junit.test_suites[1].test_cases[0];
    let TestCaseStatus::NonSuccess {
        kind: NonSuccessKind::Failure,
        message,
        ty,
        ..
    } = &warn.status
    else {
        panic!("expected a failure under --strict: {:?}", warn.status);
    };
    assert_eq!(ty.as_deref(), Some("SHOULD"));
    assert_eq!(
        message.as_deref(),
        Some("SHOULD warning: no Referrer-Policy header")
    );
}

#[test]
fn a_pass_shows_what_was_not_checked() {
    let note = format!(
        "{} signing in with the new password: no sign-in page described ([login] in the target file)",
        report::NOT_CHECKED
    );
    let results = vec![result(
        "RST-HTTP-001",
        Severity::Must,
        Verdict::Pass,
        None,
        Evidence {
            notes: vec![note.clone(), "HTTP [user#0] GET /forgot".into()],
            ..Evidence::default()
        },
    )];
    let report = RunReport {
        target: "t".into(),
        results,
        duration: Duration::from_millis(7),
        strict: false,
    };
    let text = console(&report, false, false);
    assert!(text.contains(&format!("Note: {note}")), "{text}");
    assert!(!text.contains("GET /forgot"), "other notes only with -v: {text}");
}
