//! [`PgOutbox`]: the delivery queue shared by workers on several hosts.
//!
//! `claim` picks due rows (pending and due, or claimed with an expired
//! lease) with `FOR UPDATE SKIP LOCKED`, so concurrent claimers never get
//! the same row, and leases them in the same statement. Attempts, the next
//! attempt time and the last error are kept in the row. Due times and
//! leases are read and written on the database's clock ([`QueueClock`]).
//!
//! **Sensitive:** rows hold the email bodies, which carry live reset links,
//! until the message is sent or given up; the bodies are then blanked.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use resetkit::account::AccountId;
use resetkit::activity::QueueAge;
use resetkit::error::StoreError;
use resetkit::mail::{DeliveryError, EmailKind, MailContent, Mailbox, OutgoingEmail};
use resetkit::store::{
    Outbox, OutboxCounts, OutboxEntry, OutboxListing, OutboxMessage, OutboxRetention, OutboxState,
    OutboxStatus,
};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row as _};

use crate::ident::Ident;
use crate::util::{
    PgQuery, QueueClock, Sql, corrupt, db_error, from_db, limit, purge, seconds, to_db, token_hash,
};

const COLS: &str = "message_id, seq, account_id, kind, from_name, from_address, reply_to_name, \
    reply_to_address, to_name, to_address, subject, body_text, body_html, attempts, next_attempt_at, \
    token_hashes, requested_at";

/// The columns of an operator's listing: never the bodies.
const LISTING: &str = "message_id, account_id, kind, from_address, to_address, attempts, \
    next_attempt_at, status, last_error";

fn listing_from_row(op: &'static str, row: &PgRow) -> Result<OutboxMessage, StoreError> {
    let get = |c: &str| row.try_get::<String, _>(c).map_err(db_error(op));
    let kind = get("kind")?;
    let kind = EmailKind::parse(&kind).ok_or_else(|| corrupt(op, format!("unknown email kind `{kind}`")))?;
    let status = get("status")?;
    let last_error: Option<String> = row.try_get("last_error").map_err(db_error(op))?;
    let status = status_from(op, &status, last_error.clone())?;
    let account: Option<String> = row.try_get("account_id").map_err(db_error(op))?;
    let attempts: i32 = row.try_get("attempts").map_err(db_error(op))?;
    let next: DateTime<Utc> = row.try_get("next_attempt_at").map_err(db_error(op))?;
    Ok(OutboxMessage {
        message_id: get("message_id")?,
        account: account.map(AccountId),
        kind,
        from: get("from_address")?,
        to: get("to_address")?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at: from_db(next),
        status,
        last_error,
    })
}

fn status_from(op: &'static str, status: &str, error: Option<String>) -> Result<OutboxStatus, StoreError> {
    Ok(match status {
        "pending" => OutboxStatus::Pending,
        "claimed" => OutboxStatus::Claimed,
        "sent" => OutboxStatus::Sent,
        "failed" => OutboxStatus::Failed {
            reason: error.unwrap_or_default(),
        },
        "dropped" => OutboxStatus::Dropped {
            reason: error.unwrap_or_default(),
        },
        other => return Err(corrupt(op, format!("unknown outbox status `{other}`"))),
    })
}

struct Queries {
    oldest: Sql,
    enqueue: Sql,
    claim: Sql,
    sent: Sql,
    retry: Sql,
    give_up: Sql,
    renew: Sql,
    status: Sql,
    counts: Sql,
    waiting_at_least: Sql,
    purge: Sql,
    list_waiting: Sql,
    list_finished: Sql,
    message: Sql,
    retire: Sql,
}

/// The outbox in PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct PgOutbox {
    pub(crate) pool: PgPool,
    pub(crate) schema: Ident,
    sql: std::sync::Arc<Queries>,
    clock: QueueClock,
}

impl std::fmt::Debug for PgOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOutbox").finish_non_exhaustive()
    }
}

