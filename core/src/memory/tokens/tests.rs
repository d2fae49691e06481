//! The packed store against a model that keeps plain records in a vector
//! and scans it for everything: long random runs of every operation must
//! give the same outcomes and leave the same records.

use std::time::{Duration, SystemTime};

use std::collections::HashSet;

use super::{InMemoryTokenStore, NONE, lock};
use crate::account::{AccountId, PasswordStamp};
use crate::store::{
    ConsumeOutcome, DenyOutcome, FinishOutcome, IssueOutcome, TokenIssue, TokenRetention, TokenStore,
};
use crate::token::{RejectReason, RevokeReason, TokenHash, TokenRecord, TokenState};

/// xorshift64: a deterministic stream of choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Plain records, scanned linearly.
#[derive(Default)]
struct Model {
    tokens: Vec<TokenRecord>,
}

impl Model {
    fn revoke(
        &mut self,
        account: &AccountId,
        keep: Option<TokenHash>,
        reason: RevokeReason,
        now: SystemTime,
    ) -> usize {
        let mut count = 0;
        for t in &mut self.tokens {
            if t.account == *account && t.is_live() && Some(t.hash) != keep {
                t.state = TokenState::Revoked { at: now, reason };
                count += 1;
            }
        }
        count
    }

    fn get(&mut self, hash: &TokenHash) -> Option<&mut TokenRecord> {
        self.tokens.iter_mut().find(|t| t.hash == *hash)
    }

    fn issue(&mut self, record: TokenRecord, supersede: bool) -> IssueOutcome {
        let superseded = if supersede {
            self.revoke(&record.account, None, RevokeReason::Superseded, record.issued_at)
        } else {
            0
        };
        self.tokens.push(record);
        IssueOutcome::Issued { superseded }
    }

    fn consume(&mut self, hash: &TokenHash, now: SystemTime) -> ConsumeOutcome {
        let Some(t) = self.get(hash) else {
            return ConsumeOutcome::Rejected(RejectReason::Unknown);
        };
        if let Some(reason) = t.unusable_reason(now) {
            return ConsumeOutcome::Rejected(reason);
        }
        t.state = TokenState::Spending { at: now };
        ConsumeOutcome::Consumed(t.clone())
    }

    fn finish(&mut self, hash: &TokenHash, now: SystemTime) -> Option<FinishOutcome> {
        let t = self.get(hash)?;
        match t.state {
            TokenState::Spending { .. } => {}
            TokenState::Revoked { reason, .. } => return Some(FinishOutcome::RevokedMeanwhile(reason)),
            TokenState::Used { .. } | TokenState::Active => {
                return Some(FinishOutcome::Finished { revoked: 0 });
            }
        }
        t.state = TokenState::Used { at: now };
        let account = t.account.clone();
        let revoked = self.revoke(&account, Some(*hash), RevokeReason::PasswordReset, now);
        Some(FinishOutcome::Finished { revoked })
    }

    fn release(&mut self, hash: &TokenHash) -> bool {
        match self.get(hash) {
            Some(t) if matches!(t.state, TokenState::Spending { .. }) => {
                t.state = TokenState::Active;
                true
            }
            _ => false,
        }
    }

    fn deny(&mut self, deny: &TokenHash, now: SystemTime) -> DenyOutcome {
        let Some(t) = self.tokens.iter().find(|t| t.deny_hash == Some(*deny)) else {
            return DenyOutcome::Rejected(RejectReason::Unknown);
        };
        match t.state {
            TokenState::Active | TokenState::Spending { .. } => {}
            TokenState::Used { .. } => return DenyOutcome::Rejected(RejectReason::AlreadyUsed),
            TokenState::Revoked { reason, .. } => {
                return DenyOutcome::Rejected(RejectReason::Revoked(reason));
            }
        }
        let account = t.account.clone();
        let count = self.revoke(&account, None, RevokeReason::UserDenied, now);
        DenyOutcome::Revoked { count }
    }

    fn restamp(&mut self, account: &AccountId, from: &PasswordStamp, to: &PasswordStamp) -> usize {
        let mut moved = 0;
        for t in &mut self.tokens {
            if t.account == *account && t.is_live() && t.password_stamp == *from {
                t.password_stamp = to.clone();
                moved += 1;
            }
        }
        moved
    }

    /// Removes up to `batch` tokens that expired before `before`, soonest
    /// first (the test makes every expiry distinct).
    fn purge(&mut self, before: SystemTime, batch: usize) -> usize {
        let mut expired: Vec<SystemTime> = self
            .tokens
            .iter()
            .map(|t| t.expires_at)
            .filter(|e| *e < before)
            .collect();
        expired.sort_unstable();
        expired.truncate(batch);
        self.tokens.retain(|t| !expired.contains(&t.expires_at));
        expired.len()
    }
}

/// A hash for token number `n` of kind `kind` (1 token, 2 deny secret).
/// Half of them share their first 8 bytes (the index key) with many
/// others, so the tables' probing and the full-hash check are exercised.
fn hash(n: u64, kind: u8) -> TokenHash {
    let mut h = [0u8; 32];
    let key = if n.is_multiple_of(2) { n % 3 } else { n };
    h[..8].copy_from_slice(&key.to_le_bytes());
    h[8..16].copy_from_slice(&n.to_le_bytes());
    h[31] = kind;
    TokenHash(h)
}

const ACCOUNTS: [&str; 5] = ["a", "b", "ü-long-account-id-0001", "", "d"];

