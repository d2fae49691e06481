//! Links that were opened, waiting for the form that uses them.
//!
//! Opening a reset link (`GET /reset?token=T`, after `inspect` accepted T)
//! stores its token here, under a fresh random
//! *form id*, and gives the browser a `resetkit_link` cookie (a random id)
//! if it has none. The form id is the page's `csrf_token`: a POST is
//! accepted only with the browser's cookie **and** the id of a form that
//! browser was shown, and it acts on *that* form's token. So a second link
//! opened in the same browser (another tab, a cross-site navigation) adds
//! a second entry and cannot change what the already-open form submits.
//!
//! Nothing is stored for a visitor who has not opened a valid reset link
//! ("this wasn't me" links keep their token in a sealed form field instead).
//! The store is bounded: entries expire after [`PendingSettings::ttl`]; each
//! kind has its own capacity; one browser keeps at most [`PendingSettings::per_browser`]
//! entries and one reset token is pending in at most
//! [`PendingSettings::per_token`] browsers (scanners fetching a link cannot
//! fill the store with one token), the oldest giving way.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::csrf::constant_time_eq;

/// Which link a pending entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// A reset link: the entry feeds the "choose a new password" form.
    Reset,
    /// A "this wasn't me" link (the pages keep these in a sealed form
    /// field, not here; the kind keeps its own capacity for hosts that do).
    Deny,
}

/// Limits of the pending-link store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingSettings {
    /// How long an opened link stays usable from its form (default 15 min;
    /// the token's own lifetime still applies).
    pub ttl: Duration,
    /// Entries per kind (default 20,000 each).
    pub capacity: usize,
    /// Entries per browser (default 4).
    pub per_browser: usize,
    /// Browsers one reset token can be pending in (default 4).
    pub per_token: usize,
}

impl Default for PendingSettings {
    fn default() -> Self {
        PendingSettings {
            ttl: Duration::from_secs(15 * 60),
            capacity: 20_000,
            per_browser: 4,
            per_token: 4,
        }
    }
}

/// One opened link.
#[derive(Clone)]
pub(crate) struct Pending {
    pub(crate) form_id: String,
    pub(crate) token: SecretString,
    pub(crate) username: String,
}

struct Entry {
    browser: String,
    kind: LinkKind,
    token: SecretString,
    token_digest: [u8; 32],
    username: String,
    created: Instant,
    seq: u64,
}

#[derive(Default)]
struct State {
    /// By form id.
    entries: HashMap<String, Entry>,
    /// Form ids by browser, oldest first.
    browsers: HashMap<String, Vec<String>>,
    /// Form ids by age, per kind.
    order: HashMap<LinkKind, BTreeMap<u64, String>>,
    next_seq: u64,
}

impl State {
    fn remove(&mut self, form_id: &str) -> Option<Entry> {
        let entry = self.entries.remove(form_id)?;
        if let Some(ids) = self.browsers.get_mut(&entry.browser) {
            ids.retain(|id| id != form_id);
            if ids.is_empty() {
                self.browsers.remove(&entry.browser);
            }
        }
        if let Some(order) = self.order.get_mut(&entry.kind) {
            order.remove(&entry.seq);
        }
        Some(entry)
    }

    fn count(&self, kind: LinkKind) -> usize {
        self.order.get(&kind).map_or(0, BTreeMap::len)
    }

    fn oldest(&self, kind: LinkKind) -> Option<(String, Instant)> {
        let (_, id) = self.order.get(&kind)?.first_key_value()?;
        Some((id.clone(), self.entries.get(id)?.created))
    }
}

/// The store (one per [`ResetPages`](crate::ResetPages); in memory, so
/// several instances behind a load balancer need sticky sessions for the
/// minutes between opening a link and submitting its form).
pub struct PendingLinks {
    settings: PendingSettings,
    state: Mutex<State>,
}