impl PgOutbox {
    /// An outbox over `schema` (run [`crate::migrate`] first).
    pub fn new(pool: PgPool, schema: &Ident) -> Self {
        let s = |t: &str| Sql::new(schema, &t.replace("COLS", COLS));
        let sql = Queries {
            oldest: s("SELECT min(created_at) FROM __SCHEMA__.outbox WHERE status IN ('pending', 'claimed')"),
            enqueue: s(
                "INSERT INTO __SCHEMA__.outbox (message_id, account_id, kind, from_name, from_address, \
                 reply_to_name, reply_to_address, to_name, to_address, subject, body_text, body_html, \
                 attempts, next_attempt_at, token_hashes, requested_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                 COALESCE($14::timestamptz, now()), $15, $16)",
            ),
            claim: s("WITH due AS ( \
                   SELECT message_id AS due_id FROM __SCHEMA__.outbox \
                   WHERE (status = 'pending' AND next_attempt_at <= COALESCE($1::timestamptz, now())) \
                      OR (status = 'claimed' AND lease_until <= COALESCE($1::timestamptz, now())) \
                   ORDER BY next_attempt_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 UPDATE __SCHEMA__.outbox o SET status = 'claimed', \
                   lease_until = COALESCE($1::timestamptz, now()) + $3::float8 * interval '1 second', \
                   attempts = o.attempts + 1 \
                 FROM due WHERE o.message_id = due.due_id RETURNING COLS"),
            sent: s(
                "UPDATE __SCHEMA__.outbox SET status = 'sent', lease_until = NULL, \
                 finished_at = COALESCE($2::timestamptz, now()), \
                 body_text = '', body_html = '' \
                 WHERE message_id = $1 AND status = 'claimed' AND attempts = $3",
            ),
            retry: s(
                "UPDATE __SCHEMA__.outbox SET status = 'pending', lease_until = NULL, \
                 next_attempt_at = COALESCE($2::timestamptz, now()) + $5::float8 * interval '1 second', \
                 last_error = $3 \
                 WHERE message_id = $1 AND status = 'claimed' AND attempts = $4",
            ),
            // Given up ('failed') or not sent ('dropped'): done for good.
            give_up: s(
                "UPDATE __SCHEMA__.outbox SET status = $4, lease_until = NULL, last_error = $2, \
                 finished_at = now(), body_text = '', body_html = '' \
                 WHERE message_id = $1 AND status = 'claimed' AND attempts = $3",
            ),
            renew: s("UPDATE __SCHEMA__.outbox \
                 SET lease_until = COALESCE($3::timestamptz, now()) + $4::float8 * interval '1 second' \
                 WHERE message_id = $1 AND status = 'claimed' AND attempts = $2"),
            status: s("SELECT status, last_error FROM __SCHEMA__.outbox WHERE message_id = $1"),
            // Stops at $1 rows, on the partial index of waiting messages.
            waiting_at_least: s("SELECT count(*) >= $1 FROM (SELECT 1 FROM __SCHEMA__.outbox \
                 WHERE status IN ('pending', 'claimed') LIMIT $1) w"),
            counts: s(
                "SELECT count(*) FILTER (WHERE status IN ('pending', 'claimed')), \
                 count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'failed'), \
                 count(*) FILTER (WHERE status = 'dropped') \
                 FROM __SCHEMA__.outbox",
            ),
            purge: s("DELETE FROM __SCHEMA__.outbox WHERE message_id IN ( \
                 SELECT message_id FROM __SCHEMA__.outbox \
                 WHERE status IN ('sent', 'failed', 'dropped') AND finished_at < $1 \
                 ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)"),
            list_waiting: s(&format!(
                "SELECT {LISTING} FROM __SCHEMA__.outbox WHERE status IN ('pending', 'claimed') \
                 ORDER BY next_attempt_at, seq LIMIT $1"
            )),
            list_finished: s(&format!(
                "SELECT {LISTING} FROM __SCHEMA__.outbox WHERE status IN ('failed', 'dropped') AND status = $1 \
                 ORDER BY finished_at DESC, seq DESC LIMIT $2"
            )),
            message: s(&format!(
                "SELECT {LISTING} FROM __SCHEMA__.outbox WHERE message_id = $1"
            )),
            retire: s(
                "UPDATE __SCHEMA__.outbox SET status = 'dropped', last_error = $2, finished_at = now(), \
                 body_text = '', body_html = '' WHERE message_id = $1 AND status = 'failed'",
            ),
        };
        PgOutbox {
            pool,
            schema: schema.clone(),
            sql: std::sync::Arc::new(sql),
            clock: QueueClock::default(),
        }
    }

