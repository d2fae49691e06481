//! Outgoing email and the [`Mailer`] trait that sends it.
//!
//! A mailer sends one message and classifies failures so the flow and the
//! operator can tell "your From address may not send" from "the server is down".
//!
//! ```
//! use resetkit::mail::{DeliveryError, Mailbox, SmtpReply};
//!
//! let from = Mailbox::new(Some("Example Support"), "support@example.com").unwrap();
//! assert_eq!(from.domain(), "example.com");
//! assert!(Mailbox::new(Some("Evil\r\nBcc: x@y.z"), "support@example.com").is_err());
//!
//! let err = DeliveryError::SenderRejected {
//!     sender: "noreply@example.com".into(),
//!     reply: Some(SmtpReply::new(550, Some("5.7.1"), "not authorised to send")),
//! };
//! assert!(err.is_permanent());
//! ```

use std::fmt;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::error::ValidationError;
use crate::identifier::validate_email;

/// An address with an optional display name; both validated (no CR/LF, one
/// plain address), so header injection through them is impossible.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    name: Option<String>,
    address: String,
}

impl Mailbox {
    /// Validates and builds a mailbox. The address keeps its case as given.
    pub fn new(name: Option<&str>, address: &str) -> Result<Self, ValidationError> {
        if let Some(name) = name
            && let Some((position, ch)) = name.chars().enumerate().find(|(_, c)| c.is_control())
        {
            return Err(ValidationError::ControlCharacter {
                field: "display name",
                position,
                code_point: u32::from(ch),
            });
        }
        if let Some((position, ch)) = address.chars().enumerate().find(|(_, c)| c.is_control()) {
            return Err(ValidationError::ControlCharacter {
                field: "email",
                position,
                code_point: u32::from(ch),
            });
        }
        validate_email(&address.to_lowercase())?;
        Ok(Mailbox {
            name: name.map(str::to_owned).filter(|n| !n.trim().is_empty()),
            address: address.to_owned(),
        })
    }

    /// A mailbox without display name.
    pub fn address_only(address: &str) -> Result<Self, ValidationError> {
        Self::new(None, address)
    }

    /// The display name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The domain part of the address.
    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "\"{}\" <{}>", name.replace(['"', '\\'], ""), self.address),
            None => write!(f, "<{}>", self.address),
        }
    }
}

/// What an email is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EmailKind {
    /// A reset link for one account.
    Reset,
    /// One email listing several accounts sharing the address, each with its link.
    ResetCombined,
    /// Several accounts share the address and the username is required.
    UsernameRequired,
    /// "Your password was changed."
    PasswordChanged,
}

impl EmailKind {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailKind::Reset => "reset",
            EmailKind::ResetCombined => "reset_combined",
            EmailKind::UsernameRequired => "username_required",
            EmailKind::PasswordChanged => "password_changed",
        }
    }

    /// Parses [`EmailKind::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "reset" => EmailKind::Reset,
            "reset_combined" => EmailKind::ResetCombined,
            "username_required" => EmailKind::UsernameRequired,
            "password_changed" => EmailKind::PasswordChanged,
            _ => return None,
        })
    }
}

/// Subject and bodies of an email. The bodies carry live links: `Debug`
/// prints only the subject.
#[derive(Clone)]
pub struct MailContent {
    /// Subject on one line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

impl fmt::Debug for MailContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailContent")
            .field("subject", &self.subject)
            .field("text", &"[REDACTED]")
            .field("html", &"[REDACTED]")
            .finish()
    }
}

/// Headers every resetkit email carries besides From/To/Subject/Date/Message-ID.
pub const AUTO_SUBMITTED: (&str, &str) = ("Auto-Submitted", "auto-generated");

/// A rendered email ready to send. The bodies carry live links, so they are
/// secrets: `Debug` prints their length only.
#[derive(Clone)]
pub struct OutgoingEmail {
    /// `<id@sender-domain>`, unique per message.
    pub message_id: String,
    /// What the email is for.
    pub kind: EmailKind,
    /// From.
    pub from: Mailbox,
    /// Reply-To, when the sender resolver gives one.
    pub reply_to: Option<Mailbox>,
    /// To: always the stored address of the account.
    pub to: Mailbox,
    /// Subject (never contains a token).
    pub subject: String,
    text: SecretString,
    html: SecretString,
}

impl OutgoingEmail {
    /// Forgets the bodies (which carry live links) once the message is done
    /// with, as the PostgreSQL outbox blanks them.
    pub(crate) fn blank_bodies(&mut self) {
        self.text = SecretString::from(String::new());
        self.html = SecretString::from(String::new());
    }
}

