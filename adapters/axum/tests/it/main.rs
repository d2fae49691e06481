//! The integration tests of `adapters/axum` in one binary (one link instead of
//! one per file); each former test file is a module.

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod hardening;
mod pages;
