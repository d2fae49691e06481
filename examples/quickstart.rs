//! resetkit quick start: build a reset service on the in-memory parts,
//! request a reset, read the captured email, complete the reset, and show
//! what the event log recorded. Every step is printed.
//!
//! Run it with `cargo run -p resetkit-examples --bin quickstart`.

use std::error::Error;
use std::sync::Arc;

use resetkit::prelude::*;
use secrecy::SecretString;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // 1. The host's accounts. Two of them share one email address.
    let accounts = InMemoryAccounts::default();
    accounts.insert(Account::new("1", "alice", "alice@example.com"));
    accounts.insert(Account::new("2", "alice-work", "alice@example.com"));
    accounts.insert(Account::new("3", "bob", "bob@example.com"));

    // 2. The service. The link is built only from `base_url`; the builder
    //    refuses a template without the link, an http:// base, or no sender.
    let mailer = CapturingMailer::default();
    let events = Arc::new(InMemoryEventLog::default());
    let service = ResetService::builder()
        // A walk-through reads the mail right after `request`; applications
        // keep the default (processed in the background, so known and
        // unknown identifiers answer in the same time).
        .request_processing(resetkit::flow::RequestProcessing::Immediate)
        .base_url("https://app.example.com")
        .site_name("Example App")
        .accounts(Arc::new(accounts))
        .tokens(Arc::new(InMemoryTokenStore::default()))
        .events(events.clone())
        .mailer(Arc::new(mailer.clone()))
        .sender(Arc::new(FixedSender::new(Mailbox::new(
            Some("Example App"),
            "noreply@example.com",
        )?)))
        .build()?;
    println!("1. built {service:?}");

    // 3. Request a reset. The outcome is the same for known and unknown input.
    let known = service
        .request("  Bob@Example.COM ", &RequestContext::from_client("203.0.113.9"))
        .await?;
    let unknown = service
        .request("nobody@example.com", &RequestContext::from_client("203.0.113.9"))
        .await?;
    println!("2. request(known)   -> {}", known.message());
    println!("   request(unknown) -> {}", unknown.message());
    println!("   identical public outcome: {}", known == unknown);

    // 4. The email, as the mailer received it.
    let mail = mailer
        .sent_to("bob@example.com")
        .pop()
        .ok_or("no email was captured for bob")?;
    println!(
        "3. captured email to {} from {}",
        mail.to.address(),
        mail.from.address()
    );
    println!("   subject: {}", mail.subject);
    let link = mail
        .expose_text()
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(service.reset_link_target().as_str()))
        .ok_or("the text part has no reset link")?
        .to_owned();
    let token = link.split("token=").nth(1).ok_or("link without token")?;
    println!(
        "   link on its own line: {}?token=<{} characters, shown only to the user>",
        service.reset_link_target(),
        token.len()
    );

    // 5. The "choose a new password" page inspects the link (not spending it).
    let info = service.inspect(token).await?;
    println!(
        "4. inspect -> resets account {} ({})",
        info.account, info.username
    );

    // 6. Complete the reset. Confirmation and policy are checked first.
    let weak = SecretString::from("password");
    match service.complete(token, weak.clone(), weak).await {
        Err(e) => println!("5. complete(weak password) -> refused: {e}"),
        Ok(_) => return Err("a weak password was accepted".into()),
    }
    let new_password = SecretString::from("tangerine lighthouse orbit 42");
    let done = service
        .complete(token, new_password.clone(), new_password.clone())
        .await?;
    println!("6. complete -> password of {} reset", done.username);
    println!(
        "   new password verifies: {}",
        service.verify_password(&done.account, &new_password).await?
    );

    // 7. The link works once.
    match service.inspect(token).await {
        Err(e) => println!("7. second use -> {e}"),
        Ok(_) => return Err("a spent link still worked".into()),
    }

    // 8. What happened, as the event log saw it.
    println!("8. events:");
    for event in events.all() {
        let who = event
            .account
            .as_ref()
            .map_or_else(|| "-".to_owned(), ToString::to_string);
        println!("   [{who}] {:?}", event.kind);
    }
    Ok(())
}
