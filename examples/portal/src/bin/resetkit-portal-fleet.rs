//! `resetkit-portal-fleet`: several `resetkit-portal` processes on one
//! PostgreSQL (`DATABASE_URL`) behind a round-robin proxy on `--listen`
//! (each request to the next instance). Arguments after `--` go to every
//! instance. The instances share random deployment keys unless
//! `RESETKIT_PAGES_KEY` / `RESETKIT_FINGERPRINT_KEY` are set, and a fresh
//! schema unless `--db-schema` is given. Runs until SIGTERM / Ctrl-C.
//!
//! ```sh
//! cargo build -p resetkit-portal --bins
//! DATABASE_URL=postgres://... target/debug/resetkit-portal-fleet --listen 127.0.0.1:18390 \
//!     -- --smtp 'smtp://127.0.0.1:12525?tls=none' --fast-hash
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use resetkit_portal::fleet::{Fleet, FleetOptions, random_schema, random_secrets};

/// Several portal processes on one PostgreSQL behind a round-robin proxy.
#[derive(Debug, Parser)]
#[command(name = "resetkit-portal-fleet", version)]
struct Cli {
    /// Where the proxy listens (the fleet's base URL is `http://` this address).
    #[arg(long, default_value = "127.0.0.1:18390")]
    listen: SocketAddr,
    /// How many portal processes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=16))]
    instances: u8,
    /// PostgreSQL URL shared by the instances.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Schema of the fleet's tables (default: a fresh `fleet_…` schema).
    #[arg(long)]
    db_schema: Option<String>,
    /// Arguments for every instance (after `--`).
    #[arg(last = true)]
    portal_args: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();
    let cli = Cli::parse();
    let portal = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("resetkit-portal"),
        Err(error) => {
            eprintln!("resetkit-portal-fleet: where am I? {error}");
            return ExitCode::from(2);
        }
    };
    if !portal.exists() {
        eprintln!(
            "resetkit-portal-fleet: {} not found: build it first (cargo build -p resetkit-portal --bins)",
            portal.display()
        );
        return ExitCode::from(2);
    }
    let mut secrets = random_secrets();
    for (name, value) in &mut secrets {
        if let Ok(set) = std::env::var(name.as_str()) {
            *value = set;
        }
    }
    let options = FleetOptions {
        portal,
        listen: cli.listen,
        instances: usize::from(cli.instances),
        database_url: cli.database_url,
        db_schema: cli.db_schema.unwrap_or_else(random_schema),
        args: cli.portal_args,
        secrets,
        ready_timeout: Duration::from_secs(120),
    };
    let fleet = match Fleet::start(options).await {
        Ok(fleet) => fleet,
        Err(error) => {
            eprintln!("resetkit-portal-fleet: {error}");
            return ExitCode::from(2);
        }
    };
    println!(
        "fleet of {} portal instances behind {} (round robin per request)",
        fleet.len(),
        fleet.url()
    );
    resetkit_portal::wait_for_signal().await;
    fleet.stop().await;
    ExitCode::SUCCESS
}
