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

use crate::fixtures;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use fixtures::{Expected, Flaws, devise_json, recover, restauth};
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::scenario::RunReport;

/// The API shapes.
#[derive(Debug, Clone, Copy)]
enum Shape {
    RestAuth,
    DeviseJson,
    Recover,
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
        Shape::DeviseJson => {
            let app = devise_json::start(smtp, flaws).await;
            let toml = devise_json::target_toml(&app.base_url, smtp);
            Started {
                _servers: vec![app],
                toml,
            }
        }
        Shape::Recover => {
            let app = recover::start(smtp, flaws).await;
            let toml = recover::target_toml(&app.base_url, smtp);
            Started {
                _servers: vec![app],
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
    assert!(
        notes.contains("Variant: forgot: POST /api/auth/password/reset/"),
        "{notes}"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_correct_devise_json_shaped_api_gets_its_expected_verdicts() {
    expect_verdicts(
        "Devise-JSON-shaped, correct",
        Shape::DeviseJson,
        Flaws::default(),
        devise_json::CORRECT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broken_devise_json_shaped_api_fails_the_list_identifier_and_the_race() {
    let report = expect_verdicts(
        "Devise-JSON-shaped, broken",
        Shape::DeviseJson,
        devise_json::broken(),
        devise_json::BROKEN,
    )
    .await;
    let smuggled = fixtures::actual(&report, "RST-HTTP-005");
    assert!(smuggled.contains("RCPT TO"), "{smuggled}");
    let expected = report.results[4].expected.clone().unwrap_or_default();
    assert!(expected.contains("smuggled into `user.email`"), "{expected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_correct_recover_style_api_gets_its_expected_verdicts() {
    let report = expect_verdicts(
        "/recover-style, correct",
        Shape::Recover,
        Flaws::default(),
        recover::CORRECT,
    )
    .await;
    // The checks of the link's page say why they skip.
    let skipped = &report.results[7].verdict;
    assert!(format!("{skipped:?}").contains("front_end_url"), "{skipped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broken_recover_style_api_fails_identical_answers() {
    let report = expect_verdicts(
        "/recover-style, broken",
        Shape::Recover,
        recover::broken(),
        recover::BROKEN,
    )
    .await;
    let answers = fixtures::actual(&report, "RST-HTTP-015");
    assert!(answers.contains("throttles only existing accounts"), "{answers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_api_drafts_a_target_from_one_example_request() {
    use resetkit_harness::http::init::api::{ApiInitOptions, draft_api};
    use resetkit_harness::http::target_file::HttpTarget;
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let app = devise_json::start(server.addr(), Flaws::default()).await;
    let options = ApiInitOptions {
        url: format!("{}/users/password.json", app.base_url),
        body: Some(r#"{"user": {"email": "alice@example.test"}}"#.into()),
        openapi: None,
        probe: true,
    };
    let draft = draft_api(&options).await.expect("a draft");
    println!("{draft}");
    assert!(
        draft.contains(r#"body = { user = { email = "{identifier}" } }"#),
        "{draft}"
    );
    assert!(
        draft.contains(r#"accepted = { status = 201, text = "{}" }"#),
        "{draft}"
    );
    assert!(draft.contains("FILL IN"), "{draft}");
    let target = HttpTarget::from_toml_str(&draft, "draft.toml").expect("the draft loads");
    assert_eq!(
        target.forgot_api().map(|c| c.url),
        Some("/users/password.json".to_owned())
    );
    // No mail went out: the probe used an address no account has.
    assert!(server.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_api_reads_the_openapi_document_the_app_serves() {
    use resetkit_harness::http::init::api::{ApiInitOptions, draft_api};
    use resetkit_harness::http::target_file::HttpTarget;
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let started = restauth::start(server.addr(), Flaws::default()).await;
    let options = ApiInitOptions {
        url: format!("{}/api/auth/password/reset/", started.api.base_url),
        body: None,
        openapi: None,
        probe: true,
    };
    let draft = draft_api(&options).await.expect("a draft");
    println!("{draft}");
    assert!(draft.contains("read the OpenAPI document at"), "{draft}");
    assert!(draft.contains(r#"body = { email = "{identifier}" }"#), "{draft}");
    assert!(
        draft.contains(r#"url = "/api/auth/password/reset/confirm/""#),
        "{draft}"
    );
    assert!(
        draft.contains(r#"new_password1 = "{password}""#) && draft.contains(r#"uid = "{uid}""#),
        "{draft}"
    );
    assert!(draft.contains(r#"url = "/api/auth/login/""#), "{draft}");
    // The probe met the CSRF check, and the draft says so.
    assert!(draft.contains("wants a CSRF token"), "{draft}");
    HttpTarget::from_toml_str(&draft, "draft.toml").expect("the draft loads");
}

/// A variant: name, shape, flaws, expected verdicts.
type Variant = (&'static str, Shape, Flaws, &'static [(&'static str, Expected)]);

/// Every variant.
fn variants() -> Vec<Variant> {
    let all = vec![
        (
            "restauth, correct",
            Shape::RestAuth,
            Flaws::default(),
            restauth::CORRECT,
        ),
        (
            "restauth, broken",
            Shape::RestAuth,
            restauth::broken(),
            restauth::BROKEN,
        ),
        (
            "devise_json, correct",
            Shape::DeviseJson,
            Flaws::default(),
            devise_json::CORRECT,
        ),
        (
            "devise_json, broken",
            Shape::DeviseJson,
            devise_json::broken(),
            devise_json::BROKEN,
        ),
        (
            "recover, correct",
            Shape::Recover,
            Flaws::default(),
            recover::CORRECT,
        ),
        (
            "recover, broken",
            Shape::Recover,
            recover::broken(),
            recover::BROKEN,
        ),
    ];
    // API_FIXTURES=restauth,recover narrows the run.
    let only = std::env::var("API_FIXTURES").unwrap_or_default().to_lowercase();
    all.into_iter()
        .filter(|(name, ..)| only.is_empty() || only.split(',').any(|o| name.starts_with(o.trim())))
        .collect()
}

const RUNS: usize = 10;

async fn repeat(ids: &[&str]) {
    let all_started = Instant::now();
    let mut failures = Vec::new();
    for (name, shape, flaws, table) in variants() {
        let started = Instant::now();
        for run_no in 1..=RUNS {
            let report = run(shape, flaws, ids).await;
            let wrong = fixtures::mismatches(&report, table);
            let figures: Vec<String> = fixtures::figures(&report)
                .lines()
                .filter(|l| l.contains("ratio of medians") || l.contains("Successes per trial"))
                .map(|l| l.trim().chars().take(160).collect())
                .collect();
            let verdicts: Vec<String> = report
                .results
                .iter()
                .map(|r| format!("{} {}", &r.info.id[9..], r.verdict.as_str()))
                .collect();
            println!(
                "{name} run {run_no}: {} wrong; {}; {}",
                wrong.len(),
                verdicts.join(", "),
                figures.join(" | ")
            );
            failures.extend(wrong.into_iter().map(|w| format!("{name} run {run_no}: {w}")));
        }
        println!("{name}: {RUNS} runs in {:.1} s", started.elapsed().as_secs_f64());
    }
    println!("all: {:.1} s", all_started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10 runs of the race and timing checks on every API fixture; run by hand"]
async fn api_race_and_timing_verdicts_are_the_same_in_10_runs() {
    repeat(&["RST-HTTP-011", "RST-HTTP-015", "RST-HTTP-016"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10 full runs of every API fixture; run by hand"]
async fn api_every_verdict_is_the_same_in_10_runs() {
    repeat(&[]).await;
}

/// A CSRF token an endpoint answers in JSON (`csrf.fetch` + `csrf.pointer`),
/// sent back in a header: the API only takes calls that carry it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csrf_token_fetched_from_an_endpoint_is_sent_in_its_header() {
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    use resetkit_harness::http::api::IdentifierShape;
    use resetkit_harness::http::driver::Driver;
    use resetkit_harness::http::exchange::ExchangeLog;
    use resetkit_harness::http::target_file::{FormStep, HttpTarget};

    const TOKEN: &str = "csrf-from-the-endpoint";
    let router = Router::new()
        .route(
            "/api/auth/csrf",
            get(|| async { fixtures::json(StatusCode::OK, serde_json::json!({ "csrfToken": TOKEN })) }),
        )
        .route(
            "/api/forgot",
            post(|headers: HeaderMap| async move {
                if headers.get("x-csrf-token").and_then(|v| v.to_str().ok()) == Some(TOKEN) {
                    fixtures::json(StatusCode::OK, serde_json::json!({}))
                } else {
                    fixtures::json(StatusCode::FORBIDDEN, serde_json::json!({ "error": "csrf" }))
                }
            }),
        );
    let (listener, base_url) = fixtures::bind().await;
    let _app = fixtures::serve(listener, base_url.clone(), router);
    let toml = format!(
        r#"
format = 2
base_url = "{base_url}"
[csrf]
fetch = "/api/auth/csrf"
pointer = "/csrfToken"
header = "X-CSRF-Token"
[forgot]
url = "/api/forgot"
body = {{ email = "{{identifier}}" }}
accepted = {{ status = 200, text = "{{}}" }}
[set_password]
url = "/api/reset"
body = {{ token = "{{token}}", password = "{{password}}" }}
success = {{ status = 200 }}
"#
    );
    let target = Arc::new(HttpTarget::from_toml_str(&toml, "t.toml").expect("target"));
    let call = target.forgot_api().expect("an API step");
    let driver = Driver::new(target.clone(), ExchangeLog::default());
    let user = driver.user("probe").expect("user");
    let vars = [("identifier".to_owned(), "a@example.test".to_owned())];
    let visit = user
        .call(&call, FormStep::Forgot, &vars, IdentifierShape::Single, None, &[])
        .await
        .expect("the call");
    target
        .forgot
        .accepted
        .check(&visit)
        .expect("accepted with the fetched token");
    assert!(
        visit
            .first()
            .request_headers
            .iter()
            .any(|(n, v)| n == "X-CSRF-Token" && v == TOKEN)
    );
    // A pointer the answer lacks is a clear error naming the key.
    let wrong =
        Arc::new(HttpTarget::from_toml_str(&toml.replace("/csrfToken", "/token"), "t.toml").expect("target"));
    let driver = Driver::new(wrong.clone(), ExchangeLog::default());
    let err = driver
        .user("probe")
        .expect("user")
        .call(&call, FormStep::Forgot, &vars, IdentifierShape::Single, None, &[])
        .await
        .expect_err("no token there");
    assert!(err.to_string().contains("csrf.pointer"), "{err}");
}
