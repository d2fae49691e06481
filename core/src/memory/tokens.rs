//! The in-memory token store: a slab of packed slots (see [`slot`]) and
//! three hash indexes that hold only slot numbers, so a live token costs
//! well under 300 bytes in all
//! (`cargo run --release -p resetkit --example memory_figures`).

mod slab;
mod slot;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hashbrown::HashTable;

use self::slab::Slab;
use self::slot::{Nanos, Phase, Slot};
use super::lock;
use crate::account::{AccountId, PasswordStamp};
use crate::error::StoreError;
use crate::store::{
    ConsumeOutcome, DenyOutcome, FinishOutcome, IssueOutcome, RateKey, RateLimitAdmin, RateLimiter,
    TokenIssue, TokenRetention, TokenStore,
};
use crate::token::{RejectReason, RevokeReason, TokenHash, TokenRecord, TokenState};

/// No slot: the end of a live chain.
const NONE: u32 = u32::MAX;

/// The hash-table key of a SHA-256 hash: its first 8 bytes (the hashes are
/// uniformly random; the tables compare the whole hash in the slot).
fn prefix(hash: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(b)
}

/// Everything under one mutex.
///
/// Tokens live in `slots` (freed slots are reused). The indexes are
/// open-addressed hash tables of slot numbers: the token hash, the deny
/// secret's hash, and the account id (to the first of the account's live
/// tokens, the rest chained through [`Slot::next_live`]). A min-heap of
/// expiry times finds what to purge. Every operation is O(1) expected, or
/// O(log n) for issuing and purging, in the number of stored tokens;
/// revocation is linear only in the account's own live tokens.
#[derive(Default)]
struct State {
    slots: Slab,
    by_hash: HashTable<u32>,
    by_deny: HashTable<u32>,
    live: HashTable<u32>,
    /// Hashes account ids for `live` (keyed randomly per store).
    account_hasher: RandomState,
    /// Expiry and slot of every stored token, soonest first.
    expiry: BinaryHeap<Reverse<(Nanos, u32)>>,
    hits: HashMap<RateKey, VecDeque<SystemTime>>,
}

