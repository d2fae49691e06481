//! Shared helpers: time conversion, error mapping, SQL text.

use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use resetkit::error::StoreError;
use resetkit::token::TokenHash;
use sqlx::AssertSqlSafe;

use crate::ident::Ident;

/// `SystemTime` as stored (timestamptz; PostgreSQL keeps microseconds).
pub(crate) fn to_db(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

/// A stored timestamp back as `SystemTime`.
pub(crate) fn from_db(t: DateTime<Utc>) -> SystemTime {
    SystemTime::from(t)
}

/// Maps a sqlx error to a [`StoreError`] naming the store operation.
pub(crate) fn db_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match e {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt {
            operation,
            detail: e.to_string(),
        },
        sqlx::Error::Database(db) => match db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
            Some(pg) => StoreError::unavailable(operation, PgServerError::from_pg(pg)),
            None => StoreError::unavailable(operation, sqlx::Error::Database(db)),
        },
        other => StoreError::unavailable(operation, other),
    }
}

/// An error PostgreSQL reported, shown the way `psql` shows it: the
/// message, then its detail and hint, and the SQLSTATE. (sqlx's own
/// `Display` appends the line of PostgreSQL's C source that raised it and
/// leaves out the hint, e.g. "Perhaps you meant to reference the column
/// users.is_active".)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgServerError {
    /// The primary message.
    pub message: String,
    /// `DETAIL`, if any.
    pub detail: Option<String>,
    /// `HINT`, if any.
    pub hint: Option<String>,
    /// The SQLSTATE code, e.g. `42703`.
    pub code: String,
}

impl PgServerError {
    fn from_pg(pg: &sqlx::postgres::PgDatabaseError) -> Self {
        PgServerError {
            message: pg.message().to_owned(),
            detail: pg.detail().map(str::to_owned),
            hint: pg.hint().map(str::to_owned),
            code: pg.code().to_owned(),
        }
    }
}

impl std::fmt::Display for PgServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgreSQL: {}", self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, "; DETAIL: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; HINT: {hint}")?;
        }
        write!(f, " (SQLSTATE {})", self.code)
    }
}

impl std::error::Error for PgServerError {}

/// A corrupt-data error.
pub(crate) fn corrupt(operation: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        operation,
        detail: detail.into(),
    }
}

/// A stored SHA-256 (`bytea`) back as a [`TokenHash`].
pub(crate) fn token_hash(operation: &'static str, bytes: Vec<u8>) -> Result<TokenHash, StoreError> {
    let hash: [u8; 32] = bytes
        .try_into()
        .map_err(|_| corrupt(operation, "token hash is not 32 bytes"))?;
    Ok(TokenHash(hash))
}

/// SQL text prepared once per store; `__SCHEMA__` replaced by the quoted,
/// validated schema name.
#[derive(Clone)]
pub(crate) struct Sql(Arc<str>);

impl Sql {
    pub(crate) fn new(schema: &Ident, template: &str) -> Self {
        Sql(Arc::from(template.replace("__SCHEMA__", &schema.quoted())))
    }

    pub(crate) fn raw(text: String) -> Self {
        Sql(Arc::from(text))
    }

    /// For `sqlx::query`: the text is built only from constants and validated
    /// identifiers.
    pub(crate) fn q(&self) -> AssertSqlSafe<Arc<str>> {
        AssertSqlSafe(self.0.clone())
    }

    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.0
    }
}

/// `usize` limit as a bind parameter.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Runs a batched purge (`$1` the cut-off time, `$2` the batch size) and
/// returns how many rows it deleted.
pub(crate) async fn purge(
    pool: &sqlx::PgPool,
    sql: &Sql,
    operation: &'static str,
    before: SystemTime,
    batch: usize,
) -> Result<usize, StoreError> {
    let done = sqlx::query(sql.q())
        .bind(to_db(before))
        .bind(limit(batch))
        .execute(pool)
        .await
        .map_err(db_error(operation))?;
    Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
}

/// Whose clock decides the inbox's and the outbox's due times and leases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueClock {
    /// The database's `now()` (the default): every instance of a fleet
    /// reads the same clock, so a host whose clock is fast never takes a
    /// live worker's lease over early, and a slow one never writes a lease
    /// that has already run out. The `now` the service passes is ignored.
    #[default]
    Database,
    /// The `now` the caller passes (the service's `Clock`): for tests that
    /// move time by hand (the conformance suites, a `ManualClock`). A fleet
    /// must not use it.
    Caller,
}

impl QueueClock {
    /// The value bound to `COALESCE($n, now())`: `NULL` for the database's
    /// clock.
    pub(crate) fn bind(self, now: SystemTime) -> Option<DateTime<Utc>> {
        match self {
            QueueClock::Database => None,
            QueueClock::Caller => Some(to_db(now)),
        }
    }
}

/// A duration as seconds, for `$n * interval '1 second'`.
pub(crate) fn seconds(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

/// A runtime query with its arguments, as the helpers that bind a step's
/// columns take and return it.
pub(crate) type PgQuery<'q> =
    sqlx::query::Query<'q, sqlx::Postgres, <sqlx::Postgres as sqlx::Database>::Arguments>;

/// Where a store keeps its rows: its pool and its schema. Two stores with
/// the same schema in the same database (host, port, database name) see
/// the same tables, so one statement may write to both.
pub(crate) fn same_home(a: (&sqlx::PgPool, &str), b: (&sqlx::PgPool, &str)) -> bool {
    a.1 == b.1 && same_database(a.0, b.0)
}

/// Whether two pools reach the same database (host, port, database name).
pub(crate) fn same_database(a: &sqlx::PgPool, b: &sqlx::PgPool) -> bool {
    let (x, y) = (a.connect_options(), b.connect_options());
    x.get_host() == y.get_host() && x.get_port() == y.get_port() && x.get_database() == y.get_database()
}

/// `store` (a store's [`colocated`](resetkit::store::EventLog::colocated)
/// hook) as the PostgreSQL store `T` living in `schema` of `pool`'s
/// database, if it is one.
pub(crate) fn colocated<'a, T: PgHome + 'static>(
    store: Option<&'a dyn std::any::Any>,
    pool: &sqlx::PgPool,
    schema: &str,
) -> Option<&'a T> {
    store
        .and_then(|s| s.downcast_ref::<T>())
        .filter(|t| same_home(t.home(), (pool, schema)))
}

/// A store's pool and schema, for [`colocated`].
pub(crate) trait PgHome {
    fn home(&self) -> (&sqlx::PgPool, &str);
}

impl PgHome for crate::events::PgEventLog {
    fn home(&self) -> (&sqlx::PgPool, &str) {
        (&self.pool, self.schema.as_str())
    }
}

impl PgHome for crate::inbox::PgInbox {
    fn home(&self) -> (&sqlx::PgPool, &str) {
        (&self.pool, self.schema.as_str())
    }
}

impl PgHome for crate::outbox::PgOutbox {
    fn home(&self) -> (&sqlx::PgPool, &str) {
        (&self.pool, self.schema.as_str())
    }
}
