//! probe
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use resetkit::prelude::*;
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::inspect::*;
use resetkit_smtp::{SmtpConfig, SmtpMailer, TlsMode};

#[tokio::test]
async fn probe() {
    let server = FakeSmtpServer::start().unwrap();
    let config = SmtpConfig::builder("127.0.0.1")
        .port(server.port())
        .tls(TlsMode::None)
        .build()
        .unwrap();
    let mailer = SmtpMailer::new(config).unwrap();
    let accounts = InMemoryAccounts::default();
    accounts.insert(Account::new("1", "alice", "alice@example.com"));
    let service = ResetService::builder()
        .base_url("https://app.example.test")
        .accounts(Arc::new(accounts))
        .tokens(Arc::new(InMemoryTokenStore::default()))
        .events(Arc::new(InMemoryEventLog::default()))
        .mailer(Arc::new(mailer))
        .sender(Arc::new(FixedSender::new(
            Mailbox::new(Some("Support Ünïcode"), "noreply@example.test").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .build()
        .unwrap();
    service
        .request("alice@example.com", &RequestContext::default())
        .await
        .unwrap();
    let m = server
        .wait_for(|m| m.has_recipient("alice@example.com"), Duration::from_secs(3))
        .await
        .unwrap();
    println!("{}", String::from_utf8_lossy(&m.data));
    let mail = ParsedMail::parse(&m.data).unwrap();
    println!("{mail:#?}");
    let exp = MailExpectation::new(LinkExpectation::parse("https://app.example.test/reset").unwrap())
        .from("noreply@example.test")
        .to("alice@example.com");
    for f in check(&mail, &exp) {
        println!("{f}");
    }
    for g in [
        &b""[..],
        b"hello world",
        b"\x00\x01\xff",
        b"hello: world",
        b"\n\n\nbody",
        b"From x\n",
    ] {
        println!("{:?}", ParsedMail::parse(g).map(|m| m.headers));
    }
}
