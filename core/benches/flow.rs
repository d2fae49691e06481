//! Benchmarks of the reset flow with the real (OWASP) argon2id parameters
//! and the in-memory stores.
//!
//! Measures `request` for a known and an unknown identifier (outbox
//! delivery and inline delivery with the request processed before `request`
//! returns, `RequestProcessing::Immediate`; and the default, where
//! `request` records into the inbox and in-process workers do the rest), `complete`, and one argon2id hash
//! (on the calling thread and on a blocking thread, where `complete` runs
//! it), then prints the medians and the ratios that matter: known / unknown
//! request time (the timing side channel the spec wants closed) and
//! `complete` minus one hash (the flow's own overhead).
//!
//! ```text
//! cargo bench -p resetkit --bench flow            # figures
//! cargo bench -p resetkit --bench flow -- request # one group
//! cargo test  -p resetkit --benches               # runs each routine once
//! ```
//!
//! Every call is timed on its own (criterion's `iter_custom`), so untimed
//! preparation (issuing the token a `complete` needs, replacing the stores
//! every few hundred calls so they stay small, as an indexed database would
//! behave) stays out of the figures. In background mode the timed part is
//! what the caller waits for; the spawned processing is then let finish,
//! untimed. The summary uses the median of the individual calls;
//! criterion's own estimates are printed above it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, SamplingMode};
use resetkit::hasher::{HashError, PasswordHash};
use resetkit::prelude::*;
use secrecy::SecretString;
use tokio::runtime::Runtime;

const BASE: &str = "https://app.example.com";
const RESET_PREFIX: &str = "https://app.example.com/reset?token=";
const PASSWORD: &str = "blue kettle under a quiet bridge";
/// Accounts in the directory (the in-memory directory scans them all).
const ACCOUNTS: usize = 16;
const KNOWN: &str = "user7@example.com";
const UNKNOWN: &str = "nobody@example.com";
/// Calls after which the stores are replaced (untimed) so they stay small.
const REFRESH_EVERY: usize = 256;

/// How the service delivers and processes requests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// Outbox delivery (the production setting).
    Outbox,
    /// Inline delivery (to a capturing mailer, so no network time).
    Inline,
    /// Outbox delivery, the default request processing (inbox + workers).
    Background,
}

/// The OWASP argon2id hasher, remembering how long its last hash took, so
/// each `complete` can be split into hashing and everything else.
struct TimedHasher {
    inner: Argon2Hasher,
    last: Arc<Mutex<Duration>>,
}

impl PasswordHasher for TimedHasher {
    fn hash(&self, password: &SecretString) -> Result<PasswordHash, HashError> {
        let start = Instant::now();
        let hash = self.inner.hash(password);
        *self.last.lock().expect("not poisoned") = start.elapsed();
        hash
    }

    fn verify(&self, password: &SecretString, hash: &PasswordHash) -> Result<bool, HashError> {
        self.inner.verify(password, hash)
    }
}

/// One service and the stores behind it.
struct World {
    service: ResetService,
    mailer: CapturingMailer,
    events: InMemoryEventLog,
    clock: ManualClock,
    last_hash: Arc<Mutex<Duration>>,
}

fn world(variant: Variant) -> World {
    let accounts = InMemoryAccounts::default();
    for i in 0..ACCOUNTS {
        accounts.insert(Account::new(
            format!("id{i}"),
            format!("user{i}"),
            format!("user{i}@example.com"),
        ));
    }
    let mailer = CapturingMailer::default();
    let events = InMemoryEventLog::default();
    let clock = ManualClock::new(SystemTime::now());
    let last_hash = Arc::new(Mutex::new(Duration::ZERO));
    let mut builder = ResetService::builder()
        .base_url(BASE)
        .accounts(Arc::new(accounts))
        .tokens(Arc::new(InMemoryTokenStore::default()))
        .events(Arc::new(events.clone()))
        .mailer(Arc::new(mailer.clone()))
        .sender(Arc::new(FixedSender::new(
            Mailbox::address_only("noreply@example.com").expect("valid address"),
        )))
        .hasher(Arc::new(TimedHasher {
            inner: Argon2Hasher::owasp(),
            last: Arc::clone(&last_hash),
        }))
        .clock(Arc::new(clock.clone()))
        // Every request must take the full path, not the cheap rate-limited one.
        .rate_limits(RateLimits::unlimited())
        .request_processing(if variant == Variant::Background {
            RequestProcessing::default()
        } else {
            RequestProcessing::Immediate
        });
    if variant != Variant::Inline {
        builder = builder.outbox(Arc::new(InMemoryOutbox::default()));
    }
    World {
        service: builder.build().expect("valid configuration"),
        mailer,
        events,
        clock,
        last_hash,
    }
}

