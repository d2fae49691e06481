//! Sending through the fake SMTP server: happy path and classified failures.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::{LINK, WAIT, email, plain};
use mail_parser::{MessageParser, MimeHeaders};
use resetkit::mail::{DeliveryError, Mailer};
use resetkit_fake_smtp::{FakeSmtpServer, FaultRule, Stage};
use resetkit_smtp::{ConnectionReuse, SmtpMailer};

fn mailer(server: &FakeSmtpServer) -> SmtpMailer {
    SmtpMailer::new(plain(server).build().unwrap()).unwrap()
}

#[tokio::test]
async fn happy_path_message_has_both_parts_headers_and_the_link() {
    let server = FakeSmtpServer::start().unwrap();
    let receipt = mailer(&server)
        .send(&email("noreply@example.com", "alice@example.com"))
        .await
        .unwrap();
    assert_eq!(receipt.message_id, "<test-1.abc@example.com>");
    let captured = server
        .wait_for(|m| m.has_recipient("alice@example.com"), WAIT)
        .await
        .unwrap();
    assert_eq!(captured.mail_from, "noreply@example.com");

    let msg = MessageParser::default().parse(&captured.data).unwrap();
    assert_eq!(msg.content_type().unwrap().ctype(), "multipart");
    assert_eq!(msg.content_type().unwrap().subtype(), Some("alternative"));
    let text_part = msg.text_part(0).unwrap();
    assert_eq!(text_part.content_type().unwrap().subtype(), Some("plain"));
    let html_part = msg.html_part(0).unwrap();
    assert_eq!(html_part.content_type().unwrap().subtype(), Some("html"));
    let text = msg.body_text(0).unwrap();
    assert!(
        text.lines().any(|l| l.trim() == LINK),
        "full link on its own line: {text}"
    );
    let html = msg.body_html(0).unwrap();
    assert!(
        html.replace("&amp;", "&").contains(&format!("href=\"{LINK}\"")),
        "{html}"
    );

    assert_eq!(
        msg.header("Auto-Submitted").unwrap().as_text(),
        Some("auto-generated")
    );
    assert_eq!(msg.message_id(), Some("test-1.abc@example.com"));
    assert!(msg.date().is_some());
    assert_eq!(msg.subject(), Some("Reset your password"));
    let from = msg.from().unwrap().first().unwrap();
    assert_eq!(from.address(), Some("noreply@example.com"));
    assert_eq!(from.name(), Some("Example Support, \"Team\" Ünïcode"));
    assert_eq!(
        msg.reply_to().unwrap().first().unwrap().address(),
        Some("help@example.com")
    );
    assert!(receipt.server_reply.unwrap().starts_with("250"));
}

#[tokio::test]
async fn display_names_cannot_inject_headers() {
    let server = FakeSmtpServer::start().unwrap();
    // The core refuses CR/LF in names; anything else is encoded by lettre.
    assert!(resetkit::mail::Mailbox::new(Some("x\r\nBcc: evil@x.test"), "a@example.com").is_err());
    mailer(&server)
        .send(&email("noreply@example.com", "alice@example.com"))
        .await
        .unwrap();
    let captured = server.wait_for(|_| true, WAIT).await.unwrap();
    let raw = captured.data_text();
    assert!(!raw.lines().any(|l| l.to_ascii_lowercase().starts_with("bcc:")));
    assert_eq!(captured.rcpt_to, vec!["alice@example.com".to_owned()]);
}

