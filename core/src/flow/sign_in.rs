//! Sign-in helpers for the host's own sign-in page, sharing the reset
//! flow's hashing and rate limits: [`ResetService::check_password`],
//! [`ResetService::verify_password`], [`ResetService::rehash_password`]
//! (a legacy hash upgraded at sign-in) and [`ResetService::admit_sign_in`].

use crate::account::AccountId;
use crate::error::StoreError;
use crate::flow::{CompleteError, PasswordCheck, RequestContext, ResetService, run_blocking};
use crate::policy::PasswordPolicy;

impl ResetService {
    /// Checks a sign-in password the way `complete` stored it (NFKC).
    /// Hashes in a legacy format (bcrypt, PBKDF2-SHA256, scrypt; see
    /// [`legacy_hash`](crate::legacy_hash)) verify too; use
    /// [`check_password`](Self::check_password) to learn that one needs rehashing.
    pub async fn verify_password(
        &self,
        account: &AccountId,
        password: &secrecy::SecretString,
    ) -> Result<bool, CompleteError> {
        Ok(self.check_password(account, password).await?.is_correct())
    }

    /// Checks a sign-in password: wrong, correct, or correct against a
    /// legacy hash that should be replaced by an argon2id one (call
    /// [`rehash_password`](Self::rehash_password) with the same password).
    pub async fn check_password(
        &self,
        account: &AccountId,
        password: &secrecy::SecretString,
    ) -> Result<PasswordCheck, CompleteError> {
        use secrecy::ExposeSecret as _;
        let Some(account) = self.inner.accounts.find_by_id(account).await? else {
            return Ok(PasswordCheck::Wrong);
        };
        let Some(hash) = account.password_hash else {
            return Ok(PasswordCheck::Wrong);
        };
        if let Some(format) = crate::legacy_hash::LegacyFormat::detect(hash.expose()) {
            // Legacy hashes were made from the password as typed; accept the
            // NFKC form too (what a reset stores).
            let typed = password.clone();
            let normalized = secrecy::SecretString::from(PasswordPolicy::normalize(password.expose_secret()));
            let stored = hash.expose().to_owned();
            let matched = run_blocking(move || -> Result<bool, crate::hasher::HashError> {
                if crate::legacy_hash::verify_legacy(&typed, &stored)? == Some(true) {
                    return Ok(true);
                }
                Ok(crate::legacy_hash::verify_legacy(&normalized, &stored)? == Some(true))
            })
            .await
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(CompleteError::Internal)?;
            return Ok(if matched {
                PasswordCheck::NeedsRehash(format)
            } else {
                PasswordCheck::Wrong
            });
        }
        let normalized = secrecy::SecretString::from(PasswordPolicy::normalize(password.expose_secret()));
        let hasher = self.inner.hasher.clone();
        let ok = run_blocking(move || hasher.verify(&normalized, &hash))
            .await
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(CompleteError::Internal)?;
        Ok(if ok {
            PasswordCheck::Correct
        } else {
            PasswordCheck::Wrong
        })
    }

