//! Three portal processes on one PostgreSQL behind a round-robin proxy
//! (`resetkit_portal::fleet`): a template saved on instance 1 is what
//! instance 3 sends; and a crash under load (`kill -9` one instance, start
//! it again) loses no accepted request. Needs `DATABASE_URL` (skips
//! without, fails with `RESETKIT_REQUIRE_DB=1`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::webdriver;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Browser, hidden_textarea};
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_portal::fleet::{Fleet, FleetOptions, random_schema, random_secrets};

fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("RESETKIT_REQUIRE_DB").is_err(),
                "RESETKIT_REQUIRE_DB is set but DATABASE_URL is not"
            );
            eprintln!("skipping the fleet test: DATABASE_URL is not set");
            None
        }
    }
}

const ACCOUNTS: usize = 2_000;

async fn start_fleet(url: String, smtp: &FakeSmtpServer, schema: &str, accounts: usize) -> Fleet {
    Fleet::start(FleetOptions {
        portal: env!("CARGO_BIN_EXE_resetkit-portal").into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        instances: 3,
        database_url: url,
        db_schema: schema.to_owned(),
        args: vec![
            "--smtp".into(),
            format!("smtp://{}?tls=none", smtp.addr()),
            "--fast-hash".into(),
            "--rate-limits".into(),
            "off".into(),
            "--load-test-accounts".into(),
            accounts.to_string(),
        ],
        secrets: random_secrets(),
        ready_timeout: Duration::from_secs(120),
    })
    .await
    .expect("the fleet starts")
}

fn header(data: &str, name: &str) -> Option<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    data.lines()
        .take_while(|l| !l.is_empty())
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_owned())
}

/// What waits in the fleet's inbox and outbox (`schema` is ours: `fleet_` and hex).
async fn backlog(pool: &sqlx::PgPool, schema: &str) -> i64 {
    let inbox: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.request_inbox"
    )))
    .fetch_one(pool)
    .await
    .unwrap();
    let outbox: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.outbox WHERE status IN ('pending', 'claimed')"
    )))
    .fetch_one(pool)
    .await
    .unwrap();
    inbox + outbox
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_shares_templates_and_a_crash_under_load_loses_no_accepted_request() {
    let Some(url) = database_url() else {
        return;
    };
    let smtp = FakeSmtpServer::builder().threads(64).start().unwrap();
    let schema = random_schema();
    let mut fleet = start_fleet(url.clone(), &smtp, &schema, ACCOUNTS).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();

    // ---- A template saved on instance 1 is what instance 3 sends. ----
    let operator = Browser::at(fleet.instance_url(0));
    operator
        .sign_in("operator", "operator-demo-password-6")
        .await
        .assert_redirect("/account");
    let edit = operator.get("/admin/templates/edit?locale=en&kind=reset").await;
    let (text, html) = (
        hidden_textarea(&edit.body, "text"),
        hidden_textarea(&edit.body, "html"),
    );
    operator
        .post(
            "/admin/templates/save",
            &[
                ("locale", "en"),
                ("kind", "reset"),
                ("subject", "Saved on instance 1: reset your password"),
                ("text", &text),
                ("html", &html),
                ("csrf_token", &edit.csrf()),
            ],
        )
        .await
        .assert_redirect("/admin/templates/edit?locale=en&kind=reset&saved=1");
    // The instances look for changes every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = smtp.message_count();
    Browser::at(fleet.instance_url(2))
        .forgot("alice")
        .await
        .assert_redirect("/forgot/sent");
    let mail = smtp
        .wait_for(
            |m| m.rcpt_to.iter().any(|r| r == "alice@example.test") && m.id as usize > before,
            Duration::from_secs(10),
        )
        .await
        .expect("alice's mail");
    let subject = header(&mail.data_text(), "subject").unwrap_or_default();
    assert!(
        subject.contains("Saved on instance 1"),
        "instance 3 sent the template saved on instance 1: {subject}"
    );

    // ---- Crash under load through the proxy. ----
    let total: usize = std::env::var("FLEET_CRASH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600)
        .min(ACCOUNTS);
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
    let refused = Arc::new(AtomicUsize::new(0));
    let base = fleet.url().to_owned();
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (next, accepted, refused, base) = (next.clone(), accepted.clone(), refused.clone(), base.clone());
        clients.push(tokio::spawn(async move {
            let browser = Browser::at(base);
            let mut csrf = browser.csrf("/forgot").await;
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    return;
                }
                let identifier = format!("load{i}@load.test");
                let page = browser
                    .post("/forgot", &[("identifier", &identifier), ("csrf_token", &csrf)])
                    .await;
                if page.location() == Some("/forgot/sent") {
                    accepted.lock().unwrap().push(i);
                } else {
                    refused.fetch_add(1, Ordering::SeqCst);
                    let again = browser.get("/forgot").await;
                    if again.status == reqwest::StatusCode::OK {
                        csrf = again.csrf();
                    }
                }
            }
        }));
    }
    // A third of the way in: kill -9 instance 2, then start it again.
    while next.load(Ordering::SeqCst) < total / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fleet.kill(1).await.unwrap();
    let killed_at = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    fleet.restart(1).await.unwrap();
    let restarted_at = started.elapsed();
    for client in clients {
        client.await.unwrap();
    }
    let load_took = started.elapsed();
    // Until nothing waits (claims of the killed instance come back when
    // their 15 s leases end), then a little longer for late duplicates.
    let deadline = Instant::now() + Duration::from_secs(90);
    while backlog(&pool, &schema).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained_at = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let accepted: BTreeSet<usize> = accepted.lock().unwrap().iter().copied().collect();
    let mut per_recipient: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_message_id: BTreeMap<String, usize> = BTreeMap::new();
    for m in smtp.messages().iter().filter(|m| m.id as usize > before) {
        for r in &m.rcpt_to {
            *per_recipient.entry(r.clone()).or_default() += 1;
        }
        let id = header(&m.data_text(), "message-id").unwrap_or_default();
        *per_message_id.entry(id).or_default() += 1;
    }
    let load_mails: usize = per_recipient
        .iter()
        .filter(|(r, _)| r.ends_with("@load.test"))
        .map(|(_, n)| n)
        .sum();
    let missing: Vec<usize> = accepted
        .iter()
        .copied()
        .filter(|i| !per_recipient.contains_key(&format!("load{i}@load.test")))
        .collect();
    let twice: Vec<(&String, &usize)> = per_message_id.iter().filter(|(_, n)| **n > 1).collect();
    let unanswered_but_mailed = per_recipient
        .keys()
        .filter_map(|r| {
            r.strip_prefix("load")?
                .strip_suffix("@load.test")?
                .parse::<usize>()
                .ok()
        })
        .filter(|i| !accepted.contains(i))
        .count();
    eprintln!(
        "fleet crash test: {total} requests through the proxy in {load_took:?} (instance 2 killed at \
         {killed_at:?}, answering again at {restarted_at:?}); {} answered \"check your email\", {} \
         refused (502 from the proxy while the instance was down, or 503); {load_mails} mails, {} \
         distinct Message-IDs, {} Message-IDs delivered more than once, {} accepted requests without \
         mail, {unanswered_but_mailed} mails for requests that got no answer; backlog drained at {drained_at:?}",
        accepted.len(),
        refused.load(Ordering::SeqCst),
        per_message_id.len(),
        twice.len(),
        missing.len(),
    );
    assert!(missing.is_empty(), "accepted requests without mail: {missing:?}");
    assert!(accepted.len() + refused.load(Ordering::SeqCst) == total);
    // At least once: a crash between the server's 250 and the commit sends
    // a message again; at most the killed instance's sends in flight.
    assert!(
        twice.len() <= resetkit::delivery::DEFAULT_CONCURRENCY,
        "duplicates beyond the in-flight window: {twice:?}"
    );
    fleet.stop().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&pool)
        .await
        .unwrap();
}

