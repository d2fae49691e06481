//! [`PgTokenStore`]: tokens by hash and rate-limit hits.
//!
//! Every flow step is one statement. The steps that change several tokens of
//! an account (`issue`, `finish`, `deny`, `revoke_for_account`) are calls of
//! plpgsql functions (migration 3) that first take the account's advisory
//! lock, so they never interleave or deadlock and see every row committed
//! before them. `consume` is one `UPDATE ... WHERE state = 'active'
//! RETURNING` with the refusal reason read in the same statement
//! (PostgreSQL's row lock makes exactly one of any number of concurrent
//! calls win); only a caller that lost a race reads the token again to say
//! why.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use resetkit::account::{Account, AccountDirectory};
use resetkit::account::{AccountId, PasswordStamp};
use resetkit::error::StoreError;
use resetkit::store::steps::{
    compose_consume_with_account, compose_find_with_account, compose_finish_reset, compose_issue_and_record,
};
use resetkit::store::{
    ConsumeOutcome, DenyOutcome, FinishOutcome, IssueOutcome, IssueWrites, PasswordWrite, RateKey,
    RateLimitAdmin, RateLimiter, ResetFinished, ResetWrites, TokenIssue, TokenRetention, TokenStore,
};
use resetkit::token::{RejectReason, RevokeReason, TokenHash, TokenRecord, TokenState};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row as _};

use crate::accounts::{PgAccounts, joined_account};
use crate::events::{EventColumns, PgEventLog};
use crate::ident::Ident;
use crate::inbox::PgInbox;
use crate::outbox::PgOutbox;
use crate::util::{PgQuery, Sql, colocated, corrupt, db_error, from_db, purge, to_db, token_hash};

const COLS: &str = "hash, account_id, sent_to, password_stamp, issued_at, expires_at, state, state_at, \
    revoke_reason, deny_hash";

struct Queries {
    issue: Sql,
    issue_and_record: Sql,
    find: Sql,
    find_by_deny: Sql,
    consume: Sql,
    finish: Sql,
    release: Sql,
    revoke: Sql,
    deny: Sql,
    admit: Sql,
    purge: Sql,
    purge_hits: Sql,
    restamp: Sql,
    rate_count: Sql,
    rate_clear: Sql,
}

/// Tokens and rate-limit counters in PostgreSQL. Cheap to clone (the pool
/// is shared).
#[derive(Clone)]
pub struct PgTokenStore {
    pool: PgPool,
    schema: Ident,
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
            issue: s("SELECT __SCHEMA__.issue_token($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
            issue_and_record: s(
                "SELECT __SCHEMA__.issue_and_record($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                 $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, \
                 $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39)",
            ),
            find: s("SELECT COLS FROM __SCHEMA__.tokens WHERE hash = $1"),
            find_by_deny: s("SELECT COLS FROM __SCHEMA__.tokens WHERE deny_hash = $1"),
            // The second branch reads the token as it was before this
            // statement: for a loser of a race it still says 'active'.
            consume: s("WITH won AS ( \
                   UPDATE __SCHEMA__.tokens SET state = 'spending', state_at = $2 \
                   WHERE hash = $1 AND state = 'active' AND expires_at > $2 RETURNING COLS) \
                 SELECT true AS won, COLS FROM won \
                 UNION ALL \
                 SELECT false, COLS FROM __SCHEMA__.tokens \
                 WHERE hash = $1 AND NOT EXISTS (SELECT 1 FROM won)"),
            finish: s("SELECT finished, revoked, state, revoke_reason FROM __SCHEMA__.finish_token($1, $2)"),
            release: s("UPDATE __SCHEMA__.tokens SET state = 'active', state_at = NULL \
                 WHERE hash = $1 AND state = 'spending'"),
            revoke: s("SELECT __SCHEMA__.revoke_account_tokens($1, $2, $3)"),
            deny: s("SELECT known, state, revoke_reason, revoked FROM __SCHEMA__.deny_token($1, $2)"),
            admit: s("SELECT __SCHEMA__.rate_admit($1, $2, $3, $4)"),
            purge: s("DELETE FROM __SCHEMA__.tokens WHERE hash IN ( \
                 SELECT hash FROM __SCHEMA__.tokens WHERE expires_at < $1 \
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)"),
            purge_hits: s("DELETE FROM __SCHEMA__.rate_hits WHERE id IN ( \
                 SELECT id FROM __SCHEMA__.rate_hits WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)"),
            restamp: s("UPDATE __SCHEMA__.tokens SET password_stamp = $3 \
                 WHERE account_id = $1 AND password_stamp = $2 AND state IN ('active', 'spending')"),
            rate_count: s(
                "SELECT count(*) FROM __SCHEMA__.rate_hits WHERE key = $1 AND at > $2 AND at <= $3",
            ),
            rate_clear: s("DELETE FROM __SCHEMA__.rate_hits WHERE key = $1"),
        };
        PgTokenStore {
            pool,
            schema: schema.clone(),
            sql: std::sync::Arc::new(sql),
        }
    }

    /// `accounts` as a [`PgAccounts`] whose table one statement of this
    /// store can read (same database), if it is one.
    fn joinable<'a>(&self, accounts: &'a dyn AccountDirectory) -> Option<&'a PgAccounts> {
        accounts
            .colocated()
            .and_then(|a| a.downcast_ref::<PgAccounts>())
            .filter(|a| a.same_database(&self.pool))
    }

    /// Deletes up to `batch` rate-limit hits older than `before` (hits of
    /// keys that are hit again are pruned as they go; this catches the rest).
    pub async fn purge_rate_hits(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError> {
        purge(
            &self.pool,
            &self.sql.purge_hits,
            "tokens.purge_rate_hits",
            before,
            batch,
        )
        .await
    }
}

