use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::lock;
use crate::account::{Account, AccountDirectory, AccountId};
use crate::error::StoreError;
use crate::hasher::PasswordHash;
use crate::identifier::canonicalize;

/// Accounts in memory; clones share the same data.
#[derive(Debug, Clone, Default)]
pub struct InMemoryAccounts {
    accounts: Arc<Mutex<BTreeMap<AccountId, Account>>>,
}

impl InMemoryAccounts {
    /// Adds or replaces an account.
    pub fn insert(&self, account: Account) {
        lock(&self.accounts).insert(account.id.clone(), account);
    }

    /// Changes an account's stored email (kills links sent to the old one).
    pub fn set_email(&self, id: &AccountId, email: &str) -> bool {
        self.update(id, |a| a.email = Some(email.to_owned()))
    }

    /// Enables or disables an account.
    pub fn set_disabled(&self, id: &AccountId, disabled: bool) -> bool {
        self.update(id, |a| a.disabled = disabled)
    }

    /// A copy of the account.
    pub fn get(&self, id: &AccountId) -> Option<Account> {
        lock(&self.accounts).get(id).cloned()
    }

    fn update(&self, id: &AccountId, f: impl FnOnce(&mut Account)) -> bool {
        lock(&self.accounts).get_mut(id).map(f).is_some()
    }
}

#[async_trait]
impl AccountDirectory for InMemoryAccounts {
    async fn find_by_email(&self, canonical_email: &str) -> Result<Vec<Account>, StoreError> {
        Ok(lock(&self.accounts)
            .values()
            .filter(|a| {
                a.email
                    .as_deref()
                    .is_some_and(|e| canonicalize(e) == canonical_email)
            })
            .cloned()
            .collect())
    }

    async fn find_by_username(&self, canonical_username: &str) -> Result<Option<Account>, StoreError> {
        Ok(lock(&self.accounts)
            .values()
            .find(|a| canonicalize(&a.username) == canonical_username)
            .cloned())
    }

    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        Ok(lock(&self.accounts).get(id).cloned())
    }

    async fn set_password_hash(&self, id: &AccountId, hash: &PasswordHash) -> Result<(), StoreError> {
        if self.update(id, |a| a.password_hash = Some(hash.clone())) {
            Ok(())
        } else {
            Err(StoreError::NotFound {
                operation: "accounts.set_password_hash",
                what: format!("account `{id}`"),
            })
        }
    }
}
