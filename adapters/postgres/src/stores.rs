//! [`PgStores`]: every store over one pool and one schema.

use std::sync::Arc;

use resetkit::error::StoreError;
use sqlx::PgPool;

use crate::accounts::{PgAccounts, UsersTable};
use crate::events::PgEventLog;
use crate::ident::{ConfigError, Ident};
use crate::inbox::PgInbox;
use crate::outbox::PgOutbox;
use crate::templates::PgTemplateStore;
use crate::tokens::PgTokenStore;
use crate::util::QueueClock;

/// Every resetkit store on one pool, in one schema.
#[derive(Debug, Clone)]
pub struct PgStores {
    pool: PgPool,
    schema: Ident,
    /// Tokens and rate-limit hits.
    pub tokens: Arc<PgTokenStore>,
    /// Event log.
    pub events: Arc<PgEventLog>,
    /// Delivery outbox.
    pub outbox: Arc<PgOutbox>,
    /// Request inbox (pass it to the service builder's `inbox`).
    pub inbox: Arc<PgInbox>,
    /// Operator-edited email templates (migration 6).
    pub templates: Arc<PgTemplateStore>,
    /// Set once a host users table is mapped: `migrate` then does not
    /// create resetkit's own `accounts` table.
    host_table: Arc<std::sync::atomic::AtomicBool>,
}

impl PgStores {
    /// Stores in `schema` (validated: letters, digits, `_`).
    pub fn new(pool: PgPool, schema: &str) -> Result<Self, ConfigError> {
        let schema = Ident::for_setting("schema", schema)?;
        Ok(PgStores {
            tokens: Arc::new(PgTokenStore::new(pool.clone(), &schema)),
            events: Arc::new(PgEventLog::new(pool.clone(), &schema)),
            outbox: Arc::new(PgOutbox::new(pool.clone(), &schema)),
            inbox: Arc::new(PgInbox::new(pool.clone(), &schema)),
            templates: Arc::new(PgTemplateStore::new(pool.clone(), &schema)),
            pool,
            schema,
            host_table: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }

    /// Sets whose clock decides the inbox's and the outbox's due times and
    /// leases (default [`QueueClock::Database`]; [`QueueClock::Caller`] is
    /// for tests that move time by hand).
    pub fn with_queue_clock(mut self, clock: QueueClock) -> Self {
        self.outbox = Arc::new(PgOutbox::new(self.pool.clone(), &self.schema).with_clock(clock));
        self.inbox = Arc::new(PgInbox::new(self.pool.clone(), &self.schema).with_clock(clock));
        self
    }

    /// Applies pending migrations (see [`crate::migrate`]). After
    /// [`accounts_for`](Self::accounts_for) / [`verified_accounts_for`](Self::verified_accounts_for)
    /// mapped a host table, resetkit's own `accounts` table is not created.
    pub async fn migrate(&self) -> Result<Vec<i32>, StoreError> {
        let own = !self.host_table.load(std::sync::atomic::Ordering::SeqCst);
        crate::migrate::migrate_inner(&self.pool, &self.schema, i32::MAX, own).await
    }

    /// What the service's workers purge (tokens and rate-limit entries,
    /// events, finished mail): pass it to the builder's
    /// `retention_stores`.
    pub fn retention_stores(&self) -> resetkit::flow::RetentionStores {
        resetkit::flow::RetentionStores::new(self.tokens.clone(), self.events.clone())
            .with_outbox(self.outbox.clone())
    }

    /// What the operator console reads (timeline, rate-limit admin, the
    /// outbox's listing): pass it to `resetkit_axum::AdminConsole::builder`.
    pub fn console_stores(&self) -> resetkit::flow::ConsoleStores {
        resetkit::flow::ConsoleStores::new(self.events.clone(), self.tokens.clone())
            .with_outbox(self.outbox.clone())
    }

    /// The account directory on resetkit's own `accounts` table.
    pub fn own_accounts(&self) -> Result<Arc<PgAccounts>, ConfigError> {
        PgAccounts::resetkit_accounts(self.pool.clone(), &self.schema).map(Arc::new)
    }

    /// The account directory on the host's table (looked up with this
    /// schema's `canonical_identifier`; see [`UsersTable`]).
    /// Call it before [`migrate`](Self::migrate).
    pub fn accounts_for(&self, table: UsersTable) -> Result<Arc<PgAccounts>, ConfigError> {
        self.host_table.store(true, std::sync::atomic::Ordering::SeqCst);
        PgAccounts::new(self.pool.clone(), table.resetkit_schema(self.schema.as_str())).map(Arc::new)
    }

    /// [`accounts_for`](Self::accounts_for), verified against the catalog
    /// with the id type inferred ([`PgAccounts::connect`]).
    pub async fn verified_accounts_for(
        &self,
        table: UsersTable,
    ) -> Result<Arc<PgAccounts>, crate::VerifyError> {
        self.host_table.store(true, std::sync::atomic::Ordering::SeqCst);
        PgAccounts::connect(self.pool.clone(), table.resetkit_schema(self.schema.as_str()))
            .await
            .map(Arc::new)
    }

    /// The schema.
    pub fn schema(&self) -> &Ident {
        &self.schema
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
