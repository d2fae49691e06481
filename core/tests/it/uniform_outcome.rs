//! Acceptance: `request` gives one public outcome for known, unknown,
//! disabled, unconfirmed, shared-address and rate-limited identifiers, while
//! the event log records the distinct internal reason for each.

use crate::common;

use std::time::Duration;

use common::{Fixture, NOREPLY};
use resetkit::error::ValidationError;
use resetkit::event::{EventKind, IgnoreReason, RateScope};
use resetkit::fingerprint::{FingerprintKey, fingerprint};
use resetkit::policy::Limit;
use resetkit::prelude::*;

fn accounts() -> Vec<Account> {
    vec![
        Account::new("known", "alice", "alice@example.com"),
        Account::new("off", "dora", "dora@example.com").with_disabled(true),
        Account::new("unconfirmed", "uma", "uma@example.com").with_email_confirmed(false),
        Account::new("shared-1", "sam", "shared@example.com"),
        Account::new("shared-2", "sasha", "Shared@Example.com"),
        Account::new("busy", "bart", "bart@example.com"),
        Account::new("no-mail", "nomad", "x@example.com").with_email(None),
    ]
}

/// Asserts every outcome is the same `RequestAccepted` with the same message.
fn assert_uniform(outcomes: &[(&str, Result<RequestAccepted, RequestError>)]) {
    for (case, outcome) in outcomes {
        match outcome {
            Ok(accepted) => {
                assert_eq!(*accepted, RequestAccepted, "{case}");
                assert_eq!(accepted.message(), RequestAccepted::MESSAGE, "{case}");
            }
            Err(error) => panic!("{case}: expected RequestAccepted, got {error:?}"),
        }
    }
}

