//! The [`TokenStore`] suite: issue (admission, newest wins), find, deny
//! secrets, consume / finish / release, expiry, revocation (a token being
//! spent included), rate limits, purge, and the concurrency properties:
//! one winner among concurrent consumes, one live token after concurrent
//! issues, and no revival of a revoked token whatever the interleaving.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::account::{AccountId, PasswordStamp};
use crate::policy::Limit;
use crate::store::{
    ConsumeOutcome, DenyOutcome, FinishOutcome, IssueOutcome, RateKey, RateLimitAdmin, RateLimiter,
    TokenIssue, TokenRetention, TokenStore,
};
use crate::token::{RawToken, RejectReason, RevokeReason, TokenHash, TokenRecord, TokenState};

use super::epoch;

fn record(account: &str, issued_at: SystemTime, lifetime: Duration) -> (RawToken, TokenRecord) {
    let token = RawToken::generate().expect("OS random generator");
    let deny = RawToken::generate().expect("OS random generator");
    let record = TokenRecord {
        hash: token.hash(),
        account: AccountId::from(account),
        sent_to: format!("{account}@example.com"),
        password_stamp: PasswordStamp::of(None),
        issued_at,
        expires_at: issued_at + lifetime,
        state: TokenState::Active,
        deny_hash: Some(deny.hash()),
    };
    (token, record)
}

/// Stores `record` as a plain insert: no limit, no newest-wins.
async fn insert(store: &dyn TokenStore, record: &TokenRecord) {
    let outcome = store
        .issue(TokenIssue {
            record: record.clone(),
            limit: None,
            supersede: false,
        })
        .await
        .expect("tokens.issue");
    assert_eq!(
        outcome,
        IssueOutcome::Issued { superseded: 0 },
        "an issue without limit or newest-wins stores the token and revokes nothing"
    );
}

async fn consume(store: &dyn TokenStore, hash: &TokenHash, now: SystemTime) -> ConsumeOutcome {
    store.consume(hash, now).await.expect("tokens.consume")
}

async fn state(store: &dyn TokenStore, hash: &TokenHash) -> Option<TokenState> {
    store.find(hash).await.expect("tokens.find").map(|r| r.state)
}