async fn run(seed: u64, ops: u64) {
    let store = InMemoryTokenStore::default();
    let mut model = Model::default();
    let mut rng = Rng(seed);
    let stamps = [
        PasswordStamp::of(None),
        PasswordStamp::from_stored("an odd stamp"),
    ];
    let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut issued = 0u64;
    for step in 0..ops {
        // Whole milliseconds, so each token's expiry is told apart by the
        // nanoseconds of its number.
        now += Duration::from_millis(rng.below(2_000));
        let account = AccountId::from(ACCOUNTS[rng.below(5) as usize]);
        // A token hash: often a live one, else any stored one, sometimes a
        // purged or an unknown one.
        let live: Vec<TokenHash> = model
            .tokens
            .iter()
            .filter(|t| t.is_live())
            .map(|t| t.hash)
            .collect();
        let known = match rng.below(8) {
            0..=3 if !live.is_empty() => live[rng.below(live.len() as u64) as usize],
            0..=6 if !model.tokens.is_empty() => {
                model.tokens[rng.below(model.tokens.len() as u64) as usize].hash
            }
            _ => hash(rng.below(issued + 3), if rng.below(2) == 0 { 3 } else { 1 }),
        };
        match rng.below(20) {
            0..=6 => {
                issued += 1;
                let record = TokenRecord {
                    hash: hash(issued, 1),
                    account: account.clone(),
                    sent_to: format!("{}@example.com", account.0),
                    password_stamp: stamps[rng.below(2) as usize].clone(),
                    issued_at: now,
                    expires_at: now + Duration::from_secs(rng.below(60)) + Duration::from_nanos(issued),
                    state: TokenState::Active,
                    deny_hash: (rng.below(4) != 0).then(|| hash(issued, 2)),
                };
                let supersede = rng.below(4) == 0;
                let expected = model.issue(record.clone(), supersede);
                let got = store
                    .issue(TokenIssue {
                        record,
                        limit: None,
                        supersede,
                    })
                    .await
                    .unwrap();
                assert_eq!(got, expected, "step {step}: issue");
            }
            7..=9 => {
                let got = store.consume(&known, now).await.unwrap();
                assert_eq!(got, model.consume(&known, now), "step {step}: consume");
            }
            10..=12 => {
                let got = store.finish(&known, now).await.ok();
                assert_eq!(got, model.finish(&known, now), "step {step}: finish");
            }
            13 => {
                let got = store.release(&known).await.unwrap();
                assert_eq!(got, model.release(&known), "step {step}: release");
            }
            14 => {
                let deny = TokenHash({
                    let mut d = known.0;
                    d[31] = 2;
                    d
                });
                let got = store.deny(&deny, now).await.unwrap();
                assert_eq!(got, model.deny(&deny, now), "step {step}: deny");
            }
            15 => {
                let reason = RevokeReason::PasswordReset;
                let got = store.revoke_for_account(&account, reason, now).await.unwrap();
                assert_eq!(
                    got,
                    model.revoke(&account, None, reason, now),
                    "step {step}: revoke"
                );
            }
            16..=17 => {
                let (from, to) = if rng.below(2) == 0 { (0, 1) } else { (1, 0) };
                let got = store.restamp(&account, &stamps[from], &stamps[to]).await.unwrap();
                let expected = model.restamp(&account, &stamps[from], &stamps[to]);
                assert_eq!(got, expected, "step {step}: restamp");
            }
            _ => {
                let before = now - Duration::from_secs(rng.below(30));
                let batch = rng.below(6) as usize;
                let got = store.purge_expired(before, batch).await.unwrap();
                assert_eq!(got, model.purge(before, batch), "step {step}: purge");
            }
        }
        assert_eq!(store.len(), model.tokens.len(), "step {step}: count");
        if step % 25 == 0 || step == ops - 1 {
            check_indexes(&store, &model, step);
            for t in &model.tokens {
                assert_eq!(
                    store.find(&t.hash).await.unwrap().as_ref(),
                    Some(t),
                    "step {step}"
                );
                if let Some(deny) = t.deny_hash {
                    let by_deny = store.find_by_deny(&deny).await.unwrap();
                    assert_eq!(by_deny.as_ref(), Some(t), "step {step}: by deny");
                }
            }
        }
    }
}

/// Every index holds exactly the entries the model's tokens call for (a
/// purged or revoked token leaves nothing behind).
fn check_indexes(store: &InMemoryTokenStore, model: &Model, step: u64) {
    let state = lock(&store.state);
    let with_deny = model.tokens.iter().filter(|t| t.deny_hash.is_some()).count();
    let live = model.tokens.iter().filter(|t| t.is_live()).count();
    let live_accounts: HashSet<&AccountId> = model
        .tokens
        .iter()
        .filter(|t| t.is_live())
        .map(|t| &t.account)
        .collect();
    assert_eq!(state.by_hash.len(), model.tokens.len(), "step {step}: hash index");
    assert_eq!(state.by_deny.len(), with_deny, "step {step}: deny index");
    assert_eq!(state.expiry.len(), model.tokens.len(), "step {step}: expiry heap");
    assert_eq!(state.live.len(), live_accounts.len(), "step {step}: live heads");
    let mut chained = 0;
    for &head in &state.live {
        let mut current = head;
        while let Some(slot) = state.slots.get(current) {
            assert!(
                slot.phase().is_live(),
                "step {step}: a dead token on a live chain"
            );
            assert_eq!(slot.account(), state.slots.get(head).map_or("", |s| s.account()));
            chained += 1;
            current = slot.next_live;
        }
        assert_eq!(current, NONE, "step {step}: a chain ends in an empty slot");
    }
    assert_eq!(chained, live, "step {step}: live chains");
    state.slots.check();
    assert_eq!(state.slots.len(), model.tokens.len(), "step {step}: slots");
}

#[tokio::test]
async fn random_runs_of_every_operation_match_a_plain_model() {
    for seed in [1, 0x9e37_79b9_7f4a_7c15, 42, 7_777_777] {
        run(seed, 3_000).await;
    }
}
