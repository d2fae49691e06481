//! The integration tests of `harness` in one binary (one link instead of
//! one per file); each former test file is a module.

#[path = "../browser/mod.rs"]
mod browser;
#[path = "../fixtures/mod.rs"]
mod fixtures;
#[path = "../http_app/mod.rs"]
mod http_app;

mod broken;
mod browser_report;
mod cli;
mod fixture_api;
mod fixture_aspnet;
mod fixture_devise;
mod fixture_django;
mod fixture_laravel;
mod fixture_limits;
mod fixture_repeat;
mod http_cli;
mod http_driver;
mod http_parsing;
mod http_scenarios;
mod inbox;
mod init_drafts;
mod inspect;
mod postgres_scenarios;
mod reference;
mod report;
mod safe_reports;
