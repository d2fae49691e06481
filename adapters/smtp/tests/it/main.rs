//! The integration tests of `adapters/smtp` in one binary (one link instead of
//! one per file); each former test file is a module.

#[path = "../common/mod.rs"]
mod common;

mod flow;
mod preflight;
mod reuse;
mod send;
mod tls_auth;
