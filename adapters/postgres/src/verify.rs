//! Start-up verification of a mapped users table against the catalog.
//!
//! A mapping that does not fit the host's table otherwise surfaces late:
//! a `bigint` id mapped as text mails links that then fail as
//! "Unavailable" (`operator does not exist: bigint = text`), and a wrong
//! column name fails on the first request. [`PgAccounts::verify`] reads the
//! table's columns and types from `information_schema` and refuses with an
//! error naming the setting, the column, its type and the fix;
//! [`PgAccounts::connect`] also infers the id column's type when
//! `id_column` did not set it.
//!
//! ```no_run
//! # async fn demo(pool: sqlx::PgPool) -> Result<(), resetkit_postgres::VerifyError> {
//! use resetkit_postgres::{PgAccounts, UsersTable};
//! // `users(id bigint, username text, email text, password_hash text, is_active boolean)`
//! let accounts = PgAccounts::connect(pool, UsersTable::new("users").active_column("is_active")).await?;
//! # let _ = accounts; Ok(()) }
//! ```

use resetkit::error::StoreError;
use sqlx::Row as _;

use crate::accounts::{IdType, PgAccounts, UsersTable};
use crate::ident::ConfigError;
use crate::util::db_error;

/// What a mapped column must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    Id(IdType),
    Text,
    Boolean,
    Any,
}

/// Why a users table does not fit its mapping.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A setting is not a valid name.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The table does not exist (where the connection looks).
    #[error(
        "users table `{table}` (`users.table`/`users.schema`) does not exist for this connection \
         (schema: {schema}); create it, or set the schema with `UsersTable::schema`"
    )]
    TableMissing {
        /// The table.
        table: String,
        /// The schema searched (`search_path` when none was set).
        schema: String,
    },
    /// A mapped column does not exist.
    #[error(
        "column `{column}` ({setting}) does not exist in table `{table}`{suggestion}; its columns are: {columns}"
    )]
    ColumnMissing {
        /// The setting naming it, e.g. `users.active_column`.
        setting: &'static str,
        /// The configured column.
        column: String,
        /// The table.
        table: String,
        /// `; did you mean `is_active`?` when a column is close.
        suggestion: String,
        /// The table's columns.
        columns: String,
    },
    /// A mapped column has a type the mapping cannot use.
    #[error("column `{column}` ({setting}) of table `{table}` is `{found}`, but {problem}")]
    WrongType {
        /// The setting naming it.
        setting: &'static str,
        /// The column.
        column: String,
        /// The table.
        table: String,
        /// Its SQL type.
        found: String,
        /// What the mapping needs, and how to fix it.
        problem: String,
    },
    /// The catalog could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The id type a column of SQL type `data_type` holds, if usable.
fn id_type_of(data_type: &str) -> Option<IdType> {
    match data_type {
        "text" | "character varying" | "character" | "citext" => Some(IdType::Text),
        "bigint" | "integer" | "smallint" => Some(IdType::BigInt),
        "uuid" => Some(IdType::Uuid),
        _ => None,
    }
}

fn id_type_name(t: IdType) -> &'static str {
    match t {
        IdType::BigInt => "IdType::BigInt",
        IdType::Uuid => "IdType::Uuid",
        _ => "IdType::Text",
    }
}

fn is_text(data_type: &str) -> bool {
    matches!(
        data_type,
        "text" | "character varying" | "character" | "citext" | "USER-DEFINED"
    )
}

/// A column name close to `wanted`, if any.
fn close_to<'a>(wanted: &str, columns: &'a [(String, String)]) -> Option<&'a str> {
    let wanted = wanted.to_ascii_lowercase();
    columns.iter().map(|(name, _)| name.as_str()).find(|name| {
        let name = name.to_ascii_lowercase();
        name.contains(&wanted) || wanted.contains(&name) || edit_distance(&name, &wanted) <= 2
    })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(current + 1);
            prev = current;
        }
    }
    row[b.len()]
}

