//! The [`AccountDirectory`] suite, run against [`fixture_accounts`].

use resetkit::account::{Account, AccountDirectory, AccountId};
use resetkit::hasher::PasswordHash;

/// The accounts [`account_directory_suite`] expects the directory to hold.
/// Two of them share one email address, written with different case.
pub fn fixture_accounts() -> Vec<Account> {
    vec![
        Account::new("fx-1", "Alice", "Alice@Example.com"),
        Account::new("fx-2", "alice-work", "alice@example.COM"),
        Account::new("fx-3", "bob", "bob@example.org")
            .with_disabled(true)
            .with_owner("owner-1"),
        Account::new("fx-4", "carol", "carol@example.net").with_email_confirmed(false),
    ]
}

/// Every [`AccountDirectory`] behaviour the flow relies on. The directory
/// must hold exactly [`fixture_accounts`].
pub async fn account_directory_suite(dir: &dyn AccountDirectory) {
    let mut shared = dir
        .find_by_email("alice@example.com")
        .await
        .expect("accounts.find_by_email");
    shared.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<&str> = shared.iter().map(|a| a.id.0.as_str()).collect();
    assert_eq!(
        ids,
        vec!["fx-1", "fx-2"],
        "canonical lookup finds every account sharing the address"
    );
    assert_eq!(
        shared[0].email.as_deref(),
        Some("Alice@Example.com"),
        "the stored address is returned as stored"
    );
    assert!(
        dir.find_by_email("nobody@example.com")
            .await
            .expect("accounts.find_by_email")
            .is_empty()
    );

    let alice = dir
        .find_by_username("alice")
        .await
        .expect("accounts.find_by_username")
        .expect("alice exists");
    assert_eq!(alice.id, AccountId::from("fx-1"), "usernames match canonically");
    assert!(
        dir.find_by_username("mallory")
            .await
            .expect("accounts.find_by_username")
            .is_none()
    );

    let bob = dir
        .find_by_id(&AccountId::from("fx-3"))
        .await
        .expect("accounts.find_by_id")
        .expect("bob exists");
    assert!(bob.disabled, "disabled flag round-trips");
    assert_eq!(bob.owner.as_deref(), Some("owner-1"), "owner round-trips");
    let carol = dir
        .find_by_id(&AccountId::from("fx-4"))
        .await
        .expect("accounts.find_by_id")
        .expect("carol exists");
    assert!(!carol.email_confirmed, "email_confirmed round-trips");
    assert!(
        dir.find_by_id(&AccountId::from("fx-404"))
            .await
            .expect("accounts.find_by_id")
            .is_none()
    );

    let before = alice.password_stamp();
    let hash = PasswordHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA");
    dir.set_password_hash(&alice.id, &hash)
        .await
        .expect("accounts.set_password_hash");
    let after = dir
        .find_by_id(&alice.id)
        .await
        .expect("accounts.find_by_id")
        .expect("alice exists");
    assert_eq!(
        after.password_hash.as_ref().map(PasswordHash::expose),
        Some(hash.expose()),
        "new hash is stored"
    );
    assert_ne!(
        after.password_stamp(),
        before,
        "the password stamp changes with the hash"
    );
    assert!(
        dir.set_password_hash(&AccountId::from("fx-404"), &hash)
            .await
            .is_err(),
        "setting the password of an unknown account is an error"
    );
}
