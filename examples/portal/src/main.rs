//! The `resetkit-portal` command: the example portal on embedded defaults
//! (in-memory stores, in-process capture SMTP server, demo accounts), or on
//! PostgreSQL (`DATABASE_URL`) and a real SMTP server (`--smtp`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use resetkit::policy::{Limit, RateLimits};
use resetkit::secrets::DeploymentSecrets;
use resetkit_portal::{DEMO_ACCOUNTS, Portal, PortalConfig};
use secrecy::SecretString;

/// Example web portal with a hardened "forgot password" flow (resetkit).
#[derive(Debug, Parser)]
#[command(name = "resetkit-portal", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Public base URL links are built on (default http://<listen>; http://
    /// only for loopback hosts, otherwise https:// is required).
    #[arg(long)]
    base_url: Option<String>,
    /// SMTP server URL, e.g. smtp://user:pass@mail.example.com:587 or
    /// smtp://127.0.0.1:2525?tls=none (default: in-process capture server).
    #[arg(long, env = "PORTAL_SMTP_URL", hide_env_values = true)]
    smtp: Option<String>,
    /// Serve /dev/mail, the captured messages with their links (capture mode only).
    #[arg(long)]
    dev_mail: bool,
    /// With --dev-mail: serve the capture server's web inbox on this
    /// loopback address, e.g. 127.0.0.1:8025.
    #[arg(long)]
    dev_inbox: Option<std::net::SocketAddr>,
    /// Tiny argon2 parameters: for tests and harness runs only.
    #[arg(long)]
    fast_hash: bool,
    /// PostgreSQL URL (default: in-memory stores).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Schema of resetkit's tables in PostgreSQL.
    #[arg(long, default_value = "resetkit")]
    db_schema: String,
    /// From address of reset emails (default noreply@<base URL host>).
    #[arg(long)]
    from: Option<String>,
    /// Rate limits per 15 minutes: `ACCOUNT,CLIENT` (emails per account,
    /// requests per client address; 0 disables one) or `off`
    /// (default 3,20).
    #[arg(long, value_parser = parse_rate_limits)]
    rate_limits: Option<RateLimits>,
    /// Sign-in attempts per 15 minutes: `IDENTIFIER,CLIENT` (attempts per
    /// identifier as typed, per client address; 0 disables one) or `off`
    /// (default 10,100).
    #[arg(long, value_parser = parse_rate_limits)]
    sign_in_limits: Option<RateLimits>,
    /// Reset emails sent at once (each over a pooled SMTP connection).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    delivery_workers: u16,
    /// Reset emails that may wait to be sent before new requests wait in
    /// the inbox (then, once it is full, are answered "try again later").
    #[arg(long, default_value_t = resetkit::flow::DEFAULT_MAIL_BACKLOG_LIMIT, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    mail_backlog_limit: usize,
    /// Milliseconds a "try again later" (503) answer waits before it is sent.
    #[arg(long, default_value_t = 50)]
    shed_pace_ms: u64,
    /// Extra accounts load0..load{N-1} (load{i}@load.test, no password), for load tests.
    #[arg(long, default_value_t = 0)]
    load_test_accounts: usize,
    /// File of the deployment's secrets (`NAME=value` lines:
    /// RESETKIT_PAGES_KEY, RESETKIT_PAGES_KEY_PREVIOUS,
    /// RESETKIT_FINGERPRINT_KEY); the same variables in the environment
    /// take precedence. Required (file or environment) unless the portal
    /// listens on loopback; every instance of a site needs the same values.
    #[arg(long, env = "RESETKIT_SECRETS_FILE")]
    secrets_file: Option<std::path::PathBuf>,
}

/// The deployment's secrets from the environment and `--secrets-file`
/// (the environment wins), or `None` when neither sets any.
fn load_secrets(file: Option<&std::path::Path>) -> Result<Option<DeploymentSecrets>, String> {
    let from_file = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--secrets-file {}: {e}", path.display()))?;
            DeploymentSecrets::parse_file(&text)
                .map_err(|e| format!("--secrets-file {}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    let lookup = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| from_file.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    };
    DeploymentSecrets::from_lookup(lookup).map_err(|e| e.to_string())
}

fn parse_rate_limits(text: &str) -> Result<RateLimits, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(RateLimits::unlimited());
    }
    let (account, client) = text
        .split_once(',')
        .ok_or_else(|| format!("expected ACCOUNT,CLIENT (e.g. 3,20) or off, not {text:?}"))?;
    let limit = |name: &str, value: &str| -> Result<Option<Limit>, String> {
        let max: u32 = value
            .trim()
            .parse()
            .map_err(|_| format!("the {name} limit {value:?} is not a whole number"))?;
        Ok((max > 0).then_some(Limit {
            max,
            window: Duration::from_secs(15 * 60),
        }))
    };
    Ok(RateLimits {
        per_account: limit("account", account)?,
        per_client: limit("client", client)?,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .init();
    let cli = Cli::parse();
    let secrets = match load_secrets(cli.secrets_file.as_deref()) {
        Ok(secrets) => secrets,
        Err(error) => {
            eprintln!("resetkit-portal: {error}");
            return ExitCode::from(2);
        }
    };
    let config = PortalConfig {
        listen: cli.listen,
        base_url: cli.base_url,
        smtp: cli.smtp.map(SecretString::from),
        dev_mail: cli.dev_mail,
        fast_hash: cli.fast_hash,
        database_url: cli.database_url.map(SecretString::from),
        db_schema: cli.db_schema,
        from: cli.from,
        rate_limits: cli.rate_limits,
        sign_in_limits: cli.sign_in_limits.unwrap_or(resetkit_portal::SIGN_IN_LIMITS),
        delivery_workers: usize::from(cli.delivery_workers),
        mail_backlog_limit: cli.mail_backlog_limit,
        shed_pace: std::time::Duration::from_millis(cli.shed_pace_ms),
        load_test_accounts: cli.load_test_accounts,
        dev_inbox: cli.dev_inbox,
        secrets,
    };
    let portal = match Portal::start(config).await {
        Ok(portal) => portal,
        Err(error) => {
            eprintln!("resetkit-portal: {error}");
            return ExitCode::from(2);
        }
    };
    println!("{}", portal.banner());
    let demo: Vec<String> = DEMO_ACCOUNTS
        .iter()
        .filter(|a| !a.disabled)
        .map(|a| format!("{} / {}", a.username, a.password))
        .collect();
    eprintln!("demo accounts: {}", demo.join(", "));
    if cli.dev_mail && portal.mail().is_some() {
        eprintln!("captured mail: {}/dev/mail", portal.url());
    }
    if let Some(addr) = portal.dev_inbox_addr() {
        eprintln!("mail inbox: http://{addr}/");
    }
    resetkit_portal::wait_for_signal().await;
    eprintln!("resetkit-portal: shutting down");
    portal.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse() {
        assert_eq!(parse_rate_limits("off").unwrap(), RateLimits::unlimited());
        assert_eq!(parse_rate_limits("3,20").unwrap(), RateLimits::default());
        let only_account = parse_rate_limits("1, 0").unwrap();
        assert_eq!(only_account.per_account.unwrap().max, 1);
        assert!(only_account.per_client.is_none());
        assert!(parse_rate_limits("3").is_err());
        assert!(parse_rate_limits("a,b").is_err());
    }
}
