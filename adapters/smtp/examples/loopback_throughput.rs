//! Sends 1,000 reset emails to the in-process fake SMTP server, once with a
//! new connection per message and once reusing one connection, and prints
//! messages per second for each. A figure to report, not a test.
//!
//! `cargo run --release -p resetkit-smtp --example loopback_throughput [COUNT]`
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use resetkit::mail::{EmailKind, MailContent, Mailbox, Mailer, OutgoingEmail};
use resetkit_fake_smtp::FakeSmtpServer;
use resetkit_smtp::{ConnectionReuse, SmtpConfig, SmtpMailer, TlsMode};

fn email(i: usize) -> OutgoingEmail {
    let link = format!("https://app.example.com/reset?token=tok{i:040}");
    OutgoingEmail::new(
        format!("<bench-{i}@example.com>"),
        EmailKind::Reset,
        Mailbox::new(Some("Example Support"), "noreply@example.com").unwrap(),
        None,
        Mailbox::address_only(&format!("user{i}@example.com")).unwrap(),
        MailContent {
            subject: "Reset your password".into(),
            text: format!("Open this link:\n\n{link}\n"),
            html: format!("<p><a href=\"{link}\">Reset</a></p>"),
        },
    )
}

async fn run(count: usize, reuse: bool) -> f64 {
    let server = FakeSmtpServer::start().unwrap();
    let mut b = SmtpConfig::builder("127.0.0.1")
        .port(server.port())
        .tls(TlsMode::None)
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2));
    if reuse {
        b = b.reuse_connections(ConnectionReuse {
            idle_timeout: Duration::from_secs(5),
            max_messages: u32::MAX,
        });
    }
    let mailer = SmtpMailer::new(b.build().unwrap()).unwrap();
    let started = Instant::now();
    for i in 0..count {
        mailer.send(&email(i)).await.unwrap();
    }
    let elapsed = started.elapsed();
    server
        .wait_for(
            |m| m.has_recipient(&format!("user{}@example.com", count - 1)),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    mailer.close().await;
    count as f64 / elapsed.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let fresh = run(count, false).await;
    let reused = run(count, true).await;
    println!("{count} messages, sequential, loopback fake SMTP server");
    println!("  new connection per message: {fresh:>8.0} msg/s");
    println!("  reused connection:          {reused:>8.0} msg/s");
    println!("  ratio reuse / fresh:        {:>8.1}x", reused / fresh);
}