/// The browser test through the proxy: every request of Chromium goes to
/// the next instance (forgot on one, the link on another, the form's POST
/// on a third). The reset link is read from the fake SMTP server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_resets_a_password_through_the_round_robin_proxy() {
    if !webdriver::browser_available() {
        return;
    }
    let Some(url) = database_url() else {
        return;
    };
    const NEW_PASSWORD: &str = "harbour lantern fleet 2031";
    let smtp = FakeSmtpServer::builder().threads(16).start().unwrap();
    let schema = random_schema();
    let fleet = start_fleet(url.clone(), &smtp, &schema, 0).await;
    let site = fleet.url().to_owned();
    let profile = tempfile::tempdir().expect("profile dir");
    let shots = webdriver::screenshot_dir("portal-fleet-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let driver = webdriver::start_driver().await;
    let mut b = webdriver::open_session(&driver, profile.path(), shots, 412, 915).await;

    b.goto(&format!("{site}/forgot")).await;
    b.type_into("#identifier", "alice").await;
    b.screenshot("forgot").await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/forgot/sent").await;
    assert!(b.source().await.contains("Check your email"));
    b.screenshot("check-your-email").await;

    let mail = smtp
        .wait_for(
            |m| m.rcpt_to.iter().any(|r| r == "alice@example.test"),
            Duration::from_secs(15),
        )
        .await
        .expect("alice's mail");
    let parsed = resetkit_harness::inspect::ParsedMail::parse(&mail.data).unwrap();
    let prefix = format!("{site}/reset?token=");
    let link = resetkit_harness::inspect::text_links(&parsed.text.unwrap_or_default())
        .into_iter()
        .find(|l| l.starts_with(&prefix))
        .expect("the reset link, on the proxy's address");

    b.goto(&link).await;
    let landed = b.wait_for_path("/reset/new").await;
    assert!(
        !landed.contains("token"),
        "the token left the address bar: {landed}"
    );
    assert!(b.source().await.contains(">alice<"));
    b.screenshot("choose-new-password").await;
    // A mismatch (answered by one instance), then the change (another).
    b.type_into("#password", NEW_PASSWORD).await;
    b.type_into("#confirm", "something else entirely").await;
    b.click("button[type=submit]").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.source().await.contains("do not match") {
        assert!(Instant::now() < deadline, "no mismatch message");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.type_into("#password", NEW_PASSWORD).await;
    b.type_into("#confirm", NEW_PASSWORD).await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/reset/done").await;
    assert!(b.source().await.contains("Your password has been changed"));
    b.screenshot("password-changed").await;

    // Sign in with the new password through the proxy: accepted (303 to
    // /account). The portal's own sign-in sessions are per process (the
    // host's concern, see the README), so the account page is checked on
    // the instance that signed in, not through the proxy.
    let user = Browser::at(site.clone());
    user.sign_in("alice", NEW_PASSWORD)
        .await
        .assert_redirect("/account");
    let old = Browser::at(site.clone());
    let refused = old.sign_in("alice", "alice-demo-password-1").await;
    assert_ne!(
        refused.location(),
        Some("/account"),
        "the old password still works"
    );

    // The link is spent, whichever instance is asked.
    for _ in 0..fleet.len() {
        b.goto(&link).await;
        b.wait_for_path("/reset/invalid").await;
    }
    b.screenshot("link-spent").await;
    b.close().await;
    drop(driver);
    fleet.stop().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&pool)
        .await
        .unwrap();
}
