//! [`PgStores`]: the four stores over one pool and one schema.

use std::sync::Arc;

use resetkit::error::StoreError;
use sqlx::PgPool;

use crate::accounts::{PgAccounts, UsersTable};
use crate::events::PgEventLog;
use crate::ident::{ConfigError, Ident};
use crate::outbox::PgOutbox;
use crate::tokens::PgTokenStore;

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
}

impl PgStores {
    /// Stores in `schema` (validated: letters, digits, `_`).
    pub fn new(pool: PgPool, schema: &str) -> Result<Self, ConfigError> {
        let schema = Ident::for_setting("schema", schema)?;
        Ok(PgStores {
            tokens: Arc::new(PgTokenStore::new(pool.clone(), &schema)),
            events: Arc::new(PgEventLog::new(pool.clone(), &schema)),
            outbox: Arc::new(PgOutbox::new(pool.clone(), &schema)),
            pool,
            schema,
        })
    }

    /// Applies pending migrations (see [`crate::migrate`]).
    pub async fn migrate(&self) -> Result<Vec<i32>, StoreError> {
        crate::migrate(&self.pool, &self.schema).await
    }

    /// The account directory on resetkit's own `accounts` table.
    pub fn own_accounts(&self) -> Result<Arc<PgAccounts>, ConfigError> {
        PgAccounts::resetkit_accounts(self.pool.clone(), &self.schema).map(Arc::new)
    }

    /// The account directory on the host's table (looked up with this
    /// schema's `canonical_identifier`; see [`UsersTable`]).
    pub fn accounts_for(&self, table: UsersTable) -> Result<Arc<PgAccounts>, ConfigError> {
        PgAccounts::new(self.pool.clone(), table.resetkit_schema(self.schema.as_str())).map(Arc::new)
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
