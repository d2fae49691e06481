//! [`PgTokenStore`]: tokens by hash and rate-limit hits.
//!
//! `consume` is one `UPDATE ... WHERE state = 'active' AND expires_at > now
//! RETURNING`: PostgreSQL's row lock makes exactly one of any number of
//! concurrent calls win; only a loser pays a second query to learn why.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use resetkit::account::{AccountId, PasswordStamp};
use resetkit::error::StoreError;
use resetkit::store::{ConsumeOutcome, RateKey, TokenStore};
use resetkit::token::{RejectReason, RevokeReason, TokenHash, TokenRecord, TokenState};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row as _};

use crate::ident::Ident;
use crate::util::{Sql, corrupt, db_error, from_db, limit, to_db};

const COLS: &str =
    "hash, account_id, sent_to, password_stamp, issued_at, expires_at, state, state_at, revoke_reason";

struct Queries {
    insert: Sql,
    find: Sql,
    consume: Sql,
    release: Sql,
    revoke: Sql,
    hit: Sql,
    admit: Sql,
    purge: Sql,
    purge_hits: Sql,
}

/// Tokens and rate-limit counters in PostgreSQL. Cheap to clone (the pool
/// is shared).
#[derive(Clone)]
pub struct PgTokenStore {
    pool: PgPool,
    sql: std::sync::Arc<Queries>,
}

impl std::fmt::Debug for PgTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTokenStore").finish_non_exhaustive()
    }
}

impl PgTokenStore {
    /// A store over `schema` (run [`crate::migrate`] first).
    pub fn new(pool: PgPool, schema: &Ident) -> Self {
        let s = |t: &str| Sql::new(schema, &t.replace("COLS", COLS));
        let sql = Queries {
            insert: s("INSERT INTO __SCHEMA__.tokens (COLS) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
            find: s("SELECT COLS FROM __SCHEMA__.tokens WHERE hash = $1"),
            consume: s("UPDATE __SCHEMA__.tokens SET state = 'used', state_at = $2 \
                 WHERE hash = $1 AND state = 'active' AND expires_at > $2 RETURNING COLS"),
            release: s("UPDATE __SCHEMA__.tokens SET state = 'active', state_at = NULL \
                 WHERE hash = $1 AND state = 'used'"),
            revoke: s(
                "UPDATE __SCHEMA__.tokens SET state = 'revoked', state_at = $3, revoke_reason = $2 \
                 WHERE account_id = $1 AND state = 'active'",
            ),
            hit: s("SELECT __SCHEMA__.rate_hit($1, $2, $3)"),
            admit: s("SELECT __SCHEMA__.rate_admit($1, $2, $3, $4)"),
            purge: s("DELETE FROM __SCHEMA__.tokens WHERE hash IN ( \
                 SELECT hash FROM __SCHEMA__.tokens WHERE expires_at < $1 \
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)"),
            purge_hits: s("DELETE FROM __SCHEMA__.rate_hits WHERE id IN ( \
                 SELECT id FROM __SCHEMA__.rate_hits WHERE at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"),
        };
        PgTokenStore {
            pool,
            sql: std::sync::Arc::new(sql),
        }
    }

    /// Deletes up to `batch` rate-limit hits older than `before` (hits of
    /// keys that are hit again are pruned as they go; this catches the rest).
    pub async fn purge_rate_hits(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError> {
        const OP: &str = "tokens.purge_rate_hits";
        let done = sqlx::query(self.sql.purge_hits.q())
            .bind(to_db(before))
            .bind(limit(batch))
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }
}

fn state_parts(state: &TokenState) -> (&'static str, Option<DateTime<Utc>>, Option<&'static str>) {
    match state {
        TokenState::Active => ("active", None, None),
        TokenState::Used { at } => ("used", Some(to_db(*at)), None),
        TokenState::Revoked { at, reason } => ("revoked", Some(to_db(*at)), Some(reason.as_str())),
    }
}

fn record_from_row(op: &'static str, row: &PgRow) -> Result<TokenRecord, StoreError> {
    let hash: Vec<u8> = row.try_get("hash").map_err(db_error(op))?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| corrupt(op, "token hash is not 32 bytes"))?;
    let state: String = row.try_get("state").map_err(db_error(op))?;
    let state_at: Option<DateTime<Utc>> = row.try_get("state_at").map_err(db_error(op))?;
    let reason: Option<String> = row.try_get("revoke_reason").map_err(db_error(op))?;
    let state = match (state.as_str(), state_at, reason) {
        ("active", _, _) => TokenState::Active,
        ("used", Some(at), _) => TokenState::Used { at: from_db(at) },
        ("revoked", Some(at), Some(reason)) => TokenState::Revoked {
            at: from_db(at),
            reason: RevokeReason::parse(&reason)
                .ok_or_else(|| corrupt(op, format!("unknown revoke reason `{reason}`")))?,
        },
        (other, _, _) => return Err(corrupt(op, format!("inconsistent token state `{other}`"))),
    };
    Ok(TokenRecord {
        hash: TokenHash(hash),
        account: AccountId(row.try_get("account_id").map_err(db_error(op))?),
        sent_to: row.try_get("sent_to").map_err(db_error(op))?,
        password_stamp: PasswordStamp::from_stored(
            row.try_get::<String, _>("password_stamp").map_err(db_error(op))?,
        ),
        issued_at: from_db(row.try_get("issued_at").map_err(db_error(op))?),
        expires_at: from_db(row.try_get("expires_at").map_err(db_error(op))?),
        state,
    })
}

#[async_trait]
impl TokenStore for PgTokenStore {
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError> {
        const OP: &str = "tokens.insert";
        let (state, state_at, reason) = state_parts(&record.state);
        sqlx::query(self.sql.insert.q())
            .bind(record.hash.0.as_slice())
            .bind(&record.account.0)
            .bind(&record.sent_to)
            .bind(record.password_stamp.as_str())
            .bind(to_db(record.issued_at))
            .bind(to_db(record.expires_at))
            .bind(state)
            .bind(state_at)
            .bind(reason)
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(())
    }

