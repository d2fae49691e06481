//! The harness against a Laravel-shaped app (`/reset-password/<token>?email=<addr>` with the email typed again on the set-password form):
//! every RST-HTTP verdict, correct and broken.

use crate::fixtures;

use std::sync::Arc;
use std::time::Instant;

use fixtures::{Flaws, laravel};
use resetkit_harness::fake_smtp::FakeSmtpServer;

async fn run(flaws: Flaws) -> resetkit_harness::scenario::RunReport {
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let app = laravel::start(server.addr(), flaws).await;
    let toml = laravel::target_toml(&app.base_url, server.addr());
    fixtures::run_checks(server, &toml, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_correct_laravel_shaped_app_gets_its_expected_verdicts() {
    let started = Instant::now();
    let report = run(Flaws::default()).await;
    println!(
        "Laravel-shaped, correct: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let wrong = fixtures::mismatches(&report, laravel::CORRECT);
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    println!("{}", fixtures::figures(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broken_laravel_shaped_app_fails_the_checks_for_its_flaws() {
    let started = Instant::now();
    let report = run(laravel::broken()).await;
    println!("Laravel-shaped, broken: {:.1} s", started.elapsed().as_secs_f64());
    let wrong = fixtures::mismatches(&report, laravel::BROKEN);
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    println!("{}", fixtures::figures(&report));
}