    /// Stores an argon2id hash of `password` (NFKC, as `complete` does) for
    /// `account`: the upgrade after [`PasswordCheck::NeedsRehash`].
    ///
    /// Re-hashing the same password is not a password change: the
    /// account's pending reset links stay valid (their binding moves to
    /// the new hash with [`TokenStore::restamp`](crate::store::TokenStore::restamp)),
    /// and no "password changed" notice is sent. So that this cannot keep a
    /// link alive across a real change, the password is verified against
    /// the stored hash first (one more legacy verification, once per
    /// account); a password that is not the account's is refused with
    /// [`CompleteError::NotCurrentPassword`] and nothing is stored.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use resetkit::prelude::*;
    /// use resetkit::SecretString; // re-exported: no `secrecy` dependency needed
    ///
    /// let accounts = InMemoryAccounts::default();
    /// // A Django-format PBKDF2 hash of "legacy password 1", stored by the previous framework.
    /// let django = "pbkdf2_sha256$1000$c2FsdHNhbHQ$bT86YLGvDWl732f3wJjiqRNnY/5Czo0VlS7c5JZrgEI=";
    /// accounts.insert(Account::new("1", "ann", "ann@example.com").with_password_hash(PasswordHash::new(django)));
    /// let service = ResetService::builder()
    ///     .base_url("https://app.example.com")
    ///     .accounts(Arc::new(accounts))
    ///     .tokens(Arc::new(InMemoryTokenStore::default()))
    ///     .events(Arc::new(InMemoryEventLog::default()))
    ///     .mailer(Arc::new(CapturingMailer::default()))
    ///     .sender(Arc::new(FixedSender::new(Mailbox::address_only("noreply@example.com").unwrap())))
    ///     .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
    ///     .build()
    ///     .unwrap();
    /// let id = AccountId::from("1");
    /// let typed = SecretString::from("legacy password 1");
    /// // At sign-in: check, then upgrade the hash (pending reset links keep working).
    /// if let PasswordCheck::NeedsRehash(_) = service.check_password(&id, &typed).await.unwrap() {
    ///     service.rehash_password(&id, &typed).await.unwrap();
    /// }
    /// assert_eq!(service.check_password(&id, &typed).await.unwrap(), PasswordCheck::Correct);
    /// # });
    /// ```
    pub async fn rehash_password(
        &self,
        account: &AccountId,
        password: &secrecy::SecretString,
    ) -> Result<(), CompleteError> {
        use secrecy::ExposeSecret as _;
        let Some(current) = self.inner.accounts.find_by_id(account).await? else {
            return Err(CompleteError::Unavailable(StoreError::NotFound {
                operation: "accounts.find_by_id",
                what: format!("account `{account}`"),
            }));
        };
        if !self.check_password(account, password).await?.is_correct() {
            return Err(CompleteError::NotCurrentPassword);
        }
        let normalized = secrecy::SecretString::from(PasswordPolicy::normalize(password.expose_secret()));
        let hasher = self.inner.hasher.clone();
        let hash = run_blocking(move || hasher.hash(&normalized))
            .await
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(CompleteError::Internal)?;
        let before = current.password_stamp();
        let after = crate::account::PasswordStamp::of(Some(&hash));
        self.inner.accounts.set_password_hash(account, &hash).await?;
        match self.inner.tokens.restamp(account, &before, &after).await {
            Ok(_) => Ok(()),
            Err(StoreError::Unsupported { operation }) => {
                tracing::warn!(
                    operation,
                    "the token store cannot move pending reset links to the re-hashed password: \
                     they stop working (implement TokenStore::restamp)"
                );
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Counts one sign-in attempt against `limits`, in the engine's
    /// rate-limit store (shared by every instance on PostgreSQL): per
    /// client address (`limits.per_client`, IPv6 grouped like the reset
    /// limit); per identifier as typed and client (`limits.per_account`),
    /// so a stranger guessing from one place cannot lock the owner out from
    /// another; and per identifier from everywhere at
    /// [`SIGN_IN_SPREAD`] times that, which
    /// bounds a guess spread over many addresses. Identifiers are keyed by
    /// their fingerprint: every spelling of one identifier shares a count,
    /// and known and unknown identifiers are throttled alike. Returns
    /// `false` when any is spent: answer "too many attempts" without
    /// checking the password. Refused attempts are not counted.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use resetkit::prelude::*;
    /// use resetkit::policy::{Limit, RateLimits};
    /// let service = ResetService::builder()
    ///     .base_url("https://app.example.com")
    ///     .accounts(Arc::new(InMemoryAccounts::default()))
    ///     .tokens(Arc::new(InMemoryTokenStore::default()))
    ///     .events(Arc::new(InMemoryEventLog::default()))
    ///     .mailer(Arc::new(CapturingMailer::default()))
    ///     .sender(Arc::new(FixedSender::new(Mailbox::address_only("noreply@example.com").unwrap())))
    ///     .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
    ///     .build()
    ///     .unwrap();
    /// let limits = RateLimits {
    ///     per_account: Some(Limit { max: 2, window: Duration::from_secs(900) }),
    ///     per_client: None,
    /// };
    /// let client = RequestContext::from_client("203.0.113.9");
    /// assert!(service.admit_sign_in("bob", &client, &limits).await.unwrap());
    /// assert!(service.admit_sign_in("BOB", &client, &limits).await.unwrap());
    /// assert!(!service.admit_sign_in("bob", &client, &limits).await.unwrap());
    /// // The owner, elsewhere, is not locked out by the stranger.
    /// let owner = RequestContext::from_client("198.51.100.4");
    /// assert!(service.admit_sign_in("bob", &owner, &limits).await.unwrap());
    /// # });
    /// ```
    pub async fn admit_sign_in(
        &self,
        identifier: &str,
        client: &RequestContext,
        limits: &crate::policy::RateLimits,
    ) -> Result<bool, StoreError> {
        use crate::store::RateKey;
        let inner = &self.inner;
        let now = inner.clock.now();
        let client_key = client
            .client_addr
            .as_deref()
            .map(|addr| crate::client::client_rate_key(addr, inner.client_ipv6_prefix));
        // (key, window, max), checked in this order; the first refusal ends it.
        let mut checks = Vec::with_capacity(3);
        if let (Some(limit), Some(client_key)) = (limits.per_client, &client_key) {
            let key = RateKey::Host {
                scope: "sign-in-client",
                key: client_key.clone(),
            };
            checks.push((key, limit.window, limit.max));
        }
        if let Some(limit) = limits.per_account {
            let identifier = crate::fingerprint::fingerprint(&inner.fingerprint_key, identifier);
            if let Some(client_key) = &client_key {
                let key = RateKey::Host {
                    scope: "sign-in-pair",
                    key: format!("{identifier}:{client_key}"),
                };
                checks.push((key, limit.window, limit.max));
            }
            let key = RateKey::Host {
                scope: "sign-in",
                key: identifier,
            };
            checks.push((key, limit.window, limit.max.saturating_mul(SIGN_IN_SPREAD)));
        }
        for (key, window, max) in checks {
            if !inner.limiter.admit(&key, now, window, max).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// How many times the per-identifier sign-in limit one identifier may be
/// tried from every client together (see [`ResetService::admit_sign_in`]).
pub const SIGN_IN_SPREAD: u32 = 10;
