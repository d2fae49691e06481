//! The harness's in-process scenario suite with PostgreSQL stores (tokens,
//! events, outbox, accounts) and the SMTP mailer: every scenario passes.
//! Each scenario gets its own schema. (Here rather than in
//! `resetkit-postgres`, whose tests need no web or CLI dependency.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use resetkit::ResetService;
use resetkit::account::{Account, AccountDirectory, AccountId};
use resetkit::delivery::DeliveryMode;
use resetkit::error::StoreError;
use resetkit::hasher::PasswordHash;
use resetkit::mail::Mailer;
use resetkit_harness::report::NoProgress;
use resetkit_harness::target::{Target, TargetAccounts, TargetConfig, TargetFactory};
use resetkit_harness::{runner, scenarios};
use resetkit_postgres::{Ident, PgAccounts, PgStores};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The database, or a loud skip (a failure with `RESETKIT_REQUIRE_DB=1`).
fn database_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("RESETKIT_REQUIRE_DB").is_ok_and(|v| v == "1") => {
            panic!("{test}: DATABASE_URL is not set but RESETKIT_REQUIRE_DB=1 requires a database")
        }
        _ => {
            eprintln!(
                "\n!!!!! SKIPPED {test}: DATABASE_URL is not set. Run `eval \"$(scripts/start-postgres.sh)\"` \
                 first (set RESETKIT_REQUIRE_DB=1 to make this a failure) !!!!!\n"
            );
            None
        }
    }
}

fn random_schema() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "rk_scen_{:x}_{}_{}",
        nanos & 0xffff_ffff_ffff,
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// `PgAccounts` seen as the harness's writable directory.
struct Accounts(Arc<PgAccounts>);

#[async_trait]
impl AccountDirectory for Accounts {
    async fn find_by_email(&self, canonical_email: &str) -> Result<Vec<Account>, StoreError> {
        self.0.find_by_email(canonical_email).await
    }
    async fn find_by_username(&self, canonical_username: &str) -> Result<Option<Account>, StoreError> {
        self.0.find_by_username(canonical_username).await
    }
    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.0.find_by_id(id).await
    }
    async fn set_password_hash(&self, id: &AccountId, hash: &PasswordHash) -> Result<(), StoreError> {
        self.0.set_password_hash(id, hash).await
    }
}

#[async_trait]
impl TargetAccounts for Accounts {
    async fn upsert(&self, account: &Account) -> Result<(), StoreError> {
        self.0.upsert(account).await
    }
}

struct PgTarget {
    pool: PgPool,
    schemas: Mutex<Vec<Ident>>,
}

#[async_trait]
impl TargetFactory for PgTarget {
    fn describe(&self) -> String {
        "PostgreSQL stores + SmtpMailer to the fake server".into()
    }

    async fn build(&self, _scenario: &str, config: &TargetConfig) -> Result<Target, String> {
        let schema = Ident::new(&random_schema()).map_err(|e| e.to_string())?;
        let stores = PgStores::new(self.pool.clone(), schema.as_str())
            .map_err(|e| e.to_string())?
            .with_queue_clock(resetkit_postgres::QueueClock::Caller);
        if let Ok(mut schemas) = self.schemas.lock() {
            schemas.push(schema);
        }
        stores.migrate().await.map_err(|e| e.to_string())?;
        let accounts = Arc::new(Accounts(stores.own_accounts().map_err(|e| e.to_string())?));
        let mailer: Arc<dyn Mailer> = Arc::new(config.smtp_mailer()?);
        let mut builder = config
            .apply(ResetService::builder())
            .accounts(config.with_faults(accounts.clone()))
            .tokens(stores.tokens.clone())
            .events(stores.events.clone())
            .mailer(mailer);
        if config.delivery == DeliveryMode::Outbox {
            builder = builder.outbox(stores.outbox.clone());
        }
        let service = builder.build().map_err(|e| e.to_string())?;
        Ok(Target {
            service,
            accounts,
            events: stores.events.clone(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes_with_postgres_stores() {
    let Some(url) = database_url("every_scenario_passes_with_postgres_stores") else {
        return;
    };
    let pool = PgPoolOptions::new()
        .max_connections(25)
        .acquire_timeout(Duration::from_secs(20))
        .connect(&url)
        .await
        .expect("connect to DATABASE_URL");
    let target = PgTarget {
        pool: pool.clone(),
        schemas: Mutex::new(Vec::new()),
    };
    let all = scenarios::all();
    let report = runner::run(&target, &all, true, &mut NoProgress).await;
    let schemas = target.schemas.lock().map(|s| s.clone()).unwrap_or_default();
    for schema in schemas {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            schema.quoted()
        )))
        .execute(&pool)
        .await;
    }
    let problems = report.non_passing();
    assert!(
        problems.is_empty(),
        "{} of {} scenarios did not pass:\n{}",
        problems.len(),
        all.len(),
        problems.join("\n")
    );
    println!(
        "{} scenarios passed with PostgreSQL stores in {:?}",
        report.results.len(),
        report.duration
    );
}
