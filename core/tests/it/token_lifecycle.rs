//! Acceptance: a link works once, for its lifetime, for the account and
//! address and password state it was issued for. Every refusal gives the one
//! public `InvalidLink` error and records a distinct `RejectReason`.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Fixture, GOOD_PASSWORD, secret};
use resetkit::flow::INVALID_LINK_MESSAGE;
use resetkit::prelude::*;
use resetkit::token::{RawToken, RejectReason, RevokeReason, TOKEN_CHARS};

const LIFETIME: Duration = Duration::from_secs(30 * 60);

fn fixture() -> Fixture {
    Fixture::with_accounts([
        Account::new("a1", "alice", "alice@example.com"),
        Account::new("b2", "bob", "bob@example.com"),
    ])
}

/// Completes with a good password.
async fn complete(service: &ResetService, token: &str) -> Result<Completed, CompleteError> {
    service
        .complete(token, secret(GOOD_PASSWORD), secret(GOOD_PASSWORD))
        .await
}

/// Asserts `complete` and `inspect` both refuse `token` with the public
/// error and that the event log gives `reason` for each refusal.
async fn assert_refused(fx: &Fixture, service: &ResetService, token: &str, reason: RejectReason) {
    match service.inspect(token).await {
        Err(LinkError::InvalidLink) => {}
        other => panic!("inspect: expected InvalidLink ({reason}), got {other:?}"),
    }
    assert_eq!(fx.last_rejection(), Some(reason), "inspect");
    let error = complete(service, token).await.expect_err("must be refused");
    assert!(
        matches!(error, CompleteError::InvalidLink),
        "complete: {error:?} ({reason})"
    );
    assert_eq!(error.to_string(), INVALID_LINK_MESSAGE);
    assert_eq!(fx.last_rejection(), Some(reason), "complete");
}

#[tokio::test]
async fn a_link_works_once_and_inspect_never_spends_it() {
    let fx = fixture();
    let service = fx.service();
    let token = fx.request_token(&service, "alice@example.com").await;

    // Mail scanners and the GET of the page may fetch the link many times.
    for _ in 0..5 {
        let info = service.inspect(&token).await.expect("usable");
        assert_eq!(info.account, AccountId::from("a1"));
        assert_eq!(info.username, "alice");
        assert_eq!(info.expires_at, common::start_time() + LIFETIME);
    }
    let done = complete(&service, &token).await.expect("first use works");
    assert_eq!(done.account, AccountId::from("a1"));
    assert!(
        service
            .verify_password(&done.account, &secret(GOOD_PASSWORD))
            .await
            .expect("verify")
    );
    assert_refused(&fx, &service, &token, RejectReason::AlreadyUsed).await;
}

#[tokio::test]
async fn a_link_expires_exactly_at_the_end_of_its_lifetime() {
    let fx = fixture();
    let service = fx.service();
    let token = fx.request_token(&service, "alice@example.com").await;

    fx.clock.advance(LIFETIME - Duration::from_secs(1));
    service
        .inspect(&token)
        .await
        .expect("usable one second before expiry");
    fx.clock.advance(Duration::from_millis(999));
    service
        .inspect(&token)
        .await
        .expect("usable one millisecond before expiry");
    // `expires_at` is exclusive: at that instant the link is dead.
    fx.clock.advance(Duration::from_millis(1));
    assert_refused(&fx, &service, &token, RejectReason::Expired).await;
    fx.clock.advance(Duration::from_secs(3600));
    assert_refused(&fx, &service, &token, RejectReason::Expired).await;
}

#[tokio::test]
async fn a_configured_lifetime_is_honoured() {
    let fx = fixture();
    let policy = TokenPolicy {
        lifetime: Duration::from_secs(120),
        newest_wins: true,
    };
    let service = fx.builder().token_policy(policy).build().expect("valid");
    let token = fx.request_token(&service, "alice@example.com").await;
    fx.clock.advance(Duration::from_secs(119));
    service.inspect(&token).await.expect("usable");
    fx.clock.advance(Duration::from_secs(1));
    assert_refused(&fx, &service, &token, RejectReason::Expired).await;
}

