//! `resetkit-harness init` against the portal: the draft (forgot form,
//! CSRF, accepted answer, link, set-password form, success and dead-link
//! answers found by following one reset of alice's), with the portal's
//! other demo accounts added as a person would, runs every HTTP check but
//! the timing one, and none fails.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::http::init::{InitOptions, draft};
use resetkit_harness::http::target_file::HttpTarget;
use resetkit_harness::http::{runner, scenarios};
use resetkit_harness::report::NoProgress;
use resetkit_harness::scenario::Verdict;
use resetkit_portal::{Portal, PortalConfig};
use secrecy::SecretString;

/// What a person adds: the portal's other demo accounts.
const OTHER_ACCOUNTS: &str = r#"
[[accounts]]
identifier = "bob"
email = "bob@example.test"
password = "bob-demo-password-22"

[[accounts]]
identifier = "carol"
email = "carol@example.test"
disabled = true

[[accounts]]
identifier = "dave"
email = "family@example.test"

[[accounts]]
identifier = "erin"
email = "family@example.test"

[checks]
mail_wait_secs = 3
race_trials = 3
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_draft_of_the_portal_runs_with_accounts_added() {
    let server = Arc::new(FakeSmtpServer::start().unwrap());
    let mut config = PortalConfig::local_test();
    config.dev_mail = false;
    config.smtp = Some(SecretString::from(format!("smtp://{}?tls=none", server.addr())));
    let portal = Portal::start(config).await.expect("portal starts");

    let mut options = InitOptions::new(format!("{}/forgot", portal.url()));
    options.account = Some("alice@example.test".into());
    let mut text = draft(&options, Some(server.clone())).await.expect("a draft");
    println!("{text}");
    for found in [
        "field = \"csrf_token\"",
        "identifier_field = \"identifier\"",
        "identifier_kind = \"either\"",
        "accepted = { status = 303, redirect = \"/forgot/sent\" }",
        "url = \"/reset?token={token}\"",
        "follow = \"redirect\"",
        "password_field = \"password\"",
        "confirm_field = \"confirm\"",
        "success = { status = 303, redirect = \"/reset/done\" }",
        "invalid = { status = 303, redirect = \"/reset/invalid\" }",
        "failure = { status = 303, redirect = \"/reset/invalid\" }",
    ] {
        assert!(text.contains(found), "the draft has `{found}`:\n{text}");
    }
    text.push_str(OTHER_ACCOUNTS);
    let target = Arc::new(HttpTarget::from_toml_str(&text, "draft.toml").expect("the draft parses"));
    runner::preflight(&target).await.expect("preflight");
    let selected: Vec<_> = scenarios::all()
        .into_iter()
        .filter(|s| s.info.id != "RST-HTTP-016")
        .collect();
    let report = runner::run(target, server, &selected, &[], false, &mut NoProgress).await;
    let bad: Vec<String> = report
        .results
        .iter()
        .filter(|r| !matches!(r.verdict, Verdict::Pass | Verdict::Skipped(_)))
        .map(|r| format!("{} {:?}: {:?} / {:?}", r.info.id, r.verdict, r.expected, r.actual))
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let passed = report
        .results
        .iter()
        .filter(|r| r.verdict == Verdict::Pass)
        .count();
    assert!(
        passed >= 12,
        "{passed} checks passed:\n{:#?}",
        report
            .results
            .iter()
            .map(|r| (r.info.id, &r.verdict))
            .collect::<Vec<_>>()
    );
}