/// Binds a new token as the first 10 parameters of `issue_token` and
/// `issue_and_record`.
fn bind_issue<'q>(
    op: &'static str,
    query: PgQuery<'q>,
    issue: &TokenIssue,
) -> Result<PgQuery<'q>, StoreError> {
    let r = &issue.record;
    if r.state != TokenState::Active {
        return Err(corrupt(op, "a new token must be active"));
    }
    let window_start = issue.limit.map(|l| {
        to_db(
            r.issued_at
                .checked_sub(l.window)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        )
    });
    Ok(query
        .bind(r.hash.0.as_slice())
        .bind(&r.account.0)
        .bind(&r.sent_to)
        .bind(r.password_stamp.as_str())
        .bind(to_db(r.issued_at))
        .bind(to_db(r.expires_at))
        .bind(r.deny_hash.as_ref().map(|d| d.0.to_vec()))
        .bind(window_start)
        .bind(issue.limit.map(|l| i64::from(l.max)))
        .bind(issue.supersede))
}

/// `issue_token`'s result: -1 refused, else how many were superseded.
fn issue_outcome(result: i64) -> IssueOutcome {
    match usize::try_from(result) {
        Ok(superseded) => IssueOutcome::Issued { superseded },
        Err(_) => IssueOutcome::RateLimited,
    }
}

