//! The harness against JSON-API reset flows (single-page apps and mobile
//! backends): a dj-rest-auth-shaped API whose link opens a separate front
//! end, a Devise-JSON-shaped API with the token in the link's query, and a
//! `/recover`-style API that answers `200 {}` for every address. Each in a
//! correct and a broken variant, with every RST-HTTP verdict written down
//! next to the fixture (`fixtures/restauth.rs`, `fixtures/devise_json.rs`,
//! `fixtures/recover.rs`).
//!
//! The statistical checks (race, timing) are run 10 times on each variant
//! by the ignored tests at the end:
//!
//! ```text
//! cargo test -p resetkit-harness --test fixture_api -- --ignored --nocapture --test-threads 1
//! API_FIXTURES=restauth,recover cargo test ... (only those shapes)
//! ```

mod fixtures;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use fixtures::{Expected, Flaws, restauth};
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::scenario::RunReport;

/// The API shapes.
#[derive(Debug, Clone, Copy)]
enum Shape {
    RestAuth,
}

/// A running fixture (its servers stop when dropped) and its target file.
struct Started {
    _servers: Vec<fixtures::Running>,
    toml: String,
}

async fn start(shape: Shape, smtp: SocketAddr, flaws: Flaws) -> Started {
    match shape {
        Shape::RestAuth => {
            let started = restauth::start(smtp, flaws).await;
            let toml = restauth::target_toml(&started, smtp);
            Started {
                _servers: vec![started.api, started.front_end],
                toml,
            }
        }
    }
}

async fn run(shape: Shape, flaws: Flaws, ids: &[&str]) -> RunReport {
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let started = start(shape, server.addr(), flaws).await;
    fixtures::run_checks(server, &started.toml, ids).await
}

async fn expect_verdicts(name: &str, shape: Shape, flaws: Flaws, table: &[(&str, Expected)]) -> RunReport {
    let started = Instant::now();
    let report = run(shape, flaws, &[]).await;
    println!("{name}: {:.1} s", started.elapsed().as_secs_f64());
    println!("{}", fixtures::figures(&report));
    assert_eq!(report.results.len(), 16);
    let wrong = fixtures::mismatches(&report, table);
    assert!(wrong.is_empty(), "{name}:\n{}", wrong.join("\n\n"));
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_correct_dj_rest_auth_shaped_api_gets_its_expected_verdicts() {
    let report = expect_verdicts(
        "dj-rest-auth-shaped, correct",
        Shape::RestAuth,
        Flaws::default(),
        restauth::CORRECT,
    )
    .await;
    let notes = fixtures::notes(&report, "RST-HTTP-001");
    assert!(notes.contains("Variant: forgot: POST /api/auth/password/reset/"), "{notes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broken_dj_rest_auth_shaped_api_fails_host_injection_enumeration_and_referrer() {
    let report = expect_verdicts(
        "dj-rest-auth-shaped, broken",
        Shape::RestAuth,
        restauth::broken(),
        restauth::BROKEN,
    )
    .await;
    let answers = fixtures::actual(&report, "RST-HTTP-015");
    assert!(answers.contains("not assigned to any user account"), "{answers}");
}
