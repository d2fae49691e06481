//! [`PgAccounts`]: the [`AccountDirectory`] over a users table, mapped by
//! configuration ([`UsersTable`]): the host's existing table, or resetkit's
//! own `<schema>.accounts` for new applications.
//!
//! Every table and column name is validated ([`crate::Ident`]) and quoted.
//! Email and username lookups compare
//! `<resetkit schema>.canonical_identifier(column) = $1`: the SQL function
//! of migration 4, which computes exactly the core's canonical form (NFKC,
//! full Unicode case folding, trimmed; see
//! [`resetkit::identifier::canonicalize`]), so PostgreSQL finds the same
//! accounts as the in-memory directory (`STRASSE@…` finds `straße@…`, a
//! stored `Ｆrank@…` is found by `frank@…`). Rows are then re-checked with
//! the core's function.
//!
//! A host table should index those expressions, with the schema resetkit
//! was migrated into (default `resetkit`):
//!
//! ```sql
//! CREATE INDEX users_email_canonical ON users (resetkit.canonical_identifier(email));
//! CREATE INDEX users_username_canonical ON users (resetkit.canonical_identifier(username));
//! ```
//!
//! (`REINDEX` them if a later resetkit migration replaces the function.)

use async_trait::async_trait;
use resetkit::account::{Account, AccountDirectory, AccountId};
use resetkit::error::StoreError;
use resetkit::event::Event;
use resetkit::hasher::PasswordHash;
use resetkit::identifier::{Identifier, canonicalize};
use resetkit::store::steps::compose_find_or_settle;
use resetkit::store::{EventLog, Settle};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row as _};

use crate::events::{EventColumns, PgEventLog};
use crate::ident::{ConfigError, Ident};
use crate::inbox::PgInbox;
use crate::util::{Sql, colocated, db_error};

/// SQL type of the id column; ids travel as text in resetkit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IdType {
    /// `text` / `varchar`.
    #[default]
    Text,
    /// `bigint` / `integer` / `serial`.
    BigInt,
    /// `uuid`.
    Uuid,
}

/// Where the accounts live and which columns hold what. Names are checked
/// when [`PgAccounts::new`] builds the directory; the error names the setting.
#[derive(Debug, Clone)]
pub struct UsersTable {
    resetkit_schema: String,
    pub(crate) schema: Option<String>,
    pub(crate) table: String,
    pub(crate) id: String,
    pub(crate) id_type: IdType,
    /// Whether `id_column` set the type (else [`PgAccounts::connect`] infers it).
    pub(crate) id_type_explicit: bool,
    username: String,
    email: String,
    password_hash: String,
    email_confirmed: Option<String>,
    disabled: Option<(String, bool)>,
    owner: Option<String>,
}

