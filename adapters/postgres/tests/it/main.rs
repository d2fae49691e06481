//! The integration tests of `adapters/postgres` in one binary (one link instead of
//! one per file); each former test file is a module.

#[path = "../common/mod.rs"]
mod common;

mod accounts_and_flow;
mod conformance;
mod host_table;
mod inbox_flow;
mod migrations_and_failures;
mod outbox;
mod stored_and_matched;
mod tokens;
mod upgrade;
