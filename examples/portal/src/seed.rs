//! The demo accounts every portal starts with.
//!
//! Their passwords are hashed at start with the service's hasher, after the
//! same normalisation `ResetService::verify_password` applies, so signing in
//! with them goes through exactly the path a reset password does.

use std::sync::Arc;

use resetkit::account::Account;
use resetkit::hasher::PasswordHasher;
use resetkit::policy::PasswordPolicy;
use secrecy::SecretString;

use crate::config::PortalError;

/// One seeded account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoAccount {
    /// Account id (the username).
    pub id: &'static str,
    /// Username.
    pub username: &'static str,
    /// Stored email address.
    pub email: &'static str,
    /// Password it starts with.
    pub password: &'static str,
    /// Disabled accounts cannot sign in or reset (and are not told apart).
    pub disabled: bool,
}

/// The seeded accounts: `dave` and `erin` share `family@example.test`;
/// `carol` is disabled; `operator` may open the operator console (`/admin`).
pub const DEMO_ACCOUNTS: [DemoAccount; 6] = [
    DemoAccount {
        id: "alice",
        username: "alice",
        email: "alice@example.test",
        password: "alice-demo-password-1",
        disabled: false,
    },
    DemoAccount {
        id: "bob",
        username: "bob",
        email: "bob@example.test",
        password: "bob-demo-password-22",
        disabled: false,
    },
    DemoAccount {
        id: "carol",
        username: "carol",
        email: "carol@example.test",
        password: "carol-demo-password-5",
        disabled: true,
    },
    DemoAccount {
        id: "dave",
        username: "dave",
        email: "family@example.test",
        password: "dave-demo-password-3",
        disabled: false,
    },
    DemoAccount {
        id: "erin",
        username: "erin",
        email: "family@example.test",
        password: "erin-demo-password-4",
        disabled: false,
    },
    DemoAccount {
        id: "operator",
        username: "operator",
        email: "operator@example.test",
        password: "operator-demo-password-6",
        disabled: false,
    },
];

/// The demo accounts allowed into the operator console.
pub const DEMO_OPERATORS: [&str; 1] = ["operator"];

/// The demo accounts with their passwords hashed by `hasher`.
pub(crate) async fn demo_accounts(hasher: Arc<dyn PasswordHasher>) -> Result<Vec<Account>, PortalError> {
    tokio::task::spawn_blocking(move || {
        DEMO_ACCOUNTS
            .iter()
            .map(|demo| {
                let normalized = SecretString::from(PasswordPolicy::normalize(demo.password));
                let hash = hasher.hash(&normalized).map_err(|e| {
                    PortalError::Startup(format!("hashing the password of `{}`: {e}", demo.id))
                })?;
                Ok(Account::new(demo.id, demo.username, demo.email)
                    .with_disabled(demo.disabled)
                    .with_password_hash(hash))
            })
            .collect()
    })
    .await
    .map_err(|e| PortalError::Startup(format!("hashing the demo passwords: {e}")))?
}

/// `load0` … `load{n-1}` with addresses `load{i}@load.test` and no
/// password: accounts for load tests to ask resets for.
pub(crate) fn load_test_accounts(n: usize) -> impl Iterator<Item = Account> {
    (0..n).map(|i| {
        Account::new(
            format!("load{i}"),
            format!("load{i}"),
            format!("load{i}@load.test"),
        )
    })
}
