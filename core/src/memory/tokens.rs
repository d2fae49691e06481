use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::lock;
use crate::account::{AccountId, PasswordStamp};
use crate::error::StoreError;
use crate::store::{
    ConsumeOutcome, DenyOutcome, FinishOutcome, IssueOutcome, RateKey, RateLimitAdmin, RateLimiter,
    TokenIssue, TokenRetention, TokenStore,
};
use crate::token::{RejectReason, RevokeReason, TokenHash, TokenRecord, TokenState};

/// No slot: the end of a chain.
const NONE: u32 = u32::MAX;

/// A time as seconds and nanoseconds since the Unix epoch (12 bytes
/// instead of 16; times before 1970 are stored as 1970).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Time(u64, u32);

impl Time {
    fn of(t: SystemTime) -> Time {
        let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        Time(d.as_secs(), d.subsec_nanos())
    }

    fn get(self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(self.0, self.1)
    }
}

/// A token's state in 14 bytes: tag, revoke reason, time.
#[derive(Debug, Clone, Copy)]
struct State14 {
    tag: u8,
    reason: u8,
    at: Time,
}

impl State14 {
    fn of(state: TokenState) -> State14 {
        let (tag, reason, at) = match state {
            TokenState::Active => (0, 0, SystemTime::UNIX_EPOCH),
            TokenState::Spending { at } => (1, 0, at),
            TokenState::Used { at } => (2, 0, at),
            TokenState::Revoked { at, reason } => (
                3,
                match reason {
                    RevokeReason::Superseded => 0,
                    RevokeReason::PasswordReset => 1,
                    RevokeReason::UserDenied => 2,
                },
                at,
            ),
        };
        State14 {
            tag,
            reason,
            at: Time::of(at),
        }
    }

    fn get(self) -> TokenState {
        let at = self.at.get();
        match (self.tag, self.reason) {
            (0, _) => TokenState::Active,
            (1, _) => TokenState::Spending { at },
            (2, _) => TokenState::Used { at },
            (_, 0) => TokenState::Revoked {
                at,
                reason: RevokeReason::Superseded,
            },
            (_, 1) => TokenState::Revoked {
                at,
                reason: RevokeReason::PasswordReset,
            },
            _ => TokenState::Revoked {
                at,
                reason: RevokeReason::UserDenied,
            },
        }
    }

    /// Active or being spent.
    fn is_live(self) -> bool {
        self.tag <= 1
    }
}

/// One stored token, packed: its two hashes, one string holding the
/// account id, the address the link went to and (when it is not the usual
/// 32 hex digits) the password stamp, the times and the state, and the
/// next live token of the same account-id hash.
#[derive(Debug)]
struct Slot {
    hash: [u8; 32],
    deny: [u8; 32],
    has_deny: bool,
    names: Box<str>,
    account_len: u32,
    sent_to_len: u32,
    /// The stamp's 16 bytes when it is 32 lower-case hex digits (else it is
    /// the rest of `names`).
    stamp: Option<[u8; 16]>,
    issued: Time,
    expires: Time,
    state: State14,
    next_live: u32,
}

impl Slot {
    fn new(record: &TokenRecord) -> Slot {
        let stamp = hex16(record.password_stamp.as_str());
        let mut names = String::with_capacity(
            record.account.0.len()
                + record.sent_to.len()
                + stamp.map_or(record.password_stamp.as_str().len(), |_| 0),
        );
        names.push_str(&record.account.0);
        names.push_str(&record.sent_to);
        if stamp.is_none() {
            names.push_str(record.password_stamp.as_str());
        }
        Slot {
            hash: record.hash.0,
            deny: record.deny_hash.map_or([0; 32], |d| d.0),
            has_deny: record.deny_hash.is_some(),
            names: names.into_boxed_str(),
            account_len: u32::try_from(record.account.0.len()).unwrap_or(u32::MAX),
            sent_to_len: u32::try_from(record.sent_to.len()).unwrap_or(u32::MAX),
            stamp,
            issued: Time::of(record.issued_at),
            expires: Time::of(record.expires_at),
            state: State14::of(record.state),
            next_live: NONE,
        }
    }

    fn account(&self) -> &str {
        self.names.get(..self.account_len as usize).unwrap_or_default()
    }

    fn stamp(&self) -> PasswordStamp {
        match self.stamp {
            Some(bytes) => PasswordStamp::from_stored(crate::token::hex(&bytes)),
            None => PasswordStamp::from_stored(
                self.names
                    .get((self.account_len + self.sent_to_len) as usize..)
                    .unwrap_or_default(),
            ),
        }
    }

    fn set_stamp(&mut self, to: &PasswordStamp) {
        let keep = (self.account_len + self.sent_to_len) as usize;
        let head = self.names.get(..keep).unwrap_or_default().to_owned();
        self.stamp = hex16(to.as_str());
        self.names = match self.stamp {
            Some(_) => head.into_boxed_str(),
            None => (head + to.as_str()).into_boxed_str(),
        };
    }

