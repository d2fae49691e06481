use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
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

/// Everything under one mutex, with indexes so that no operation scans
/// every token: live tokens by account, deny secrets, and tokens by expiry.
#[derive(Debug, Default)]
struct State {
    tokens: HashMap<TokenHash, TokenRecord>,
    /// Live (active or being spent) tokens of each account.
    live: HashMap<AccountId, HashSet<TokenHash>>,
    /// Deny-link secret hash -> token hash.
    deny: HashMap<TokenHash, TokenHash>,
    /// (expiry, token) for purging in expiry order.
    by_expiry: BTreeSet<(SystemTime, [u8; 32])>,
    hits: HashMap<RateKey, VecDeque<SystemTime>>,
}

impl State {
    fn insert(&mut self, record: TokenRecord) {
        if record.is_live() {
            self.live
                .entry(record.account.clone())
                .or_default()
                .insert(record.hash);
        }
        if let Some(deny) = record.deny_hash {
            self.deny.insert(deny, record.hash);
        }
        self.by_expiry.insert((record.expires_at, record.hash.0));
        self.tokens.insert(record.hash, record);
    }

    /// Changes a token's state, keeping the live index right.
    fn set_state(&mut self, hash: &TokenHash, state: TokenState) {
        let Some(record) = self.tokens.get_mut(hash) else {
            return;
        };
        record.state = state;
        let live = record.is_live();
        let account = record.account.clone();
        let set = self.live.entry(account.clone()).or_default();
        if live {
            set.insert(*hash);
        } else {
            set.remove(hash);
            if set.is_empty() {
                self.live.remove(&account);
            }
        }
    }

    /// Revokes the account's live tokens except `keep`; returns how many.
    fn revoke_live(
        &mut self,
        account: &AccountId,
        keep: Option<&TokenHash>,
        reason: RevokeReason,
        now: SystemTime,
    ) -> usize {
        let doomed: Vec<TokenHash> = self
            .live
            .get(account)
            .map(|set| set.iter().filter(|h| Some(*h) != keep).copied().collect())
            .unwrap_or_default();
        for hash in &doomed {
            self.set_state(hash, TokenState::Revoked { at: now, reason });
        }
        doomed.len()
    }

    fn remove(&mut self, hash: &TokenHash) {
        if let Some(record) = self.tokens.remove(hash) {
            if let Some(set) = self.live.get_mut(&record.account) {
                set.remove(hash);
                if set.is_empty() {
                    self.live.remove(&record.account);
                }
            }
            if let Some(deny) = record.deny_hash {
                self.deny.remove(&deny);
            }
            self.by_expiry.remove(&(record.expires_at, hash.0));
        }
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
        lock(&self.state).tokens.len()
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
        if record.state != TokenState::Active
            || state.tokens.contains_key(&record.hash)
            || record.deny_hash.is_some_and(|d| state.deny.contains_key(&d))
        {
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
        state.insert(record);
        Ok(IssueOutcome::Issued { superseded })
    }

    async fn find(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        Ok(lock(&self.state).tokens.get(hash).cloned())
    }

    async fn find_by_deny(&self, deny_hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        let state = lock(&self.state);
        Ok(state
            .deny
            .get(deny_hash)
            .and_then(|h| state.tokens.get(h))
            .cloned())
    }

    async fn consume(&self, hash: &TokenHash, now: SystemTime) -> Result<ConsumeOutcome, StoreError> {
        let mut state = lock(&self.state);
        let Some(record) = state.tokens.get(hash) else {
            return Ok(ConsumeOutcome::Rejected(RejectReason::Unknown));
        };
        if let Some(reason) = record.unusable_reason(now) {
            return Ok(ConsumeOutcome::Rejected(reason));
        }
        state.set_state(hash, TokenState::Spending { at: now });
        let record = state.tokens.get(hash).cloned();
        Ok(record.map_or(
            ConsumeOutcome::Rejected(RejectReason::Unknown),
            ConsumeOutcome::Consumed,
        ))
    }

    async fn finish(&self, hash: &TokenHash, now: SystemTime) -> Result<FinishOutcome, StoreError> {
        let mut state = lock(&self.state);
        let Some(record) = state.tokens.get(hash) else {
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
        let account = record.account.clone();
        state.set_state(hash, TokenState::Used { at: now });
        let revoked = state.revoke_live(&account, Some(hash), RevokeReason::PasswordReset, now);
        Ok(FinishOutcome::Finished { revoked })
    }

    async fn release(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        if state
            .tokens
            .get(hash)
            .is_some_and(|r| matches!(r.state, TokenState::Spending { .. }))
        {
            state.set_state(hash, TokenState::Active);
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
        let Some(record) = state.deny.get(deny_hash).and_then(|h| state.tokens.get(h)) else {
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
        let live: Vec<TokenHash> = state
            .live
            .get(account)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        let mut moved = 0;
        for hash in live {
            if let Some(record) = state.tokens.get_mut(&hash)
                && record.password_stamp == *from
            {
                record.password_stamp = to.clone();
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
        let doomed: Vec<TokenHash> = state
            .by_expiry
            .iter()
            .take_while(|(expires_at, _)| *expires_at < before)
            .take(batch)
            .map(|(_, hash)| TokenHash(*hash))
            .collect();
        for hash in &doomed {
            state.remove(hash);
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
