use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::lock;
use crate::account::AccountId;
use crate::activity::{Activity, ActivityCount, ActivityLog, Bucket, counted, minute_of};
use crate::error::StoreError;
use crate::event::{Event, EventKind};
use crate::store::{EventCursor, EventLog, EventPage, EventRetention, Timeline};

/// Events the in-memory log keeps by default.
pub const DEFAULT_EVENT_CAPACITY: usize = 100_000;

/// Events in memory; clones share the same log. It keeps at most
/// `capacity` events, so a long-running process does not grow without
/// bound; [`EventRetention::purge_before`](crate::store::EventRetention::purge_before) applies a retention time. When full, a
/// tenth of the capacity is dropped (amortised O(1) appends), taken so that
/// a flood does not erase everyone's history: first the oldest events tied
/// to no account (refused and unknown requests), then the oldest events of
/// the account holding the most, never another account's while one holds
/// more.
#[derive(Debug, Clone)]
pub struct InMemoryEventLog {
    events: Arc<Mutex<Vec<Event>>>,
    capacity: usize,
    /// Counts per minute and activity ([`ActivityLog`]), kept apart from
    /// the events: a flood that pushes old events out of the log does not
    /// change the counts.
    rollup: Arc<Mutex<Rollup>>,
}

/// How long the in-memory rollup keeps a minute past the newest one.
const ROLLUP_KEEP: Duration = Duration::from_secs(48 * 3600);

type Rollup = BTreeMap<(SystemTime, Activity), u64>;

/// Counts `events` into the rollup, forgetting minutes older than
/// [`ROLLUP_KEEP`] before the newest.
fn roll_up<'a>(rollup: &mut Rollup, events: impl IntoIterator<Item = &'a Event>) {
    for event in events {
        let minute = minute_of(event.at);
        for (activity, n) in counted(&event.kind) {
            let slot = rollup.entry((minute, activity)).or_insert(0);
            *slot = slot.saturating_add(n);
        }
        if let Some(cutoff) = minute.checked_sub(ROLLUP_KEEP) {
            while rollup.first_key_value().is_some_and(|((m, _), _)| *m < cutoff) {
                rollup.pop_first();
            }
        }
    }
}

impl Default for InMemoryEventLog {
    fn default() -> Self {
        InMemoryEventLog::with_capacity(DEFAULT_EVENT_CAPACITY)
    }
}

/// Appends, making room first when the log is full.
fn append(events: &mut Vec<Event>, capacity: usize, new: impl IntoIterator<Item = Event>) {
    for event in new {
        if events.len() >= capacity {
            make_room(events, (capacity / 10).max(1).min(events.len()));
        }
        events.push(event);
    }
}

/// Drops `n` events: the oldest without an account first, then, one at a
/// time, the oldest of whichever account holds the most.
fn make_room(events: &mut Vec<Event>, n: usize) {
    let mut drop = vec![false; events.len()];
    let mut left = n;
    for (i, e) in events.iter().enumerate() {
        if left == 0 {
            break;
        }
        if e.account.is_none() {
            drop[i] = true;
            left -= 1;
        }
    }
    if left > 0 {
        // Positions of each account's events, oldest first.
        let mut by_account: HashMap<&AccountId, VecDeque<usize>> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            if let Some(a) = &e.account {
                by_account.entry(a).or_default().push_back(i);
            }
        }
        let mut heap: BinaryHeap<(usize, &AccountId)> =
            by_account.iter().map(|(a, v)| (v.len(), *a)).collect();
        while left > 0 {
            let Some((_, account)) = heap.pop() else { break };
            let Some(positions) = by_account.get_mut(account) else {
                break;
            };
            if let Some(i) = positions.pop_front() {
                drop[i] = true;
                left -= 1;
            }
            if !positions.is_empty() {
                heap.push((positions.len(), account));
            }
        }
    }
    let mut i = 0;
    events.retain(|_| {
        let keep = !drop[i];
        i += 1;
        keep
    });
}

impl InMemoryEventLog {
    /// A log keeping at most `capacity` events (at least 10).
    pub fn with_capacity(capacity: usize) -> Self {
        InMemoryEventLog {
            events: Arc::default(),
            capacity: capacity.max(10),
            rollup: Arc::default(),
        }
    }

