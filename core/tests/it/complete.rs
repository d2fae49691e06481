//! Acceptance: `complete` checks the confirmation and the password policy
//! (leaving the link usable when it refuses), stores a normalised argon2id
//! hash, revokes the account's other links and sessions, and sends a
//! "password changed" notice; `deny` revokes outstanding links.

use crate::common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{Fixture, GOOD_PASSWORD, RESET_PREFIX, SECURITY_LINK, secret};
use resetkit::SessionRevoker;
use resetkit::event::EventKind;
use resetkit::policy::PasswordRejection;
use resetkit::prelude::*;
use resetkit::token::{RejectReason, RevokeReason};

fn fixture() -> Fixture {
    Fixture::with_accounts([
        Account::new("a1", "alice", "alice@example.com"),
        Account::new("b1", "bob", "bob@example.com"),
    ])
}

fn a1() -> AccountId {
    AccountId::from("a1")
}

/// Records which accounts had their sessions revoked; can be told to fail.
#[derive(Clone, Default)]
struct Sessions {
    revoked: Arc<Mutex<Vec<AccountId>>>,
    fail: bool,
}

#[async_trait]
impl SessionRevoker for Sessions {
    async fn revoke_sessions(&self, account: &AccountId) -> Result<(), String> {
        self.revoked.lock().expect("lock").push(account.clone());
        if self.fail {
            Err("session store unreachable".into())
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn a_confirmation_mismatch_is_refused_and_the_link_keeps_working() {
    let fx = fixture();
    let service = fx.service();
    let token = fx.request_token(&service, "alice").await;
    let error = service
        .complete(
            &token,
            secret(GOOD_PASSWORD),
            secret("blue kettle under a quiet bridgf"),
        )
        .await
        .expect_err("mismatch");
    assert!(matches!(error, CompleteError::ConfirmationMismatch), "{error:?}");
    assert_eq!(error.to_string(), "the two passwords do not match");
    service.inspect(&token).await.expect("still usable");
    service
        .complete(&token, secret(GOOD_PASSWORD), secret(GOOD_PASSWORD))
        .await
        .expect("the same link works afterwards");
}

#[tokio::test]
async fn the_password_policy_is_enforced_with_the_reason_shown() {
    let fx = fixture();
    let policy = PasswordPolicy::default().with_extra_blocklist(["Example Portal Password"]);
    let service = fx.builder().password_policy(policy).build().expect("valid");
    let token = fx.request_token(&service, "alice").await;

    let too_long = "correct horse battery ".repeat(50);
    let cases: Vec<(String, PasswordRejection, &str)> = vec![
        (
            "fourteen chars".into(),
            PasswordRejection::TooShort {
                min_chars: 15,
                actual: 14,
            },
            "at least 15 characters",
        ),
        ("passwordpassword".into(), PasswordRejection::Common, "too common"),
        (
            "EXAMPLE PORTAL PASSWORD".into(),
            PasswordRejection::Forbidden,
            "not allowed on this site",
        ),
        (
            "alice@example.com".into(),
            PasswordRejection::ContainsIdentity {
                what: "email address",
            },
            "your email address",
        ),
        (
            "my name is ALICE and I like tea".into(),
            PasswordRejection::ContainsIdentity { what: "username" },
            "your username",
        ),
        (
            too_long.clone(),
            PasswordRejection::TooLong {
                max_bytes: 1024,
                actual: too_long.len(),
            },
            "at most 1024 bytes",
        ),
        (
            "zzzzzzzzzzzzzzzzzzzz".into(),
            PasswordRejection::Repetitive,
            "repeated",
        ),
        (
            "tab\tinside a long passphrase".into(),
            PasswordRejection::ControlCharacter,
            "control character",
        ),
    ];
    for (password, expected, shown) in cases {
        let error = service
            .complete(&token, secret(&password), secret(&password))
            .await
            .expect_err("refused");
        match &error {
            CompleteError::PasswordRejected(rejection) => assert_eq!(rejection, &expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
        assert!(error.to_string().contains(shown), "{error}");
        assert!(
            !error.to_string().contains(&password),
            "the message does not echo the password"
        );
        match fx.kinds().pop() {
            Some(EventKind::PasswordRejected { reason }) => assert_eq!(reason, expected.to_string()),
            other => panic!("expected a PasswordRejected event, got {other:?}"),
        }
        service.inspect(&token).await.expect("the link keeps working");
    }
    // 64 characters are always allowed, and nothing else was recorded.
    let sixty_four = "a sixty-four character passphrase with spaces is fine, I think!!";
    assert_eq!(sixty_four.chars().count(), 64);
    service
        .complete(&token, secret(sixty_four), secret(sixty_four))
        .await
        .expect("accepted");
    assert_eq!(fx.rejections(), Vec::<RejectReason>::new());
}

#[tokio::test]
async fn unicode_passwords_are_accepted_and_normalised_nfkc() {
    let fx = fixture();
    let service = fx.service();

    // Fullwidth forms (as some IMEs type them) normalise to ASCII, so the
    // blocklist sees through them ...
    let token = fx.request_token(&service, "alice").await;
    let common = "ｃｏｒｒｅｃｔ　ｈｏｒｓｅ　ｂａｔｔｅｒｙ　ｓｔａｐｌｅ";
    let error = service
        .complete(&token, secret(common), secret(common))
        .await
        .expect_err("a common password in disguise");
    assert!(
        matches!(error, CompleteError::PasswordRejected(PasswordRejection::Common)),
        "{error:?}"
    );
    // ... and signing in with either form works.
    let fullwidth = "ｐｕｒｐｌｅ　ｍｏｎｋｅｙ　ｄｉｓｈｗａｓｈｅｒ　ｔｏｄａｙ";
    service
        .complete(&token, secret(fullwidth), secret(fullwidth))
        .await
        .expect("accepted");
    assert!(
        service
            .verify_password(&a1(), &secret(fullwidth))
            .await
            .expect("verify")
    );
    assert!(
        service
            .verify_password(&a1(), &secret("purple monkey dishwasher today"))
            .await
            .expect("verify")
    );

    // Decomposed and precomposed accents are the same password.
    let decomposed = "cafe\u{301} au lait sans sucre, merci";
    let precomposed = "caf\u{e9} au lait sans sucre, merci";
    let token = fx.request_token(&service, "alice").await;
    service
        .complete(&token, secret(decomposed), secret(decomposed))
        .await
        .expect("accepted");
    assert!(
        service
            .verify_password(&a1(), &secret(precomposed))
            .await
            .expect("verify")
    );
    assert!(
        !service
            .verify_password(&a1(), &secret("cafe au lait sans sucre, merci"))
            .await
            .expect("verify")
    );

    // Length is counted in characters, not bytes: 15 CJK characters pass.
    let cjk = "日本語のパスフレーズは十五文字";
    assert_eq!(cjk.chars().count(), 15);
    let token = fx.request_token(&service, "alice").await;
    service
        .complete(&token, secret(cjk), secret(cjk))
        .await
        .expect("accepted");
    assert!(
        service
            .verify_password(&a1(), &secret(cjk))
            .await
            .expect("verify")
    );

    // The stored hash is argon2id of the normalised text.
    let stored = fx
        .accounts
        .get(&a1())
        .and_then(|a| a.password_hash)
        .expect("hash");
    assert!(stored.expose().starts_with("$argon2id$"));
}

#[tokio::test]
async fn a_reset_revokes_sessions_other_links_and_sends_a_notice() {
    let fx = fixture();
    let sessions = Sessions::default();
    let keep_all = TokenPolicy {
        newest_wins: false,
        ..TokenPolicy::default()
    };
    let service = fx
        .builder()
        .token_policy(keep_all)
        .session_revoker(Arc::new(sessions.clone()))
        .build()
        .expect("valid");
    let other = fx.request_token(&service, "alice").await;
    let token = fx.request_token(&service, "alice").await;
    let bobs = fx.request_token(&service, "bob").await;
    fx.mailer.clear();

    let done = service
        .complete(&token, secret(GOOD_PASSWORD), secret(GOOD_PASSWORD))
        .await
        .expect("reset");
    assert_eq!(
        done,
        Completed {
            account: a1(),
            username: "alice".into()
        }
    );

    assert_eq!(
        *sessions.revoked.lock().expect("lock"),
        vec![a1()],
        "sessions revoked for alice only"
    );
    assert!(
        service.inspect(&other).await.is_err(),
        "alice's other link is dead"
    );
    assert_eq!(
        fx.last_rejection(),
        Some(RejectReason::Revoked(RevokeReason::PasswordReset))
    );
    service.inspect(&bobs).await.expect("bob's link is untouched");
    assert!(fx.kinds().contains(&EventKind::LinksRevoked {
        reason: RevokeReason::PasswordReset,
        count: 1
    }));
    assert!(fx.kinds().contains(&EventKind::ResetCompleted));

    let sent = fx.mailer.sent();
    assert_eq!(sent.len(), 1);
    let notice = &sent[0];
    assert_eq!(notice.kind, EmailKind::PasswordChanged);
    assert_eq!(notice.to.address(), "alice@example.com");
    assert!(
        notice.subject.contains("password was changed"),
        "{}",
        notice.subject
    );
    assert!(notice.expose_text().lines().any(|l| l.trim() == SECURITY_LINK));
    assert!(common::hrefs(notice.expose_html()).contains(&SECURITY_LINK.to_owned()));
    assert!(
        !notice.expose_text().contains(RESET_PREFIX),
        "the notice carries no reset link"
    );
    assert!(!notice.expose_text().contains(GOOD_PASSWORD));
    assert_eq!(notice.extra_headers(), &[("Auto-Submitted", "auto-generated")]);
}

#[tokio::test]
async fn a_failing_session_hook_is_recorded_and_does_not_undo_the_reset() {
    let fx = fixture();
    let sessions = Sessions {
        fail: true,
        ..Sessions::default()
    };
    let service = fx
        .builder()
        .session_revoker(Arc::new(sessions.clone()))
        .build()
        .expect("valid");
    let token = fx.request_token(&service, "alice").await;
    service
        .complete(&token, secret(GOOD_PASSWORD), secret(GOOD_PASSWORD))
        .await
        .expect("reset");
    assert_eq!(*sessions.revoked.lock().expect("lock"), vec![a1()]);
    assert!(fx.kinds().contains(&EventKind::SessionRevocationFailed {
        reason: "session store unreachable".into()
    }));
    assert!(
        service
            .verify_password(&a1(), &secret(GOOD_PASSWORD))
            .await
            .expect("verify")
    );
}

#[tokio::test]
async fn this_wasnt_me_revokes_every_outstanding_link_of_the_account() {
    let fx = fixture();
    let keep_all = TokenPolicy {
        newest_wins: false,
        ..TokenPolicy::default()
    };
    let service = fx.builder().token_policy(keep_all).build().expect("valid");
    let first = fx.request_token(&service, "alice").await;
    let second = fx.request_token(&service, "alice").await;
    let bobs = fx.request_token(&service, "bob").await;
    let mail = fx.mailer.sent_to("alice@example.com").pop().expect("mail");
    let deny = common::deny_token(&mail);
    assert_ne!(deny, second, "the deny link carries a secret of its own");

    service.deny(&deny).await.expect("denied");
    assert!(fx.kinds().contains(&EventKind::LinksRevoked {
        reason: RevokeReason::UserDenied,
        count: 2
    }));
    for token in [&first, &second] {
        assert!(matches!(
            service.inspect(token).await,
            Err(LinkError::InvalidLink)
        ));
        assert_eq!(
            fx.last_rejection(),
            Some(RejectReason::Revoked(RevokeReason::UserDenied))
        );
    }
    service.inspect(&bobs).await.expect("bob's link is untouched");
    assert_eq!(
        fx.accounts.get(&a1()).and_then(|a| a.password_hash).map(|_| ()),
        None
    );

    // Malformed and unknown deny links are refused like any other link.
    assert!(matches!(service.deny("nope").await, Err(LinkError::InvalidLink)));
    assert_eq!(fx.last_rejection(), Some(RejectReason::Malformed));
    let unknown = resetkit::token::RawToken::generate().expect("entropy");
    assert!(matches!(
        service.deny(unknown.expose_encoded()).await,
        Err(LinkError::InvalidLink)
    ));
    assert_eq!(fx.last_rejection(), Some(RejectReason::Unknown));
}

/// A directory whose `find_by_id` reports a changed email from the
/// `flip_after`-th call on: the account changes while `complete` hashes.
struct ChangesMidway {
    inner: InMemoryAccounts,
    calls: std::sync::atomic::AtomicUsize,
    flip_after: usize,
}

#[async_trait]
impl AccountDirectory for ChangesMidway {
    async fn find_by_email(&self, e: &str) -> Result<Vec<Account>, resetkit::error::StoreError> {
        self.inner.find_by_email(e).await
    }
    async fn find_by_username(&self, u: &str) -> Result<Option<Account>, resetkit::error::StoreError> {
        self.inner.find_by_username(u).await
    }
    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, resetkit::error::StoreError> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let found = self.inner.find_by_id(id).await?;
        Ok(found.map(|a| {
            if n >= self.flip_after {
                a.with_email(Some("new@example.com".into()))
            } else {
                a
            }
        }))
    }
    async fn set_password_hash(
        &self,
        id: &AccountId,
        hash: &resetkit::hasher::PasswordHash,
    ) -> Result<(), resetkit::error::StoreError> {
        self.inner.set_password_hash(id, hash).await
    }
}

#[tokio::test]
async fn an_email_change_during_hashing_is_caught_after_consume() {
    let fx = fixture();
    let directory = Arc::new(ChangesMidway {
        inner: fx.accounts.clone(),
        calls: std::sync::atomic::AtomicUsize::new(0),
        // complete's first lookup (check_token) sees the old address; the
        // re-check after consume sees the new one.
        flip_after: 1,
    });
    let service = fx.builder().accounts(directory.clone()).build().expect("service");
    let token = fx.request_token(&service, "alice@example.com").await;
    directory.calls.store(0, std::sync::atomic::Ordering::SeqCst);
    let result = service
        .complete(&token, secret(GOOD_PASSWORD), secret(GOOD_PASSWORD))
        .await;
    assert!(matches!(result, Err(CompleteError::InvalidLink)), "{result:?}");
    assert_eq!(fx.last_rejection(), Some(RejectReason::EmailChanged));
    assert!(
        !service
            .verify_password(&a1(), &secret(GOOD_PASSWORD))
            .await
            .expect("verify")
    );
}

/// An event log that refuses to record `ResetCompleted`.
#[derive(Clone, Default)]
struct RefusesCompletion(InMemoryEventLog);

#[async_trait]
impl EventLog for RefusesCompletion {
    async fn record(&self, event: resetkit::event::Event) -> Result<(), resetkit::error::StoreError> {
        if matches!(event.kind, EventKind::ResetCompleted) {
            return Err(resetkit::error::StoreError::unavailable(
                "events.record",
                "injected outage",
            ));
        }
        self.0.record(event).await
    }
}

#[tokio::test]
async fn steps_after_the_reset_are_best_effort() {
    let fx = fixture();
    let sessions = Sessions::default();
    let service = fx
        .builder()
        .events(Arc::new(RefusesCompletion(fx.events.clone())))
        .session_revoker(Arc::new(sessions.clone()))
        .build()
        .expect("service");
    let token = fx.request_token(&service, "alice@example.com").await;
    service
        .complete(&token, secret(GOOD_PASSWORD), secret(GOOD_PASSWORD))
        .await
        .expect("the reset stands although an event could not be recorded");
    assert_eq!(
        *sessions.revoked.lock().expect("lock"),
        vec![a1()],
        "sessions still revoked"
    );
    let notices = fx.mailer.sent_to("alice@example.com");
    assert_eq!(notices.len(), 2, "reset mail and the password-changed notice");
    assert!(
        service
            .verify_password(&a1(), &secret(GOOD_PASSWORD))
            .await
            .expect("verify")
    );
}