#[tokio::test]
async fn a_newer_request_supersedes_older_links() {
    let fx = fixture();
    let service = fx.service();
    let old = fx.request_token(&service, "alice@example.com").await;
    let new = fx.request_token(&service, "alice@example.com").await;
    assert_ne!(old, new);
    assert_refused(
        &fx,
        &service,
        &old,
        RejectReason::Revoked(RevokeReason::Superseded),
    )
    .await;
    // Another account's request does not touch alice's link.
    fx.request_token(&service, "bob@example.com").await;
    complete(&service, &new).await.expect("the newest link works");
}

#[tokio::test]
async fn changing_the_email_kills_links_sent_to_the_old_address() {
    let fx = fixture();
    let service = fx.service();
    let token = fx.request_token(&service, "alice@example.com").await;
    assert!(
        fx.accounts
            .set_email(&AccountId::from("a1"), "alice@new.example.org")
    );
    assert_refused(&fx, &service, &token, RejectReason::EmailChanged).await;
    // A case-only edit of the stored address is the same address.
    let fresh = fx.request_token(&service, "alice@new.example.org").await;
    assert!(
        fx.accounts
            .set_email(&AccountId::from("a1"), "Alice@New.Example.org")
    );
    service.inspect(&fresh).await.expect("same canonical address");
}

#[tokio::test]
async fn a_password_change_by_the_host_kills_outstanding_links() {
    let fx = fixture();
    let service = fx.service();
    let token = fx.request_token(&service, "alice@example.com").await;
    // The host app changes the password through its own settings page.
    let hash = Argon2Hasher::fast_insecure_for_tests()
        .hash(&secret("changed in the account settings page"))
        .expect("hash");
    fx.accounts
        .set_password_hash(&AccountId::from("a1"), &hash)
        .await
        .expect("stored");
    assert_refused(&fx, &service, &token, RejectReason::PasswordChanged).await;
}

#[tokio::test]
async fn a_completed_reset_revokes_the_accounts_other_links() {
    let fx = fixture();
    let keep_all = TokenPolicy {
        newest_wins: false,
        ..TokenPolicy::default()
    };
    let service = fx.builder().token_policy(keep_all).build().expect("valid");
    let first = fx.request_token(&service, "alice@example.com").await;
    let second = fx.request_token(&service, "alice@example.com").await;
    let bobs = fx.request_token(&service, "bob@example.com").await;
    service
        .inspect(&first)
        .await
        .expect("both links live without newest-wins");
    complete(&service, &second).await.expect("reset");
    assert_refused(
        &fx,
        &service,
        &first,
        RejectReason::Revoked(RevokeReason::PasswordReset),
    )
    .await;
    assert_refused(&fx, &service, &second, RejectReason::AlreadyUsed).await;
    service
        .inspect(&bobs)
        .await
        .expect("other accounts keep their links");
}

#[tokio::test]
async fn this_wasnt_me_revokes_the_link() {
    let fx = fixture();
    let service = fx.service();
    let (token, deny) = fx.request_links(&service, "alice@example.com").await;
    assert_ne!(deny, token, "the deny link has a secret of its own");
    service.deny(&deny).await.expect("denied");
    assert_refused(
        &fx,
        &service,
        &token,
        RejectReason::Revoked(RevokeReason::UserDenied),
    )
    .await;
}

