//! Load figures of `POST /forgot` against in-process portals, with reset
//! mail going to a loopback SMTP capture server (the fake SMTP crate's
//! `CountingSink`, on a thread of its own: it only counts, so the mail
//! server is not what is measured).
//!
//! ```sh
//! # 16 clients posting known emails for 10 s, with 1, 4 and 8 delivery
//! # workers: requests accepted/s, p50/p99 latency, reset emails delivered/s
//! # while accepting, how long the backlog takes to drain, RSS.
//! cargo run --release -p resetkit-portal --example forgot_load -- deliver [SECONDS] [CLIENTS]
//! # N requests (default 1,000,000) from 16 clients: time and RSS per tenth,
//! # the slowdown (last tenth / first tenth) and RSS growth per 100k requests.
//! cargo run --release -p resetkit-portal --example forgot_load -- million [N]
//! # Known / unknown / disabled / shared timing, interleaved, default
//! # configuration, in memory and (with DATABASE_URL) on PostgreSQL.
//! cargo run --release -p resetkit-portal --example forgot_load -- timing [PER_CLASS]
//! ```
//!
//! Clients, portal and capture server share the machine's cores, so the
//! absolute figures understate a dedicated server.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use resetkit::policy::RateLimits;
use resetkit_harness::fake_smtp::CountingSink;
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

async fn delivering_portal(workers: usize, smtp_port: u16) -> Res<RunningPortal> {
    let mut config = PortalConfig::local_test();
    config.dev_mail = false;
    config.rate_limits = Some(RateLimits::unlimited());
    config.delivery_workers = workers;
    config.load_test_accounts = LOAD_ACCOUNTS;
    config.smtp = Some(SecretString::from(format!(
        "smtp://127.0.0.1:{smtp_port}?tls=none&reuse=true"
    )));
    Ok(Portal::start(config).await?)
}

async fn deliver(seconds: u64, clients: usize) -> Res<()> {
    println!(
        "== {clients} clients post known emails for {seconds} s; mail to a loopback SMTP sink; in-memory stores, no rate limits"
    );
    println!(
        "{:>7} {:>10} {:>7} {:>8} {:>8} {:>12} {:>12} {:>14} {:>8}",
        "workers", "accepted/s", "shed", "p50 ms", "p99 ms", "delivered/s", "drained in", "mails", "RSS MiB"
    );
    for workers in [1, 4, 8] {
        let sink = CountingSink::start()?;
        let portal = delivering_portal(workers, sink.addr().port()).await?;
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
    }
    Ok(())
}

async fn million(total: usize) -> Res<()> {
    let sink = Arc::new(CountingSink::start()?);
    let portal = delivering_portal(4, sink.addr().port()).await?;
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

/// One client sends interleaved requests for each class, rotating which
/// goes first; returns the sorted latencies per class.
async fn interleaved(site: &str, classes: &[&str], per_class: usize) -> Res<Vec<Vec<Duration>>> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .build()?;
    let (cookie, csrf) = session(&client, site).await?;
    let mut samples = vec![Vec::with_capacity(per_class); classes.len()];
    for round in 0..per_class {
        for k in 0..classes.len() {
            let slot = (round + k) % classes.len();
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
            samples[slot].push(t.elapsed());
        }
    }
    for s in &mut samples {
        s.sort();
    }
    Ok(samples)
}

async fn timing(per_class: usize) -> Res<()> {
    let classes = [
        ("known", "alice@example.test"),
        ("unknown", "nobody@example.test"),
        ("disabled", "carol@example.test"),
        ("shared", "family@example.test"),
    ];
    let mut stores = vec![("memory", None)];
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => stores.push(("postgres", Some(url))),
        _ => println!("(DATABASE_URL not set: PostgreSQL skipped)"),
    }
    let raised = RateLimits {
        per_client: RateLimits::default().per_client.map(|l| resetkit::policy::Limit {
            max: u32::try_from(per_class * classes.len() + 10).unwrap_or(u32::MAX),
            ..l
        }),
        ..RateLimits::default()
    };
    // The default configuration first (all requests come from one address,
    // so past the 20th the per-client limit refuses them: the refused path
    // is timed too), then with the per-client limit raised so that every
    // request is recorded and processed.
    let variants = [("defaults", None), ("client limit raised", Some(raised))];
    for ((label, url), (variant, limits)) in stores
        .iter()
        .flat_map(|s| variants.iter().map(move |v| (s.clone(), *v)))
    {
        let mut config = PortalConfig::local_test();
        config.dev_mail = false;
        config.rate_limits = limits;
        if let Some(url) = &url {
            config.database_url = Some(SecretString::from(url.clone()));
            config.db_schema = format!("forgot_load_{}", std::process::id());
        }
        let portal = Portal::start(config).await?;
        let names: Vec<&str> = classes.iter().map(|c| c.1).collect();
        let samples = interleaved(&portal.url(), &names, per_class).await?;
        let unknown = percentile(&samples[1], 0.5);
        let line: Vec<String> = classes
            .iter()
            .zip(&samples)
            .map(|((name, _), s)| {
                format!(
                    "{name} p50 {:.3} ms (x{:.2})",
                    ms(percentile(s, 0.5)),
                    percentile(s, 0.5).as_secs_f64() / unknown.as_secs_f64()
                )
            })
            .collect();
        println!(
            "{label:>8}, {variant}, {per_class} interleaved requests per class: {}",
            line.join(", ")
        );
        portal.shutdown().await;
        if let Some(url) = url {
            let pool = sqlx::PgPool::connect(url.as_str()).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS forgot_load_{} CASCADE",
                std::process::id()
            )))
            .execute(&pool)
            .await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| -> Res<u64> {
        Ok(args.get(i).map(|a| a.parse()).transpose()?.unwrap_or(default))
    };
    match args.first().map(String::as_str).unwrap_or("deliver") {
        "deliver" => deliver(num(1, 10)?, usize::try_from(num(2, 16)?)?).await,
        "million" => million(usize::try_from(num(1, 1_000_000)?)?).await,
        "timing" => timing(usize::try_from(num(1, 500)?)?).await,
        other => Err(format!("unknown mode `{other}`: deliver, million or timing").into()),
    }
}
