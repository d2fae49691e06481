//! Throttled requests leave one event per key and window, with a count.
//!
//! A flood from one client is refused by the per-client limit at almost no
//! cost, but an event per refused request made the activity log the
//! flood's target instead (≈ 100,000 rows in 15 s on PostgreSQL; in memory
//! the flood pushed every other account's history out). Now the first
//! refusal of a window is recorded at once (`count: 1`) and the rest of
//! that window only counted here; when the window has passed, one more
//! event carries how many were refused after the first. So a flood costs at
//! most two events per client (and per account) per window and instance.
//!
//! The counts live in this process (bounded: past [`MAX_TRACKED`] keys,
//! the other keys of a scope share one count). Closing events are written
//! by the next refusal after the window, by the request workers' pass, and
//! by [`ResetService::flush_throttled`]; counts of a window still open when
//! the process stops are lost (the first event of it was written).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::account::AccountId;
use crate::error::StoreError;
use crate::event::{Event, EventKind, RateScope};
use crate::flow::ResetService;

/// Most keys whose refusals are counted apart at once; past it, the other
/// keys of a scope share one count (recorded without client or account).
pub const MAX_TRACKED: usize = 10_000;

/// The key every untracked key of a scope shares past [`MAX_TRACKED`].
const OVERFLOW: &str = "\u{0}overflow";

/// How often a refusal also closes other keys' finished windows.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Refusals counted per `(scope, key)` in the current window.
#[derive(Debug, Default)]
pub(crate) struct ThrottleTracker {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<(RateScope, String), Window>,
    last_sweep: Option<SystemTime>,
}

#[derive(Debug)]
struct Window {
    ends: SystemTime,
    /// Refusals after the first, not recorded yet.
    suppressed: u64,
    account: Option<AccountId>,
    client: Option<String>,
    scope: RateScope,
}

impl Window {
    fn closing(self) -> Option<(Option<AccountId>, EventKind)> {
        if self.suppressed == 0 {
            return None;
        }
        let kind = EventKind::RateLimited {
            scope: self.scope,
            client: self.client,
            count: self.suppressed,
        };
        Some((self.account, kind))
    }
}

/// One refused request.
pub(crate) struct Refusal<'a> {
    pub(crate) scope: RateScope,
    /// What the limit counts (the client's rate key, or the account id).
    pub(crate) key: &'a str,
    pub(crate) account: Option<&'a AccountId>,
    pub(crate) client: Option<&'a str>,
    pub(crate) window: Duration,
}

impl ThrottleTracker {
    /// The events to record for one refused request: none while its
    /// window is open, else the closing event of the previous window (if
    /// it suppressed any) and a new `count: 1` event.
    pub(crate) fn refused(
        &self,
        refusal: &Refusal<'_>,
        now: SystemTime,
    ) -> Vec<(Option<AccountId>, EventKind)> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key = (refusal.scope, refusal.key.to_owned());
        let (mut account, mut client) = (refusal.account, refusal.client);
        if state.entries.len() >= MAX_TRACKED && !state.entries.contains_key(&key) {
            // Past the bound, every other key of the scope shares one count
            // (no client, no account), so a flood across many keys first
            // still leaves a bounded number of events.
            key = (refusal.scope, OVERFLOW.to_owned());
            (account, client) = (None, None);
        }
        let mut out = Vec::new();
        match state.entries.get_mut(&key) {
            Some(window) if now < window.ends => window.suppressed = window.suppressed.saturating_add(1),
            _ => {
                if let Some(done) = state.entries.remove(&key).and_then(Window::closing) {
                    out.push(done);
                }
                state.entries.insert(
                    key,
                    Window {
                        ends: now + refusal.window,
                        suppressed: 0,
                        account: account.cloned(),
                        client: client.map(str::to_owned),
                        scope: refusal.scope,
                    },
                );
                out.push((
                    account.cloned(),
                    EventKind::RateLimited {
                        scope: refusal.scope,
                        client: client.map(str::to_owned),
                        count: 1,
                    },
                ));
            }
        }
        out.extend(state.sweep(now, false));
        out
    }

    /// The closing events of the windows that ended by `now`: always when
    /// `force`, else at most once per sweep interval (the workers' frequent
    /// passes).
    pub(crate) fn due(&self, now: SystemTime, force: bool) -> Vec<(Option<AccountId>, EventKind)> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sweep(now, force)
    }
}