/// Every [`TokenStore`] behaviour the flow relies on.
pub async fn token_store_suite(store: &dyn TokenStore) {
    let t0 = epoch();
    let life = Duration::from_secs(1800);

    // issue / find round-trips every field; the deny secret finds it too.
    let (_, a1) = record("acct-a", t0, life);
    insert(store, &a1).await;
    assert!(
        store
            .issue(TokenIssue {
                record: a1.clone(),
                limit: None,
                supersede: false,
            })
            .await
            .is_err(),
        "issuing a token whose hash is already stored is an error"
    );
    let found = store.find(&a1.hash).await.expect("tokens.find");
    assert_eq!(
        found.as_ref(),
        Some(&a1),
        "find must return the issued record unchanged"
    );
    let deny = a1.deny_hash.expect("fixture has a deny secret");
    assert_eq!(
        store.find_by_deny(&deny).await.expect("tokens.find_by_deny"),
        Some(a1.clone()),
        "find_by_deny finds the token by its deny secret"
    );
    assert_eq!(
        store.find_by_deny(&a1.hash).await.expect("tokens.find_by_deny"),
        None,
        "the reset secret is not a deny secret"
    );
    assert_eq!(
        store.find(&deny).await.expect("tokens.find"),
        None,
        "the deny secret is not a reset token"
    );
    let (unknown, _) = record("nobody", t0, life);
    assert_eq!(
        store.find(&unknown.hash()).await.expect("tokens.find"),
        None,
        "unknown hash"
    );

    // consume takes it (Spending); a second consume is refused as used;
    // finish makes it Used.
    match consume(store, &a1.hash, t0 + Duration::from_secs(60)).await {
        ConsumeOutcome::Consumed(r) => assert_eq!(r.account, a1.account),
        other => panic!("first consume must succeed, got {other:?}"),
    }
    assert!(
        matches!(state(store, &a1.hash).await, Some(TokenState::Spending { .. })),
        "a consumed token is being spent until finished or released"
    );
    assert_eq!(
        consume(store, &a1.hash, t0 + Duration::from_secs(61)).await,
        ConsumeOutcome::Rejected(RejectReason::AlreadyUsed),
        "second consume"
    );
    assert_eq!(
        consume(store, &unknown.hash(), t0).await,
        ConsumeOutcome::Rejected(RejectReason::Unknown),
        "consume of an unknown token"
    );

    // release gives a token being spent back; nothing else.
    assert!(
        store.release(&a1.hash).await.expect("tokens.release"),
        "release of a token being spent"
    );
    assert!(
        !store.release(&a1.hash).await.expect("tokens.release"),
        "release of an active token does nothing"
    );
    assert!(
        matches!(
            consume(store, &a1.hash, t0 + Duration::from_secs(62)).await,
            ConsumeOutcome::Consumed(_)
        ),
        "a released token can be consumed again"
    );
    assert_eq!(
        store
            .finish(&a1.hash, t0 + Duration::from_secs(63))
            .await
            .expect("tokens.finish"),
        FinishOutcome::Finished { revoked: 0 }
    );
    assert!(
        matches!(state(store, &a1.hash).await, Some(TokenState::Used { .. })),
        "a finished token reads back as used"
    );
    assert!(
        !store.release(&a1.hash).await.expect("tokens.release"),
        "a used token is never given back"
    );

    // expiry: dead at exactly expires_at, alive one second before.
    let (_, a2) = record("acct-a", t0, life);
    insert(store, &a2).await;
    assert_eq!(
        consume(store, &a2.hash, a2.expires_at).await,
        ConsumeOutcome::Rejected(RejectReason::Expired),
        "a token is dead at its expiry instant"
    );
    let (_, a3) = record("acct-a", t0, life);
    insert(store, &a3).await;
    assert!(
        matches!(
            consume(store, &a3.hash, a3.expires_at - Duration::from_secs(1)).await,
            ConsumeOutcome::Consumed(_)
        ),
        "a token works until its expiry"
    );
    // finish revokes the account's other live tokens (a2 is expired but
    // still active: revoked too).
    assert_eq!(
        store
            .finish(&a3.hash, t0 + Duration::from_secs(70))
            .await
            .expect("tokens.finish"),
        FinishOutcome::Finished { revoked: 1 },
        "finish revokes the account's other live tokens"
    );
    assert_eq!(
        state(store, &a2.hash).await,
        Some(TokenState::Revoked {
            at: t0 + Duration::from_secs(70),
            reason: RevokeReason::PasswordReset
        })
    );

    revocation_checks(store).await;
    issue_checks(store).await;
    deny_checks(store).await;
    issue_limit_skew_checks(store).await;
}

/// Revocation kills active tokens and tokens being spent, never others,
/// and a revoked token is never revived.
async fn revocation_checks(store: &dyn TokenStore) {
    let t0 = epoch();
    let life = Duration::from_secs(1800);
    let (_, b1) = record("acct-b", t0, life);
    let (_, b2) = record("acct-b", t0, life);
    let (_, b3) = record("acct-b", t0, life);
    let (_, c1) = record("acct-c", t0, life);
    for r in [&b1, &b2, &b3, &c1] {
        insert(store, r).await;
    }
    assert!(matches!(
        consume(store, &b2.hash, t0).await,
        ConsumeOutcome::Consumed(_)
    ));
    store.finish(&b2.hash, t0).await.expect("tokens.finish");
    assert!(
        matches!(
            state(store, &b1.hash).await,
            Some(TokenState::Revoked {
                reason: RevokeReason::PasswordReset,
                ..
            })
        ),
        "finishing b2 revoked the account's other links"
    );
    let (_, b4) = record("acct-b", t0, life);
    let (_, b5) = record("acct-b", t0, life);
    insert(store, &b4).await;
    insert(store, &b5).await;
    assert!(matches!(
        consume(store, &b5.hash, t0).await,
        ConsumeOutcome::Consumed(_)
    ));
    let revoked = store
        .revoke_for_account(&b4.account, RevokeReason::Superseded, t0 + Duration::from_secs(5))
        .await
        .expect("tokens.revoke_for_account");
    assert_eq!(
        revoked, 2,
        "the active token and the one being spent are revoked; used and revoked ones are not"
    );
    assert_eq!(
        consume(store, &b4.hash, t0 + Duration::from_secs(6)).await,
        ConsumeOutcome::Rejected(RejectReason::Revoked(RevokeReason::Superseded)),
        "a revoked token reports why"
    );
    revoked_token_is_never_revived(store, &b5).await;
    assert!(
        matches!(consume(store, &c1.hash, t0).await, ConsumeOutcome::Consumed(_)),
        "another account's token is untouched"
    );
}

