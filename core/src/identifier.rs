//! Identifiers typed into the "forgot password" form: validation and the one
//! canonical form used for every lookup.
//!
//! Canonicalisation is Unicode default caseless matching in its compatibility
//! form: NFKC, full case folding (`icu_casemap`, so `ß` matches `ss`, final
//! sigma matches sigma, `ﬁ` matches `fi`, the Kelvin sign matches `k`), NFKC
//! again and trimming, repeated until the text no longer changes, so it is
//! idempotent. Default folding keeps the dotless `ı` apart from `i` (the
//! GitHub look-alike bug), and combining marks are kept (`jose` does not
//! match `josé`). Matching uses the canonical form; mail always goes to the
//! address the directory has stored, never to the text as typed.
//!
//! ```
//! use resetkit::identifier::{canonicalize, parse_identifier, Identifier, IdentifierMode};
//!
//! assert_eq!(canonicalize("  Alice@Example.COM "), "alice@example.com");
//! assert_eq!(canonicalize("STRASSE"), canonicalize("straße"));
//! let id = parse_identifier("Alice@Example.com", IdentifierMode::Either).unwrap();
//! assert_eq!(id, Identifier::Email("alice@example.com".into()));
//! assert!(parse_identifier("a@example.com, b@example.com", IdentifierMode::Either).is_err());
//! ```

use std::fmt;

use email_address::{EmailAddress, Options};
use icu_casemap::CaseMapper;
use unicode_normalization::UnicodeNormalization;

use crate::error::ValidationError;

/// Longest raw input accepted, in bytes, before any processing.
pub const MAX_INPUT_BYTES: usize = 320;
/// Longest email address accepted (RFC 5321 path limit less the brackets).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest username accepted.
pub const MAX_USERNAME_CHARS: usize = 150;

/// Which identifiers the "forgot password" form accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IdentifierMode {
    /// Only email addresses.
    EmailOnly,
    /// Only usernames.
    UsernameOnly,
    /// Either: input containing `@` is an email address, anything else a username.
    #[default]
    Either,
}

/// A validated, canonical identifier.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    /// A canonical email address.
    Email(String),
    /// A canonical username.
    Username(String),
}

impl Identifier {
    /// The canonical text.
    pub fn as_str(&self) -> &str {
        match self {
            Identifier::Email(s) | Identifier::Username(s) => s,
        }
    }

    /// `"email"` or `"username"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Identifier::Email(_) => "email",
            Identifier::Username(_) => "username",
        }
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({:?})", self.kind(), self.as_str())
    }
}

