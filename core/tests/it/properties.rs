//! Properties: `request`, `inspect`, `complete` and `deny` never panic on
//! arbitrary input; `request` answers `RequestAccepted` or a validation
//! error with a message; links in every email are built from configuration
//! only; no made-up or altered token is ever accepted.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{DENY_PREFIX, Fixture, GOOD_PASSWORD, RESET_PREFIX, SECURITY_LINK, secret};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use resetkit::error::ValidationError;
use resetkit::identifier::{MAX_INPUT_BYTES, canonicalize};
use resetkit::prelude::*;
use resetkit::token::TOKEN_CHARS;
use tokio::runtime::Runtime;

fn config() -> ProptestConfig {
    ProptestConfig {
        source_file: Some(file!()),
        ..ProptestConfig::with_cases(1000)
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Accounts and the identifiers that reach them (identifier, stored address).
const KNOWN: &[(&str, &str)] = &[
    ("alice@example.com", "alice@example.com"),
    ("alice", "alice@example.com"),
    ("zoë", "Zoe@Example.org"),
    ("zoe@example.org", "Zoe@Example.org"),
    ("family@example.net", "family@example.net"),
    ("Family@Example.net", "Family@Example.net"),
];

fn fixture() -> Fixture {
    Fixture::with_accounts([
        Account::new("a1", "alice", "alice@example.com"),
        Account::new("z1", "zoë", "Zoe@Example.org"),
        Account::new("f1", "fred", "family@example.net"),
        Account::new("f2", "frida", "Family@Example.net"),
        Account::new("d1", "dora", "dora@example.com").with_disabled(true),
    ])
}

/// Fullwidth forms of printable ASCII (NFKC folds them back).
fn fullwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(u32::from(c) - 0x21 + 0xFF01).unwrap_or(c),
            other => other,
        })
        .collect()
}

/// A known identifier in disguise, with the stored address mail must go to.
fn known_variant() -> impl Strategy<Value = (String, Option<String>)> {
    (
        0..KNOWN.len(),
        any::<bool>(),
        any::<bool>(),
        "[ \u{3000}\u{a0}]{0,3}",
    )
        .prop_map(|(i, upper, wide, pad)| {
            let (id, stored) = KNOWN[i];
            let mut text = if upper { id.to_uppercase() } else { id.to_owned() };
            if wide {
                text = fullwidth(&text);
            }
            // Shared addresses reach several accounts; any stored form counts.
            (format!("{pad}{text}{pad}"), Some(stored.to_owned()))
        })
}

fn with_control() -> impl Strategy<Value = String> {
    ("\\PC{0,20}", prop::char::range('\u{0}', '\u{1f}'), "\\PC{0,20}")
        .prop_map(|(a, c, b)| format!("{a}{c}{b}"))
}

fn identifier_input() -> impl Strategy<Value = (String, Option<String>)> {
    prop_oneof![
        3 => any::<String>().prop_map(|s| (s, None)),
        2 => "\\PC{0,60}".prop_map(|s| (s, None)),
        3 => known_variant(),
        2 => "[a-z0-9._+-]{1,24}@[a-z0-9-]{1,12}\\.(com|org|example)".prop_map(|s| (s, None)),
        1 => "[a-z0-9]{1,8}@[a-z]{1,8}\\.com[,;] ?[a-z0-9]{1,8}@[a-z]{1,8}\\.com".prop_map(|s| (s, None)),
        1 => with_control().prop_map(|s| (s, None)),
        1 => prop::collection::vec(any::<char>(), 200..3000)
            .prop_map(|v| (v.into_iter().collect::<String>(), None)),
        1 => (1usize..40_000).prop_map(|n| ("a".repeat(n), None)),
    ]
}

/// Panics with proptest's report (minimal failing input) on failure.
fn check<T: std::fmt::Debug>(result: Result<(), proptest::test_runner::TestError<T>>) {
    if let Err(error) = result {
        panic!("{error}");
    }
}

/// The fixed parts of every link; input that is part of them proves nothing.
const SKELETON: &str = "https://app.example.com/reset/deny?token= https://app.example.com/account/security";

