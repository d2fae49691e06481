//! # resetkit-postgres
//!
//! PostgreSQL implementations of resetkit's stores, on sqlx with runtime
//! queries only (a fresh clone builds offline, without a database):
//!
//! - [`PgTokenStore`] ([`TokenStore`](resetkit::store::TokenStore)): tokens by
//!   SHA-256, consume-once in one statement, rate-limit hits counted exactly
//!   across instances, purge in batches;
//! - [`PgEventLog`] ([`EventLog`](resetkit::store::EventLog));
//! - [`PgOutbox`] ([`Outbox`](resetkit::store::Outbox)): claims with
//!   `FOR UPDATE SKIP LOCKED` and leases, retries recorded in the row;
//! - [`PgAccounts`] ([`AccountDirectory`](resetkit::account::AccountDirectory)):
//!   maps onto the host's users table by configuration ([`UsersTable`]), or
//!   uses resetkit's own `accounts` table.
//!
//! resetkit's tables live in one schema (default `resetkit`) created by
//! versioned migrations that [`migrate`] applies; call it at start-up
//! (several instances may do so at once). resetkit's own `accounts` table
//! is created only for applications without a users table of their own
//! ([`migrate_without_own_accounts`], or [`PgStores::migrate`] after
//! [`PgStores::accounts_for`]).
//!
//! **Sensitive tables.** `tokens` holds only hashes, but `outbox` holds
//! email bodies with live reset links until they are sent (they are blanked
//! once sent or given up): grant and back it up like a password table.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use resetkit_postgres::{PgStores, UsersTable};
//! let pool = sqlx::PgPool::connect("postgres://app@db.example/app").await?;
//! let stores = PgStores::new(pool, "resetkit")?;
//! // Map onto the host's own users table, checked against the catalog (the
//! // id column's type is inferred; a wrong column is named with the fix):
//! let users = UsersTable::new("users").email_column("email_address").active_column("is_active");
//! let accounts = stores.verified_accounts_for(users).await?;
//! // With a host table mapped, `migrate` does not create `resetkit.accounts`.
//! stores.migrate().await?;
//! # let _ = accounts; Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod accounts;
mod casefold;
mod event_codec;
mod events;
mod ident;
mod inbox;
mod migrate;
mod outbox;
mod stores;
mod templates;
mod tokens;
mod util;
mod verify;

pub use accounts::{IdType, PgAccounts, UsersTable};
pub use events::PgEventLog;
pub use ident::{ConfigError, Ident};
pub use inbox::PgInbox;
pub use migrate::{MIGRATIONS, Migration, migrate, migrate_up_to, migrate_without_own_accounts};
pub use outbox::PgOutbox;
pub use stores::PgStores;
pub use templates::PgTemplateStore;
pub use tokens::PgTokenStore;
pub use util::{PgServerError, QueueClock};
pub use verify::VerifyError;