    /// Sets whose clock decides due times and leases (default: the
    /// database's; [`QueueClock::Caller`] is for tests that move time by hand).
    pub fn with_clock(mut self, clock: QueueClock) -> Self {
        self.clock = clock;
        self
    }
}

impl PgOutbox {
    /// Binds a new message as 16 parameters, in the order of `enqueue`
    /// and of the `issue_and_record` SQL function.
    pub(crate) fn bind_entry<'q>(&self, query: PgQuery<'q>, entry: &OutboxEntry) -> PgQuery<'q> {
        let e = &entry.email;
        query
            .bind(&e.message_id)
            .bind(entry.account.as_ref().map(|a| a.0.as_str()))
            .bind(e.kind.as_str())
            .bind(e.from.name())
            .bind(e.from.address())
            .bind(e.reply_to.as_ref().and_then(Mailbox::name))
            .bind(e.reply_to.as_ref().map(Mailbox::address))
            .bind(e.to.name())
            .bind(e.to.address())
            .bind(&e.subject)
            .bind(e.expose_text())
            .bind(e.expose_html())
            .bind(i32::try_from(entry.attempts).unwrap_or(i32::MAX))
            // On the database's clock a new message is due now (the flow
            // queues every message due at once).
            .bind(self.clock.bind(entry.next_attempt_at))
            .bind(entry.tokens.iter().map(|h| h.0.to_vec()).collect::<Vec<_>>())
            .bind(entry.requested_at.map(to_db))
    }
}

fn fence(attempt: u32) -> i32 {
    i32::try_from(attempt).unwrap_or(i32::MAX)
}

impl PgOutbox {
    /// Runs an update fenced by the claimed attempt; a message claimed again
    /// by another worker is left alone, a missing one is an error.
    async fn fenced(
        &self,
        operation: &'static str,
        message_id: &str,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<(), StoreError> {
        let done = query.execute(&self.pool).await.map_err(db_error(operation))?;
        if done.rows_affected() == 0 {
            return self.stale_or_missing(operation, message_id).await;
        }
        Ok(())
    }

    /// After an update matched no row: a message claimed again by another
    /// worker (stale lease) is left alone; a missing one is an error.
    async fn stale_or_missing(&self, operation: &'static str, message_id: &str) -> Result<(), StoreError> {
        match self.status(message_id).await? {
            Some(_) => {
                tracing::warn!(
                    message_id,
                    "outbox update skipped: the lease was taken over by another worker"
                );
                Ok(())
            }
            None => Err(not_found(operation, message_id)),
        }
    }
}

fn not_found(operation: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        operation,
        what: format!("outbox message `{id}`"),
    }
}

fn mailbox(op: &'static str, row: &PgRow, name: &str, address: &str) -> Result<Option<Mailbox>, StoreError> {
    let name: Option<String> = row.try_get(name).map_err(db_error(op))?;
    let address: Option<String> = row.try_get(address).map_err(db_error(op))?;
    address
        .map(|a| Mailbox::new(name.as_deref(), &a).map_err(|e| corrupt(op, format!("stored address: {e}"))))
        .transpose()
}

