//! Integration traps of a host `users` table: the mapping is verified
//! against the catalog at start-up (the id type inferred, a wrong column
//! named with the fix), and store errors show PostgreSQL's message, detail
//! and hint rather than the line of its C source.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::db;
use resetkit::account::{AccountDirectory, AccountId};
use resetkit_postgres::{IdType, PgAccounts, UsersTable, VerifyError};

async fn host_table(db: &common::TestDb) -> UsersTable {
    let s = db.schema.quoted();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {s}.users (id bigserial PRIMARY KEY, username text NOT NULL, email text, \
           password_hash text, is_active boolean NOT NULL DEFAULT true); \
         INSERT INTO {s}.users (username, email, password_hash, is_active) VALUES \
           ('alice', 'alice@example.com', NULL, true), ('bob', 'bob@example.com', NULL, false)"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    UsersTable::new("users")
        .resetkit_schema(db.schema.as_str())
        .schema(db.schema.as_str())
}

#[tokio::test]
async fn a_bigint_id_is_inferred_from_the_catalog() {
    let Some(db) = db("a_bigint_id_is_inferred_from_the_catalog").await else {
        return;
    };
    let table = host_table(&db).await.active_column("is_active");
    let accounts = PgAccounts::connect(db.pool.clone(), table).await.unwrap();
    let alice = accounts.find_by_username("alice").await.unwrap().unwrap();
    assert_eq!(alice.id.0, "1");
    // The id round-trips: the lookup `complete` does by id works.
    let again = accounts.find_by_id(&AccountId::from("1")).await.unwrap().unwrap();
    assert_eq!(again.username, "alice");
    assert!(accounts.find_by_username("bob").await.unwrap().unwrap().disabled);
    db.drop().await;
}

#[tokio::test]
async fn a_mapping_that_does_not_fit_is_refused_naming_column_type_and_fix() {
    let Some(db) = db("a_mapping_that_does_not_fit_is_refused_naming_column_type_and_fix").await else {
        return;
    };
    let table = host_table(&db).await;
    // bigint id mapped as text: before, links were mailed and then failed.
    let as_text = table
        .clone()
        .id_column("id", IdType::Text)
        .active_column("is_active");
    let unverified = PgAccounts::new(db.pool.clone(), as_text.clone()).unwrap();
    let error = unverified.verify().await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, VerifyError::WrongType { .. }), "{text}");
    assert!(
        text.contains("`id`")
            && text.contains("bigint")
            && text.contains(".id_column(\"id\", IdType::BigInt)"),
        "{text}"
    );
    assert!(PgAccounts::connect(db.pool.clone(), as_text).await.is_err());
    // A wrong column name is caught at start-up, with the likely fix.
    let wrong = table.clone().active_column("active");
    let error = PgAccounts::connect(db.pool.clone(), wrong.clone())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("`active`")
            && text.contains("users.active_column")
            && text.contains("did you mean `is_active`"),
        "{text}"
    );
    // A missing table.
    let missing = UsersTable::new("no_such_users").schema(db.schema.as_str());
    let error = PgAccounts::connect(db.pool.clone(), missing).await.unwrap_err();
    assert!(matches!(error, VerifyError::TableMissing { .. }), "{error}");

    // Unverified, the same mistake fails on the first request: the error
    // now carries PostgreSQL's hint and no C source line.
    let unverified = PgAccounts::new(db.pool.clone(), wrong.id_column("id", IdType::BigInt)).unwrap();
    let error = unverified.find_by_username("alice").await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("column \"active\" does not exist"), "{text}");
    assert!(text.contains("HINT") && text.contains("is_active"), "{text}");
    assert!(!text.contains(" at line "), "{text}");
    db.drop().await;
}