#[tokio::test]
async fn mail_from_550_is_sender_rejected_with_code_and_text() {
    let server = FakeSmtpServer::builder()
        .rule(
            FaultRule::reply(Stage::MailFrom, 550, Some("5.7.1"), "not authorised to send")
                .sender("noreply@example.com"),
        )
        .start()
        .unwrap();
    let err = mailer(&server)
        .send(&email("noreply@example.com", "alice@example.com"))
        .await
        .unwrap_err();
    let DeliveryError::SenderRejected { sender, reply } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(sender, "noreply@example.com");
    let reply = reply.as_ref().unwrap();
    assert_eq!(
        (reply.code, reply.enhanced.as_deref(), reply.text.as_str()),
        (550, Some("5.7.1"), "not authorised to send")
    );
    assert!(err.is_permanent());
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn mail_from_553_without_enhanced_code() {
    let server = FakeSmtpServer::builder()
        .rule(FaultRule::reply(
            Stage::MailFrom,
            553,
            None,
            "sender address not allowed",
        ))
        .start()
        .unwrap();
    let err = mailer(&server)
        .send(&email("owner@example.com", "alice@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), "sender_rejected");
    assert_eq!(err.reply().unwrap().code, 553);
    assert_eq!(err.reply().unwrap().enhanced, None);
}

#[tokio::test]
async fn rcpt_550_is_recipient_rejected() {
    let server = FakeSmtpServer::builder()
        .rule(FaultRule::reply(Stage::RcptTo, 550, Some("5.1.1"), "no such user").recipient("*@example.com"))
        .start()
        .unwrap();
    let err = mailer(&server)
        .send(&email("noreply@example.com", "alice@example.com"))
        .await
        .unwrap_err();
    let DeliveryError::RecipientRejected { recipient, reply } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(recipient, "alice@example.com");
    assert_eq!(reply.as_ref().unwrap().enhanced.as_deref(), Some("5.1.1"));
}

#[tokio::test]
async fn data_554_is_message_rejected() {
    let server = FakeSmtpServer::builder()
        .rule(FaultRule::reply(
            Stage::DataEnd,
            554,
            Some("5.6.0"),
            "content refused",
        ))
        .start()
        .unwrap();
    let err = mailer(&server)
        .send(&email("noreply@example.com", "alice@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), "message_rejected");
    assert_eq!(err.reply().unwrap().code, 554);
}

#[tokio::test]
async fn status_451_is_transient_at_any_stage() {
    for stage in [Stage::MailFrom, Stage::RcptTo, Stage::DataStart, Stage::DataEnd] {
        let server = FakeSmtpServer::builder()
            .rule(FaultRule::reply(stage, 451, Some("4.3.0"), "try again later"))
            .start()
            .unwrap();
        let err = mailer(&server)
            .send(&email("noreply@example.com", "alice@example.com"))
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{stage:?}: {err:?}");
        assert_eq!(err.reply().unwrap().code, 451);
        assert_eq!(err.reply().unwrap().text, "try again later");
    }
}

#[tokio::test]
async fn connection_closed_mid_data_is_transient() {
    let server = FakeSmtpServer::builder()
        .rule(FaultRule::disconnect(Stage::DataEnd))
        .start()
        .unwrap();
    let err = mailer(&server)
        .send(&email("noreply@example.com", "alice@example.com"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.reply().is_none());
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn nothing_listening_is_transient() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = resetkit_smtp::SmtpConfig::builder("127.0.0.1")
        .port(port)
        .tls(resetkit_smtp::TlsMode::None)
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let err = SmtpMailer::new(config)
        .unwrap()
        .send(&email("noreply@example.com", "a@example.com"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn stalled_server_times_out_within_the_command_bound() {
    let server = FakeSmtpServer::builder()
        .rule(FaultRule::delay(Stage::DataStart, Duration::from_secs(3)))
        .start()
        .unwrap();
    let config = plain(&server)
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = SmtpMailer::new(config)
        .unwrap()
        .send(&email("noreply@example.com", "a@example.com"))
        .await
        .unwrap_err();
    // Behaviour, not a benchmark: the send gave up long before the 3 s stall ended.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("no answer within"), "{err}");
}

#[tokio::test]
async fn stalled_greeting_times_out_within_the_connect_bound() {
    let server = FakeSmtpServer::builder()
        .rule(FaultRule::delay(Stage::Connect, Duration::from_secs(3)))
        .start()
        .unwrap();
    let config = plain(&server)
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = SmtpMailer::new(config)
        .unwrap()
        .send(&email("noreply@example.com", "a@example.com"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn reuse_sends_several_messages_on_one_connection() {
    let server = FakeSmtpServer::start().unwrap();
    let config = plain(&server)
        .reuse_connections(ConnectionReuse::default())
        .build()
        .unwrap();
    let mailer = SmtpMailer::new(config).unwrap();
    for i in 0..3 {
        mailer
            .send(&email("noreply@example.com", &format!("u{i}@example.com")))
            .await
            .unwrap();
    }
    let messages = server.messages();
    assert_eq!(messages.len(), 3);
    assert!(messages.iter().all(|m| m.connection == messages[0].connection));
    mailer.close().await;
}

#[tokio::test]
async fn reused_connection_is_closed_after_idling_and_a_failure_does_not_poison_it() {
    let server = FakeSmtpServer::builder()
        .threads(1)
        .rule(FaultRule::reply(Stage::RcptTo, 550, None, "no").recipient("bad@example.com"))
        .start()
        .unwrap();
    let reuse = ConnectionReuse {
        idle_timeout: Duration::from_millis(100),
        ..ConnectionReuse::default()
    };
    let mailer = SmtpMailer::new(plain(&server).reuse_connections(reuse).build().unwrap()).unwrap();
    mailer
        .send(&email("noreply@example.com", "a@example.com"))
        .await
        .unwrap();
    // With one server thread, a second client can only be served once the
    // idle connection has been closed by the mailer. (The second client
    // keeps no connection, or it would hold the only thread in turn.)
    let other = SmtpMailer::new(plain(&server).no_connection_reuse().build().unwrap()).unwrap();
    other
        .send(&email("noreply@example.com", "b@example.com"))
        .await
        .unwrap();
    assert!(
        mailer
            .send(&email("noreply@example.com", "bad@example.com"))
            .await
            .is_err()
    );
    mailer
        .send(&email("noreply@example.com", "c@example.com"))
        .await
        .unwrap();
    assert_eq!(server.messages().len(), 3);
}

#[tokio::test]
async fn lines_starting_with_a_dot_survive() {
    let server = FakeSmtpServer::start().unwrap();
    let mut e = email("noreply@example.com", "alice@example.com");
    e = resetkit::mail::OutgoingEmail::new(
        e.message_id.clone(),
        e.kind,
        e.from.clone(),
        None,
        e.to.clone(),
        resetkit::mail::MailContent {
            subject: "dots".into(),
            text: format!(".\n.leading dot\n{LINK}\n"),
            html: format!("<p>.</p><a href=\"{LINK}\">x</a>"),
        },
    );
    mailer(&server).send(&e).await.unwrap();
    let captured = server.wait_for(|_| true, WAIT).await.unwrap();
    let msg = MessageParser::default().parse(&captured.data).unwrap();
    let text = msg.body_text(0).unwrap();
    assert!(text.contains(".leading dot"), "{text}");
    assert!(text.lines().any(|l| l.trim() == LINK));
}
