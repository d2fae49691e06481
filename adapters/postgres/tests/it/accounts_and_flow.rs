//! PgAccounts on a host table and on resetkit's own table, and the full
//! reset flow on the Postgres stores.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;

use async_trait::async_trait;
use common::db;
use resetkit::account::{Account, AccountDirectory, AccountId};
use resetkit::error::StoreError;
use resetkit::hasher::PasswordHash;
use resetkit::prelude::*;
use resetkit::token::{RawToken, TokenState};
use resetkit_postgres::{IdType, PgAccounts, UsersTable};
use secrecy::SecretString;

#[tokio::test]
async fn maps_onto_an_existing_users_table() {
    let Some(db) = db("maps_onto_an_existing_users_table").await else {
        return;
    };
    let s = db.schema.quoted();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {s}.app_users (user_id bigint PRIMARY KEY, login text NOT NULL, mail text, \
           pw text, is_active boolean NOT NULL, verified boolean, manager text, created timestamptz DEFAULT now()); \
         CREATE INDEX ON {s}.app_users ({s}.canonical_identifier(mail)); \
         INSERT INTO {s}.app_users (user_id, login, mail, pw, is_active, verified, manager) VALUES \
           (1, 'Alice', 'Alice@Example.com', NULL, true, true, 'ops'), \
           (2, 'alice2', 'alice@example.COM', '$argon2id$x', true, false, NULL), \
           (3, 'bob', 'bob@example.com', NULL, false, true, NULL)"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    let table = UsersTable::new("app_users")
        .resetkit_schema(db.schema.as_str())
        .schema(db.schema.as_str())
        .id_column("user_id", IdType::BigInt)
        .username_column("login")
        .email_column("mail")
        .password_hash_column("pw")
        .active_column("is_active")
        .email_confirmed_column("verified")
        .owner_column("manager");
    let dir = PgAccounts::new(db.pool.clone(), table).unwrap();

    let mut shared = dir.find_by_email("alice@example.com").await.unwrap();
    shared.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(shared.len(), 2, "accounts sharing an email are all found");
    assert_eq!(
        shared[0].email.as_deref(),
        Some("Alice@Example.com"),
        "stored address kept"
    );
    assert_eq!(shared[0].owner.as_deref(), Some("ops"));
    assert!(!shared[1].email_confirmed);
    assert!(shared[1].password_hash.is_some());

    let alice = dir.find_by_username("alice").await.unwrap().unwrap();
    assert_eq!(alice.id, AccountId::from("1"));
    assert!(
        dir.find_by_id(&AccountId::from("3"))
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert!(
        dir.find_by_id(&AccountId::from("not-a-number"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(dir.find_by_email("nobody@example.com").await.unwrap().is_empty());

    dir.set_password_hash(&AccountId::from("1"), &PasswordHash::from_phc("$argon2id$new"))
        .await
        .unwrap();
    let pw: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT pw FROM {s}.app_users WHERE user_id = 1"
    )))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(pw.as_deref(), Some("$argon2id$new"));
    let err = dir
        .set_password_hash(&AccountId::from("99"), &PasswordHash::from_phc("x"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::NotFound {
            operation: "accounts.set_password_hash",
            ..
        }
    ));
    db.drop().await;
}

/// A directory whose password update fails while `failing` is set.
struct FlakyDirectory {
    inner: Arc<PgAccounts>,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl AccountDirectory for FlakyDirectory {
    async fn find_by_email(&self, e: &str) -> Result<Vec<Account>, StoreError> {
        self.inner.find_by_email(e).await
    }
    async fn find_by_username(&self, u: &str) -> Result<Option<Account>, StoreError> {
        self.inner.find_by_username(u).await
    }
    async fn find_by_id(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.inner.find_by_id(id).await
    }
    async fn set_password_hash(&self, id: &AccountId, h: &PasswordHash) -> Result<(), StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::unavailable(
                "accounts.set_password_hash",
                "injected outage",
            ));
        }
        self.inner.set_password_hash(id, h).await
    }
}

fn token_from(mail: &OutgoingEmail) -> String {
    let link = mail
        .expose_text()
        .lines()
        .find(|l| l.starts_with("https://app.example.com/reset?"))
        .unwrap();
    link.split("token=").nth(1).unwrap().trim().to_owned()
}

