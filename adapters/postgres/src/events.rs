//! [`PgEventLog`]: the activity trail in `<schema>.events`, detail as jsonb.
//! Events never hold a raw token, a password or a mail body.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use resetkit::account::AccountId;
use resetkit::activity::{Activity, ActivityCount, ActivityLog, Bucket, counted};
use resetkit::error::StoreError;
use resetkit::event::Event;
use resetkit::store::{EventCursor, EventLog, EventPage, EventRetention, Timeline};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row as _};

use crate::event_codec::{decode, encode};
use crate::ident::Ident;
use crate::util::{PgQuery, Sql, corrupt, db_error, from_db, limit, purge, to_db};

/// The event log in PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct PgEventLog {
    pub(crate) pool: PgPool,
    pub(crate) schema: Ident,
    insert: Sql,
    insert_all: Sql,
    for_account: Sql,
    recent: Sql,
    purge: Sql,
    purge_minutes: Sql,
    purge_hours: Sql,
    page: Sql,
    activity_minutes: Sql,
    activity_hours: Sql,
    deliveries: Sql,
}

impl std::fmt::Debug for PgEventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEventLog").finish_non_exhaustive()
    }
}

impl PgEventLog {
    /// An event log over `schema` (run [`crate::migrate`] first).
    pub fn new(pool: PgPool, schema: &Ident) -> Self {
        PgEventLog {
            pool,
            schema: schema.clone(),
            insert: Sql::new(
                schema,
                "INSERT INTO __SCHEMA__.events (at, account_id, kind, detail) VALUES ($1, $2, $3, $4::jsonb)",
            ),
            // The events and their per-minute counts, in one statement.
            insert_all: Sql::new(
                schema,
                "WITH minutes AS ( \
                   INSERT INTO __SCHEMA__.activity_minutes AS c (start, activity, shard, n) \
                   SELECT start, activity, (pg_backend_pid() % 8)::smallint, n \
                   FROM unnest($5::timestamptz[], $6::text[], $7::bigint[]) AS r(start, activity, n) \
                   ON CONFLICT (start, activity, shard) DO UPDATE SET n = c.n + EXCLUDED.n), \
                 hours AS ( \
                   INSERT INTO __SCHEMA__.activity_hours AS c (start, activity, shard, n) \
                   SELECT start, activity, (pg_backend_pid() % 8)::smallint, n \
                   FROM unnest($8::timestamptz[], $9::text[], $10::bigint[]) AS r(start, activity, n) \
                   ON CONFLICT (start, activity, shard) DO UPDATE SET n = c.n + EXCLUDED.n) \
                 INSERT INTO __SCHEMA__.events (at, account_id, kind, detail) \
                 SELECT at, account_id, kind, detail::jsonb \
                 FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[]) \
                   WITH ORDINALITY AS e(at, account_id, kind, detail, n) ORDER BY n",
            ),
            purge_minutes: Sql::new(schema, "DELETE FROM __SCHEMA__.activity_minutes WHERE start < $1"),
            purge_hours: Sql::new(schema, "DELETE FROM __SCHEMA__.activity_hours WHERE start < $1"),
            // Ranges of the primary keys: at most periods × kinds × 8 rows.
            activity_minutes: Sql::new(
                schema,
                "SELECT start, activity, sum(n)::bigint AS n FROM __SCHEMA__.activity_minutes \
                 WHERE start >= $1 AND start < $2 GROUP BY start, activity",
            ),
            activity_hours: Sql::new(
                schema,
                "SELECT start, activity, sum(n)::bigint AS n FROM __SCHEMA__.activity_hours \
                 WHERE start >= $1 AND start < $2 GROUP BY start, activity",
            ),
            // `events_deliveries`, read backwards.
            deliveries: Sql::new(
                schema,
                "SELECT id, at, account_id, kind, detail::text AS detail FROM __SCHEMA__.events \
                 WHERE kind IN ('email_sent', 'delivery_failed', 'server_replied') AND at >= $1 \
                 ORDER BY id DESC LIMIT $2",
            ),
            for_account: Sql::new(
                schema,
                "SELECT id, at, account_id, kind, detail::text AS detail FROM __SCHEMA__.events \
                 WHERE account_id = $1 ORDER BY id",
            ),
            recent: Sql::new(
                schema,
                "SELECT * FROM (SELECT id, at, account_id, kind, detail::text AS detail \
                 FROM __SCHEMA__.events ORDER BY id DESC LIMIT $1) e ORDER BY id",
            ),
            purge: Sql::new(
                schema,
                "DELETE FROM __SCHEMA__.events WHERE id IN ( \
                 SELECT id FROM __SCHEMA__.events WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            ),
            // A backward range scan of `events_account` (account_id, id):
            // reads only the page, however long the account's trail.
            page: Sql::new(
                schema,
                "SELECT id, at, account_id, kind, detail::text AS detail FROM __SCHEMA__.events \
                 WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            ),
        }
    }
}

/// Counts per (period, activity), one row each: a statement may not update
/// a counter row twice.
#[derive(Default)]
struct Counts(BTreeMap<(SystemTime, &'static str), i64>);

impl Counts {
    fn add(&mut self, start: SystemTime, activity: Activity, n: u64) {
        let slot = self.0.entry((start, activity.as_str())).or_insert(0);
        *slot = slot.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
    }

    fn columns(&self) -> (Vec<DateTime<Utc>>, Vec<&'static str>, Vec<i64>) {
        (
            self.0.keys().map(|(s, _)| to_db(*s)).collect(),
            self.0.keys().map(|(_, a)| *a).collect(),
            self.0.values().copied().collect(),
        )
    }
}

/// The columns of one step's events and of their per-minute and per-hour
/// counts, bound as 10 arrays in the order `record_all` and the
/// `record_events` SQL function take them.
pub(crate) struct EventColumns {
    at: Vec<DateTime<Utc>>,
    account: Vec<Option<String>>,
    kind: Vec<String>,
    detail: Vec<String>,
    minutes: Counts,
    hours: Counts,
}

impl EventColumns {
    pub(crate) fn new(events: &[Event]) -> Self {
        let mut c = EventColumns {
            at: Vec::with_capacity(events.len()),
            account: Vec::with_capacity(events.len()),
            kind: Vec::with_capacity(events.len()),
            detail: Vec::with_capacity(events.len()),
            minutes: Counts::default(),
            hours: Counts::default(),
        };
        for event in events {
            let (name, value) = encode(&event.kind);
            c.at.push(to_db(event.at));
            c.account.push(event.account.as_ref().map(|a| a.0.clone()));
            c.kind.push(name.to_owned());
            c.detail.push(value.to_string());
            for (activity, n) in counted(&event.kind) {
                c.minutes.add(Bucket::Minute.start_of(event.at), activity, n);
                c.hours.add(Bucket::Hour.start_of(event.at), activity, n);
            }
        }
        c
    }

    pub(crate) fn bind(self, query: PgQuery<'_>) -> PgQuery<'_> {
        let (m_start, m_activity, m_n) = self.minutes.columns();
        let (h_start, h_activity, h_n) = self.hours.columns();
        query
            .bind(self.at)
            .bind(self.account)
            .bind(self.kind)
            .bind(self.detail)
            .bind(m_start)
            .bind(m_activity)
            .bind(m_n)
            .bind(h_start)
            .bind(h_activity)
            .bind(h_n)
    }
}

fn event_from_row(op: &'static str, row: &PgRow) -> Result<Event, StoreError> {
    let kind: String = row.try_get("kind").map_err(db_error(op))?;
    let detail: String = row.try_get("detail").map_err(db_error(op))?;
    let detail: serde_json::Value =
        serde_json::from_str(&detail).map_err(|e| corrupt(op, format!("event detail: {e}")))?;
    let kind = decode(&kind, &detail).map_err(|e| corrupt(op, format!("event `{kind}`: {e}")))?;
    let account: Option<String> = row.try_get("account_id").map_err(db_error(op))?;
    Ok(Event::new(
        from_db(row.try_get("at").map_err(db_error(op))?),
        account.map(AccountId),
        kind,
    ))
}

#[async_trait]
impl EventLog for PgEventLog {
    async fn record(&self, event: Event) -> Result<(), StoreError> {
        const OP: &str = "events.record";
        if !counted(&event.kind).is_empty() {
            return self.record_all(vec![event]).await;
        }
        let (name, detail) = encode(&event.kind);
        sqlx::query(self.insert.q())
            .bind(to_db(event.at))
            .bind(event.account.as_ref().map(|a| a.0.as_str()))
            .bind(name)
            .bind(detail.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(())
    }

    async fn record_all(&self, events: Vec<Event>) -> Result<(), StoreError> {
        const OP: &str = "events.record_all";
        if events.is_empty() {
            return Ok(());
        }
        EventColumns::new(&events)
            .bind(sqlx::query(self.insert_all.q()))
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(())
    }

    fn colocated(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

#[async_trait]
impl EventRetention for PgEventLog {
    async fn purge_before(&self, before: std::time::SystemTime, batch: usize) -> Result<usize, StoreError> {
        const OP: &str = "events.purge_before";
        let purged = purge(&self.pool, &self.purge, OP, before, batch).await?;
        for (sql, bucket) in [
            (&self.purge_minutes, Bucket::Minute),
            (&self.purge_hours, Bucket::Hour),
        ] {
            sqlx::query(sql.q())
                .bind(to_db(bucket.start_of(before)))
                .execute(&self.pool)
                .await
                .map_err(db_error(OP))?;
        }
        Ok(purged)
    }
}

#[async_trait]
impl Timeline for PgEventLog {
    async fn for_account(&self, account: &AccountId) -> Result<Vec<Event>, StoreError> {
        const OP: &str = "events.for_account";
        let rows = sqlx::query(self.for_account.q())
            .bind(&account.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error(OP))?;
        rows.iter().map(|r| event_from_row(OP, r)).collect()
    }

    async fn recent(&self, n: usize) -> Result<Vec<Event>, StoreError> {
        const OP: &str = "events.recent";
        let rows = sqlx::query(self.recent.q())
            .bind(limit(n))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error(OP))?;
        rows.iter().map(|r| event_from_row(OP, r)).collect()
    }

    async fn account_page(
        &self,
        account: &AccountId,
        before: Option<EventCursor>,
        n: usize,
    ) -> Result<EventPage, StoreError> {
        const OP: &str = "events.account_page";
        let n = n.max(1);
        let before = before.map_or(i64::MAX, |c| i64::try_from(c.0).unwrap_or(i64::MAX));
        // One row more than asked tells whether an older page exists.
        let rows = sqlx::query(self.page.q())
            .bind(&account.0)
            .bind(before)
            .bind(limit(n.saturating_add(1)))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error(OP))?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows.iter().take(n) {
            let id: i64 = row.try_get("id").map_err(db_error(OP))?;
            let id = u64::try_from(id).map_err(|_| corrupt(OP, format!("negative event id {id}")))?;
            events.push((EventCursor(id), event_from_row(OP, row)?));
        }
        let next = if rows.len() > n {
            events.last().map(|(c, _)| *c)
        } else {
            None
        };
        Ok(EventPage { events, next })
    }
}

#[async_trait]
impl ActivityLog for PgEventLog {
    async fn activity(
        &self,
        bucket: Bucket,
        from: SystemTime,
        until: SystemTime,
    ) -> Result<Vec<ActivityCount>, StoreError> {
        const OP: &str = "events.activity";
        let sql = match bucket {
            Bucket::Hour => &self.activity_hours,
            _ => &self.activity_minutes,
        };
        let rows = sqlx::query(sql.q())
            .bind(to_db(from))
            .bind(to_db(until))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error(OP))?;
        let mut counts = Vec::with_capacity(rows.len());
        for row in &rows {
            let start: DateTime<Utc> = row.try_get("start").map_err(db_error(OP))?;
            let name: String = row.try_get("activity").map_err(db_error(OP))?;
            let n: i64 = row.try_get("n").map_err(db_error(OP))?;
            // A kind this version does not know (written by a newer one) is skipped.
            let Some(activity) = Activity::parse(&name) else {
                continue;
            };
            counts.push(ActivityCount {
                start: from_db(start),
                activity,
                count: u64::try_from(n).unwrap_or(0),
            });
        }
        Ok(counts)
    }

    async fn deliveries(&self, since: SystemTime, n: usize) -> Result<Vec<Event>, StoreError> {
        const OP: &str = "events.deliveries";
        let rows = sqlx::query(self.deliveries.q())
            .bind(to_db(since))
            .bind(limit(n))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error(OP))?;
        rows.iter().map(|r| event_from_row(OP, r)).collect()
    }
}