impl fmt::Debug for PendingLinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLinks")
            .field("settings", &self.settings)
            .field("len", &self.len())
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl PendingLinks {
    /// An empty store.
    pub fn new(settings: PendingSettings) -> Self {
        PendingLinks {
            settings,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many opened links are held (all kinds).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores an opened link for `browser`; returns the new form id.
    pub(crate) fn insert(
        &self,
        browser: &str,
        kind: LinkKind,
        token: SecretString,
        username: String,
    ) -> String {
        let now = Instant::now();
        let form_id = crate::csrf::random_id();
        let token_digest = digest(token.expose_secret());
        let mut state = self.lock();
        // Expired entries of this kind go first (oldest first, so stop at
        // the first live one).
        while let Some((id, created)) = state.oldest(kind) {
            if now.duration_since(created) < self.settings.ttl {
                break;
            }
            state.remove(&id);
        }
        // One token, a bounded number of browsers.
        if kind == LinkKind::Reset {
            let mut same: Vec<(u64, String)> = state
                .entries
                .iter()
                .filter(|(_, e)| e.kind == kind && e.token_digest == token_digest)
                .map(|(id, e)| (e.seq, id.clone()))
                .collect();
            same.sort();
            while same.len() >= self.settings.per_token.max(1) {
                let (_, id) = same.remove(0);
                state.remove(&id);
            }
        }
        // One browser, a bounded number of forms.
        let mine: Vec<String> = state.browsers.get(browser).cloned().unwrap_or_default();
        let excess = (mine.len() + 1).saturating_sub(self.settings.per_browser.max(1));
        for id in mine.iter().take(excess) {
            state.remove(id);
        }
        // The kind's capacity.
        while state.count(kind) >= self.settings.capacity.max(1) {
            match state.oldest(kind) {
                Some((id, _)) => state.remove(&id),
                None => break,
            };
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.entries.insert(
            form_id.clone(),
            Entry {
                browser: browser.to_owned(),
                kind,
                token,
                token_digest,
                username,
                created: now,
                seq,
            },
        );
        state
            .browsers
            .entry(browser.to_owned())
            .or_default()
            .push(form_id.clone());
        state.order.entry(kind).or_default().insert(seq, form_id.clone());
        form_id
    }

    fn live(&self, entry: &Entry, now: Instant) -> bool {
        now.duration_since(entry.created) < self.settings.ttl
    }

    /// The entry of form `form_id`, if `browser` was shown that form.
    pub(crate) fn get(&self, browser: &str, kind: LinkKind, form_id: &str) -> Option<Pending> {
        let now = Instant::now();
        let mut state = self.lock();
        let entry = state.entries.get(form_id)?;
        if !self.live(entry, now) {
            state.remove(form_id);
            return None;
        }
        (entry.kind == kind && constant_time_eq(entry.browser.as_bytes(), browser.as_bytes())).then(|| {
            Pending {
                form_id: form_id.to_owned(),
                token: entry.token.clone(),
                username: entry.username.clone(),
            }
        })
    }

    /// The most recently opened link of `kind` among `browsers` (the ids
    /// one browser's cookie carries).
    pub(crate) fn newest_of(&self, browsers: &[String], kind: LinkKind) -> Option<Pending> {
        let now = Instant::now();
        let state = self.lock();
        browsers
            .iter()
            .filter_map(|browser| state.browsers.get(browser))
            .flatten()
            .filter_map(|id| state.entries.get(id).map(|e| (id, e)))
            .filter(|(_, e)| e.kind == kind && self.live(e, now))
            .max_by_key(|(_, e)| e.seq)
            .map(|(id, e)| Pending {
                form_id: id.clone(),
                token: e.token.clone(),
                username: e.username.clone(),
            })
    }

    /// The browser's most recently opened link of `kind`.
    #[cfg(test)]
    fn newest(&self, browser: &str, kind: LinkKind) -> Option<Pending> {
        self.newest_of(&[browser.to_owned()], kind)
    }

    /// Forgets one form.
    pub(crate) fn remove(&self, form_id: &str) {
        self.lock().remove(form_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(n: u32) -> SecretString {
        SecretString::from(format!("token-{n}"))
    }

    #[test]
    fn forms_are_bound_to_their_browser_and_their_own_token() {
        let store = PendingLinks::new(PendingSettings::default());
        let first = store.insert("browser-a", LinkKind::Reset, token(1), "alice".into());
        let second = store.insert("browser-a", LinkKind::Reset, token(2), "mallory".into());
        let got = store.get("browser-a", LinkKind::Reset, &first).unwrap();
        assert_eq!(got.username, "alice");
        assert_eq!(got.token.expose_secret(), "token-1");
        assert_eq!(
            store.newest("browser-a", LinkKind::Reset).unwrap().form_id,
            second
        );
        assert!(store.get("browser-b", LinkKind::Reset, &first).is_none());
        assert!(store.get("browser-a", LinkKind::Deny, &first).is_none());
    }

    #[test]
    fn the_store_is_bounded_per_kind_browser_and_token() {
        let store = PendingLinks::new(PendingSettings {
            capacity: 10,
            per_browser: 2,
            per_token: 3,
            ..PendingSettings::default()
        });
        for n in 0..100 {
            store.insert(&format!("b{n}"), LinkKind::Deny, token(n), String::new());
        }
        assert_eq!(store.len(), 10);
        // A flood of deny entries did not take the reset entries' room.
        let reset = store.insert("victim", LinkKind::Reset, token(1000), "v".into());
        for n in 0..100 {
            store.insert(&format!("c{n}"), LinkKind::Deny, token(n), String::new());
        }
        assert!(store.get("victim", LinkKind::Reset, &reset).is_some());
        // One browser keeps two forms.
        for n in 0..5 {
            store.insert("busy", LinkKind::Reset, token(2000 + n), String::new());
        }
        assert_eq!(store.lock().browsers["busy"].len(), 2);
        // One token sits in at most three browsers.
        for n in 0..6 {
            store.insert(&format!("scanner{n}"), LinkKind::Reset, token(7), String::new());
        }
        let holding = store
            .lock()
            .entries
            .values()
            .filter(|e| e.token_digest == digest("token-7"))
            .count();
        assert_eq!(holding, 3);
    }

    #[test]
    fn entries_expire() {
        let store = PendingLinks::new(PendingSettings {
            ttl: Duration::ZERO,
            ..PendingSettings::default()
        });
        let id = store.insert("b", LinkKind::Reset, token(1), String::new());
        assert!(store.get("b", LinkKind::Reset, &id).is_none());
        assert!(store.newest("b", LinkKind::Reset).is_none());
    }
}