#[tokio::test]
async fn full_reset_flow_on_postgres_stores() {
    let Some(db) = db("full_reset_flow_on_postgres_stores").await else {
        return;
    };
    let accounts = db.stores.own_accounts().unwrap();
    accounts
        .upsert(&Account::new("1", "alice", "Alice@Example.com"))
        .await
        .unwrap();
    let directory = Arc::new(FlakyDirectory {
        inner: accounts.clone(),
        failing: std::sync::atomic::AtomicBool::new(true),
    });
    let mailer = CapturingMailer::default();
    let service = ResetService::builder()
        .request_processing(resetkit::flow::RequestProcessing::Immediate) // read the mail right after `request`
        .base_url("https://app.example.com")
        .accounts(directory.clone())
        .tokens(db.stores.tokens.clone())
        .events(db.stores.events.clone())
        .mailer(Arc::new(mailer.clone()))
        .sender(Arc::new(FixedSender::new(
            Mailbox::address_only("noreply@example.com").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .build()
        .unwrap();

    service
        .request("  ALICE@example.com ", &RequestContext::default())
        .await
        .unwrap();
    let mails = mailer.sent_to("Alice@Example.com");
    assert_eq!(mails.len(), 1, "mail goes to the stored address");
    let token = token_from(&mails[0]);
    let hash = RawToken::parse(&token).unwrap().hash();
    service.inspect(&token).await.unwrap();

    // The password store fails after the token was consumed: the token is
    // released, so it is never spent without the password being set.
    let pw = SecretString::from("a sufficiently long passphrase");
    let err = service
        .complete(&token, pw.clone(), pw.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, CompleteError::Unavailable(_)), "{err:?}");
    let record = db.stores.tokens.find(&hash).await.unwrap().unwrap();
    assert_eq!(record.state, TokenState::Active);
    assert!(
        accounts
            .find_by_id(&AccountId::from("1"))
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .is_none()
    );

    directory
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let done = service.complete(&token, pw.clone(), pw.clone()).await.unwrap();
    assert_eq!(done.username, "alice");
    let stored = accounts.find_by_id(&AccountId::from("1")).await.unwrap().unwrap();
    assert!(stored.password_hash.unwrap().expose().starts_with("$argon2id$"));
    assert!(service.verify_password(&AccountId::from("1"), &pw).await.unwrap());
    assert!(matches!(
        db.stores.tokens.find(&hash).await.unwrap().unwrap().state,
        TokenState::Used { .. }
    ));
    // The link is spent; the password-changed notice went out; events recorded.
    assert!(matches!(
        service.complete(&token, pw.clone(), pw).await,
        Err(CompleteError::InvalidLink)
    ));
    assert_eq!(mailer.sent().len(), 2);
    let events = db.stores.events.for_account(&AccountId::from("1")).await.unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert!(
        names.contains(&"reset_requested") && names.contains(&"reset_completed"),
        "{names:?}"
    );
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_completes_through_the_service_one_wins() {
    let Some(db) = common::db_with("fifty_concurrent_completes_through_the_service_one_wins", 50).await
    else {
        return;
    };
    let accounts = db.stores.own_accounts().unwrap();
    accounts
        .upsert(&Account::new("1", "alice", "alice@example.com"))
        .await
        .unwrap();
    let mailer = CapturingMailer::default();
    let service = ResetService::builder()
        .request_processing(resetkit::flow::RequestProcessing::Immediate) // read the mail right after `request`
        .base_url("https://app.example.com")
        .accounts(accounts.clone())
        .tokens(db.stores.tokens.clone())
        .events(db.stores.events.clone())
        .mailer(Arc::new(mailer.clone()))
        .sender(Arc::new(FixedSender::new(
            Mailbox::address_only("noreply@example.com").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .build()
        .unwrap();
    service
        .request("alice@example.com", &RequestContext::default())
        .await
        .unwrap();
    let token = Arc::new(token_from(&mailer.sent()[0]));
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for n in 0..50 {
        let (service, token, barrier) = (service.clone(), token.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let pw = SecretString::from(format!("racing passphrase number {n:02}"));
            barrier.wait().await;
            service.complete(&token, pw.clone(), pw).await
        }));
    }
    let mut winners = Vec::new();
    let mut invalid = 0;
    for (n, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(_) => winners.push(n),
            Err(CompleteError::InvalidLink) => invalid += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one complete succeeds");
    assert_eq!(invalid, 49);
    let pw = SecretString::from(format!("racing passphrase number {:02}", winners[0]));
    assert!(
        service.verify_password(&AccountId::from("1"), &pw).await.unwrap(),
        "the winner's password is stored"
    );
    db.drop().await;
}

/// Counts session revocations, and whether the password was already
/// stored when the hook ran.
struct Sessions {
    accounts: Arc<PgAccounts>,
    calls: std::sync::atomic::AtomicUsize,
    after_password: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl SessionRevoker for Sessions {
    async fn revoke_sessions(&self, account: &AccountId) -> Result<(), String> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let stored = self
            .accounts
            .find_by_id(account)
            .await
            .map_err(|e| e.to_string())?;
        let set = stored.and_then(|a| a.password_hash).is_some();
        self.after_password
            .store(set, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// `complete` with outbox delivery on PostgreSQL writes the password, the
/// token's finish, the events and the notice in one statement: when it
/// fails (here the outbox refuses the notice) nothing is written and the
/// link is given back, so the retry succeeds; sessions are revoked after.
#[tokio::test]
async fn complete_with_the_notice_is_all_or_nothing_on_postgres() {
    let Some(db) = db("complete_with_the_notice_is_all_or_nothing_on_postgres").await else {
        return;
    };
    let accounts = db.stores.own_accounts().unwrap();
    accounts
        .upsert(&Account::new("a1", "alice", "alice@example.com"))
        .await
        .unwrap();
    let sessions = Arc::new(Sessions {
        accounts: accounts.clone(),
        calls: std::sync::atomic::AtomicUsize::new(0),
        after_password: std::sync::atomic::AtomicBool::new(false),
    });
    let mailer = CapturingMailer::default();
    let service = ResetService::builder()
        .request_processing(resetkit::flow::RequestProcessing::Immediate)
        .base_url("https://app.example.com")
        .accounts(accounts.clone())
        .tokens(db.stores.tokens.clone())
        .events(db.stores.events.clone())
        .outbox(db.stores.outbox.clone())
        .mailer(Arc::new(mailer.clone()))
        .sender(Arc::new(FixedSender::new(
            Mailbox::address_only("noreply@example.com").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .session_revoker(sessions.clone())
        .build()
        .unwrap();
    let delivery = service.delivery_worker().unwrap();
    service
        .request("alice@example.com", &RequestContext::default())
        .await
        .unwrap();
    // A second link, revoked by the reset.
    service
        .request("alice@example.com", &RequestContext::default())
        .await
        .unwrap();
    while delivery.run_once().await.unwrap().sent > 0 {}
    let token = token_from(mailer.sent().last().unwrap());
    let hash = RawToken::parse(&token).unwrap().hash();

    let s = db.schema.quoted();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION {s}.refuse_notice() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'outbox refuses the notice'; END $$; \
         CREATE TRIGGER refuse_notice BEFORE INSERT ON {s}.outbox FOR EACH ROW \
           WHEN (NEW.kind = 'password_changed') EXECUTE FUNCTION {s}.refuse_notice()"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    let pw = SecretString::from("a sufficiently long passphrase");
    let err = service
        .complete(&token, pw.clone(), pw.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, CompleteError::Unavailable(_)), "{err:?}");
    assert!(
        accounts
            .find_by_id(&AccountId::from("a1"))
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .is_none(),
        "the password is not written when the step fails"
    );
    assert_eq!(
        db.stores.tokens.find(&hash).await.unwrap().unwrap().state,
        TokenState::Active,
        "the link is given back"
    );
    let trail = db
        .stores
        .events
        .for_account(&AccountId::from("a1"))
        .await
        .unwrap();
    assert!(!trail.iter().any(|e| e.kind == EventKind::ResetCompleted));
    assert_eq!(sessions.calls.load(std::sync::atomic::Ordering::SeqCst), 0);

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP TRIGGER refuse_notice ON {s}.outbox"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    service.complete(&token, pw.clone(), pw.clone()).await.unwrap();
    assert!(
        service
            .verify_password(&AccountId::from("a1"), &pw)
            .await
            .unwrap()
    );
    assert!(matches!(
        db.stores.tokens.find(&hash).await.unwrap().unwrap().state,
        TokenState::Used { .. }
    ));
    assert_eq!(sessions.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(
        sessions.after_password.load(std::sync::atomic::Ordering::SeqCst),
        "sessions are revoked after the password is stored"
    );
    let trail = db
        .stores
        .events
        .for_account(&AccountId::from("a1"))
        .await
        .unwrap();
    let completed = trail
        .iter()
        .filter(|e| e.kind == EventKind::ResetCompleted)
        .count();
    assert_eq!(completed, 1, "{trail:?}");
    assert!(
        trail.iter().any(|e| matches!(
            e.kind,
            EventKind::EmailQueued {
                email: resetkit::mail::EmailKind::PasswordChanged,
                ..
            }
        )),
        "{trail:?}"
    );
    // The first link was superseded by the second request, not revoked by
    // the reset: no link was live besides the one spent.
    assert!(!trail.iter().any(|e| matches!(
        e.kind,
        EventKind::LinksRevoked {
            reason: resetkit::token::RevokeReason::PasswordReset,
            ..
        }
    )));
    while delivery.run_once().await.unwrap().sent > 0 {}
    let notices: Vec<_> = mailer
        .sent()
        .into_iter()
        .filter(|m| m.kind == resetkit::mail::EmailKind::PasswordChanged)
        .collect();
    assert_eq!(notices.len(), 1, "the notice is queued once and delivered");
    assert!(matches!(
        service.complete(&token, pw.clone(), pw).await,
        Err(CompleteError::InvalidLink)
    ));
    db.drop().await;
}