impl OutgoingEmail {
    /// Assembles an email.
    pub fn new(
        message_id: String,
        kind: EmailKind,
        from: Mailbox,
        reply_to: Option<Mailbox>,
        to: Mailbox,
        content: MailContent,
    ) -> Self {
        OutgoingEmail {
            message_id,
            kind,
            from,
            reply_to,
            to,
            subject: content.subject,
            text: SecretString::from(content.text),
            html: SecretString::from(content.html),
        }
    }

    /// The plain-text body (contains the live link).
    pub fn expose_text(&self) -> &str {
        self.text.expose_secret()
    }

    /// The HTML body (contains the live link).
    pub fn expose_html(&self) -> &str {
        self.html.expose_secret()
    }

    /// Extra headers a mailer must add.
    pub fn extra_headers(&self) -> &'static [(&'static str, &'static str)] {
        &[AUTO_SUBMITTED]
    }
}

impl fmt::Debug for OutgoingEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingEmail")
            .field("message_id", &self.message_id)
            .field("kind", &self.kind)
            .field("from", &self.from)
            .field("reply_to", &self.reply_to)
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field(
                "text",
                &format_args!("[REDACTED {} bytes]", self.expose_text().len()),
            )
            .field(
                "html",
                &format_args!("[REDACTED {} bytes]", self.expose_html().len()),
            )
            .finish()
    }
}

/// An SMTP server's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    /// Basic code, e.g. 550.
    pub code: u16,
    /// Enhanced status code, e.g. `5.7.1`, when the server gave one.
    pub enhanced: Option<String>,
    /// The server's text.
    pub text: String,
}

impl SmtpReply {
    /// Builds a reply.
    pub fn new(code: u16, enhanced: Option<&str>, text: impl Into<String>) -> Self {
        SmtpReply {
            code,
            enhanced: enhanced.map(str::to_owned),
            text: text.into(),
        }
    }

    /// Parses a reply line such as `250 2.0.0 Ok: queued as 12345` (the
    /// form [`SentReceipt::server_reply`] carries); `None` when it does not
    /// start with a three-digit code.
    pub fn parse_line(line: &str) -> Option<SmtpReply> {
        let line = line.trim();
        let code_text = line.get(..3)?;
        if !code_text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let code: u16 = code_text.parse().ok()?;
        let rest = line[3..].trim_start_matches(['-', ' ']);
        let (first, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let is_enhanced = {
            let parts: Vec<&str> = first.split('.').collect();
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        };
        Some(if is_enhanced {
            SmtpReply::new(code, Some(first), tail.trim())
        } else {
            SmtpReply::new(code, None, rest.trim())
        })
    }
}

impl fmt::Display for SmtpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = &self.enhanced {
            write!(f, " {e}")?;
        }
        write!(f, " {}", self.text)
    }
}

fn reply_suffix(reply: &Option<SmtpReply>) -> String {
    reply
        .as_ref()
        .map_or_else(String::new, |r| format!(" (server said: {r})"))
}

/// Why a message was not delivered, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The server refused the sender (MAIL FROM 5xx: e.g. 550 5.7.1, 553).
    #[error("sender <{sender}> rejected by the mail server{}", reply_suffix(.reply))]
    SenderRejected {
        /// The refused From address.
        sender: String,
        /// The server's reply.
        reply: Option<SmtpReply>,
    },
    /// The server refused the recipient (RCPT TO 5xx).
    #[error("recipient <{recipient}> rejected by the mail server{}", reply_suffix(.reply))]
    RecipientRejected {
        /// The refused address.
        recipient: String,
        /// The server's reply.
        reply: Option<SmtpReply>,
    },
    /// The server refused the message content (DATA 5xx).
    #[error("message rejected by the mail server{}", reply_suffix(.reply))]
    MessageRejected {
        /// The server's reply.
        reply: Option<SmtpReply>,
    },
    /// Worth retrying: 4xx, connection refused or dropped, timeout.
    #[error("temporary delivery failure: {reason}{}", reply_suffix(.reply))]
    Transient {
        /// What happened.
        reason: String,
        /// The server's reply, if any.
        reply: Option<SmtpReply>,
    },
    /// The mailer is set up wrong: TLS, authentication, bad settings.
    #[error("mailer misconfigured: {reason}{}", reply_suffix(.reply))]
    Misconfigured {
        /// What is wrong.
        reason: String,
        /// The server's reply, if any.
        reply: Option<SmtpReply>,
    },
}