/// Race 1 as a store property: a token revoked while it was being spent
/// can neither be released nor finished back to life.
async fn revoked_token_is_never_revived(store: &dyn TokenStore, spent_then_revoked: &TokenRecord) {
    let t0 = epoch();
    assert!(
        !store
            .release(&spent_then_revoked.hash)
            .await
            .expect("tokens.release"),
        "release must not resurrect a token revoked while it was being spent"
    );
    assert_eq!(
        store
            .finish(&spent_then_revoked.hash, t0 + Duration::from_secs(7))
            .await
            .expect("tokens.finish"),
        FinishOutcome::RevokedMeanwhile(RevokeReason::Superseded),
        "finish reports the revocation and leaves the token revoked"
    );
    assert_eq!(
        consume(store, &spent_then_revoked.hash, t0 + Duration::from_secs(8)).await,
        ConsumeOutcome::Rejected(RejectReason::Revoked(RevokeReason::Superseded)),
        "the revoked token stays dead"
    );
}

/// `issue`: newest wins and the per-account limit, as one step.
async fn issue_checks(store: &dyn TokenStore) {
    let t0 = epoch();
    let life = Duration::from_secs(1800);
    let limit = Some(Limit {
        max: 2,
        window: Duration::from_secs(600),
    });
    let mut issued = Vec::new();
    for n in 0..3u64 {
        let (_, r) = record("acct-issue", t0 + Duration::from_secs(n), life);
        let outcome = store
            .issue(TokenIssue {
                record: r.clone(),
                limit,
                supersede: true,
            })
            .await
            .expect("tokens.issue");
        issued.push((r, outcome));
    }
    assert_eq!(issued[0].1, IssueOutcome::Issued { superseded: 0 });
    assert_eq!(
        issued[1].1,
        IssueOutcome::Issued { superseded: 1 },
        "newest wins: the older link is revoked"
    );
    assert_eq!(
        issued[2].1,
        IssueOutcome::RateLimited,
        "the third issue within the window is refused"
    );
    assert_eq!(
        store.find(&issued[2].0.hash).await.expect("tokens.find"),
        None,
        "a refused issue stores nothing"
    );
    assert_eq!(
        state(store, &issued[1].0.hash).await,
        Some(TokenState::Active),
        "a refused issue revokes nothing"
    );
    assert_eq!(
        state(store, &issued[0].0.hash).await,
        Some(TokenState::Revoked {
            at: t0 + Duration::from_secs(1),
            reason: RevokeReason::Superseded
        })
    );
    let (_, later) = record("acct-issue", t0 + Duration::from_secs(601), life);
    assert_eq!(
        store
            .issue(TokenIssue {
                record: later,
                limit,
                supersede: true,
            })
            .await
            .expect("tokens.issue"),
        IssueOutcome::Issued { superseded: 1 },
        "once the window has passed the account is admitted again"
    );
}