/// The 16 mail parameters of `issue_and_record`, all NULL: no mail.
fn no_mail(query: PgQuery<'_>) -> PgQuery<'_> {
    let mut query = query;
    for _ in 0..12 {
        query = query.bind(None::<String>);
    }
    query
        .bind(None::<i32>)
        .bind(None::<DateTime<Utc>>)
        .bind(None::<Vec<Vec<u8>>>)
        .bind(None::<DateTime<Utc>>)
}

/// `finish_token`'s row (`finished`, `revoked`, `state`, `revoke_reason`)
/// as a [`FinishOutcome`].
fn finish_outcome(op: &'static str, row: &PgRow) -> Result<FinishOutcome, StoreError> {
    let finished: bool = row.try_get("finished").map_err(db_error(op))?;
    let revoked: i64 = row.try_get("revoked").map_err(db_error(op))?;
    let state: Option<String> = row.try_get("state").map_err(db_error(op))?;
    let reason: Option<String> = row.try_get("revoke_reason").map_err(db_error(op))?;
    if finished {
        return Ok(FinishOutcome::Finished {
            revoked: usize::try_from(revoked).unwrap_or(usize::MAX),
        });
    }
    match state.as_deref() {
        None => Err(StoreError::NotFound {
            operation: op,
            what: "the consumed token".into(),
        }),
        Some("revoked") => Ok(FinishOutcome::RevokedMeanwhile(revoke_reason(op, reason)?)),
        // Finished before (a repeated call): nothing more to do.
        Some("used") => Ok(FinishOutcome::Finished { revoked: 0 }),
        Some(other) => Err(corrupt(
            op,
            format!("finish of a token that was not consumed (state `{other}`)"),
        )),
    }
}

fn revoke_reason(op: &'static str, reason: Option<String>) -> Result<RevokeReason, StoreError> {
    let reason = reason.ok_or_else(|| corrupt(op, "revoked token without a reason"))?;
    RevokeReason::parse(&reason).ok_or_else(|| corrupt(op, format!("unknown revoke reason `{reason}`")))
}

fn record_from_row(op: &'static str, row: &PgRow) -> Result<TokenRecord, StoreError> {
    let hash = token_hash(op, row.try_get("hash").map_err(db_error(op))?)?;
    let deny: Option<Vec<u8>> = row.try_get("deny_hash").map_err(db_error(op))?;
    let state: String = row.try_get("state").map_err(db_error(op))?;
    let state_at: Option<DateTime<Utc>> = row.try_get("state_at").map_err(db_error(op))?;
    let reason: Option<String> = row.try_get("revoke_reason").map_err(db_error(op))?;
    let state = match (state.as_str(), state_at, reason) {
        ("active", _, _) => TokenState::Active,
        ("spending", Some(at), _) => TokenState::Spending { at: from_db(at) },
        ("used", Some(at), _) => TokenState::Used { at: from_db(at) },
        ("revoked", Some(at), reason) => TokenState::Revoked {
            at: from_db(at),
            reason: revoke_reason(op, reason)?,
        },
        (other, _, _) => return Err(corrupt(op, format!("inconsistent token state `{other}`"))),
    };
    Ok(TokenRecord {
        hash,
        deny_hash: deny.map(|d| token_hash(op, d)).transpose()?,
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
    async fn issue(&self, issue: TokenIssue) -> Result<IssueOutcome, StoreError> {
        const OP: &str = "tokens.issue";
        let query = bind_issue(OP, sqlx::query(self.sql.issue.q()), &issue)?;
        let result: i64 = query
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db_error(OP))?;
        Ok(issue_outcome(result))
    }

    /// One statement (the `issue_and_record` function) when the log, the
    /// outbox and the inbox are this store's schema's in the same
    /// database; else the composed default.
    async fn issue_and_record(
        &self,
        issue: TokenIssue,
        writes: IssueWrites<'_>,
    ) -> Result<IssueOutcome, StoreError> {
        const OP: &str = "tokens.issue_and_record";
        let (pool, schema) = (&self.pool, self.schema.as_str());
        let log = colocated::<PgEventLog>(writes.log.colocated(), pool, schema);
        let outbox = match &writes.mail {
            None => Some(None),
            Some(mail) => colocated::<PgOutbox>(mail.outbox.colocated(), pool, schema).map(Some),
        };
        let inbox_ok = writes
            .settle
            .is_none_or(|s| colocated::<PgInbox>(s.inbox.colocated(), pool, schema).is_some());
        let (Some(_), Some(outbox), true) = (log, outbox, inbox_ok) else {
            return compose_issue_and_record(self, issue, writes).await;
        };
        let query = bind_issue(OP, sqlx::query(self.sql.issue_and_record.q()), &issue)?.bind(
            writes
                .superseded_at
                .map(|i| i32::try_from(i + 1).unwrap_or(i32::MAX)),
        );
        let query = EventColumns::new(&writes.events).bind(query);
        let query = match (&writes.mail, outbox) {
            (Some(mail), Some(outbox)) => outbox.bind_entry(query, &mail.entry),
            _ => no_mail(query),
        };
        let result: i64 = query
            .bind(writes.settle.map(|s| s.id))
            .bind(writes.settle.map(|s| crate::inbox::attempt(s.attempt)))
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db_error(OP))?;
        Ok(issue_outcome(result))
    }

    /// One statement (the token joined with its account row) when the
    /// directory is a [`PgAccounts`] in this store's database; else the
    /// composed default.
    async fn find_with_account(
        &self,
        hash: &TokenHash,
        accounts: &dyn AccountDirectory,
    ) -> Result<Option<(TokenRecord, Option<Account>)>, StoreError> {
        const OP: &str = "tokens.find_with_account";
        let Some(dir) = self.joinable(accounts) else {
            return compose_find_with_account(self, hash, accounts).await;
        };
        let cols: Vec<String> = COLS.split(", ").map(|c| format!("rk_t.{c}")).collect();
        let sql = Sql::new(
            &self.schema,
            &format!(
                "SELECT {}, rk_a.* FROM __SCHEMA__.tokens rk_t \
                 LEFT JOIN LATERAL ({}) rk_a ON true WHERE rk_t.hash = $1",
                cols.join(", "),
                dir.by_id_of("rk_t.account_id")
            ),
        );
        let row = sqlx::query(sql.q())
            .bind(hash.0.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error(OP))?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some((record_from_row(OP, &row)?, joined_account(OP, &row)?)))
    }

    /// One statement (`consume`'s, its winner joined with the account row
    /// as it is now) when the directory is a [`PgAccounts`] in this
    /// store's database; else the composed default. All or nothing: a
    /// failed statement consumed nothing.
    async fn consume_with_account(
        &self,
        hash: &TokenHash,
        now: SystemTime,
        accounts: &dyn AccountDirectory,
    ) -> Result<(ConsumeOutcome, Option<Account>), StoreError> {
        const OP: &str = "tokens.consume_with_account";
        let Some(dir) = self.joinable(accounts) else {
            return compose_consume_with_account(self, hash, now, accounts).await;
        };
        let sql = Sql::new(
            &self.schema,
            &format!(
                "WITH won AS ( \
                   UPDATE __SCHEMA__.tokens SET state = 'spending', state_at = $2 \
                   WHERE hash = $1 AND state = 'active' AND expires_at > $2 RETURNING {COLS}), \
                 rk_t AS ( \
                   SELECT true AS won, {COLS} FROM won \
                   UNION ALL \
                   SELECT false, {COLS} FROM __SCHEMA__.tokens \
                   WHERE hash = $1 AND NOT EXISTS (SELECT 1 FROM won)) \
                 SELECT rk_t.*, rk_a.* FROM rk_t LEFT JOIN LATERAL ({}) rk_a ON rk_t.won",
                dir.by_id_of("rk_t.account_id")
            ),
        );
        let row = sqlx::query(sql.q())
            .bind(hash.0.as_slice())
            .bind(to_db(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error(OP))?;
        let Some(row) = row else {
            return Ok((ConsumeOutcome::Rejected(RejectReason::Unknown), None));
        };
        let won: bool = row.try_get("won").map_err(db_error(OP))?;
        let record = record_from_row(OP, &row)?;
        if won {
            let account = joined_account(OP, &row)?;
            return Ok((ConsumeOutcome::Consumed(record), account));
        }
        Ok((
            ConsumeOutcome::Rejected(record.unusable_reason(now).unwrap_or(RejectReason::AlreadyUsed)),
            None,
        ))
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

    async fn find_by_deny(&self, deny_hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        const OP: &str = "tokens.find_by_deny";
        let row = sqlx::query(self.sql.find_by_deny.q())
            .bind(deny_hash.0.as_slice())
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
        let Some(row) = row else {
            return Ok(ConsumeOutcome::Rejected(RejectReason::Unknown));
        };
        let won: bool = row.try_get("won").map_err(db_error(OP))?;
        let record = record_from_row(OP, &row)?;
        if won {
            return Ok(ConsumeOutcome::Consumed(record));
        }
        // Read as it was before the statement: a token that looked usable
        // was taken by a concurrent caller.
        Ok(ConsumeOutcome::Rejected(
            record.unusable_reason(now).unwrap_or(RejectReason::AlreadyUsed),
        ))
    }

    async fn finish(&self, hash: &TokenHash, now: SystemTime) -> Result<FinishOutcome, StoreError> {
        const OP: &str = "tokens.finish";
        let row = sqlx::query(self.sql.finish.q())
            .bind(hash.0.as_slice())
            .bind(to_db(now))
            .fetch_one(&self.pool)
            .await
            .map_err(db_error(OP))?;
        finish_outcome(OP, &row)
    }

    /// One statement (the password written by a data-modifying `WITH`,
    /// then the `finish_reset` function: `finish_token`, the events, the
    /// notice) when the directory is a [`PgAccounts`] in this store's
    /// database and the log and the outbox are this store's schema's; else
    /// the composed default. All or nothing: an error wrote nothing.
    async fn finish_reset(
        &self,
        hash: &TokenHash,
        now: SystemTime,
        password: PasswordWrite<'_>,
        writes: ResetWrites<'_>,
    ) -> Result<ResetFinished, StoreError> {
        const OP: &str = "tokens.finish_reset";
        let (pool, schema) = (&self.pool, self.schema.as_str());
        let dir = self.joinable(password.accounts);
        let log = colocated::<PgEventLog>(writes.log.colocated(), pool, schema);
        let outbox = match &writes.mail {
            None => Some(None),
            Some(mail) => colocated::<PgOutbox>(mail.outbox.colocated(), pool, schema).map(Some),
        };
        let (Some(dir), Some(_), Some(outbox)) = (dir, log, outbox) else {
            return compose_finish_reset(self, hash, now, password, writes).await;
        };
        let sql = Sql::new(
            &self.schema,
            &format!(
                "WITH rk_pw AS ({}) \
                 SELECT f.written, f.finished, f.revoked, f.state, f.revoke_reason \
                 FROM (SELECT count(*) > 0 AS written FROM rk_pw) rk_p \
                 CROSS JOIN LATERAL __SCHEMA__.finish_reset(rk_p.written, $3, $4, $5, \
                   $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                   $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31) f",
                dir.set_password_of("$1::text", "$2::text")
            ),
        );
        let query = sqlx::query(sql.q())
            .bind(&password.account.0)
            .bind(password.hash.expose())
            .bind(hash.0.as_slice())
            .bind(to_db(now))
            .bind(
                writes
                    .revoked_at
                    .map(|i| i32::try_from(i + 1).unwrap_or(i32::MAX)),
            );
        let query = EventColumns::new(&writes.events).bind(query);
        let query = match (&writes.mail, outbox) {
            (Some(mail), Some(outbox)) => outbox.bind_entry(query, &mail.entry),
            _ => no_mail(query),
        };
        let row = query.fetch_one(&self.pool).await.map_err(db_error(OP))?;
        let written: bool = row.try_get("written").map_err(db_error(OP))?;
        if !written {
            return Err(StoreError::NotFound {
                operation: "accounts.set_password_hash",
                what: format!("account `{}`", password.account),
            });
        }
        let finished: bool = row.try_get("finished").map_err(db_error(OP))?;
        Ok(ResetFinished {
            finish: finish_outcome("tokens.finish", &row),
            recorded: finished,
        })
    }

    async fn release(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        const OP: &str = "tokens.release";
        let done = sqlx::query(self.sql.release.q())
            .bind(hash.0.as_slice())
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_for_account(
        &self,
        account: &AccountId,
        reason: RevokeReason,
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        const OP: &str = "tokens.revoke_for_account";
        let count: i64 = sqlx::query(self.sql.revoke.q())
            .bind(&account.0)
            .bind(reason.as_str())
            .bind(to_db(now))
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db_error(OP))?;
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    async fn deny(&self, deny_hash: &TokenHash, now: SystemTime) -> Result<DenyOutcome, StoreError> {
        const OP: &str = "tokens.deny";
        let row = sqlx::query(self.sql.deny.q())
            .bind(deny_hash.0.as_slice())
            .bind(to_db(now))
            .fetch_one(&self.pool)
            .await
            .map_err(db_error(OP))?;
        let known: bool = row.try_get("known").map_err(db_error(OP))?;
        if !known {
            return Ok(DenyOutcome::Rejected(RejectReason::Unknown));
        }
        let state: Option<String> = row.try_get("state").map_err(db_error(OP))?;
        let reason: Option<String> = row.try_get("revoke_reason").map_err(db_error(OP))?;
        let revoked: i64 = row.try_get("revoked").map_err(db_error(OP))?;
        Ok(match state.as_deref() {
            Some("active" | "spending") => DenyOutcome::Revoked {
                count: usize::try_from(revoked).unwrap_or(usize::MAX),
            },
            Some("used") => DenyOutcome::Rejected(RejectReason::AlreadyUsed),
            Some("revoked") => DenyOutcome::Rejected(RejectReason::Revoked(revoke_reason(OP, reason)?)),
            other => return Err(corrupt(OP, format!("inconsistent token state `{other:?}`"))),
        })
    }

    async fn restamp(
        &self,
        account: &AccountId,
        from: &PasswordStamp,
        to: &PasswordStamp,
    ) -> Result<usize, StoreError> {
        const OP: &str = "tokens.restamp";
        let done = sqlx::query(self.sql.restamp.q())
            .bind(&account.0)
            .bind(from.as_str())
            .bind(to.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }
}

#[async_trait]
impl RateLimiter for PgTokenStore {
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
}

#[async_trait]
impl RateLimitAdmin for PgTokenStore {
    async fn rate_count(&self, key: &RateKey, now: SystemTime, window: Duration) -> Result<u32, StoreError> {
        const OP: &str = "tokens.rate_count";
        let start = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        let count: i64 = sqlx::query(self.sql.rate_count.q())
            .bind(key.as_text())
            .bind(to_db(start))
            .bind(to_db(now))
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(db_error(OP))?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn rate_clear(&self, key: &RateKey) -> Result<usize, StoreError> {
        const OP: &str = "tokens.rate_clear";
        let done = sqlx::query(self.sql.rate_clear.q())
            .bind(key.as_text())
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }
}

#[async_trait]
impl TokenRetention for PgTokenStore {
    async fn purge_expired(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError> {
        purge(&self.pool, &self.sql.purge, "tokens.purge_expired", before, batch).await
    }

    async fn purge_rate_entries(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError> {
        self.purge_rate_hits(before, batch).await
    }
}