impl DeliveryError {
    /// Whether a retry later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, DeliveryError::Transient { .. })
    }

    /// Whether retrying cannot help until something is changed.
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }

    /// The server's reply, when there was one.
    pub fn reply(&self) -> Option<&SmtpReply> {
        match self {
            DeliveryError::SenderRejected { reply, .. }
            | DeliveryError::RecipientRejected { reply, .. }
            | DeliveryError::MessageRejected { reply }
            | DeliveryError::Transient { reply, .. }
            | DeliveryError::Misconfigured { reply, .. } => reply.as_ref(),
        }
    }

    /// Stable short name of the class.
    pub fn class(&self) -> &'static str {
        match self {
            DeliveryError::SenderRejected { .. } => "sender_rejected",
            DeliveryError::RecipientRejected { .. } => "recipient_rejected",
            DeliveryError::MessageRejected { .. } => "message_rejected",
            DeliveryError::Transient { .. } => "transient",
            DeliveryError::Misconfigured { .. } => "misconfigured",
        }
    }
}

/// What a server said when a message was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReceipt {
    /// The Message-ID sent.
    pub message_id: String,
    /// The server's final reply, if the transport reports one.
    pub server_reply: Option<String>,
}

/// Result of checking whether a sender is accepted, without delivering mail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SenderCheck {
    /// The server accepted MAIL FROM for this sender.
    Accepted,
    /// The server refused it.
    Rejected(DeliveryError),
    /// This mailer cannot check senders.
    NotSupported,
}

/// Sends one message.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `email`; errors are classified.
    async fn send(&self, email: &OutgoingEmail) -> Result<SentReceipt, DeliveryError>;

    /// Checks that `from` would be accepted as a sender, delivering nothing.
    async fn check_sender(&self, _from: &Mailbox) -> SenderCheck {
        SenderCheck::NotSupported
    }
}

/// One step of a sender probe (`connect`, `starttls`, `auth`, `mail_from`,
/// `rcpt_to`, `rset`, `quit`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeStep {
    /// The step.
    pub name: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// The server's reply, when the step had one.
    pub reply: Option<SmtpReply>,
    /// What happened, in words (never a credential).
    pub detail: String,
}

/// What a [`SenderProbe`] found for one sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// The sender checked.
    pub sender: String,
    /// The address used for `RCPT TO`.
    pub probe_recipient: String,
    /// The steps run, in order.
    pub steps: Vec<ProbeStep>,
    /// The classified failure, if a step before the reset failed.
    pub error: Option<DeliveryError>,
}

impl ProbeReport {
    /// Whether the sender (and the probe recipient) were accepted.
    pub fn passed(&self) -> bool {
        self.error.is_none()
    }
}

/// Checks a sender against the mail server step by step without
/// delivering anything (SMTP: up to `RCPT TO`, then `RSET`). The operator
/// console's sender check runs it for every sender the resolver could pick;
/// `resetkit-smtp` implements it for its mailer.
#[async_trait]
pub trait SenderProbe: Send + Sync {
    /// Probes `from`.
    async fn probe(&self, from: &Mailbox) -> ProbeReport;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_email_hides_bodies() {
        let mb = Mailbox::address_only("a@example.com").unwrap();
        let e = OutgoingEmail::new(
            "<1@example.com>".into(),
            EmailKind::Reset,
            mb.clone(),
            None,
            mb,
            MailContent {
                subject: "Reset".into(),
                text: "https://x.example/r?token=SECRET".into(),
                html: "<a href=\"https://x.example/r?token=SECRET\">".into(),
            },
        );
        assert!(!format!("{e:?}").contains("SECRET"));
        assert!(!format!("{e:?}").contains("SECRET"));
    }

    #[test]
    fn delivery_errors_classify_and_carry_the_reply() {
        let e = DeliveryError::Transient {
            reason: "greylisted".into(),
            reply: Some(SmtpReply::new(451, Some("4.7.1"), "try later")),
        };
        assert!(e.is_transient() && !e.is_permanent());
        assert_eq!(e.reply().map(|r| r.code), Some(451));
        assert!(e.to_string().contains("451 4.7.1 try later"));
    }

    #[test]
    fn reply_lines_parse_with_and_without_enhanced_codes() {
        assert_eq!(
            SmtpReply::parse_line("250 2.0.0 Ok: queued as 1"),
            Some(SmtpReply::new(250, Some("2.0.0"), "Ok: queued as 1"))
        );
        assert_eq!(
            SmtpReply::parse_line("250 OK"),
            Some(SmtpReply::new(250, None, "OK"))
        );
        assert_eq!(SmtpReply::parse_line("hello"), None);
        assert_eq!(SmtpReply::parse_line("2é"), None);
    }
}
