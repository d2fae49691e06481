//! `init` against the fixture apps (Django-, Devise-, Laravel- and
//! ASP.NET-Identity-shaped): the draft, with the fixture's other accounts
//! added as a person would, runs and gives the fixture's expected verdicts
//! (the timing check aside: the fixtures' own tests cover it, and it needs
//! per-shape tuning).
#![allow(clippy::unwrap_used)]

mod fixtures;

use std::net::SocketAddr;
use std::sync::Arc;

use fixtures::{Expected, Flaws};
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::http::init::{InitOptions, draft};
use resetkit_harness::http::target_file::HttpTarget;
use resetkit_harness::scenario::Verdict;

/// What a person adds to the draft: the fixture's accounts other than
/// the one init used (taken from the fixture's own target file).
fn other_accounts(fixture_toml: &str, used: &str) -> String {
    let value: toml::Value = toml::from_str(fixture_toml).unwrap();
    let mut out = String::new();
    for account in value["accounts"].as_array().unwrap() {
        if account["email"].as_str() == Some(used) {
            continue;
        }
        out.push_str("\n[[accounts]]\n");
        out.push_str(&toml::to_string(account).unwrap());
    }
    out
}

async fn check_draft(
    name: &str,
    start: impl AsyncFnOnce(SocketAddr) -> (fixtures::Running, String),
    expected: &[(&str, Expected)],
) {
    let server = Arc::new(FakeSmtpServer::start().unwrap());
    let (app, fixture_toml) = start(server.addr()).await;
    let fixture = HttpTarget::from_toml_str(&fixture_toml, "fixture.toml").unwrap();
    let url = format!("{}{}", app.base_url, fixture.forgot.page);
    let mut options = InitOptions::new(url);
    options.account = Some("alice@example.test".into());
    options.mail_wait = std::time::Duration::from_secs(5);
    let mut text = draft(&options, Some(server.clone()))
        .await
        .unwrap_or_else(|e| panic!("{name}: init failed: {e}"));
    println!("--- {name} draft ---\n{text}");
    // Every key carries a comment.
    for line in text
        .lines()
        .filter(|l| l.contains(" = ") && !l.trim_start().starts_with('#'))
    {
        let commented = line.contains(" # ")
            || text
                .lines()
                .take_while(|l| *l != line)
                .last()
                .is_some_and(|prev| prev.trim_start().starts_with('#'));
        assert!(
            commented || line.starts_with("identifier") || line.starts_with("email"),
            "{name}: key without a comment: {line}"
        );
    }
    text.push_str(&other_accounts(&fixture_toml, "alice@example.test"));
    // Faster waits than the default, as the fixture files use.
    text.push_str("\n[checks]\nmail_wait_secs = 1.5\nrace_trials = 3\n");
    let ids: Vec<&str> = expected
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| *id != "RST-HTTP-016")
        .collect();
    let report = fixtures::run_checks(server, &text, &ids).await;
    let mut wrong = Vec::new();
    for result in &report.results {
        let want = expected
            .iter()
            .find(|(id, _)| *id == result.info.id)
            .map(|(_, e)| *e)
            .unwrap();
        // Without [[lookalikes]] or [login] in the draft, a check may be
        // skipped; it must never fail or error where the fixture passes.
        let ok = want.matches(&result.verdict) || matches!(result.verdict, Verdict::Skipped(_));
        if !ok {
            wrong.push(format!(
                "{}: expected {want:?}, got {:?}\n  expected: {:?}\n  actual: {:?}",
                result.info.id, result.verdict, result.expected, result.actual
            ));
        }
    }
    let ran = report
        .results
        .iter()
        .filter(|r| !matches!(r.verdict, Verdict::Skipped(_)))
        .count();
    assert!(
        wrong.is_empty(),
        "{name}: the draft's verdicts differ:\n{}\n\ndraft:\n{text}",
        wrong.join("\n")
    );
    assert!(ran >= 11, "{name}: only {ran} checks ran with the draft");
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_shaped_draft_runs() {
    check_draft(
        "Django",
        async |smtp| {
            let app = fixtures::django::start(smtp, Flaws::default()).await;
            let toml = fixtures::django::target_toml(&app.base_url, smtp);
            (app, toml)
        },
        fixtures::django::CORRECT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devise_shaped_draft_runs() {
    check_draft(
        "Devise",
        async |smtp| {
            let app = fixtures::devise::start(smtp, Flaws::default()).await;
            let toml = fixtures::devise::target_toml(&app.base_url, smtp);
            (app, toml)
        },
        fixtures::devise::CORRECT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laravel_shaped_draft_runs() {
    check_draft(
        "Laravel",
        async |smtp| {
            let app = fixtures::laravel::start(smtp, Flaws::default()).await;
            let toml = fixtures::laravel::target_toml(&app.base_url, smtp);
            (app, toml)
        },
        fixtures::laravel::CORRECT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aspnet_shaped_draft_runs() {
    check_draft(
        "ASP.NET",
        async |smtp| {
            let app = fixtures::aspnet::start(smtp, Flaws::default()).await;
            let toml = fixtures::aspnet::target_toml(&app.base_url, smtp);
            (app, toml)
        },
        fixtures::aspnet::CORRECT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_without_an_account_writes_a_draft_that_names_what_to_fill_in() {
    let server = Arc::new(FakeSmtpServer::start().unwrap());
    let app = fixtures::django::start(server.addr(), Flaws::default()).await;
    let text = draft(
        &InitOptions::new(format!("{}/accounts/password_reset/", app.base_url)),
        None,
    )
    .await
    .unwrap();
    assert!(text.contains("identifier_field = \"email\""), "{text}");
    assert!(text.contains("field = \"csrfmiddlewaretoken\""), "{text}");
    assert!(text.contains("page sets `csrftoken`"), "{text}");
    assert!(
        text.contains("accepted = { status = 302, redirect = \"/accounts/password_reset/done/\" }"),
        "{text}"
    );
    assert!(text.contains("FILL IN how the emailed link looks"), "{text}");
    assert!(
        server.messages().is_empty(),
        "the probe for an unknown address mailed no one"
    );
    // The draft parses as a target file as it is.
    HttpTarget::from_toml_str(&text, "draft.toml").unwrap();
    // Bad input: clear errors, no panic.
    for (url, needle) in [
        ("not a url", "--url"),
        ("ftp://x/", "http:// or https://"),
        (&format!("{}/no-such-page", app.base_url) as &str, "HTTP 404"),
        (
            &format!("{}/accounts/reset/done/", app.base_url) as &str,
            "no forgot-password form",
        ),
    ] {
        let e = draft(&InitOptions::new(url), None).await.unwrap_err().to_string();
        assert!(e.contains(needle), "{url}: {e}");
    }
}
