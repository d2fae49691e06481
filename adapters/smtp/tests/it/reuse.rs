//! Connection reuse against a scripted server that logs every command:
//! the pool, when `RSET` is sent, and what happens when the server closed a
//! kept connection.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::email;
use common::stub::{AfterMessage, Stub};
use resetkit::mail::{DeliveryError, Mailer};
use resetkit_smtp::{ConnectionReuse, SmtpConfig, SmtpConfigBuilder, SmtpMailer, TlsMode};

fn config(stub: &Stub) -> SmtpConfigBuilder {
    SmtpConfig::builder("127.0.0.1")
        .port(stub.addr.port())
        .tls(TlsMode::None)
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2))
}

fn mailer(stub: &Stub) -> SmtpMailer {
    SmtpMailer::new(config(stub).build().unwrap()).unwrap()
}

async fn send(mailer: &SmtpMailer, to: &str) -> Result<(), DeliveryError> {
    mailer.send(&email("noreply@example.com", to)).await.map(|_| ())
}

fn verbs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn reuse_is_on_by_default_and_a_clean_connection_gets_no_rset() {
    let stub = Stub::start(AfterMessage::Keep);
    let mailer = mailer(&stub);
    for i in 0..3 {
        send(&mailer, &format!("u{i}@example.com")).await.unwrap();
    }
    mailer.close().await;
    assert_eq!(stub.connections(), 1);
    assert_eq!(
        stub.on(1),
        verbs(&[
            "EHLO", "MAIL", "RCPT", "DATA", ".", "MAIL", "RCPT", "DATA", ".", "MAIL", "RCPT", "DATA", ".",
            "QUIT"
        ])
    );
}

#[tokio::test]
async fn a_failed_transaction_is_reset_before_the_connection_carries_the_next_message() {
    let stub = Stub::start(AfterMessage::Keep);
    let mailer = mailer(&stub);
    let err = send(&mailer, "bad@example.com").await.unwrap_err();
    assert!(matches!(err, DeliveryError::RecipientRejected { .. }), "{err:?}");
    send(&mailer, "good@example.com").await.unwrap();
    assert_eq!(stub.connections(), 1);
    assert_eq!(
        stub.on(1),
        verbs(&["EHLO", "MAIL", "RCPT", "RSET", "MAIL", "RCPT", "DATA", "."])
    );
}

#[tokio::test]
async fn a_kept_connection_the_server_closed_is_replaced_without_failing_the_message() {
    for after in [AfterMessage::Close, AfterMessage::Reply421] {
        let stub = Stub::start(after);
        let mailer = mailer(&stub);
        for i in 0..3 {
            send(&mailer, &format!("u{i}@example.com"))
                .await
                .unwrap_or_else(|e| panic!("{after:?}, message {i}: {e}"));
        }
        assert_eq!(stub.messages(), 3, "{after:?}");
        // Each later message first found the kept connection gone.
        assert_eq!(stub.connections(), 3, "{after:?}");
    }
}

