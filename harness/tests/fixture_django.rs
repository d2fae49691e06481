//! The harness against a Django-shaped app (token in the path behind a
//! per-user segment, the token moved into the session and a redirect to a
//! per-user set-password page, an email-only form, `same-origin` referrer
//! policy, no sign-in page, mail sent inside the POST): every RST-HTTP
//! verdict, correct and broken.

mod fixtures;

use std::sync::Arc;
use std::time::Instant;

use fixtures::Expected::{Fail, Pass, Warn};
use fixtures::{Expected, Flaws, django};
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::http::runner;
use resetkit_harness::http::target_file::HttpTarget;

/// What the harness must say about the correct Django-shaped app.
pub const CORRECT: &[(&str, Expected)] = &[
    ("RST-HTTP-001", Pass), // sign-in not checked (no [login]): said in the notes
    ("RST-HTTP-002", Pass), // token `<base36 time>-<32 hex>`: 128 bits, the time part counts 0
    ("RST-HTTP-003", Pass),
    ("RST-HTTP-004", Pass),
    ("RST-HTTP-005", Warn), // a repeated `email` is taken as its last value (QueryDict.get), no mail to it
    ("RST-HTTP-006", Pass),
    ("RST-HTTP-007", Pass),
    ("RST-HTTP-008", Pass), // the link redirects first; same-origin policy
    ("RST-HTTP-009", Pass),
    ("RST-HTTP-010", Pass),
    ("RST-HTTP-011", Pass),
    ("RST-HTTP-012", Warn), // Django tokens live until the password changes (SHOULD)
    ("RST-HTTP-013", Pass),
    ("RST-HTTP-014", Pass),
    ("RST-HTTP-015", Pass), // only email addresses are typed: the form takes nothing else
    ("RST-HTTP-016", Pass),
];

/// The broken variant: the link is built from the Host header, and the
/// set-password step checks then writes (two submits can win).
pub const BROKEN: &[(&str, Expected)] = &[
    ("RST-HTTP-001", Pass),
    ("RST-HTTP-002", Pass),
    ("RST-HTTP-003", Fail),
    ("RST-HTTP-004", Fail),
    ("RST-HTTP-005", Warn),
    ("RST-HTTP-006", Pass),
    ("RST-HTTP-007", Pass),
    ("RST-HTTP-008", Pass),
    ("RST-HTTP-009", Pass),
    ("RST-HTTP-010", Pass),
    ("RST-HTTP-011", Fail),
    ("RST-HTTP-012", Warn),
    ("RST-HTTP-013", Pass),
    ("RST-HTTP-014", Pass),
    ("RST-HTTP-015", Pass),
    ("RST-HTTP-016", Pass),
];

/// The broken variant's flaws.
pub fn broken() -> Flaws {
    Flaws {
        link_from_host: true,
        race: true,
        ..Flaws::default()
    }
}

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
    let wrong = fixtures::mismatches(&report, CORRECT);
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
    let report = run(broken(), &[]).await;
    println!("Django-shaped, broken: {:.1} s", started.elapsed().as_secs_f64());
    let wrong = fixtures::mismatches(&report, BROKEN);
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