macro_rules! column_setter {
    ($(#[$doc:meta])* $name:ident => $field:ident) => {
        $(#[$doc])*
        pub fn $name(mut self, column: &str) -> Self {
            self.$field = column.to_owned();
            self
        }
    };
}

impl UsersTable {
    /// The host table `table` with columns `id` (text), `username`, `email`
    /// and `password_hash`; every account enabled and confirmed unless the
    /// flag columns are set.
    pub fn new(table: &str) -> Self {
        UsersTable {
            resetkit_schema: "resetkit".into(),
            schema: None,
            table: table.to_owned(),
            id: "id".into(),
            id_type: IdType::Text,
            id_type_explicit: false,
            username: "username".into(),
            email: "email".into(),
            password_hash: "password_hash".into(),
            email_confirmed: None,
            disabled: None,
            owner: None,
        }
    }

    /// resetkit's own `accounts` table in `schema` (created by the migrations).
    pub fn resetkit_accounts(schema: &Ident) -> Self {
        UsersTable::new("accounts")
            .resetkit_schema(schema.as_str())
            .schema(schema.as_str())
            .email_confirmed_column("email_confirmed")
            .disabled_column("disabled")
            .owner_column("owner")
    }

    /// The schema resetkit was migrated into, whose `canonical_identifier`
    /// function lookups use (default `resetkit`; [`crate::PgStores`] sets
    /// its own).
    pub fn resetkit_schema(mut self, schema: &str) -> Self {
        self.resetkit_schema = schema.to_owned();
        self
    }

    /// The table's schema (default: the connection's search path).
    pub fn schema(mut self, schema: &str) -> Self {
        self.schema = Some(schema.to_owned());
        self
    }

    /// The id column and its SQL type. [`PgAccounts::connect`] infers the
    /// type from the catalog when this is not called, and refuses a type
    /// that differs from the column's.
    pub fn id_column(mut self, column: &str, id_type: IdType) -> Self {
        self.id = column.to_owned();
        self.id_type = id_type;
        self.id_type_explicit = true;
        self
    }

    /// The mapped columns: (setting, column, what it must hold).
    pub(crate) fn mapped_columns(&self) -> Vec<(&'static str, &str, crate::verify::Expect)> {
        use crate::verify::Expect;
        let mut columns = vec![
            ("users.id_column", self.id.as_str(), Expect::Id(self.id_type)),
            ("users.username_column", self.username.as_str(), Expect::Text),
            ("users.email_column", self.email.as_str(), Expect::Text),
            (
                "users.password_hash_column",
                self.password_hash.as_str(),
                Expect::Text,
            ),
        ];
        if let Some(c) = &self.email_confirmed {
            columns.push(("users.email_confirmed_column", c.as_str(), Expect::Boolean));
        }
        match &self.disabled {
            Some((c, false)) => columns.push(("users.disabled_column", c.as_str(), Expect::Boolean)),
            Some((c, true)) => columns.push(("users.active_column", c.as_str(), Expect::Boolean)),
            None => {}
        }
        if let Some(c) = &self.owner {
            columns.push(("users.owner_column", c.as_str(), Expect::Any));
        }
        columns
    }

    column_setter!(/// The username column.
        username_column => username);
    column_setter!(/// The email column (nullable).
        email_column => email);
    column_setter!(/// The password-hash column (text, nullable): argon2id PHC strings, and
        /// the legacy formats a previous framework wrote (bcrypt, Django
        /// `pbkdf2_sha256$…`, PBKDF2 / scrypt PHC), verified at sign-in.
        password_hash_column => password_hash);

    /// A boolean column: email address confirmed.
    pub fn email_confirmed_column(mut self, column: &str) -> Self {
        self.email_confirmed = Some(column.to_owned());
        self
    }

    /// A boolean column: account disabled.
    pub fn disabled_column(mut self, column: &str) -> Self {
        self.disabled = Some((column.to_owned(), false));
        self
    }

    /// A boolean column: account active (disabled = not active).
    pub fn active_column(mut self, column: &str) -> Self {
        self.disabled = Some((column.to_owned(), true));
        self
    }

    /// The owner column (any type; read as text).
    pub fn owner_column(mut self, column: &str) -> Self {
        self.owner = Some(column.to_owned());
        self
    }
}

struct Queries {
    by_email: Sql,
    by_username: Sql,
    /// The lookups that settle an unknown identifier's request in the same
    /// statement (`settle_request`, when nothing is found).
    by_email_or_settle: Sql,
    by_username_or_settle: Sql,
    by_id: Sql,
    set_password: Sql,
    upsert: Sql,
    /// The row select (`SELECT … FROM <table>`) and the quoted id column,
    /// for statements of other stores that read an account by id
    /// ([`PgAccounts::by_id_of`]).
    select: String,
    id: String,
    /// `UPDATE <table> SET <password column> =` for [`PgAccounts::set_password_of`].
    update_password: String,
}

/// The account directory in PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct PgAccounts {
    pub(crate) pool: PgPool,
    pub(crate) table: std::sync::Arc<UsersTable>,
    id_type: IdType,
    sql: std::sync::Arc<Queries>,
}

impl std::fmt::Debug for PgAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAccounts").finish_non_exhaustive()
    }
}

