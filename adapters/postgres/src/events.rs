//! [`PgEventLog`]: the activity trail in `<schema>.events`, detail as jsonb.
//! Events never hold a raw token, a password or a mail body.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use resetkit::account::AccountId;
use resetkit::activity::{Activity, ActivityCount, ActivityLog, counted, minute_of};
use resetkit::error::StoreError;
use resetkit::event::Event;
use resetkit::store::{EventCursor, EventLog, EventPage};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row as _};

use crate::event_codec::{decode, encode};
use crate::ident::Ident;
use crate::util::{Sql, corrupt, db_error, from_db, limit, purge, to_db};

/// The event log in PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct PgEventLog {
    pool: PgPool,
    insert: Sql,
    insert_all: Sql,
    for_account: Sql,
    recent: Sql,
    purge: Sql,
    purge_counts: Sql,
    page: Sql,
    activity: Sql,
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
            insert: Sql::new(
                schema,
                "INSERT INTO __SCHEMA__.events (at, account_id, kind, detail) VALUES ($1, $2, $3, $4::jsonb)",
            ),
            // The events and their per-minute counts, in one statement.
            insert_all: Sql::new(
                schema,
                "WITH counted AS ( \
                   INSERT INTO __SCHEMA__.activity_counts AS c (minute, activity, shard, n) \
                   SELECT minute, activity, (pg_backend_pid() % 8)::smallint, n \
                   FROM unnest($5::timestamptz[], $6::text[], $7::bigint[]) AS r(minute, activity, n) \
                   ON CONFLICT (minute, activity, shard) DO UPDATE SET n = c.n + EXCLUDED.n) \
                 INSERT INTO __SCHEMA__.events (at, account_id, kind, detail) \
                 SELECT at, account_id, kind, detail::jsonb \
                 FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[]) \
                   WITH ORDINALITY AS e(at, account_id, kind, detail, n) ORDER BY n",
            ),
            purge_counts: Sql::new(schema, "DELETE FROM __SCHEMA__.activity_counts WHERE minute < $1"),
            // A range of the primary key: at most minutes × kinds × 8 rows.
            activity: Sql::new(
                schema,
                "SELECT minute, activity, sum(n)::bigint AS n FROM __SCHEMA__.activity_counts \
                 WHERE minute >= $1 AND minute < $2 GROUP BY minute, activity",
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
        let mut at = Vec::with_capacity(events.len());
        let mut account = Vec::with_capacity(events.len());
        let mut kind = Vec::with_capacity(events.len());
        let mut detail = Vec::with_capacity(events.len());
        // One row per (minute, activity): a statement may not update a
        // counter row twice.
        let mut counts: BTreeMap<(SystemTime, &'static str), i64> = BTreeMap::new();
        for event in &events {
            let (name, value) = encode(&event.kind);
            at.push(to_db(event.at));
            account.push(event.account.as_ref().map(|a| a.0.clone()));
            kind.push(name.to_owned());
            detail.push(value.to_string());
            for (activity, n) in counted(&event.kind) {
                let slot = counts
                    .entry((minute_of(event.at), activity.as_str()))
                    .or_insert(0);
                *slot = slot.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        let minutes: Vec<_> = counts.keys().map(|(m, _)| to_db(*m)).collect();
        let activities: Vec<&str> = counts.keys().map(|(_, a)| *a).collect();
        let ns: Vec<i64> = counts.values().copied().collect();
        sqlx::query(self.insert_all.q())
            .bind(at)
            .bind(account)
            .bind(kind)
            .bind(detail)
            .bind(minutes)
            .bind(activities)
            .bind(ns)
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(())
    }

    async fn for_account(&self, account: &AccountId) -> Result<Vec<Event>, StoreError> {
        const OP: &str = "events.for_account";
        let rows = sqlx::query(self.for_account.q())
            .bind(&account.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error(OP))?;
        rows.iter().map(|r| event_from_row(OP, r)).collect()
    }

    async fn purge_before(&self, before: std::time::SystemTime, batch: usize) -> Result<usize, StoreError> {
        const OP: &str = "events.purge_before";
        let purged = purge(&self.pool, &self.purge, OP, before, batch).await?;
        sqlx::query(self.purge_counts.q())
            .bind(to_db(minute_of(before)))
            .execute(&self.pool)
            .await
            .map_err(db_error(OP))?;
        Ok(purged)
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
    async fn activity(&self, from: SystemTime, until: SystemTime) -> Result<Vec<ActivityCount>, StoreError> {
        const OP: &str = "events.activity";
        let rows = sqlx::query(self.activity.q())
            .bind(to_db(from))
            .bind(to_db(until))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error(OP))?;
        let mut counts = Vec::with_capacity(rows.len());
        for row in &rows {
            let minute: DateTime<Utc> = row.try_get("minute").map_err(db_error(OP))?;
            let name: String = row.try_get("activity").map_err(db_error(OP))?;
            let n: i64 = row.try_get("n").map_err(db_error(OP))?;
            // A kind this version does not know (written by a newer one) is skipped.
            let Some(activity) = Activity::parse(&name) else {
                continue;
            };
            counts.push(ActivityCount {
                minute: from_db(minute),
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