#[tokio::test]
async fn without_reuse_every_message_has_its_own_connection_closed_with_quit() {
    let stub = Stub::start(AfterMessage::Keep);
    let mailer = SmtpMailer::new(config(&stub).no_connection_reuse().build().unwrap()).unwrap();
    assert_eq!(mailer.config().reuse(), None);
    send(&mailer, "a@example.com").await.unwrap();
    send(&mailer, "b@example.com").await.unwrap();
    assert_eq!(stub.connections(), 2);
    for n in [1, 2] {
        assert_eq!(stub.on(n), verbs(&["EHLO", "MAIL", "RCPT", "DATA", ".", "QUIT"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_share_a_pool_of_kept_connections() {
    // The first 8 messages are held in DATA until all 8 have got there, so
    // the first round needs 8 connections at once.
    let stub = Stub::start_holding(AfterMessage::Keep, 8);
    let mailer = mailer(&stub);
    for round in 0..3 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8 {
            let m = mailer.clone();
            tasks.spawn(async move { send(&m, &format!("r{round}-{i}@example.com")).await });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
    }
    assert_eq!(stub.messages(), 24);
    // The first round opened 8 connections, all kept; later rounds found
    // them in the pool.
    assert_eq!(stub.connections(), 8);
    assert_eq!(stub.count("RSET"), 0);
    mailer.close().await;
    assert_eq!(stub.count("QUIT"), stub.connections());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_keeps_at_most_max_idle_connections() {
    let stub = Stub::start_holding(AfterMessage::Keep, 6);
    let reuse = ConnectionReuse {
        max_idle: 2,
        ..ConnectionReuse::default()
    };
    let mailer = SmtpMailer::new(config(&stub).reuse_connections(reuse).build().unwrap()).unwrap();
    // Six connections at once: each message waits in DATA until all six
    // sessions have got there, so none can be reused by another.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let m = mailer.clone();
        tasks.spawn(async move { send(&m, &format!("u{i}@example.com")).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(stub.connections(), 6);
    // Two were kept, four closed at once.
    assert_eq!(stub.count("QUIT"), 4);
    send(&mailer, "again@example.com").await.unwrap();
    assert_eq!(stub.connections(), 6);
    mailer.close().await;
    assert_eq!(stub.count("QUIT"), 6);
}

#[tokio::test]
async fn idle_connections_are_closed_with_quit_after_the_idle_timeout() {
    let stub = Stub::start(AfterMessage::Keep);
    let reuse = ConnectionReuse {
        idle_timeout: Duration::from_millis(50),
        ..ConnectionReuse::default()
    };
    let mailer = SmtpMailer::new(config(&stub).reuse_connections(reuse).build().unwrap()).unwrap();
    send(&mailer, "a@example.com").await.unwrap();
    assert!(stub.wait_until(|s| s.count("QUIT") == 1).await);
    // The next message opens a new connection.
    send(&mailer, "b@example.com").await.unwrap();
    assert_eq!(stub.connections(), 2);
    assert_eq!(stub.count("RSET"), 0);
}

#[test]
fn a_mailer_outlives_the_runtime_its_connections_were_opened_on() {
    let stub = Stub::start(AfterMessage::Keep);
    let mailer = mailer(&stub);
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    runtime().block_on(send(&mailer, "a@example.com")).unwrap();
    // The connection kept by the first runtime cannot be driven by the
    // second: the message goes out on a new connection.
    runtime().block_on(send(&mailer, "b@example.com")).unwrap();
    assert_eq!(stub.messages(), 2);
    assert_eq!(stub.connections(), 2);
    drop(mailer);
}

#[tokio::test]
async fn dropping_the_last_clone_closes_its_idle_connections_with_quit() {
    let stub = Stub::start(AfterMessage::Keep);
    let mailer = mailer(&stub);
    let clone = mailer.clone();
    send(&mailer, "a@example.com").await.unwrap();
    drop(mailer);
    send(&clone, "b@example.com").await.unwrap();
    assert_eq!(stub.count("QUIT"), 0);
    drop(clone);
    assert!(stub.wait_until(|s| s.count("QUIT") == 1).await);
    assert_eq!(stub.connections(), 1);
}

#[test]
fn connections_that_expired_while_no_timer_ran_do_not_block_the_pool() {
    let stub = Stub::start(AfterMessage::Keep);
    let reuse = ConnectionReuse {
        idle_timeout: Duration::from_millis(50),
        max_idle: 1,
        ..ConnectionReuse::default()
    };
    let mailer = SmtpMailer::new(config(&stub).reuse_connections(reuse).build().unwrap()).unwrap();
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    // Kept by a runtime that is then shut down, timer task and all.
    runtime().block_on(send(&mailer, "a@example.com")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    runtime().block_on(async {
        send(&mailer, "b@example.com").await.unwrap();
        send(&mailer, "c@example.com").await.unwrap();
        // b and c shared a new connection, kept despite max_idle 1 and
        // closed by this runtime's timer.
        assert_eq!(stub.connections(), 2);
        assert!(
            stub.wait_until(|s| s.on(2).last().is_some_and(|v| v == "QUIT"))
                .await
        );
    });
}
