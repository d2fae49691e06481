//! The harness against a ASP.NET Identity-shaped app (`?code=…&email=…` with a required, empty email field on the reset page):
//! every RST-HTTP verdict, correct and broken.

use crate::fixtures;

use std::sync::Arc;
use std::time::Instant;

use fixtures::{Flaws, aspnet};
use resetkit_harness::fake_smtp::FakeSmtpServer;

async fn run(flaws: Flaws) -> resetkit_harness::scenario::RunReport {
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let app = aspnet::start(server.addr(), flaws).await;
    let toml = aspnet::target_toml(&app.base_url, server.addr());
    fixtures::run_checks(server, &toml, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_correct_aspnet_shaped_app_gets_its_expected_verdicts() {
    let started = Instant::now();
    let report = run(Flaws::default()).await;
    println!(
        "ASP.NET Identity-shaped, correct: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let wrong = fixtures::mismatches(&report, aspnet::CORRECT);
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    println!("{}", fixtures::figures(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broken_aspnet_shaped_app_fails_the_checks_for_its_flaws() {
    let started = Instant::now();
    let report = run(aspnet::broken()).await;
    println!(
        "ASP.NET Identity-shaped, broken: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let wrong = fixtures::mismatches(&report, aspnet::BROKEN);
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    println!("{}", fixtures::figures(&report));
}
