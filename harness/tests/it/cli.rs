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
        "--html",
        dir.path().join("report.html").to_str().expect("utf-8 path"),
    ]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("html written");
    assert!(html.contains("RST-FLOW-001") && html.contains("Content-Security-Policy"));
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

#[tokio::test]
async fn smtp_capture_prints_each_messages_links() {
    use std::io::{BufRead, BufReader};
    use std::time::Duration;

    use resetkit::mail::{EmailKind, MailContent, Mailbox, Mailer, OutgoingEmail};
    use resetkit_smtp::{SmtpConfig, SmtpMailer, TlsMode};

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_resetkit-harness"))
        .args(["smtp", "--listen", &listen, "--count", "1"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the harness binary runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let banner = lines.next().expect("a banner").expect("utf-8");
    assert!(banner.contains(&listen), "{banner}");

    let config = SmtpConfig::builder("127.0.0.1")
        .port(port)
        .tls(TlsMode::None)
        .command_timeout(Duration::from_secs(5))
        .build()
        .expect("config");
    let mailer = SmtpMailer::new(config).expect("mailer");
    let link = "https://app.example.test/reset?token=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfG";
    let email = OutgoingEmail::new(
        "<cli-1@example.test>".into(),
        EmailKind::Reset,
        Mailbox::address_only("noreply@example.test").expect("from"),
        None,
        Mailbox::address_only("alice@example.test").expect("to"),
        MailContent {
            subject: "Reset your password".into(),
            text: format!("Open:\n\n{link}\n"),
            html: format!("<a href=\"{link}\">Reset</a>"),
        },
    );
    mailer.send(&email).await.expect("sent to the capture server");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("the capture server exits after --count 1");
    let shown = rest.join("\n");
    assert_eq!(status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("alice@example.test") && shown.contains("Reset your password"),
        "{shown}"
    );
    assert!(shown.contains(&format!("link: {link}")), "{shown}");
}

#[test]
fn doctor_checks_every_sender_and_names_the_refused_one() {
    let server = FakeSmtpServer::builder()
        .rule(
            FaultRule::reply(Stage::MailFrom, 553, None, "Not your domain").sender("owner@customer.example"),
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
        "--from",
        "owner@customer.example",
        "--probe-rcpt",
        "probe@example.com",
    ]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("<owner@customer.example>") && shown.contains("553"),
        "{shown}"
    );
    assert!(
        !shown.contains("<noreply@example.com>: "),
        "the accepted sender is not listed as failing\n{shown}"
    );
    assert!(server.messages().is_empty(), "doctor delivers nothing");
}

#[test]
fn doctor_refuses_an_http_base_url() {
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
        "--base-url",
        "http://app.example.com",
    ]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("base URL http://app.example.com: FAIL") && shown.contains("https"),
        "{shown}"
    );
}

#[test]
fn fingerprint_prints_what_the_flow_records_for_an_identifier() {
    let key = "a deployment key for the CLI test";
    let out = Command::new(env!("CARGO_BIN_EXE_resetkit-harness"))
        .args(["fingerprint", "Nobody@Example.test"])
        .env("RESETKIT_FINGERPRINT_KEY", key)
        .output()
        .expect("the harness binary runs");
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    let expected = resetkit::fingerprint::fingerprint(
        &resetkit::fingerprint::FingerprintKey::new(key.as_bytes().to_vec()).expect("long enough"),
        "nobody@example.test",
    );
    assert_eq!(shown.trim(), format!("{expected}  Nobody@Example.test"));
    assert!(!shown.contains(key), "the key is never printed");

    let out = Command::new(env!("CARGO_BIN_EXE_resetkit-harness"))
        .args(["fingerprint", "x@example.test"])
        .env("RESETKIT_FINGERPRINT_KEY", "short")
        .output()
        .expect("the harness binary runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!text(&out).contains("short\""), "{}", text(&out));
}

#[test]
fn doctor_suggests_tls_none_for_a_local_server_without_starttls() {
    let server = FakeSmtpServer::start().expect("fake server");
    let url = format!("smtp://mailer:secret@127.0.0.1:{}", server.port());
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
    let hint = shown
        .lines()
        .find(|l| l.trim_start().starts_with("hint:"))
        .unwrap_or_else(|| panic!("a hint line:\n{shown}"));
    assert!(
        hint.contains(&format!("smtp://mailer:***@127.0.0.1:{}?tls=none", server.port())),
        "{hint}"
    );
    assert!(!shown.contains("secret"), "the password is not echoed:\n{shown}");
    assert!(!shown.contains("server server"), "{shown}");
}

#[test]
fn smtp_and_doctor_help_list_the_url_options() {
    for command in ["smtp", "doctor"] {
        let out = harness(&[command, "--help"]);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(0), "{shown}");
        assert!(shown.contains("tls=none"), "{command} --help:\n{shown}");
    }
    let doctor = text(&harness(&["doctor", "--help"]));
    for option in [
        "tls=starttls",
        "tls=opportunistic",
        "tls=implicit",
        "auth=plain",
        "smtps://",
    ] {
        assert!(doctor.contains(option), "{option} in doctor --help:\n{doctor}");
    }
    let smtp = text(&harness(&["smtp", "--help"]));
    assert!(smtp.contains("--web") && smtp.contains("/api/messages"), "{smtp}");
}

#[test]
fn doctor_accepts_an_http_loopback_base_url_with_a_note() {
    let server = FakeSmtpServer::start().expect("fake server");
    let web = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = web.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in web.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    let url = format!("smtp://127.0.0.1:{}?tls=none", server.port());
    let base = format!("http://127.0.0.1:{port}/");
    let out = harness(&[
        "doctor",
        "--smtp",
        &url,
        "--from",
        "noreply@example.com",
        "--probe-rcpt",
        "probe@example.com",
        "--base-url",
        &base,
    ]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("note: http:// is accepted for a loopback address only"),
        "{shown}"
    );
}

#[test]
fn init_refuses_bad_input_with_clear_errors() {
    let out = harness(&["init", "--url", "not a url"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--url \"not a url\""), "{}", text(&out));
    let dir = tempfile::tempdir().expect("tempdir");
    let existing = dir.path().join("target.toml");
    std::fs::write(&existing, "keep me").expect("write");
    let out = harness(&[
        "init",
        "--url",
        "http://127.0.0.1:9/forgot",
        "--out",
        existing.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--force"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&existing).expect("read"), "keep me");
    let out = harness(&["init", "--url", "http://127.0.0.1:9/forgot"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("loading http://127.0.0.1:9/forgot"),
        "{}",
        text(&out)
    );
}

/// Finding 2 of the fourth review: `smtp --web 0.0.0.0:…` served the inbox
/// (live reset links) to the network with only a note. It is refused
/// (exit 2, naming the opt-in) unless `--web-public` says so.
#[test]
fn smtp_refuses_a_non_loopback_web_inbox_without_web_public() {
    for web in ["0.0.0.0:0", "[::]:0"] {
        let out = harness(&["smtp", "--listen", "127.0.0.1:0", "--web", web]);
        assert_eq!(out.status.code(), Some(2), "{web}: {}", text(&out));
        let said = text(&out);
        assert!(
            said.contains("--web-public") && said.contains("loopback"),
            "{web}: {said}"
        );
    }
    let out = harness(&["smtp", "--listen", "127.0.0.1:0", "--web-public"]);
    assert_eq!(out.status.code(), Some(2), "--web-public needs --web");
}