/// Untimed: lets the spawned processing of a background request (stamped
/// `at`) finish, so it neither piles up nor runs inside the next timed call.
/// Looks only at the last event, so the check itself stays cheap.
async fn settle(events: &InMemoryEventLog, at: SystemTime) {
    loop {
        let last = events.recent(1).await.expect("in-memory log").pop();
        let done =
            last.is_some_and(|e| e.at == at && matches!(e.kind.name(), "request_ignored" | "email_queued"));
        if done {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Individual call times per benchmark, for the medians of the summary.
#[derive(Default)]
struct Samples(RefCell<BTreeMap<&'static str, Vec<Duration>>>);

impl Samples {
    fn push(&self, name: &'static str, took: Duration) {
        self.0.borrow_mut().entry(name).or_default().push(took);
    }

    fn median(&self, name: &str) -> Option<(Duration, usize)> {
        let mut all = self.0.borrow().get(name)?.clone();
        if all.is_empty() {
            return None;
        }
        all.sort_unstable();
        Some((all[all.len() / 2], all.len()))
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn bench_hash(c: &mut Criterion, samples: &Samples, rt: &Runtime) {
    let hasher = Argon2Hasher::owasp();
    let password = SecretString::from(PASSWORD);
    let mut group = c.benchmark_group("argon2id");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    group.bench_function("hash_owasp", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let hash = hasher.hash(&password).expect("hashing works");
                let took = start.elapsed();
                black_box(hash);
                samples.push("hash", took);
                total += took;
            }
            total
        });
    });
    // `complete` hashes on tokio's blocking pool; this is the same hash there.
    let shared = Arc::new(hasher);
    group.bench_function("hash_owasp_spawn_blocking", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let hasher = Arc::clone(&shared);
                let password = password.clone();
                let start = Instant::now();
                let hash = rt
                    .block_on(
                        async move { tokio::task::spawn_blocking(move || hasher.hash(&password)).await },
                    )
                    .expect("task ran")
                    .expect("hashing works");
                let took = start.elapsed();
                black_box(hash);
                samples.push("hash_blocking", took);
                total += took;
            }
            total
        });
    });
    group.finish();
}

fn bench_request(c: &mut Criterion, samples: &Samples, rt: &Runtime) {
    let mut group = c.benchmark_group("request");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let cases: [(&'static str, Variant, &str); 6] = [
        ("outbox/known", Variant::Outbox, KNOWN),
        ("outbox/unknown", Variant::Outbox, UNKNOWN),
        ("inline/known", Variant::Inline, KNOWN),
        ("inline/unknown", Variant::Inline, UNKNOWN),
        ("background/known", Variant::Background, KNOWN),
        ("background/unknown", Variant::Background, UNKNOWN),
    ];
    for (name, variant, identifier) in cases {
        let current = RefCell::new(world(variant));
        let calls = RefCell::new(0usize);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    {
                        let mut calls = calls.borrow_mut();
                        *calls += 1;
                        if calls.is_multiple_of(REFRESH_EVERY) {
                            *current.borrow_mut() = world(variant);
                        }
                    }
                    let (service, events, clock) = {
                        let w = current.borrow();
                        (w.service.clone(), w.events.clone(), w.clock.clone())
                    };
                    // Each request gets its own instant, to recognise its events.
                    clock.advance(Duration::from_micros(1));
                    let at = clock.now();
                    let ctx = RequestContext::default();
                    let start = Instant::now();
                    let outcome = rt.block_on(service.request(identifier, &ctx));
                    let took = start.elapsed();
                    black_box(outcome.expect("accepted"));
                    if variant == Variant::Background {
                        rt.block_on(settle(&events, at));
                    }
                    samples.push(name, took);
                    total += took;
                }
                total
            });
        });
    }
    group.finish();
}

