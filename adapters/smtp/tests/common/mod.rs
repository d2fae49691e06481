//! Shared helpers for the SMTP adapter tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use resetkit::mail::{EmailKind, MailContent, Mailbox, OutgoingEmail};
use resetkit_fake_smtp::FakeSmtpServer;
use resetkit_smtp::{SmtpConfig, SmtpConfigBuilder, TlsMode};

pub const LINK: &str =
    "https://app.example.com/reset?token=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjK";
pub const WAIT: Duration = Duration::from_secs(2);

pub fn email(from: &str, to: &str) -> OutgoingEmail {
    OutgoingEmail::new(
        "<test-1.abc@example.com>".into(),
        EmailKind::Reset,
        Mailbox::new(Some("Example Support, \"Team\" Ünïcode"), from).unwrap(),
        Some(Mailbox::address_only("help@example.com").unwrap()),
        Mailbox::new(Some("Alice"), to).unwrap(),
        MailContent {
            subject: "Reset your password".into(),
            text: format!(
                "Hello,\n\nOpen this link to choose a new password:\n\n{LINK}\n\nIf this wasn't you, ignore this email.\n"
            ),
            html: format!(
                "<p>Hello,</p><p><a href=\"{}\">Choose a new password</a></p>",
                LINK.replace('&', "&amp;")
            ),
        },
    )
}

/// Plain SMTP to the fake server with short timeouts.
pub fn plain(server: &FakeSmtpServer) -> SmtpConfigBuilder {
    SmtpConfig::builder("127.0.0.1")
        .port(server.port())
        .tls(TlsMode::None)
        .connect_timeout(Duration::from_secs(1))
        .command_timeout(Duration::from_secs(1))
}
pub mod stub;
