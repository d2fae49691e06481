//! Load figures of `POST /forgot` against in-process portals, with reset
//! mail going to a loopback SMTP capture server (the fake SMTP crate's
//! `CountingSink`, on a thread of its own: it only counts, so the mail
//! server is not what is measured).
//!
//! ```sh
//! # 16 clients posting known emails for 10 s, with 1, 4 and 8 delivery
//! # workers: requests accepted/s, p50/p99 latency, reset emails delivered/s
//! # while accepting, how long the backlog takes to drain, RSS. STORE is
//! # `memory` (default) or `postgres` (needs DATABASE_URL).
//! cargo run --release -p resetkit-portal --example forgot_load -- deliver [SECONDS] [CLIENTS] [STORE]
//! # Delivery with and without overload, in one run: delivered/s with a
//! # backlog and no incoming requests, then under an open-loop offered load
//! # of twice that rate (a fixed request rate, not clients spinning on fast
//! # 503s), their ratio, and the portal's CPU per answered request; then the
//! # same under a closed-loop flood of CLIENTS clients.
//! cargo run --release -p resetkit-portal --example forgot_load -- overload [SECONDS] [WORKERS] [CLIENTS]
//! # The portal's CPU per "try again later" (503) answer, RATE requests/s
//! # (default 5,000) for SECONDS while its inbox is full (also the last part
//! # of `overload`).
//! cargo run --release -p resetkit-portal --example forgot_load -- shed [SECONDS] [RATE]
//! # N requests (default 1,000,000) from 16 clients: time and RSS per tenth,
//! # the slowdown (last tenth / first tenth) and RSS growth per 100k requests.
//! cargo run --release -p resetkit-portal --example forgot_load -- million [N]
//! # Known / unknown / disabled / shared timing: PER_CLASS single requests
//! # per class (default 400), in rounds of one request per class in a fresh
//! # random order, one connection; rate limits default and off, in memory and
//! # (with DATABASE_URL) on PostgreSQL; medians and Mann-Whitney p-values
//! # against unknown.
//! cargo run --release -p resetkit-portal --example forgot_load -- timing [PER_CLASS]
//! ```
//!
//! Clients, portal and capture server share the machine's cores, so the
//! absolute figures understate a dedicated server. Load clients run on a
//! runtime of their own (threads named `loadgen`), so the portal's CPU can
//! be told apart from theirs.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use resetkit::RequestContext;
use resetkit::policy::RateLimits;
use resetkit_harness::fake_smtp::CountingSink;
use resetkit_harness::http::stats::mann_whitney;
use resetkit_portal::{Portal, PortalConfig, RunningPortal};
use secrecy::SecretString;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Accounts the load clients cycle through (distinct addresses, so that
/// "newest link wins" does not drop mail a client asked for a moment ago).
const LOAD_ACCOUNTS: usize = 200_000;

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

async fn session(client: &reqwest::Client, site: &str) -> Res<(String, String)> {
    let resp = client.get(format!("{site}/forgot")).send().await?;
    let cookie = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let body = resp.text().await?;
    let marker = "name=\"csrf_token\" value=\"";
    let start = body.find(marker).ok_or("no csrf field")? + marker.len();
    let end = body[start..].find('"').ok_or("unterminated csrf field")?;
    Ok((cookie, body[start..start + end].to_owned()))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Load {
    /// (finish time since start, latency) of every accepted request.
    samples: Vec<(Duration, Duration)>,
    elapsed: Duration,
    /// Requests answered 503 (inbox full).
    shed: usize,
}

/// `clients` clients post known emails (`load{i}@load.test`, a shared
/// counter so none repeats soon) until `stop` says so. With `back_off`, a
/// client that is answered 503 waits that long before its next request.
async fn post_load(
    site: &str,
    clients: usize,
    back_off: Option<Duration>,
    stop: impl Fn(usize, Duration) -> bool + Send + Sync + 'static,
) -> Res<Load> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(clients)
        .tcp_nodelay(true)
        .build()?;
    let (cookie, csrf) = session(&client, site).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let shed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(stop);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, cookie, csrf, url, next, stop, shed) = (
            client.clone(),
            cookie.clone(),
            csrf.clone(),
            format!("{site}/forgot"),
            next.clone(),
            stop.clone(),
            shed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if stop(n, start.elapsed()) {
                    return Ok::<_, String>(samples);
                }
                let body = format!(
                    "identifier=load{}%40load.test&csrf_token={csrf}",
                    n % LOAD_ACCOUNTS
                );
                let t = Instant::now();
                let resp = client
                    .post(&url)
                    .header(COOKIE, &cookie)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = resp.status();
                let _ = resp.bytes().await;
                if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                    // Shed: the inbox is full. A polite client waits.
                    shed.fetch_add(1, Ordering::SeqCst);
                    if let Some(pause) = back_off {
                        tokio::time::sleep(pause).await;
                    }
                    continue;
                }
                if status != reqwest::StatusCode::SEE_OTHER {
                    return Err(format!("unexpected status {status}"));
                }
                samples.push((start.elapsed(), t.elapsed()));
            }
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    let elapsed = start.elapsed();
    samples.sort();
    Ok(Load {
        samples,
        elapsed,
        shed: shed.load(Ordering::SeqCst),
    })
}