#[test]
fn request_never_panics_and_links_carry_only_configuration_and_a_token() {
    let rt = runtime();
    let fx = fixture();
    let service = fx
        .builder()
        .rate_limits(RateLimits::unlimited())
        .build()
        .expect("valid");
    let stored: Vec<String> = [
        "alice@example.com",
        "Zoe@Example.org",
        "family@example.net",
        "Family@Example.net",
    ]
    .map(str::to_owned)
    .to_vec();
    let mailed = AtomicUsize::new(0);
    let mut runner = TestRunner::new(config());
    check(runner.run(&identifier_input(), |(input, expected_to)| {
        fx.mailer.clear();
        let outcome = rt.block_on(service.request(&input, &RequestContext::default()));
        match &outcome {
            Ok(accepted) => prop_assert_eq!(*accepted, RequestAccepted),
            Err(RequestError::Invalid(error)) => prop_assert!(!error.to_string().is_empty()),
            Err(other) => return Err(TestCaseError::fail(format!("unexpected error {other:?}"))),
        }
        if input.len() > MAX_INPUT_BYTES {
            prop_assert!(
                matches!(
                    outcome,
                    Err(RequestError::Invalid(ValidationError::TooLong { .. }))
                ),
                "{:?}",
                outcome
            );
        } else if input.chars().any(char::is_control) {
            prop_assert!(
                matches!(
                    outcome,
                    Err(RequestError::Invalid(ValidationError::ControlCharacter { .. }))
                ),
                "{:?}",
                outcome
            );
        }

        let sent = fx.mailer.sent();
        if let Some(to) = &expected_to {
            prop_assert!(
                outcome.is_ok(),
                "a known identifier is well formed: {:?}",
                outcome
            );
            prop_assert!(
                sent.iter().any(|m| m.to.address() == to),
                "no email to the stored address {} for {:?}",
                to,
                input
            );
        }
        if !sent.is_empty() {
            mailed.fetch_add(1, Ordering::Relaxed);
        }
        let probes: Vec<String> = [input.trim().to_owned(), canonicalize(&input)]
            .into_iter()
            .filter(|p| p.chars().count() >= 8 && !SKELETON.contains(p.as_str()))
            .collect();
        for mail in &sent {
            prop_assert!(
                stored.iter().any(|s| s == mail.to.address()),
                "mail to {}",
                mail.to.address()
            );
            let links = common::all_links(mail);
            prop_assert!(!links.is_empty());
            for link in &links {
                let token = link
                    .strip_prefix(RESET_PREFIX)
                    .or_else(|| link.strip_prefix(DENY_PREFIX));
                match token {
                    Some(token) => {
                        prop_assert_eq!(token.len(), TOKEN_CHARS, "{}", link);
                        prop_assert!(
                            token
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                            "{}",
                            link
                        );
                    }
                    None => prop_assert_eq!(link.as_str(), SECURITY_LINK),
                }
                for probe in &probes {
                    prop_assert!(
                        !link.contains(probe.as_str()),
                        "input {:?} reached link {}",
                        probe,
                        link
                    );
                }
            }
            for token in common::reset_tokens(mail) {
                prop_assert!(!mail.subject.contains(&token));
            }
        }
        Ok(())
    }));
    assert!(
        mailed.load(Ordering::Relaxed) >= 100,
        "too few cases reached an account: {}",
        mailed.load(Ordering::Relaxed)
    );
}

fn mutate(token: &str, at: usize, with: char) -> String {
    token
        .chars()
        .enumerate()
        .map(|(i, c)| if i == at { with } else { c })
        .collect()
}

fn token_input(real: String) -> impl Strategy<Value = String> {
    let r1 = real.clone();
    let r2 = real.clone();
    let r3 = real;
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{43}",
        "[A-Za-z0-9_=+/%-]{0,64}",
        (0..TOKEN_CHARS, any::<char>()).prop_map(move |(at, c)| mutate(&r1, at, c)),
        (0..TOKEN_CHARS, "[A-Za-z0-9_-]")
            .prop_map(move |(at, c)| { mutate(&r2, at, c.chars().next().unwrap_or('A')) }),
        (0..TOKEN_CHARS, "\\PC{0,3}", "\\PC{0,3}")
            .prop_map(move |(cut, pre, post)| format!("{pre}{}{post}", &r3[..cut])),
    ]
}

#[test]
fn made_up_and_altered_tokens_never_work_and_never_panic() {
    let rt = runtime();
    let fx = fixture();
    let service = fx.service();
    let real = rt.block_on(fx.request_token(&service, "alice"));
    let pw = secret(GOOD_PASSWORD);
    let mut runner = TestRunner::new(config());
    check(runner.run(&token_input(real.clone()), |candidate| {
        prop_assume!(candidate != real);
        rt.block_on(async {
            let inspected = service.inspect(&candidate).await;
            prop_assert!(
                matches!(inspected, Err(LinkError::InvalidLink)),
                "{:?}",
                inspected
            );
            let completed = service.complete(&candidate, pw.clone(), pw.clone()).await;
            prop_assert!(
                matches!(completed, Err(CompleteError::InvalidLink)),
                "{:?}",
                completed
            );
            let denied = service.deny(&candidate).await;
            prop_assert!(matches!(denied, Err(LinkError::InvalidLink)), "{:?}", denied);
            // The real link is never burnt by attempts with others.
            prop_assert!(service.inspect(&real).await.is_ok());
            Ok(())
        })
    }));
    rt.block_on(service.complete(&real, pw.clone(), pw.clone()))
        .expect("the real link still works");
    assert_eq!(fx.count("reset_completed"), 1);
}
