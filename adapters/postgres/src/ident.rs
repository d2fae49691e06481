//! Validated SQL identifiers (schema, table and column names) and the
//! configuration errors that name the offending setting.
//!
//! Every identifier that reaches SQL text goes through [`Ident::new`]:
//! letters, digits and `_`, not starting with a digit, at most 63 bytes, and
//! it is always written double-quoted. No SQL is built from unchecked strings.
//!
//! ```
//! use resetkit_postgres::Ident;
//!
//! assert_eq!(Ident::new("resetkit").unwrap().quoted(), "\"resetkit\"");
//! assert!(Ident::new("users; DROP TABLE x").is_err());
//! assert!(Ident::new("").is_err());
//! ```

use std::fmt;

/// A configuration the adapter refuses; names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A name is not a plain SQL identifier.
    #[error(
        "`{setting}` = {value:?} is not a valid SQL identifier: use 1 to 63 ASCII letters, digits or `_`, not starting with a digit"
    )]
    InvalidIdentifier {
        /// The setting (e.g. `users.email_column`).
        setting: &'static str,
        /// What was given.
        value: String,
    },
}

/// A validated SQL identifier, written double-quoted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Ident(String);

impl Ident {
    /// Validates `name` as an identifier.
    pub fn new(name: &str) -> Result<Self, ConfigError> {
        Self::for_setting("identifier", name)
    }

    /// Validates `name`, naming `setting` in the error.
    pub fn for_setting(setting: &'static str, name: &str) -> Result<Self, ConfigError> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if valid {
            Ok(Ident(name.to_owned()))
        } else {
            Err(ConfigError::InvalidIdentifier {
                setting,
                value: name.to_owned(),
            })
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name double-quoted for SQL text (`"name"`).
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ident({})", self.0)
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_anything_but_plain_identifiers() {
        for bad in ["", "1abc", "a-b", "a\"b", "a b", "a;b", "ä", &"x".repeat(64)] {
            assert!(Ident::new(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "_x", "Users", "user_2", &"x".repeat(63)] {
            assert_eq!(Ident::new(good).map(|i| i.quoted()), Ok(format!("\"{good}\"")));
        }
    }

    #[test]
    fn errors_name_the_setting() {
        let err = Ident::for_setting("users.email_column", "e mail").err();
        assert!(err.is_some_and(|e| e.to_string().contains("users.email_column")));
    }
}