/// The deny secret: revokes the account's live links while its own reset
/// link is live; dead once that link is used or revoked.
async fn deny_checks(store: &dyn TokenStore) {
    let t0 = epoch();
    let life = Duration::from_secs(1800);
    let (_, d1) = record("acct-deny", t0, life);
    let (_, d2) = record("acct-deny", t0, life);
    insert(store, &d1).await;
    insert(store, &d2).await;
    let deny1 = d1.deny_hash.expect("deny secret");
    let deny2 = d2.deny_hash.expect("deny secret");
    assert_eq!(
        store.deny(&d1.hash, t0).await.expect("tokens.deny"),
        DenyOutcome::Rejected(RejectReason::Unknown),
        "the reset secret cannot deny"
    );
    assert_eq!(
        store.deny(&deny1, t0).await.expect("tokens.deny"),
        DenyOutcome::Revoked { count: 2 },
        "a live link's deny secret revokes every live link of the account"
    );
    assert_eq!(
        store.deny(&deny2, t0).await.expect("tokens.deny"),
        DenyOutcome::Rejected(RejectReason::Revoked(RevokeReason::UserDenied)),
        "a revoked link's deny secret is dead"
    );
    let (_, d3) = record("acct-deny", t0, life);
    let (_, d4) = record("acct-deny", t0, life);
    insert(store, &d3).await;
    assert!(matches!(
        consume(store, &d3.hash, t0).await,
        ConsumeOutcome::Consumed(_)
    ));
    store.finish(&d3.hash, t0).await.expect("tokens.finish");
    insert(store, &d4).await;
    assert_eq!(
        store
            .deny(&d3.deny_hash.expect("deny secret"), t0)
            .await
            .expect("tokens.deny"),
        DenyOutcome::Rejected(RejectReason::AlreadyUsed),
        "a used link's deny secret is dead"
    );
    assert_eq!(
        state(store, &d4.hash).await,
        Some(TokenState::Active),
        "and cannot kill the newer link"
    );
}

/// [`TokenRetention::purge_expired`]: batches, and recent tokens kept.
pub async fn token_retention_suite(store: &dyn TokenRetention) {
    let (_, recent) = record("acct-recent", epoch(), Duration::from_secs(1800));
    insert(store, &recent).await;
    purge_checks(store, &recent).await;
}

async fn purge_checks(store: &dyn TokenRetention, recent: &TokenRecord) {
    let t0 = epoch();
    let life = Duration::from_secs(1800);
    let old = t0 - Duration::from_secs(10 * 86_400);
    let mut old_hashes = Vec::new();
    for _ in 0..5 {
        let (_, r) = record("acct-old", old, life);
        old_hashes.push(r.hash);
        insert(store, &r).await;
    }
    let cutoff = t0 - Duration::from_secs(86_400);
    assert_eq!(
        store
            .purge_expired(cutoff, 2)
            .await
            .expect("tokens.purge_expired"),
        2,
        "first batch"
    );
    assert_eq!(
        store
            .purge_expired(cutoff, 10)
            .await
            .expect("tokens.purge_expired"),
        3,
        "rest"
    );
    assert_eq!(
        store
            .purge_expired(cutoff, 10)
            .await
            .expect("tokens.purge_expired"),
        0,
        "nothing left"
    );
    for h in &old_hashes {
        assert_eq!(
            store.find(h).await.expect("tokens.find"),
            None,
            "purged token is gone"
        );
    }
    assert!(
        store.find(&recent.hash).await.expect("tokens.find").is_some(),
        "purge keeps recent tokens"
    );
}

/// Every [`RateLimiter`] behaviour the flow relies on: a refused attempt
/// is not counted, the window is `(now - window, now]`, keys are apart.
pub async fn rate_limiter_suite(store: &dyn RateLimiter) {
    admit_checks(store).await;
}

