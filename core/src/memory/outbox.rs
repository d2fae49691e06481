use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::lock;
use crate::error::StoreError;
use crate::mail::DeliveryError;
use crate::store::{Outbox, OutboxCounts, OutboxEntry, OutboxMessage, OutboxState, OutboxStatus};

#[derive(Debug)]
struct Row {
    entry: OutboxEntry,
    status: OutboxStatus,
    lease_until: Option<SystemTime>,
    seq: u64,
    last_error: Option<String>,
    /// When it was sent, given up or dropped (orders those listings).
    finished_seq: u64,
}

impl Row {
    /// Whether the message is still claimed for this attempt.
    fn held_by(&self, attempt: u32) -> bool {
        self.status == OutboxStatus::Claimed && self.entry.attempts == attempt
    }

    fn listing(&self) -> OutboxMessage {
        let email = &self.entry.email;
        OutboxMessage {
            message_id: email.message_id.clone(),
            account: self.entry.account.clone(),
            kind: email.kind,
            from: email.from.address().to_owned(),
            to: email.to.address().to_owned(),
            attempts: self.entry.attempts,
            next_attempt_at: self.entry.next_attempt_at,
            status: self.status.clone(),
            last_error: self.last_error.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    rows: BTreeMap<String, Row>,
    next_seq: u64,
}

/// Outbox in memory; clones share the same queue.
#[derive(Debug, Clone, Default)]
pub struct InMemoryOutbox {
    state: Arc<Mutex<State>>,
}

fn not_found(operation: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        operation,
        what: format!("outbox message `{id}`"),
    }
}

#[async_trait]
impl Outbox for InMemoryOutbox {
    async fn enqueue(&self, entry: OutboxEntry) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let seq = state.next_seq;
        state.next_seq += 1;
        state.rows.insert(
            entry.email.message_id.clone(),
            Row {
                entry,
                status: OutboxStatus::Pending,
                lease_until: None,
                seq,
                last_error: None,
                finished_seq: 0,
            },
        );
        Ok(())
    }

    async fn claim(
        &self,
        now: SystemTime,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut state = lock(&self.state);
        let mut due: Vec<&mut Row> = state
            .rows
            .values_mut()
            .filter(|r| match r.status {
                OutboxStatus::Pending => r.entry.next_attempt_at <= now,
                OutboxStatus::Claimed => r.lease_until.is_some_and(|l| l <= now),
                _ => false,
            })
            .collect();
        due.sort_by_key(|r| (r.entry.next_attempt_at, r.seq));
        Ok(due
            .into_iter()
            .take(max)
            .map(|row| {
                row.status = OutboxStatus::Claimed;
                row.lease_until = Some(now.checked_add(lease).unwrap_or(now));
                row.entry.attempts += 1;
                row.entry.clone()
            })
            .collect())
    }

    async fn mark_sent(&self, message_id: &str, attempt: u32, _now: SystemTime) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let row = state
            .rows
            .get_mut(message_id)
            .ok_or_else(|| not_found("outbox.mark_sent", message_id))?;
        if !row.held_by(attempt) {
            return Ok(());
        }
        row.status = OutboxStatus::Sent;
        row.lease_until = None;
        Ok(())
    }

    async fn mark_failed(
        &self,
        message_id: &str,
        attempt: u32,
        error: &DeliveryError,
        retry_at: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let row = state
            .rows
            .get_mut(message_id)
            .ok_or_else(|| not_found("outbox.mark_failed", message_id))?;
        if !row.held_by(attempt) {
            return Ok(());
        }
        row.lease_until = None;
        row.last_error = Some(error.to_string());
        match retry_at {
            Some(at) => {
                row.status = OutboxStatus::Pending;
                row.entry.next_attempt_at = at;
            }
            None => {
                row.status = OutboxStatus::Failed {
                    reason: error.to_string(),
                };
                state.next_seq += 1;
                let seq = state.next_seq;
                if let Some(row) = state.rows.get_mut(message_id) {
                    row.finished_seq = seq;
                }
            }
        }
        Ok(())
    }

    async fn mark_dropped(&self, message_id: &str, attempt: u32, reason: &str) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let row = state
            .rows
            .get_mut(message_id)
            .ok_or_else(|| not_found("outbox.mark_dropped", message_id))?;
        if !row.held_by(attempt) {
            return Ok(());
        }
        row.lease_until = None;
        row.status = OutboxStatus::Dropped {
            reason: reason.to_owned(),
        };
        state.next_seq += 1;
        let seq = state.next_seq;
        if let Some(row) = state.rows.get_mut(message_id) {
            row.finished_seq = seq;
        }
        Ok(())
    }

    async fn status(&self, message_id: &str) -> Result<Option<OutboxStatus>, StoreError> {
        Ok(lock(&self.state).rows.get(message_id).map(|r| r.status.clone()))
    }

    async fn counts(&self) -> Result<OutboxCounts, StoreError> {
        let state = lock(&self.state);
        let mut counts = OutboxCounts::default();
        for row in state.rows.values() {
            match row.status {
                OutboxStatus::Pending | OutboxStatus::Claimed => counts.waiting += 1,
                OutboxStatus::Sent => counts.sent += 1,
                OutboxStatus::Failed { .. } => counts.failed += 1,
                OutboxStatus::Dropped { .. } => counts.dropped += 1,
            }
        }
        Ok(counts)
    }

    async fn list_by_state(
        &self,
        wanted: OutboxState,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let state = lock(&self.state);
        let mut rows: Vec<&Row> = state
            .rows
            .values()
            .filter(|r| {
                matches!(
                    (&r.status, wanted),
                    (
                        OutboxStatus::Pending | OutboxStatus::Claimed,
                        OutboxState::Waiting
                    ) | (OutboxStatus::Failed { .. }, OutboxState::Failed)
                        | (OutboxStatus::Dropped { .. }, OutboxState::Dropped)
                )
            })
            .collect();
        if wanted == OutboxState::Waiting {
            rows.sort_by_key(|r| (r.entry.next_attempt_at, r.seq));
        } else {
            rows.sort_by_key(|r| std::cmp::Reverse(r.finished_seq));
        }
        Ok(rows.into_iter().take(limit).map(Row::listing).collect())
    }

    async fn message(&self, message_id: &str) -> Result<Option<OutboxMessage>, StoreError> {
        Ok(lock(&self.state).rows.get(message_id).map(Row::listing))
    }

    async fn retire_failed(&self, message_id: &str, reason: &str) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        state.next_seq += 1;
        let seq = state.next_seq;
        let Some(row) = state.rows.get_mut(message_id) else {
            return Ok(false);
        };
        if !matches!(row.status, OutboxStatus::Failed { .. }) {
            return Ok(false);
        }
        row.status = OutboxStatus::Dropped {
            reason: reason.to_owned(),
        };
        row.finished_seq = seq;
        Ok(true)
    }
}