#[tokio::test]
async fn this_wasnt_me_works_after_expiry_but_not_from_an_old_address_or_after_the_window() {
    let fx = fixture();
    let service = fx.service();
    let (old, old_deny) = fx.request_links(&service, "alice@example.com").await;
    // Expired but never replaced: the owner can still say "this wasn't me".
    fx.clock.advance(Duration::from_secs(3600));
    service
        .deny(&old_deny)
        .await
        .expect("an expired link can still say \"this wasn't me\"");
    assert!(service.inspect(&old).await.is_err());
    // After the address changed, the old mailbox cannot cancel new links.
    let (_, deny_to_old_address) = fx.request_links(&service, "alice@example.com").await;
    let account = fx.accounts.get(&AccountId::from("a1")).expect("alice");
    fx.accounts
        .insert(account.with_email(Some("alice.new@example.com".into())));
    let (fresh, fresh_deny) = fx.request_links(&service, "alice.new@example.com").await;
    assert!(matches!(
        service.deny(&deny_to_old_address).await,
        Err(LinkError::InvalidLink)
    ));
    assert_eq!(fx.last_rejection(), Some(RejectReason::EmailChanged));
    service
        .inspect(&fresh)
        .await
        .expect("the new owner's link survives");
    // Past the window, even the right address cannot deny with that link.
    fx.clock.advance(resetkit::flow::DENY_WINDOW);
    assert!(matches!(
        service.deny(&fresh_deny).await,
        Err(LinkError::InvalidLink)
    ));
    assert_eq!(fx.last_rejection(), Some(RejectReason::Expired));
}

#[tokio::test]
async fn disabling_the_account_kills_its_links() {
    let fx = fixture();
    let service = fx.service();
    let token = fx.request_token(&service, "alice@example.com").await;
    assert!(fx.accounts.set_disabled(&AccountId::from("a1"), true));
    assert_refused(&fx, &service, &token, RejectReason::AccountDisabled).await;
}

/// Tries `token` and returns the public message and the recorded reason.
async fn refusal(fx: &Fixture, service: &ResetService, case: &str, token: &str) -> (String, RejectReason) {
    let error = complete(service, token).await.expect_err(case);
    let reason = fx.last_rejection().expect("a rejection is recorded");
    (error.to_string(), reason)
}

#[tokio::test]
async fn every_refusal_looks_the_same_publicly_and_has_its_own_reason() {
    let fx = fixture();
    let keep_all = TokenPolicy {
        newest_wins: false,
        ..TokenPolicy::default()
    };
    let plain = fx
        .builder()
        .rate_limits(RateLimits::unlimited())
        .build()
        .expect("valid");
    let keeping = fx
        .builder()
        .rate_limits(RateLimits::unlimited())
        .token_policy(keep_all)
        .build()
        .expect("valid");
    let a1 = AccountId::from("a1");
    // Each case is tried as soon as it is set up, since later requests for
    // the same account would supersede its link.
    let mut seen: Vec<(&str, (String, RejectReason), RejectReason)> = Vec::new();

    let used = fx.request_token(&plain, "alice@example.com").await;
    complete(&plain, &used).await.expect("reset");
    seen.push((
        "second use",
        refusal(&fx, &plain, "second use", &used).await,
        RejectReason::AlreadyUsed,
    ));

    let superseded = fx.request_token(&plain, "bob@example.com").await;
    fx.request_token(&plain, "bob@example.com").await;
    seen.push((
        "superseded",
        refusal(&fx, &plain, "superseded", &superseded).await,
        RejectReason::Revoked(RevokeReason::Superseded),
    ));

    let sibling = fx.request_token(&keeping, "alice@example.com").await;
    let winner = fx.request_token(&keeping, "alice@example.com").await;
    complete(&keeping, &winner).await.expect("reset");
    seen.push((
        "revoked by a reset",
        refusal(&fx, &plain, "revoked by a reset", &sibling).await,
        RejectReason::Revoked(RevokeReason::PasswordReset),
    ));

    let (denied, deny) = fx.request_links(&plain, "alice@example.com").await;
    plain.deny(&deny).await.expect("denied");
    seen.push((
        "denied",
        refusal(&fx, &plain, "denied", &denied).await,
        RejectReason::Revoked(RevokeReason::UserDenied),
    ));

    let host_changed = fx.request_token(&plain, "alice@example.com").await;
    let hash = Argon2Hasher::fast_insecure_for_tests()
        .hash(&secret("another long passphrase entirely"))
        .expect("hash");
    fx.accounts.set_password_hash(&a1, &hash).await.expect("stored");
    seen.push((
        "password changed",
        refusal(&fx, &plain, "password changed", &host_changed).await,
        RejectReason::PasswordChanged,
    ));

    let moved = fx.request_token(&plain, "alice@example.com").await;
    fx.accounts.set_email(&a1, "alice@elsewhere.example");
    seen.push((
        "email changed",
        refusal(&fx, &plain, "email changed", &moved).await,
        RejectReason::EmailChanged,
    ));

    let disabled = fx.request_token(&plain, "bob@example.com").await;
    fx.accounts.set_disabled(&AccountId::from("b2"), true);
    seen.push((
        "account disabled",
        refusal(&fx, &plain, "account disabled", &disabled).await,
        RejectReason::AccountDisabled,
    ));

    let unknown = RawToken::generate().expect("entropy").expose_encoded().to_owned();
    seen.push((
        "unknown",
        refusal(&fx, &plain, "unknown", &unknown).await,
        RejectReason::Unknown,
    ));
    seen.push((
        "malformed",
        refusal(&fx, &plain, "malformed", "not-a-token").await,
        RejectReason::Malformed,
    ));

    let expiring = fx.request_token(&plain, "alice@elsewhere.example").await;
    fx.clock.advance(LIFETIME);
    seen.push((
        "expired",
        refusal(&fx, &plain, "expired", &expiring).await,
        RejectReason::Expired,
    ));

    let mut public = HashSet::new();
    let mut reasons = HashSet::new();
    for (case, (message, reason), expected) in &seen {
        assert_eq!(reason, expected, "{case}");
        public.insert(message.clone());
        reasons.insert(*reason);
    }
    assert_eq!(public.len(), 1, "one public message: {public:?}");
    assert_eq!(public.into_iter().next().as_deref(), Some(INVALID_LINK_MESSAGE));
    assert_eq!(reasons.len(), seen.len(), "each case has its own reason");
}