impl PgAccounts {
    /// A directory over `table`; fails naming the first invalid setting.
    pub fn new(pool: PgPool, table: UsersTable) -> Result<Self, ConfigError> {
        let col = |setting, name: &str| Ident::for_setting(setting, name).map(|i| i.quoted());
        let opt = |setting, name: &Option<String>| name.as_deref().map(|n| col(setting, n)).transpose();
        let target = match &table.schema {
            Some(s) => format!(
                "{}.{}",
                col("users.schema", s)?,
                col("users.table", &table.table)?
            ),
            None => col("users.table", &table.table)?,
        };
        let resetkit = col("users.resetkit_schema", &table.resetkit_schema)?;
        let canonical = format!("{resetkit}.canonical_identifier");
        let id = col("users.id_column", &table.id)?;
        let username = col("users.username_column", &table.username)?;
        let email = col("users.email_column", &table.email)?;
        let password = col("users.password_hash_column", &table.password_hash)?;
        let confirmed = opt("users.email_confirmed_column", &table.email_confirmed)?;
        let owner = opt("users.owner_column", &table.owner)?;
        let disabled = match &table.disabled {
            Some((c, negated)) => Some((col("users.disabled_column", c)?, *negated)),
            None => None,
        };
        let cast = match table.id_type {
            IdType::Text => "$1",
            IdType::BigInt => "$1::bigint",
            IdType::Uuid => "$1::uuid",
        };
        let select = format!(
            "SELECT {id}::text AS id, {username}::text AS username, {email}::text AS email, \
             {} AS email_confirmed, {} AS disabled, {} AS owner, {password}::text AS password_hash \
             FROM {target}",
            confirmed
                .as_deref()
                .map_or("true".to_owned(), |c| format!("coalesce({c}, false)")),
            match &disabled {
                Some((c, false)) => format!("coalesce({c}, false)"),
                Some((c, true)) => format!("NOT coalesce({c}, false)"),
                None => "false".to_owned(),
            },
            owner
                .as_deref()
                .map_or("NULL::text".to_owned(), |c| format!("{c}::text")),
        );
        let mut cols = vec![id.clone(), username.clone(), email.clone(), password.clone()];
        let mut vals = vec![cast.to_owned(), "$2".into(), "$3".into(), "$4".into()];
        if let Some(c) = &confirmed {
            cols.push(c.clone());
            vals.push("$5".into());
        }
        if let Some((c, negated)) = &disabled {
            cols.push(c.clone());
            vals.push(if *negated { "NOT $6" } else { "$6" }.into());
        }
        if let Some(c) = &owner {
            cols.push(c.clone());
            vals.push("$7".into());
        }
        let updates: Vec<String> = cols
            .iter()
            .skip(1)
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        let or_settle = |found: &str| {
            Sql::raw(format!(
                "WITH found AS MATERIALIZED ({found}) \
                 SELECT id, username, email, email_confirmed, disabled, owner, password_hash FROM found \
                 UNION ALL \
                 SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL \
                 FROM {resetkit}.settle_request($2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 WHERE NOT EXISTS (SELECT 1 FROM found)"
            ))
        };
        let by_email = format!("{select} WHERE {canonical}({email}) = $1");
        let by_username = format!("{select} WHERE {canonical}({username}) = $1 ORDER BY 1");
        let sql = Queries {
            by_email_or_settle: or_settle(&by_email),
            by_username_or_settle: or_settle(&by_username),
            by_email: Sql::raw(by_email),
            by_username: Sql::raw(by_username),
            by_id: Sql::raw(format!("{select} WHERE {id} = {cast}")),
            select: select.clone(),
            id: id.clone(),
            update_password: format!("UPDATE {target} SET {password} ="),
            set_password: Sql::raw(format!("UPDATE {target} SET {password} = $2 WHERE {id} = {cast}")),
            // Parameters a table does not map are bound but unused; cast them
            // so PostgreSQL knows their types.
            upsert: Sql::raw(format!(
                "INSERT INTO {target} ({}) SELECT {} FROM (SELECT $5::boolean, $6::boolean, $7::text) AS unused \
                 ON CONFLICT ({id}) DO UPDATE SET {}",
                cols.join(", "),
                vals.join(", "),
                updates.join(", ")
            )),
        };
        Ok(PgAccounts {
            pool,
            id_type: table.id_type,
            table: std::sync::Arc::new(table),
            sql: std::sync::Arc::new(sql),
        })
    }

    /// resetkit's own accounts table in `schema`.
    pub fn resetkit_accounts(pool: PgPool, schema: &Ident) -> Result<Self, ConfigError> {
        Self::new(pool, UsersTable::resetkit_accounts(schema))
    }

    /// Inserts or updates an account, writing the mapped columns only (for
    /// resetkit's own table and for tests; a host table with other required
    /// columns is written by the host).
    pub async fn upsert(&self, account: &Account) -> Result<(), StoreError> {
        const OP: &str = "accounts.upsert";
        sqlx::query(self.sql.upsert.q())
            .bind(&account.id.0)
            .bind(&account.username)
            .bind(account.email.as_deref())
            .bind(account.password_hash.as_ref().map(PasswordHash::expose))
            .bind(account.email_confirmed)
            .bind(account.disabled)
            .bind(account.owner.as_deref())
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(())
    }

