//! The harness against a Devise-shaped app (`?reset_password_token=` in the
//! query, an edit form rendered at the link's URL that repeats the token in
//! a hidden field, `_method=put`, mail delivered in the background, a
//! sign-in page): every RST-HTTP verdict, correct and broken; and an app
//! whose undeclared rate limit swallows mail.

use crate::fixtures;

use std::sync::Arc;
use std::time::Instant;

use fixtures::{Flaws, devise};
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::scenario::Verdict;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_correct_devise_shaped_app_gets_its_expected_verdicts() {
    let started = Instant::now();
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let app = devise::start(server.addr(), Flaws::default()).await;
    let toml = devise::target_toml(&app.base_url, server.addr());
    let report = fixtures::run_checks(server, &toml, &[]).await;
    println!("Devise-shaped, correct: {:.1} s", started.elapsed().as_secs_f64());
    let wrong = fixtures::mismatches(&report, devise::CORRECT);
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    assert!(
        fixtures::notes(&report, "RST-HTTP-008").contains("Case: the token stays in the rendered page's URL"),
        "{}",
        fixtures::notes(&report, "RST-HTTP-008")
    );
    println!("{}", fixtures::figures(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broken_devise_shaped_app_fails_the_referrer_and_timing_checks() {
    let started = Instant::now();
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let app = devise::start(server.addr(), devise::broken()).await;
    let toml = devise::target_toml(&app.base_url, server.addr());
    let report = fixtures::run_checks(server, &toml, &[]).await;
    println!("Devise-shaped, broken: {:.1} s", started.elapsed().as_secs_f64());
    let wrong = fixtures::mismatches(&report, devise::BROKEN);
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    let referrer = fixtures::actual(&report, "RST-HTTP-008");
    assert!(
        referrer.contains("case: the token stays in the rendered page's URL")
            && referrer.contains("Referrer-Policy none"),
        "{referrer}"
    );
    let timing = fixtures::actual(&report, "RST-HTTP-016");
    assert!(
        timing.contains("known vs unknown") && timing.contains("differs"),
        "{timing}"
    );
    println!("{}", fixtures::figures(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_rate_limit_is_reported_as_throttling_not_as_a_broken_flow() {
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let flaws = Flaws {
        throttle_after: Some(3),
        ..Flaws::default()
    };
    let app = devise::start(server.addr(), flaws).await;
    let toml = devise::target_toml(&app.base_url, server.addr());
    // A first run spends alice's budget (the identical-answer check
    // hammers one known address) ...
    let first = fixtures::run_checks(server.clone(), &toml, &["RST-HTTP-015"]).await;
    assert_eq!(first.results[0].verdict, Verdict::Pass);
    // ... so on the second run her email never comes.
    let second = fixtures::run_checks(server.clone(), &toml, &["RST-HTTP-001"]).await;
    let happy = &second.results[0];
    assert_eq!(happy.verdict, Verdict::Warn, "{happy:#?}");
    let actual = happy.actual.clone().unwrap_or_default();
    assert!(
        actual.contains("probably throttling") && actual.contains("[limits]") && actual.contains("alice"),
        "{actual}"
    );
    // Within one run: once every account stopped getting mail, checks say
    // so as a harness error, never as a failed MUST.
    let third = fixtures::run_checks(
        server,
        &toml,
        &["RST-HTTP-001", "RST-HTTP-010", "RST-HTTP-013", "RST-HTTP-012"],
    )
    .await;
    for result in &third.results {
        assert_ne!(result.verdict, Verdict::Fail, "{result:#?}");
    }
    let errors: Vec<&str> = third
        .results
        .iter()
        .filter_map(|r| match &r.verdict {
            Verdict::Error(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    assert!(!errors.is_empty(), "{third:#?}");
    assert!(errors.iter().all(|e| e.contains("throttling")), "{errors:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_never_mails_fails_the_happy_path() {
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let flaws = Flaws {
        throttle_after: Some(0),
        ..Flaws::default()
    };
    let app = devise::start(server.addr(), flaws).await;
    let toml = devise::target_toml(&app.base_url, server.addr());
    let report = fixtures::run_checks(server, &toml, &["RST-HTTP-001"]).await;
    let happy = &report.results[0];
    assert_eq!(happy.verdict, Verdict::Fail, "{happy:#?}");
    let actual = happy.actual.clone().unwrap_or_default();
    assert!(actual.contains("no email within"), "{actual}");
}
