//! The harness against a Django-shaped app (token in the path behind a
//! per-user segment, the token moved into the session and a redirect to a
//! per-user set-password page, an email-only form, `same-origin` referrer
//! policy, no sign-in page, mail sent inside the POST): every RST-HTTP
//! verdict, correct and broken.

use crate::fixtures;

use std::sync::Arc;
use std::time::Instant;

use fixtures::{Flaws, django};
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::http::runner;
use resetkit_harness::http::target_file::HttpTarget;
use resetkit_harness::scenario::Verdict;

async fn run(flaws: Flaws, ids: &[&str]) -> resetkit_harness::scenario::RunReport {
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let app = django::start(server.addr(), flaws).await;
    let toml = django::target_toml(&app.base_url, server.addr());
    fixtures::run_checks(server, &toml, ids).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_correct_django_shaped_app_gets_its_expected_verdicts() {
    let started = Instant::now();
    let report = run(Flaws::default(), &[]).await;
    println!("Django-shaped, correct: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(report.results.len(), 16);
    let wrong = fixtures::mismatches(&report, django::CORRECT);
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    // Item 1/2: the link with a per-user segment is on the target.
    assert!(fixtures::notes(&report, "RST-HTTP-002").contains("Token strength: structured token"));
    // Item 8: the timestamp part is not entropy.
    assert!(
        fixtures::notes(&report, "RST-HTTP-002").contains("barely changes between tokens"),
        "{}",
        fixtures::notes(&report, "RST-HTTP-002")
    );
    // Item 10: without [login], the sign-in part says it was not checked.
    assert!(
        fixtures::notes(&report, "RST-HTTP-001").contains("Not checked: signing in"),
        "{}",
        fixtures::notes(&report, "RST-HTTP-001")
    );
    // Item 4: which case the Referer verdict rests on.
    assert!(fixtures::notes(&report, "RST-HTTP-008").contains("Case: no rendered page keeps the token"));
    // Item 3: only addresses typed.
    assert!(!fixtures::notes(&report, "RST-HTTP-015").contains("unknown username"));
    // Item 5/6: the figures are shown.
    println!("{}", fixtures::figures(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broken_django_shaped_app_fails_host_injection_and_the_race() {
    let started = Instant::now();
    let report = run(django::broken(), &[]).await;
    println!("Django-shaped, broken: {:.1} s", started.elapsed().as_secs_f64());
    let wrong = fixtures::mismatches(&report, django::BROKEN);
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    let race = fixtures::actual(&report, "RST-HTTP-011");
    assert!(race.contains("successes per trial"), "{race}");
    println!("{}", fixtures::figures(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgot_page_without_the_declared_field_fails_once_up_front() {
    let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
    let app = django::start(server.addr(), Flaws::default()).await;
    let toml = django::target_toml(&app.base_url, server.addr())
        .replace("identifier_field = \"email\"", "identifier_field = \"username\"");
    let target = Arc::new(HttpTarget::from_toml_str(&toml, "t.toml").expect("target"));
    let err = runner::preflight(&target).await.expect_err("preflight refuses");
    assert!(err.contains("forgot.page"), "{err}");
    assert!(err.contains("no form with a `username` field"), "{err}");
    assert!(err.contains("[csrfmiddlewaretoken, email]"), "{err}");
    assert_eq!(err.matches("forgot.page").count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_addresses_are_judged_by_the_declared_policy() {
    let combined = Flaws {
        combined_mail: true,
        ..Flaws::default()
    };
    let per_account = "shared_address = \"one_mail_per_account\"";
    let one_mail = "shared_address = \"one_combined_mail\"";
    for (flaws, file_says, expected) in [
        (combined, one_mail, Verdict::Pass),
        (combined, per_account, Verdict::Fail),
        (Flaws::default(), one_mail, Verdict::Fail),
    ] {
        let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
        let app = django::start(server.addr(), flaws).await;
        let toml = django::target_toml(&app.base_url, server.addr()).replace(per_account, file_says);
        let report = fixtures::run_checks(server, &toml, &["RST-HTTP-014"]).await;
        let result = &report.results[0];
        assert_eq!(result.verdict, expected, "{file_says}: {result:#?}");
        if expected == Verdict::Fail {
            let want = if file_says == one_mail {
                "one email to"
            } else {
                "its own email"
            };
            assert!(
                result.expected.as_deref().unwrap_or_default().contains(want),
                "{result:#?}"
            );
        }
    }
}