    /// Whether `id` can be a value of the id column (otherwise no account has it).
    fn id_fits(&self, id: &AccountId) -> bool {
        match self.id_type {
            IdType::Text => true,
            IdType::BigInt => id.0.parse::<i64>().is_ok(),
            IdType::Uuid => {
                let hex: String = id.0.chars().filter(|c| *c != '-').collect();
                hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
            }
        }
    }

    /// A subquery reading the account whose id is the text `id_expr` (a
    /// column of the enclosing statement, e.g. a token's `account_id`),
    /// with the columns [`account_from_row`] reads. The text is cast to the
    /// id column's type only when it fits it (what [`Self::id_fits`]
    /// checks), so an id that cannot be one finds no row instead of failing
    /// the statement.
    pub(crate) fn by_id_of(&self, id_expr: &str) -> String {
        format!(
            "{} WHERE {} = {} LIMIT 1",
            self.sql.select,
            self.sql.id,
            self.id_of(id_expr)
        )
    }

    /// An `UPDATE` (for a data-modifying `WITH` of another store's
    /// statement) writing the password hash `hash_expr` to the account
    /// whose id is the text `id_expr`, guarded like [`Self::by_id_of`];
    /// `RETURNING 1` per row written.
    pub(crate) fn set_password_of(&self, id_expr: &str, hash_expr: &str) -> String {
        format!(
            "{} {hash_expr} WHERE {} = {} RETURNING 1",
            self.sql.update_password,
            self.sql.id,
            self.id_of(id_expr)
        )
    }

    /// The text `id_expr` as a value of the id column, or NULL when it
    /// cannot be one.
    fn id_of(&self, id_expr: &str) -> String {
        match self.id_type {
            IdType::Text => id_expr.to_owned(),
            IdType::BigInt => format!(
                "(CASE WHEN {id_expr} ~ '^[-+]?[0-9]{{1,19}}$' THEN                  CASE WHEN {id_expr}::numeric BETWEEN -9223372036854775808 AND 9223372036854775807                  THEN {id_expr}::bigint END END)"
            ),
            IdType::Uuid => format!(
                "(CASE WHEN replace({id_expr}, '-', '') ~ '^[0-9a-fA-F]{{32}}$'                  THEN replace({id_expr}, '-', '')::uuid END)"
            ),
        }
    }

    /// Whether this directory's table is in `pool`'s database (so that one
    /// statement can read it with resetkit's tables).
    pub(crate) fn same_database(&self, pool: &PgPool) -> bool {
        crate::util::same_database(&self.pool, pool)
    }

    async fn fetch(&self, op: &'static str, sql: &Sql, value: &str) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(sql.q())
            .bind(value)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error(op))?;
        rows.iter().map(|r| account_from_row(op, r)).collect()
    }
}

pub(crate) fn account_from_row(op: &'static str, row: &PgRow) -> Result<Account, StoreError> {
    let id: String = row.try_get("id").map_err(db_error(op))?;
    let username: String = row.try_get("username").map_err(db_error(op))?;
    let email: Option<String> = row.try_get("email").map_err(db_error(op))?;
    let mut account = Account::new(id, username, "")
        .with_email(email)
        .with_email_confirmed(row.try_get("email_confirmed").map_err(db_error(op))?)
        .with_disabled(row.try_get("disabled").map_err(db_error(op))?);
    let owner: Option<String> = row.try_get("owner").map_err(db_error(op))?;
    if let Some(owner) = owner {
        account = account.with_owner(owner);
    }
    let hash: Option<String> = row.try_get("password_hash").map_err(db_error(op))?;
    if let Some(hash) = hash {
        account = account.with_password_hash(PasswordHash::from_phc(hash));
    }
    Ok(account)
}

/// The account columns of a row that joined one ([`PgAccounts::by_id_of`]
/// in a `LEFT JOIN`): `None` when no account matched.
pub(crate) fn joined_account(op: &'static str, row: &PgRow) -> Result<Option<Account>, StoreError> {
    let id: Option<String> = row.try_get("id").map_err(db_error(op))?;
    id.map(|_| account_from_row(op, row)).transpose()
}

