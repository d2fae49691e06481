use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::lock;
use crate::activity::QueueAge;
use crate::error::StoreError;
use crate::mail::DeliveryError;
use crate::store::{
    Outbox, OutboxCounts, OutboxEntry, OutboxListing, OutboxMessage, OutboxRetention, OutboxState,
    OutboxStatus,
};

/// Messages the in-memory outbox holds waiting by default before it
/// refuses more (the request worker then leaves requests in the inbox).
pub const DEFAULT_OUTBOX_CAPACITY: usize = 10_000;

#[derive(Debug)]
struct Row {
    entry: OutboxEntry,
    status: OutboxStatus,
    lease_until: Option<SystemTime>,
    seq: u64,
    /// When it was last claimed (the time of its latest attempt).
    claimed_at: Option<SystemTime>,
    /// When it was sent, given up or dropped.
    finished_at: Option<SystemTime>,
    /// The last delivery error, if any.
    last_error: Option<String>,
    /// When it was queued.
    queued_at: SystemTime,
    /// Order in which messages finished (orders the failed / dropped listings).
    finished_seq: u64,
}

impl Row {
    /// Its key in the index of waiting messages: due time (pending) or
    /// lease end (claimed).
    fn due_key(&self, id: &str) -> Option<(SystemTime, u64, String)> {
        match self.status {
            OutboxStatus::Pending => Some((self.entry.next_attempt_at, self.seq, id.to_owned())),
            OutboxStatus::Claimed => self.lease_until.map(|l| (l, self.seq, id.to_owned())),
            _ => None,
        }
    }

    fn finished_key(&self, id: &str) -> Option<(SystemTime, u64, String)> {
        self.finished_at.map(|at| (at, self.seq, id.to_owned()))
    }
}

impl Row {
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

    /// Whether the message is still claimed for this attempt.
    fn held_by(&self, attempt: u32) -> bool {
        self.status == OutboxStatus::Claimed && self.entry.attempts == attempt
    }
}

/// Rows by message id, with two indexes so that nothing scans every
/// message ever queued: waiting messages by due time / lease end (claim is
/// O(log n) per message) and finished ones by finish time (purge).
#[derive(Debug, Default)]
struct State {
    rows: BTreeMap<String, Row>,
    due: BTreeSet<(SystemTime, u64, String)>,
    finished: BTreeSet<(SystemTime, u64, String)>,
    counts: OutboxCounts,
    next_seq: u64,
}

impl State {
    /// Applies `change` to a row, keeping the indexes and counts in step.
    fn update(&mut self, id: &str, change: impl FnOnce(&mut Row)) {
        let Some(row) = self.rows.get_mut(id) else {
            return;
        };
        if let Some(key) = row.due_key(id) {
            self.due.remove(&key);
        }
        if let Some(key) = row.finished_key(id) {
            self.finished.remove(&key);
        }
        count(&mut self.counts, &row.status, false);
        let before = row.status.clone();
        change(row);
        count(&mut self.counts, &row.status, true);
        if row.status != before && row.due_key(id).is_none() {
            self.next_seq += 1;
            row.finished_seq = self.next_seq;
        }
        if let Some(key) = row.due_key(id) {
            self.due.insert(key);
        }
        if let Some(key) = row.finished_key(id) {
            self.finished.insert(key);
            // Done with: its links must not linger in memory.
            row.entry.email.blank_bodies();
            row.entry.tokens = Vec::new();
        }
    }

    /// Forgets the oldest finished messages beyond `keep`, so that the
    /// record of finished mail stays bounded between retention purges.
    fn trim_finished(&mut self, keep: usize) {
        while self.finished.len() > keep {
            let Some(oldest) = self.finished.pop_first() else {
                return;
            };
            if let Some(row) = self.rows.remove(&oldest.2) {
                count(&mut self.counts, &row.status, false);
            }
        }
    }
}

fn count(counts: &mut OutboxCounts, status: &OutboxStatus, add: bool) {
    let slot = match status {
        OutboxStatus::Pending | OutboxStatus::Claimed => &mut counts.waiting,
        OutboxStatus::Sent => &mut counts.sent,
        OutboxStatus::Failed { .. } => &mut counts.failed,
        OutboxStatus::Dropped { .. } => &mut counts.dropped,
    };
    *slot = if add {
        slot.saturating_add(1)
    } else {
        slot.saturating_sub(1)
    };
}

/// Outbox in memory; clones share the same queue. At most `capacity`
/// messages wait at once (enqueue then fails with [`StoreError::Full`]);
/// finished messages (bodies forgotten) stay until
/// [`OutboxRetention::purge_finished`](crate::store::OutboxRetention::purge_finished) removes them, and at most `capacity` of them
/// are kept: past that the oldest is forgotten (its status becomes unknown).
#[derive(Debug, Clone)]
pub struct InMemoryOutbox {
    state: Arc<Mutex<State>>,
    capacity: usize,
}