impl State {
    /// Closes the windows that ended by `now` (see [`ThrottleTracker::due`]).
    fn sweep(&mut self, now: SystemTime, force: bool) -> Vec<(Option<AccountId>, EventKind)> {
        if !force && self.last_sweep.is_some_and(|at| now < at + SWEEP_EVERY) {
            return Vec::new();
        }
        self.last_sweep = Some(now);
        let ended: Vec<(RateScope, String)> = self
            .entries
            .iter()
            .filter(|(_, w)| w.ends <= now)
            .map(|(k, _)| k.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|k| self.entries.remove(&k).and_then(Window::closing))
            .collect()
    }
}

impl ResetService {
    /// Records the closing events of throttling windows that have ended
    /// (how many requests each limit refused after the first one of its
    /// window). The request workers do this on each pass; a host that
    /// runs none (external processing) may call it now and then.
    pub async fn flush_throttled(&self) -> Result<(), StoreError> {
        self.record_throttled(true).await
    }

    /// The workers' share: closing events, at most once per sweep
    /// interval; a failure is logged (the counts are lost, not the flow).
    pub(crate) async fn flush_throttled_now_and_then(&self) {
        if let Err(error) = self.record_throttled(false).await {
            tracing::error!(%error, "recording the counts of rate-limited requests failed");
        }
    }

    async fn record_throttled(&self, force: bool) -> Result<(), StoreError> {
        let now = self.inner.clock.now();
        let events = to_events(self.inner.throttled.due(now, force), now);
        if events.is_empty() {
            return Ok(());
        }
        self.inner.events.record_all(events).await
    }

    /// The events for one refused request (see the module docs).
    pub(crate) fn throttle_events(&self, refusal: &Refusal<'_>) -> Vec<(Option<AccountId>, EventKind)> {
        self.inner.throttled.refused(refusal, self.inner.clock.now())
    }
}

pub(crate) fn to_events(found: Vec<(Option<AccountId>, EventKind)>, now: SystemTime) -> Vec<Event> {
    found
        .into_iter()
        .map(|(account, kind)| Event::new(now, account, kind))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(key: &str) -> Refusal<'_> {
        Refusal {
            scope: RateScope::Client,
            key,
            account: None,
            client: Some(key),
            window: Duration::from_secs(900),
        }
    }

    fn counts(events: &[(Option<AccountId>, EventKind)]) -> Vec<u64> {
        events
            .iter()
            .map(|(_, k)| match k {
                EventKind::RateLimited { count, .. } => *count,
                _ => 0,
            })
            .collect()
    }

    #[test]
    fn a_flood_leaves_one_event_per_window_and_a_count_when_it_ends() {
        let t = ThrottleTracker::default();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut recorded = Vec::new();
        for i in 0..10_000u64 {
            recorded.extend(t.refused(&refusal("203.0.113.9"), start + Duration::from_millis(i)));
        }
        assert_eq!(counts(&recorded), vec![1], "one event while the window is open");
        assert!(t.due(start + Duration::from_secs(899), true).is_empty());
        let closing = t.due(start + Duration::from_secs(900), true);
        assert_eq!(counts(&closing), vec![9_999]);
        assert!(
            t.due(start + Duration::from_secs(2_000), true).is_empty(),
            "closed once"
        );
        // The next window starts with a new first event.
        let again = t.refused(&refusal("203.0.113.9"), start + Duration::from_secs(3_000));
        assert_eq!(counts(&again), vec![1]);
    }

    #[test]
    fn keys_are_counted_apart_and_the_table_is_bounded() {
        let t = ThrottleTracker::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let keys: Vec<String> = (0..MAX_TRACKED + 5).map(|i| format!("198.51.{i}")).collect();
        let mut recorded = 0;
        for key in &keys {
            for _ in 0..3 {
                recorded += t.refused(&refusal(key), now).len();
            }
        }
        // Tracked keys: one event each; past the bound, one shared count.
        assert_eq!(recorded, MAX_TRACKED + 1);
        let closing = t.due(now + Duration::from_secs(900), true);
        assert_eq!(closing.len(), MAX_TRACKED + 1);
        let mut closing_counts = counts(&closing);
        closing_counts.sort_unstable();
        assert_eq!(closing_counts.last(), Some(&(5 * 3 - 1)), "the overflow's count");
        assert!(closing_counts[..MAX_TRACKED].iter().all(|c| *c == 2));
    }
}
