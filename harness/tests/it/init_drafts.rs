//! `init` against the fixture apps (Django-, Devise-, Laravel- and
//! ASP.NET-Identity-shaped): the draft, with the fixture's other accounts
//! added as a person would, runs and gives the fixture's expected verdicts
//! (the timing check aside: the fixtures' own tests cover it, and it needs
//! per-shape tuning).
#![allow(clippy::unwrap_used)]

use crate::fixtures;

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

/// The line of `text` that sets `key` (not a comment).
fn key_line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flask_security_shaped_draft_takes_accepted_from_what_only_an_accepted_request_gets() {
    let server = Arc::new(FakeSmtpServer::start().unwrap());
    let app = fixtures::flask::start(server.addr()).await;
    let url = format!("{}/reset", app.base_url);
    // Without --account, only the answer to an unknown address: its heading
    // is on the form page too (and on every refusal), the rest is an error.
    let text = draft(&InitOptions::new(url.clone()), None).await.unwrap();
    let accepted = key_line(&text, "accepted");
    assert!(
        !accepted.contains("Send password reset instructions"),
        "{accepted}"
    );
    assert!(!accepted.contains("text ="), "{accepted}");
    assert!(
        text.contains("FILL IN: the answer to a request for") && text.contains("give --account"),
        "{text}"
    );
    // With --account, the two answers are compared: the text only the
    // accepted request got, cut before the echoed address.
    let mut options = InitOptions::new(url);
    options.account = Some("alice@example.test".into());
    options.mail_wait = std::time::Duration::from_secs(5);
    let mut text = draft(&options, Some(server.clone())).await.unwrap();
    println!("--- Flask-Security draft ---\n{text}");
    let accepted = key_line(&text, "accepted");
    assert_eq!(
        accepted.split("  #").next().unwrap(),
        "accepted = { status = 200, text = \"Instructions to reset your password have been sent to\" }"
    );
    assert!(
        text.contains("for resetkit-init-") && text.contains("differs"),
        "{text}"
    );

    // CSRF belongs to each form: the forgot form's token under [forgot.csrf].
    assert!(text.contains("[forgot.csrf]"), "{text}");
    assert!(!text.lines().any(|l| l.trim() == "[csrf]"), "{text}");
    assert!(key_line(&text, "field").contains("csrf_token"), "{text}");
    // A person adds the sign-in page (its form has no CSRF field): the
    // preflight accepts the file.
    text.push_str(
        "\n[login]\npage = \"/login\"\nidentifier_field = \"email\"\npassword_field = \"password\"\n\
         success = { status = 302, redirect = \"/\" }\n",
    );
    let target = Arc::new(HttpTarget::from_toml_str(&text, "draft.toml").unwrap());
    let checked = resetkit_harness::http::runner::preflight(&target).await.unwrap();
    assert!(checked.iter().any(|c| c.contains("login.page")), "{checked:?}");
    assert!(
        checked.iter().any(|c| c.contains("its CSRF field `csrf_token`")),
        "{checked:?}"
    );
    // The way drafts were written before, one [csrf] for the whole file:
    // the sign-in form is required to carry the token, one error for it.
    let whole_file = text.replace("[forgot.csrf]", "[csrf]");
    let target = Arc::new(HttpTarget::from_toml_str(&whole_file, "old.toml").unwrap());
    let err = resetkit_harness::http::runner::preflight(&target)
        .await
        .unwrap_err();
    assert_eq!(err.matches("login.page").count(), 1, "{err}");
    assert!(err.contains("(csrf.field in the target file)"), "{err}");
}
