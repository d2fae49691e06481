//! `resetkit-harness run --target FILE` as a process.

use crate::http_app;

use std::process::{Command, Output};

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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/targets/portal.toml");

#[test]
fn list_with_a_target_shows_http_scenarios_and_skipped_in_process_ones() {
    let out = harness(&["run", "--target", SHIPPED, "--list"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        !shown.contains("RST-FLOW-001"),
        "in-process scenarios only with -v:\n{shown}"
    );
    assert!(
        shown.contains("in-process scenarios not applicable over HTTP"),
        "{shown}"
    );
    let out = harness(&["run", "--target", SHIPPED, "--list", "-v"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    for id in ["RST-HTTP-001", "RST-HTTP-016", "RST-FLOW-001", "RST-LINK-003"] {
        assert!(shown.contains(id), "{id} missing:\n{shown}");
    }
    let flow = shown
        .lines()
        .find(|l| l.starts_with("RST-FLOW-001"))
        .unwrap_or_default();
    assert!(flow.contains("needs the in-process target"), "{flow}");
    let happy = shown
        .lines()
        .find(|l| l.starts_with("RST-HTTP-001"))
        .unwrap_or_default();
    assert!(!happy.contains("skipped"), "{happy}");
}

#[test]
fn a_bad_target_file_is_a_harness_error_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text_of = |toml: &str| {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, toml).expect("write");
        let out = harness(&["run", "--target", path.to_str().expect("utf-8")]);
        (out.status.code(), text(&out))
    };
    let shipped = std::fs::read_to_string(SHIPPED).expect("shipped target file");
    let (code, shown) = text_of(&shipped.replace("password_field", "pasword_field"));
    assert_eq!(code, Some(2), "{shown}");
    assert!(shown.contains("pasword_field"), "{shown}");
    let (code, shown) = text_of(&shipped.replace("parallel_submits = 8", "parallel_submits = 1000"));
    assert_eq!(code, Some(2), "{shown}");
    assert!(shown.contains("checks.parallel_submits"), "{shown}");
    // A file of the previous format whose `link.url` meant a prefix: refused
    // before anything starts, with how to convert it.
    let old_format = shipped
        .replace("format = 2\n", "")
        .replace("token_in = \"query\"", "token_in = \"path\"");
    let (code, shown) = text_of(&old_format);
    assert_eq!(code, Some(2), "{shown}");
    assert!(
        shown.contains("format 1") && shown.contains("To convert"),
        "{shown}"
    );
    assert!(!shown.contains("starting the app"), "{shown}");
    let (code, shown) = text_of("this is not toml = = =");
    assert_eq!(code, Some(2), "{shown}");
    assert!(!shown.contains("panicked"), "{shown}");

    let out = harness(&["run", "--target", "/nonexistent/target.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("/nonexistent/target.toml"), "{}", text(&out));
}

#[test]
fn http_checks_without_a_target_say_they_need_a_target_file() {
    let out = harness(&["run", "--filter", "RST-HTTP*"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("HTTP checks need a target file"),
        "{}",
        text(&out)
    );
}

#[test]
fn smtp_listen_needs_a_target() {
    let out = harness(&["run", "--smtp-listen", "127.0.0.1:2525"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--target"), "{}", text(&out));
}

#[test]
fn an_app_that_does_not_answer_is_a_harness_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let toml = http_app::target_toml(&format!("http://127.0.0.1:{}", free_port()), smtp);
    let path = dir.path().join("down.toml");
    std::fs::write(&path, toml).expect("write");
    let out = harness(&["run", "--target", path.to_str().expect("utf-8")]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("does not answer") && shown.contains(&smtp.to_string()),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_against_a_web_app_reports_http_results_and_skips_in_process_ones() {
    let smtp: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let app = http_app::start(smtp, http_app::Flaws::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("mini.toml");
    std::fs::write(&target, http_app::target_toml(&app.base_url, smtp)).expect("write");
    let json = dir.path().join("report.json");
    let args: Vec<String> = [
        "run",
        "--target",
        target.to_str().expect("utf-8"),
        "--smtp-listen",
        &smtp.to_string(),
        "--filter",
        "RST-HTTP-001",
        "--filter",
        "RST-HTTP-016",
        "--filter",
        "RST-LINK-00?",
        "--json",
        json.to_str().expect("utf-8"),
        "--junit",
        dir.path().join("junit.xml").to_str().expect("utf-8"),
        "--html",
        dir.path().join("report.html").to_str().expect("utf-8"),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        harness(&args)
    })
    .await
    .expect("the harness ran");
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("PASS  RST-HTTP-001"), "{shown}");
    assert!(shown.contains("Timing (RST-HTTP-016"), "{shown}");
    assert!(shown.contains("ratio of medians"), "{shown}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("valid JSON");
    let records = report["scenarios"].as_array().expect("scenarios");
    let verdict = |id: &str| {
        records.iter().find(|r| r["id"] == id).map(|r| {
            (
                r["verdict"].as_str().unwrap_or_default().to_owned(),
                r["reason"].clone(),
            )
        })
    };
    assert_eq!(verdict("RST-HTTP-001").map(|v| v.0).as_deref(), Some("pass"));
    let (link, reason) = verdict("RST-LINK-001").expect("in-process scenario listed");
    assert_eq!(link, "skipped");
    assert!(
        reason
            .as_str()
            .unwrap_or_default()
            .contains("needs the in-process target"),
        "{reason}"
    );
    assert_eq!(records.len(), 2 + 9, "{records:#?}");
    // Every report shows the emailed tokens as fingerprints only.
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("html written");
    assert!(
        html.contains("aria-label=\"latency distributions\""),
        "the timing check is drawn"
    );
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).expect("junit written");
    let json_text = std::fs::read_to_string(&json).expect("json");
    for (name, text) in [
        ("console", shown.as_str()),
        ("json", &json_text),
        ("junit", &junit),
        ("html", &html),
    ] {
        let joined = text
            .replace("=\r\n", "")
            .replace("=\\r\\n", "")
            .replace("=&#xD;\n", "");
        let mut shown_tokens = 0;
        for (i, _) in joined.match_indices("token=") {
            let after = joined[i + 6..].trim_start_matches("3D");
            let raw = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .count();
            assert!(
                raw < 16,
                "{name} holds a raw token: {}",
                &joined[i..(i + 60).min(joined.len())]
            );
            shown_tokens += usize::from(after.starts_with("tok#"));
        }
        if name != "console" {
            assert!(shown_tokens > 0, "{name} shows token fingerprints");
        }
    }
}

#[test]
fn the_app_runs_in_the_target_files_directory_with_placeholders_in_its_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let smtp_port = free_port();
    let toml = format!(
        r#"
format = 2
base_url = "http://127.0.0.1:{}"
[smtp]
listen = "127.0.0.1:{smtp_port}"
[app]
command = ["sh", "-c", "pwd > started-in.txt; echo \"$SMTP_AT $APP_PORT\" > env.txt"]
env = {{ SMTP_AT = "{{smtp_host}}:{{smtp_port}}", APP_PORT = "{{port}}" }}
ready_timeout_secs = 5
[forgot]
page = "/forgot"
identifier_field = "identifier"
accepted = {{ status = 303 }}
[set_password]
password_field = "password"
success = {{ status = 303 }}
"#,
        free_port()
    );
    let path = dir.path().join("app.toml");
    std::fs::write(&path, &toml).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_resetkit-harness"))
        .args(["run", "--target", path.to_str().expect("utf-8")])
        .current_dir("/")
        .env("NO_COLOR", "1")
        .output()
        .expect("the harness binary runs");
    // The command exits at once: a harness error, after it ran.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let started_in = std::fs::read_to_string(dir.path().join("started-in.txt"))
        .expect("the app ran in the file's directory");
    let canonical = dir.path().canonicalize().expect("canonical");
    assert_eq!(
        std::path::Path::new(started_in.trim())
            .canonicalize()
            .expect("path"),
        canonical
    );
    let env = std::fs::read_to_string(dir.path().join("env.txt")).expect("env written");
    let port = toml
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("base port");
    assert_eq!(env.trim(), format!("127.0.0.1:{smtp_port} {port}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_the_declared_field_stops_the_run_with_one_error() {
    let smtp: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let app = http_app::start(smtp, http_app::Flaws::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("mini.toml");
    let toml = http_app::target_toml(&app.base_url, smtp).replacen(
        "identifier_field = \"identifier\"",
        "identifier_field = \"email\"",
        1,
    );
    std::fs::write(&target, toml).expect("write");
    let path = target.to_str().expect("utf-8").to_owned();
    let out = tokio::task::spawn_blocking(move || harness(&["run", "--target", &path]))
        .await
        .expect("the harness ran");
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert_eq!(
        shown.matches("has no form with a `email` field").count(),
        1,
        "{shown}"
    );
    assert!(shown.contains("no check was run"), "{shown}");
    assert!(!shown.contains("RST-HTTP-001"), "{shown}");
}