/// Where the portal keeps its state: in memory, or in a fresh schema of
/// the PostgreSQL at `DATABASE_URL` (dropped by [`Store::cleanup`]).
#[derive(Clone)]
enum Store {
    Memory,
    Postgres { url: String, schema: String },
}

impl Store {
    fn parse(name: &str) -> Res<Store> {
        match name {
            "memory" => Ok(Store::Memory),
            "postgres" => match std::env::var("DATABASE_URL") {
                Ok(url) if !url.is_empty() => Ok(Store::Postgres {
                    url,
                    schema: format!("forgot_load_{}", std::process::id()),
                }),
                _ => Err("postgres needs DATABASE_URL (eval \"$(scripts/start-postgres.sh)\")".into()),
            },
            other => Err(format!("unknown store `{other}`: memory or postgres").into()),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Store::Memory => "memory",
            Store::Postgres { .. } => "postgres",
        }
    }

    /// A config on this store with `accounts` load accounts. On PostgreSQL
    /// they are inserted in one statement here (the portal would upsert
    /// them one by one).
    async fn config(&self, accounts: usize) -> Res<PortalConfig> {
        let mut config = PortalConfig::local_test();
        config.dev_mail = false;
        match self {
            Store::Memory => config.load_test_accounts = accounts,
            Store::Postgres { url, schema } => {
                let pool = sqlx::PgPool::connect(url).await?;
                let stores = resetkit_postgres::PgStores::new(pool.clone(), schema)?;
                stores.migrate().await?;
                let s = stores.schema().quoted();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {s}.accounts (id, username, email) \
                       SELECT 'load' || i, 'load' || i, 'load' || i || '@load.test' \
                       FROM generate_series(0, {last}) i ON CONFLICT DO NOTHING; ANALYZE {s}.accounts;",
                    last = accounts.saturating_sub(1)
                )))
                .execute(&pool)
                .await?;
                pool.close().await;
                config.database_url = Some(SecretString::from(url.clone()));
                config.db_schema = schema.clone();
            }
        }
        Ok(config)
    }

    async fn cleanup(&self) -> Res<()> {
        if let Store::Postgres { url, schema } = self {
            let pool = sqlx::PgPool::connect(url).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(&pool)
            .await?;
            pool.close().await;
        }
        Ok(())
    }
}

async fn delivering_config(store: &Store, workers: usize, smtp_port: u16) -> Res<PortalConfig> {
    let mut config = store.config(LOAD_ACCOUNTS).await?;
    config.rate_limits = Some(RateLimits::unlimited());
    config.delivery_workers = workers;
    config.smtp = Some(SecretString::from(format!(
        "smtp://127.0.0.1:{smtp_port}?tls=none&reuse=true"
    )));
    Ok(config)
}