impl State {
    fn slot(&self, i: u32) -> Option<&Slot> {
        self.slots.get(i)
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Slot> {
        self.slots.get_mut(i)
    }

    fn find(&self, hash: &TokenHash) -> Option<u32> {
        let slots = &self.slots;
        let found = self.by_hash.find(prefix(&hash.0), |&i| {
            slots.get(i).is_some_and(|s| s.hash == hash.0)
        });
        found.copied()
    }

    fn find_deny(&self, deny: &TokenHash) -> Option<u32> {
        let slots = &self.slots;
        let found = self.by_deny.find(prefix(&deny.0), |&i| {
            slots.get(i).is_some_and(|s| s.deny == Some(deny.0))
        });
        found.copied()
    }

    fn record(&self, i: u32) -> Option<TokenRecord> {
        self.slot(i).map(Slot::record)
    }

    /// Whether a stored token already has the record's hash or deny hash.
    fn taken(&self, record: &TokenRecord) -> bool {
        self.find(&record.hash).is_some() || record.deny_hash.is_some_and(|d| self.find_deny(&d).is_some())
    }

    /// The first of the account's live tokens.
    fn live_head(&self, account: &str) -> Option<u32> {
        let slots = &self.slots;
        let key = self.account_hasher.hash_one(account);
        let found = self
            .live
            .find(key, |&j| slots.get(j).is_some_and(|s| s.account() == account));
        found.copied()
    }

    fn insert(&mut self, record: &TokenRecord) -> Result<(), StoreError> {
        let slot = Slot::new(record);
        let (hash, deny, expires, live) = (slot.hash, slot.deny, slot.expires, slot.phase().is_live());
        let i = self.slots.insert(slot)?;
        let slots = &self.slots;
        self.by_hash
            .insert_unique(prefix(&hash), i, |&j| slots.get(j).map_or(0, |s| prefix(&s.hash)));
        if let Some(deny) = deny {
            self.by_deny.insert_unique(prefix(&deny), i, |&j| {
                slots.get(j).and_then(|s| s.deny).map_or(0, |d| prefix(&d))
            });
        }
        self.expiry.push(Reverse((expires, i)));
        if live {
            self.link_live(i);
        }
        Ok(())
    }

    /// Puts a token that became live at the head of its account's chain.
    fn link_live(&mut self, i: u32) {
        let Some(account) = self.slots.get(i).map(Slot::account) else {
            return;
        };
        let key = self.account_hasher.hash_one(account);
        let slots = &self.slots;
        let head = self
            .live
            .find_mut(key, |&j| slots.get(j).is_some_and(|s| s.account() == account))
            .map(|head| std::mem::replace(head, i));
        if head.is_none() {
            let hasher = &self.account_hasher;
            self.live.insert_unique(key, i, |&j| {
                slots.get(j).map_or(0, |s| hasher.hash_one(s.account()))
            });
        }
        if let Some(slot) = self.slot_mut(i) {
            slot.next_live = head.unwrap_or(NONE);
        }
    }

    /// Takes a token that stopped being live off its account's chain.
    fn unlink_live(&mut self, i: u32) {
        let Some((account, next)) = self.slots.get(i).map(|s| (s.account(), s.next_live)) else {
            return;
        };
        let key = self.account_hasher.hash_one(account);
        let slots = &self.slots;
        let Ok(head) = self
            .live
            .find_entry(key, |&j| slots.get(j).is_some_and(|s| s.account() == account))
        else {
            return;
        };
        if *head.get() == i {
            if next == NONE {
                head.remove();
            } else {
                *head.into_mut() = next;
            }
        } else {
            // Walk the chain to the token before `i` and skip `i`.
            let mut previous = *head.get();
            loop {
                let after = self.slot(previous).map_or(NONE, |s| s.next_live);
                if after == i {
                    if let Some(slot) = self.slot_mut(previous) {
                        slot.next_live = next;
                    }
                    break;
                }
                if after == NONE {
                    break;
                }
                previous = after;
            }
        }
        if let Some(slot) = self.slot_mut(i) {
            slot.next_live = NONE;
        }
    }

    /// The account's live (active or being spent) tokens.
    fn live_of(&self, account: &AccountId) -> Vec<u32> {
        let mut found = Vec::new();
        let mut current = self.live_head(&account.0).unwrap_or(NONE);
        while let Some(slot) = self.slot(current) {
            found.push(current);
            current = slot.next_live;
        }
        found
    }

    /// Changes a token's state, keeping the live chains right.
    fn set_state(&mut self, i: u32, state: TokenState) {
        let Some(slot) = self.slot_mut(i) else {
            return;
        };
        let was_live = slot.phase().is_live();
        slot.set_state(state);
        match (was_live, slot.phase().is_live()) {
            (true, false) => self.unlink_live(i),
            (false, true) => self.link_live(i),
            _ => {}
        }
    }

    /// Revokes the account's live tokens except `keep`; returns how many.
    fn revoke_live(
        &mut self,
        account: &AccountId,
        keep: Option<u32>,
        reason: RevokeReason,
        now: SystemTime,
    ) -> usize {
        let doomed: Vec<u32> = self
            .live_of(account)
            .into_iter()
            .filter(|i| Some(*i) != keep)
            .collect();
        for i in &doomed {
            self.set_state(*i, TokenState::Revoked { at: now, reason });
        }
        doomed.len()
    }

    /// Deletes the token in slot `i` (its expiry entry is already popped).
    fn remove(&mut self, i: u32) {
        let Some(slot) = self.slot(i) else {
            return;
        };
        let (live, hash, deny) = (slot.phase().is_live(), slot.hash, slot.deny);
        if live {
            self.unlink_live(i);
        }
        if let Ok(entry) = self.by_hash.find_entry(prefix(&hash), |&j| j == i) {
            entry.remove();
        }
        if let Some(deny) = deny
            && let Ok(entry) = self.by_deny.find_entry(prefix(&deny), |&j| j == i)
        {
            entry.remove();
        }
        self.slots.remove(i);
    }

    fn admit(&mut self, key: &RateKey, now: SystemTime, window: Duration, max: u32) -> bool {
        let hits = self.hits.entry(key.clone()).or_default();
        let start = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        hits.retain(|t| *t > start);
        // Every hit after the window's start counts, also one stamped a
        // moment after `now` by a concurrent caller.
        let within = hits.len();
        if within >= usize::try_from(max).unwrap_or(usize::MAX) {
            return false;
        }
        hits.push_back(now);
        true
    }
}

/// Tokens and rate-limit counters in memory; clones share the same data.
/// Every operation costs O(1) expected or O(log n) in the number of stored
/// tokens (revocation is linear only in the account's own live tokens).
#[derive(Clone, Default)]
pub struct InMemoryTokenStore {
    state: Arc<Mutex<State>>,
}

/// Counts only: the slots hold addresses and token hashes.
impl fmt::Debug for InMemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("InMemoryTokenStore")
            .field("stored", &state.slots.len())
            .field("rate_keys", &state.hits.len())
            .finish_non_exhaustive()
    }
}

