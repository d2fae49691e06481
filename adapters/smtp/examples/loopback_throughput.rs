//! Messages per second through `SmtpMailer` against raw lettre, to a
//! minimal SMTP sink in this process (it accepts everything and only counts,
//! so the server is not what is measured). A figure to report, not a test.
//!
//! Sequential, one message at a time:
//! - raw lettre (`AsyncSmtpConnection` on a TCP stream with `TCP_NODELAY`,
//!   `MAIL`/`RCPT`/`DATA` per message), a new connection per message
//!   (closed with `QUIT`) and one reused connection;
//! - `SmtpMailer` with reuse off and on.
//!
//! Concurrent: 8 senders through one `SmtpMailer` (its pool) against 8 raw
//! lettre connections, one per sender.
//!
//! Raw lettre sends the exact bytes `SmtpMailer` sent for the same email
//! (captured by the sink); `SmtpMailer` formats each email itself, as it
//! does in production. The modes run interleaved in short rounds, in
//! alternating order, so that drift in a shared machine's load hits them
//! alike; besides the overall ratio, the median of the per-round ratios is
//! printed (robust to a round hit by a burst of load).
//!
//! `cargo run --release -p resetkit-smtp --example loopback_throughput [COUNT] [ROUNDS]`
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use resetkit::mail::{EmailKind, MailContent, Mailbox, Mailer, OutgoingEmail};
use resetkit_fake_smtp::CountingSink;
use resetkit_smtp::{ConnectionReuse, SmtpConfig, SmtpMailer, TlsMode};
use tokio::net::TcpStream;

const CONCURRENCY: usize = 8;

fn email() -> OutgoingEmail {
    let link = format!("https://app.example.com/reset?token=tok{:040}", 7);
    OutgoingEmail::new(
        "<bench-1@example.com>".into(),
        EmailKind::Reset,
        Mailbox::new(Some("Example Support"), "noreply@example.com").unwrap(),
        None,
        Mailbox::address_only("user@example.com").unwrap(),
        MailContent {
            subject: "Reset your password".into(),
            text: format!("Open this link:\n\n{link}\n"),
            html: format!("<p><a href=\"{link}\">Reset</a></p>"),
        },
    )
}

/// What raw lettre sends.
#[derive(Clone)]
struct Raw {
    addr: SocketAddr,
    envelope: Envelope,
    bytes: Arc<Vec<u8>>,
}

impl Raw {
    async fn connect(&self) -> AsyncSmtpConnection {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        AsyncSmtpConnection::connect_with_transport(Box::new(stream), &ClientId::Domain("localhost".into()))
            .await
            .unwrap()
    }

    async fn fresh(&self, count: usize) {
        for _ in 0..count {
            let mut conn = self.connect().await;
            conn.send(&self.envelope, &self.bytes).await.unwrap();
            conn.quit().await.unwrap();
        }
    }

    async fn reused(&self, count: usize) {
        let mut conn = self.connect().await;
        for _ in 0..count {
            conn.send(&self.envelope, &self.bytes).await.unwrap();
        }
        conn.quit().await.unwrap();
    }
}

fn mailer(addr: SocketAddr, reuse: bool) -> SmtpMailer {
    let b = SmtpConfig::builder("127.0.0.1")
        .port(addr.port())
        .tls(TlsMode::None)
        .connect_timeout(Duration::from_secs(5))
        .command_timeout(Duration::from_secs(5));
    let b = if reuse {
        b.reuse_connections(ConnectionReuse {
            max_messages: u32::MAX,
            ..ConnectionReuse::default()
        })
    } else {
        b.no_connection_reuse()
    };
    SmtpMailer::new(b.build().unwrap()).unwrap()
}