async fn delivering_portal(store: &Store, workers: usize, smtp_port: u16) -> Res<RunningPortal> {
    Ok(Portal::start(delivering_config(store, workers, smtp_port).await?).await?)
}

async fn deliver(seconds: u64, clients: usize, store: Store) -> Res<()> {
    println!(
        "== {clients} clients post known emails for {seconds} s; mail to a loopback SMTP sink; {} stores, no rate limits",
        store.label()
    );
    println!(
        "{:>7} {:>10} {:>7} {:>8} {:>8} {:>12} {:>12} {:>14} {:>8}",
        "workers", "accepted/s", "shed", "p50 ms", "p99 ms", "delivered/s", "drained in", "mails", "RSS MiB"
    );
    for workers in [1, 4, 8] {
        let sink = CountingSink::start()?;
        let portal = delivering_portal(&store, workers, sink.addr().port()).await?;
        let window = Duration::from_secs(seconds);
        let before = sink.count();
        let load = post_load(&portal.url(), clients, None, move |_, t| t >= window).await?;
        let during = sink.count() - before;
        let accepted = load.samples.len();
        // Drained: the inbox and the outbox are empty (or 60 s passed).
        let drain_start = Instant::now();
        loop {
            let waiting = portal.service().backlog().await?;
            if waiting.is_empty() || drain_start.elapsed() > Duration::from_secs(60) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let drained = drain_start.elapsed();
        let mut latencies: Vec<Duration> = load.samples.iter().map(|s| s.1).collect();
        latencies.sort();
        println!(
            "{workers:>7} {:>10.0} {:>7} {:>8.2} {:>8.2} {:>12.0} {:>10.2} s {:>14} {:>8.0}",
            accepted as f64 / load.elapsed.as_secs_f64(),
            load.shed,
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            during as f64 / load.elapsed.as_secs_f64(),
            drained.as_secs_f64(),
            format!("{}/{accepted}", sink.count() - before),
            rss_mib(),
        );
        portal.shutdown().await;
        store.cleanup().await?;
    }
    Ok(())
}

async fn million(total: usize) -> Res<()> {
    let sink = Arc::new(CountingSink::start()?);
    let portal = delivering_portal(&Store::Memory, 4, sink.addr().port()).await?;
    println!(
        "== {total} requests for known emails from 16 clients, 4 delivery workers, in-memory stores (RSS {:.0} MiB at start)",
        rss_mib()
    );
    let tenth = (total / 10).max(1);
    let marks = Arc::new(std::sync::Mutex::new(Vec::new()));
    let m = marks.clone();
    let rss_at_start = rss_mib();
    let start = Instant::now();
    let counter = Arc::clone(&sink);
    // Clients that get 503 (inbox full) wait 2 ms before the next request.
    let load = post_load(&portal.url(), 16, Some(Duration::from_millis(2)), move |n, t| {
        if n > 0 && n.is_multiple_of(tenth) && n <= total {
            m.lock()
                .map(|mut v| v.push((n, t, rss_mib(), counter.count())))
                .ok();
        }
        n >= total
    })
    .await?;
    let marks = marks.lock().map(|v| v.clone()).unwrap_or_default();
    let mut previous = Duration::ZERO;
    let mut tenths = Vec::new();
    for (n, t, rss, mailed) in &marks {
        let took = *t - previous;
        previous = *t;
        tenths.push(took);
        println!(
            "  {n:>8} requests: this tenth {:>6.2} s ({:>6.0} req/s), RSS {rss:>6.0} MiB, mail delivered so far {mailed}",
            took.as_secs_f64(),
            tenth as f64 / took.as_secs_f64(),
        );
    }
    let rss_end = rss_mib();
    if let (Some(first), Some(last)) = (tenths.first(), tenths.last()) {
        println!(
            "slowdown (last tenth / first tenth): {:.2}; RSS growth per 100k requests: {:.1} MiB; {} accepted, {} shed (503); {:.0} accepted/s over {:.1} s; mail delivered {}",
            last.as_secs_f64() / first.as_secs_f64(),
            (rss_end - rss_at_start) / (total as f64 / 100_000.0),
            load.samples.len(),
            load.shed,
            load.samples.len() as f64 / start.elapsed().as_secs_f64(),
            start.elapsed().as_secs_f64(),
            sink.count(),
        );
    }
    portal.shutdown().await;
    Ok(())
}

/// A small deterministic generator (xorshift64*) for the timing rounds'
/// order: reproducible, and no dependency on a random crate's API.
struct Shuffle(u64);

impl Shuffle {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A fresh random order of `0..n` (Fisher-Yates).
    fn order(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = usize::try_from(self.next() % (i as u64 + 1)).unwrap_or(0);
            order.swap(i, j);
        }
        order
    }
}

