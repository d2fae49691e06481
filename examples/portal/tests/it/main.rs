//! The integration tests of `examples/portal` in one binary (one link instead of
//! one per file); each former test file is a module.

#[path = "../common/mod.rs"]
mod common;
#[path = "../webdriver/mod.rs"]
mod webdriver;

mod admin_browser;
mod browser;
mod fleet;
mod flow;
mod hardening;
mod init_draft;
mod postgres;
