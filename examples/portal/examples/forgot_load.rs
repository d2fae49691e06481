//! Requests per second and latency of `POST /forgot`, known vs unknown
//! identifier, against in-process portals (capture mail; a fresh portal per
//! run): first without rate limits, so that every known request really
//! issues a token and an email, then with resetkit's default limits (all
//! requests come from one address, so nearly all are throttled). Each part
//! ends with one client timing interleaved known / unknown requests, as an
//! attacker would.
//!
//! ```sh
//! cargo run --release -p resetkit-portal --example forgot_load -- [CLIENTS] [SECONDS]
//! cargo run --release -p resetkit-portal --example forgot_load -- timing   # single-client timing only, 5 runs
//! ```
//!
//! Clients and portal share the machine's cores, so the absolute figures
//! understate a dedicated server; the known/unknown ratio is the point.

use std::error::Error;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use resetkit::policy::RateLimits;
use resetkit_portal::{Portal, PortalConfig};

struct Run {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn session(client: &reqwest::Client, site: &str) -> Result<(String, String), Box<dyn Error>> {
    let resp = client.get(format!("{site}/forgot")).send().await?;
    let cookie = resp
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or("no session cookie")?
        .to_owned();
    let body = resp.text().await?;
    let marker = "name=\"csrf_token\" value=\"";
    let start = body.find(marker).ok_or("no csrf field")? + marker.len();
    let end = body[start..].find('"').ok_or("unterminated csrf field")?;
    Ok((cookie, body[start..start + end].to_owned()))
}

async fn run(
    site: &str,
    identifier: &str,
    clients: usize,
    duration: Duration,
) -> Result<Run, Box<dyn Error>> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(clients)
        .build()?;
    let (cookie, csrf) = session(&client, site).await?;
    let body = format!("identifier={}&csrf_token={csrf}", identifier.replace('@', "%40"));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, cookie, body, url) = (
            client.clone(),
            cookie.clone(),
            body.clone(),
            format!("{site}/forgot"),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let resp = client
                    .post(&url)
                    .header(COOKIE, &cookie)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if resp.status() != reqwest::StatusCode::SEE_OTHER {
                    return Err(format!("unexpected status {}", resp.status()));
                }
                let _ = resp.bytes().await;
                latencies.push(t.elapsed());
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    Ok(Run {
        requests: latencies.len(),
        elapsed,
        latencies,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn fresh_portal(limits: &RateLimits) -> Result<resetkit_portal::RunningPortal, Box<dyn Error>> {
    let mut config = PortalConfig::local_test();
    config.dev_mail = false;
    config.rate_limits = Some(*limits);
    Ok(Portal::start(config).await?)
}

/// One client alternating known and unknown requests: what an attacker
/// timing single requests sees.
async fn interleaved(site: &str, pairs: usize) -> Result<[Vec<Duration>; 2], Box<dyn Error>> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (cookie, csrf) = session(&client, site).await?;
    let mut samples = [Vec::new(), Vec::new()];
    for i in 0..pairs {
        // Alternate which goes first.
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for slot in order {
            let identifier = ["nobody%40example.test", "alice%40example.test"][slot];
            let t = Instant::now();
            let resp = client
                .post(format!("{site}/forgot"))
                .header(COOKIE, &cookie)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(format!("identifier={identifier}&csrf_token={csrf}"))
                .send()
                .await?;
            let _ = resp.bytes().await?;
            samples[slot].push(t.elapsed());
        }
    }
    for s in &mut samples {
        s.sort();
    }
    Ok(samples)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "timing") {
        // Only the single-client timing, five times, without rate limits.
        for _ in 0..5 {
            let portal = fresh_portal(&RateLimits::unlimited()).await?;
            let [unknown, known] = interleaved(&portal.url(), 2000).await?;
            println!(
                "unknown p50 {:.3} ms, known p50 {:.3} ms (known/unknown {:.2})",
                percentile(&unknown, 0.5).as_secs_f64() * 1e3,
                percentile(&known, 0.5).as_secs_f64() * 1e3,
                percentile(&known, 0.5).as_secs_f64() / percentile(&unknown, 0.5).as_secs_f64(),
            );
            portal.shutdown().await;
        }
        return Ok(());
    }
    let clients: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(16);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    for (label, limits) in [
        ("no rate limits", RateLimits::unlimited()),
        ("default rate limits", RateLimits::default()),
    ] {
        println!(
            "== {label}: POST /forgot, {clients} concurrent clients, {seconds} s per run, a fresh portal per run"
        );
        let mut totals = [
            (0usize, Duration::ZERO, Vec::new()),
            (0, Duration::ZERO, Vec::new()),
        ];
        let mut captured = [0usize; 2];
        // Alternate so that neither side always runs on a warmer machine.
        for round in 0..2 {
            for (i, (kind, identifier)) in [
                ("unknown", "nobody@example.test"),
                ("known", "alice@example.test"),
            ]
            .into_iter()
            .enumerate()
            {
                let portal = fresh_portal(&limits).await?;
                let r = run(&portal.url(), identifier, clients, Duration::from_secs(seconds)).await?;
                println!(
                    "round {round} {kind:>7}: {:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
                    r.requests as f64 / r.elapsed.as_secs_f64(),
                    percentile(&r.latencies, 0.50).as_secs_f64() * 1e3,
                    percentile(&r.latencies, 0.99).as_secs_f64() * 1e3,
                );
                totals[i].0 += r.requests;
                totals[i].1 += r.elapsed;
                totals[i].2.extend(r.latencies);
                captured[i] += portal.mail().map(|m| m.messages().len()).unwrap_or_default();
                portal.shutdown().await;
            }
        }
        let rate = |t: &(usize, Duration, Vec<Duration>)| t.0 as f64 / t.1.as_secs_f64();
        for t in &mut totals {
            t.2.sort();
        }
        println!(
            "overall: unknown {:.0} req/s (p50 {:.2} ms), known {:.0} req/s (p50 {:.2} ms); known/unknown rate {:.2}; emails delivered by shutdown: {} / {}",
            rate(&totals[0]),
            percentile(&totals[0].2, 0.5).as_secs_f64() * 1e3,
            rate(&totals[1]),
            percentile(&totals[1].2, 0.5).as_secs_f64() * 1e3,
            rate(&totals[1]) / rate(&totals[0]),
            captured[0],
            captured[1],
        );
        let portal = fresh_portal(&limits).await?;
        let [unknown, known] = interleaved(&portal.url(), 2000).await?;
        println!(
            "one client, 2000 interleaved pairs: unknown p50 {:.3} ms p90 {:.3} ms, known p50 {:.3} ms p90 {:.3} ms (known/unknown p50 {:.2})",
            percentile(&unknown, 0.5).as_secs_f64() * 1e3,
            percentile(&unknown, 0.9).as_secs_f64() * 1e3,
            percentile(&known, 0.5).as_secs_f64() * 1e3,
            percentile(&known, 0.9).as_secs_f64() * 1e3,
            percentile(&known, 0.5).as_secs_f64() / percentile(&unknown, 0.5).as_secs_f64(),
        );
        portal.shutdown().await;
    }
    Ok(())
}
