//! Maps lettre errors, together with the SMTP stage they happened at, to
//! the core's [`DeliveryError`].

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use lettre::transport::smtp::Error as SmtpError;
use resetkit::mail::{DeliveryError, SmtpReply};

/// The step of an SMTP session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Connect,
    StartTls,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    Message,
    Rset,
    Quit,
}

impl Stage {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::StartTls => "starttls",
            Stage::Auth => "auth",
            Stage::MailFrom => "mail_from",
            Stage::RcptTo => "rcpt_to",
            Stage::Data => "data",
            Stage::Message => "end_of_data",
            Stage::Rset => "rset",
            Stage::Quit => "quit",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed step, before classification.
#[derive(Debug)]
pub(crate) enum StepError {
    /// The step did not finish within its bound.
    Timeout(Stage, Duration),
    /// lettre reported an error.
    Smtp(Stage, SmtpError),
    /// Something this crate refused before talking to the server.
    Refused(Stage, String),
    /// The TCP connection could not be made.
    Network(Stage, std::io::Error),
}

impl StepError {
    pub(crate) fn stage(&self) -> Stage {
        match self {
            StepError::Timeout(s, _)
            | StepError::Smtp(s, _)
            | StepError::Refused(s, _)
            | StepError::Network(s, _) => *s,
        }
    }

    /// The server's reply, when the error is one.
    pub(crate) fn reply(&self) -> Option<SmtpReply> {
        match self {
            StepError::Smtp(_, e) => reply_of(e),
            _ => None,
        }
    }

    /// Whether the connection can still carry commands: the server
    /// answered, and not with 421 (closing the connection).
    pub(crate) fn connection_usable(&self) -> bool {
        matches!(self, StepError::Smtp(_, e) if e.status().is_some_and(|c| u16::from(c) != 421))
    }

    /// Whether the connection is gone: an I/O error, the server closed it
    /// (no reply) or announced it is closing it (421). Not a timeout, a TLS
    /// or a client-side error.
    pub(crate) fn connection_lost(&self) -> bool {
        match self {
            StepError::Network(..) => true,
            StepError::Smtp(_, e) => match e.status() {
                Some(code) => u16::from(code) == 421,
                None => !e.is_tls() && !e.is_client() && !e.is_timeout(),
            },
            StepError::Timeout(..) | StepError::Refused(..) => false,
        }
    }

    /// A one-line description without secrets.
    pub(crate) fn describe(&self) -> String {
        match self {
            StepError::Timeout(s, d) => format!("no answer within {d:?} at {s}"),
            StepError::Smtp(s, e) => match reply_of(e) {
                Some(r) => format!("server replied {r} at {s}"),
                None => format!("{} at {s}", lettre_reason(e)),
            },
            StepError::Refused(s, why) => format!("{why} (at {s})"),
            StepError::Network(s, e) => format!("network error: {e} at {s}"),
        }
    }
}

/// Reads code, enhanced code and text from a negative reply.
pub(crate) fn reply_of(e: &SmtpError) -> Option<SmtpReply> {
    let code = u16::from(e.status()?);
    let text = e.source().map(ToString::to_string).unwrap_or_default();
    Some(parse_reply(code, &text))
}

/// Splits `5.7.1 text` into enhanced code and text.
pub(crate) fn parse_reply(code: u16, text: &str) -> SmtpReply {
    let text = text.trim();
    let (first, rest) = text.split_once(' ').unwrap_or((text, ""));
    let parts: Vec<&str> = first.split('.').collect();
    let enhanced = parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    if enhanced {
        SmtpReply::new(code, Some(first), rest.trim())
    } else {
        SmtpReply::new(code, None, text)
    }
}

/// A short reason for an error without a reply; never includes credentials
/// (lettre's errors carry none).
fn lettre_reason(e: &SmtpError) -> String {
    let kind = if e.is_tls() {
        "TLS error"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_client() {
        "client error"
    } else if e.is_response() {
        "connection closed or invalid reply"
    } else {
        "network error"
    };
    match e.source() {
        Some(src) => format!("{kind}: {src}"),
        None => kind.to_owned(),
    }
}

/// Classifies a failed step of sending from `sender` to `recipient`.
pub(crate) fn classify(err: &StepError, sender: &str, recipient: &str) -> DeliveryError {
    let stage = err.stage();
    let reply = err.reply();
    let reason = err.describe();
    match err {
        StepError::Timeout(..) => DeliveryError::Transient { reason, reply: None },
        StepError::Refused(..) => DeliveryError::Misconfigured { reason, reply: None },
        StepError::Network(..) => DeliveryError::Transient { reason, reply: None },
        StepError::Smtp(_, e) => match &reply {
            Some(r) if (400..500).contains(&r.code) => DeliveryError::Transient { reason, reply },
            Some(_) => match stage {
                Stage::MailFrom => DeliveryError::SenderRejected {
                    sender: sender.to_owned(),
                    reply,
                },
                Stage::RcptTo => DeliveryError::RecipientRejected {
                    recipient: recipient.to_owned(),
                    reply,
                },
                Stage::Data | Stage::Message => DeliveryError::MessageRejected { reply },
                _ => DeliveryError::Misconfigured { reason, reply },
            },
            None if e.is_tls() || e.is_client() || stage == Stage::StartTls => {
                DeliveryError::Misconfigured { reason, reply: None }
            }
            None => DeliveryError::Transient { reason, reply: None },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_codes_are_split_from_the_text() {
        let r = parse_reply(550, "5.7.1 not authorised to send");
        assert_eq!(r.enhanced.as_deref(), Some("5.7.1"));
        assert_eq!(r.text, "not authorised to send");
        let r = parse_reply(553, "Mailbox name not allowed");
        assert_eq!(r.enhanced, None);
        assert_eq!(r.text, "Mailbox name not allowed");
        assert_eq!(parse_reply(451, "4.7.1").enhanced.as_deref(), Some("4.7.1"));
    }

    #[test]
    fn timeouts_are_transient_and_refusals_misconfigured() {
        let t = classify(
            &StepError::Timeout(Stage::Data, Duration::from_secs(1)),
            "a@x.test",
            "b@x.test",
        );
        assert!(t.is_transient());
        let m = classify(
            &StepError::Refused(Stage::Auth, "no TLS".into()),
            "a@x.test",
            "b@x.test",
        );
        assert_eq!(m.class(), "misconfigured");
        let refused = StepError::Network(
            Stage::Connect,
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        );
        assert!(classify(&refused, "a@x.test", "b@x.test").is_transient());
        assert!(refused.connection_lost());
        assert!(!refused.connection_usable());
    }
}