/// One client sends `per_class` rounds of one request per class, each
/// round in a fresh random order (so no class always follows another: the
/// work a request leaves behind lands on every class alike); returns the
/// latencies per class. The first `warm_up` rounds are not kept.
async fn interleaved(
    site: &str,
    classes: &[&str],
    per_class: usize,
    warm_up: usize,
) -> Res<Vec<Vec<Duration>>> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .build()?;
    let (cookie, csrf) = session(&client, site).await?;
    let mut samples = vec![Vec::with_capacity(per_class); classes.len()];
    let mut shuffle = Shuffle(0x9e37_79b9_7f4a_7c15);
    for round in 0..per_class + warm_up {
        for slot in shuffle.order(classes.len()) {
            let t = Instant::now();
            let resp = client
                .post(format!("{site}/forgot"))
                .header(COOKIE, &cookie)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(format!(
                    "identifier={}&csrf_token={csrf}",
                    classes[slot].replace('@', "%40")
                ))
                .send()
                .await?;
            let status = resp.status();
            let _ = resp.bytes().await?;
            if status != reqwest::StatusCode::SEE_OTHER {
                return Err(format!("unexpected status {status}").into());
            }
            if round >= warm_up {
                samples[slot].push(t.elapsed());
            }
        }
    }
    for s in &mut samples {
        s.sort();
    }
    Ok(samples)
}

fn micros(samples: &[Duration]) -> Vec<f64> {
    samples.iter().map(|d| d.as_secs_f64() * 1e6).collect()
}

async fn timing(per_class: usize) -> Res<()> {
    let classes = [
        ("known", "alice@example.test"),
        ("unknown", "nobody@example.test"),
        ("disabled", "carol@example.test"),
        ("shared", "family@example.test"),
    ];
    let mut stores = vec![Store::Memory];
    match Store::parse("postgres") {
        Ok(store) => stores.push(store),
        Err(_) => println!("(DATABASE_URL not set: PostgreSQL skipped)"),
    }
    let limits = [
        ("default (3,20)", RateLimits::default()),
        ("off", RateLimits::unlimited()),
    ];
    println!(
        "== POST /forgot, fresh portal per row, one connection, {per_class} requests per class in rounds of one per class \
         (random order each round; 20 rounds of warm-up not kept); median ms; p: Mann-Whitney, two-sided, against unknown"
    );
    println!(
        "| rate limits | store | known | unknown | disabled | shared | known/unknown | p known | p disabled | p shared |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for store in &stores {
        for (label, limits) in &limits {
            let mut config = store.config(0).await?;
            config.rate_limits = Some(*limits);
            let portal = Portal::start(config).await?;
            let names: Vec<&str> = classes.iter().map(|c| c.1).collect();
            let samples = interleaved(&portal.url(), &names, per_class, 20).await?;
            portal.shutdown().await;
            store.cleanup().await?;
            let median = |i: usize| percentile(&samples[i], 0.5);
            let unknown = micros(&samples[1]);
            let p = |i: usize| mann_whitney(&micros(&samples[i]), &unknown).1;
            println!(
                "| {label} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2e} | {:.2e} | {:.2e} |",
                store.label(),
                ms(median(0)),
                ms(median(1)),
                ms(median(2)),
                ms(median(3)),
                median(0).as_secs_f64() / median(1).as_secs_f64(),
                p(0),
                p(2),
                p(3),
            );
        }
    }
    Ok(())
}

