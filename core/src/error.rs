//! Errors shared across the crate: bad input, bad configuration, store faults.
//!
//! Flow-specific errors ([`crate::flow::RequestError`],
//! [`crate::flow::CompleteError`]), delivery errors
//! ([`crate::mail::DeliveryError`]) and sender errors
//! ([`crate::sender::SenderError`]) live next to the code that raises them.

use std::error::Error as StdError;

/// Input a user typed that cannot be processed; the message names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// Nothing was entered.
    #[error("enter an email address or username")]
    Empty,
    /// The field is longer than allowed.
    #[error("the {field} is too long: {actual} where at most {max} are allowed")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// The limit (bytes for raw input, characters otherwise).
        max: usize,
        /// What was sent.
        actual: usize,
    },
    /// A control character (e.g. NUL, CR, LF) was found.
    #[error("the {field} contains a control character (U+{code_point:04X}) at position {position}")]
    ControlCharacter {
        /// Which field.
        field: &'static str,
        /// Character index of the first control character.
        position: usize,
        /// Its code point.
        code_point: u32,
    },
    /// Several identifiers were sent where one is expected.
    #[error("enter one email address or username, not {count}")]
    MultipleValues {
        /// How many values were found.
        count: usize,
    },
    /// The text is not a usable email address.
    #[error("not a valid email address: {reason}")]
    NotAnEmail {
        /// Why it was refused.
        reason: String,
    },
    /// An email address was sent where a username is required.
    #[error("enter your username, not an email address")]
    UsernameExpected,
}

/// A configuration the service refuses to build with; names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A required part was not supplied.
    #[error("`{setting}` is required but was not set")]
    Missing {
        /// The builder method / setting that is missing.
        setting: &'static str,
    },
    /// A setting has a value the service cannot work with.
    #[error("`{setting}` is invalid: {reason}")]
    Invalid {
        /// The offending setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A template failed to parse, render, or dropped a required link.
    #[error("template `{template}` (locale `{locale}`) is invalid: {reason}")]
    Template {
        /// Which template (e.g. `reset.text`).
        template: String,
        /// Which locale.
        locale: String,
        /// What is wrong.
        reason: String,
    },
}

impl BuildError {
    pub(crate) fn invalid(setting: &'static str, reason: impl Into<String>) -> Self {
        BuildError::Invalid {
            setting,
            reason: reason.into(),
        }
    }
}

/// A store (tokens, events, outbox, accounts) could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or failed (database down, pool closed).
    #[error("store operation `{operation}` failed: backend unavailable: {source}")]
    Unavailable {
        /// The store operation, e.g. `tokens.consume`.
        operation: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The backend returned data that does not make sense.
    #[error("store operation `{operation}` failed: corrupt data: {detail}")]
    Corrupt {
        /// The store operation.
        operation: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The record the operation needs does not exist.
    #[error("store operation `{operation}` failed: {what} not found")]
    NotFound {
        /// The store operation.
        operation: &'static str,
        /// What was missing.
        what: String,
    },
    /// A bounded store is full: the caller should shed load and retry later.
    #[error("store operation `{operation}` failed: {what} is full ({capacity} entries)")]
    Full {
        /// The store operation.
        operation: &'static str,
        /// What is full, e.g. `the request inbox`.
        what: &'static str,
        /// Its capacity.
        capacity: usize,
    },
    /// This store does not implement the operation (an optional read or
    /// operator method its author has not provided).
    #[error("store operation `{operation}` is not supported by this store")]
    Unsupported {
        /// The store operation.
        operation: &'static str,
    },
}

impl StoreError {
    /// Wraps a backend error for `operation`.
    pub fn unavailable(operation: &'static str, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        StoreError::Unavailable {
            operation,
            source: source.into(),
        }
    }

    /// The store operation that failed.
    pub fn operation(&self) -> &'static str {
        match self {
            StoreError::Unavailable { operation, .. }
            | StoreError::Corrupt { operation, .. }
            | StoreError::NotFound { operation, .. }
            | StoreError::Full { operation, .. }
            | StoreError::Unsupported { operation } => operation,
        }
    }

    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. } | StoreError::Full { .. })
    }
}