async fn admit_checks(store: &dyn RateLimiter) {
    let t0 = epoch();
    let window = Duration::from_secs(60);
    let key = RateKey::Account(AccountId::from("acct-admit"));
    for n in 1..=2u64 {
        assert!(
            store
                .admit(&key, t0 + Duration::from_secs(n), window, 2)
                .await
                .expect("tokens.admit"),
            "admit #{n} of 2 is recorded"
        );
    }
    // Refused attempts are not recorded: a steady stream of them must not
    // keep the window full once the admitted hits age out.
    for n in 3..=60u64 {
        assert!(
            !store
                .admit(&key, t0 + Duration::from_secs(n), window, 2)
                .await
                .expect("tokens.admit"),
            "over the limit at t0+{n}s"
        );
    }
    assert!(
        store
            .admit(&key, t0 + Duration::from_secs(61), window, 2)
            .await
            .expect("tokens.admit"),
        "at t0+61s the hit of t0+1s has left the window, however many attempts were refused"
    );
    assert!(
        !store
            .admit(&key, t0 + Duration::from_secs(61), window, 2)
            .await
            .expect("tokens.admit"),
        "the slot just freed was taken"
    );
    // Concurrent requests stamp their time before they reach the store, so
    // a hit can arrive stamped earlier than one already recorded: it must
    // still count that one (16 clients flooding one address got 21 of 20
    // and 4 of 3 admitted when only hits up to the caller's time counted).
    let key = RateKey::Client("198.51.100.99".into());
    assert!(
        store
            .admit(&key, t0 + Duration::from_secs(10), window, 1)
            .await
            .expect("tokens.admit")
    );
    assert!(
        !store
            .admit(&key, t0 + Duration::from_secs(9), window, 1)
            .await
            .expect("tokens.admit"),
        "a hit stamped a moment later is in the window of a caller stamped earlier"
    );
}

/// The per-account limit inside [`TokenStore::issue`] counts a token
/// stamped a moment after the caller's own time.
async fn issue_limit_skew_checks(store: &dyn TokenStore) {
    let t0 = epoch();
    let window = Duration::from_secs(60);
    let (_, later) = record(
        "acct-skew",
        t0 + Duration::from_secs(10),
        Duration::from_secs(1800),
    );
    let (_, earlier) = record(
        "acct-skew",
        t0 + Duration::from_secs(9),
        Duration::from_secs(1800),
    );
    let limit = Some(Limit { max: 1, window });
    for (r, expected) in [(later, true), (earlier, false)] {
        let outcome = store
            .issue(TokenIssue {
                record: r,
                limit,
                supersede: true,
            })
            .await
            .expect("tokens.issue");
        assert_eq!(
            matches!(outcome, IssueOutcome::Issued { .. }),
            expected,
            "issue under the per-account limit with skewed stamps: {outcome:?}"
        );
    }
}

/// Of `concurrency` simultaneous consumes of one token, exactly one wins.
pub async fn token_store_concurrent_consume(store: Arc<dyn TokenStore>, concurrency: usize) {
    let t0 = epoch();
    let (_, r) = record("acct-race", t0, Duration::from_secs(1800));
    insert(store.as_ref(), &r).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(concurrency));
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let store = store.clone();
        let barrier = barrier.clone();
        let hash = r.hash;
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.consume(&hash, t0 + Duration::from_secs(1)).await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task
            .await
            .expect("consume task panicked")
            .expect("tokens.consume")
        {
            ConsumeOutcome::Consumed(_) => wins += 1,
            ConsumeOutcome::Rejected(RejectReason::AlreadyUsed) => {}
            other => panic!("losers must see AlreadyUsed, got {other:?}"),
        }
    }
    assert_eq!(
        wins, 1,
        "exactly one of {concurrency} concurrent consumes must win"
    );
}