/// The table's columns and types, or `None` when it does not exist.
async fn columns_of(accounts: &PgAccounts) -> Result<(String, Vec<(String, String)>), VerifyError> {
    const OP: &str = "accounts.verify";
    let table = &accounts.table;
    let row = sqlx::query(
        "SELECT n.nspname::text FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace \
         WHERE k.oid = to_regclass(CASE WHEN $1::text IS NULL THEN quote_ident($2) \
                                        ELSE quote_ident($1) || '.' || quote_ident($2) END)",
    )
    .bind(table.schema.as_deref())
    .bind(&table.table)
    .fetch_optional(&accounts.pool)
    .await
    .map_err(db_error(OP))?;
    let Some(row) = row else {
        return Err(VerifyError::TableMissing {
            table: table.table.clone(),
            schema: table.schema.clone().unwrap_or_else(|| "search_path".into()),
        });
    };
    let schema: String = row.try_get(0).map_err(db_error(OP))?;
    let rows = sqlx::query(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
    )
    .bind(&schema)
    .bind(&table.table)
    .fetch_all(&accounts.pool)
    .await
    .map_err(db_error(OP))?;
    let columns = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<(String, String)>, sqlx::Error>>()
        .map_err(db_error(OP))?;
    Ok((schema, columns))
}

/// Checks `table`'s mapping against `columns`; returns the id column's
/// type as the catalog has it.
fn check(table: &UsersTable, columns: &[(String, String)], infer_id: bool) -> Result<IdType, VerifyError> {
    let mut id_type = table.id_type;
    for (setting, column, expect) in table.mapped_columns() {
        let Some((_, found)) = columns.iter().find(|(name, _)| name == column) else {
            return Err(VerifyError::ColumnMissing {
                setting,
                column: column.to_owned(),
                table: table.table.clone(),
                suggestion: close_to(column, columns)
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default(),
                columns: columns
                    .iter()
                    .map(|(n, t)| format!("{n} ({t})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let wrong = |expected: &str, fix: String| VerifyError::WrongType {
            setting,
            column: column.to_owned(),
            table: table.table.clone(),
            found: found.clone(),
            problem: format!("{expected}: {fix}"),
        };
        match expect {
            Expect::Id(configured) => match id_type_of(found) {
                Some(actual) if actual == configured => {}
                Some(actual) if infer_id => id_type = actual,
                Some(actual) => {
                    return Err(wrong(
                        &format!("the mapping says {}", id_type_name(configured)),
                        format!(
                            "use `.id_column(\"{column}\", {})` (or leave the type out and let `PgAccounts::connect` infer it)",
                            id_type_name(actual)
                        ),
                    ));
                }
                None => {
                    return Err(wrong(
                        "an id must be text, an integer or a uuid",
                        "map another column as the id".into(),
                    ));
                }
            },
            Expect::Text if !is_text(found) => {
                return Err(wrong(
                    "it must hold text",
                    format!("map a text column, or cast `{column}` in a view"),
                ));
            }
            Expect::Boolean if found != "boolean" => {
                return Err(wrong(
                    "it must be boolean",
                    "map a boolean column, or derive one in a view".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(id_type)
}

impl PgAccounts {
    /// Checks the mapping against the table in the catalog: the table
    /// exists, every mapped column exists with a usable type, and the id
    /// type matches the id column's. Call it at start-up.
    pub async fn verify(&self) -> Result<(), VerifyError> {
        let (_, columns) = columns_of(self).await?;
        check(&self.table, &columns, false).map(|_| ())
    }

    /// Builds the directory and verifies it; when `id_column` did not set
    /// the id type, it is taken from the catalog (a `bigint` id just works).
    pub async fn connect(pool: sqlx::PgPool, table: UsersTable) -> Result<PgAccounts, VerifyError> {
        let accounts = PgAccounts::new(pool.clone(), table.clone())?;
        let (_, columns) = columns_of(&accounts).await?;
        let id_type = check(&table, &columns, !table.id_type_explicit)?;
        if id_type == table.id_type {
            return Ok(accounts);
        }
        let column = table.id.clone();
        let inferred = table.id_column(&column, id_type);
        Ok(PgAccounts::new(pool, inferred)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn mapping_errors_name_the_column_the_type_and_the_fix() {
        let columns = cols(&[
            ("id", "bigint"),
            ("username", "text"),
            ("email", "character varying"),
            ("password_hash", "text"),
            ("is_active", "boolean"),
        ]);
        let table = UsersTable::new("users").active_column("is_active");
        assert_eq!(check(&table, &columns, true).unwrap(), IdType::BigInt);
        let text = check(&table.clone().id_column("id", IdType::Text), &columns, false)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("`id`") && text.contains("bigint") && text.contains("IdType::BigInt"),
            "{text}"
        );
        let text = check(&UsersTable::new("users").active_column("active"), &columns, true)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("users.active_column") && text.contains("did you mean `is_active`"),
            "{text}"
        );
        let text = check(&UsersTable::new("users").disabled_column("email"), &columns, true)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("boolean") && text.contains("character varying"),
            "{text}"
        );
    }
}