async fn send_all(mailer: &SmtpMailer, email: &OutgoingEmail, count: usize) {
    for _ in 0..count {
        mailer.send(email).await.unwrap();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    RawFresh,
    RawReused,
    MailerFresh,
    MailerReused,
    RawConcurrent,
    MailerConcurrent,
}

const MODES: [Mode; 6] = [
    Mode::RawFresh,
    Mode::MailerFresh,
    Mode::RawReused,
    Mode::MailerReused,
    Mode::RawConcurrent,
    Mode::MailerConcurrent,
];

async fn run(mode: Mode, count: usize, raw: &Raw, email: &OutgoingEmail) -> Duration {
    let per_sender = count / CONCURRENCY;
    let started = Instant::now();
    match mode {
        Mode::RawFresh => raw.fresh(count).await,
        Mode::RawReused => raw.reused(count).await,
        Mode::MailerFresh => send_all(&mailer(raw.addr, false), email, count).await,
        Mode::MailerReused => {
            let m = mailer(raw.addr, true);
            send_all(&m, email, count).await;
            m.close().await;
        }
        Mode::RawConcurrent => {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..CONCURRENCY {
                let raw = raw.clone();
                tasks.spawn(async move { raw.reused(per_sender).await });
            }
            tasks.join_all().await;
        }
        Mode::MailerConcurrent => {
            let m = mailer(raw.addr, true);
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..CONCURRENCY {
                let (m, e) = (m.clone(), email.clone());
                tasks.spawn(async move { send_all(&m, &e, per_sender).await });
            }
            tasks.join_all().await;
            m.close().await;
        }
    }
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(40);
    let count = count.max(CONCURRENCY * rounds);
    let sink = CountingSink::start().unwrap();
    let email = email();

    // The exact bytes SmtpMailer sends for this email, for raw lettre.
    mailer(sink.addr(), false).send(&email).await.unwrap();
    let bytes = sink.first_message().unwrap();
    let raw = Raw {
        addr: sink.addr(),
        envelope: Envelope::new(
            Some("noreply@example.com".parse::<Address>().unwrap()),
            vec!["user@example.com".parse::<Address>().unwrap()],
        )
        .unwrap(),
        bytes: Arc::new(bytes),
    };

    // Warm-up, then the modes interleaved, `rounds` times each.
    for mode in MODES {
        run(mode, CONCURRENCY * 20, &raw, &email).await;
    }
    let per_round = (count / rounds / CONCURRENCY) * CONCURRENCY;
    let mut times = vec![[Duration::ZERO; MODES.len()]; rounds];
    let before = sink.count();
    for (round, time) in times.iter_mut().enumerate() {
        let mut order: Vec<usize> = (0..MODES.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            time[i] = run(MODES[i], per_round, &raw, &email).await;
        }
    }
    let sent = per_round * rounds;
    assert_eq!(
        sink.count() - before,
        (sent * MODES.len()) as u64,
        "the sink counted every message"
    );
    let index = |mode: Mode| MODES.iter().position(|m| *m == mode).unwrap();
    let rate = |mode: Mode| {
        let total: Duration = times.iter().map(|t| t[index(mode)]).sum();
        sent as f64 / total.as_secs_f64()
    };
    let median_ratio = |raw: Mode, ours: Mode| {
        // rate ours / rate raw = time raw / time ours
        let mut r: Vec<f64> = times
            .iter()
            .map(|t| t[index(raw)].as_secs_f64() / t[index(ours)].as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let line = |label: &str, raw: Mode, ours: Mode| {
        let (r, o) = (rate(raw), rate(ours));
        println!(
            "  {label:<32} raw lettre {r:>7.0} msg/s   SmtpMailer {o:>7.0} msg/s   SmtpMailer/raw {:.2} (median of rounds {:.2})",
            o / r,
            median_ratio(raw, ours)
        );
    };
    println!(
        "{sent} messages per mode ({} bytes each), {rounds} interleaved rounds, loopback SMTP sink, release build",
        raw.bytes.len()
    );
    line(
        "sequential, connection per msg",
        Mode::RawFresh,
        Mode::MailerFresh,
    );
    line(
        "sequential, reused connection",
        Mode::RawReused,
        Mode::MailerReused,
    );
    line(
        &format!("{CONCURRENCY} concurrent senders"),
        Mode::RawConcurrent,
        Mode::MailerConcurrent,
    );
    println!(
        "  SmtpMailer reuse on / off (sequential): {:.2}x",
        rate(Mode::MailerReused) / rate(Mode::MailerFresh)
    );
}
