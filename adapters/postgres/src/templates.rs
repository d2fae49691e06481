//! [`PgTemplateStore`]: operator-edited email templates in
//! `<schema>.email_templates`, every version kept (migration 6).

use std::time::SystemTime;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use resetkit::error::StoreError;
use resetkit::mail::EmailKind;
use resetkit::template::{TemplateSource, TemplateStore, TemplateVersion};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row as _};

use crate::ident::Ident;
use crate::util::{Sql, corrupt, db_error, from_db, to_db};

const COLS: &str = "locale, kind, version, subject, body_text, body_html, saved_at, saved_by, active";

/// Versioned templates in PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct PgTemplateStore {
    pool: PgPool,
    lock: Sql,
    deactivate: Sql,
    insert: Sql,
    versions: Sql,
    exists: Sql,
    activate: Sql,
    active: Sql,
    generation: Sql,
}

impl std::fmt::Debug for PgTemplateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTemplateStore").finish_non_exhaustive()
    }
}

impl PgTemplateStore {
    /// A template store over `schema` (run [`crate::migrate`] first).
    pub fn new(pool: PgPool, schema: &Ident) -> Self {
        let s = |t: &str| Sql::new(schema, &t.replace("COLS", COLS));
        PgTemplateStore {
            pool,
            // One writer per (schema, locale, kind) at a time: version
            // numbers never collide and exactly one version stays active.
            lock: Sql::raw(format!(
                "SELECT pg_advisory_xact_lock(hashtextextended({} || '/' || $1 || '/' || $2, 16))",
                quote_literal(&schema.quoted())
            )),
            deactivate: s(
                "UPDATE __SCHEMA__.email_templates SET active = false WHERE locale = $1 AND kind = $2 AND active",
            ),
            insert: s("INSERT INTO __SCHEMA__.email_templates (COLS) \
                 SELECT $1, $2, COALESCE(max(version), 0) + 1, $3, $4, $5, $6, $7, true \
                 FROM __SCHEMA__.email_templates WHERE locale = $1 AND kind = $2 RETURNING version"),
            versions: s(
                "SELECT COLS FROM __SCHEMA__.email_templates WHERE locale = $1 AND kind = $2 ORDER BY version DESC",
            ),
            exists: s(
                "SELECT count(*) FROM __SCHEMA__.email_templates WHERE locale = $1 AND kind = $2 AND version = $3",
            ),
            activate: s(
                "UPDATE __SCHEMA__.email_templates SET active = true WHERE locale = $1 AND kind = $2 AND version = $3",
            ),
            active: s("SELECT COLS FROM __SCHEMA__.email_templates WHERE active ORDER BY locale, kind"),
            generation: s("SELECT n FROM __SCHEMA__.template_generation WHERE id"),
        }
    }
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn version_from_row(op: &'static str, row: &PgRow) -> Result<TemplateVersion, StoreError> {
    let get = |c: &str| row.try_get::<String, _>(c).map_err(db_error(op));
    let kind = get("kind")?;
    let kind = EmailKind::parse(&kind).ok_or_else(|| corrupt(op, format!("unknown email kind `{kind}`")))?;
    let version: i32 = row.try_get("version").map_err(db_error(op))?;
    let saved_at: DateTime<Utc> = row.try_get("saved_at").map_err(db_error(op))?;
    Ok(TemplateVersion {
        locale: get("locale")?,
        kind,
        version: u32::try_from(version).map_err(|_| corrupt(op, format!("version {version}")))?,
        source: TemplateSource::new(get("subject")?, get("body_text")?, get("body_html")?),
        saved_at: from_db(saved_at),
        saved_by: get("saved_by")?,
        active: row.try_get("active").map_err(db_error(op))?,
    })
}

/// Migration 7's counter, bumped by a trigger on every change to
/// `email_templates`: one primary-key read per look.
#[async_trait]
impl resetkit::flow::TemplateChanges for PgTemplateStore {
    async fn generation(&self) -> Result<u64, StoreError> {
        const OP: &str = "templates.generation";
        let n: i64 = sqlx::query_scalar(self.generation.q())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[async_trait]
impl TemplateStore for PgTemplateStore {
    async fn save(
        &self,
        locale: &str,
        kind: EmailKind,
        source: &TemplateSource,
        saved_by: &str,
        at: SystemTime,
    ) -> Result<u32, StoreError> {
        const OP: &str = "templates.save";
        let locale = locale.to_ascii_lowercase();
        let mut tx = self.pool.begin().await.map_err(db_error(OP))?;
        sqlx::query(self.lock.q())
            .bind(&locale)
            .bind(kind.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        sqlx::query(self.deactivate.q())
            .bind(&locale)
            .bind(kind.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        let version: i32 = sqlx::query(self.insert.q())
            .bind(&locale)
            .bind(kind.as_str())
            .bind(&source.subject)
            .bind(&source.text)
            .bind(&source.html)
            .bind(to_db(at))
            .bind(saved_by)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error(OP))?
            .try_get(0)
            .map_err(db_error(OP))?;
        tx.commit().await.map_err(db_error(OP))?;
        u32::try_from(version).map_err(|_| corrupt(OP, format!("version {version}")))
    }

    async fn versions(&self, locale: &str, kind: EmailKind) -> Result<Vec<TemplateVersion>, StoreError> {
        const OP: &str = "templates.versions";
        let rows = sqlx::query(self.versions.q())
            .bind(locale.to_ascii_lowercase())
            .bind(kind.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error(OP))?;
        rows.iter().map(|r| version_from_row(OP, r)).collect()
    }

    async fn activate(&self, locale: &str, kind: EmailKind, version: u32) -> Result<bool, StoreError> {
        const OP: &str = "templates.activate";
        let locale = locale.to_ascii_lowercase();
        let version = i32::try_from(version).unwrap_or(i32::MAX);
        let mut tx = self.pool.begin().await.map_err(db_error(OP))?;
        sqlx::query(self.lock.q())
            .bind(&locale)
            .bind(kind.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        let found: i64 = sqlx::query(self.exists.q())
            .bind(&locale)
            .bind(kind.as_str())
            .bind(version)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error(OP))?
            .try_get(0)
            .map_err(db_error(OP))?;
        if found == 0 {
            return Ok(false);
        }
        sqlx::query(self.deactivate.q())
            .bind(&locale)
            .bind(kind.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        sqlx::query(self.activate.q())
            .bind(&locale)
            .bind(kind.as_str())
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db_error(OP))?;
        tx.commit().await.map_err(db_error(OP))?;
        Ok(true)
    }

    async fn active(&self) -> Result<Vec<TemplateVersion>, StoreError> {
        const OP: &str = "templates.active";
        let rows = sqlx::query(self.active.q())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error(OP))?;
        rows.iter().map(|r| version_from_row(OP, r)).collect()
    }
}