impl InMemoryTokenStore {
    /// Number of stored tokens (any state).
    pub fn len(&self) -> usize {
        lock(&self.state).slots.len()
    }

    /// Whether no tokens are stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of stored rate-limit entries (hits), all keys together.
    pub fn rate_entries(&self) -> usize {
        lock(&self.state).hits.values().map(|h| h.len()).sum()
    }
}

#[async_trait]
impl TokenStore for InMemoryTokenStore {
    async fn issue(&self, issue: TokenIssue) -> Result<IssueOutcome, StoreError> {
        let mut state = lock(&self.state);
        let record = issue.record;
        if record.state != TokenState::Active || state.taken(&record) {
            return Err(StoreError::Corrupt {
                operation: "tokens.issue",
                detail: "a new token must be active and its hashes not already stored".into(),
            });
        }
        let now = record.issued_at;
        if let Some(limit) = issue.limit
            && !state.admit(
                &RateKey::Account(record.account.clone()),
                now,
                limit.window,
                limit.max,
            )
        {
            return Ok(IssueOutcome::RateLimited);
        }
        let superseded = if issue.supersede {
            state.revoke_live(&record.account, None, RevokeReason::Superseded, now)
        } else {
            0
        };
        state.insert(&record)?;
        Ok(IssueOutcome::Issued { superseded })
    }

    async fn find(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        let state = lock(&self.state);
        Ok(state.find(hash).and_then(|i| state.record(i)))
    }

    async fn find_by_deny(&self, deny_hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        let state = lock(&self.state);
        Ok(state.find_deny(deny_hash).and_then(|i| state.record(i)))
    }

    async fn consume(&self, hash: &TokenHash, now: SystemTime) -> Result<ConsumeOutcome, StoreError> {
        let mut state = lock(&self.state);
        let Some((i, record)) = state.find(hash).and_then(|i| Some((i, state.record(i)?))) else {
            return Ok(ConsumeOutcome::Rejected(RejectReason::Unknown));
        };
        if let Some(reason) = record.unusable_reason(now) {
            return Ok(ConsumeOutcome::Rejected(reason));
        }
        state.set_state(i, TokenState::Spending { at: now });
        let record = state.record(i);
        Ok(record.map_or(
            ConsumeOutcome::Rejected(RejectReason::Unknown),
            ConsumeOutcome::Consumed,
        ))
    }

