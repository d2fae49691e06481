//! # resetkit-portal
//!
//! A small web portal (axum) with a "Forgot your password?" flow on
//! [`resetkit`] and its web layer [`resetkit_axum`]: the reset pages (forgot,
//! check your email, link landing, new password, done, invalid link, "this
//! wasn't me", the security page) and their hardening are the crate's; what
//! stays here is configuration, the demo accounts, sign-in and the account
//! page.
//!
//! It runs on embedded defaults (in-memory stores, the harness's capture SMTP
//! server in-process, seeded demo accounts) or on PostgreSQL and a real SMTP
//! server.
//!
//! Start it in-process (tests and the harness do this):
//!
//! ```no_run
//! # async fn demo() -> Result<(), resetkit_portal::PortalError> {
//! use resetkit_portal::{Portal, PortalConfig};
//!
//! let portal = Portal::start(PortalConfig::local_test()).await?;
//! println!("portal on http://{}", portal.addr());
//! let captured = portal.mail().map(|m| m.messages().len());
//! # let _ = captured;
//! portal.shutdown().await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod config;
pub mod fleet;
mod html;
mod operators;
mod routes;
mod seed;
mod server;
mod session;

pub use config::{PortalConfig, PortalError, SIGN_IN_LIMITS};
pub use seed::{DEMO_ACCOUNTS, DEMO_OPERATORS, DemoAccount};
pub use server::{HEADER_READ_TIMEOUT, Portal, RunningPortal, wait_for_signal};
pub use session::SESSION_COOKIE;
