//! The core reset flow end to end through `SmtpMailer` and the fake server.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;

use common::{WAIT, plain};
use mail_parser::MessageParser;
use resetkit::prelude::*;
use resetkit_fake_smtp::FakeSmtpServer;
use resetkit_smtp::SmtpMailer;
use secrecy::SecretString;

#[tokio::test]
async fn request_mail_link_complete() {
    let server = FakeSmtpServer::start().unwrap();
    let mailer = SmtpMailer::new(plain(&server).build().unwrap()).unwrap();
    let accounts = InMemoryAccounts::default();
    accounts.insert(Account::new("1", "alice", "alice@example.com"));
    let service = ResetService::builder()
        .base_url("https://app.example.com")
        .accounts(Arc::new(accounts))
        .tokens(Arc::new(InMemoryTokenStore::default()))
        .events(Arc::new(InMemoryEventLog::default()))
        .mailer(Arc::new(mailer))
        .sender(Arc::new(FixedSender::new(
            Mailbox::address_only("noreply@example.com").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .build()
        .unwrap();

    service
        .request("Alice@Example.com", &RequestContext::default())
        .await
        .unwrap();
    let captured = server
        .wait_for(|m| m.has_recipient("alice@example.com"), WAIT)
        .await
        .unwrap();
    assert_eq!(captured.mail_from, "noreply@example.com");
    let msg = MessageParser::default().parse(&captured.data).unwrap();
    let text = msg.body_text(0).unwrap();
    let link = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("https://app.example.com/reset?"))
        .unwrap_or_else(|| panic!("no link in {text}"));
    let token = link.split("token=").nth(1).unwrap();
    service.inspect(token).await.unwrap();
    let pw = SecretString::from("a sufficiently long passphrase");
    service.complete(token, pw.clone(), pw).await.unwrap();
}
