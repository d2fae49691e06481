//! Acceptance: `Debug` output never contains a secret: raw tokens, links,
//! passwords, password hashes, token hashes or mail bodies.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, RESET_PREFIX, secret};
use resetkit::account::PasswordStamp;
use resetkit::mail::MailContent;
use resetkit::prelude::*;
use resetkit::store::ConsumeOutcome;
use resetkit::token::RawToken;
use secrecy::SecretString;

const PASSWORD: &str = "my secret passphrase nobody knows";

/// Asserts `printed` contains none of `secrets`.
fn assert_hidden(what: &str, printed: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!secret.is_empty(), "empty secret for {what}");
        assert!(
            !printed.contains(secret),
            "Debug of {what} leaks `{secret}`: {printed}"
        );
    }
}

#[tokio::test]
async fn debug_output_of_every_secret_bearing_type_is_redacted() {
    let fx = Fixture::with_accounts([Account::new("a1", "alice", "alice@example.com")]);
    let outbox = InMemoryOutbox::default();
    let service = fx.service();
    let token = fx.request_token(&service, "alice").await;
    let mail = fx.mailer.sent().pop().expect("mail");
    let link = format!("{RESET_PREFIX}{token}");
    let raw = RawToken::parse(&token).expect("parses");
    let hash_hex = raw.hash().to_hex();
    let record = fx.tokens.find(&raw.hash()).await.expect("find").expect("stored");

    service
        .complete(&token, secret(PASSWORD), secret(PASSWORD))
        .await
        .expect("reset");
    let account = fx.accounts.get(&AccountId::from("a1")).expect("account");
    let phc = account.password_hash.clone().expect("hash");
    let phc_text = phc.expose().to_owned();
    let stamp = account.password_stamp();
    let stamp_text = stamp.as_str().to_owned();
    // The salt and digest parts of the PHC string, each on its own.
    let phc_parts: Vec<&str> = phc_text.rsplit('$').take(2).collect();

    let mut secrets: Vec<&str> = vec![&token, &link, PASSWORD, &phc_text, &hash_hex, &stamp_text];
    secrets.extend(phc_parts.iter().copied());
    // A prefix of the token is enough to leak part of it.
    secrets.push(&token[..12]);

    // Outbox mode, to get an OutboxEntry holding a live email.
    let outbox_fx = Fixture::with_accounts([Account::new("b1", "bob", "bob@example.com")]);
    let outbox_service = outbox_fx
        .builder()
        .outbox(Arc::new(outbox.clone()))
        .build()
        .expect("valid");
    outbox_service
        .request("bob", &RequestContext::default())
        .await
        .expect("accepted");
    let entries = outbox
        .claim(outbox_fx.clock.now(), 10, Duration::from_secs(60))
        .await
        .expect("claim");
    let queued_token = entries[0]
        .email
        .expose_text()
        .lines()
        .find_map(|l| l.trim().strip_prefix(RESET_PREFIX))
        .expect("queued link")
        .to_owned();
    secrets.push(&queued_token);

    let content = MailContent {
        subject: "Reset your password".into(),
        text: format!("Open:\n{link}\n"),
        html: format!("<a href=\"{link}\">reset</a>"),
    };
    let consumed = ConsumeOutcome::Consumed(record.clone());

    let printed: Vec<(&str, String)> = vec![
        ("RawToken", format!("{raw:?}")),
        ("TokenHash", format!("{:?}", raw.hash())),
        ("TokenRecord", format!("{record:?}")),
        ("ConsumeOutcome", format!("{consumed:?}")),
        ("OutgoingEmail", format!("{mail:?}")),
        ("OutgoingEmail (alternate)", format!("{mail:#?}")),
        ("MailContent", format!("{content:?}")),
        ("PasswordHash", format!("{phc:?}")),
        ("PasswordStamp", format!("{stamp:?}")),
        (
            "PasswordStamp (stored)",
            format!("{:?}", PasswordStamp::from_stored(stamp_text.clone())),
        ),
        ("Account", format!("{account:?}")),
        (
            "SecretString",
            format!("{:?}", SecretString::from(PASSWORD.to_owned())),
        ),
        ("ResetService", format!("{service:?}")),
        ("ResetService (outbox)", format!("{outbox_service:#?}")),
        (
            "Argon2Hasher (fast)",
            format!("{:?}", Argon2Hasher::fast_insecure_for_tests()),
        ),
        ("Argon2Hasher (owasp)", format!("{:?}", Argon2Hasher::owasp())),
        ("InMemoryAccounts", format!("{:?}", fx.accounts)),
        ("InMemoryTokenStore", format!("{:?}", fx.tokens)),
        ("InMemoryEventLog", format!("{:?}", fx.events)),
        ("CapturingMailer", format!("{:?}", fx.mailer)),
        ("InMemoryOutbox", format!("{outbox:?}")),
        ("OutboxEntry", format!("{:?}", entries[0])),
        (
            "DeliveryWorker",
            format!("{:?}", outbox_service.delivery_worker()),
        ),
        ("events", format!("{:?}", fx.events.all())),
        ("outbox events", format!("{:?}", outbox_fx.events.all())),
    ];
    for (what, text) in &printed {
        assert_hidden(what, text, &secrets);
    }
    // The redacted forms still say something useful.
    assert!(printed[0].1.contains("REDACTED"));
    assert!(format!("{mail:?}").contains(&mail.message_id));
    assert!(format!("{service:?}").contains("https://app.example.com/reset"));
}

#[tokio::test]
async fn errors_and_outcomes_shown_to_users_carry_no_secret() {
    let fx = Fixture::with_accounts([Account::new("a1", "alice", "alice@example.com")]);
    let service = fx.service();
    let token = fx.request_token(&service, "alice").await;
    let weak = "alice is my password";
    let error = service
        .complete(&token, secret(weak), secret(weak))
        .await
        .expect_err("contains the username");
    assert_hidden("CompleteError", &format!("{error} {error:?}"), &[weak, &token]);
    let error = service
        .complete(&token, secret(PASSWORD), secret("a different confirmation!"))
        .await
        .expect_err("mismatch");
    assert_hidden(
        "CompleteError",
        &format!("{error} {error:?}"),
        &[PASSWORD, "a different confirmation!", &token],
    );
    let info = service.inspect(&token).await.expect("usable");
    assert_hidden("LinkInfo", &format!("{info:?}"), &[&token]);
    let done = service
        .complete(&token, secret(PASSWORD), secret(PASSWORD))
        .await
        .expect("reset");
    assert_hidden("Completed", &format!("{done:?}"), &[&token, PASSWORD]);
    let error = service.inspect(&token).await.expect_err("used");
    assert_hidden("LinkError", &format!("{error} {error:?}"), &[&token]);
    // Events hold neither the token, the password nor the bodies.
    assert_hidden(
        "events",
        &format!("{:?}", fx.events.all()),
        &[&token, PASSWORD, weak],
    );
}
