//! resetkit-harness: conformance harness for password-reset flows.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod conformance;
pub mod fake_smtp;
