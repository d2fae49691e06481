//! Password hashes an application moving to resetkit already has: bcrypt
//! (`$2a$`/`$2b$`/`$2y$`), PBKDF2-SHA256 (Django's `pbkdf2_sha256$…` and the
//! PHC `$pbkdf2-sha256$…`) and scrypt (PHC `$scrypt$…`), verified with the
//! RustCrypto / `bcrypt` crates. A match is reported as *needs rehash*
//! ([`PasswordCheck::NeedsRehash`](crate::flow::PasswordCheck)): sign-in
//! then stores an argon2id hash of the same password
//! ([`ResetService::rehash_password`](crate::ResetService::rehash_password)).
//!
//! ```
//! use resetkit::legacy_hash::{LegacyFormat, verify_legacy};
//! use secrecy::SecretString;
//!
//! let django = "pbkdf2_sha256$1000$c2FsdHNhbHQ$bT86YLGvDWl732f3wJjiqRNnY/5Czo0VlS7c5JZrgEI=";
//! assert_eq!(LegacyFormat::detect(django), Some(LegacyFormat::DjangoPbkdf2Sha256));
//! assert_eq!(verify_legacy(&SecretString::from("legacy password 1"), django).unwrap(), Some(true));
//! assert_eq!(verify_legacy(&SecretString::from("wrong"), django).unwrap(), Some(false));
//! assert_eq!(verify_legacy(&SecretString::from("x"), "$argon2id$v=19$...").unwrap(), None);
//! ```

use base64::Engine as _;
use pbkdf2::password_hash::{PasswordVerifier as _, phc};
use secrecy::{ExposeSecret, SecretString};

use crate::hasher::HashError;

/// Highest PBKDF2 iteration count and scrypt `ln` accepted from a stored
/// hash (bounds the work a corrupt row can cause).
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
const MAX_SCRYPT_LN: u32 = 20;

/// A stored hash format other than argon2id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegacyFormat {
    /// bcrypt, `$2a$` / `$2b$` / `$2y$`.
    Bcrypt,
    /// Django's `pbkdf2_sha256$ITERATIONS$SALT$BASE64`.
    DjangoPbkdf2Sha256,
    /// PHC `$pbkdf2-sha256$i=…,l=…$SALT$HASH`.
    Pbkdf2Sha256,
    /// PHC `$scrypt$ln=…,r=…,p=…$SALT$HASH`.
    Scrypt,
}

impl LegacyFormat {
    /// The format of a stored hash, if it is one of these.
    pub fn detect(stored: &str) -> Option<LegacyFormat> {
        if ["$2a$", "$2b$", "$2y$"].iter().any(|p| stored.starts_with(p)) {
            Some(LegacyFormat::Bcrypt)
        } else if stored.starts_with("pbkdf2_sha256$") {
            Some(LegacyFormat::DjangoPbkdf2Sha256)
        } else if stored.starts_with("$pbkdf2-sha256$") {
            Some(LegacyFormat::Pbkdf2Sha256)
        } else if stored.starts_with("$scrypt$") {
            Some(LegacyFormat::Scrypt)
        } else {
            None
        }
    }
}

