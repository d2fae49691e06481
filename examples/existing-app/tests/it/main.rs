//! The integration tests of `examples/existing-app` in one binary (one link instead of
//! one per file); each former test file is a module.

mod browser;
mod flow;
