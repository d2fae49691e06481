//! Policies: token lifetime, rate limits, duplicate emails, passwords.
//!
//! The password policy follows NIST SP 800-63B-4: a minimum length (15 for a
//! single-factor password), at least 64 characters allowed, a byte cap that
//! bounds hashing cost, any Unicode (NFKC-normalised), no composition rules,
//! and rejection, with the reason shown, of common passwords, of a
//! configurable extra list and of the account's own email or username.
//!
//! Length is counted in what the user typed: extended grapheme clusters of
//! the password as entered, not characters of its normalised form. NFKC can
//! expand one character into many (U+FDFA becomes 18 characters), and one
//! visible character can be several code points (`é` typed as `e` + U+0301):
//! neither should move a password across the minimum.
//!
//! ```
//! use resetkit::policy::{PasswordPolicy, PasswordRejection};
//!
//! let policy = PasswordPolicy::default();
//! assert_eq!(policy.check("short", &[]), Err(PasswordRejection::TooShort { min_chars: 15, actual: 5 }));
//! assert_eq!(policy.check("passwordpassword", &[]), Err(PasswordRejection::Common));
//! assert!(policy.check("blue kettle under a quiet bridge", &[]).is_ok());
//! ```

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

use crate::error::BuildError;
use crate::identifier::canonicalize;

/// Token lifetime and replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPolicy {
    /// How long a link works (default 30 minutes).
    pub lifetime: Duration,
    /// A new request revokes the account's older links (default true).
    pub newest_wins: bool,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            lifetime: Duration::from_secs(30 * 60),
            newest_wins: true,
        }
    }
}

impl TokenPolicy {
    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        if self.lifetime < Duration::from_secs(60) || self.lifetime > Duration::from_secs(24 * 3600) {
            return Err(BuildError::invalid(
                "token_policy.lifetime",
                format!(
                    "{} s is outside the sane range of 60 s to 24 h (OWASP suggests minutes, not days)",
                    self.lifetime.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

/// At most `max` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Allowed events per window.
    pub max: u32,
    /// Window length.
    pub window: Duration,
}

/// Rate limits, enforced through the token store so they hold across instances.
/// Hitting one never changes the public outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Emails per account (default 3 per 15 minutes); `None` disables.
    pub per_account: Option<Limit>,
    /// Requests per client address (default 20 per 15 minutes); `None` disables.
    pub per_client: Option<Limit>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_account: Some(Limit {
                max: 3,
                window: Duration::from_secs(15 * 60),
            }),
            per_client: Some(Limit {
                max: 20,
                window: Duration::from_secs(15 * 60),
            }),
        }
    }
}

impl RateLimits {
    /// No limits (tests that issue many links quickly).
    pub fn unlimited() -> Self {
        RateLimits {
            per_account: None,
            per_client: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        for (setting, limit) in [
            ("rate_limits.per_account", self.per_account),
            ("rate_limits.per_client", self.per_client),
        ] {
            if let Some(limit) = limit
                && (limit.max == 0 || limit.window.is_zero())
            {
                return Err(BuildError::invalid(
                    setting,
                    "max and window must both be above zero (use None to disable)",
                ));
            }
        }
        Ok(())
    }
}

/// What to do when several accounts share one email address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DuplicateEmailPolicy {
    /// Each account gets its own email naming its username (default).
    #[default]
    EmailPerAccount,
    /// One email listing each account with its own link.
    CombinedEmail,
    /// No links: one email asks to request again by username. Needs an
    /// identifier mode that accepts usernames.
    RequireUsername,
}

/// Why a new password was refused; shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordRejection {
    /// Fewer characters than the minimum.
    #[error("use at least {min_chars} characters (this one has {actual})")]
    TooShort {
        /// The minimum.
        min_chars: usize,
        /// What was given.
        actual: usize,
    },
    /// Longer than the byte cap.
    #[error("use at most {max_bytes} bytes (this one has {actual})")]
    TooLong {
        /// The cap.
        max_bytes: usize,
        /// What was given.
        actual: usize,
    },
    /// Contains a control character.
    #[error("the password contains a control character")]
    ControlCharacter,
    /// On the list of commonly used passwords.
    #[error("this password is too common; choose something less predictable")]
    Common,
    /// On the site's own list of forbidden passwords.
    #[error("this password is not allowed on this site")]
    Forbidden,
    /// Equal to, or contains, the account's email address or username.
    #[error("the password must not contain your {what}")]
    ContainsIdentity {
        /// `email address` or `username`.
        what: &'static str,
    },
    /// One character repeated.
    #[error("the password is one character repeated")]
    Repetitive,
}