#[tokio::test]
async fn tampered_truncated_padded_and_foreign_tokens_are_refused_and_do_not_burn_the_link() {
    let fx = fixture();
    let service = fx.service();
    let token = fx.request_token(&service, "alice@example.com").await;
    assert_eq!(token.len(), TOKEN_CHARS);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "URL-safe alphabet without padding: {}",
        token.len()
    );

    let flip = |i: usize| -> String {
        let mut bytes = token.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).expect("ascii")
    };
    let standard_alphabet = token.replace('-', "+").replace('_', "/");
    let mut malformed = vec![
        format!("{token}="),
        format!("{token}=="),
        token[..TOKEN_CHARS - 1].to_owned(),
        token[1..].to_owned(),
        format!("{token}A"),
        format!(" {token}"),
        format!("{token}\n"),
        format!("token={token}"),
        format!("+{}", &token[1..]),
        format!("{}/", &token[..TOKEN_CHARS - 1]),
        format!("{}%2D", &token[..TOKEN_CHARS - 1]),
        format!("{}é", &token[..TOKEN_CHARS - 2]),
        String::new(),
        "x".repeat(10_000),
    ];
    if standard_alphabet != token {
        malformed.push(standard_alphabet);
    }
    for bad in &malformed {
        assert_refused(&fx, &service, bad, RejectReason::Malformed).await;
    }
    // A changed character is well formed but unknown (or, in the last
    // position, a non-canonical encoding).
    for i in [0, 10, 21, 41, 42] {
        let tampered = flip(i);
        assert!(service.inspect(&tampered).await.is_err());
        assert!(matches!(
            fx.last_rejection(),
            Some(RejectReason::Unknown | RejectReason::Malformed)
        ));
    }
    assert_refused(&fx, &service, &flip(5), RejectReason::Unknown).await;
    // Case matters (the last character is left alone: changing it may make
    // the encoding non-canonical, which is `Malformed`).
    let upper = format!("{}{}", token[..42].to_uppercase(), &token[42..]);
    if upper != token {
        assert_refused(&fx, &service, &upper, RejectReason::Unknown).await;
    }

    // None of that touched the real link.
    complete(&service, &token)
        .await
        .expect("the real link still works");
}
