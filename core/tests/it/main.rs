//! The integration tests of `core` in one binary (one link instead of
//! one per file); each former test file is a module.

#[path = "../common/mod.rs"]
mod common;

mod build_errors;
mod complete;
mod concurrency;
mod conformance;
mod default_timing;
mod inbox;
mod legacy_hashes;
mod lifecycle_races;
mod outbox;
mod properties;
mod redaction;
mod sender;
mod shared_email;
mod stored_and_matched;
mod template_lint;
mod token_lifecycle;
mod uniform_outcome;
