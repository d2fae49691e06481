//! How the in-memory stores scale: median `request` latency for a known
//! account with 1,000 accounts, after 1,000 and after 1,000,000 tokens were
//! issued (newest wins, so each account keeps one live link), measured
//! interleaved in one run, and the ratio; and the memory one live token
//! takes in the in-memory token store.
//!
//! Memory is the growth of the process's resident set (VmRSS) while one
//! store takes N live tokens of N distinct accounts, each with its "this
//! wasn't me" secret, divided by N: everything the store holds (slots,
//! strings, every index, the expiry heap, spare capacity of its vectors
//! and tables, the allocator's own overhead and whatever it keeps after
//! a table grew). Each N is measured in a fresh child process (this
//! program run with `--live N`), so no memory freed earlier is reused and
//! flatters the figure.
//!
//! ```text
//! cargo run --release -p resetkit --example memory_figures
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use resetkit::account::PasswordStamp;
use resetkit::policy::RateLimits;
use resetkit::prelude::*;
use resetkit::store::{TokenIssue, TokenStore};
use resetkit::token::{RawToken, TokenRecord, TokenState};

const ACCOUNTS: u64 = 1_000;
const SAMPLES: usize = 2_000;

fn service(tokens: &InMemoryTokenStore, accounts: &InMemoryAccounts) -> ResetService {
    ResetService::builder()
        .base_url("https://app.example.com")
        .accounts(Arc::new(accounts.clone()))
        .tokens(Arc::new(tokens.clone()))
        .events(Arc::new(NullEvents))
        .mailer(Arc::new(NullMailer))
        .sender(Arc::new(FixedSender::new(
            Mailbox::address_only("noreply@example.com").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .rate_limits(RateLimits::unlimited())
        .build()
        .unwrap()
}

/// Keeps nothing, so that only the token store and the directory grow.
struct NullEvents;

#[async_trait::async_trait]
impl EventLog for NullEvents {
    async fn record(&self, _: resetkit::event::Event) -> Result<(), resetkit::error::StoreError> {
        Ok(())
    }
}

struct NullMailer;

#[async_trait::async_trait]
impl Mailer for NullMailer {
    async fn send(
        &self,
        email: &OutgoingEmail,
    ) -> Result<resetkit::mail::SentReceipt, resetkit::mail::DeliveryError> {
        Ok(resetkit::mail::SentReceipt {
            message_id: email.message_id.clone(),
            server_reply: None,
        })
    }
}

fn rss_bytes() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb * 1024.0)
}

async fn fill(store: &InMemoryTokenStore, count: u64) {
    fill_accounts(store, count, ACCOUNTS).await;
}

/// Issues `count` tokens for accounts `u0..u{accounts-1}` in turn.
async fn fill_accounts(store: &InMemoryTokenStore, count: u64, accounts: u64) {
    let now = SystemTime::now();
    for i in 0..count {
        let account = AccountId::from(format!("u{}", i % accounts));
        store
            .issue(TokenIssue {
                record: TokenRecord {
                    hash: RawToken::generate().unwrap().hash(),
                    account: account.clone(),
                    sent_to: format!("user{}@example.com", i % accounts),
                    password_stamp: PasswordStamp::of(None),
                    issued_at: now,
                    expires_at: now + Duration::from_secs(1800),
                    state: TokenState::Active,
                    deny_hash: Some(RawToken::generate().unwrap().hash()),
                },
                limit: None,
                supersede: true,
            })
            .await
            .unwrap();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

/// The live-token sizes the memory figure is measured at.
const LIVE_SIZES: [u64; 3] = [1_000, 100_000, 1_000_000];

/// Child mode: fills a fresh store with `n` live tokens of distinct
/// accounts and prints the RSS growth in bytes.
async fn measure_live(n: u64) {
    // One token in another store first, kept: what the first issue sets
    // up once per process (the random generator, the runtime's buffers)
    // is not a cost per token.
    let warm = InMemoryTokenStore::default();
    fill_accounts(&warm, 1, 1).await;
    let live = InMemoryTokenStore::default();
    let before = rss_bytes();
    fill_accounts(&live, n, n).await;
    let grown = rss_bytes() - before;
    assert_eq!(live.len() as u64, n);
    assert_eq!(warm.len(), 1);
    println!("{grown}");
}

/// Runs this program with `--live n` and reads the RSS growth it printed.
fn live_growth(n: u64) -> f64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--live", &n.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "child for {n} tokens failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, n] = args.as_slice()
        && flag == "--live"
    {
        measure_live(n.parse().unwrap()).await;
        return;
    }
    println!(
        "in-memory token store, N live tokens of N distinct accounts (ids `u<i>`, addresses \
         `user<i>@example.com`, each with a deny secret), RSS growth of a fresh process / N:"
    );
    for n in LIVE_SIZES {
        let grown = live_growth(n);
        println!(
            "  {n:>9} live tokens: {:>6.0} bytes per token ({:.1} MiB)",
            grown / n as f64,
            grown / 1_048_576.0
        );
    }
    let accounts = InMemoryAccounts::default();
    for i in 0..ACCOUNTS {
        accounts.insert(Account::new(
            format!("u{i}"),
            format!("user{i}"),
            format!("user{i}@example.com"),
        ));
    }
    let small = InMemoryTokenStore::default();
    let large = InMemoryTokenStore::default();
    fill(&small, 1_000).await;
    let started = Instant::now();
    fill(&large, 1_000_000).await;
    eprintln!("issued 1,000,000 tokens in {:?}", started.elapsed());
    let services = [service(&small, &accounts), service(&large, &accounts)];
    let ctx = RequestContext::default();
    let mut times = [Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES)];
    // Interleaved: one request on each store per round.
    for round in 0..SAMPLES + 200 {
        let who = format!("user{}@example.com", (round as u64 * 7919) % ACCOUNTS);
        for (service, times) in services.iter().zip(times.iter_mut()) {
            let t = Instant::now();
            service.request(&who, &ctx).await.unwrap();
            if round >= 200 {
                times.push(t.elapsed());
            }
        }
    }
    let [small_times, large_times] = times;
    let (m_small, m_large) = (median(small_times), median(large_times));
    println!(
        "in-memory stores, {ACCOUNTS} accounts, known-account request (median of {SAMPLES}, interleaved):"
    );
    println!("  1,000 issued tokens:     {m_small:?}");
    println!("  1,000,000 issued tokens: {m_large:?}");
    println!(
        "  ratio 1M / 1k: {:.2}",
        m_large.as_secs_f64() / m_small.as_secs_f64()
    );
    println!("  stored tokens: {} and {}", small.len(), large.len());
}