    /// How many events it holds.
    pub fn len(&self) -> usize {
        lock(&self.events).len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

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
        roll_up(&mut lock(&self.rollup), [&event]);
        append(&mut lock(&self.events), self.capacity, [event]);
        Ok(())
    }

    async fn record_all(&self, events: Vec<Event>) -> Result<(), StoreError> {
        roll_up(&mut lock(&self.rollup), &events);
        append(&mut lock(&self.events), self.capacity, events);
        Ok(())
    }
}

#[async_trait]
impl EventRetention for InMemoryEventLog {
    async fn purge_before(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError> {
        let mut events = lock(&self.events);
        // Appended in time order (each step stamps its events with the clock).
        let old = events.iter().take(batch).take_while(|e| e.at < before).count();
        events.drain(..old);
        let mut rollup = lock(&self.rollup);
        while rollup
            .first_key_value()
            .is_some_and(|((m, _), _)| *m < minute_of(before))
        {
            rollup.pop_first();
        }
        Ok(old)
    }
}

#[async_trait]
impl Timeline for InMemoryEventLog {
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

#[async_trait]
impl ActivityLog for InMemoryEventLog {
    async fn activity(
        &self,
        bucket: Bucket,
        from: SystemTime,
        until: SystemTime,
    ) -> Result<Vec<ActivityCount>, StoreError> {
        let rollup = lock(&self.rollup);
        let Some(first) = Activity::ALL.first() else {
            return Ok(Vec::new());
        };
        // Minutes are kept; longer periods are their sums (at most
        // ROLLUP_KEEP of minutes).
        let mut sums: BTreeMap<(SystemTime, Activity), u64> = BTreeMap::new();
        for ((minute, activity), count) in rollup
            .range((bucket.start_of(from), *first)..)
            .take_while(|((minute, _), _)| *minute < until)
        {
            let start = bucket.start_of(*minute);
            if start < from || start >= until {
                continue;
            }
            let slot = sums.entry((start, *activity)).or_insert(0);
            *slot = slot.saturating_add(*count);
        }
        Ok(sums
            .into_iter()
            .map(|((start, activity), count)| ActivityCount {
                start,
                activity,
                count,
            })
            .collect())
    }

    async fn deliveries(&self, since: SystemTime, limit: usize) -> Result<Vec<Event>, StoreError> {
        let events = lock(&self.events);
        Ok(events
            .iter()
            .rev()
            .take_while(|e| e.at >= since)
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::EmailSent { .. }
                        | EventKind::DeliveryFailed { .. }
                        | EventKind::ServerReplied { .. }
                )
            })
            .take(limit)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::RateScope;

    fn at(i: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + i)
    }

    fn limited(i: u64, account: Option<&str>) -> Event {
        let kind = EventKind::RateLimited {
            scope: RateScope::Client,
            client: Some("203.0.113.9".into()),
            count: 1,
        };
        Event::new(at(i), account.map(AccountId::from), kind)
    }

    /// Finding 3 of the fourth review: 1.19 M throttled requests pushed
    /// alice's whole history out of the buffer. A flood of events tied to no
    /// account, or to one other account, leaves hers alone.
    #[tokio::test]
    async fn a_flood_does_not_evict_other_accounts_history() {
        let log = InMemoryEventLog::with_capacity(1_000);
        let alice = AccountId::from("alice");
        for i in 0..5 {
            log.record(limited(i, Some("alice"))).await.unwrap();
        }
        for i in 0..20_000 {
            log.record(limited(10 + i, None)).await.unwrap();
        }
        assert_eq!(log.for_account(&alice).await.unwrap().len(), 5, "anonymous flood");
        assert!(log.len() <= 1_000);
        for i in 0..20_000 {
            log.record(limited(30_000 + i, Some("mallory"))).await.unwrap();
        }
        assert_eq!(
            log.for_account(&alice).await.unwrap().len(),
            5,
            "one account's flood"
        );
        assert!(log.len() <= 1_000);
        // Time order is kept.
        let all = log.all();
        assert!(all.windows(2).all(|w| w[0].at <= w[1].at));
    }
}
