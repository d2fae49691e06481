//! The deployment's secrets, in one place.
//!
//! Every instance of one site must hold the same keys, or each rejects the
//! others' forms (a form served by instance A, posted to instance B) and
//! their identifier fingerprints disagree. [`DeploymentSecrets`] holds them
//! all; [`ResetServiceBuilder::secrets`](crate::ResetServiceBuilder::secrets)
//! takes the fingerprint key from it and `resetkit-axum`'s
//! `ResetPagesBuilder::secrets` the pages key (CSRF cookies, sealed forms,
//! opened links).
//!
//! | variable | what | required |
//! | --- | --- | --- |
//! | `RESETKIT_PAGES_KEY` | signs the CSRF cookies and seals the forms of the reset pages (32+ bytes of text) | yes |
//! | `RESETKIT_PAGES_KEY_PREVIOUS` | the key before the last rotation: still accepted, never used for new values | no |
//! | `RESETKIT_FINGERPRINT_KEY` | keys the fingerprints of unmatched identifiers in the event log (16+ bytes) | yes |
//!
//! Rotating the pages key: set `RESETKIT_PAGES_KEY_PREVIOUS` to the old key
//! and `RESETKIT_PAGES_KEY` to the new one on every instance; forms and
//! opened links made under the old key keep working. Remove the previous
//! key after the grace period ([`PAGES_KEY_GRACE`], the longest an open
//! form lives). The fingerprint key is not verified against anything:
//! fingerprints recorded before a rotation are looked up with the old key
//! (`resetkit-harness fingerprint`).
//!
//! ```
//! use resetkit::secrets::DeploymentSecrets;
//!
//! let env = [
//!     ("RESETKIT_PAGES_KEY", "an example pages key of at least 32 bytes"),
//!     ("RESETKIT_FINGERPRINT_KEY", "an example fingerprint key"),
//! ];
//! let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
//! let secrets = DeploymentSecrets::from_lookup(lookup).unwrap().expect("both keys set");
//! assert!(secrets.pages_key().previous().is_none());
//! assert!(!format!("{secrets:?}").contains("example"));
//! // Nothing set at all: `None` (a single process may then use random keys).
//! assert!(DeploymentSecrets::from_lookup(|_| None).unwrap().is_none());
//! ```

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

use crate::fingerprint::FingerprintKey;

/// The pages key.
pub const PAGES_KEY_VAR: &str = "RESETKIT_PAGES_KEY";
/// The previous pages key (rotation).
pub const PAGES_KEY_PREVIOUS_VAR: &str = "RESETKIT_PAGES_KEY_PREVIOUS";
/// The fingerprint key.
pub const FINGERPRINT_KEY_VAR: &str = "RESETKIT_FINGERPRINT_KEY";

/// How long to keep the previous pages key after a rotation: the longest an
/// opened link or a form lives (15 minutes), with a margin.
pub const PAGES_KEY_GRACE: Duration = Duration::from_secs(20 * 60);

/// A secret is missing or unusable. The message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// A required secret is not set.
    #[error(
        "{variable} is not set: every instance of the site needs the same value \
         (at least {min_bytes} random bytes of text, e.g. `openssl rand -base64 48`)"
    )]
    Missing {
        /// The variable.
        variable: &'static str,
        /// Its shortest accepted length.
        min_bytes: usize,
    },
    /// A secret is too short.
    #[error("{variable} is too short ({bytes} bytes): use at least {min_bytes} random bytes of text")]
    TooShort {
        /// The variable.
        variable: &'static str,
        /// Its length.
        bytes: usize,
        /// Its shortest accepted length.
        min_bytes: usize,
    },
    /// A secrets file line is not `NAME=value`, or names an unknown secret.
    #[error("secrets file, line {line}: {reason}")]
    File {
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the value).
        reason: String,
    },
}

/// A 32-byte key derived from a secret text (HMAC-SHA-256 of a label under
/// the text), so one configured secret yields independent keys per use.
pub struct DerivedKey(SecretBox<[u8; 32]>);

impl Clone for DerivedKey {
    fn clone(&self) -> Self {
        DerivedKey(SecretBox::new(Box::new(*self.0.expose_secret())))
    }
}

impl DerivedKey {
    /// The key for `label` under the secret `text`.
    pub fn derive(text: &[u8], label: &str) -> Self {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(text) else {
            unreachable!("HMAC-SHA-256 takes keys of any length")
        };
        mac.update(b"resetkit key derivation v1\0");
        mac.update(label.as_bytes());
        let bytes: [u8; 32] = mac.finalize().into_bytes().into();
        DerivedKey(SecretBox::new(Box::new(bytes)))
    }