/// The canonical form of an identifier: NFKC, full case folding, NFKC,
/// trimmed; idempotent. Stores compare with the canonical form of what they
/// hold (resetkit-postgres ships the same function in SQL).
pub fn canonicalize(input: &str) -> String {
    let mut current = canonicalize_once(input);
    // NFKC and case folding can each undo the other's fixed point on exotic
    // input; iterate to a fixed point (two rounds suffice in practice).
    for _ in 0..8 {
        let next = canonicalize_once(&current);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn canonicalize_once(input: &str) -> String {
    let nfkc: String = input.nfkc().collect();
    let folded = case_fold(&nfkc);
    let renormalized: String = folded.nfkc().collect();
    renormalized.trim().to_owned()
}

/// Full Unicode case folding (default, not Turkic), character by character:
/// the fold of a string is the concatenation of its characters' folds.
pub fn case_fold(input: &str) -> String {
    CaseMapper::new().fold_string(input).into_owned()
}

/// Takes the single value of a form field that may have been sent several
/// times; a repeated or list-valued field is refused (GitLab CVE-2023-7028).
pub fn single_value<S: AsRef<str>>(values: &[S]) -> Result<&str, ValidationError> {
    match values {
        [one] => Ok(one.as_ref()),
        [] => Err(ValidationError::Empty),
        more => Err(ValidationError::MultipleValues { count: more.len() }),
    }
}

/// Validates raw form input and returns its canonical identifier.
pub fn parse_identifier(raw: &str, mode: IdentifierMode) -> Result<Identifier, ValidationError> {
    if raw.len() > MAX_INPUT_BYTES {
        return Err(ValidationError::TooLong {
            field: "identifier",
            max: MAX_INPUT_BYTES,
            actual: raw.len(),
        });
    }
    if let Some((position, ch)) = raw.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(ValidationError::ControlCharacter {
            field: "identifier",
            position,
            code_point: u32::from(ch),
        });
    }
    let canonical = canonicalize(raw);
    if canonical.is_empty() {
        return Err(ValidationError::Empty);
    }
    let looks_like_email = canonical.contains('@');
    match (mode, looks_like_email) {
        (IdentifierMode::EmailOnly, _) | (IdentifierMode::Either, true) => {
            validate_email(&canonical).map(|()| Identifier::Email(canonical))
        }
        (IdentifierMode::UsernameOnly, true) => Err(ValidationError::UsernameExpected),
        (IdentifierMode::UsernameOnly | IdentifierMode::Either, false) => {
            validate_username(&canonical).map(|()| Identifier::Username(canonical))
        }
    }
}

/// Checks that `canonical` is one plain email address (no display name, no
/// list, no quoted local part, no IP-literal domain).
pub fn validate_email(canonical: &str) -> Result<(), ValidationError> {
    let chars = canonical.chars().count();
    if chars > MAX_EMAIL_CHARS {
        return Err(ValidationError::TooLong {
            field: "email",
            max: MAX_EMAIL_CHARS,
            actual: chars,
        });
    }
    let at_signs = canonical.matches('@').count();
    if at_signs > 1 || canonical.contains([',', ';']) {
        let count = canonical.split([',', ';']).count().max(at_signs);
        return Err(ValidationError::MultipleValues { count });
    }
    if canonical.chars().any(char::is_whitespace) {
        return Err(ValidationError::NotAnEmail {
            reason: "contains whitespace".into(),
        });
    }
    if canonical.contains(['"', '[', ']', '<', '>']) {
        return Err(ValidationError::NotAnEmail {
            reason: "quoted local parts, address literals and display names are not accepted".into(),
        });
    }
    let options = Options::default().with_required_tld().without_display_text();
    EmailAddress::parse_with_options(canonical, options)
        .map(|_| ())
        .map_err(|e| ValidationError::NotAnEmail {
            reason: e.to_string(),
        })
}

fn validate_username(canonical: &str) -> Result<(), ValidationError> {
    let chars = canonical.chars().count();
    if chars > MAX_USERNAME_CHARS {
        return Err(ValidationError::TooLong {
            field: "username",
            max: MAX_USERNAME_CHARS,
            actual: chars,
        });
    }
    if canonical.contains([',', ';']) {
        let count = canonical.split([',', ';']).count();
        return Err(ValidationError::MultipleValues { count });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_form_matches_case_width_and_space_variants() {
        assert_eq!(canonicalize(" ALICE@example.com\u{3000}"), "alice@example.com");
        // Fullwidth letters fold to ASCII under NFKC.
        assert_eq!(canonicalize("ａｌｉｃｅ"), "alice");
    }

    #[test]
    fn issue13_unicode_matching_uses_default_caseless_matching() {
        // Lower-casing alone missed all of these.
        assert_eq!(
            canonicalize("STRASSE@example.test"),
            canonicalize("straße@example.test")
        );
        assert_eq!(canonicalize("STRAẞE"), "strasse");
        assert_eq!(canonicalize("σίσυφοσ"), canonicalize("ΣΊΣΥΦΟΣ"));
        assert_eq!(canonicalize("σίσυφος"), canonicalize("σίσυφοσ"));
        assert_eq!(canonicalize("\u{212A}elvin"), "kelvin");
        assert_eq!(canonicalize("ﬁona@example.test"), "fiona@example.test");
        assert_eq!(canonicalize("Ｆrank@example.test"), "frank@example.test");
        assert_eq!(canonicalize("jose\u{301}"), canonicalize("JOSÉ"));
        // Marks are not stripped, and the dotless i stays apart.
        assert_ne!(canonicalize("jose"), canonicalize("josé"));
        assert_ne!(canonicalize("MIKE"), canonicalize("mıke"));
        assert_ne!(canonicalize("inci"), canonicalize("İnci"));
    }

    #[test]
    fn dotless_i_does_not_collapse_onto_i() {
        // The GitHub look-alike bug: "ı" must not match "i".
        assert_ne!(canonicalize("mıke@example.com"), canonicalize("mike@example.com"));
    }

    #[test]
    fn lists_and_repeated_fields_are_refused() {
        for input in [
            "a@example.com,b@example.com",
            "a@example.com; b@example.com",
            "a@b@example.com",
        ] {
            assert!(
                matches!(
                    parse_identifier(input, IdentifierMode::Either),
                    Err(ValidationError::MultipleValues { .. })
                ),
                "{input}"
            );
        }
        assert!(matches!(
            single_value(&["a@example.com", "b@example.com"]),
            Err(ValidationError::MultipleValues { count: 2 })
        ));
        assert_eq!(single_value(&["a@example.com"]), Ok("a@example.com"));
    }

    #[test]
    fn bad_input_names_what_is_wrong() {
        let err = parse_identifier("ali\u{0}ce@example.com", IdentifierMode::Either).unwrap_err();
        assert_eq!(
            err,
            ValidationError::ControlCharacter {
                field: "identifier",
                position: 3,
                code_point: 0
            }
        );
        let long = format!("{}@example.com", "a".repeat(400));
        assert!(matches!(
            parse_identifier(&long, IdentifierMode::Either),
            Err(ValidationError::TooLong { .. })
        ));
        assert!(matches!(
            parse_identifier("not-an-email@", IdentifierMode::EmailOnly),
            Err(ValidationError::NotAnEmail { .. })
        ));
        assert!(matches!(
            parse_identifier("alice", IdentifierMode::EmailOnly),
            Err(ValidationError::NotAnEmail { .. })
        ));
        assert!(matches!(
            parse_identifier("Alice <alice@example.com>", IdentifierMode::Either),
            Err(ValidationError::NotAnEmail { .. })
        ));
        assert_eq!(
            parse_identifier("a@example.com", IdentifierMode::UsernameOnly),
            Err(ValidationError::UsernameExpected)
        );
        assert_eq!(
            parse_identifier("   ", IdentifierMode::Either),
            Err(ValidationError::Empty)
        );
    }

    #[test]
    fn modes_pick_the_identifier_kind() {
        assert_eq!(
            parse_identifier("Bob", IdentifierMode::Either),
            Ok(Identifier::Username("bob".into()))
        );
        assert_eq!(
            parse_identifier("Bob@Example.org", IdentifierMode::EmailOnly),
            Ok(Identifier::Email("bob@example.org".into()))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn canonicalize_is_idempotent(s in any::<String>()) {
            let once = canonicalize(&s);
            prop_assert_eq!(canonicalize(&once), once);
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            for mode in [IdentifierMode::EmailOnly, IdentifierMode::UsernameOnly, IdentifierMode::Either] {
                let _ = parse_identifier(&s, mode);
            }
        }
    }
}
