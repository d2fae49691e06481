//! The harness's store conformance suite, run against the PostgreSQL stores.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{db, db_with};
use resetkit::store::TokenStore;
use resetkit_harness::conformance;
use resetkit_postgres::{IdType, UsersTable};

#[tokio::test]
async fn token_store_conforms() {
    let Some(db) = db("token_store_conforms").await else {
        return;
    };
    conformance::token_store_suite(db.stores.tokens.as_ref()).await;
    db.drop().await;
}

#[tokio::test]
async fn token_store_restamp_and_rate_admin_conform() {
    let Some(db) = db("token_store_restamp_and_rate_admin_conform").await else {
        return;
    };
    conformance::restamp_and_rate_admin_suite(db.stores.tokens.as_ref()).await;
    db.drop().await;
}

#[tokio::test]
async fn token_store_concurrent_consume_conforms() {
    let Some(db) = db_with("token_store_concurrent_consume_conforms", 20).await else {
        return;
    };
    let store: Arc<dyn TokenStore> = db.stores.tokens.clone();
    conformance::token_store_concurrent_consume(store, 20).await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_leave_one_live_link() {
    let Some(db) = db_with("concurrent_requests_leave_one_live_link", 20).await else {
        return;
    };
    let store: Arc<dyn TokenStore> = db.stores.tokens.clone();
    conformance::token_store_concurrent_issue(store, 50, 20).await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_is_never_revived() {
    let Some(db) = db_with("revoked_token_is_never_revived", 4).await else {
        return;
    };
    let store: Arc<dyn TokenStore> = db.stores.tokens.clone();
    conformance::token_store_concurrent_revoke_release(store, 50).await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_never_hides_a_revocation() {
    let Some(db) = db_with("finish_never_hides_a_revocation", 4).await else {
        return;
    };
    let store: Arc<dyn TokenStore> = db.stores.tokens.clone();
    conformance::token_store_concurrent_finish_revoke(store, 50).await;
    db.drop().await;
}

#[tokio::test]
async fn event_log_conforms() {
    let Some(db) = db("event_log_conforms").await else {
        return;
    };
    conformance::event_log_suite(db.stores.events.as_ref()).await;
    db.drop().await;
}

#[tokio::test]
async fn outbox_conforms() {
    let Some(db) = db("outbox_conforms").await else {
        return;
    };
    conformance::outbox_suite(db.stores.outbox.as_ref()).await;
    db.drop().await;
}

#[tokio::test]
async fn event_log_pages_newest_first() {
    let Some(db) = db("event_log_pages_newest_first").await else {
        return;
    };
    conformance::event_log_paging_suite(db.stores.events.as_ref()).await;
    db.drop().await;
}

#[tokio::test]
async fn event_log_counts_activity() {
    let Some(db) = db("event_log_counts_activity").await else {
        return;
    };
    conformance::activity_log_suite(db.stores.events.as_ref()).await;
    db.drop().await;
}

#[tokio::test]
async fn outbox_tells_its_oldest_waiting() {
    let Some(db) = db("outbox_tells_its_oldest_waiting").await else {
        return;
    };
    conformance::queue_age_suite(db.stores.outbox.as_ref()).await;
    db.drop().await;
}

#[tokio::test]
async fn outbox_lists_by_state() {
    let Some(db) = db("outbox_lists_by_state").await else {
        return;
    };
    conformance::outbox_listing_suite(db.stores.outbox.as_ref()).await;
    db.drop().await;
}

#[tokio::test]
async fn template_store_conforms() {
    let Some(db) = db("template_store_conforms").await else {
        return;
    };
    conformance::template_store_suite(db.stores.templates.as_ref()).await;
    db.drop().await;
}

#[tokio::test]
async fn template_changes_conform() {
    let Some(db) = db("template_changes_conform").await else {
        return;
    };
    conformance::template_changes_suite(db.stores.templates.as_ref()).await;
    db.drop().await;
}

#[tokio::test]
async fn account_directory_conforms() {
    let Some(db) = db("account_directory_conforms").await else {
        return;
    };
    let accounts = db.stores.own_accounts().unwrap();
    for account in conformance::fixture_accounts() {
        accounts.upsert(&account).await.unwrap();
    }
    conformance::account_directory_suite(accounts.as_ref()).await;
    db.drop().await;
}

#[tokio::test]
async fn item2_own_accounts_table_matches_the_unicode_vectors() {
    let Some(db) = db("item2_own_accounts_table_matches_the_unicode_vectors").await else {
        return;
    };
    let accounts = db.stores.own_accounts().unwrap();
    for account in conformance::matching_accounts() {
        accounts.upsert(&account).await.unwrap();
    }
    conformance::unicode_matching_suite(accounts.as_ref()).await;
    db.drop().await;
}

#[tokio::test]
async fn item2_mapped_host_table_matches_the_unicode_vectors() {
    let Some(db) = db("item2_mapped_host_table_matches_the_unicode_vectors").await else {
        return;
    };
    let s = db.schema.quoted();
    // The host's table with the expression indexes the adapter documents.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {s}.members (member_id text PRIMARY KEY, handle text NOT NULL, mail text, secret text); \
         CREATE INDEX members_mail_canonical ON {s}.members ({s}.canonical_identifier(mail)); \
         CREATE INDEX members_handle_canonical ON {s}.members ({s}.canonical_identifier(handle));"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    let table = UsersTable::new("members")
        .schema(db.schema.as_str())
        .id_column("member_id", IdType::Text)
        .username_column("handle")
        .email_column("mail")
        .password_hash_column("secret");
    let accounts = db.stores.accounts_for(table).unwrap();
    for account in conformance::matching_accounts() {
        accounts.upsert(&account).await.unwrap();
    }
    conformance::unicode_matching_suite(accounts.as_ref()).await;
    // The documented index is usable for the lookup.
    let mut conn = db.pool.acquire().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET enable_seqscan = off; ANALYZE {s}.members"
    )))
    .execute(&mut *conn)
    .await
    .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN SELECT member_id FROM {s}.members WHERE {s}.canonical_identifier(mail) = 'frank@example.test'"
    )))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    assert!(
        plan.iter().any(|l| l.contains("members_mail_canonical")),
        "{plan:#?}"
    );
    db.drop().await;
}

#[tokio::test]
async fn inbox_conforms() {
    let Some(db) = db("inbox_conforms").await else {
        return;
    };
    conformance::request_inbox_suite(db.stores.inbox.as_ref()).await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_hands_each_request_to_one_worker() {
    let Some(db) = db_with("inbox_hands_each_request_to_one_worker", 8).await else {
        return;
    };
    let inbox: Arc<dyn resetkit::store::RequestInbox> = db.stores.inbox.clone();
    conformance::request_inbox_concurrent_claim(inbox, 200, 8).await;
    db.drop().await;
}

#[tokio::test]
async fn stores_purge_per_retention() {
    let Some(db) = db("stores_purge_per_retention").await else {
        return;
    };
    conformance::retention_suite(
        db.stores.tokens.as_ref(),
        db.stores.events.as_ref(),
        db.stores.outbox.as_ref(),
    )
    .await;
    db.drop().await;
}
