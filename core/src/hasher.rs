//! Password hashing: argon2id by default (OWASP parameters), a fast setting for tests.
//!
//! ```
//! use resetkit::hasher::{Argon2Hasher, PasswordHasher};
//! use secrecy::SecretString;
//!
//! let hasher = Argon2Hasher::fast_insecure_for_tests();
//! let hash = hasher.hash(&SecretString::from("correct horse battery staple")).unwrap();
//! assert!(hasher.verify(&SecretString::from("correct horse battery staple"), &hash).unwrap());
//! assert!(!format!("{hash:?}").contains("argon2id"));
//! ```

use std::fmt;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

/// A stored password hash, as the host's column holds it: an argon2id PHC
/// string (what resetkit writes) or a format a previous framework wrote
/// and [`crate::legacy_hash`] verifies (bcrypt `$2b$…`, Django
/// `pbkdf2_sha256$…`, PHC PBKDF2 and scrypt). `Debug` never prints it.
#[derive(Clone)]
pub struct PasswordHash(SecretString);

impl PasswordHash {
    /// Wraps a hash read from storage, in any supported format (argon2id
    /// PHC, or a legacy one: bcrypt, Django `pbkdf2_sha256$…`, PBKDF2 or
    /// scrypt PHC).
    pub fn new(stored: impl Into<String>) -> Self {
        PasswordHash(SecretString::from(stored.into()))
    }

    /// Wraps a PHC string read from storage (same as [`new`](Self::new),
    /// which takes the legacy formats too).
    pub fn from_phc(phc: impl Into<String>) -> Self {
        Self::new(phc)
    }

    /// The stored text (argon2id PHC for hashes resetkit made), for storing.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([REDACTED])")
    }
}

/// Hashing failed (bad parameters, corrupt stored hash).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(pub String);

/// Hashes and verifies passwords. Implementations are CPU-bound and called
/// from a blocking thread.
pub trait PasswordHasher: Send + Sync {
    /// Hashes `password` with a fresh salt.
    fn hash(&self, password: &SecretString) -> Result<PasswordHash, HashError>;
    /// Whether `password` matches `hash`.
    fn verify(&self, password: &SecretString, hash: &PasswordHash) -> Result<bool, HashError>;
}

/// argon2id.
#[derive(Clone)]
pub struct Argon2Hasher {
    params: Params,
}

impl Argon2Hasher {
    /// OWASP Password Storage Cheat Sheet: argon2id, m = 19 MiB, t = 2, p = 1.
    pub fn owasp() -> Self {
        Self {
            params: Params::DEFAULT,
        }
    }

    /// Tiny parameters (8 KiB, t = 1) so tests run fast. Never use in production.
    pub fn fast_insecure_for_tests() -> Self {
        match Params::new(8, 1, 1, None) {
            Ok(params) => Self { params },
            Err(_) => Self::owasp(),
        }
    }

    /// Custom parameters: memory in KiB, iterations, parallelism.
    pub fn with_params(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self, HashError> {
        Params::new(m_cost_kib, t_cost, p_cost, None)
            .map(|params| Self { params })
            .map_err(|e| HashError(format!("invalid argon2 parameters: {e}")))
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }
}

impl Default for Argon2Hasher {
    fn default() -> Self {
        Self::owasp()
    }
}

impl fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2Hasher")
            .field("m_cost_kib", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("p_cost", &self.params.p_cost())
            .finish()
    }
}

impl PasswordHasher for Argon2Hasher {
    fn hash(&self, password: &SecretString) -> Result<PasswordHash, HashError> {
        self.argon2()
            .hash_password(password.expose_secret().as_bytes())
            .map(|h| PasswordHash::from_phc(h.to_string()))
            .map_err(|e| HashError(e.to_string()))
    }

    fn verify(&self, password: &SecretString, hash: &PasswordHash) -> Result<bool, HashError> {
        match self
            .argon2()
            .verify_password(password.expose_secret().as_bytes(), hash.expose())
        {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(e) => Err(HashError(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_owasp_argon2id() {
        let h = Argon2Hasher::default();
        assert_eq!(h.params.m_cost(), 19 * 1024);
        assert_eq!(h.params.t_cost(), 2);
        assert_eq!(h.params.p_cost(), 1);
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let h = Argon2Hasher::fast_insecure_for_tests();
        let pw = SecretString::from("a long enough passphrase");
        let a = h.hash(&pw).unwrap();
        let b = h.hash(&pw).unwrap();
        assert!(a.expose().starts_with("$argon2id$"));
        assert_ne!(a.expose(), b.expose(), "salt must differ");
        assert!(h.verify(&pw, &a).unwrap());
        assert!(!h.verify(&SecretString::from("wrong"), &a).unwrap());
        assert!(h.verify(&pw, &PasswordHash::from_phc("garbage")).is_err());
    }
}