fn bench_complete(c: &mut Criterion, samples: &Samples, rt: &Runtime) {
    let mut group = c.benchmark_group("complete");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    let current = RefCell::new(world(Variant::Inline));
    let calls = RefCell::new(0usize);
    let password = SecretString::from(PASSWORD);
    group.bench_function("inline/known", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                {
                    let mut calls = calls.borrow_mut();
                    *calls += 1;
                    if calls.is_multiple_of(REFRESH_EVERY) {
                        *current.borrow_mut() = world(Variant::Inline);
                    }
                }
                // Untimed: a fresh link for the known account.
                let (service, mailer, last_hash) = {
                    let w = current.borrow();
                    (w.service.clone(), w.mailer.clone(), Arc::clone(&w.last_hash))
                };
                mailer.clear();
                rt.block_on(service.request(KNOWN, &RequestContext::default()))
                    .expect("accepted");
                let token = mailer
                    .sent()
                    .first()
                    .and_then(|m| {
                        m.expose_text()
                            .lines()
                            .find_map(|l| l.trim().strip_prefix(RESET_PREFIX).map(str::to_owned))
                    })
                    .expect("a reset link");
                let start = Instant::now();
                let outcome = rt.block_on(service.complete(&token, password.clone(), password.clone()));
                let took = start.elapsed();
                black_box(outcome.expect("reset completes"));
                samples.push("complete", took);
                let hashing = *last_hash.lock().expect("not poisoned");
                samples.push("complete_without_hash", took.saturating_sub(hashing));
                total += took;
            }
            total
        });
    });
    group.finish();
}

fn show(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns >= 1_000_000 {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    }
}

fn summary(samples: &Samples) {
    let line = |label: &str, name: &str| {
        if let Some((median, n)) = samples.median(name) {
            println!("  {label:<40} {:>12}   (median of {n} calls)", show(median));
        }
    };
    let ratio = |label: &str, a: &str, b: &str| {
        if let (Some((x, _)), Some((y, _))) = (samples.median(a), samples.median(b))
            && !y.is_zero()
        {
            println!("  {label:<40} {:>11.2}x", x.as_secs_f64() / y.as_secs_f64());
        }
    };
    let hasher = Argon2Hasher::owasp();
    println!();
    println!("resetkit flow: medians ({hasher:?}, in-memory stores, {ACCOUNTS} accounts)");
    line("argon2id hash, OWASP parameters", "hash");
    line("  the same on tokio's blocking pool", "hash_blocking");
    line("request, outbox delivery, known", "outbox/known");
    line("request, outbox delivery, unknown", "outbox/unknown");
    ratio("  known / unknown (outbox)", "outbox/known", "outbox/unknown");
    line("request, inline delivery, known", "inline/known");
    line("request, inline delivery, unknown", "inline/unknown");
    ratio("  known / unknown (inline)", "inline/known", "inline/unknown");
    line("request, in background, known", "background/known");
    line("request, in background, unknown", "background/unknown");
    ratio(
        "  known / unknown (background)",
        "background/known",
        "background/unknown",
    );
    line("complete (includes one hash)", "complete");
    if let (Some((complete, _)), Some((hash, _))) = (samples.median("complete"), samples.median("hash")) {
        let overhead = complete.checked_sub(hash).unwrap_or_default();
        println!(
            "  {:<40} {:>12}",
            "complete minus one (separate) hash",
            show(overhead)
        );
    }
    line("complete minus its own hash, per call", "complete_without_hash");
    println!();
}

fn main() {
    // Same rule as criterion: `cargo bench` passes `--bench`; `cargo test
    // --benches` does not and only checks that each routine runs once.
    let args: Vec<String> = std::env::args().collect();
    let measuring = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let mut criterion = Criterion::default().configure_from_args();
    let samples = Samples::default();
    let rt = runtime();
    bench_hash(&mut criterion, &samples, &rt);
    bench_request(&mut criterion, &samples, &rt);
    bench_complete(&mut criterion, &samples, &rt);
    criterion.final_summary();
    if measuring {
        summary(&samples);
    }
}
