//! # resetkit-portal
//!
//! A small web portal (axum) with a hardened "Forgot your password?" flow on
//! [`resetkit`]: sign in, request a link, check your email, choose a new
//! password, done; plain HTML forms that work without JavaScript.
//!
//! It runs on embedded defaults (in-memory stores, the harness's capture SMTP
//! server in-process, seeded demo accounts) or on PostgreSQL and a real SMTP
//! server. Hardening, as the SPEC asks: a CSRF token on every form; the link's
//! GET never spends the token and moves it out of the URL into the server-side
//! session before redirecting to a clean URL; `Referrer-Policy: no-referrer`
//! and `Cache-Control: no-store` on every page; repeated or list-valued form
//! fields refused; links built only from the configured base URL.
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
mod form;
mod html;
mod routes;
mod seed;
mod server;
mod session;

pub use config::{PortalConfig, PortalError};
pub use seed::{DEMO_ACCOUNTS, DemoAccount};
pub use server::{Portal, RunningPortal};
pub use session::{PENDING_LINK_TTL, SESSION_COOKIE};
