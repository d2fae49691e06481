//! [`PgInbox`]: the request inbox shared by web and worker processes.
//!
//! `push` is one `INSERT`; `claim` picks due rows (new, retried, or claimed
//! by a worker whose lease ran out) with `FOR UPDATE SKIP LOCKED`, so
//! concurrent workers in several processes never take the same row, and
//! leases them in the same statement. While a row is claimed its `due_at`
//! holds the lease end. Due times and leases are read and written on the
//! database's clock ([`QueueClock`]), never a host's.
//!
//! **Sensitive:** a row holds the identifier as typed until the request is
//! processed; it is deleted then.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use resetkit::error::StoreError;
use resetkit::event::Event;
use resetkit::identifier::Identifier;
use resetkit::store::steps::compose_settle;
use resetkit::store::{EventLog, InboxRequest, RequestInbox};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row as _};

use crate::events::{EventColumns, PgEventLog};
use crate::ident::Ident;
use crate::util::{QueueClock, Sql, colocated, corrupt, db_error, from_db, limit, seconds, to_db};

struct Queries {
    push: Sql,
    claim: Sql,
    done: Sql,
    retry: Sql,
    renew: Sql,
    len: Sql,
    settle: Sql,
}

/// The request inbox in PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct PgInbox {
    pub(crate) pool: PgPool,
    pub(crate) schema: Ident,
    sql: std::sync::Arc<Queries>,
    clock: QueueClock,
}

impl std::fmt::Debug for PgInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgInbox").finish_non_exhaustive()
    }
}

impl PgInbox {
    /// An inbox over `schema` (run [`crate::migrate`] first).
    pub fn new(pool: PgPool, schema: &Ident) -> Self {
        let s = |t: &str| Sql::new(schema, t);
        let sql = Queries {
            push: s("INSERT INTO __SCHEMA__.request_inbox \
                 (id, identifier_kind, identifier, client, locale, received_at, due_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7::timestamptz, now()))"),
            claim: s("WITH due AS ( \
                   SELECT id AS due_id FROM __SCHEMA__.request_inbox \
                   WHERE due_at <= COALESCE($1::timestamptz, now()) \
                   ORDER BY due_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 UPDATE __SCHEMA__.request_inbox r SET claimed = true, \
                   due_at = COALESCE($1::timestamptz, now()) + $3::float8 * interval '1 second', \
                   attempts = r.attempts + 1 \
                 FROM due WHERE r.id = due.due_id \
                 RETURNING id, identifier_kind, identifier, client, locale, received_at, attempts"),
            done: s("DELETE FROM __SCHEMA__.request_inbox WHERE id = $1 AND claimed AND attempts = $2"),
            retry: s("UPDATE __SCHEMA__.request_inbox \
                 SET claimed = false, due_at = COALESCE($3::timestamptz, now()) + $4::float8 * interval '1 second' \
                 WHERE id = $1 AND claimed AND attempts = $2"),
            renew: s("UPDATE __SCHEMA__.request_inbox \
                 SET due_at = COALESCE($3::timestamptz, now()) + $4::float8 * interval '1 second' \
                 WHERE id = $1 AND claimed AND attempts = $2"),
            len: s("SELECT count(*) FROM __SCHEMA__.request_inbox"),
            settle: s("SELECT __SCHEMA__.settle_request($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"),
        };
        PgInbox {
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

pub(crate) fn attempt(a: u32) -> i32 {
    i32::try_from(a).unwrap_or(i32::MAX)
}

fn request_from_row(op: &'static str, row: &PgRow) -> Result<InboxRequest, StoreError> {
    let get = |name: &str| row.try_get::<String, _>(name).map_err(db_error(op));
    let kind = get("identifier_kind")?;
    let text = get("identifier")?;
    let identifier = match kind.as_str() {
        "email" => Identifier::Email(text),
        "username" => Identifier::Username(text),
        other => return Err(corrupt(op, format!("unknown identifier kind `{other}`"))),
    };
    let received_at: DateTime<Utc> = row.try_get("received_at").map_err(db_error(op))?;
    let attempts: i32 = row.try_get("attempts").map_err(db_error(op))?;
    Ok(InboxRequest {
        id: get("id")?,
        identifier,
        client: row.try_get("client").map_err(db_error(op))?,
        locale: row.try_get("locale").map_err(db_error(op))?,
        received_at: from_db(received_at),
        attempts: u32::try_from(attempts).map_err(|_| corrupt(op, "negative attempts"))?,
    })
}

#[async_trait]
impl RequestInbox for PgInbox {
    async fn push(&self, request: InboxRequest) -> Result<(), StoreError> {
        const OP: &str = "inbox.push";
        sqlx::query(self.sql.push.q())
            .bind(&request.id)
            .bind(request.identifier.kind())
            .bind(request.identifier.as_str())
            .bind(&request.client)
            .bind(&request.locale)
            .bind(to_db(request.received_at))
            .bind(self.clock.bind(request.received_at))
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(())
    }

    async fn claim(
        &self,
        now: SystemTime,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<InboxRequest>, StoreError> {
        const OP: &str = "inbox.claim";
        let rows = sqlx::query(self.sql.claim.q())
            .bind(self.clock.bind(now))
            .bind(limit(max))
            .bind(seconds(lease))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error(OP))?;
        let mut claimed: Vec<InboxRequest> = rows
            .iter()
            .map(|r| request_from_row(OP, r))
            .collect::<Result<_, _>>()?;
        // UPDATE ... RETURNING does not keep the CTE's order.
        claimed.sort_by_key(|r| r.received_at);
        Ok(claimed)
    }

    async fn done(&self, id: &str, attempts: u32) -> Result<(), StoreError> {
        const OP: &str = "inbox.done";
        sqlx::query(self.sql.done.q())
            .bind(id)
            .bind(attempt(attempts))
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(())
    }

    async fn retry_later(
        &self,
        id: &str,
        attempts: u32,
        now: SystemTime,
        delay: Duration,
    ) -> Result<(), StoreError> {
        const OP: &str = "inbox.retry_later";
        sqlx::query(self.sql.retry.q())
            .bind(id)
            .bind(attempt(attempts))
            .bind(self.clock.bind(now))
            .bind(seconds(delay))
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(())
    }

    async fn renew(
        &self,
        id: &str,
        attempts: u32,
        now: SystemTime,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        const OP: &str = "inbox.renew";
        let done = sqlx::query(self.sql.renew.q())
            .bind(id)
            .bind(attempt(attempts))
            .bind(self.clock.bind(now))
            .bind(seconds(lease))
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(done.rows_affected() > 0)
    }

    /// One statement (the `settle_request` function) when `log` is the
    /// event log of this inbox's schema and database; else `record_all`
    /// then `done`.
    async fn settle(
        &self,
        id: &str,
        attempts: u32,
        events: Vec<Event>,
        log: &dyn EventLog,
    ) -> Result<(), StoreError> {
        const OP: &str = "inbox.settle";
        if colocated::<PgEventLog>(log.colocated(), &self.pool, self.schema.as_str()).is_none() {
            return compose_settle(self, id, attempts, events, log).await;
        }
        let query = sqlx::query(self.sql.settle.q()).bind(id).bind(attempt(attempts));
        EventColumns::new(&events)
            .bind(query)
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(())
    }

    fn colocated(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    async fn len(&self) -> Result<usize, StoreError> {
        const OP: &str = "inbox.len";
        let n: i64 = sqlx::query_scalar(self.sql.len.q())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
