//! An application moving to resetkit keeps its users' bcrypt / PBKDF2 /
//! scrypt hashes: sign-in verifies them, reports "needs rehash", and the
//! rehash stores argon2id.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use resetkit::PasswordCheck;
use resetkit::hasher::PasswordHash;
use resetkit::legacy_hash::LegacyFormat;
use resetkit::prelude::*;
use secrecy::SecretString;

const PASSWORD: &str = "legacy password 1";
const DJANGO: &str = "pbkdf2_sha256$1000$c2FsdHNhbHQ$bT86YLGvDWl732f3wJjiqRNnY/5Czo0VlS7c5JZrgEI=";
const SCRYPT_PHC: &str =
    "$scrypt$ln=10,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$gQnE8of7J6Z14EdXXhgOox04ePGhDnkPUlX217qmhIE";

#[tokio::test]
async fn legacy_hashes_verify_report_needs_rehash_and_upgrade_to_argon2id() {
    let accounts = Arc::new(InMemoryAccounts::default());
    let bcrypt_hash = bcrypt::hash(PASSWORD, 4).unwrap();
    for (id, hash) in [("b", bcrypt_hash.as_str()), ("d", DJANGO), ("s", SCRYPT_PHC)] {
        accounts.insert(
            Account::new(id, id, format!("{id}@example.com"))
                .with_password_hash(PasswordHash::from_phc(hash)),
        );
    }
    let service = ResetService::builder()
        .base_url("https://app.example.com")
        .accounts(accounts.clone())
        .tokens(Arc::new(InMemoryTokenStore::default()))
        .events(Arc::new(InMemoryEventLog::default()))
        .mailer(Arc::new(CapturingMailer::default()))
        .sender(Arc::new(FixedSender::new(
            Mailbox::new(None, "noreply@example.com").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .build()
        .unwrap();
    let right = SecretString::from(PASSWORD);
    let wrong = SecretString::from("legacy password 2");
    for (id, format) in [
        ("b", LegacyFormat::Bcrypt),
        ("d", LegacyFormat::DjangoPbkdf2Sha256),
        ("s", LegacyFormat::Scrypt),
    ] {
        let account = AccountId::from(id);
        assert_eq!(
            service.check_password(&account, &wrong).await.unwrap(),
            PasswordCheck::Wrong
        );
        assert_eq!(
            service.check_password(&account, &right).await.unwrap(),
            PasswordCheck::NeedsRehash(format)
        );
        assert!(service.verify_password(&account, &right).await.unwrap(), "{id}");
        service.rehash_password(&account, &right).await.unwrap();
        let stored = accounts
            .find_by_id(&account)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .unwrap();
        assert!(stored.expose().starts_with("$argon2id$"), "{id}");
        assert_eq!(
            service.check_password(&account, &right).await.unwrap(),
            PasswordCheck::Correct
        );
        assert_eq!(
            service.check_password(&account, &wrong).await.unwrap(),
            PasswordCheck::Wrong
        );
    }
}

/// A service with one Django-hashed account, processing requests before
/// `request` returns, and the mailer it sends with.
fn django_service() -> (ResetService, Arc<InMemoryAccounts>, CapturingMailer) {
    let accounts = Arc::new(InMemoryAccounts::default());
    accounts
        .insert(Account::new("d", "dan", "dan@example.com").with_password_hash(PasswordHash::new(DJANGO)));
    let mailer = CapturingMailer::default();
    let service = ResetService::builder()
        .base_url("https://app.example.com")
        .accounts(accounts.clone())
        .tokens(Arc::new(InMemoryTokenStore::default()))
        .events(Arc::new(InMemoryEventLog::default()))
        .mailer(Arc::new(mailer.clone()))
        .sender(Arc::new(FixedSender::new(
            Mailbox::new(None, "noreply@example.com").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .request_processing(RequestProcessing::Immediate)
        .build()
        .unwrap();
    (service, accounts, mailer)
}

fn token_of(mailer: &CapturingMailer) -> String {
    let sent = mailer.sent();
    let text = sent.last().unwrap().expose_text();
    let link = text
        .lines()
        .find(|l| l.starts_with("https://app.example.com/reset?"))
        .unwrap();
    link.split("token=").nth(1).unwrap().to_owned()
}

#[tokio::test]
async fn upgrading_a_legacy_hash_at_sign_in_keeps_a_pending_reset_link() {
    let (service, accounts, mailer) = django_service();
    service
        .request("dan@example.com", &RequestContext::default())
        .await
        .unwrap();
    let token = token_of(&mailer);
    let dan = AccountId::from("d");
    let right = SecretString::from(PASSWORD);
    // The user remembers the password after all and signs in: the app
    // upgrades the Django hash, as documented.
    assert!(matches!(
        service.check_password(&dan, &right).await.unwrap(),
        PasswordCheck::NeedsRehash(_)
    ));
    service.rehash_password(&dan, &right).await.unwrap();
    let stored = accounts.find_by_id(&dan).await.unwrap().unwrap();
    assert!(stored.password_hash.unwrap().expose().starts_with("$argon2id$"));
    // Same password, so not a password change: the emailed link still works.
    service
        .inspect(&token)
        .await
        .expect("the link survives the re-hash");
    let new = SecretString::from("a brand new passphrase, quite long");
    service.complete(&token, new.clone(), new.clone()).await.unwrap();
    assert_eq!(
        service.check_password(&dan, &new).await.unwrap(),
        PasswordCheck::Correct
    );
}

#[tokio::test]
async fn rehashing_another_password_is_refused_and_a_real_change_still_kills_the_link() {
    let (service, accounts, mailer) = django_service();
    service
        .request("dan@example.com", &RequestContext::default())
        .await
        .unwrap();
    let token = token_of(&mailer);
    let dan = AccountId::from("d");
    let other = SecretString::from("not the password at all");
    let err = service.rehash_password(&dan, &other).await.unwrap_err();
    assert!(matches!(err, CompleteError::NotCurrentPassword), "{err:?}");
    let stored = accounts.find_by_id(&dan).await.unwrap().unwrap();
    assert_eq!(stored.password_hash.unwrap().expose(), DJANGO, "nothing stored");
    service.inspect(&token).await.expect("link alive");
    // A real change (the host writing another password) still kills it.
    let hash = Argon2Hasher::fast_insecure_for_tests().hash(&other).unwrap();
    accounts.set_password_hash(&dan, &hash).await.unwrap();
    assert!(service.inspect(&token).await.is_err());
}