fn bad(format: LegacyFormat, why: impl std::fmt::Display) -> HashError {
    HashError(format!("stored {format:?} hash is unusable: {why}"))
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies `password` against a legacy `stored` hash: `Ok(None)` when the
/// format is not a legacy one (use the argon2 hasher), `Ok(Some(matches))`
/// otherwise, `Err` for a malformed hash of a known format.
pub fn verify_legacy(password: &SecretString, stored: &str) -> Result<Option<bool>, HashError> {
    let Some(format) = LegacyFormat::detect(stored) else {
        return Ok(None);
    };
    let password = password.expose_secret().as_bytes();
    let matches = match format {
        LegacyFormat::Bcrypt => bcrypt::verify(password, stored).map_err(|e| bad(format, e))?,
        LegacyFormat::DjangoPbkdf2Sha256 => {
            let mut parts = stored.split('$');
            let (Some(_), Some(iterations), Some(salt), Some(hash), None) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) else {
                return Err(bad(format, "expected pbkdf2_sha256$ITERATIONS$SALT$HASH"));
            };
            let iterations: u32 = iterations.parse().map_err(|e| bad(format, e))?;
            if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
                return Err(bad(format, format!("{iterations} iterations")));
            }
            let expected = base64::engine::general_purpose::STANDARD
                .decode(hash)
                .map_err(|e| bad(format, e))?;
            if expected.is_empty() || expected.len() > 64 {
                return Err(bad(format, "hash length"));
            }
            let mut computed = vec![0u8; expected.len()];
            pbkdf2::pbkdf2_hmac::<pbkdf2::sha2::Sha256>(password, salt.as_bytes(), iterations, &mut computed);
            constant_time_eq(&computed, &expected)
        }
        LegacyFormat::Pbkdf2Sha256 | LegacyFormat::Scrypt => {
            let parsed = phc::PasswordHash::new(stored).map_err(|e| bad(format, e))?;
            let result = if format == LegacyFormat::Scrypt {
                let ln = parsed.params.get_decimal("ln").unwrap_or(u32::MAX);
                if ln > MAX_SCRYPT_LN {
                    return Err(bad(format, "ln out of range"));
                }
                scrypt::Scrypt::new().verify_password(password, &parsed)
            } else {
                let rounds = parsed.params.get_decimal("i").unwrap_or(u32::MAX);
                if rounds > MAX_PBKDF2_ITERATIONS {
                    return Err(bad(format, "iterations out of range"));
                }
                pbkdf2::Pbkdf2::SHA256.verify_password(password, &parsed)
            };
            match result {
                Ok(()) => true,
                Err(pbkdf2::password_hash::Error::PasswordInvalid) => false,
                Err(e) => return Err(bad(format, e)),
            }
        }
    };
    Ok(Some(matches))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "legacy password 1";
    // Computed with Python's hashlib (pbkdf2_hmac, scrypt n=2^10 r=8 p=1).
    const DJANGO: &str = "pbkdf2_sha256$1000$c2FsdHNhbHQ$bT86YLGvDWl732f3wJjiqRNnY/5Czo0VlS7c5JZrgEI=";
    const PBKDF2_PHC: &str =
        "$pbkdf2-sha256$i=1000,l=32$MDEyMzQ1Njc4OWFiY2RlZg$JhLO+wVOtjhecFpmlnuwfYKdhQM+TrYE7UaMkWjmt6M";
    const SCRYPT_PHC: &str =
        "$scrypt$ln=10,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$gQnE8of7J6Z14EdXXhgOox04ePGhDnkPUlX217qmhIE";

    #[test]
    fn each_format_verifies_the_right_password_only() {
        let bcrypt_hash = bcrypt::hash(PASSWORD, 4).unwrap();
        for stored in [bcrypt_hash.as_str(), DJANGO, PBKDF2_PHC, SCRYPT_PHC] {
            assert!(LegacyFormat::detect(stored).is_some(), "{stored}");
            assert_eq!(
                verify_legacy(&SecretString::from(PASSWORD), stored).unwrap(),
                Some(true),
                "{stored}"
            );
            assert_eq!(
                verify_legacy(&SecretString::from("legacy password 2"), stored).unwrap(),
                Some(false),
                "{stored}"
            );
        }
    }

    #[test]
    fn malformed_legacy_hashes_are_errors_and_argon2_is_not_legacy() {
        for stored in [
            "pbkdf2_sha256$x$salt$hash",
            "pbkdf2_sha256$1000$salt",
            "$scrypt$ln=40,r=8,p=1$c2FsdA$aGFzaA",
            "$2b$04$short",
        ] {
            assert!(
                verify_legacy(&SecretString::from(PASSWORD), stored).is_err(),
                "{stored}"
            );
        }
        assert_eq!(LegacyFormat::detect("$argon2id$v=19$m=8,t=1,p=1$x$y"), None);
    }
}