#[async_trait]
impl AccountDirectory for PgAccounts {
    async fn find_by_email(&self, canonical_email: &str) -> Result<Vec<Account>, StoreError> {
        let found = self
            .fetch("accounts.find_by_email", &self.sql.by_email, canonical_email)
            .await?;
        Ok(found
            .into_iter()
            .filter(|a| {
                a.email
                    .as_deref()
                    .is_some_and(|e| canonicalize(e) == canonical_email)
            })
            .collect())
    }

    async fn find_by_username(&self, canonical_username: &str) -> Result<Option<Account>, StoreError> {
        let found = self
            .fetch(
                "accounts.find_by_username",
                &self.sql.by_username,
                canonical_username,
            )
            .await?;
        Ok(found
            .into_iter()
            .find(|a| canonicalize(&a.username) == canonical_username))
    }

    /// One statement when the inbox and the log are in the schema this
    /// directory's lookups use (`UsersTable::resetkit_schema`) in the same
    /// database; else the composed default.
    async fn find_or_settle(
        &self,
        identifier: &Identifier,
        unknown: Vec<Event>,
        log: &dyn EventLog,
        settle: Settle<'_>,
    ) -> Result<Vec<Account>, StoreError> {
        const OP: &str = "accounts.find_or_settle";
        let schema = self.table.resetkit_schema.as_str();
        let own = colocated::<PgEventLog>(log.colocated(), &self.pool, schema).is_some()
            && colocated::<PgInbox>(settle.inbox.colocated(), &self.pool, schema).is_some();
        if !own {
            return compose_find_or_settle(self, identifier, unknown, log, settle).await;
        }
        let sql = match identifier {
            Identifier::Email(_) => &self.sql.by_email_or_settle,
            Identifier::Username(_) => &self.sql.by_username_or_settle,
        };
        let query = sqlx::query(sql.q())
            .bind(identifier.as_str())
            .bind(settle.id)
            .bind(crate::inbox::attempt(settle.attempt));
        let rows = EventColumns::new(&unknown)
            .bind(query)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error(OP))?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            // The settled marker (nothing found) has no id.
            if row
                .try_get::<Option<String>, _>("id")
                .map_err(db_error(OP))?
                .is_some()
            {
                found.push(account_from_row(OP, row)?);
            }
        }
        let matched = !found.is_empty();
        let wanted = identifier.as_str();
        let found: Vec<Account> = match identifier {
            Identifier::Email(_) => found
                .into_iter()
                .filter(|a| a.email.as_deref().is_some_and(|e| canonicalize(e) == wanted))
                .collect(),
            Identifier::Username(_) => found
                .into_iter()
                .find(|a| canonicalize(&a.username) == wanted)
                .into_iter()
                .collect(),
        };
        if matched && found.is_empty() {
            // Rows the SQL matched but the core's canonical form does not:
            // unknown after all, and not settled by the statement.
            settle
                .inbox
                .settle(settle.id, settle.attempt, unknown, log)
                .await?;
        }
        Ok(found)
    }

    fn colocated(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        if !self.id_fits(id) {
            return Ok(None);
        }
        let found = self.fetch("accounts.find_by_id", &self.sql.by_id, &id.0).await?;
        Ok(found.into_iter().next())
    }

    async fn set_password_hash(&self, id: &AccountId, hash: &PasswordHash) -> Result<(), StoreError> {
        const OP: &str = "accounts.set_password_hash";
        let done = if self.id_fits(id) {
            sqlx::query(self.sql.set_password.q())
                .bind(&id.0)
                .bind(hash.expose())
                .execute(&self.pool)
                .await
                .map_err(db_error(OP))?
                .rows_affected()
        } else {
            0
        };
        if done == 0 {
            return Err(StoreError::NotFound {
                operation: OP,
                what: format!("account `{id}`"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn invalid_names_are_refused_naming_the_setting() {
        let pool = sqlx::postgres::PgPoolOptions::new().connect_lazy("postgres://x@127.0.0.1:1/x");
        let Ok(pool) = pool else { return };
        let err = PgAccounts::new(pool.clone(), UsersTable::new("users").email_column("email; --")).err();
        assert!(err.is_some_and(|e| e.to_string().contains("users.email_column")));
        let err = PgAccounts::new(pool, UsersTable::new("users").schema("a.b")).err();
        assert!(err.is_some_and(|e| e.to_string().contains("users.schema")));
    }
}
