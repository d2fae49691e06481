//! Issue 13: what is stored and matched — identifiers in events, Unicode
//! matching, password length as typed, IPv6 clients.

use crate::common;

use std::time::Duration;

use common::{Fixture, GOOD_PASSWORD, reset_token, secret};
use resetkit::event::{EventKind, IgnoreReason, RateScope};
use resetkit::fingerprint::{FingerprintKey, fingerprint};
use resetkit::policy::{Limit, PasswordRejection};
use resetkit::prelude::*;

fn key() -> FingerprintKey {
    FingerprintKey::new(b"issue 13 deployment key, 32 bytes".to_vec()).expect("long enough")
}

fn client_limit(max: u32) -> RateLimits {
    RateLimits {
        per_account: None,
        per_client: Some(Limit {
            max,
            window: Duration::from_secs(15 * 60),
        }),
    }
}

#[tokio::test]
async fn item1_password_typed_into_the_identifier_field_is_never_stored_in_clear() {
    let fx = Fixture::with_accounts([Account::new("u1", "alice", "alice@example.com")]);
    let service = fx.builder().fingerprint_key(key()).build().expect("valid");
    let typed = "Tr0ub4dor and 3 quiet lanterns";
    for identifier in [typed, "nobody@example.com"] {
        service
            .request(identifier, &RequestContext::from_client("192.0.2.1"))
            .await
            .expect("accepted");
    }
    let events = fx.events.all();
    let trail = format!("{events:?}");
    for clear in ["tr0ub4dor", "Tr0ub4dor", "lanterns", "nobody@example.com"] {
        assert!(!trail.contains(clear), "`{clear}` is in the event trail: {trail}");
    }
    // The operator who holds the key can still answer "did someone ask for x?".
    let fingerprints: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RequestIgnored {
                reason: IgnoreReason::UnknownIdentifier,
                fingerprint,
            } => Some(fingerprint.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        fingerprints,
        vec![
            fingerprint(&key(), typed),
            fingerprint(&key(), "NOBODY@example.com"),
        ]
    );
    // A different key gives different fingerprints: the log alone does not
    // let anyone test guesses.
    let other = FingerprintKey::new(vec![7u8; 32]).expect("long enough");
    assert_ne!(fingerprints[1], fingerprint(&other, "nobody@example.com"));
}

#[tokio::test]
async fn item1_without_a_configured_key_fingerprints_are_still_not_clear_text() {
    let fx = Fixture::default();
    let service = fx.service();
    service
        .request("correct horse battery staple", &RequestContext::default())
        .await
        .expect("accepted");
    let trail = format!("{:?}", fx.events.all());
    assert!(
        trail.contains("request_ignored") || trail.contains("RequestIgnored"),
        "{trail}"
    );
    assert!(!trail.contains("horse"), "{trail}");
}

#[tokio::test]
async fn item2_unicode_caseless_identifiers_find_the_stored_account_and_mail_goes_there() {
    let fx = Fixture::with_accounts([
        Account::new("u1", "Σίσυφος", "straße@example.com"),
        Account::new("u2", "frank", "Ｆrank@example.com"),
        Account::new("u3", "mıke", "mıke@example.com"),
    ]);
    let service = fx.service();
    let ctx = RequestContext::default();
    for identifier in [
        "STRASSE@example.com",
        "ΣΊΣΥΦΟΣ",
        "frank@example.com",
        "MIKE@example.com",
    ] {
        service.request(identifier, &ctx).await.expect("accepted");
    }
    let recipients: Vec<String> = fx
        .mailer
        .sent()
        .iter()
        .map(|m| m.to.address().to_owned())
        .collect();
    // Mail goes to the stored address, never to the text as typed; the
    // dotless ı is not matched by MIKE.
    assert_eq!(
        recipients,
        vec!["straße@example.com", "straße@example.com", "Ｆrank@example.com"]
    );
    assert_eq!(fx.ignore_reasons(), vec![IgnoreReason::UnknownIdentifier]);
}

#[tokio::test]
async fn item3_one_character_that_nfkc_expands_is_too_short() {
    let fx = Fixture::with_accounts([Account::new("u1", "alice", "alice@example.com")]);
    let service = fx.service();
    service
        .request("alice@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    let token = reset_token(&fx.mailer.sent()[0]);
    let refused = service
        .complete(&token, secret("\u{FDFA}"), secret("\u{FDFA}"))
        .await;
    assert!(
        matches!(
            refused,
            Err(CompleteError::PasswordRejected(PasswordRejection::TooShort {
                min_chars: 15,
                actual: 1
            }))
        ),
        "{refused:?}"
    );
    // The link still works for a real password.
    service
        .complete(&token, secret(GOOD_PASSWORD), secret(GOOD_PASSWORD))
        .await
        .expect("a long password is accepted");
}

#[tokio::test]
async fn item5_ipv6_clients_of_one_prefix_share_the_client_limit() {
    let fx = Fixture::default();
    let service = fx.builder().rate_limits(client_limit(20)).build().expect("valid");
    // 25 addresses of one /64: the last 5 are limited.
    for i in 1..=25u32 {
        let addr = format!("2001:db8:5:7:{:x}::{:x}", i * 977, i);
        service
            .request("nobody@example.com", &RequestContext::from_client(addr))
            .await
            .expect("accepted");
    }
    // Another /64 has its own allowance.
    service
        .request(
            "nobody@example.com",
            &RequestContext::from_client("2001:db8:5:8::1"),
        )
        .await
        .expect("accepted");
    // One event for the /64's window so far; its count when the window ends.
    let events = |fx: &Fixture| {
        fx.kinds()
            .into_iter()
            .filter_map(|k| match k {
                EventKind::RateLimited {
                    scope: RateScope::Client,
                    count,
                    ..
                } => Some(count),
                _ => None,
            })
            .collect::<Vec<u64>>()
    };
    assert_eq!(events(&fx), vec![1]);
    fx.clock.advance(std::time::Duration::from_secs(16 * 60));
    service.flush_throttled().await.expect("recorded");
    assert_eq!(events(&fx), vec![1, 4], "5 limited in all");
}

#[tokio::test]
async fn item5_ipv4_mapped_addresses_count_as_ipv4_and_the_prefix_is_configurable() {
    let fx = Fixture::default();
    let service = fx.builder().rate_limits(client_limit(2)).build().expect("valid");
    for addr in ["198.51.100.4", "::ffff:198.51.100.4", "::ffff:c633:6404"] {
        service
            .request("nobody@example.com", &RequestContext::from_client(addr))
            .await
            .expect("accepted");
    }
    assert_eq!(fx.count("rate_limited"), 1, "{:?}", fx.kinds());

    // With /48, two different /64s of one /48 share the limit.
    let fx = Fixture::default();
    let service = fx
        .builder()
        .rate_limits(client_limit(2))
        .client_ipv6_prefix(48)
        .build()
        .expect("valid");
    for addr in ["2001:db8:9:1::1", "2001:db8:9:2::1", "2001:db8:9:3::1"] {
        service
            .request("nobody@example.com", &RequestContext::from_client(addr))
            .await
            .expect("accepted");
    }
    assert_eq!(fx.count("rate_limited"), 1);
    let err = fx
        .builder()
        .client_ipv6_prefix(0)
        .build()
        .err()
        .map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("client_ipv6_prefix")));
}
