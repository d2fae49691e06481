use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::lock;
use crate::account::AccountId;
use crate::error::StoreError;
use crate::event::{Event, EventKind};
use crate::store::{EventCursor, EventLog, EventPage};

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

    async fn account_page(
        &self,
        account: &AccountId,
        before: Option<EventCursor>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let events = lock(&self.events);
        // Positions are the events' places in the whole log (1-based), so
        // a cursor stays valid while other accounts' events are appended.
        let numbered = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.account.as_ref() == Some(account))
            .map(|(i, e)| {
                (
                    EventCursor(u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1)),
                    e.clone(),
                )
            });
        Ok(EventPage::newest_first(numbered, before, limit))
    }
}
