//! Acceptance: several accounts sharing one email address can each reset,
//! under each duplicate-email policy, and a link resets only its own account.

use crate::common;

use common::{Fixture, GOOD_PASSWORD, RESET_PREFIX, secret};
use resetkit::event::EventKind;
use resetkit::prelude::*;

fn fixture() -> Fixture {
    Fixture::with_accounts([
        Account::new("a1", "alice", "family@example.com"),
        Account::new("a2", "albert", "Family@Example.com"),
        Account::new("b1", "bob", "bob@example.com"),
    ])
}

async fn verify(service: &ResetService, id: &str, password: &str) -> bool {
    service
        .verify_password(&AccountId::from(id), &secret(password))
        .await
        .expect("verify")
}

async fn set(service: &ResetService, token: &str, password: &str) -> Completed {
    service
        .complete(token, secret(password), secret(password))
        .await
        .expect("reset")
}

const PW_ALICE: &str = "first sharer picks a long passphrase";
const PW_ALBERT: &str = "second sharer picks another passphrase";

#[tokio::test]
async fn by_default_each_account_gets_its_own_email_and_link() {
    let fx = fixture();
    let service = fx.service();
    let outcome = service
        .request("family@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    assert_eq!(outcome, RequestAccepted);

    let sent = fx.mailer.sent();
    assert_eq!(sent.len(), 2, "one email per account");
    let mut by_user = Vec::new();
    for mail in &sent {
        assert_eq!(mail.kind, EmailKind::Reset);
        let token = common::reset_token(mail);
        let info = service.inspect(&token).await.expect("usable");
        // The email names the account its link resets and goes to that
        // account's stored address.
        assert!(mail.expose_text().contains(&format!("\"{}\"", info.username)));
        let stored = fx
            .accounts
            .get(&info.account)
            .and_then(|a| a.email)
            .expect("email");
        assert_eq!(mail.to.address(), stored);
        by_user.push((info.username, token));
    }
    by_user.sort();
    let (albert, alice) = (&by_user[0], &by_user[1]);
    assert_eq!((albert.0.as_str(), alice.0.as_str()), ("albert", "alice"));
    assert_ne!(albert.1, alice.1);

    // Alice's link resets alice only; albert's link is untouched by it.
    let done = set(&service, &alice.1, PW_ALICE).await;
    assert_eq!(done.account, AccountId::from("a1"));
    assert!(verify(&service, "a1", PW_ALICE).await);
    assert!(!verify(&service, "a2", PW_ALICE).await);
    let info = service
        .inspect(&albert.1)
        .await
        .expect("albert's link still works");
    assert_eq!(info.account, AccountId::from("a2"));

    let done = set(&service, &albert.1, PW_ALBERT).await;
    assert_eq!(done.account, AccountId::from("a2"));
    assert!(verify(&service, "a2", PW_ALBERT).await);
    assert!(
        verify(&service, "a1", PW_ALICE).await,
        "alice keeps her new password"
    );
    assert!(!verify(&service, "a1", PW_ALBERT).await);
    assert!(!verify(&service, "b1", PW_ALICE).await && !verify(&service, "b1", PW_ALBERT).await);

    // Each password-changed notice names its own account.
    let notices: Vec<_> = fx
        .mailer
        .sent()
        .into_iter()
        .filter(|m| m.kind == EmailKind::PasswordChanged)
        .collect();
    assert_eq!(notices.len(), 2);
    assert!(notices[0].expose_text().contains("\"alice\""));
    assert!(notices[1].expose_text().contains("\"albert\""));
}

#[tokio::test]
async fn a_disabled_sharer_is_skipped_and_the_other_still_gets_a_link() {
    let fx = fixture();
    fx.accounts.set_disabled(&AccountId::from("a2"), true);
    let service = fx.service();
    let token = fx.request_token(&service, "family@example.com").await;
    assert_eq!(set(&service, &token, GOOD_PASSWORD).await.username, "alice");
}

#[tokio::test]
async fn combined_policy_sends_one_email_listing_each_account_with_its_own_link() {
    let fx = fixture();
    let service = fx
        .builder()
        .duplicate_email_policy(DuplicateEmailPolicy::CombinedEmail)
        .build()
        .expect("valid");
    service
        .request("FAMILY@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    let sent = fx.mailer.sent();
    assert_eq!(sent.len(), 1, "one combined email");
    let mail = &sent[0];
    assert_eq!(mail.kind, EmailKind::ResetCombined);
    let tokens = common::reset_tokens(mail);
    assert_eq!(tokens.len(), 2, "one link per account");
    assert_ne!(tokens[0], tokens[1]);
    let text = mail.expose_text();
    let hrefs = common::hrefs(mail.expose_html());
    for token in &tokens {
        let info = service.inspect(token).await.expect("usable");
        // The account's name stands right before its own link.
        let link = format!("{RESET_PREFIX}{token}");
        let at = text.find(&link).expect("link in text");
        let named = text[..at].rfind("Account \"").expect("account heading");
        assert!(
            text[named..at].contains(&format!("\"{}\"", info.username)),
            "{}",
            info.username
        );
        assert!(hrefs.contains(&link), "the HTML part carries the link too");
    }
    let first = service.inspect(&tokens[0]).await.expect("usable").account;
    let second = service.inspect(&tokens[1]).await.expect("usable").account;
    let mut ids = [first.clone(), second.clone()];
    ids.sort();
    assert_eq!(ids, [AccountId::from("a1"), AccountId::from("a2")]);

    assert_eq!(set(&service, &tokens[0], PW_ALICE).await.account, first);
    assert!(verify(&service, &first.0, PW_ALICE).await);
    assert!(!verify(&service, &second.0, PW_ALICE).await);
    assert_eq!(set(&service, &tokens[1], PW_ALBERT).await.account, second);
    assert!(verify(&service, &second.0, PW_ALBERT).await);
    assert!(verify(&service, &first.0, PW_ALICE).await);
}

#[tokio::test]
async fn require_username_policy_sends_no_link_for_a_shared_email_but_works_by_username() {
    let fx = fixture();
    let service = fx
        .builder()
        .duplicate_email_policy(DuplicateEmailPolicy::RequireUsername)
        .build()
        .expect("valid");
    let outcome = service
        .request("family@example.com", &RequestContext::default())
        .await
        .expect("accepted");
    assert_eq!(outcome, RequestAccepted, "same public outcome");
    let sent = fx.mailer.sent();
    assert_eq!(sent.len(), 1);
    let mail = &sent[0];
    assert_eq!(mail.kind, EmailKind::UsernameRequired);
    assert!(common::all_links(mail).is_empty(), "no reset link at all");
    assert!(!mail.expose_text().contains("token="));
    assert!(mail.expose_text().contains("alice") && mail.expose_text().contains("albert"));
    assert_eq!(fx.count("token_issued"), 0);
    assert!(fx.tokens.is_empty());

    // Asking by username gives that account its link.
    let token = fx.request_token(&service, "albert").await;
    let done = set(&service, &token, PW_ALBERT).await;
    assert_eq!(done.account, AccountId::from("a2"));
    assert!(verify(&service, "a2", PW_ALBERT).await);
    assert!(!verify(&service, "a1", PW_ALBERT).await);

    // An unshared address still gets its link directly.
    fx.request_token(&service, "bob@example.com").await;
    assert!(
        fx.kinds()
            .iter()
            .any(|k| matches!(k, EventKind::ResetRequested { via: "username", .. }))
    );
}
