//! Keyed fingerprints of identifiers, so the event log never stores what
//! someone typed into the "forgot password" form in clear.
//!
//! People type passwords into the identifier field. A request that matches
//! no account is recorded with the HMAC-SHA-256 of the identifier's
//! canonical form under a deployment key ([`FingerprintKey`]), never with
//! the text itself. An operator who holds the key can still answer "did
//! someone request a reset for x@y?": compute [`fingerprint`] of `x@y` and
//! look for it in the `RequestIgnored` events. Without the key the log does
//! not reveal what was typed, and a guessed list of addresses cannot be
//! tested against it.
//!
//! ```
//! use resetkit::fingerprint::{fingerprint, FingerprintKey};
//!
//! let key = FingerprintKey::new(b"a deployment key of 16+ bytes".to_vec()).unwrap();
//! // The identifier is canonicalised first, as the flow does.
//! assert_eq!(fingerprint(&key, " Alice@Example.COM"), fingerprint(&key, "alice@example.com"));
//! assert_eq!(fingerprint(&key, "alice@example.com").len(), 64);
//! assert!(!format!("{key:?}").contains("deployment"));
//! ```

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use rand::TryRng as _;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

use crate::error::BuildError;
use crate::identifier::canonicalize;
use crate::token::EntropyError;

/// Domain separation: fingerprints of identifiers, version 1.
const CONTEXT: &[u8] = b"resetkit identifier fingerprint v1\0";

/// The deployment key fingerprints are computed with. Keep it like any other
/// secret of the deployment; share it between the app's instances so their
/// fingerprints agree. `Debug` never prints it.
pub struct FingerprintKey(SecretBox<[u8]>);

impl FingerprintKey {
    /// Shortest key accepted, in bytes.
    pub const MIN_BYTES: usize = 16;

    /// A key from its bytes (e.g. a secret from the environment); at least
    /// [`Self::MIN_BYTES`] long.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, BuildError> {
        let bytes: Vec<u8> = bytes.into();
        if bytes.len() < Self::MIN_BYTES {
            return Err(BuildError::invalid(
                "fingerprint_key",
                format!(
                    "{} bytes is too short: use at least {} random bytes",
                    bytes.len(),
                    Self::MIN_BYTES
                ),
            ));
        }
        Ok(FingerprintKey(SecretBox::new(bytes.into_boxed_slice())))
    }

    /// 32 random bytes from the OS. Fingerprints made with a random key can
    /// only be compared while the key lives (one process): configure a
    /// fixed key for fingerprints an operator can compute later.
    pub fn random() -> Result<Self, EntropyError> {
        let mut bytes = vec![0u8; 32];
        rand::rngs::SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| EntropyError(e.to_string()))?;
        Ok(FingerprintKey(SecretBox::new(bytes.into_boxed_slice())))
    }
}

impl Clone for FingerprintKey {
    fn clone(&self) -> Self {
        FingerprintKey(SecretBox::new(self.0.expose_secret().into()))
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey([REDACTED])")
    }
}

/// The fingerprint of `identifier` under `key`: lowercase hex of
/// HMAC-SHA-256 over the identifier's canonical form
/// ([`canonicalize`]), so every spelling the flow treats as the same
/// identifier has the same fingerprint.
pub fn fingerprint(key: &FingerprintKey, identifier: &str) -> String {
    let canonical = canonicalize(identifier);
    // HMAC accepts keys of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.0.expose_secret()) else {
        unreachable!("HMAC-SHA-256 takes keys of any length")
    };
    mac.update(CONTEXT);
    mac.update(canonical.as_bytes());
    crate::token::hex(&mac.finalize().into_bytes())
}

/// Domain separation: fingerprints of account ids on `tracing` spans.
const ACCOUNT_CONTEXT: &[u8] = b"resetkit account fingerprint v1\0";

/// A short keyed fingerprint of an account id (16 hex digits of
/// HMAC-SHA-256), for `tracing` spans: every step of one account's reset
/// (request processing, delivery, link opened, completion) carries the
/// same value, and neither the address nor the id appears.
pub fn account_fingerprint(key: &FingerprintKey, account: &crate::account::AccountId) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.0.expose_secret()) else {
        unreachable!("HMAC-SHA-256 takes keys of any length")
    };
    mac.update(ACCOUNT_CONTEXT);
    mac.update(account.to_string().as_bytes());
    crate::token::hex(&mac.finalize().into_bytes()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_key_and_canonical_identifier() {
        let k1 = FingerprintKey::new(vec![1u8; 32]).unwrap();
        let k2 = FingerprintKey::new(vec![2u8; 32]).unwrap();
        let f = fingerprint(&k1, "correct horse battery staple");
        assert_eq!(f.len(), 64);
        assert!(f.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!f.contains("horse"));
        assert_eq!(f, fingerprint(&k1, "CORRECT HORSE BATTERY STAPLE "));
        assert_ne!(f, fingerprint(&k2, "correct horse battery staple"));
        assert_ne!(f, fingerprint(&k1, "correct horse battery stable"));
        assert_eq!(fingerprint(&k1.clone(), "x@y.test"), fingerprint(&k1, "X@Y.test"));
    }

    #[test]
    fn short_keys_are_refused_naming_the_setting_and_keys_never_print() {
        let err = FingerprintKey::new(b"short".to_vec())
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("fingerprint_key")));
        let key = FingerprintKey::new(b"0123456789abcdef-secret".to_vec()).unwrap();
        assert_eq!(format!("{key:?}"), "FingerprintKey([REDACTED])");
        assert!(FingerprintKey::random().is_ok());
    }
}
