//! Acceptance: of any number of concurrent `complete` calls with one token,
//! exactly one wins; the others get the public `InvalidLink` error.

use crate::common;

use std::sync::Arc;

use common::{Fixture, secret};
use resetkit::event::EventKind;
use resetkit::prelude::*;
use resetkit::token::RejectReason;

const RACERS: usize = 50;

fn password(i: usize) -> String {
    format!("racing passphrase number {i:02} wins")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_completes_with_one_token_have_exactly_one_winner() {
    let fx = Fixture::with_accounts([Account::new("a1", "alice", "alice@example.com")]);
    let service = Arc::new(fx.service());
    let token = fx.request_token(&service, "alice@example.com").await;

    let start = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut racers = Vec::with_capacity(RACERS);
    for i in 0..RACERS {
        let service = Arc::clone(&service);
        let token = token.clone();
        let start = Arc::clone(&start);
        racers.push(tokio::spawn(async move {
            start.wait().await;
            let pw = password(i);
            (i, service.complete(&token, secret(&pw), secret(&pw)).await)
        }));
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    for racer in racers {
        let (i, outcome) = racer.await.expect("task ran");
        match outcome {
            Ok(done) => {
                assert_eq!(done.account, AccountId::from("a1"));
                winners.push(i);
            }
            Err(CompleteError::InvalidLink) => losers += 1,
            Err(other) => panic!("racer {i}: unexpected error {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    assert_eq!(losers, RACERS - 1);

    // The stored password is the winner's.
    let a1 = AccountId::from("a1");
    let winner = winners[0];
    assert!(
        service
            .verify_password(&a1, &secret(&password(winner)))
            .await
            .expect("verify")
    );
    let other = (winner + 1) % RACERS;
    assert!(
        !service
            .verify_password(&a1, &secret(&password(other)))
            .await
            .expect("verify")
    );

    // One reset, one notice; every loser is recorded as a rejection. A loser
    // that read the token before the winner spent it and the account after
    // the new password was stored sees the password change instead.
    assert_eq!(fx.count("reset_completed"), 1);
    assert_eq!(
        fx.mailer
            .sent()
            .iter()
            .filter(|m| m.kind == EmailKind::PasswordChanged)
            .count(),
        1
    );
    let rejections = fx.rejections();
    assert_eq!(rejections.len(), RACERS - 1);
    assert!(
        rejections
            .iter()
            .all(|r| matches!(r, RejectReason::AlreadyUsed | RejectReason::PasswordChanged)),
        "{rejections:?}"
    );
    assert!(
        fx.kinds()
            .iter()
            .all(|k| !matches!(k, EventKind::SessionRevocationFailed { .. }))
    );
}