#[tokio::test]
async fn every_well_formed_request_gets_the_same_outcome_and_a_distinct_internal_reason() {
    let fx = Fixture::with_accounts(accounts());
    let key = || FingerprintKey::new(b"uniform-outcome test key".to_vec()).expect("long enough");
    let service = fx
        .builder()
        .require_confirmed_email(true)
        .fingerprint_key(key())
        .build()
        .expect("valid");
    let ctx = RequestContext::default();

    // Use up the per-account allowance (3 per 15 minutes) of `busy`.
    for _ in 0..3 {
        service.request("bart@example.com", &ctx).await.expect("accepted");
    }
    fx.mailer.clear();

    let mut outcomes = Vec::new();
    let mut reasons = Vec::new();
    for (case, identifier) in [
        ("known", "Alice@Example.com"),
        ("unknown", "nobody@example.com"),
        ("disabled", "dora@example.com"),
        ("unconfirmed", "uma@example.com"),
        ("shared address", "shared@example.com"),
        ("rate limited", "bart@example.com"),
        ("unknown username", "nobody"),
        ("account without email", "nomad"),
    ] {
        let mark = fx.events.all().len();
        outcomes.push((case, service.request(identifier, &ctx).await));
        let new: Vec<EventKind> = fx.events_since(mark).into_iter().map(|e| e.kind).collect();
        reasons.push((case, new));
    }
    assert_uniform(&outcomes);

    let find = |case: &str| -> Vec<EventKind> {
        reasons
            .iter()
            .find(|(c, _)| *c == case)
            .map(|(_, k)| k.clone())
            .expect("case recorded")
    };
    let ignored = |kinds: &[EventKind]| -> Vec<IgnoreReason> {
        kinds
            .iter()
            .filter_map(|k| match k {
                EventKind::RequestIgnored { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    };
    let names = |kinds: &[EventKind]| kinds.iter().map(EventKind::name).collect::<Vec<_>>();

    let known = find("known");
    assert!(names(&known).contains(&"token_issued"), "{known:?}");
    assert!(names(&known).contains(&"email_sent"), "{known:?}");
    assert_eq!(ignored(&find("unknown")), vec![IgnoreReason::UnknownIdentifier]);
    assert!(
        find("unknown").iter().any(|k| matches!(
            k,
            EventKind::RequestIgnored { fingerprint: f, .. } if *f == fingerprint(&key(), "Nobody@example.com")
        )),
        "the unknown identifier is recorded as its keyed fingerprint"
    );
    assert_eq!(ignored(&find("disabled")), vec![IgnoreReason::AccountDisabled]);
    assert_eq!(
        ignored(&find("unconfirmed")),
        vec![IgnoreReason::EmailUnconfirmed]
    );
    assert_eq!(
        ignored(&find("unknown username")),
        vec![IgnoreReason::UnknownIdentifier]
    );
    assert_eq!(
        ignored(&find("account without email")),
        vec![IgnoreReason::NoEmailAddress]
    );
    let limited = find("rate limited");
    assert!(
        limited.iter().any(|k| matches!(
            k,
            EventKind::RateLimited {
                scope: RateScope::Account,
                ..
            }
        )),
        "{limited:?}"
    );
    assert!(!names(&limited).contains(&"token_issued"), "{limited:?}");
    let shared = find("shared address");
    assert_eq!(
        names(&shared).iter().filter(|n| **n == "token_issued").count(),
        2,
        "{shared:?}"
    );
    for case in [
        "unknown",
        "disabled",
        "unconfirmed",
        "unknown username",
        "account without email",
    ] {
        assert!(!names(&find(case)).contains(&"token_issued"), "{case}: no token");
    }

    // Mail went only to the known account and to each sharing account, at
    // the stored address (not the typed one).
    let recipients: Vec<String> = fx
        .mailer
        .sent()
        .iter()
        .map(|m| m.to.address().to_owned())
        .collect();
    assert_eq!(
        recipients,
        vec!["alice@example.com", "shared@example.com", "Shared@Example.com"]
    );
    assert!(fx.mailer.sent().iter().all(|m| m.from.address() == NOREPLY));
}

#[tokio::test]
async fn client_rate_limit_is_silent_and_recorded() {
    let fx = Fixture::with_accounts(accounts());
    let limits = RateLimits {
        per_account: None,
        per_client: Some(Limit {
            max: 2,
            window: Duration::from_secs(60),
        }),
    };
    let service = fx.builder().rate_limits(limits).build().expect("valid");
    let ctx = RequestContext::from_client("203.0.113.7");
    let mut outcomes = Vec::new();
    for identifier in [
        "alice@example.com",
        "nobody@example.com",
        "alice@example.com",
        "nobody@example.com",
    ] {
        outcomes.push((identifier, service.request(identifier, &ctx).await));
    }
    assert_uniform(&outcomes);
    let limited: Vec<EventKind> = fx
        .kinds()
        .into_iter()
        .filter(|k| matches!(k, EventKind::RateLimited { .. }))
        .collect();
    // Two refusals in one window: the first is recorded, the second counted.
    assert_eq!(
        limited,
        vec![EventKind::RateLimited {
            scope: RateScope::Client,
            client: Some("203.0.113.7".into()),
            count: 1,
        }]
    );
    assert_eq!(
        fx.mailer.sent().len(),
        1,
        "only the first request reached an account"
    );

    // The window slides: a minute later the client may ask again.
    fx.clock.advance(Duration::from_secs(61));
    service
        .request("alice@example.com", &ctx)
        .await
        .expect("accepted");
    assert_eq!(fx.mailer.sent().len(), 2);
}

#[tokio::test]
async fn unconfirmed_email_is_served_unless_confirmation_is_required() {
    let fx = Fixture::with_accounts(accounts());
    let lenient = fx.service();
    lenient
        .request("uma@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    assert_eq!(fx.mailer.sent_to("uma@example.com").len(), 1);

    let fx = Fixture::with_accounts(accounts());
    let strict = fx.builder().require_confirmed_email(true).build().expect("valid");
    let outcome = strict
        .request("uma@example.com", &RequestContext::default())
        .await;
    assert_uniform(&[("unconfirmed", outcome)]);
    assert!(fx.mailer.sent().is_empty());
    assert_eq!(fx.ignore_reasons(), vec![IgnoreReason::EmailUnconfirmed]);
}

#[tokio::test]
async fn email_only_mode_gives_one_outcome_and_refuses_usernames_regardless_of_existence() {
    let fx = Fixture::with_accounts(accounts());
    let service = fx
        .builder()
        .identifier_mode(IdentifierMode::EmailOnly)
        .build()
        .expect("valid");
    let ctx = RequestContext::default();
    let outcomes = vec![
        ("known", service.request("alice@example.com", &ctx).await),
        ("unknown", service.request("nobody@example.com", &ctx).await),
        ("disabled", service.request("dora@example.com", &ctx).await),
    ];
    assert_uniform(&outcomes);
    assert_eq!(fx.mailer.sent().len(), 1);

    // A username is malformed input in this mode: the same validation error
    // whether or not the username exists, and nothing is looked up.
    let mark = fx.events.all().len();
    let known = service.request("alice", &ctx).await;
    let unknown = service.request("nobody", &ctx).await;
    for outcome in [&known, &unknown] {
        assert!(
            matches!(
                outcome,
                Err(RequestError::Invalid(ValidationError::NotAnEmail { .. }))
            ),
            "{outcome:?}"
        );
    }
    assert_eq!(
        known.map_err(|e| e.to_string()).err(),
        unknown.map_err(|e| e.to_string()).err()
    );
    assert!(
        fx.events_since(mark).is_empty(),
        "malformed input records nothing"
    );
}

#[tokio::test]
async fn username_only_mode_gives_one_outcome_and_refuses_emails_regardless_of_existence() {
    let fx = Fixture::with_accounts(accounts());
    let service = fx
        .builder()
        .identifier_mode(IdentifierMode::UsernameOnly)
        .build()
        .expect("valid");
    let ctx = RequestContext::default();
    let outcomes = vec![
        ("known", service.request("ALICE", &ctx).await),
        ("unknown", service.request("nobody", &ctx).await),
        ("disabled", service.request("dora", &ctx).await),
    ];
    assert_uniform(&outcomes);
    let sent = fx.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to.address(), "alice@example.com");
    assert!(
        fx.kinds()
            .iter()
            .any(|k| matches!(k, EventKind::ResetRequested { via: "username", .. }))
    );

    let known = service.request("alice@example.com", &ctx).await;
    let unknown = service.request("nobody@example.com", &ctx).await;
    for outcome in [&known, &unknown] {
        assert!(
            matches!(
                outcome,
                Err(RequestError::Invalid(ValidationError::UsernameExpected))
            ),
            "{outcome:?}"
        );
    }
}

#[tokio::test]
async fn malformed_input_gets_a_validation_error_naming_the_problem() {
    let fx = Fixture::with_accounts(accounts());
    let service = fx.service();
    let ctx = RequestContext::default();
    let cases: Vec<(String, &str)> = vec![
        ("   ".into(), "enter an email address or username"),
        ("alice\r\n@example.com".into(), "control character"),
        (format!("{}@example.com", "a".repeat(400)), "too long"),
        ("alice@example.com, bob@example.com".into(), "not 2"),
        ("Alice <alice@example.com>".into(), "not a valid email address"),
    ];
    for (input, expected) in cases {
        match service.request(&input, &ctx).await {
            Err(RequestError::Invalid(error)) => {
                assert!(error.to_string().contains(expected), "{input:?}: {error}");
            }
            other => panic!("{input:?}: expected a validation error, got {other:?}"),
        }
    }
    assert!(fx.mailer.sent().is_empty());
    assert!(fx.events.all().is_empty());
}

#[tokio::test]
async fn refused_requests_do_not_keep_the_account_window_full() {
    // Someone requests resets for alice every minute, far over the limit of
    // 3 per 15 minutes: only admitted requests count, so a new link goes out
    // as soon as the oldest admitted one leaves the window.
    let fx = Fixture::with_accounts(accounts());
    let service = fx
        .builder()
        .rate_limits(RateLimits {
            per_account: Some(Limit {
                max: 3,
                window: Duration::from_secs(900),
            }),
            per_client: None,
        })
        .build()
        .expect("service");
    for _ in 0..20 {
        service
            .request("alice@example.com", &RequestContext::default())
            .await
            .expect("accepted");
        fx.clock.advance(Duration::from_secs(60));
    }
    // Minutes 0, 1, 2 admitted; 3..14 refused; 15, 16, 17 admitted again.
    assert_eq!(fx.mailer.sent_to("alice@example.com").len(), 6);
}

/// Finding 3 of the fourth review, per account: a flood of requests for
/// alice (from many clients, under their limits) left two rows each. Now the
/// per-account limit's refusals of a window are one event and one count,
/// and the refused requests leave no "reset requested" of their own.
#[tokio::test]
async fn a_flood_at_one_account_leaves_one_event_and_a_count() {
    let fx = Fixture::with_accounts([Account::new("acct-alice", "alice", "alice@example.com")]);
    let service = fx
        .builder()
        .rate_limits(RateLimits {
            per_account: Some(Limit {
                max: 3,
                window: Duration::from_secs(900),
            }),
            per_client: None,
        })
        .build()
        .expect("valid");
    for i in 0..200u32 {
        let ctx = RequestContext::from_client(format!("198.51.100.{}", i % 250));
        service
            .request("alice@example.com", &ctx)
            .await
            .expect("accepted");
    }
    let count = |name: &str| fx.count(name);
    assert_eq!(
        count("reset_requested"),
        4,
        "three admitted and the first refused"
    );
    assert_eq!(count("rate_limited"), 1);
    fx.clock.advance(Duration::from_secs(901));
    service.flush_throttled().await.expect("recorded");
    let counts: Vec<u64> = fx
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::RateLimited {
                scope: RateScope::Account,
                count,
                ..
            } => Some(count),
            _ => None,
        })
        .collect();
    assert_eq!(counts, vec![1, 196], "197 refused in all");
}
