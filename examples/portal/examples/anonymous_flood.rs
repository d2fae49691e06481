//! What a flood of cookie-less requests does to the portal: a signed-in
//! user's latency (`GET /account`) is measured, then N anonymous GETs of the
//! pages anyone can reach (`/forgot`, `/login`, `/reset/new`,
//! `/account/security`) are sent from 8 clients, then the user is measured
//! again. Prints the server-side state before and after (sign-in sessions,
//! opened links: neither grows), whether the user is still signed in, and
//! the latency ratio.
//!
//! ```sh
//! cargo run --release -p resetkit-portal --example anonymous_flood -- [N]   # default 200000
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use resetkit_portal::{Portal, PortalConfig};

async fn median_account_latency(
    client: &reqwest::Client,
    site: &str,
    cookie: &str,
) -> Result<Duration, Box<dyn Error>> {
    let mut samples = Vec::new();
    for _ in 0..300 {
        let started = Instant::now();
        let body = client
            .get(format!("{site}/account"))
            .header(COOKIE, cookie)
            .send()
            .await?
            .text()
            .await?;
        samples.push(started.elapsed());
        if !body.contains("Signed in as alice") {
            return Err("alice was signed out".into());
        }
    }
    samples.sort();
    Ok(samples[samples.len() / 2])
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let total: usize = std::env::args().nth(1).map_or(Ok(200_000), |n| n.parse())?;
    let portal = Portal::start(PortalConfig::local_test()).await?;
    let site = portal.url();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    // alice signs in (stateless CSRF cookie for the form).
    let form = client.get(format!("{site}/login")).send().await?;
    let csrf_cookie = form
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or("no CSRF cookie")?
        .to_owned();
    let html = form.text().await?;
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).ok_or("no CSRF field")? + marker.len();
    let csrf = &html[start..start + html[start..].find('"').ok_or("bad field")?];
    let signed_in = client
        .post(format!("{site}/login"))
        .header(COOKIE, &csrf_cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!(
            "identifier=alice&password=alice-demo-password-1&csrf_token={csrf}"
        ))
        .send()
        .await?;
    let session = signed_in
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or("sign-in set no session")?
        .to_owned();

    let before_state = portal.server_state();
    let before = median_account_latency(&client, &site, &session).await?;

    let started = Instant::now();
    let paths = ["/forgot", "/login", "/reset/new", "/account/security"];
    let clients = 8;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let site = site.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = 0usize;
            for i in (c..total).step_by(clients) {
                match client
                    .get(format!("{site}{}", paths[i % paths.len()]))
                    .send()
                    .await
                {
                    Ok(resp) => {
                        let _ = resp.bytes().await;
                    }
                    Err(_) => errors += 1,
                }
            }
            errors
        }));
    }
    let mut errors = 0;
    for task in tasks {
        errors += task.await?;
    }
    let flood = started.elapsed();

    let after_state = portal.server_state();
    let after = median_account_latency(&client, &site, &session).await?;
    println!(
        "{total} cookie-less GETs in {:.1} s ({:.0} req/s, {errors} errors)",
        flood.as_secs_f64(),
        total as f64 / flood.as_secs_f64()
    );
    println!("server state (sign-in sessions, opened links): before {before_state:?}, after {after_state:?}");
    println!("alice still signed in: yes (every /account answer said so)");
    println!(
        "GET /account median: before {:.3} ms, after {:.3} ms (ratio {:.2})",
        before.as_secs_f64() * 1e3,
        after.as_secs_f64() * 1e3,
        after.as_secs_f64() / before.as_secs_f64()
    );
    portal.shutdown().await;
    Ok(())
}
