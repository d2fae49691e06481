//! The fake SMTP server driven by a real client (lettre).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use resetkit_fake_smtp::{Direction, FakeSmtpServer, FaultRule, Stage};

const WAIT: Duration = Duration::from_secs(2);

fn message(from: &str, to: &str) -> Message {
    Message::builder()
        .from(from.parse().unwrap())
        .to(to.parse().unwrap())
        .subject("Hello")
        .body(String::from(
            "Hello there: https://app.example.com/reset?token=abc",
        ))
        .unwrap()
}

fn plain(server: &FakeSmtpServer) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port())
        .timeout(Some(Duration::from_secs(2)))
        .build()
}

fn tls(server: &FakeSmtpServer, user: &str, pass: &str) -> AsyncSmtpTransport<Tokio1Executor> {
    let ca = Certificate::from_pem(server.ca_certificate_pem().unwrap()).unwrap();
    let params = TlsParameters::builder("localhost".into())
        .add_root_certificate(ca)
        .build()
        .unwrap();
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("localhost")
        .port(server.port())
        .tls(Tls::Required(params))
        .credentials(Credentials::new(user.into(), pass.into()))
        .timeout(Some(Duration::from_secs(2)))
        .build()
}

#[tokio::test]
async fn captures_message_envelope_and_transcript() {
    let server = FakeSmtpServer::start().unwrap();
    plain(&server)
        .send(message("noreply@example.com", "alice@example.com"))
        .await
        .unwrap();
    let m = server
        .wait_for(|m| m.has_recipient("alice@example.com"), WAIT)
        .await
        .unwrap();
    assert_eq!(m.mail_from, "noreply@example.com");
    assert_eq!(m.rcpt_to, vec!["alice@example.com".to_owned()]);
    assert!(m.data_text().contains("Subject: Hello"));
    assert!(!m.tls);
    let t = &server.transcripts()[0];
    assert_eq!(t.connection, m.connection);
    let lines: Vec<&str> = t.entries.iter().map(|e| e.line.as_str()).collect();
    assert!(lines.contains(&"MAIL FROM:<noreply@example.com>"), "{lines:?}");
    assert!(lines.contains(&"RCPT TO:<alice@example.com>"));
    assert!(
        t.entries
            .iter()
            .any(|e| e.direction == Direction::Server && e.line.starts_with("250"))
    );
}

#[tokio::test]
async fn mail_from_rule_rejects_only_the_matching_sender() {
    let server = FakeSmtpServer::builder()
        .rule(
            FaultRule::reply(Stage::MailFrom, 550, Some("5.7.1"), "not authorised")
                .sender("noreply@example.com"),
        )
        .start()
        .unwrap();
    let err = plain(&server)
        .send(message("noreply@example.com", "a@example.com"))
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(err.status().map(u16::from), Some(550));
    assert!(err.to_string().contains("5.7.1 not authorised"), "{err}");
    plain(&server)
        .send(message("support@example.com", "a@example.com"))
        .await
        .unwrap();
    assert_eq!(server.messages().len(), 1);
    assert!(server.transcript_text().contains("550 5.7.1 not authorised"));
}

#[tokio::test]
async fn rcpt_rule_by_domain_and_first_n_times() {
    let server = FakeSmtpServer::builder()
        .rule(
            FaultRule::reply(Stage::RcptTo, 451, Some("4.7.1"), "greylisted")
                .recipient("*@grey.test")
                .times(1),
        )
        .start()
        .unwrap();
    let err = plain(&server)
        .send(message("s@example.com", "u@grey.test"))
        .await
        .unwrap_err();
    assert!(err.is_transient());
    plain(&server)
        .send(message("s@example.com", "u@grey.test"))
        .await
        .unwrap();
    server
        .wait_for(|m| m.has_recipient("u@grey.test"), WAIT)
        .await
        .unwrap();
}