    fn record(&self) -> TokenRecord {
        let a = self.account_len as usize;
        let s = a + self.sent_to_len as usize;
        TokenRecord {
            hash: TokenHash(self.hash),
            account: AccountId(self.account().to_owned()),
            sent_to: self.names.get(a..s).unwrap_or_default().to_owned(),
            password_stamp: self.stamp(),
            issued_at: self.issued.get(),
            expires_at: self.expires.get(),
            state: self.state.get(),
            deny_hash: self.has_deny.then_some(TokenHash(self.deny)),
        }
    }
}

/// The 16 bytes of 32 lower-case hex digits.
fn hex16(text: &str) -> Option<[u8; 16]> {
    let bytes = text.as_bytes();
    if bytes.len() != 32 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// The first 8 bytes of a SHA-256 hash: the indexes' key (the slot holds
/// the whole hash, checked on every lookup).
fn prefix(hash: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(b)
}

fn account_key(account: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(account)
}

/// Everything under one mutex. Tokens live in a slab of packed slots;
/// B-tree indexes (hash prefix, deny-secret prefix, account-id hash to the
/// first of its live tokens, expiry) keep every operation O(log n) in the
/// number of stored tokens, at under 300 bytes per token
/// (`cargo run --release -p resetkit --example memory_figures`).
#[derive(Debug, Default)]
struct State {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    by_hash: BTreeMap<u64, u32>,
    by_deny: BTreeMap<u64, u32>,
    /// Account-id hash -> first live token; the rest follow `next_live`
    /// (accounts whose ids share a hash share a chain; lookups compare ids).
    live: BTreeMap<u64, u32>,
    by_expiry: BTreeSet<(Time, u32)>,
    stored: usize,
    hits: HashMap<RateKey, VecDeque<SystemTime>>,
}

impl State {
    fn slot(&self, i: u32) -> Option<&Slot> {
        self.slots.get(i as usize)?.as_ref()
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Slot> {
        self.slots.get_mut(i as usize)?.as_mut()
    }

    fn find(&self, hash: &TokenHash) -> Option<u32> {
        let i = *self.by_hash.get(&prefix(&hash.0))?;
        (self.slot(i)?.hash == hash.0).then_some(i)
    }

    fn find_deny(&self, deny: &TokenHash) -> Option<u32> {
        let i = *self.by_deny.get(&prefix(&deny.0))?;
        let slot = self.slot(i)?;
        (slot.has_deny && slot.deny == deny.0).then_some(i)
    }

    fn record(&self, i: u32) -> Option<TokenRecord> {
        self.slot(i).map(Slot::record)
    }

    /// Whether a stored token already has the hash or deny hash (by their
    /// 8-byte prefix: a new token that collides is refused, and its request
    /// retried with a fresh one).
    fn taken(&self, record: &TokenRecord) -> bool {
        self.by_hash.contains_key(&prefix(&record.hash.0))
            || record
                .deny_hash
                .is_some_and(|d| self.by_deny.contains_key(&prefix(&d.0)))
    }

    fn insert(&mut self, record: &TokenRecord) {
        let slot = Slot::new(record);
        let live = slot.state.is_live();
        let (expires, has_deny, deny) = (slot.expires, slot.has_deny, slot.deny);
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(place) = self.slots.get_mut(i as usize) {
                    *place = Some(slot);
                }
                i
            }
            None => {
                self.slots.push(Some(slot));
                u32::try_from(self.slots.len() - 1).unwrap_or(NONE)
            }
        };
        self.by_hash.insert(prefix(&record.hash.0), i);
        if has_deny {
            self.by_deny.insert(prefix(&deny), i);
        }
        self.by_expiry.insert((expires, i));
        if live {
            self.link_live(i);
        }
        self.stored += 1;
    }

    fn link_live(&mut self, i: u32) {
        let Some(key) = self.slot(i).map(|s| account_key(s.account())) else {
            return;
        };
        let head = self.live.insert(key, i).unwrap_or(NONE);
        if let Some(slot) = self.slot_mut(i) {
            slot.next_live = head;
        }
    }

    fn unlink_live(&mut self, i: u32) {
        let Some((key, next)) = self.slot(i).map(|s| (account_key(s.account()), s.next_live)) else {
            return;
        };
        let mut previous = NONE;
        let mut current = self.live.get(&key).copied().unwrap_or(NONE);
        while current != NONE && current != i {
            previous = current;
            current = self.slot(current).map_or(NONE, |s| s.next_live);
        }
        if current != i {
            return;
        }
        if previous == NONE {
            if next == NONE {
                self.live.remove(&key);
            } else {
                self.live.insert(key, next);
            }
        } else if let Some(slot) = self.slot_mut(previous) {
            slot.next_live = next;
        }
        if let Some(slot) = self.slot_mut(i) {
            slot.next_live = NONE;
        }
    }

    /// The account's live (active or being spent) tokens.
    fn live_of(&self, account: &AccountId) -> Vec<u32> {
        let mut found = Vec::new();
        let mut current = self.live.get(&account_key(&account.0)).copied().unwrap_or(NONE);
        while let Some(slot) = self.slot(current) {
            if slot.account() == account.0 {
                found.push(current);
            }
            current = slot.next_live;
        }
        found
    }

    /// Changes a token's state, keeping the live chains right.
    fn set_state(&mut self, i: u32, state: TokenState) {
        let Some(slot) = self.slot_mut(i) else {
            return;
        };
        let was_live = slot.state.is_live();
        slot.state = State14::of(state);
        match (was_live, slot.state.is_live()) {
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

    fn remove(&mut self, i: u32) {
        let Some(slot) = self.slot(i) else {
            return;
        };
        let (live, hash, deny, has_deny, expires) = (
            slot.state.is_live(),
            slot.hash,
            slot.deny,
            slot.has_deny,
            slot.expires,
        );
        if live {
            self.unlink_live(i);
        }
        if self.by_hash.get(&prefix(&hash)) == Some(&i) {
            self.by_hash.remove(&prefix(&hash));
        }
        if has_deny && self.by_deny.get(&prefix(&deny)) == Some(&i) {
            self.by_deny.remove(&prefix(&deny));
        }
        self.by_expiry.remove(&(expires, i));
        if let Some(place) = self.slots.get_mut(i as usize) {
            *place = None;
        }
        self.free.push(i);
        self.stored -= 1;
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
/// Every operation costs O(1) or O(log n) in the number of stored tokens
/// (revocation is linear only in the account's own live tokens).
#[derive(Debug, Clone, Default)]
pub struct InMemoryTokenStore {
    state: Arc<Mutex<State>>,
}

impl InMemoryTokenStore {
    /// Number of stored tokens (any state).
    pub fn len(&self) -> usize {
        lock(&self.state).stored
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
        state.insert(&record);
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
            && state.slot(i).is_some_and(|s| s.state.tag == 1)
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
        let before = Time::of(before);
        let doomed: Vec<u32> = state
            .by_expiry
            .iter()
            .take_while(|(expires_at, _)| *expires_at < before)
            .take(batch)
            .map(|(_, i)| *i)
            .collect();
        for i in &doomed {
            state.remove(*i);
        }
        Ok(doomed.len())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(account: &str, stamp: PasswordStamp, state: TokenState) -> TokenRecord {
        let now = SystemTime::UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_789);
        TokenRecord {
            hash: TokenHash([7; 32]),
            account: AccountId::from(account),
            sent_to: "ünïcode@example.com".into(),
            password_stamp: stamp,
            issued_at: now,
            expires_at: now + Duration::from_secs(1800),
            state,
            deny_hash: Some(TokenHash([9; 32])),
        }
    }

    #[test]
    fn a_packed_slot_gives_back_the_record_it_was_made_of() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_800_000_100, 5);
        let states = [
            TokenState::Active,
            TokenState::Spending { at },
            TokenState::Used { at },
            TokenState::Revoked {
                at,
                reason: RevokeReason::Superseded,
            },
            TokenState::Revoked {
                at,
                reason: RevokeReason::PasswordReset,
            },
            TokenState::Revoked {
                at,
                reason: RevokeReason::UserDenied,
            },
        ];
        let stamps = [
            PasswordStamp::of(None),
            PasswordStamp::from_stored("not hex: an older or foreign stamp"),
            PasswordStamp::from_stored("ABCDEF0123456789ABCDEF0123456789"),
        ];
        for state in states {
            for stamp in &stamps {
                let original = record("acct-ß", stamp.clone(), state);
                assert_eq!(Slot::new(&original).record(), original);
            }
        }
        let mut without_deny = record("a", PasswordStamp::of(None), TokenState::Active);
        without_deny.deny_hash = None;
        assert_eq!(Slot::new(&without_deny).record(), without_deny);
    }

    #[test]
    fn restamping_a_slot_keeps_its_names() {
        let original = record(
            "acct",
            PasswordStamp::from_stored("odd stamp"),
            TokenState::Active,
        );
        let mut slot = Slot::new(&original);
        for to in [
            PasswordStamp::of(None),
            PasswordStamp::from_stored("other odd stamp"),
        ] {
            slot.set_stamp(&to);
            let back = slot.record();
            assert_eq!(back.password_stamp, to);
            assert_eq!(back.account, original.account);
            assert_eq!(back.sent_to, original.sent_to);
        }
    }
}
