use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::lock;
use crate::account::{Account, AccountDirectory, AccountId};
use crate::error::StoreError;
use crate::hasher::PasswordHash;
use crate::identifier::canonicalize;

/// The accounts and two indexes on their canonical email and username, so
/// that a lookup costs O(log n) instead of canonicalising every stored
/// address.
#[derive(Debug, Default)]
struct State {
    accounts: BTreeMap<AccountId, Account>,
    by_email: HashMap<String, BTreeSet<AccountId>>,
    by_username: HashMap<String, BTreeSet<AccountId>>,
}

impl State {
    fn keys(account: &Account) -> (Option<String>, String) {
        (
            account.email.as_deref().map(canonicalize),
            canonicalize(&account.username),
        )
    }

    fn unindex(&mut self, account: &Account) {
        let (email, username) = Self::keys(account);
        for (index, key) in [
            (&mut self.by_email, email),
            (&mut self.by_username, Some(username)),
        ] {
            let Some(key) = key else { continue };
            if let Some(ids) = index.get_mut(&key) {
                ids.remove(&account.id);
                if ids.is_empty() {
                    index.remove(&key);
                }
            }
        }
    }

    fn put(&mut self, account: Account) {
        if let Some(old) = self.accounts.remove(&account.id) {
            self.unindex(&old);
        }
        let (email, username) = Self::keys(&account);
        if let Some(email) = email {
            self.by_email.entry(email).or_default().insert(account.id.clone());
        }
        self.by_username
            .entry(username)
            .or_default()
            .insert(account.id.clone());
        self.accounts.insert(account.id.clone(), account);
    }

    fn matching<'a>(&'a self, index: &'a HashMap<String, BTreeSet<AccountId>>, key: &str) -> Vec<Account> {
        index
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|id| self.accounts.get(id))
            .cloned()
            .collect()
    }
}

/// Accounts in memory; clones share the same data.
#[derive(Debug, Clone, Default)]
pub struct InMemoryAccounts {
    state: Arc<Mutex<State>>,
}

impl InMemoryAccounts {
    /// Adds or replaces an account.
    pub fn insert(&self, account: Account) {
        lock(&self.state).put(account);
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
        lock(&self.state).accounts.get(id).cloned()
    }

    fn update(&self, id: &AccountId, f: impl FnOnce(&mut Account)) -> bool {
        let mut state = lock(&self.state);
        let Some(mut account) = state.accounts.get(id).cloned() else {
            return false;
        };
        f(&mut account);
        state.put(account);
        true
    }
}

#[async_trait]
impl AccountDirectory for InMemoryAccounts {
    async fn find_by_email(&self, canonical_email: &str) -> Result<Vec<Account>, StoreError> {
        let state = lock(&self.state);
        Ok(state.matching(&state.by_email, canonical_email))
    }

    async fn find_by_username(&self, canonical_username: &str) -> Result<Option<Account>, StoreError> {
        let state = lock(&self.state);
        Ok(state
            .matching(&state.by_username, canonical_username)
            .into_iter()
            .next())
    }

    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        Ok(lock(&self.state).accounts.get(id).cloned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_indexes_follow_email_changes_and_replacements() {
        let accounts = InMemoryAccounts::default();
        accounts.insert(Account::new("1", "Alice", "Alice@Example.com"));
        accounts.insert(Account::new("2", "bob", "alice@example.com"));
        let shared = accounts
            .find_by_email("alice@example.com")
            .await
            .unwrap_or_default();
        assert_eq!(shared.len(), 2, "a shared address finds every account");
        assert!(accounts.set_email(&AccountId::from("1"), "new@example.com"));
        let ids = |found: Vec<Account>| found.into_iter().map(|a| a.id.0).collect::<Vec<_>>();
        assert_eq!(
            ids(accounts
                .find_by_email("alice@example.com")
                .await
                .unwrap_or_default()),
            vec!["2"]
        );
        assert_eq!(
            ids(accounts
                .find_by_email("new@example.com")
                .await
                .unwrap_or_default()),
            vec!["1"]
        );
        accounts.insert(Account::new("2", "robert", "bob@example.com"));
        assert!(
            accounts
                .find_by_username("bob")
                .await
                .unwrap_or_default()
                .is_none()
        );
        assert!(
            accounts
                .find_by_username("robert")
                .await
                .unwrap_or_default()
                .is_some()
        );
        assert!(
            accounts
                .find_by_email("alice@example.com")
                .await
                .unwrap_or_default()
                .is_empty()
        );
    }
}
