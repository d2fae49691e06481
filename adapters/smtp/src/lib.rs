//! # resetkit-smtp
//!
//! An SMTP [`Mailer`](resetkit::mail::Mailer) for resetkit, on lettre and
//! tokio: plain, STARTTLS (required or opportunistic) and implicit TLS;
//! AUTH PLAIN / LOGIN with credentials held in `secrecy` types; connect and
//! command timeouts that bound every send; a small pool of idle
//! connections (on by default, closed after a short idle time) so that
//! concurrent senders do not open a connection per message.
//!
//! Failures are classified by the SMTP stage they happen at (see
//! [`SmtpMailer`]) and carry the server's code, enhanced code and text.
//! [`SmtpMailer::preflight`] checks a sender without delivering mail.
//!
//! ```
//! use std::time::Duration;
//! use resetkit_smtp::{ConnectionReuse, SmtpConfig, SmtpMailer, TlsMode};
//! use secrecy::SecretString;
//!
//! let config = SmtpConfig::builder("mail.example.com")
//!     .port(587)
//!     .tls(TlsMode::StartTlsRequired)
//!     .credentials("mailer", SecretString::from("hunter2"))
//!     .command_timeout(Duration::from_secs(10))
//!     .reuse_connections(ConnectionReuse { max_idle: 4, ..ConnectionReuse::default() })
//!     .build()
//!     .unwrap();
//! let mailer = SmtpMailer::new(config).unwrap();
//! assert!(!format!("{mailer:?}").contains("hunter2"));
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod classify;
mod config;
mod mailer;
mod message;
mod preflight;
mod session;

pub use config::{AuthMechanism, ConfigError, ConnectionReuse, SmtpConfig, SmtpConfigBuilder, TlsMode};
pub use mailer::SmtpMailer;
pub use preflight::{PreflightReport, PreflightStep};
