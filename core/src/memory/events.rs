use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::lock;
use crate::account::AccountId;
use crate::error::StoreError;
use crate::event::{Event, EventKind};
use crate::store::EventLog;

/// Events in memory; clones share the same log.
#[derive(Debug, Clone, Default)]
pub struct InMemoryEventLog {
    events: Arc<Mutex<Vec<Event>>>,
}

impl InMemoryEventLog {
    /// Every event, oldest first.
    pub fn all(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// Events matching `pred`.
    pub fn matching(&self, pred: impl Fn(&EventKind) -> bool) -> Vec<Event> {
        lock(&self.events)
            .iter()
            .filter(|e| pred(&e.kind))
            .cloned()
            .collect()
    }
}

#[async_trait]
impl EventLog for InMemoryEventLog {
    async fn record(&self, event: Event) -> Result<(), StoreError> {
        lock(&self.events).push(event);
        Ok(())
    }

    async fn for_account(&self, account: &AccountId) -> Result<Vec<Event>, StoreError> {
        Ok(lock(&self.events)
            .iter()
            .filter(|e| e.account.as_ref() == Some(account))
            .cloned()
            .collect())
    }

    async fn recent(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        let events = lock(&self.events);
        let skip = events.len().saturating_sub(limit);
        Ok(events.iter().skip(skip).cloned().collect())
    }
}