fn entry_from_row(op: &'static str, row: &PgRow) -> Result<(i64, OutboxEntry), StoreError> {
    let get = |c: &str| row.try_get::<String, _>(c).map_err(db_error(op));
    let kind = get("kind")?;
    let kind = EmailKind::parse(&kind).ok_or_else(|| corrupt(op, format!("unknown email kind `{kind}`")))?;
    let from = mailbox(op, row, "from_name", "from_address")?.ok_or_else(|| corrupt(op, "no from"))?;
    let to = mailbox(op, row, "to_name", "to_address")?.ok_or_else(|| corrupt(op, "no to"))?;
    let email = OutgoingEmail::new(
        get("message_id")?,
        kind,
        from,
        mailbox(op, row, "reply_to_name", "reply_to_address")?,
        to,
        MailContent {
            subject: get("subject")?,
            text: get("body_text")?,
            html: get("body_html")?,
        },
    );
    let account: Option<String> = row.try_get("account_id").map_err(db_error(op))?;
    let attempts: i32 = row.try_get("attempts").map_err(db_error(op))?;
    let next: DateTime<Utc> = row.try_get("next_attempt_at").map_err(db_error(op))?;
    let seq: i64 = row.try_get("seq").map_err(db_error(op))?;
    let hashes: Vec<Vec<u8>> = row.try_get("token_hashes").map_err(db_error(op))?;
    let requested_at: Option<DateTime<Utc>> = row.try_get("requested_at").map_err(db_error(op))?;
    let tokens = hashes
        .into_iter()
        .map(|h| token_hash(op, h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        seq,
        OutboxEntry {
            email,
            account: account.map(AccountId),
            attempts: u32::try_from(attempts).unwrap_or(0),
            next_attempt_at: from_db(next),
            tokens,
            requested_at: requested_at.map(from_db),
        },
    ))
}

#[async_trait]
impl QueueAge for PgOutbox {
    async fn oldest_waiting(&self) -> Result<Option<SystemTime>, StoreError> {
        const OP: &str = "outbox.oldest_waiting";
        // The first entry of `outbox_waiting_created` (migration 9).
        let oldest: Option<DateTime<Utc>> = sqlx::query(self.sql.oldest.q())
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(db_error(OP))?;
        Ok(oldest.map(from_db))
    }
}

