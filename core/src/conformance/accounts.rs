//! The [`AccountDirectory`] suites: behaviour ([`account_directory_suite`],
//! run against [`fixture_accounts`]) and Unicode matching
//! ([`unicode_matching_suite`], run against [`matching_accounts`]).

use crate::account::{Account, AccountDirectory, AccountId};
use crate::hasher::PasswordHash;
use crate::identifier::canonicalize;

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

/// Whether a [`MatchingVector`] types an email address or a username.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed {
    /// Looked up with `find_by_email`.
    Email,
    /// Looked up with `find_by_username`.
    Username,
}

/// One Unicode matching case: what the user types and which account of
/// [`matching_accounts`] it must find (`None`: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchingVector {
    /// What the case is about.
    pub what: &'static str,
    /// Email or username.
    pub kind: Typed,
    /// The identifier as typed.
    pub typed: &'static str,
    /// The id of the account it must find, if any.
    pub finds: Option<&'static str>,
}

/// The accounts [`unicode_matching_suite`] expects the directory to hold
/// (and nothing else): stored values that lower-casing alone, or a store
/// that normalises differently from the core, fails to match.
pub fn matching_accounts() -> Vec<Account> {
    vec![
        Account::new("uv-sharp-s", "uv-sharp-s", "straße@example.test"),
        Account::new("uv-sigma", "Σίσυφος", "uv-sigma@example.test"),
        Account::new("uv-fullwidth", "uv-fullwidth", "Ｆrank@example.test"),
        Account::new("uv-dotless-i", "uv-dotless-i", "mıke@example.test"),
        Account::new("uv-dotted-i", "İnci", "uv-dotted-i@example.test"),
        Account::new("uv-kelvin", "\u{212A}elvin", "uv-kelvin@example.test"),
        Account::new("uv-ligature", "e\u{FB00}ort", "\u{FB01}ona@example.test"),
        Account::new("uv-marks", "Zoe\u{308}", "jos\u{E9}@example.test"),
    ]
}

/// The shared list of Unicode matching cases every directory runs: ß/ss,
/// final sigma, fullwidth forms, dotless and dotted i, the Kelvin sign,
/// ligatures and combining marks.
pub fn matching_vectors() -> Vec<MatchingVector> {
    use Typed::{Email, Username};
    let v = |what, kind, typed, finds| MatchingVector {
        what,
        kind,
        typed,
        finds,
    };
    vec![
        v("ß folds to ss", Email, "STRASSE@example.test", Some("uv-sharp-s")),
        v("ß folds to ss", Email, "strasse@example.test", Some("uv-sharp-s")),
        v(
            "capital ẞ folds to ss",
            Email,
            "STRAẞE@EXAMPLE.TEST",
            Some("uv-sharp-s"),
        ),
        v("final sigma matches sigma", Username, "ΣΊΣΥΦΟΣ", Some("uv-sigma")),
        v("final sigma matches sigma", Username, "σίσυφοσ", Some("uv-sigma")),
        v("accents are not stripped", Username, "σισυφος", None),
        v(
            "fullwidth letters match ASCII",
            Email,
            "frank@example.test",
            Some("uv-fullwidth"),
        ),
        v(
            "fullwidth letters match ASCII",
            Email,
            "ＦＲＡＮＫ@example.test",
            Some("uv-fullwidth"),
        ),
        v("dotless ı is not i", Email, "mike@example.test", None),
        v("dotless ı is not I", Email, "MIKE@example.test", None),
        v(
            "dotless ı matches itself in any case",
            Email,
            "MıKE@example.test",
            Some("uv-dotless-i"),
        ),
        v("dotted İ is not i", Username, "inci", None),
        v("dotted İ matches itself", Username, "İNCI", Some("uv-dotted-i")),
        v("Kelvin sign matches k", Username, "kelvin", Some("uv-kelvin")),
        v("Kelvin sign matches K", Username, "KELVIN", Some("uv-kelvin")),
        v(
            "ligature ﬁ matches fi",
            Email,
            "fiona@example.test",
            Some("uv-ligature"),
        ),
        v(
            "ligature ﬁ matches FI",
            Email,
            "FIONA@example.test",
            Some("uv-ligature"),
        ),
        v("ligature ﬀ matches FF", Username, "EFFORT", Some("uv-ligature")),
        v(
            "combining acute matches precomposed é",
            Email,
            "jose\u{301}@example.test",
            Some("uv-marks"),
        ),
        v(
            "precomposed É matches é",
            Email,
            "JOS\u{C9}@example.test",
            Some("uv-marks"),
        ),
        v("marks are not stripped", Email, "jose@example.test", None),
        v(
            "precomposed Ë matches e + combining diaeresis",
            Username,
            "ZO\u{CB}",
            Some("uv-marks"),
        ),
    ]
}

/// Runs [`matching_vectors`] against a directory holding exactly
/// [`matching_accounts`]: each typed identifier, canonicalised as the flow
/// does, finds exactly the expected account, which comes back with its
/// address as stored (mail goes there).
pub async fn unicode_matching_suite(dir: &dyn AccountDirectory) {
    let stored: Vec<Account> = matching_accounts();
    let mut wrong = Vec::new();
    for vector in matching_vectors() {
        let canonical = canonicalize(vector.typed);
        let found: Vec<Account> = match vector.kind {
            Typed::Email => dir
                .find_by_email(&canonical)
                .await
                .expect("accounts.find_by_email"),
            Typed::Username => dir
                .find_by_username(&canonical)
                .await
                .expect("accounts.find_by_username")
                .into_iter()
                .collect(),
        };
        let ids: Vec<&str> = found.iter().map(|a| a.id.0.as_str()).collect();
        let expected: Vec<&str> = vector.finds.into_iter().collect();
        if ids != expected {
            wrong.push(format!(
                "{} ({:?} {:?}): expected {expected:?}, found {ids:?}",
                vector.what, vector.kind, vector.typed
            ));
            continue;
        }
        for account in &found {
            let original = stored.iter().find(|a| a.id == account.id);
            if account.email != original.and_then(|a| a.email.clone()) {
                wrong.push(format!(
                    "{}: the stored address comes back unchanged, got {:?}",
                    vector.what, account.email
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "Unicode matching differs from the core's canonical form:\n{}",
        wrong.join("\n")
    );
}
