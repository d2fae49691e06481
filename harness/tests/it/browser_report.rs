//! The HTML report in headless Chromium: a failing HTTP run (the broken
//! Django-shaped fixture) and an in-process run, with screenshots; and a
//! hostile captured email that must neither run script nor make the page
//! load anything (a local listener counts connections).
#![allow(clippy::unwrap_used)]

use crate::browser;
use crate::fixtures;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use browser::Browser;
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::report::{self, NoProgress};
use resetkit_harness::scenario::*;
use resetkit_harness::target::ReferenceTarget;
use resetkit_harness::{runner, scenarios};

fn write_report(name: &str, report: &RunReport) -> String {
    let path = browser::screenshot_dir().join(format!("{name}.html"));
    report::write_html(report, &path).unwrap();
    format!("file://{}", path.display())
}

/// Counts TCP connections to a loopback port until dropped.
struct Listener {
    port: u16,
    hits: Arc<AtomicUsize>,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

fn listener() -> Listener {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let counted = hits.clone();
    let seen = lines.clone();
    std::thread::spawn(move || {
        for stream in l.incoming().flatten() {
            counted.fetch_add(1, Ordering::SeqCst);
            use std::io::{BufRead, Write};
            let mut first = String::new();
            let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
            let _ = std::io::BufReader::new(&stream).read_line(&mut first);
            seen.lock().unwrap().push(first.trim().to_owned());
            let mut s = stream;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    Listener { port, hits, lines }
}

async fn visible_verdicts(b: &Browser) -> Vec<String> {
    let v = b
        .script(
            "return Array.from(document.querySelectorAll('details.scenario'))\
             .filter(d => d.offsetParent !== null).map(d => d.className);",
        )
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_of_a_failing_http_run_in_chromium() {
    if !browser::available() {
        return;
    }
    let server = Arc::new(FakeSmtpServer::start().unwrap());
    let app = fixtures::django::start(server.addr(), fixtures::django::broken()).await;
    let toml = fixtures::django::target_toml(&app.base_url, server.addr());
    let report = fixtures::run_checks(
        server.clone(),
        &toml,
        &[
            "RST-HTTP-001",
            "RST-HTTP-003",
            "RST-HTTP-011",
            "RST-HTTP-013",
            "RST-HTTP-016",
        ],
    )
    .await;
    let captured: Vec<Vec<u8>> = server.messages().into_iter().map(|m| m.data).collect();
    let report = report::redacted(report, captured.iter().map(Vec::as_slice));
    assert!(report.failed_ids().contains(&"RST-HTTP-003"));
    let url = write_report("report-http-broken", &report);

    let b = Browser::start(1280, 1600).await;
    b.goto(&url).await;
    let title = b.script("return document.title;").await;
    assert!(title.as_str().unwrap().contains("resetkit-harness report"));
    // Failures first: the first scenario on the page failed, and is open.
    let first = b.script("return document.querySelector('details.scenario').className + ' ' + document.querySelector('details.scenario').open;").await;
    assert!(
        first.as_str().unwrap().contains("v-fail") && first.as_str().unwrap().ends_with("true"),
        "{first}"
    );
    // The drawings: latency box plots with the ratio chart, race trials.
    let charts = b
        .script("return [document.querySelectorAll('svg[aria-label=\"latency distributions\"] rect.box').length, document.querySelectorAll('svg[aria-label=\"ratios of medians\"] line.ci').length, document.querySelectorAll('svg[aria-label=\"successes per trial\"] rect.bar').length];")
        .await;
    let charts: Vec<u64> = charts
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(
        charts[0] >= 3 && charts[1] >= 2 && charts[2] >= 1,
        "boxes, intervals, trial bars: {charts:?}"
    );
    b.screenshot("report-http-broken-top").await;
    // Filter: only failures.
    b.click("label[for=f-fail]").await;
    let shown = visible_verdicts(&b).await;
    assert!(
        !shown.is_empty() && shown.iter().all(|c| c.contains("v-fail")),
        "{shown:?}"
    );
    b.screenshot("report-http-broken-failures").await;
    b.click("label[for=f-all]").await;
    // The timing figure.
    b.script(
        "const d = document.getElementById('RST-HTTP-016'); d.open = true; d.scrollIntoView(); return 0;",
    )
    .await;
    b.screenshot("report-http-broken-timing").await;
    b.script(
        "const d = document.getElementById('RST-HTTP-011'); d.open = true; d.scrollIntoView(); return 0;",
    )
    .await;
    b.screenshot("report-http-broken-race").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_of_an_in_process_run_in_chromium() {
    if !browser::available() {
        return;
    }
    let filter: Vec<String> = vec!["RST-FLOW".into(), "RST-LINK".into(), "RST-DELIV".into()];
    let report = runner::run(
        &ReferenceTarget,
        &resetkit_harness::scenario::select(scenarios::all(), &filter),
        false,
        &mut NoProgress,
    )
    .await;
    let report = report::redacted(report, std::iter::empty());
    let url = write_report("report-in-process", &report);
    let b = Browser::start(1280, 1400).await;
    b.goto(&url).await;
    let counts = b
        .script("return document.querySelectorAll('details.scenario').length;")
        .await;
    assert_eq!(counts.as_u64().unwrap() as usize, report.results.len());
    b.screenshot("report-in-process-summary").await;
    // Open the first scenario with an email, and its HTML part.
    let opened = b
        .script(
            "const d = Array.from(document.querySelectorAll('details.scenario')).find(d => d.querySelector('iframe.mailhtml'));\
             d.open = true; d.querySelectorAll('details').forEach(x => x.open = true); d.scrollIntoView(); return d.id;",
        )
        .await;
    assert!(opened.as_str().unwrap().starts_with("RST-"));
    b.frame(Some(&format!(
        "[id='{}'] iframe.mailhtml",
        opened.as_str().unwrap()
    )))
    .await;
    let inner = b.source().await;
    assert!(
        inner.contains("Choose a new password"),
        "the email's HTML renders in its frame: {inner}"
    );
    assert!(inner.contains("tok#"), "the link's token is a fingerprint");
    b.frame(None).await;
    b.screenshot("report-in-process-email").await;
}

const HOSTILE_HTML: &str = r#"<p id="mail">Reset your password</p>
<script>document.title = 'pwned'; parent.document.title = 'pwned'; fetch('http://127.0.0.1:PORT/script');</script>
<img src="http://127.0.0.1:PORT/pixel.png" alt="tracking pixel">
<link rel="stylesheet" href="http://127.0.0.1:PORT/style.css">
<div style="background:url(http://127.0.0.1:PORT/bg.png)">bg</div>
<iframe src="http://127.0.0.1:PORT/frame"></iframe>
<a href="http://127.0.0.1:PORT/reset?token=abc">link</a>
<link rel="preconnect" href="http://127.0.0.1:PORT/">
<meta http-equiv="refresh" content="0;url=http://127.0.0.1:PORT/refresh">"#;

fn hostile_email(port: u16) -> String {
    let html = HOSTILE_HTML.replace("PORT", &port.to_string());
    format!(
        "From: attacker@example.test\r\nTo: alice@example.test\r\nSubject: <script>alert(1)</script> hostile\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhttp://127.0.0.1:{port}/reset?token=abc <script>x</script>\r\n\
         --b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--b--\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_loads_nothing_and_runs_no_script_from_an_email() {
    if !browser::available() {
        return;
    }
    let l = listener();
    let info = ScenarioInfo {
        id: "RST-LINK-001",
        title: "hostile mail",
        severity: Severity::Must,
        requirement: Requirement {
            source: "test",
            text: "<script>document.title='pwned'</script>",
        },
    };
    let report = RunReport {
        target: format!("<img src=http://127.0.0.1:{}/target.png>", l.port),
        results: vec![ScenarioResult {
            group: info.group(),
            info,
            verdict: Verdict::Fail,
            expected: Some("<script>fetch('http://127.0.0.1/')</script>".into()),
            actual: Some(format!("<img src=http://127.0.0.1:{}/actual.png>", l.port)),
            evidence: Evidence {
                emails: vec![hostile_email(l.port)],
                notes: vec![format!("HTTP GET http://127.0.0.1:{}/note <b>bold</b>", l.port)],
                ..Evidence::default()
            },
            duration: Duration::from_millis(3),
        }],
        duration: Duration::from_millis(3),
        strict: false,
    };
    let html = report::to_html(&report);
    assert!(html.contains("Content-Security-Policy") && html.contains("default-src 'none'"));
    assert!(!html.contains("<script"), "no script element in the page itself");
    let url = write_report("report-hostile-email", &report);

    let b = Browser::start(1024, 900).await;
    b.goto(&url).await;
    b.script("document.querySelectorAll('details').forEach(d => d.open = true); return 0;")
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.frame(Some("iframe.mailhtml")).await;
    let inner = b.source().await;
    assert!(
        inner.contains("Reset your password"),
        "the email's HTML is shown: {inner}"
    );
    let inner_title = b.script("return document.title;").await;
    assert_ne!(
        inner_title.as_str(),
        Some("pwned"),
        "the email's script did not run"
    );
    b.frame(None).await;
    let title = b.script("return document.title;").await;
    assert_ne!(title.as_str(), Some("pwned"));
    b.screenshot("report-hostile-email").await;
    assert_eq!(
        l.hits.load(Ordering::SeqCst),
        0,
        "the report made a network request: {:?}",
        l.lines.lock().unwrap()
    );
    // Control: the listener does count a page that loads from it.
    b.goto(&format!("http://127.0.0.1:{}/control", l.port)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        l.hits.load(Ordering::SeqCst) >= 1,
        "the listener counts connections"
    );
}