/// Race 2 as a store property: `concurrency` simultaneous newest-wins
/// issues for one account leave exactly one live token, in each of
/// `rounds` rounds (each round on its own account).
pub async fn token_store_concurrent_issue(store: Arc<dyn TokenStore>, concurrency: usize, rounds: usize) {
    let t0 = epoch();
    for round in 0..rounds {
        let account = format!("acct-issue-race-{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(concurrency));
        let mut tasks = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            let (store, barrier) = (store.clone(), barrier.clone());
            let (_, r) = record(&account, t0, Duration::from_secs(1800));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let hash = r.hash;
                store
                    .issue(TokenIssue {
                        record: r,
                        limit: None,
                        supersede: true,
                    })
                    .await
                    .map(|outcome| (hash, outcome))
            }));
        }
        let mut hashes = Vec::with_capacity(concurrency);
        let mut superseded = 0;
        for task in tasks {
            let (hash, outcome) = task.await.expect("issue task panicked").expect("tokens.issue");
            match outcome {
                IssueOutcome::Issued { superseded: n } => superseded += n,
                IssueOutcome::RateLimited => panic!("no limit was given"),
            }
            hashes.push(hash);
        }
        let mut live = 0;
        for hash in &hashes {
            if state(store.as_ref(), hash).await == Some(TokenState::Active) {
                live += 1;
            }
        }
        assert_eq!(
            live, 1,
            "round {round}: exactly one live token after {concurrency} concurrent newest-wins issues"
        );
        assert_eq!(
            superseded,
            concurrency - 1,
            "round {round}: every issue but one was superseded exactly once"
        );
    }
}

/// Issues and consumes a token of `account`, then runs `step` on it at the
/// same moment as a revocation of the account's links; returns the token's
/// record and what `step` returned.
async fn spend_while_revoked<T, F, Fut>(
    store: &Arc<dyn TokenStore>,
    account: &str,
    step: F,
) -> (TokenRecord, T)
where
    F: FnOnce(Arc<dyn TokenStore>, TokenHash) -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::error::StoreError>> + Send + 'static,
    T: Send + 'static,
{
    let t0 = epoch();
    let (_, r) = record(account, t0, Duration::from_secs(1800));
    insert(store.as_ref(), &r).await;
    assert!(matches!(
        consume(store.as_ref(), &r.hash, t0).await,
        ConsumeOutcome::Consumed(_)
    ));
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let revoke = {
        let (store, barrier, account) = (store.clone(), barrier.clone(), r.account.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            store
                .revoke_for_account(&account, RevokeReason::UserDenied, t0)
                .await
        })
    };
    let stepped = {
        let (barrier, fut) = (barrier.clone(), step(store.clone(), r.hash));
        tokio::spawn(async move {
            barrier.wait().await;
            fut.await
        })
    };
    revoke
        .await
        .expect("revoke task panicked")
        .expect("tokens.revoke_for_account");
    let out = stepped
        .await
        .expect("racing task panicked")
        .expect("the racing token step");
    (r, out)
}

/// Race 1 under concurrency: a token being spent, revoked and released at
/// the same moment ends revoked in every round, whichever call lands first.
pub async fn token_store_concurrent_revoke_release(store: Arc<dyn TokenStore>, rounds: usize) {
    for round in 0..rounds {
        let account = format!("acct-revive-race-{round}");
        let (r, _) = spend_while_revoked(&store, &account, |store, hash| async move {
            store.release(&hash).await
        })
        .await;
        assert!(
            matches!(
                state(store.as_ref(), &r.hash).await,
                Some(TokenState::Revoked { .. })
            ),
            "round {round}: a token revoked while being spent stays revoked, whatever the order"
        );
    }
}

/// Race 1, the other side: a token being spent, finished and revoked at the
/// same moment. `finish` either wins (the token is used) or reports the
/// revocation (the token stays revoked); it never reports success for a
/// token that ends revoked.
pub async fn token_store_concurrent_finish_revoke(store: Arc<dyn TokenStore>, rounds: usize) {
    let t0 = epoch();
    for round in 0..rounds {
        let account = format!("acct-finish-race-{round}");
        let (r, finished) = spend_while_revoked(&store, &account, move |store, hash| async move {
            store.finish(&hash, t0).await
        })
        .await;
        let end = state(store.as_ref(), &r.hash).await;
        match finished {
            FinishOutcome::Finished { .. } => assert!(
                matches!(end, Some(TokenState::Used { .. })),
                "round {round}: finish reported success, so the token must be used, found {end:?}"
            ),
            FinishOutcome::RevokedMeanwhile(reason) => assert_eq!(
                end,
                Some(TokenState::Revoked { at: t0, reason }),
                "round {round}: finish reported the revocation"
            ),
        }
    }
}