impl Default for InMemoryOutbox {
    fn default() -> Self {
        InMemoryOutbox::with_capacity(DEFAULT_OUTBOX_CAPACITY)
    }
}

impl InMemoryOutbox {
    /// An outbox holding at most `capacity` waiting messages (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        InMemoryOutbox {
            state: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    /// How many messages it holds in any state.
    pub fn len(&self) -> usize {
        lock(&self.state).rows.len()
    }

    /// Whether it holds no message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl QueueAge for InMemoryOutbox {
    async fn oldest_waiting(&self) -> Result<Option<SystemTime>, StoreError> {
        // At most `capacity` messages wait: a bounded walk.
        let state = lock(&self.state);
        Ok(state
            .due
            .iter()
            .filter_map(|(_, _, id)| state.rows.get(id).map(|r| r.queued_at))
            .min())
    }
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
        if state.counts.waiting >= self.capacity {
            return Err(StoreError::Full {
                operation: "outbox.enqueue",
                what: "the outbox",
                capacity: self.capacity,
            });
        }
        let id = entry.email.message_id.clone();
        if state.rows.contains_key(&id) {
            return Err(StoreError::Corrupt {
                operation: "outbox.enqueue",
                detail: format!("message `{id}` is already in the outbox"),
            });
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        let row = Row {
            queued_at: entry.next_attempt_at,
            entry,
            status: OutboxStatus::Pending,
            lease_until: None,
            seq,
            claimed_at: None,
            finished_at: None,
            last_error: None,
            finished_seq: 0,
        };
        if let Some(key) = row.due_key(&id) {
            state.due.insert(key);
        }
        count(&mut state.counts, &row.status, true);
        state.rows.insert(id, row);
        Ok(())
    }

    async fn claim(
        &self,
        now: SystemTime,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut state = lock(&self.state);
        let due: Vec<String> = state
            .due
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .take(max)
            .map(|(_, _, id)| id.clone())
            .collect();
        let until = now.checked_add(lease).unwrap_or(now);
        let mut claimed = Vec::with_capacity(due.len());
        for id in due {
            state.update(&id, |row| {
                row.status = OutboxStatus::Claimed;
                row.lease_until = Some(until);
                row.claimed_at = Some(now);
                row.entry.attempts += 1;
                claimed.push(row.entry.clone());
            });
        }
        Ok(claimed)
    }

    async fn mark_sent(&self, message_id: &str, attempt: u32, now: SystemTime) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let row = state
            .rows
            .get(message_id)
            .ok_or_else(|| not_found("outbox.mark_sent", message_id))?;
        if !row.held_by(attempt) {
            return Ok(());
        }
        state.update(message_id, |row| {
            row.status = OutboxStatus::Sent;
            row.lease_until = None;
            row.finished_at = Some(now);
        });
        state.trim_finished(self.capacity);
        Ok(())
    }

    async fn mark_failed(
        &self,
        message_id: &str,
        attempt: u32,
        error: &DeliveryError,
        now: SystemTime,
        retry_in: Option<Duration>,
    ) -> Result<(), StoreError> {
        let retry_at = retry_in.map(|d| now.checked_add(d).unwrap_or(now));
        let mut state = lock(&self.state);
        let row = state
            .rows
            .get(message_id)
            .ok_or_else(|| not_found("outbox.mark_failed", message_id))?;
        if !row.held_by(attempt) {
            return Ok(());
        }
        state.update(message_id, |row| {
            let attempted = row.claimed_at.unwrap_or(row.entry.next_attempt_at);
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
                    row.finished_at = Some(attempted);
                }
            }
        });
        state.trim_finished(self.capacity);
        Ok(())
    }

    async fn renew(
        &self,
        message_id: &str,
        attempt: u32,
        now: SystemTime,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let held = state.rows.get(message_id).is_some_and(|row| row.held_by(attempt));
        if held {
            state.update(message_id, |row| {
                row.lease_until = Some(now.checked_add(lease).unwrap_or(now));
            });
        }
        Ok(held)
    }

    async fn mark_dropped(&self, message_id: &str, attempt: u32, reason: &str) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let row = state
            .rows
            .get(message_id)
            .ok_or_else(|| not_found("outbox.mark_dropped", message_id))?;
        if !row.held_by(attempt) {
            return Ok(());
        }
        state.update(message_id, |row| {
            row.finished_at = Some(row.claimed_at.unwrap_or(row.entry.next_attempt_at));
            row.lease_until = None;
            row.status = OutboxStatus::Dropped {
                reason: reason.to_owned(),
            };
        });
        state.trim_finished(self.capacity);
        Ok(())
    }

    async fn status(&self, message_id: &str) -> Result<Option<OutboxStatus>, StoreError> {
        Ok(lock(&self.state).rows.get(message_id).map(|r| r.status.clone()))
    }

    async fn counts(&self) -> Result<OutboxCounts, StoreError> {
        Ok(lock(&self.state).counts)
    }
}