#[tokio::test]
async fn connect_stage_reply_and_disconnect() {
    let server = FakeSmtpServer::builder()
        .rule(FaultRule::reply(Stage::Connect, 554, Some("5.7.1"), "go away").times(1))
        .rule(FaultRule::disconnect(Stage::Connect).times(1))
        .start()
        .unwrap();
    let err = plain(&server)
        .send(message("s@example.com", "u@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(u16::from), Some(554));
    let err = plain(&server)
        .send(message("s@example.com", "u@example.com"))
        .await
        .unwrap_err();
    assert!(err.status().is_none(), "{err}");
    plain(&server)
        .send(message("s@example.com", "u@example.com"))
        .await
        .unwrap();
}

#[tokio::test]
async fn disconnect_at_end_of_data_captures_nothing() {
    let server = FakeSmtpServer::builder()
        .rule(FaultRule::disconnect(Stage::DataEnd))
        .start()
        .unwrap();
    let err = plain(&server)
        .send(message("s@example.com", "u@example.com"))
        .await
        .unwrap_err();
    assert!(err.status().is_none(), "no reply expected: {err}");
    assert!(server.messages().is_empty());
    assert!(
        server
            .transcript_text()
            .contains("fault rule at DataEnd: disconnect")
    );
}

#[tokio::test]
async fn delay_rule_stalls_then_carries_on() {
    let server = FakeSmtpServer::builder()
        .rule(FaultRule::delay(Stage::DataStart, Duration::from_millis(100)))
        .start()
        .unwrap();
    plain(&server)
        .send(message("s@example.com", "u@example.com"))
        .await
        .unwrap();
    assert!(
        server
            .transcript_text()
            .contains("fault rule at DataStart: delay")
    );
}

#[tokio::test]
async fn starttls_and_auth_succeed_with_the_test_ca() {
    let server = FakeSmtpServer::builder()
        .starttls(true)
        .auth("mailer", "s3cret")
        .start()
        .unwrap();
    tls(&server, "mailer", "s3cret")
        .send(message("s@example.com", "u@example.com"))
        .await
        .unwrap();
    let m = server.wait_for(|_| true, WAIT).await.unwrap();
    assert!(m.tls);
    assert_eq!(m.authenticated_as.as_deref(), Some("mailer"));
    let text = server.transcript_text();
    assert!(text.contains("STARTTLS"));
    assert!(!text.contains("s3cret"), "password must not be recorded");
}

#[tokio::test]
async fn auth_failure_is_535() {
    let server = FakeSmtpServer::builder()
        .starttls(true)
        .auth("mailer", "s3cret")
        .start()
        .unwrap();
    let err = tls(&server, "mailer", "wrong")
        .send(message("s@example.com", "u@example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(u16::from), Some(535));
    assert!(server.messages().is_empty());
}

#[test]
fn auth_without_starttls_is_refused() {
    assert!(FakeSmtpServer::builder().auth("u", "p").start().is_err());
}

#[tokio::test]
async fn wait_for_times_out_by_predicate() {
    let server = FakeSmtpServer::start().unwrap();
    plain(&server)
        .send(message("s@example.com", "u@example.com"))
        .await
        .unwrap();
    let err = server
        .wait_for(
            |m| m.has_recipient("nobody@example.com"),
            Duration::from_millis(100),
        )
        .await;
    assert_eq!(err.unwrap_err().captured, 1);
}

#[test]
fn idle_clients_are_disconnected() {
    let server = FakeSmtpServer::builder()
        .idle_timeout(Duration::from_millis(200))
        .start()
        .unwrap();
    let mut reader = BufReader::new(TcpStream::connect(server.addr()).unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("220"), "{line}");
    line.clear();
    assert_eq!(reader.read_line(&mut line).unwrap(), 0, "closed after idling");
}

#[test]
fn dropping_the_handle_stops_listening() {
    let server = FakeSmtpServer::start().unwrap();
    let addr = server.addr();
    let live = TcpStream::connect(addr).unwrap();
    drop(server);
    assert!(TcpStream::connect(addr).is_err());
    let mut line = String::new();
    let mut reader = BufReader::new(live);
    // The live connection was closed too (greeting may or may not have arrived).
    let _ = reader.read_line(&mut line);
    line.clear();
    assert_eq!(reader.read_line(&mut line).unwrap_or(0), 0);
}

fn greeting(server: &FakeSmtpServer, name: &str) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port())
        .hello_name(lettre::transport::smtp::extension::ClientId::Domain(name.into()))
        .timeout(Some(Duration::from_secs(2)))
        .build()
}

#[tokio::test]
async fn a_session_keeps_its_own_mail_and_drops_late_mail_of_earlier_sessions() {
    let server = FakeSmtpServer::start().unwrap();
    server.begin_session("one.session.test", ".session.test");
    let one = greeting(&server, "one.session.test");
    one.send(message("a@example.com", "first@example.com"))
        .await
        .unwrap();
    assert_eq!(server.message_count(), 1);
    server.begin_session("two.session.test", ".session.test");
    assert_eq!(server.message_count(), 0, "a new session starts empty");
    // Late mail of session one: accepted (the client sees no error), not kept.
    one.send(message("a@example.com", "late@example.com"))
        .await
        .unwrap();
    greeting(&server, "two.session.test")
        .send(message("a@example.com", "second@example.com"))
        .await
        .unwrap();
    greeting(&server, "client.elsewhere.test")
        .send(message("a@example.com", "other@example.com"))
        .await
        .unwrap();
    let kept: Vec<String> = server.messages().iter().flat_map(|m| m.rcpt_to.clone()).collect();
    assert_eq!(kept, ["second@example.com", "other@example.com"]);
    assert!(server.transcript_text().contains("earlier session"));
    // Ids keep counting, so a reader waiting on `next_after` sees only new mail.
    let ids: Vec<u64> = server.messages().iter().map(|m| m.id).collect();
    assert!(ids[0] > 1 && ids[1] > ids[0], "{ids:?}");
    let newer = server.next_after(ids[0]).await;
    assert_eq!(newer.len(), 1);
}
