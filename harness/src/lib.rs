//! resetkit-harness: conformance harness for password-reset flows.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cli;

/// The store conformance suite, now in `resetkit` (feature `conformance`);
/// re-exported here for callers of the harness's former copy.
pub use resetkit::conformance;

pub mod event_text;
pub mod http;
pub mod inbox;
pub mod inspect;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod scenarios;
pub mod target;

/// The fake SMTP server (the `resetkit-fake-smtp` crate), re-exported.
pub use resetkit_fake_smtp as fake_smtp;
