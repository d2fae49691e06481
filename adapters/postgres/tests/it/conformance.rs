//! The store conformance suite (`resetkit::conformance`), run against the
//! PostgreSQL stores: `conformance_tests!` generates the same named tests
//! as for the in-memory stores, each on a fresh schema.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;

use common::{TestDb, db, db_with};
use resetkit::account::Account;
use resetkit::conformance::{self, Backend};
use resetkit_postgres::{
    IdType, PgAccounts, PgEventLog, PgInbox, PgOutbox, PgTemplateStore, PgTokenStore, UsersTable,
};

/// A fresh schema per test (`None` without `DATABASE_URL`, loudly).
struct Postgres(TestDb);

#[resetkit::async_trait]
impl Backend for Postgres {
    type Tokens = PgTokenStore;
    type Events = PgEventLog;
    type Outbox = PgOutbox;
    type Inbox = PgInbox;
    type Accounts = PgAccounts;
    type Templates = PgTemplateStore;

    async fn open(test: &'static str, concurrency: usize) -> Option<Self> {
        let connections = u32::try_from(concurrency).unwrap_or(u32::MAX).max(10);
        db_with(test, connections).await.map(Postgres)
    }

    fn tokens(&self) -> Arc<PgTokenStore> {
        self.0.stores.tokens.clone()
    }

    fn events(&self) -> Arc<PgEventLog> {
        self.0.stores.events.clone()
    }

    fn outbox(&self) -> Arc<PgOutbox> {
        self.0.stores.outbox.clone()
    }

    fn inbox(&self) -> Arc<PgInbox> {
        self.0.stores.inbox.clone()
    }

    fn templates(&self) -> Arc<PgTemplateStore> {
        self.0.stores.templates.clone()
    }

    async fn accounts(&self, accounts: Vec<Account>) -> Arc<PgAccounts> {
        let dir = self.0.stores.own_accounts().unwrap();
        for account in accounts {
            dir.upsert(&account).await.unwrap();
        }
        dir
    }

    async fn close(self) {
        self.0.drop().await;
    }
}

resetkit::conformance_tests!(Postgres);

// PostgreSQL's own: template changes (the in-memory template store has no
// change counter) and a host table mapped with the documented indexes.

#[tokio::test]
async fn template_changes_conform() {
    let Some(db) = db("template_changes_conform").await else {
        return;
    };
    conformance::template_changes_suite(db.stores.templates.as_ref()).await;
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