#[tokio::test]
async fn migrate_does_not_create_resetkit_accounts_when_a_host_table_is_mapped() {
    let Some(url) =
        common::database_url("migrate_does_not_create_resetkit_accounts_when_a_host_table_is_mapped")
    else {
        return;
    };
    let pool = common::pool(&url, 4).await;
    let app = common::random_schema();
    let resetkit_schema = common::random_schema();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA {app}; CREATE TABLE {app}.users (id bigint PRIMARY KEY, username text NOT NULL, \
           email text, password_hash text, is_active boolean NOT NULL DEFAULT true); \
         INSERT INTO {app}.users VALUES (7, 'alice', 'alice@example.com', NULL, true)"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let stores = resetkit_postgres::PgStores::new(pool.clone(), &resetkit_schema)
        .unwrap()
        .with_queue_clock(resetkit_postgres::QueueClock::Caller);
    let accounts = stores
        .verified_accounts_for(UsersTable::new("users").schema(&app).active_column("is_active"))
        .await
        .unwrap();
    stores.migrate().await.unwrap();
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(format!("{resetkit_schema}.accounts"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(exists, None, "resetkit's own accounts table was not created");
    let tokens: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(format!("{resetkit_schema}.tokens"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(tokens.is_some(), "the other tables were");
    // Lookups use the migrated canonical_identifier function.
    assert_eq!(
        accounts.find_by_email("alice@example.com").await.unwrap()[0].id.0,
        "7"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA {app} CASCADE; DROP SCHEMA {resetkit_schema} CASCADE"
    )))
    .execute(&pool)
    .await
    .unwrap();
}

/// `complete`'s joined reads ([`TokenStore::find_with_account`],
/// [`TokenStore::consume_with_account`], one statement each) on host tables
/// whose id is `bigint` and `uuid`: the token's text id is cast only when
/// it fits the column, so a token whose id cannot be one (or is out of
/// range) reads no account instead of failing the statement.
#[tokio::test]
async fn joined_token_reads_fit_bigint_and_uuid_ids() {
    use resetkit::account::Account;
    use resetkit::store::{ConsumeOutcome, TokenIssue, TokenStore};
    use resetkit::token::{RawToken, TokenRecord, TokenState};
    use std::time::{Duration, SystemTime};

    let Some(db) = db("joined_token_reads_fit_bigint_and_uuid_ids").await else {
        return;
    };
    let s = db.schema.quoted();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {s}.big_users (id bigint PRIMARY KEY, username text NOT NULL, email text, password_hash text); \
         CREATE TABLE {s}.uuid_users (id uuid PRIMARY KEY, username text NOT NULL, email text, password_hash text); \
         INSERT INTO {s}.big_users VALUES (7, 'seven', 'seven@example.com', NULL), \
           (9223372036854775807, 'max', 'max@example.com', NULL); \
         INSERT INTO {s}.uuid_users VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'u', 'u@example.com', NULL)"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    let table = |name: &str, id_type| {
        UsersTable::new(name)
            .resetkit_schema(db.schema.as_str())
            .schema(db.schema.as_str())
            .id_column("id", id_type)
    };
    let big = PgAccounts::new(db.pool.clone(), table("big_users", IdType::BigInt)).unwrap();
    let uuid = PgAccounts::new(db.pool.clone(), table("uuid_users", IdType::Uuid)).unwrap();
    let tokens = db.stores.tokens.clone();
    let now = SystemTime::now();
    let cases: [(&PgAccounts, &str, Option<&str>); 9] = [
        (&big, "7", Some("seven")),
        (&big, "9223372036854775807", Some("max")),
        (&big, "8", None),
        (&big, "9223372036854775808", None),
        (&big, "seven", None),
        (&big, "1e3", None),
        (&uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", Some("u")),
        (&uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12", None),
        (&uuid, "not-a-uuid", None),
    ];
    for (dir, id, want) in cases {
        let raw = RawToken::generate().unwrap();
        let record = TokenRecord {
            hash: raw.hash(),
            account: AccountId::from(id),
            sent_to: "x@example.com".into(),
            password_stamp: Account::new(id, "x", "x@example.com").password_stamp(),
            issued_at: now,
            expires_at: now + Duration::from_secs(600),
            state: TokenState::Active,
            deny_hash: None,
        };
        tokens
            .issue(TokenIssue {
                record,
                limit: None,
                supersede: false,
            })
            .await
            .unwrap();
        let (_, found) = tokens
            .find_with_account(&raw.hash(), dir)
            .await
            .unwrap_or_else(|e| panic!("find_with_account for `{id}`: {e}"))
            .unwrap();
        assert_eq!(
            found.map(|a| a.username).as_deref(),
            want,
            "find_with_account for `{id}`"
        );
        let (outcome, current) = tokens
            .consume_with_account(&raw.hash(), now, dir)
            .await
            .unwrap_or_else(|e| panic!("consume_with_account for `{id}`: {e}"));
        assert!(
            matches!(outcome, ConsumeOutcome::Consumed(_)),
            "`{id}`: {outcome:?}"
        );
        assert_eq!(
            current.as_ref().map(|a| a.id.0.as_str()),
            want.map(|_| id),
            "consume_with_account for `{id}`"
        );
        // The same as the separate reads.
        assert_eq!(
            dir.find_by_id(&AccountId::from(id))
                .await
                .unwrap()
                .map(|a| a.username)
                .as_deref(),
            want
        );
    }
    db.drop().await;
}