    async fn finish(&self, hash: &TokenHash, now: SystemTime) -> Result<FinishOutcome, StoreError> {
        let mut state = lock(&self.state);
        let Some((i, record)) = state.find(hash).and_then(|i| Some((i, state.record(i)?))) else {
            return Err(StoreError::NotFound {
                operation: "tokens.finish",
                what: "the consumed token".into(),
            });
        };
        match record.state {
            TokenState::Spending { .. } => {}
            TokenState::Revoked { reason, .. } => return Ok(FinishOutcome::RevokedMeanwhile(reason)),
            // Finishing twice, or a token nobody consumed: nothing to do.
            TokenState::Used { .. } | TokenState::Active => {
                return Ok(FinishOutcome::Finished { revoked: 0 });
            }
        }
        state.set_state(i, TokenState::Used { at: now });
        let revoked = state.revoke_live(&record.account, Some(i), RevokeReason::PasswordReset, now);
        Ok(FinishOutcome::Finished { revoked })
    }

    async fn release(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        if let Some(i) = state.find(hash)
            && state.slot(i).is_some_and(|s| s.phase() == Phase::Spending)
        {
            state.set_state(i, TokenState::Active);
            return Ok(true);
        }
        Ok(false)
    }

    async fn revoke_for_account(
        &self,
        account: &AccountId,
        reason: RevokeReason,
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        Ok(lock(&self.state).revoke_live(account, None, reason, now))
    }

    async fn deny(&self, deny_hash: &TokenHash, now: SystemTime) -> Result<DenyOutcome, StoreError> {
        let mut state = lock(&self.state);
        let Some(record) = state.find_deny(deny_hash).and_then(|i| state.record(i)) else {
            return Ok(DenyOutcome::Rejected(RejectReason::Unknown));
        };
        match record.state {
            TokenState::Active | TokenState::Spending { .. } => {}
            TokenState::Used { .. } => return Ok(DenyOutcome::Rejected(RejectReason::AlreadyUsed)),
            TokenState::Revoked { reason, .. } => {
                return Ok(DenyOutcome::Rejected(RejectReason::Revoked(reason)));
            }
        }
        let account = record.account.clone();
        let count = state.revoke_live(&account, None, RevokeReason::UserDenied, now);
        Ok(DenyOutcome::Revoked { count })
    }

    async fn restamp(
        &self,
        account: &AccountId,
        from: &PasswordStamp,
        to: &PasswordStamp,
    ) -> Result<usize, StoreError> {
        let mut state = lock(&self.state);
        let mut moved = 0;
        for i in state.live_of(account) {
            if let Some(slot) = state.slot_mut(i)
                && slot.stamp() == *from
            {
                slot.set_stamp(to);
                moved += 1;
            }
        }
        Ok(moved)
    }
}

#[async_trait]
impl RateLimiter for InMemoryTokenStore {
    async fn admit(
        &self,
        key: &RateKey,
        now: SystemTime,
        window: Duration,
        max: u32,
    ) -> Result<bool, StoreError> {
        Ok(lock(&self.state).admit(key, now, window, max))
    }
}

#[async_trait]
impl RateLimitAdmin for InMemoryTokenStore {
    async fn rate_count(&self, key: &RateKey, now: SystemTime, window: Duration) -> Result<u32, StoreError> {
        let state = lock(&self.state);
        let start = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        let n = state.hits.get(key).map_or(0, |hits| {
            hits.iter().filter(|t| **t > start && **t <= now).count()
        });
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn rate_clear(&self, key: &RateKey) -> Result<usize, StoreError> {
        Ok(lock(&self.state).hits.remove(key).map_or(0, |hits| hits.len()))
    }
}

#[async_trait]
impl TokenRetention for InMemoryTokenStore {
    async fn purge_expired(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError> {
        let mut state = lock(&self.state);
        let before = Nanos::of(before);
        let mut purged = 0;
        while purged < batch
            && let Some(Reverse((expires, i))) = state.expiry.peek().copied()
            && expires < before
        {
            state.expiry.pop();
            state.remove(i);
            purged += 1;
        }
        Ok(purged)
    }

    async fn purge_rate_entries(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError> {
        let mut state = lock(&self.state);
        let mut purged = 0;
        state.hits.retain(|_, hits| {
            while purged < batch && hits.front().is_some_and(|t| *t < before) {
                hits.pop_front();
                purged += 1;
            }
            !hits.is_empty()
        });
        Ok(purged)
    }
}
