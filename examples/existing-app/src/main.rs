//! `existing-app`: the example application with password reset.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use existing_app::Settings;
use resetkit::policy::{Limit, RateLimits};

/// An app with its own users table, plus resetkit's password reset.
#[derive(Debug, Parser)]
#[command(name = "existing-app")]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Public base URL (default http://<listen>).
    #[arg(long, default_value = "")]
    base_url: String,
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// SMTP server URL.
    #[arg(long, default_value = "smtp://127.0.0.1:2525?tls=none")]
    smtp: String,
    /// Schema of the app's users table.
    #[arg(long, default_value = "existing_app")]
    app_schema: String,
    /// Schema of resetkit's tables.
    #[arg(long, default_value = "existing_app_resetkit")]
    resetkit_schema: String,
    /// Tiny argon2 parameters: for tests and harness runs only.
    #[arg(long)]
    fast_hash: bool,
    /// Emails per account per 15 minutes (0: unlimited); no per-client limit
    /// when given.
    #[arg(long)]
    per_account_limit: Option<u32>,
    /// Drop resetkit's schema at start (tokens, events, rate-limit counts):
    /// for demo and harness runs, which expect a fresh app.
    #[arg(long)]
    fresh_reset_state: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    let rate_limits = cli.per_account_limit.map(|max| RateLimits {
        per_account: (max > 0).then_some(Limit {
            max,
            window: Duration::from_secs(15 * 60),
        }),
        per_client: None,
    });
    let settings = Settings {
        listen: cli.listen,
        base_url: cli.base_url,
        database_url: cli.database_url,
        app_schema: cli.app_schema,
        resetkit_schema: cli.resetkit_schema,
        smtp_url: cli.smtp,
        fast_hash: cli.fast_hash,
        rate_limits,
        fresh_reset_state: cli.fresh_reset_state,
    };
    match existing_app::start(settings).await {
        Ok(running) => {
            println!("existing-app listening on http://{}", running.addr);
            let _ = tokio::signal::ctrl_c().await;
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("existing-app: {error}");
            ExitCode::from(2)
        }
    }
}
