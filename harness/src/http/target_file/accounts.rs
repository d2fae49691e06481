//! `[[accounts]]`, `[[lookalikes]]` and `[limits]`: who the app knows and
//! how often it mails them.

use secrecy::SecretString;
use serde::Deserialize;

use super::de;

/// `[[accounts]]`: one test account the app has.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestAccount {
    /// What the user types to request a reset (username or email).
    /// Accounts that share an address may share it in an email-only form.
    pub identifier: String,
    /// The account's username: what it signs in with and how reports name
    /// it (default: `identifier`). Needed when accounts share `identifier`.
    pub username: Option<String>,
    /// The address stored for the account (where mail must go).
    pub email: String,
    /// The current sign-in password, if known.
    #[serde(default, deserialize_with = "de::opt_secret")]
    pub password: Option<SecretString>,
    /// The account is disabled (it must get the same answer and no mail).
    #[serde(default)]
    pub disabled: bool,
}

impl TestAccount {
    /// The account's unique name in the file (`username`, else `identifier`).
    pub fn key(&self) -> &str {
        self.username.as_deref().unwrap_or(&self.identifier)
    }

    /// What it signs in with.
    pub fn login_name(&self) -> &str {
        self.key()
    }
}

/// `[[lookalikes]]`: an address that looks like an account's but is not it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookAlike {
    /// What the attacker types (`ALICE@example.test`, `alıce@example.test`).
    pub typed: String,
    /// The account it imitates (its `username`, else its `identifier`).
    pub account: String,
}

/// Whether a look-alike differs from the stored address only by letter case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookAlikeKind {
    /// Same address up to case (`Alice@Example.test`).
    CaseVariant,
    /// A different string that renders alike (dotless ı, Cyrillic а, ...).
    Unicode,
}

impl LookAlike {
    /// Its kind, given the imitated account's stored address.
    pub fn kind(&self, stored: &str) -> LookAlikeKind {
        if self.typed.to_lowercase() == stored.to_lowercase() {
            LookAlikeKind::CaseVariant
        } else {
            LookAlikeKind::Unicode
        }
    }
}

/// `[limits]`: the app's rate limits, when it has them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Reset emails one account gets per window.
    pub per_account: Option<u32>,
    /// Reset requests one client address may make per window.
    pub per_client: Option<u32>,
    /// Set-password submits one client address may make per window.
    pub set_password: Option<u32>,
    /// The window of these limits, in seconds (django-allauth: 60). Without
    /// it, the whole run counts as one window (as for an app that keeps its
    /// counts for longer than a run takes).
    pub window_secs: Option<f64>,
    /// How a request refused by a limit is answered, when the app says so
    /// (django-allauth: `{ status = 429 }`); such an answer is then taken
    /// for throttling, not for a broken flow.
    pub throttled: Option<super::Expect>,
    /// Longest the harness waits, each time, for a spent window to pass
    /// before it gives up on a check (default 90 s; only with `window_secs`).
    #[serde(default = "default_max_wait")]
    pub max_wait_secs: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_account: None,
            per_client: None,
            set_password: None,
            window_secs: None,
            throttled: None,
            max_wait_secs: default_max_wait(),
        }
    }
}

fn default_max_wait() -> f64 {
    90.0
}

impl Limits {
    /// The declared window, if any.
    pub fn window(&self) -> Option<std::time::Duration> {
        self.window_secs.map(std::time::Duration::from_secs_f64)
    }

    /// [`max_wait_secs`](Self::max_wait_secs) as a duration.
    pub fn max_wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.max_wait_secs)
    }
}
