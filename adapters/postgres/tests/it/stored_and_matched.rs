//! Issue 13 on PostgreSQL: the SQL canonical form equals the core's, an
//! existing database upgrades in place (and loses its clear-text
//! identifiers), and the event log never receives an unknown identifier
//! in clear.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;

use common::{db, pool, random_schema};
use resetkit::conformance::{matching_accounts, matching_vectors};
use resetkit::event::{EventKind, IgnoreReason};
use resetkit::fingerprint::{FingerprintKey, fingerprint};
use resetkit::identifier::{canonicalize, case_fold};
use resetkit::prelude::*;
use resetkit_postgres::{Ident, PgStores, migrate_up_to};
use unicode_normalization::UnicodeNormalization as _;

/// Every code point that NFKC or case folding changes, in a little context.
fn interesting_strings() -> Vec<String> {
    let mut out: Vec<String> = (0x20..=0x1_FFFFu32)
        .filter_map(char::from_u32)
        .filter(|c| {
            let s = c.to_string();
            case_fold(&s) != s || s.nfkc().collect::<String>() != s
        })
        .map(|c| format!("A{c}b"))
        .collect();
    for v in matching_vectors() {
        out.push(v.typed.to_owned());
    }
    for a in matching_accounts() {
        out.push(a.username.clone());
        out.extend(a.email.clone());
    }
    out.extend(
        [
            "  Straße\u{3000}",
            "\u{A0}x\u{2003}",
            "ΣΑΣ",
            "ǅemal",
            "ﬃ",
            "\u{345}",
        ]
        .map(String::from),
    );
    out
}

#[tokio::test]
async fn item2_sql_canonical_identifier_equals_the_core() {
    let Some(db) = db("item2_sql_canonical_identifier_equals_the_core").await else {
        return;
    };
    let inputs = interesting_strings();
    let sql = format!(
        "SELECT {}.canonical_identifier(x) FROM unnest($1::text[]) WITH ORDINALITY AS t(x, n) ORDER BY n",
        db.schema.quoted()
    );
    let got: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(&inputs)
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let differ: Vec<(&String, &String)> = inputs
        .iter()
        .zip(&got)
        .filter(|(input, sql)| canonicalize(input) != **sql)
        .collect();
    // PostgreSQL 15 normalises with older Unicode tables than the core's
    // `unicode-normalization`: a character assigned since then keeps its compatibility
    // form in SQL. Those are the only differences allowed; folding (which
    // the migration generated from the core) must agree everywhere.
    let newer_than_postgres = |input: &str, sql: &str| {
        input.chars().nth(1).is_some_and(|c| {
            input.chars().count() == 3
                && sql.contains(c)
                && c.to_string().nfkc().collect::<String>() != c.to_string()
        })
    };
    let unexplained: Vec<String> = differ
        .iter()
        .filter(|(input, sql)| !newer_than_postgres(input, sql))
        .map(|(input, sql)| {
            format!(
                "{:?} {:04X?}: core {:?}, SQL {sql:?}",
                input,
                input.chars().map(u32::from).collect::<Vec<_>>(),
                canonicalize(input)
            )
        })
        .collect();
    println!(
        "{} strings compared: {} differ, all by characters newer than PostgreSQL's Unicode tables",
        inputs.len(),
        differ.len()
    );
    assert!(
        unexplained.is_empty(),
        "{} of {} differ:\n{}",
        unexplained.len(),
        inputs.len(),
        unexplained.join("\n")
    );
    // The shared vectors and their accounts agree exactly.
    for v in matching_vectors() {
        let sql: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {}.canonical_identifier($1)",
            db.schema.quoted()
        )))
        .bind(v.typed)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(sql, canonicalize(v.typed), "{}", v.what);
    }
    db.drop().await;
}

#[tokio::test]
async fn item2_and_item1_an_existing_database_upgrades_in_place() {
    let Some(url) = common::database_url("item2_and_item1_an_existing_database_upgrades_in_place") else {
        return;
    };
    let pool = pool(&url, 4).await;
    let schema = Ident::new(&random_schema()).unwrap();
    // A database at version 2, with data written by the old code.
    assert_eq!(migrate_up_to(&pool, &schema, 2).await.unwrap(), vec![1, 2]);
    let s = schema.quoted();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {s}.accounts (id, username, email) VALUES ('old-1', 'Σίσυφος', 'Ｆrank@example.test'); \
         INSERT INTO {s}.events (at, account_id, kind, detail) VALUES \
           (now(), NULL, 'request_ignored', '{{\"reason\": \"unknown_identifier\", \"identifier\": \"hunter2 is my password\"}}')"
    )))
    .execute(&pool)
    .await
    .unwrap();

    let stores = PgStores::new(pool.clone(), schema.as_str())
        .unwrap()
        .with_queue_clock(resetkit_postgres::QueueClock::Caller);
    let applied = stores.migrate().await.unwrap();
    assert!(applied.contains(&4), "{applied:?}");
    let accounts = stores.own_accounts().unwrap();
    let found = accounts
        .find_by_email(&canonicalize("FRANK@example.test"))
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "the old row is found by its canonical form");
    assert_eq!(
        found[0].email.as_deref(),
        Some("Ｆrank@example.test"),
        "stored address unchanged"
    );
    assert!(
        accounts
            .find_by_username(&canonicalize("σίσυφοσ"))
            .await
            .unwrap()
            .is_some()
    );

    let raw: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT detail::text FROM {s}.events"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(raw.iter().all(|d| !d.contains("hunter2")), "{raw:?}");
    let events = stores.events.recent(10).await.unwrap();
    assert!(matches!(
        &events[0].kind,
        EventKind::RequestIgnored { reason: IgnoreReason::UnknownIdentifier, fingerprint } if fingerprint.is_empty()
    ));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {s} CASCADE")))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn item1_the_postgres_event_log_never_holds_an_unknown_identifier_in_clear() {
    let Some(db) = db("item1_the_postgres_event_log_never_holds_an_unknown_identifier_in_clear").await else {
        return;
    };
    let key = || FingerprintKey::new(b"postgres test deployment key".to_vec()).unwrap();
    let service = ResetService::builder()
        .request_processing(resetkit::flow::RequestProcessing::Immediate) // read the mail right after `request`
        .base_url("https://app.example.com")
        .accounts(db.stores.own_accounts().unwrap())
        .tokens(db.stores.tokens.clone())
        .events(db.stores.events.clone())
        .mailer(Arc::new(CapturingMailer::default()))
        .sender(Arc::new(FixedSender::new(
            Mailbox::address_only("noreply@example.com").unwrap(),
        )))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()))
        .fingerprint_key(key())
        .build()
        .unwrap();
    let typed = "MySecretPassw0rd and more";
    service.request(typed, &RequestContext::default()).await.unwrap();
    let s = db.schema.quoted();
    let raw: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT detail::text FROM {s}.events"
    )))
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(raw.len(), 1);
    assert!(!raw[0].to_lowercase().contains("secretpassw0rd"), "{raw:?}");
    let events = db.stores.events.recent(10).await.unwrap();
    assert_eq!(
        events[0].kind,
        EventKind::RequestIgnored {
            reason: IgnoreReason::UnknownIdentifier,
            fingerprint: fingerprint(&key(), typed),
        }
    );
    db.drop().await;
}