    /// 32 random bytes (one process only).
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes[..]);
        DerivedKey(SecretBox::new(Box::new(bytes)))
    }

    /// The key's bytes.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivedKey([REDACTED])")
    }
}

/// A secret with, during a rotation, the one it replaces: new values are
/// made with [`current`](Self::current); values made with either are
/// accepted.
pub struct KeyRing {
    current: SecretBox<[u8]>,
    previous: Option<SecretBox<[u8]>>,
}

impl Clone for KeyRing {
    fn clone(&self) -> Self {
        KeyRing::new(self.current().to_vec(), self.previous().map(<[u8]>::to_vec))
    }
}

impl KeyRing {
    /// Shortest pages key accepted, in bytes.
    pub const MIN_BYTES: usize = 32;

    /// A ring of `current` (and the `previous` key, during a rotation).
    pub fn new(current: impl Into<Vec<u8>>, previous: Option<Vec<u8>>) -> Self {
        KeyRing {
            current: SecretBox::new(current.into().into_boxed_slice()),
            previous: previous.map(|p| SecretBox::new(p.into_boxed_slice())),
        }
    }

    /// A random key (one process; nothing to rotate).
    pub fn random() -> Self {
        let mut bytes = vec![0u8; 32];
        rand::fill(&mut bytes[..]);
        KeyRing::new(bytes, None)
    }

    /// The key new values are made with.
    pub fn current(&self) -> &[u8] {
        self.current.expose_secret()
    }

    /// The key being rotated out, if any.
    pub fn previous(&self) -> Option<&[u8]> {
        self.previous.as_ref().map(ExposeSecret::expose_secret)
    }

    /// The keys for `label` derived from the ring, current first.
    pub fn derive(&self, label: &str) -> Vec<DerivedKey> {
        std::iter::once(self.current())
            .chain(self.previous())
            .map(|k| DerivedKey::derive(k, label))
            .collect()
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &"[REDACTED]")
            .field("previous", &self.previous.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Every per-deployment secret (see the module docs). `Debug` prints none.
#[derive(Clone)]
pub struct DeploymentSecrets {
    pages: KeyRing,
    fingerprint: FingerprintKey,
}

impl fmt::Debug for DeploymentSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeploymentSecrets")
            .field("pages", &self.pages)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

fn checked(variable: &'static str, value: String, min_bytes: usize) -> Result<Vec<u8>, SecretsError> {
    let bytes = value.trim().as_bytes().to_vec();
    if bytes.len() < min_bytes {
        return Err(SecretsError::TooShort {
            variable,
            bytes: bytes.len(),
            min_bytes,
        });
    }
    Ok(bytes)
}

impl DeploymentSecrets {
    /// The secrets from their parts.
    pub fn new(pages: KeyRing, fingerprint: FingerprintKey) -> Self {
        DeploymentSecrets { pages, fingerprint }
    }

    /// Random keys: for one process (tests, a single local instance).
    /// Forms and fingerprints are then valid only within this process.
    pub fn random() -> Self {
        let mut bytes = vec![0u8; 32];
        rand::fill(&mut bytes[..]);
        DeploymentSecrets {
            pages: KeyRing::random(),
            fingerprint: FingerprintKey::new(bytes).unwrap_or_else(|_| unreachable!("32 bytes")),
        }
    }

    /// The secrets from variables named as in the module docs, read with
    /// `lookup` (e.g. `|name| std::env::var(name).ok()`). `Ok(None)` when
    /// none of the required ones is set; an error names the first one
    /// missing or unusable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, SecretsError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let pages = get(PAGES_KEY_VAR);
        let fingerprint = get(FINGERPRINT_KEY_VAR);
        if pages.is_none() && fingerprint.is_none() {
            return Ok(None);
        }
        let missing = |variable, min_bytes| SecretsError::Missing { variable, min_bytes };
        let pages = pages.ok_or_else(|| missing(PAGES_KEY_VAR, KeyRing::MIN_BYTES))?;
        let fingerprint =
            fingerprint.ok_or_else(|| missing(FINGERPRINT_KEY_VAR, FingerprintKey::MIN_BYTES))?;
        let pages = checked(PAGES_KEY_VAR, pages, KeyRing::MIN_BYTES)?;
        let previous = get(PAGES_KEY_PREVIOUS_VAR)
            .map(|v| checked(PAGES_KEY_PREVIOUS_VAR, v, KeyRing::MIN_BYTES))
            .transpose()?;
        let fingerprint = checked(FINGERPRINT_KEY_VAR, fingerprint, FingerprintKey::MIN_BYTES)?;
        let fingerprint = FingerprintKey::new(fingerprint).map_err(|_| SecretsError::TooShort {
            variable: FINGERPRINT_KEY_VAR,
            bytes: 0,
            min_bytes: FingerprintKey::MIN_BYTES,
        })?;
        Ok(Some(DeploymentSecrets {
            pages: KeyRing::new(pages, previous),
            fingerprint,
        }))
    }

    /// Parses a secrets file: `NAME=value` lines (the variables of the
    /// module docs), `#` comments and blank lines; values may be quoted.
    /// Returns the pairs for [`from_lookup`](Self::from_lookup).
    pub fn parse_file(text: &str) -> Result<Vec<(String, String)>, SecretsError> {
        let known = [PAGES_KEY_VAR, PAGES_KEY_PREVIOUS_VAR, FINGERPRINT_KEY_VAR];
        let mut pairs = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |reason: String| SecretsError::File { line: n + 1, reason };
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| fail("expected NAME=value".into()))?;
            let name = name.trim();
            if !known.contains(&name) {
                return Err(fail(format!(
                    "unknown secret `{name}` (known: {})",
                    known.join(", ")
                )));
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            pairs.push((name.to_owned(), value.to_owned()));
        }
        Ok(pairs)
    }

