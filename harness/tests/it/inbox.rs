//! The capture server's web inbox: JSON API, inspection findings, clearing
//! only from the same origin, loopback hosts only; `smtp --web` as a
//! process printing mail on arrival; and the inbox in headless Chromium
//! with a real reset mail (screenshots under `target/screenshots`).
#![allow(clippy::unwrap_used)]

use crate::browser;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use resetkit::RequestContext;
use resetkit::account::Account;
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::target::{ReferenceTarget, TargetConfig, TargetFactory};
use serde_json::Value;

/// Starts the inbox for `server` on a free loopback port.
async fn serve(server: Arc<FakeSmtpServer>) -> SocketAddr {
    serve_with_timeout(server, std::time::Duration::from_secs(10)).await
}

async fn serve_with_timeout(server: Arc<FakeSmtpServer>, header_timeout: std::time::Duration) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let access = resetkit_harness::inbox::InboxAccess::Loopback;
        resetkit_harness::inbox::serve(listener, server, access, header_timeout)
            .await
            .unwrap();
    });
    addr
}

/// Finding 8 of the fourth review: an idle or header-trickling client held
/// the inbox's connection open (45 s and counting). The inbox closes both
/// at its header-read timeout, like the portal.
#[tokio::test]
async fn idle_and_trickling_clients_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Arc::new(FakeSmtpServer::start().unwrap());
    let addr = serve_with_timeout(server, std::time::Duration::from_millis(300)).await;
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut trickle = tokio::net::TcpStream::connect(addr).await.unwrap();
    trickle.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    for (what, stream) in [("idle", &mut idle), ("trickling", &mut trickle)] {
        let mut buf = [0u8; 1024];
        // Closed (EOF, possibly after a 408) well before this bound.
        let closed = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the {what} connection is still open");
    }
}