/// [`TokenStore::restamp`]: a re-hash of the same password moves only
/// the account's live tokens bound to the old password state.
pub async fn restamp_suite(store: &dyn TokenStore) {
    let t0 = epoch();
    let life = Duration::from_secs(1800);
    let old = PasswordStamp::from_stored("old-stamp");
    let new = PasswordStamp::from_stored("new-stamp");
    let with_stamp = |account: &str, stamp: &PasswordStamp| {
        let (_, mut r) = record(account, t0, life);
        r.password_stamp = stamp.clone();
        r
    };
    let live = with_stamp("acct-restamp", &old);
    let other_state = with_stamp("acct-restamp", &PasswordStamp::from_stored("other"));
    let used = with_stamp("acct-restamp", &old);
    let neighbour = with_stamp("acct-neighbour", &old);
    for r in [&live, &other_state, &used, &neighbour] {
        insert(store, r).await;
    }
    assert!(matches!(
        consume(store, &used.hash, t0 + Duration::from_secs(1)).await,
        ConsumeOutcome::Consumed(_)
    ));
    store
        .finish(&used.hash, t0 + Duration::from_secs(2))
        .await
        .expect("tokens.finish");
    // `finish` revoked the account's other live tokens: issue fresh ones.
    let live = with_stamp("acct-restamp", &old);
    let other_state = with_stamp("acct-restamp", &PasswordStamp::from_stored("other"));
    insert(store, &live).await;
    insert(store, &other_state).await;
    let moved = store
        .restamp(&live.account, &old, &new)
        .await
        .expect("tokens.restamp");
    assert_eq!(
        moved, 1,
        "only the account's live token bound to the old state moves"
    );
    let stamp = |r: Option<TokenRecord>| r.map(|r| r.password_stamp);
    assert_eq!(
        stamp(store.find(&live.hash).await.expect("find")),
        Some(new.clone())
    );
    assert_eq!(
        stamp(store.find(&other_state.hash).await.expect("find")),
        Some(PasswordStamp::from_stored("other")),
        "a token bound to another password state is left alone"
    );
    assert_eq!(
        stamp(store.find(&used.hash).await.expect("find")),
        Some(old.clone()),
        "a used token is left alone"
    );
    assert_eq!(
        stamp(store.find(&neighbour.hash).await.expect("find")),
        Some(old.clone()),
        "another account's token is left alone"
    );
}

/// [`RateLimitAdmin`]: the console reads a key's count without recording
/// a hit, and clearing it starts the limit afresh.
pub async fn rate_limit_admin_suite(store: &dyn RateLimitAdmin) {
    let t0 = epoch();
    let key = RateKey::Account(AccountId::from("acct-limited"));
    let window = Duration::from_secs(900);
    for i in 0..3 {
        assert!(
            store
                .admit(&key, t0 + Duration::from_secs(i), window, 3)
                .await
                .expect("admit")
        );
    }
    let now = t0 + Duration::from_secs(10);
    assert_eq!(store.rate_count(&key, now, window).await.expect("rate_count"), 3);
    assert_eq!(
        store.rate_count(&key, now, window).await.expect("rate_count"),
        3,
        "reading the count records nothing"
    );
    assert!(
        !store.admit(&key, now, window, 3).await.expect("admit"),
        "the limit is spent"
    );
    assert_eq!(
        store
            .rate_count(&key, t0 + window + Duration::from_secs(1), window)
            .await
            .expect("rate_count"),
        1,
        "only the hit at t0+2s is within the window ending at t0+901s"
    );
    assert_eq!(store.rate_clear(&key).await.expect("rate_clear"), 3);
    assert_eq!(store.rate_count(&key, now, window).await.expect("rate_count"), 0);
    assert!(
        store.admit(&key, now, window, 3).await.expect("admit"),
        "cleared: admitted again"
    );
    let other = RateKey::Client("198.51.100.7".into());
    assert_eq!(store.rate_clear(&other).await.expect("rate_clear"), 0);
}