/// CPU seconds (user + system) the threads of this process whose name
/// passes `keep` have used so far (threads that ended are not counted).
fn threads_cpu(keep: impl Fn(&str) -> bool) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !keep(name.trim()) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis: state is field 3,
        // utime field 14, stime field 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        for i in [11, 12] {
            ticks += fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

/// Every thread but the load clients': the portal and the SMTP sink.
fn portal_cpu() -> f64 {
    threads_cpu(|name| !name.starts_with("loadgen"))
}

/// What an open-loop load did.
#[derive(Default)]
struct OpenLoop {
    sent: usize,
    accepted: usize,
    shed: usize,
    /// Not sent: too many requests already in flight (the client's bound).
    skipped: usize,
    other: usize,
}

/// Connections the open-loop client spreads its requests over.
const OPEN_LOOP_CONNECTIONS: usize = 32;
/// Requests one connection may have in flight (pipelined); past it a due
/// request is not sent (counted as such).
const OPEN_LOOP_IN_FLIGHT: usize = 64;

/// Sends `rate` requests per second for `window`, on schedule whatever the
/// answers (open loop), each for the next load account after `first`.
/// A small HTTP/1.1 client of its own (pre-formatted requests, pipelined
/// over keep-alive connections, answers read by status line and
/// `Content-Length`), so that the load costs the shared cores little more
/// than `wrk` would: a general-purpose client costs more per request than
/// the 503 it is answered with.
async fn open_loop(site: String, rate: f64, window: Duration, first: usize) -> Res<OpenLoop> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (cookie, csrf) = session(&client, &site).await?;
    let addr = site.trim_start_matches("http://").to_owned();
    let counts = Arc::new([
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ]);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..OPEN_LOOP_CONNECTIONS {
        let stream = tokio::net::TcpStream::connect(&addr).await?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let share = rate / OPEN_LOOP_CONNECTIONS as f64;
        let (addr, cookie, csrf, counts2) = (addr.clone(), cookie.clone(), csrf.clone(), counts.clone());
        let (in_flight2, done2) = (in_flight.clone(), done.clone());
        // Sender: this connection's share of the schedule.
        tasks.push(tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            let mut writer = writer;
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let (mut sent, mut skipped) = (0usize, 0usize);
            let mut batch = Vec::new();
            while start.elapsed() < window {
                tick.tick().await;
                let due = (start.elapsed().min(window).as_secs_f64() * share) as usize;
                batch.clear();
                while sent + skipped < due {
                    if in_flight2.load(Ordering::Relaxed) >= OPEN_LOOP_IN_FLIGHT {
                        skipped += 1;
                        continue;
                    }
                    let n = first + c + sent * OPEN_LOOP_CONNECTIONS;
                    let body = format!(
                        "identifier=load{}%40load.test&csrf_token={csrf}",
                        n % LOAD_ACCOUNTS
                    );
                    batch.extend_from_slice(
                        format!(
                            "POST /forgot HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n\
                             Content-Type: application/x-www-form-urlencoded\r\n\
                             Content-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    in_flight2.fetch_add(1, Ordering::Relaxed);
                    sent += 1;
                }
                if !batch.is_empty() && writer.write_all(&batch).await.is_err() {
                    break;
                }
            }
            done2.store(true, Ordering::Relaxed);
            counts2[3].fetch_add(sent, Ordering::Relaxed);
            counts2[4].fetch_add(skipped, Ordering::Relaxed);
        }));
        // Reader: answers in order, by status.
        let counts3 = counts.clone();
        tasks.push(tokio::spawn(async move {
            use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
            let mut reader = tokio::io::BufReader::new(reader);
            let mut line = String::new();
            let read_all = async {
                loop {
                    // Nothing on the way: nothing half-read either, so the
                    // wait can end here.
                    if in_flight.load(Ordering::Relaxed) == 0 {
                        if done.load(Ordering::Relaxed) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    let answer = async {
                        line.clear();
                        reader.read_line(&mut line).await.ok().filter(|n| *n > 0)?;
                        let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
                        let mut length = 0usize;
                        loop {
                            line.clear();
                            reader.read_line(&mut line).await.ok().filter(|n| *n > 0)?;
                            let header = line.trim_end();
                            if header.is_empty() {
                                break;
                            }
                            if let Some((name, value)) = header.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().ok()?;
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).await.ok()?;
                        Some(status)
                    };
                    let Some(status) = answer.await else { break };
                    let slot = match status {
                        303 => 0,
                        503 => 1,
                        _ => 2,
                    };
                    counts3[slot].fetch_add(1, Ordering::Relaxed);
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                }
            };
            // Answers still missing 5 s after the window are not waited for.
            let _ = tokio::time::timeout(window + Duration::from_secs(5), read_all).await;
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(OpenLoop {
        sent: counts[3].load(Ordering::Relaxed),
        accepted: counts[0].load(Ordering::Relaxed),
        shed: counts[1].load(Ordering::Relaxed),
        skipped: counts[4].load(Ordering::Relaxed),
        other: counts[2].load(Ordering::Relaxed),
    })
}

/// Records requests for the next load accounts straight through the
/// service (no HTTP) until `n` were accepted, waiting while the inbox is
/// full: a backlog for the delivery workers.
async fn preload(portal: &RunningPortal, first: usize, n: usize) -> Res<()> {
    let ctx = RequestContext::from_client("198.51.100.7");
    let mut i = first;
    while i < first + n {
        let id = format!("load{}@load.test", i % LOAD_ACCOUNTS);
        match portal.service().request(&id, &ctx).await {
            Ok(_) => i += 1,
            Err(resetkit::RequestError::Unavailable(_)) => {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Delivered/s, portal CPU/s and whether mail was still waiting, over `window`.
async fn delivery_window(
    portal: &RunningPortal,
    sink: &CountingSink,
    window: Duration,
    during: impl std::future::Future<Output = Res<OpenLoop>>,
) -> Res<(f64, f64, bool, OpenLoop)> {
    let start = portal.service().backlog().await?;
    let (mail0, cpu0, t0) = (sink.count(), portal_cpu(), Instant::now());
    let load = during.await?;
    // The rest of the window, or until the backlog ran out (the rate is
    // then taken over the time there was work).
    while t0.elapsed() < window && !portal.service().backlog().await?.is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let delivered = (sink.count() - mail0) as f64 / secs;
    let cpu = (portal_cpu() - cpu0) / secs;
    let end = portal.service().backlog().await?;
    eprintln!(
        "    (backlog: inbox {} + outbox {} at the start, {} + {} at the end)",
        start.requests, start.mail, end.requests, end.mail
    );
    Ok((delivered, cpu, !end.is_empty(), load))
}

/// The in-memory inbox's capacity (the portal's default).
const INBOX_CAPACITY: usize = resetkit::memory::DEFAULT_INBOX_CAPACITY;

/// Requests that fit in the portal's backlog now (inbox plus the mail
/// backlog limit, less a margin for the workers' passes), at most `want`.
async fn room(portal: &RunningPortal, limit: usize, want: usize) -> Res<usize> {
    let backlog = portal.service().backlog().await?;
    Ok(limit
        .saturating_add(INBOX_CAPACITY)
        .saturating_sub(backlog.requests + backlog.mail + 256)
        .min(want))
}

/// Delivery with no incoming requests, under an open-loop load of twice
/// that rate, and under a closed-loop flood, for one mail backlog limit.
/// The open-loop window of [`overload_run`]: twice the idle rate `d0`,
/// the backlog full again first; returns the next load account.
async fn open_window(
    portal: &RunningPortal,
    sink: &CountingSink,
    limit: usize,
    d0: f64,
    window: Duration,
    mut next: usize,
    loadgen: &tokio::runtime::Runtime,
) -> Res<usize> {
    let rate = 2.0 * d0;
    let site = portal.url();
    let refill = room(portal, limit, 60_000).await?;
    preload(portal, next, refill).await?;
    next += refill;
    let load = loadgen.spawn(open_loop(site.clone(), rate, window, next));
    let during = async move {
        load.await
            .map_err(|e| -> Box<dyn Error + Send + Sync> { e.into() })?
    };
    let (d1, cpu1, left1, ol) = delivery_window(portal, sink, window, during).await?;
    next += ol.sent;
    println!(
        "  open loop, {rate:>6.0} req/s offered: delivered {d1:>7.0}/s, portal+sink CPU {:>4.0}%; accepted {:.0}/s, 503 {:.0}/s, not sent {}, other {}; ratio {:.2}{}",
        cpu1 * 100.0,
        ol.accepted as f64 / window.as_secs_f64(),
        ol.shed as f64 / window.as_secs_f64(),
        ol.skipped,
        ol.other,
        d1 / d0,
        if left1 { "" } else { " (backlog ran out)" }
    );
    Ok(next)
}

#[allow(clippy::too_many_arguments)]
async fn overload_run(
    label: &str,
    limit: usize,
    pace: Duration,
    open: bool,
    window: Duration,
    workers: usize,
    clients: usize,
    loadgen: &tokio::runtime::Runtime,
) -> Res<()> {
    let sink = CountingSink::start()?;
    let mut config = delivering_config(&Store::Memory, workers, sink.addr().port()).await?;
    config.mail_backlog_limit = limit;
    config.shed_pace = pace;
    let portal = Portal::start(config).await?;
    println!("-- {label}");
    // A backlog big enough for each window below.
    let mut next = 0;
    let backlog = room(&portal, limit, 60_000).await?;
    preload(&portal, next, backlog).await?;
    next += backlog;
    // Delivery with no incoming requests.
    let idle = async { Ok(OpenLoop::default()) };
    let (d0, cpu0, left0, _) = delivery_window(&portal, &sink, window, idle).await?;
    println!(
        "  no incoming requests:        delivered {d0:>7.0}/s, portal+sink CPU {:>4.0}%{}",
        cpu0 * 100.0,
        if left0 { "" } else { " (until the backlog ran out)" }
    );
    // Open loop at twice that rate, the backlog full again.
    let site = portal.url();
    if open {
        next = open_window(&portal, &sink, limit, d0, window, next, loadgen).await?;
    }
    // Closed loop: clients that spin on fast 503s (what `wrk` does).
    let more = room(&portal, limit, 60_000).await?;
    preload(&portal, next, more).await?;
    next += more;
    let site2 = site.clone();
    let closed = loadgen.spawn(async move {
        let load = post_load(&site2, clients, None, move |_, t| t >= window).await?;
        Ok::<_, Box<dyn Error + Send + Sync>>(OpenLoop {
            sent: load.samples.len() + load.shed,
            accepted: load.samples.len(),
            shed: load.shed,
            skipped: 0,
            other: 0,
        })
    });
    let during = async move {
        closed
            .await
            .map_err(|e| -> Box<dyn Error + Send + Sync> { e.into() })?
    };
    let (d2, cpu2, left2, cl) = delivery_window(&portal, &sink, window, during).await?;
    println!(
        "  closed loop, {clients} clients:       delivered {d2:>7.0}/s, portal+sink CPU {:>4.0}%; accepted {:.0}/s, 503 {:.0}/s; ratio {:.2}{}",
        cpu2 * 100.0,
        cl.accepted as f64 / window.as_secs_f64(),
        cl.shed as f64 / window.as_secs_f64(),
        d2 / d0,
        if left2 { "" } else { " (backlog ran out)" }
    );
    let _ = next;
    portal.shutdown().await;
    Ok(())
}

/// The portal's CPU per "try again later" answer: a portal whose mail
/// server refuses connections (its mail waits for a retry, so the mail
/// backlog stays at the limit and the inbox full) is sent `rate` requests
/// per second for `window`; every answer is a 503.
async fn shed_cost(window: Duration, rate: f64, loadgen: &tokio::runtime::Runtime) -> Res<()> {
    let refused = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut config = delivering_config(&Store::Memory, 1, refused).await?;
    config.mail_backlog_limit = 1;
    // Unpaced: the cost of the answer itself.
    config.shed_pace = Duration::ZERO;
    let portal = Portal::start(config).await?;
    // The first request's mail fails and waits for its retry; the inbox
    // fills behind it.
    preload(&portal, 0, 1).await?;
    while portal.service().backlog().await?.mail == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    preload(&portal, 1, INBOX_CAPACITY).await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (cookie, csrf) = session(&client, &portal.url()).await?;
    let answer = client
        .post(format!("{}/forgot", portal.url()))
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("identifier=load0%40load.test&csrf_token={csrf}"))
        .send()
        .await?;
    let retry_after = answer
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_owned();
    let status = answer.status();
    let (cpu0, t0) = (portal_cpu(), Instant::now());
    let load = loadgen.spawn(open_loop(portal.url(), rate, window, 0)).await??;
    let cpu = portal_cpu() - cpu0;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "-- shedding: {rate:.0} req/s offered for {:.1} s while the inbox is full: {} answered 503 ({} other, {} not sent); first answer {status}, Retry-After: {retry_after}",
        secs,
        load.shed,
        load.accepted + load.other,
        load.skipped
    );
    println!(
        "  portal CPU {:.0}% ({:.1} us per 503)",
        cpu / secs * 100.0,
        cpu / load.shed.max(1) as f64 * 1e6
    );
    portal.shutdown().await;
    Ok(())
}

async fn overload(seconds: u64, workers: usize, clients: usize) -> Res<()> {
    let window = Duration::from_secs(seconds);
    let loadgen = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("loadgen")
        .enable_all()
        .build()?;
    println!(
        "== delivery with and without overload: in-memory stores, no rate limits, {workers} delivery workers, mail to a loopback SMTP sink, {seconds} s windows"
    );
    overload_run(
        "no mail backlog limit (every accepted request goes on to the outbox), 503s unpaced",
        usize::MAX,
        Duration::ZERO,
        true,
        window,
        workers,
        clients,
        &loadgen,
    )
    .await?;
    let limit = resetkit::flow::DEFAULT_MAIL_BACKLOG_LIMIT;
    overload_run(
        &format!(
            "mail backlog limit {limit} (the default): requests wait in the inbox past it; 503s unpaced"
        ),
        limit,
        Duration::ZERO,
        true,
        window,
        workers,
        clients,
        &loadgen,
    )
    .await?;
    let pace = resetkit_axum::DEFAULT_SHED_PACE;
    overload_run(
        &format!(
            "the defaults: mail backlog limit {limit}, 503s paced {} ms (closed loop only: the open-loop client pipelines)",
            pace.as_millis()
        ),
        limit,
        pace,
        false,
        window,
        workers,
        clients,
        &loadgen,
    )
    .await?;
    shed_cost(window, 5_000.0, &loadgen).await?;
    loadgen.shutdown_background();
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| -> Res<u64> {
        Ok(args.get(i).map(|a| a.parse()).transpose()?.unwrap_or(default))
    };
    match args.first().map(String::as_str).unwrap_or("deliver") {
        "deliver" => {
            let store = Store::parse(args.get(3).map_or("memory", String::as_str))?;
            deliver(num(1, 10)?, usize::try_from(num(2, 16)?)?, store).await
        }
        "overload" => {
            overload(
                num(1, 3)?,
                usize::try_from(num(2, 4)?)?,
                usize::try_from(num(3, 16)?)?,
            )
            .await
        }
        "shed" => {
            let loadgen = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("loadgen")
                .enable_all()
                .build()?;
            shed_cost(Duration::from_secs(num(1, 3)?), num(2, 5_000)? as f64, &loadgen).await?;
            loadgen.shutdown_background();
            Ok(())
        }
        "million" => million(usize::try_from(num(1, 1_000_000)?)?).await,
        "timing" => timing(usize::try_from(num(1, 400)?)?).await,
        other => Err(format!("unknown mode `{other}`: deliver, overload, shed, million or timing").into()),
    }
}