    async fn find(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        const OP: &str = "tokens.find";
        let row = sqlx::query(self.sql.find.q())
            .bind(hash.0.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error(OP))?;
        row.map(|r| record_from_row(OP, &r)).transpose()
    }

    async fn consume(&self, hash: &TokenHash, now: SystemTime) -> Result<ConsumeOutcome, StoreError> {
        const OP: &str = "tokens.consume";
        let row = sqlx::query(self.sql.consume.q())
            .bind(hash.0.as_slice())
            .bind(to_db(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error(OP))?;
        if let Some(row) = row {
            return Ok(ConsumeOutcome::Consumed(record_from_row(OP, &row)?));
        }
        let row = sqlx::query(self.sql.find.q())
            .bind(hash.0.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error(OP))?;
        let reason = match row {
            None => RejectReason::Unknown,
            // Active and unexpired now: it was released between the two
            // queries; refusing is the safe answer.
            Some(row) => record_from_row(OP, &row)?
                .unusable_reason(now)
                .unwrap_or(RejectReason::AlreadyUsed),
        };
        Ok(ConsumeOutcome::Rejected(reason))
    }

    async fn release(&self, hash: &TokenHash) -> Result<(), StoreError> {
        const OP: &str = "tokens.release";
        sqlx::query(self.sql.release.q())
            .bind(hash.0.as_slice())
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(())
    }

    async fn revoke_for_account(
        &self,
        account: &AccountId,
        reason: RevokeReason,
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        const OP: &str = "tokens.revoke_for_account";
        let done = sqlx::query(self.sql.revoke.q())
            .bind(&account.0)
            .bind(reason.as_str())
            .bind(to_db(now))
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }

    async fn hit(&self, key: &RateKey, now: SystemTime, window: Duration) -> Result<u32, StoreError> {
        const OP: &str = "tokens.hit";
        let start = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        let count: i64 = sqlx::query(self.sql.hit.q())
            .bind(key.as_text())
            .bind(to_db(now))
            .bind(to_db(start))
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(db_error(OP))?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn admit(
        &self,
        key: &RateKey,
        now: SystemTime,
        window: Duration,
        max: u32,
    ) -> Result<bool, StoreError> {
        const OP: &str = "tokens.admit";
        let start = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        sqlx::query(self.sql.admit.q())
            .bind(key.as_text())
            .bind(to_db(now))
            .bind(to_db(start))
            .bind(i64::from(max))
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(db_error(OP))
    }

    async fn purge_expired(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError> {
        const OP: &str = "tokens.purge_expired";
        let done = sqlx::query(self.sql.purge.q())
            .bind(to_db(before))
            .bind(limit(batch))
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }
}