    /// The pages key (CSRF cookies, sealed forms and opened links).
    pub fn pages_key(&self) -> &KeyRing {
        &self.pages
    }

    /// The identifier fingerprint key.
    pub fn fingerprint_key(&self) -> &FingerprintKey {
        &self.fingerprint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const PAGES: &str = "0123456789abcdef0123456789abcdef-pages";
    const FP: &str = "0123456789abcdef-fp";

    #[test]
    fn a_missing_or_short_secret_is_named() {
        let err = DeploymentSecrets::from_lookup(lookup(&[(FINGERPRINT_KEY_VAR, FP)])).unwrap_err();
        assert!(err.to_string().contains("RESETKIT_PAGES_KEY is not set"), "{err}");
        let err = DeploymentSecrets::from_lookup(lookup(&[(PAGES_KEY_VAR, PAGES)])).unwrap_err();
        assert!(err.to_string().contains("RESETKIT_FINGERPRINT_KEY"), "{err}");
        let err =
            DeploymentSecrets::from_lookup(lookup(&[(PAGES_KEY_VAR, "tinykey"), (FINGERPRINT_KEY_VAR, FP)]))
                .unwrap_err();
        assert!(
            err.to_string().contains("RESETKIT_PAGES_KEY is too short"),
            "{err}"
        );
        assert!(!err.to_string().contains("tinykey"), "the value is never shown");
    }

    #[test]
    fn rotation_keeps_the_previous_key_and_debug_hides_both() {
        let s = DeploymentSecrets::from_lookup(lookup(&[
            (PAGES_KEY_VAR, PAGES),
            (PAGES_KEY_PREVIOUS_VAR, "the-old-pages-key-of-32-bytes-or-more"),
            (FINGERPRINT_KEY_VAR, FP),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.pages_key().current(), PAGES.as_bytes());
        assert_eq!(s.pages_key().derive("x").len(), 2);
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("old-pages") && !shown.contains("abcdef"),
            "{shown}"
        );
    }

    #[test]
    fn derived_keys_differ_per_label_and_secret() {
        let a = DerivedKey::derive(b"secret one", "csrf");
        assert_eq!(a.expose(), DerivedKey::derive(b"secret one", "csrf").expose());
        assert_ne!(a.expose(), DerivedKey::derive(b"secret one", "seal").expose());
        assert_ne!(a.expose(), DerivedKey::derive(b"secret two", "csrf").expose());
    }

    #[test]
    fn secrets_files_parse_and_name_bad_lines() {
        let text =
            format!("# keys\nRESETKIT_PAGES_KEY=\"{PAGES}\"\n\nexport RESETKIT_FINGERPRINT_KEY={FP}\n");
        let pairs = DeploymentSecrets::parse_file(&text).unwrap();
        assert_eq!(pairs[0], (PAGES_KEY_VAR.to_owned(), PAGES.to_owned()));
        assert_eq!(pairs[1].1, FP);
        let err = DeploymentSecrets::parse_file("RESETKIT_PAGE_KEY=x").unwrap_err();
        assert!(err.to_string().contains("line 1") && err.to_string().contains("RESETKIT_PAGE_KEY"));
        let err = DeploymentSecrets::parse_file("\nnot a pair").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