#[async_trait]
impl OutboxListing for InMemoryOutbox {
    async fn list_by_state(
        &self,
        wanted: OutboxState,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let state = lock(&self.state);
        if wanted == OutboxState::Waiting {
            // The due index is in (due time, seq) order already.
            return Ok(state
                .due
                .iter()
                .filter_map(|(_, _, id)| state.rows.get(id))
                .take(limit)
                .map(Row::listing)
                .collect());
        }
        let mut rows: Vec<&Row> = state
            .finished
            .iter()
            .filter_map(|(_, _, id)| state.rows.get(id))
            .filter(|r| {
                matches!(
                    (&r.status, wanted),
                    (OutboxStatus::Failed { .. }, OutboxState::Failed)
                        | (OutboxStatus::Dropped { .. }, OutboxState::Dropped)
                )
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.finished_seq));
        Ok(rows.into_iter().take(limit).map(Row::listing).collect())
    }

    async fn message(&self, message_id: &str) -> Result<Option<OutboxMessage>, StoreError> {
        Ok(lock(&self.state).rows.get(message_id).map(Row::listing))
    }

    async fn retire_failed(&self, message_id: &str, reason: &str) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        if !state
            .rows
            .get(message_id)
            .is_some_and(|r| matches!(r.status, OutboxStatus::Failed { .. }))
        {
            return Ok(false);
        }
        state.update(message_id, |row| {
            row.status = OutboxStatus::Dropped {
                reason: reason.to_owned(),
            };
        });
        Ok(true)
    }
}

#[async_trait]
impl OutboxRetention for InMemoryOutbox {
    async fn purge_finished(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError> {
        let mut state = lock(&self.state);
        let doomed: Vec<(SystemTime, u64, String)> = state
            .finished
            .iter()
            .take_while(|(at, _, _)| *at < before)
            .take(batch)
            .cloned()
            .collect();
        for key in &doomed {
            state.finished.remove(key);
            if let Some(row) = state.rows.remove(&key.2) {
                count(&mut state.counts, &row.status, false);
            }
        }
        Ok(doomed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{EmailKind, MailContent, Mailbox, OutgoingEmail};

    fn entry(n: usize, at: SystemTime) -> OutboxEntry {
        OutboxEntry {
            email: OutgoingEmail::new(
                format!("<m{n}@example.com>"),
                EmailKind::Reset,
                Mailbox::address_only("noreply@example.com").unwrap(),
                None,
                Mailbox::address_only("a@example.com").unwrap(),
                MailContent {
                    subject: "s".into(),
                    text: "https://app.example.com/reset?token=live".into(),
                    html: String::new(),
                },
            ),
            account: None,
            attempts: 0,
            next_attempt_at: at,
            tokens: Vec::new(),
            requested_at: None,
        }
    }

    #[tokio::test]
    async fn waiting_and_finished_messages_are_both_bounded() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let outbox = InMemoryOutbox::with_capacity(2);
        outbox.enqueue(entry(0, t0)).await.unwrap();
        outbox.enqueue(entry(1, t0)).await.unwrap();
        assert!(matches!(
            outbox.enqueue(entry(2, t0)).await,
            Err(StoreError::Full { capacity: 2, .. })
        ));
        for round in 0..3u64 {
            let now = t0 + Duration::from_secs(round);
            for claimed in outbox.claim(now, 2, Duration::from_secs(60)).await.unwrap() {
                outbox
                    .mark_sent(&claimed.email.message_id, claimed.attempts, now)
                    .await
                    .unwrap();
            }
            let n = 2 + 2 * usize::try_from(round).unwrap();
            outbox.enqueue(entry(n, now)).await.unwrap();
            outbox.enqueue(entry(n + 1, now)).await.unwrap();
        }
        // Six sent, two waiting: only the two newest sent ones are kept.
        assert_eq!(outbox.len(), 4);
        assert_eq!(outbox.status("<m0@example.com>").await.unwrap(), None);
        assert_eq!(
            outbox.status("<m5@example.com>").await.unwrap(),
            Some(OutboxStatus::Sent)
        );
        let counts = outbox.counts().await.unwrap();
        assert_eq!((counts.sent, counts.waiting), (2, 2));
        // Finished messages no longer hold their bodies.
        let state = lock(&outbox.state);
        assert!(
            state.rows["<m5@example.com>"]
                .entry
                .email
                .expose_text()
                .is_empty()
        );
    }
}
