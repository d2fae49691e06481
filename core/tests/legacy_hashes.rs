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
