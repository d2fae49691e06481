//! Mail inspection: parse a captured reset email (MIME, any transfer
//! encoding), extract its links from the text part and from HTML `href`s,
//! and check what a user and a mail client depend on: exactly one reset link,
//! the same in both parts, alone on its own line in the text part, on the
//! expected scheme / host / path, carrying a well-formed token of enough
//! entropy that goes nowhere else; From / To as expected; `Auto-Submitted`,
//! `Message-ID` and `Date` present; no token in the subject or other headers.
//!
//! Every check gives a [`Finding`] with what was expected and what was seen,
//! so a failure explains itself.
//!
//! ```
//! use resetkit_harness::inspect::{self, Check, LinkExpectation, MailExpectation, ParsedMail};
//!
//! let token = "q2ZxXJ0aW4uZ3Jvd3RoLnRva2VuLnZhbHVlLmhlcmUu"; // 43 characters, 256 bits
//! let link = format!("https://app.example.com/reset?token={token}&lang=en");
//! let raw = format!(
//!     "From: Support <noreply@example.com>\r\nTo: alice@example.com\r\n\
//!      Subject: Reset your password\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\
//!      Message-ID: <1.abc@example.com>\r\nAuto-Submitted: auto-generated\r\n\
//!      MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
//!      --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOpen this link:\r\n\r\n{link}\r\n\r\n\
//!      --b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<a href=\"{}\">Reset</a>\r\n--b--\r\n",
//!     link.replace('&', "&amp;"),
//! );
//! let mail = ParsedMail::parse(raw.as_bytes()).unwrap();
//! let expect = MailExpectation::new(LinkExpectation::parse("https://app.example.com/reset").unwrap())
//!     .from("noreply@example.com")
//!     .to("alice@example.com");
//! let findings = inspect::check(&mail, &expect);
//! assert!(findings.iter().all(|f| f.ok), "{findings:#?}");
//! assert_eq!(inspect::reset_token(&mail, &expect.link).unwrap(), token);
//!
//! // A link on the wrong host is caught, with the evidence in the finding.
//! let evil = raw.replace("https://app.example.com/", "https://evil.example/");
//! let findings = inspect::check(&ParsedMail::parse(evil.as_bytes()).unwrap(), &expect);
//! let bad = findings.iter().find(|f| f.check == Check::LinkMatchesBase).unwrap();
//! assert!(!bad.ok && bad.actual.contains("evil.example"));
//! ```

mod checks;
mod expectation;
mod headers;
mod links;
mod mime;

pub use checks::{Check, Finding, check, check_links, reset_token};
pub use expectation::{LinkExpectation, MailExpectation, TokenLocation};
pub(crate) use links::tag_attributes;
pub use links::{ResetLink, find_reset_links, html_links, text_links, unescape_html};
pub use mime::{InspectError, ParsedMail};