/// Sends a real reset email of the reference flow to `smtp` (alice's).
async fn send_reset_mail(server: &FakeSmtpServer) {
    let before = server.messages().last().map_or(0, |m| m.id);
    let target = ReferenceTarget
        .build("inbox-test", &TargetConfig::new(server.addr()))
        .await
        .unwrap();
    target
        .accounts
        .upsert(&Account::new("acct-alice", "alice", "alice@example.test"))
        .await
        .unwrap();
    target
        .service
        .request("alice@example.test", &RequestContext::from_client("192.0.2.1"))
        .await
        .unwrap();
    if let Some(worker) = target.service.delivery_worker() {
        worker.run_once().await.unwrap();
    }
    server
        .wait_for(|m| m.id > before, Duration::from_secs(5))
        .await
        .unwrap();
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn json(url: String) -> Value {
    let r = client().get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_lists_newest_first_inspects_links_and_clears_only_same_origin() {
    let server = Arc::new(FakeSmtpServer::start().unwrap());
    let web = serve(server.clone()).await;
    send_reset_mail(&server).await;
    send_reset_mail(&server).await;

    let list = json(format!("http://{web}/api/messages")).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list[0]["id"].as_u64() > list[1]["id"].as_u64(), "newest first");
    assert_eq!(list[0]["to"][0], "alice@example.test");
    assert_eq!(list[0]["has_reset_link"], true);

    let id = list[0]["id"].as_u64().unwrap();
    let one = json(format!("http://{web}/api/messages/{id}")).await;
    let links = one["links"].as_array().unwrap();
    let reset = links
        .iter()
        .find(|l| l["path"] == "/reset")
        .unwrap_or_else(|| panic!("the reset link is listed: {links:?}"));
    assert_eq!(reset["reset_link"], true);
    assert_eq!(reset["host"], "app.example.test");
    assert_eq!(reset["token_location"], "query token");
    assert!(reset["token_bits"].as_f64().unwrap() >= 128.0, "{reset}");
    assert_eq!(reset["in_text"], true);
    assert_eq!(reset["in_html"], true);
    assert!(one["raw"].as_str().unwrap().contains("Auto-Submitted"));
    assert!(
        one["problems"].as_array().unwrap().is_empty(),
        "{}",
        one["problems"]
    );
    let raw = client()
        .get(format!("http://{web}/api/messages/{id}/raw"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-type"], "message/rfc822");
    let missing = client()
        .get(format!("http://{web}/api/messages/999"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let bad = client()
        .get(format!("http://{web}/api/messages/x%00y"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 404);

    // The pages: CSP, no script.
    let page = client()
        .get(format!("http://{web}/messages/{id}"))
        .send()
        .await
        .unwrap();
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let page = page.text().await.unwrap();
    assert!(page.contains("sandbox=\"\"") && !page.contains("<script"));

    // Another site cannot read (DNS rebinding) or clear.
    let rebound = client()
        .get(format!("http://{web}/api/messages"))
        .header("host", format!("evil.example:{}", web.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 421);
    let clear = format!("http://{web}/api/messages/clear");
    let plain = client().post(&clear).send().await.unwrap();
    assert_eq!(plain.status(), 403, "a POST without proof of origin is refused");
    let cross = client()
        .post(&clear)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403, "a cross-site form is refused");
    let cross_site = client()
        .post(&clear)
        .header("origin", "null")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cross_site.status(),
        403,
        "a cross-site form (as a browser sends it) is refused"
    );
    assert_eq!(server.message_count(), 2);
    let same = client()
        .post(&clear)
        .header("origin", format!("http://{web}"))
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 303, "same-origin form: cleared, back to the inbox");
    assert_eq!(server.message_count(), 0);
    send_reset_mail(&server).await;
    let scripted = client()
        .post(&clear)
        .header("x-inbox-clear", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(scripted.status(), 200);
    assert_eq!(
        json(format!("http://{web}/api/messages")).await,
        serde_json::json!([])
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// Kills the child when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_command_prints_mail_on_arrival_and_serves_the_inbox() {
    let (smtp, web) = (free_port(), free_port());
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_resetkit-harness"))
            .args([
                "smtp",
                "--listen",
                &format!("127.0.0.1:{smtp}"),
                "--web",
                &format!("127.0.0.1:{web}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut next = async || {
        let line = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a line within 10 s")
            .expect("the process is running");
        seen.push(line.clone());
        line
    };
    while !next().await.starts_with("web inbox on") {}
    // Send one reset email through the reference flow to the process.
    let target = ReferenceTarget
        .build(
            "inbox-cli",
            &TargetConfig::new(SocketAddr::from(([127, 0, 0, 1], smtp))),
        )
        .await
        .unwrap();
    target
        .accounts
        .upsert(&Account::new("acct-alice", "alice", "alice@example.test"))
        .await
        .unwrap();
    target
        .service
        .request("alice@example.test", &RequestContext::from_client("192.0.2.1"))
        .await
        .unwrap();
    if let Some(worker) = target.service.delivery_worker() {
        worker.run_once().await.unwrap();
    }
    let mut link = None;
    while link.is_none() {
        let line = next().await;
        if let Some(l) = line
            .trim()
            .strip_prefix("link: https://app.example.test/reset?token=")
        {
            link = Some(l.to_owned());
        }
    }
    let list = json(format!("http://127.0.0.1:{web}/api/messages")).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        list[0]["subject"].as_str().map(|s| s.contains("Reset")),
        Some(true),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_ui_with_a_captured_reset_mail_in_chromium() {
    if !browser::available() {
        return;
    }
    let server = Arc::new(FakeSmtpServer::start().unwrap());
    let web = serve(server.clone()).await;
    send_reset_mail(&server).await;
    let b = browser::Browser::start(1200, 1000).await;
    b.goto(&format!("http://{web}/")).await;
    let rows = b
        .script("return document.querySelectorAll('table.list tbody tr').length;")
        .await;
    assert_eq!(rows.as_u64(), Some(1));
    b.screenshot("inbox-list").await;
    b.click("table.list tbody tr a").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let found = b
        .script("return document.querySelector('table.links td.found') !== null;")
        .await;
    assert_eq!(found.as_bool(), Some(true), "the reset link is marked as found");
    b.frame(Some("iframe.mailhtml")).await;
    let inner = b.source().await;
    assert!(
        inner.contains("Choose a new password"),
        "the HTML part renders sandboxed: {inner}"
    );
    b.frame(None).await;
    b.screenshot("inbox-message").await;
    // Clear all through the page's own form (same origin): the inbox empties.
    b.goto(&format!("http://{web}/")).await;
    b.click("header form button").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.message_count(), 0, "the same-origin form clears");
    let empty = b
        .script("return document.querySelector('p.empty') !== null;")
        .await;
    assert_eq!(empty.as_bool(), Some(true));
}