fn count(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

#[async_trait]
impl Outbox for PgOutbox {
    async fn enqueue(&self, entry: OutboxEntry) -> Result<(), StoreError> {
        const OP: &str = "outbox.enqueue";
        self.bind_entry(sqlx::query(self.sql.enqueue.q()), &entry)
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(())
    }

    fn colocated(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    async fn claim(
        &self,
        now: SystemTime,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        const OP: &str = "outbox.claim";
        let rows = sqlx::query(self.sql.claim.q())
            .bind(self.clock.bind(now))
            .bind(limit(max))
            .bind(seconds(lease))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error(OP))?;
        let mut entries = rows
            .iter()
            .map(|r| entry_from_row(OP, r))
            .collect::<Result<Vec<_>, _>>()?;
        entries.sort_by_key(|(seq, e)| (e.next_attempt_at, *seq));
        Ok(entries.into_iter().map(|(_, e)| e).collect())
    }

    async fn mark_sent(&self, message_id: &str, attempt: u32, now: SystemTime) -> Result<(), StoreError> {
        let query = sqlx::query(self.sql.sent.q())
            .bind(message_id)
            .bind(self.clock.bind(now))
            .bind(fence(attempt));
        self.fenced("outbox.mark_sent", message_id, query).await
    }

    async fn mark_failed(
        &self,
        message_id: &str,
        attempt: u32,
        error: &DeliveryError,
        now: SystemTime,
        retry_in: Option<Duration>,
    ) -> Result<(), StoreError> {
        let query = match retry_in {
            Some(delay) => sqlx::query(self.sql.retry.q())
                .bind(message_id)
                .bind(self.clock.bind(now))
                .bind(error.to_string())
                .bind(fence(attempt))
                .bind(seconds(delay)),
            None => sqlx::query(self.sql.give_up.q())
                .bind(message_id)
                .bind(error.to_string())
                .bind(fence(attempt))
                .bind("failed"),
        };
        self.fenced("outbox.mark_failed", message_id, query).await
    }

    async fn renew(
        &self,
        message_id: &str,
        attempt: u32,
        now: SystemTime,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        const OP: &str = "outbox.renew";
        let done = sqlx::query(self.sql.renew.q())
            .bind(message_id)
            .bind(fence(attempt))
            .bind(self.clock.bind(now))
            .bind(seconds(lease))
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(done.rows_affected() > 0)
    }

    async fn mark_dropped(&self, message_id: &str, attempt: u32, reason: &str) -> Result<(), StoreError> {
        let query = sqlx::query(self.sql.give_up.q())
            .bind(message_id)
            .bind(reason)
            .bind(fence(attempt))
            .bind("dropped");
        self.fenced("outbox.mark_dropped", message_id, query).await
    }

    async fn status(&self, message_id: &str) -> Result<Option<OutboxStatus>, StoreError> {
        const OP: &str = "outbox.status";
        let row = sqlx::query(self.sql.status.q())
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error(OP))?;
        let Some(row) = row else { return Ok(None) };
        let status: String = row.try_get("status").map_err(db_error(OP))?;
        let error: Option<String> = row.try_get("last_error").map_err(db_error(OP))?;
        status_from(OP, &status, error).map(Some)
    }

    async fn counts(&self) -> Result<OutboxCounts, StoreError> {
        const OP: &str = "outbox.counts";
        let row = sqlx::query(self.sql.counts.q())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error(OP))?;
        let get = |i: usize| row.try_get::<i64, _>(i).map_err(db_error(OP));
        Ok(OutboxCounts {
            waiting: count(get(0)?),
            sent: count(get(1)?),
            failed: count(get(2)?),
            dropped: count(get(3)?),
        })
    }

    async fn waiting_at_least(&self, n: usize) -> Result<bool, StoreError> {
        const OP: &str = "outbox.waiting_at_least";
        sqlx::query_scalar::<_, bool>(self.sql.waiting_at_least.q())
            .bind(limit(n))
            .fetch_one(&self.pool)
            .await
            .map_err(db_error(OP))
    }
}

#[async_trait]
impl OutboxListing for PgOutbox {
    async fn list_by_state(&self, state: OutboxState, n: usize) -> Result<Vec<OutboxMessage>, StoreError> {
        const OP: &str = "outbox.list_by_state";
        let query = match state {
            OutboxState::Waiting => sqlx::query(self.sql.list_waiting.q()).bind(limit(n)),
            OutboxState::Failed => sqlx::query(self.sql.list_finished.q())
                .bind("failed")
                .bind(limit(n)),
            _ => sqlx::query(self.sql.list_finished.q())
                .bind("dropped")
                .bind(limit(n)),
        };
        let rows = query.fetch_all(&self.pool).await.map_err(db_error(OP))?;
        rows.iter().map(|r| listing_from_row(OP, r)).collect()
    }

    async fn message(&self, message_id: &str) -> Result<Option<OutboxMessage>, StoreError> {
        const OP: &str = "outbox.message";
        let row = sqlx::query(self.sql.message.q())
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error(OP))?;
        row.map(|r| listing_from_row(OP, &r)).transpose()
    }

    async fn retire_failed(&self, message_id: &str, reason: &str) -> Result<bool, StoreError> {
        const OP: &str = "outbox.retire_failed";
        let done = sqlx::query(self.sql.retire.q())
            .bind(message_id)
            .bind(reason)
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl OutboxRetention for PgOutbox {
    async fn purge_finished(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError> {
        purge(
            &self.pool,
            &self.sql.purge,
            "outbox.purge_finished",
            before,
            batch,
        )
        .await
    }
}
