//! The fixture apps, run again and again: every verdict of every fixture
//! (correct and broken) must be the same in each of 10 runs, the
//! statistical checks (race, timing) included. Too slow for every test
//! run (several minutes on two cores), so ignored by default:
//!
//! ```text
//! cargo test -p resetkit-harness --test fixture_repeat -- --ignored --nocapture --test-threads 1
//! FIXTURES=django,devise cargo test ... (only those shapes)
//! ```

use crate::fixtures;

use std::sync::Arc;
use std::time::Instant;

use fixtures::{Expected, Flaws, aspnet, devise, django, laravel};
use resetkit_harness::fake_smtp::FakeSmtpServer;

const RUNS: usize = 10;

#[derive(Clone, Copy)]
enum Shape {
    Django,
    Devise,
    Laravel,
    AspNet,
}

async fn run_once(shape: Shape, flaws: Flaws, ids: &[&str]) -> resetkit_harness::scenario::RunReport {
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let (app, toml) = match shape {
        Shape::Django => {
            let app = django::start(server.addr(), flaws).await;
            let toml = django::target_toml(&app.base_url, server.addr());
            (app, toml)
        }
        Shape::Devise => {
            let app = devise::start(server.addr(), flaws).await;
            let toml = devise::target_toml(&app.base_url, server.addr());
            (app, toml)
        }
        Shape::Laravel => {
            let app = laravel::start(server.addr(), flaws).await;
            let toml = laravel::target_toml(&app.base_url, server.addr());
            (app, toml)
        }
        Shape::AspNet => {
            let app = aspnet::start(server.addr(), flaws).await;
            let toml = aspnet::target_toml(&app.base_url, server.addr());
            (app, toml)
        }
    };
    let report = fixtures::run_checks(server, &toml, ids).await;
    drop(app);
    report
}

/// A fixture variant: its name, shape, flaws and expected verdicts.
type Variant = (&'static str, Shape, Flaws, &'static [(&'static str, Expected)]);

fn variants() -> Vec<Variant> {
    let table: [Variant; 8] = [
        (
            "Django-shaped, correct",
            Shape::Django,
            Flaws::default(),
            django::CORRECT,
        ),
        (
            "Django-shaped, broken",
            Shape::Django,
            django::broken(),
            django::BROKEN,
        ),
        (
            "Devise-shaped, correct",
            Shape::Devise,
            Flaws::default(),
            devise::CORRECT,
        ),
        (
            "Devise-shaped, broken",
            Shape::Devise,
            devise::broken(),
            devise::BROKEN,
        ),
        (
            "Laravel-shaped, correct",
            Shape::Laravel,
            Flaws::default(),
            laravel::CORRECT,
        ),
        (
            "Laravel-shaped, broken",
            Shape::Laravel,
            laravel::broken(),
            laravel::BROKEN,
        ),
        (
            "ASP.NET-Identity-shaped, correct",
            Shape::AspNet,
            Flaws::default(),
            aspnet::CORRECT,
        ),
        (
            "ASP.NET-Identity-shaped, broken",
            Shape::AspNet,
            aspnet::broken(),
            aspnet::BROKEN,
        ),
    ];
    // FIXTURES=django,devise narrows the run.
    let only = std::env::var("FIXTURES").unwrap_or_default().to_lowercase();
    table
        .into_iter()
        .filter(|(name, ..)| {
            only.is_empty() || only.split(',').any(|o| name.to_lowercase().starts_with(o.trim()))
        })
        .collect()
}

async fn repeat(ids: &[&str]) {
    let all_started = Instant::now();
    let mut failures = Vec::new();
    for (name, shape, flaws, table) in variants() {
        let started = Instant::now();
        for run in 1..=RUNS {
            let report = run_once(shape, flaws, ids).await;
            let wrong = fixtures::mismatches(&report, table);
            let figures: Vec<String> = fixtures::figures(&report)
                .lines()
                .filter(|l| l.contains("ratio of medians") || l.contains("Successes per trial"))
                .map(|l| l.trim().chars().take(160).collect())
                .collect();
            println!("{name} run {run}: {} wrong; {}", wrong.len(), figures.join(" | "));
            failures.extend(wrong.into_iter().map(|w| format!("{name} run {run}: {w}")));
        }
        println!("{name}: {RUNS} runs in {:.1} s", started.elapsed().as_secs_f64());
    }
    println!("all: {:.1} s", all_started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10 runs of the race and timing checks on every fixture; run by hand"]
async fn race_and_timing_verdicts_are_the_same_in_10_runs() {
    repeat(&["RST-HTTP-011", "RST-HTTP-016"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10 full runs of every fixture; run by hand"]
async fn every_verdict_is_the_same_in_10_runs() {
    repeat(&[]).await;
}
