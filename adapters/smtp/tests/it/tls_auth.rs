//! STARTTLS, AUTH, configuration parsing and secret redaction.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::{WAIT, email};
use resetkit::mail::Mailer;
use resetkit_fake_smtp::FakeSmtpServer;
use resetkit_smtp::{ConfigError, SmtpConfig, SmtpMailer, TlsMode};
use secrecy::SecretString;

fn tls_mailer(server: &FakeSmtpServer, password: &str) -> SmtpMailer {
    let config = SmtpConfig::builder("127.0.0.1")
        .port(server.port())
        .tls(TlsMode::StartTlsRequired)
        .tls_server_name("localhost")
        .add_root_certificate_pem(server.ca_certificate_pem().unwrap())
        .credentials("mailer", SecretString::from(password.to_owned()))
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    SmtpMailer::new(config).unwrap()
}

#[tokio::test]
async fn starttls_with_a_test_ca_and_auth_success() {
    let server = FakeSmtpServer::builder()
        .starttls(true)
        .auth("mailer", "correct horse")
        .start()
        .unwrap();
    tls_mailer(&server, "correct horse")
        .send(&email("noreply@example.com", "alice@example.com"))
        .await
        .unwrap();
    let m = server
        .wait_for(|m| m.has_recipient("alice@example.com"), WAIT)
        .await
        .unwrap();
    assert!(m.tls, "sent after STARTTLS");
    assert_eq!(m.authenticated_as.as_deref(), Some("mailer"));
}

#[tokio::test]
async fn auth_failure_is_misconfigured_with_the_reply_and_no_password() {
    let server = FakeSmtpServer::builder()
        .starttls(true)
        .auth("mailer", "correct horse")
        .start()
        .unwrap();
    let err = tls_mailer(&server, "wrong-pass-123")
        .send(&email("noreply@example.com", "a@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), "misconfigured", "{err:?}");
    assert_eq!(err.reply().unwrap().code, 535);
    assert!(!err.to_string().contains("wrong-pass-123"));
    assert!(!format!("{err:?}").contains("wrong-pass-123"));
}

#[tokio::test]
async fn untrusted_certificate_is_misconfigured() {
    let server = FakeSmtpServer::builder().starttls(true).start().unwrap();
    let config = SmtpConfig::builder("localhost")
        .port(server.port())
        .tls(TlsMode::StartTlsRequired)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = SmtpMailer::new(config)
        .unwrap()
        .send(&email("noreply@example.com", "a@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), "misconfigured", "{err:?}");
}

#[tokio::test]
async fn required_starttls_not_offered_is_misconfigured_and_opportunistic_falls_back() {
    let server = FakeSmtpServer::start().unwrap();
    let base = || {
        SmtpConfig::builder("127.0.0.1")
            .port(server.port())
            .connect_timeout(Duration::from_secs(1))
    };
    let required = SmtpMailer::new(base().tls(TlsMode::StartTlsRequired).build().unwrap()).unwrap();
    let err = required
        .send(&email("noreply@example.com", "a@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), "misconfigured");
    assert!(err.to_string().contains("STARTTLS"), "{err}");
    let opportunistic = SmtpMailer::new(base().tls(TlsMode::StartTlsOpportunistic).build().unwrap()).unwrap();
    opportunistic
        .send(&email("noreply@example.com", "a@example.com"))
        .await
        .unwrap();
}

#[test]
fn debug_never_shows_the_password() {
    let config =
        SmtpConfig::from_url("smtp://mailer:Sup3r%2Fsecret@mail.example.com:587?tls=starttls").unwrap();
    let mailer = SmtpMailer::new(config.clone()).unwrap();
    for text in [
        format!("{config:?}"),
        format!("{mailer:?}"),
        format!("{config:#?}"),
    ] {
        assert!(!text.contains("Sup3r"), "{text}");
        assert!(text.contains("REDACTED"));
    }
}

#[test]
fn url_configuration_and_errors_name_the_bad_part() {
    let c = SmtpConfig::from_url("smtps://u:p@mail.example.com").unwrap();
    assert_eq!((c.port(), c.tls()), (465, TlsMode::Implicit));
    let c =
        SmtpConfig::from_url("smtp://mail.example.com?tls=opportunistic&command_timeout_ms=1500&reuse=true")
            .unwrap();
    assert_eq!((c.port(), c.tls()), (587, TlsMode::StartTlsOpportunistic));
    assert_eq!(c.command_timeout(), Duration::from_millis(1500));
    assert!(c.reuse().is_some());

    // Reuse is on by default, with a pool of 8; `pool` sizes it and
    // `reuse=false` turns it off, in URLs and in the builder.
    let default = resetkit_smtp::ConnectionReuse::default();
    assert_eq!(default.max_idle, 8);
    assert_eq!(
        SmtpConfig::from_url("smtp://mail.example.com").unwrap().reuse(),
        Some(default)
    );
    assert_eq!(
        SmtpConfig::builder("mail.example.com").build().unwrap().reuse(),
        Some(default)
    );
    let c = SmtpConfig::from_url("smtp://mail.example.com?pool=3").unwrap();
    assert_eq!(c.reuse().map(|r| r.max_idle), Some(3));
    for url in [
        "smtp://mail.example.com?reuse=false",
        "smtp://mail.example.com?reuse=0",
    ] {
        assert_eq!(SmtpConfig::from_url(url).unwrap().reuse(), None, "{url}");
    }
    let zero = resetkit_smtp::ConnectionReuse {
        max_idle: 0,
        ..default
    };
    let err = SmtpConfig::builder("mail.example.com")
        .reuse_connections(zero)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("`reuse`"), "{err}");

    let cases: &[(&str, &str)] = &[
        ("http://mail.example.com", "scheme `http`"),
        ("smtp://mail.example.com?tls=maybe", "`tls`"),
        ("smtp://mail.example.com?colour=blue", "`colour`"),
        ("smtp://mail.example.com?colour=blue", "reuse, pool, probe"),
        ("smtp://mail.example.com?pool=0", "`pool`"),
        ("smtp://mail.example.com?pool=many", "`pool`"),
        ("smtp://mail.example.com?pool=-1", "`pool`"),
        ("smtp://mail.example.com?reuse=false&pool=4", "`pool`"),
        ("smtp://mail.example.com?reuse=maybe", "`reuse`"),
        (
            "smtp://mail.example.com?connect_timeout_ms=soon",
            "`connect_timeout_ms`",
        ),
        ("smtp://mail.example.com:0", "port"),
        (
            "smtp://user:secretpw@mail.example.com?tls=none",
            "credentials need TLS",
        ),
        ("smtp://user@mail.example.com", "password is missing"),
        ("smtp://mail.example.com?probe=not-an-address", "`probe`"),
    ];
    for (url, expected) in cases {
        let err = SmtpConfig::from_url(url).unwrap_err();
        assert!(err.to_string().contains(expected), "{url}: {err}");
        assert!(!err.to_string().contains("secretpw"));
    }
    assert!(matches!(
        SmtpConfig::from_url("not a url"),
        Err(ConfigError::InvalidUrl { .. })
    ));
}
