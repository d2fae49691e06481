//! Versioned migrations shipped in the crate and applied by an explicit
//! [`migrate`] call.
//!
//! Each migration runs in one transaction that first takes a
//! transaction-scoped advisory lock for the schema, so several instances may
//! call `migrate` at once: one applies, the others wait and then find
//! nothing left to do. Applied versions are recorded in
//! `<schema>.resetkit_migrations`.
//!
//! ```no_run
//! # async fn demo(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! use resetkit_postgres::{migrate, Ident};
//! let applied = migrate(&pool, &Ident::new("resetkit")?).await?;
//! println!("applied {applied:?}");
//! # Ok(()) }
//! ```

use resetkit::error::StoreError;
use sqlx::{PgPool, Row as _};

use crate::ident::Ident;
use crate::util::{Sql, db_error};

/// One shipped migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version, increasing from 1.
    pub version: i32,
    /// Short name.
    pub name: &'static str,
    /// SQL with `__SCHEMA__` placeholders (version 4 also has the case
    /// folding placeholders filled in from the core when it is applied).
    pub sql: &'static str,
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "rate_admit",
        sql: include_str!("../migrations/0002_rate_admit.sql"),
    },
    Migration {
        version: 3,
        name: "token_lifecycle",
        sql: include_str!("../migrations/0003_token_lifecycle.sql"),
    },
    Migration {
        version: 4,
        name: "identifier_matching",
        sql: include_str!("../migrations/0004_identifier_matching.sql"),
    },
    Migration {
        version: 5,
        name: "request_inbox",
        sql: include_str!("../migrations/0005_request_inbox.sql"),
    },
    // Version 5 is issue 12's (the request inbox).
    Migration {
        version: 6,
        name: "operator_console",
        sql: include_str!("../migrations/0006_operator_console.sql"),
    },
    Migration {
        version: 7,
        name: "fleet",
        sql: include_str!("../migrations/0007_fleet.sql"),
    },
    Migration {
        version: 8,
        name: "rate_window",
        sql: include_str!("../migrations/0008_rate_window.sql"),
    },
    Migration {
        version: 9,
        name: "overview",
        sql: include_str!("../migrations/0009_overview.sql"),
    },
    Migration {
        version: 10,
        name: "combined_steps",
        sql: include_str!("../migrations/0010_combined_steps.sql"),
    },
    Migration {
        version: 11,
        name: "finish_reset",
        sql: include_str!("../migrations/0011_finish_reset.sql"),
    },
];

const OP: &str = "migrate";

/// Creates the schema if needed and applies the migrations not applied yet;
/// returns the versions applied by this call. Safe to call concurrently from
/// several instances, and again at every start.
pub async fn migrate(pool: &PgPool, schema: &Ident) -> Result<Vec<i32>, StoreError> {
    migrate_up_to(pool, schema, i32::MAX).await
}

/// Like [`migrate`], for an application that maps resetkit onto its own
/// users table ([`crate::UsersTable`]): resetkit's own `<schema>.accounts`
/// table is not created. ([`crate::PgStores::migrate`] does this once
/// [`crate::PgStores::accounts_for`] mapped a host table.)
pub async fn migrate_without_own_accounts(pool: &PgPool, schema: &Ident) -> Result<Vec<i32>, StoreError> {
    migrate_inner(pool, schema, i32::MAX, false).await
}

/// The parts of the migrations that create resetkit's own accounts table
/// sit between these markers.
const OWN_ACCOUNTS_BEGIN: &str = "-- resetkit:own-accounts {";
const OWN_ACCOUNTS_END: &str = "-- resetkit:own-accounts }";

/// `sql` without its own-accounts sections.
pub(crate) fn without_own_accounts(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find(OWN_ACCOUNTS_BEGIN) {
        out.push_str(&rest[..start]);
        match rest[start..].find(OWN_ACCOUNTS_END) {
            Some(end) => rest = &rest[start + end + OWN_ACCOUNTS_END.len()..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Like [`migrate`], applying only versions up to `last_version` (to stage
/// an upgrade, or to build an older schema in an upgrade test).
pub async fn migrate_up_to(pool: &PgPool, schema: &Ident, last_version: i32) -> Result<Vec<i32>, StoreError> {
    migrate_inner(pool, schema, last_version, true).await
}

pub(crate) async fn migrate_inner(
    pool: &PgPool,
    schema: &Ident,
    last_version: i32,
    own_accounts: bool,
) -> Result<Vec<i32>, StoreError> {
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version <= last_version) {
        let mut tx = pool.begin().await.map_err(db_error(OP))?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('resetkit.migrate:' || $1, 0))")
            .bind(schema.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        let setup = Sql::new(
            schema,
            "CREATE SCHEMA IF NOT EXISTS __SCHEMA__; \
             CREATE TABLE IF NOT EXISTS __SCHEMA__.resetkit_migrations ( \
                 version integer PRIMARY KEY, name text NOT NULL, \
                 applied_at timestamptz NOT NULL DEFAULT now())",
        );
        sqlx::raw_sql(setup.q())
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        let done = Sql::new(
            schema,
            "SELECT count(*) FROM __SCHEMA__.resetkit_migrations WHERE version = $1",
        );
        let count: i64 = sqlx::query(done.q())
            .bind(migration.version)
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(db_error(OP))?;
        if count > 0 {
            tx.commit().await.map_err(db_error(OP))?;
            continue;
        }
        let sql = if own_accounts {
            migration.sql.to_owned()
        } else {
            without_own_accounts(migration.sql)
        };
        sqlx::raw_sql(Sql::new(schema, &crate::casefold::expand(&sql)).q())
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        let record = Sql::new(
            schema,
            "INSERT INTO __SCHEMA__.resetkit_migrations (version, name) VALUES ($1, $2)",
        );
        sqlx::query(record.q())
            .bind(migration.version)
            .bind(migration.name)
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        tx.commit().await.map_err(db_error(OP))?;
        tracing::info!(schema = %schema, version = migration.version, name = migration.name, "resetkit migration applied");
        applied.push(migration.version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_accounts_sections_are_marked_and_strippable() {
        let stripped: String = MIGRATIONS.iter().map(|m| without_own_accounts(m.sql)).collect();
        assert!(!stripped.contains(".accounts"), "no accounts DDL left");
        assert!(stripped.contains("CREATE TABLE __SCHEMA__.tokens"));
        assert!(MIGRATIONS[0].sql.contains("CREATE TABLE __SCHEMA__.accounts"));
    }

    #[test]
    fn versions_increase_and_sql_uses_the_placeholder() {
        // Version 3 is another branch's; versions only have to increase.
        assert_eq!(MIGRATIONS[0].version, 1);
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        for m in MIGRATIONS {
            assert!(m.sql.contains("__SCHEMA__."));
        }
        let s = Sql::new(
            &Ident::new("rk").unwrap_or_else(|_| unreachable!()),
            MIGRATIONS[0].sql,
        );
        assert!(!s.text().contains("__SCHEMA__"));
    }
}
