use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::lock;
use crate::account::AccountId;
use crate::error::StoreError;
use crate::store::{ConsumeOutcome, RateKey, TokenStore};
use crate::token::{RejectReason, RevokeReason, TokenHash, TokenRecord, TokenState};

#[derive(Debug, Default)]
struct State {
    tokens: HashMap<TokenHash, TokenRecord>,
    hits: HashMap<RateKey, VecDeque<SystemTime>>,
}

/// Tokens and rate-limit counters in memory; clones share the same data.
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
}

#[async_trait]
impl TokenStore for InMemoryTokenStore {
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError> {
        lock(&self.state).tokens.insert(record.hash, record);
        Ok(())
    }

    async fn find(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        Ok(lock(&self.state).tokens.get(hash).cloned())
    }

    async fn consume(&self, hash: &TokenHash, now: SystemTime) -> Result<ConsumeOutcome, StoreError> {
        let mut state = lock(&self.state);
        let Some(record) = state.tokens.get_mut(hash) else {
            return Ok(ConsumeOutcome::Rejected(RejectReason::Unknown));
        };
        if let Some(reason) = record.unusable_reason(now) {
            return Ok(ConsumeOutcome::Rejected(reason));
        }
        record.state = TokenState::Used { at: now };
        Ok(ConsumeOutcome::Consumed(record.clone()))
    }

    async fn release(&self, hash: &TokenHash) -> Result<(), StoreError> {
        if let Some(record) = lock(&self.state).tokens.get_mut(hash)
            && matches!(record.state, TokenState::Used { .. })
        {
            record.state = TokenState::Active;
        }
        Ok(())
    }

    async fn revoke_for_account(
        &self,
        account: &AccountId,
        reason: RevokeReason,
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        let mut state = lock(&self.state);
        let mut count = 0;
        for record in state.tokens.values_mut() {
            if &record.account == account && record.state == TokenState::Active {
                record.state = TokenState::Revoked { at: now, reason };
                count += 1;
            }
        }
        Ok(count)
    }

    async fn hit(&self, key: &RateKey, now: SystemTime, window: Duration) -> Result<u32, StoreError> {
        let mut state = lock(&self.state);
        let hits = state.hits.entry(key.clone()).or_default();
        let start = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        hits.retain(|t| *t > start);
        hits.push_back(now);
        Ok(u32::try_from(hits.len()).unwrap_or(u32::MAX))
    }

    async fn admit(
        &self,
        key: &RateKey,
        now: SystemTime,
        window: Duration,
        max: u32,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let hits = state.hits.entry(key.clone()).or_default();
        let start = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        hits.retain(|t| *t > start);
        let within = hits.iter().filter(|t| **t <= now).count();
        if within >= usize::try_from(max).unwrap_or(usize::MAX) {
            return Ok(false);
        }
        hits.push_back(now);
        Ok(true)
    }

    async fn purge_expired(&self, before: SystemTime, batch: usize) -> Result<usize, StoreError> {
        let mut state = lock(&self.state);
        let doomed: Vec<TokenHash> = state
            .tokens
            .values()
            .filter(|r| r.expires_at < before)
            .take(batch)
            .map(|r| r.hash)
            .collect();
        for hash in &doomed {
            state.tokens.remove(hash);
        }
        Ok(doomed.len())
    }
}
