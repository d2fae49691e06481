//! Sender preflight: no DATA, nothing delivered, one line per step.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::plain;
use resetkit::mail::{Mailbox, Mailer, SenderCheck};
use resetkit_fake_smtp::{FakeSmtpServer, FaultRule, Stage};
use resetkit_smtp::SmtpMailer;

#[tokio::test]
async fn accepted_sender_runs_every_step_and_delivers_nothing() {
    let server = FakeSmtpServer::start().unwrap();
    let mailer = SmtpMailer::new(plain(&server).build().unwrap()).unwrap();
    let from = Mailbox::address_only("noreply@example.com").unwrap();
    let report = mailer.preflight(&from).await;
    assert!(report.passed(), "{report}");
    let names: Vec<&str> = report.steps.iter().map(|s| s.name).collect();
    assert_eq!(names, ["connect", "mail_from", "rcpt_to", "rset", "quit"]);
    assert_eq!(report.probe_recipient, "postmaster@example.com");
    assert_eq!(
        report.step("mail_from").unwrap().reply.as_ref().unwrap().code,
        250
    );
    assert_eq!(mailer.check_sender(&from).await, SenderCheck::Accepted);
    assert!(server.messages().is_empty());
    assert!(!server.transcript_text().contains("DATA"));
}

#[tokio::test]
async fn rejected_sender_is_reported_with_the_server_reply() {
    let server = FakeSmtpServer::builder()
        .rule(
            FaultRule::reply(Stage::MailFrom, 550, Some("5.7.1"), "not authorised")
                .sender("owner@example.com"),
        )
        .start()
        .unwrap();
    let mailer = SmtpMailer::new(
        plain(&server)
            .probe_recipient("probe@example.org")
            .build()
            .unwrap(),
    )
    .unwrap();
    let from = Mailbox::address_only("owner@example.com").unwrap();
    let report = mailer.preflight(&from).await;
    assert!(!report.passed());
    let step = report.step("mail_from").unwrap();
    assert!(!step.ok);
    assert_eq!(step.reply.as_ref().unwrap().enhanced.as_deref(), Some("5.7.1"));
    assert!(report.step("rcpt_to").is_none());
    assert!(report.step("rset").unwrap().ok);
    assert!(report.to_string().contains("FAIL"));
    match mailer.check_sender(&from).await {
        SenderCheck::Rejected(e) => assert_eq!(e.class(), "sender_rejected"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unreachable_server_fails_at_connect() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = resetkit_smtp::SmtpConfig::builder("127.0.0.1")
        .port(port)
        .tls(resetkit_smtp::TlsMode::None)
        .build()
        .unwrap();
    let report = SmtpMailer::new(config)
        .unwrap()
        .preflight(&Mailbox::address_only("a@example.com").unwrap())
        .await;
    assert_eq!(report.steps.len(), 1);
    assert_eq!(report.steps[0].name, "connect");
    assert!(report.error.as_ref().unwrap().is_transient());
}
