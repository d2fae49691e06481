use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::lock;
use crate::error::StoreError;
use crate::store::{InboxRequest, RequestInbox};

/// Requests the in-memory inbox holds by default before `request` sheds load.
pub const DEFAULT_INBOX_CAPACITY: usize = 10_000;

#[derive(Debug)]
struct Row {
    request: InboxRequest,
    seq: u64,
    /// Due time while waiting; lease end while claimed.
    at: SystemTime,
    claimed: bool,
}

/// Every row by id, and an index of (time, seq, id) over all rows: waiting
/// rows by due time, claimed rows by lease end (a claimed row is due again
/// when its lease ends). Claiming is O(log n) per request.
#[derive(Debug, Default)]
struct State {
    rows: HashMap<String, Row>,
    by_time: BTreeSet<(SystemTime, u64, String)>,
    next_seq: u64,
}

impl State {
    fn reindex(&mut self, id: &str, at: SystemTime, claimed: bool) {
        let Some(row) = self.rows.get_mut(id) else {
            return;
        };
        self.by_time.remove(&(row.at, row.seq, id.to_owned()));
        row.at = at;
        row.claimed = claimed;
        self.by_time.insert((at, row.seq, id.to_owned()));
    }

    fn held(&self, id: &str, attempt: u32) -> bool {
        self.rows
            .get(id)
            .is_some_and(|r| r.claimed && r.request.attempts == attempt)
    }
}

/// The request inbox in memory, bounded: when `capacity` requests wait,
/// [`push`](RequestInbox::push) fails with [`StoreError::Full`] and
/// `request` answers "try again later" instead of growing. Clones share the
/// same inbox. Requests are lost if the process dies: use the PostgreSQL
/// inbox where that matters.
#[derive(Debug, Clone)]
pub struct InMemoryInbox {
    state: Arc<Mutex<State>>,
    capacity: usize,
}

impl Default for InMemoryInbox {
    fn default() -> Self {
        InMemoryInbox::with_capacity(DEFAULT_INBOX_CAPACITY)
    }
}

impl InMemoryInbox {
    /// An inbox holding at most `capacity` requests (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        InMemoryInbox {
            state: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    /// Its capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[async_trait]
impl RequestInbox for InMemoryInbox {
    async fn push(&self, request: InboxRequest) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if state.rows.len() >= self.capacity {
            return Err(StoreError::Full {
                operation: "inbox.push",
                what: "the request inbox",
                capacity: self.capacity,
            });
        }
        if state.rows.contains_key(&request.id) {
            return Err(StoreError::Corrupt {
                operation: "inbox.push",
                detail: "a request with this id is already in the inbox".into(),
            });
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        let at = request.received_at;
        state.by_time.insert((at, seq, request.id.clone()));
        state.rows.insert(
            request.id.clone(),
            Row {
                request,
                seq,
                at,
                claimed: false,
            },
        );
        Ok(())
    }

    async fn claim(
        &self,
        now: SystemTime,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<InboxRequest>, StoreError> {
        let mut state = lock(&self.state);
        let due: Vec<String> = state
            .by_time
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .take(max)
            .map(|(_, _, id)| id.clone())
            .collect();
        let until = now.checked_add(lease).unwrap_or(now);
        let mut claimed = Vec::with_capacity(due.len());
        for id in due {
            state.reindex(&id, until, true);
            if let Some(row) = state.rows.get_mut(&id) {
                row.request.attempts = row.request.attempts.saturating_add(1);
                claimed.push(row.request.clone());
            }
        }
        Ok(claimed)
    }

    async fn done(&self, id: &str, attempt: u32) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if !state.held(id, attempt) {
            return Ok(());
        }
        if let Some(row) = state.rows.remove(id) {
            state.by_time.remove(&(row.at, row.seq, id.to_owned()));
        }
        Ok(())
    }

    async fn retry_later(
        &self,
        id: &str,
        attempt: u32,
        now: SystemTime,
        delay: Duration,
    ) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if state.held(id, attempt) {
            state.reindex(id, now.checked_add(delay).unwrap_or(now), false);
        }
        Ok(())
    }

    async fn renew(
        &self,
        id: &str,
        attempt: u32,
        now: SystemTime,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let held = state.held(id, attempt);
        if held {
            state.reindex(id, now.checked_add(lease).unwrap_or(now), true);
        }
        Ok(held)
    }

    async fn len(&self) -> Result<usize, StoreError> {
        Ok(lock(&self.state).rows.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identifier::Identifier;

    fn request(id: &str, at: SystemTime) -> InboxRequest {
        InboxRequest {
            id: id.into(),
            identifier: Identifier::Email("a@example.com".into()),
            client: None,
            locale: None,
            received_at: at,
            attempts: 0,
        }
    }

    #[tokio::test]
    async fn a_full_inbox_refuses_and_a_lease_runs_out() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let inbox = InMemoryInbox::with_capacity(2);
        inbox.push(request("a", now)).await.unwrap();
        inbox.push(request("b", now)).await.unwrap();
        assert!(matches!(
            inbox.push(request("c", now)).await,
            Err(StoreError::Full { capacity: 2, .. })
        ));
        let lease = Duration::from_secs(30);
        let first = inbox.claim(now, 1, lease).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].id, "a");
        assert_eq!(first[0].attempts, 1);
        // Claimed: not handed out again until the lease ends.
        let second = inbox.claim(now, 5, lease).await.unwrap();
        assert_eq!(second.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["b"]);
        let later = now + lease;
        let again = inbox.claim(later, 5, lease).await.unwrap();
        assert_eq!(again.len(), 2, "both leases ran out");
        // The first worker's late `done` is fenced off.
        inbox.done("a", 1).await.unwrap();
        assert_eq!(inbox.len().await.unwrap(), 2);
        inbox.done("a", 2).await.unwrap();
        assert!(!inbox.renew("a", 1, later, lease).await.unwrap(), "taken over");
        inbox.retry_later("b", 2, later, lease).await.unwrap();
        assert!(inbox.claim(later, 5, lease).await.unwrap().is_empty());
        assert_eq!(inbox.claim(later + lease, 5, lease).await.unwrap()[0].attempts, 3);
        assert_eq!(inbox.len().await.unwrap(), 1);
    }
}
