//! The host application's accounts, as the reset flow sees them.
//!
//! resetkit does not own the host's user table: an [`AccountDirectory`] maps
//! onto it. The in-memory directory in [`crate::memory`] is the embedded
//! default and the reference for tests.
//!
//! ```
//! use resetkit::account::{Account, AccountId};
//!
//! let account = Account::new("u1", "alice", "Alice@Example.com");
//! assert_eq!(account.id, AccountId::from("u1"));
//! // The password state is derived from the stored hash, never printed.
//! assert!(!format!("{account:?}").contains("argon2"));
//! ```

use std::fmt;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::event::Event;
use crate::hasher::PasswordHash;
use crate::identifier::Identifier;
use crate::store::{EventLog, Settle};

/// The host's stable identifier for an account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub String);

impl From<&str> for AccountId {
    fn from(s: &str) -> Self {
        AccountId(s.to_owned())
    }
}

impl From<String> for AccountId {
    fn from(s: String) -> Self {
        AccountId(s)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account as the directory returns it.
#[derive(Clone)]
#[non_exhaustive]
pub struct Account {
    /// Stable id.
    pub id: AccountId,
    /// Username as stored (unique in the host).
    pub username: String,
    /// Email address as stored; mail goes here, never to the typed text.
    pub email: Option<String>,
    /// Whether the host has confirmed the email address.
    pub email_confirmed: bool,
    /// Disabled accounts cannot reset (and are not told apart publicly).
    pub disabled: bool,
    /// The account's owner (e.g. the portal user who created it), used by
    /// the owner sender strategy.
    pub owner: Option<String>,
    /// The stored password hash; its digest binds tokens to the password state.
    pub password_hash: Option<PasswordHash>,
}

impl Account {
    /// A confirmed, enabled account with no password yet.
    pub fn new(id: impl Into<String>, username: impl Into<String>, email: impl Into<String>) -> Self {
        Account {
            id: AccountId(id.into()),
            username: username.into(),
            email: Some(email.into()),
            email_confirmed: true,
            disabled: false,
            owner: None,
            password_hash: None,
        }
    }

    /// Sets the owner.
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Marks the account disabled or enabled.
    pub fn with_disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }

    /// Marks the email confirmed or not.
    pub fn with_email_confirmed(mut self, confirmed: bool) -> Self {
        self.email_confirmed = confirmed;
        self
    }

    /// Sets the stored password hash.
    pub fn with_password_hash(mut self, hash: PasswordHash) -> Self {
        self.password_hash = Some(hash);
        self
    }

    /// Sets the email address (`None` for accounts without one).
    pub fn with_email(mut self, email: Option<String>) -> Self {
        self.email = email;
        self
    }

    /// A digest of the current password state; it changes whenever the
    /// password does, which kills links issued before.
    pub fn password_stamp(&self) -> PasswordStamp {
        PasswordStamp::of(self.password_hash.as_ref())
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("email_confirmed", &self.email_confirmed)
            .field("disabled", &self.disabled)
            .field("owner", &self.owner)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// A short digest of a password hash (or of its absence). Not a secret on its
/// own, but printed redacted anyway.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordStamp(String);

impl PasswordStamp {
    /// The stamp of `hash`.
    pub fn of(hash: Option<&PasswordHash>) -> Self {
        let mut digest = Sha256::new();
        match hash {
            Some(h) => {
                digest.update(b"set:");
                digest.update(h.expose().as_bytes());
            }
            None => digest.update(b"unset"),
        }
        let bytes = digest.finalize();
        PasswordStamp(crate::token::hex(&bytes[..16]))
    }

    /// Rebuilds a stamp read back from storage.
    pub fn from_stored(text: impl Into<String>) -> Self {
        PasswordStamp(text.into())
    }

    /// The text to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordStamp([REDACTED])")
    }
}

/// The host's accounts.
///
/// Lookups receive canonical identifiers (see [`crate::identifier`]); an
/// implementation must compare them with the canonical form of what it stores.
#[async_trait]
pub trait AccountDirectory: Send + Sync {
    /// All accounts whose stored email canonicalises to `canonical_email`
    /// (several accounts may share one address).
    async fn find_by_email(&self, canonical_email: &str) -> Result<Vec<Account>, StoreError>;

    /// The account whose username canonicalises to `canonical_username`.
    async fn find_by_username(&self, canonical_username: &str) -> Result<Option<Account>, StoreError>;

    /// The account with this id.
    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, StoreError>;

    /// Stores a new password hash for the account.
    async fn set_password_hash(&self, id: &AccountId, hash: &PasswordHash) -> Result<(), StoreError>;

    /// Looks `identifier` up ([`find_by_email`](Self::find_by_email) or
    /// [`find_by_username`](Self::find_by_username)) and, when nothing
    /// matches, settles the request in the same step: `unknown` (the
    /// events of an unknown identifier) recorded in `log` and the request
    /// done ([`RequestInbox::settle`](crate::store::RequestInbox::settle)).
    /// When accounts match nothing is written.
    ///
    /// The default makes the calls in turn; a backend that holds the log
    /// and the inbox too may do it in one statement.
    async fn find_or_settle(
        &self,
        identifier: &Identifier,
        unknown: Vec<Event>,
        log: &dyn EventLog,
        settle: Settle<'_>,
    ) -> Result<Vec<Account>, StoreError> {
        crate::store::steps::compose_find_or_settle(self, identifier, unknown, log, settle).await
    }

    /// This directory as its concrete type, for a [combined
    /// step](crate::store::steps) of a backend whose stores share one
    /// database to recognise it as one of its own (e.g.
    /// [`TokenStore::find_with_account`](crate::store::TokenStore::find_with_account)
    /// reading the token and its account in one statement). Default
    /// `None`: combined steps then compose the primitives. A decorator
    /// forwards it only when the combined steps may bypass it.
    fn colocated(&self) -> Option<&dyn std::any::Any> {
        None
    }
}