/// Password rules.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    /// Minimum length in user-perceived characters (extended grapheme
    /// clusters) of the password as typed, before normalisation (default 15).
    pub min_chars: usize,
    /// Maximum UTF-8 bytes (default 1024).
    pub max_bytes: usize,
    /// Site-specific forbidden passwords (compared canonically).
    extra_blocklist: HashSet<String>,
    /// Whether the shipped common-password list is checked (default true).
    pub use_common_list: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_chars: 15,
            max_bytes: 1024,
            extra_blocklist: HashSet::new(),
            use_common_list: true,
        }
    }
}

fn common_passwords() -> &'static HashSet<String> {
    static LIST: OnceLock<HashSet<String>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("common_passwords.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(canonicalize)
            .collect()
    })
}

impl PasswordPolicy {
    /// Adds site-specific forbidden passwords (e.g. the product's name).
    pub fn with_extra_blocklist<I, S>(mut self, words: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.extra_blocklist
            .extend(words.into_iter().map(|w| canonicalize(w.as_ref())));
        self
    }

    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        if !(8..=64).contains(&self.min_chars) {
            return Err(BuildError::invalid(
                "password_policy.min_chars",
                format!(
                    "{} is outside 8..=64 (NIST SP 800-63B-4 asks for 15 for single-factor passwords)",
                    self.min_chars
                ),
            ));
        }
        // 64 characters of up to 4 bytes each must fit.
        if self.max_bytes < 256 || self.max_bytes > 4096 {
            return Err(BuildError::invalid(
                "password_policy.max_bytes",
                format!(
                    "{} is outside 256..=4096: at least 64 characters must be allowed, and the cap bounds hashing cost",
                    self.max_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Normalises a password (NFKC) the way it is hashed.
    pub fn normalize(password: &str) -> String {
        password.nfkc().collect()
    }

    /// The length the minimum applies to: extended grapheme clusters of the
    /// password as typed (not of its NFKC form, which can be much longer).
    pub fn typed_length(password: &str) -> usize {
        password.graphemes(true).count()
    }

    /// Checks `password` (as typed) against the rules; `identity` holds the
    /// account's email address and username.
    pub fn check(&self, password: &str, identity: &[(&'static str, &str)]) -> Result<(), PasswordRejection> {
        if password.len() > self.max_bytes {
            return Err(PasswordRejection::TooLong {
                max_bytes: self.max_bytes,
                actual: password.len(),
            });
        }
        if password.chars().any(char::is_control) {
            return Err(PasswordRejection::ControlCharacter);
        }
        let chars = Self::typed_length(password);
        if chars < self.min_chars {
            return Err(PasswordRejection::TooShort {
                min_chars: self.min_chars,
                actual: chars,
            });
        }
        let canonical = canonicalize(&Self::normalize(password));
        if self.use_common_list && common_passwords().contains(&canonical) {
            return Err(PasswordRejection::Common);
        }
        if self.extra_blocklist.contains(&canonical) {
            return Err(PasswordRejection::Forbidden);
        }
        let mut distinct = canonical.chars();
        if let Some(first) = distinct.next()
            && distinct.all(|c| c == first)
        {
            return Err(PasswordRejection::Repetitive);
        }
        for (what, value) in identity {
            let value = canonicalize(value);
            if value.chars().count() >= 3 && canonical.contains(&value) {
                return Err(PasswordRejection::ContainsIdentity { what });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_rules_follow_nist() {
        let p = PasswordPolicy::default();
        assert!(matches!(
            p.check(&"x".repeat(14), &[]),
            Err(PasswordRejection::TooShort { .. } | PasswordRejection::Repetitive)
        ));
        assert!(
            p.check(
                "a 64 character passphrase is allowed here, with spaces, fine.ok",
                &[]
            )
            .is_ok()
        );
        let long = "correct horse ".repeat(80);
        assert_eq!(
            p.check(&long, &[]),
            Err(PasswordRejection::TooLong {
                max_bytes: 1024,
                actual: long.len()
            })
        );
        // Unicode accepted; length counted in what the user typed.
        assert!(p.check("日本語のパスフレーズはとても長いです", &[]).is_ok());
    }

    #[test]
    fn issue13_password_length_counts_what_was_typed_not_the_nfkc_form() {
        let p = PasswordPolicy::default();
        // U+FDFA is one character that NFKC expands to 18.
        assert_eq!(PasswordPolicy::normalize("\u{FDFA}").chars().count(), 18);
        assert_eq!(
            p.check("\u{FDFA}", &[]),
            Err(PasswordRejection::TooShort {
                min_chars: 15,
                actual: 1
            })
        );
        // Two of them plus a few letters: still far below 15 as typed.
        assert!(matches!(
            p.check("\u{FDFA}ab\u{FDFA}", &[]),
            Err(PasswordRejection::TooShort { actual: 4, .. })
        ));
        // 14 accented letters typed as letter + combining mark: 14, not 28.
        let decomposed = "e\u{301}u\u{308}".repeat(7);
        assert_eq!(decomposed.chars().count(), 28);
        assert!(matches!(
            p.check(&decomposed, &[]),
            Err(PasswordRejection::TooShort { actual: 14, .. })
        ));
        // The ligature ﬃ is one character typed, three after NFKC.
        assert_eq!(PasswordPolicy::typed_length("ﬃ"), 1);
        // 15 typed characters pass.
        assert!(p.check("quiet ﬃ harbour", &[]).is_ok());
    }

    #[test]
    fn blocklists_and_identity_are_rejected_with_reason() {
        let p = PasswordPolicy::default().with_extra_blocklist(["ResetKitResetKit!"]);
        assert_eq!(p.check("PasswordPassword", &[]), Err(PasswordRejection::Common));
        assert_eq!(
            p.check("resetkitresetkit!", &[]),
            Err(PasswordRejection::Forbidden)
        );
        assert_eq!(
            p.check("alice@example.com", &[("email address", "Alice@example.com")]),
            Err(PasswordRejection::ContainsIdentity {
                what: "email address"
            })
        );
        assert_eq!(
            p.check("my name is alicewonder ok", &[("username", "AliceWonder")]),
            Err(PasswordRejection::ContainsIdentity { what: "username" })
        );
        assert_eq!(p.check(&"z".repeat(20), &[]), Err(PasswordRejection::Repetitive));
        assert_eq!(
            p.check("tab\there is not fine at all", &[]),
            Err(PasswordRejection::ControlCharacter)
        );
    }

    #[test]
    fn insane_settings_fail_validation_naming_the_field() {
        let p = PasswordPolicy {
            min_chars: 4,
            ..PasswordPolicy::default()
        };
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("password_policy.min_chars")
        );
        let p = PasswordPolicy {
            max_bytes: 100,
            ..PasswordPolicy::default()
        };
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("password_policy.max_bytes")
        );
        let t = TokenPolicy {
            lifetime: Duration::from_secs(7 * 24 * 3600),
            newest_wins: true,
        };
        assert!(
            t.validate()
                .unwrap_err()
                .to_string()
                .contains("token_policy.lifetime")
        );
    }
}
