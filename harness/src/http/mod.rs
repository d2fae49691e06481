//! The HTTP target: drive a running web app's reset flow like a user with a
//! browser, with the app's SMTP pointed at the harness's fake server, and
//! run black-box checks no in-process test can make.
//!
//! - [`target_file`]: the TOML description of the app (forms, CSRF, link,
//!   success and failure, test accounts, limits; reference:
//!   `harness/TARGETS.md`), with [`link_pattern`] deciding what a reset
//!   link is;
//! - [`driver`]: virtual users with their own cookie jars that fill forms
//!   and follow redirects, recording every [`exchange`];
//! - [`api`]: flow steps that are JSON (or form-encoded) API calls
//!   instead of forms: bodies from templates, CSRF from a cookie or an
//!   endpoint, the identifier repeated or made a list;
//! - [`html`]: the little HTML reading forms need;
//! - [`recognise`]: success and failure as the target file describes them;
//! - [`runner`]: runs the [`scenarios`] (`RST-HTTP-NNN`) and reports the
//!   in-process scenarios as skipped; each gets a [`context`] and takes the
//!   flow's [`steps`];
//! - [`launch`]: optionally starts the app for the run;
//! - [`token_strength`]: the token's entropy estimated from the tokens seen.
//!
//! From the command line:
//!
//! ```text
//! resetkit-harness run --target harness/targets/portal.toml --smtp-listen 127.0.0.1:2525
//! ```
//!
//! The checks, in run order:
//!
//! | ID | checks |
//! |---|---|
//! | RST-HTTP-001 | forgot form → email → link → new password → sign in (old password refused) |
//! | RST-HTTP-002 | the app's reset email passes mail inspection |
//! | RST-HTTP-003 | a forged `Host` header cannot move the link |
//! | RST-HTTP-004 | `X-Forwarded-Host`, `Forwarded` and kin cannot move the link |
//! | RST-HTTP-005 | a repeated / list-valued identifier is refused, never mails a second address |
//! | RST-HTTP-006 | a case variant gets mail only at the stored address |
//! | RST-HTTP-007 | a Unicode look-alike never receives another account's link |
//! | RST-HTTP-008 | the token cannot leak through `Referer` (no rendered page keeps it in its URL, or its policy sends no full URL cross-origin) |
//! | RST-HTTP-009 | pages the link opens send `Cache-Control: no-store` |
//! | RST-HTTP-010 | GET and HEAD of the link do not spend it |
//! | RST-HTTP-011 | N submits of one link landing together ([`race`]), repeated: exactly one succeeds each time |
//! | RST-HTTP-012 | an older link dies when a newer one is requested (SHOULD) |
//! | RST-HTTP-013 | a used link is refused |
//! | RST-HTTP-014 | accounts sharing an address can each reset |
//! | RST-HTTP-015 | known / unknown / disabled / shared / throttled answers are identical |
//! | RST-HTTP-016 | known / disabled / shared vs unknown latency: ratio of medians, bootstrap interval, rank test ([`stats`]) (SHOULD) |

pub mod api;
pub(crate) mod command;
pub mod context;
pub mod driver;
pub mod exchange;
pub mod html;
pub mod init;
pub mod launch;
pub mod link_pattern;
pub mod race;
pub mod recognise;
pub mod runner;
pub mod scenarios;
pub mod stats;
pub mod steps;
pub mod target_file;
pub mod token_strength;

pub use driver::{Driver, DriverError, Submission, User};
pub use runner::HttpScenario;
pub use target_file::{HttpTarget, TargetFileError};
