//! The portal on PostgreSQL: the whole flow with resetkit's tables in a
//! fresh schema, and the demo accounts upserted again at the next start.
//!
//! Needs `DATABASE_URL` (`scripts/test.sh` starts a throwaway cluster).
//! Without it the test prints a loud SKIP; with `RESETKIT_REQUIRE_DB=1` a
//! missing database is a failure.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Browser, reset_mail, start_with};
use secrecy::SecretString;

fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let message = "portal PostgreSQL test: DATABASE_URL is not set (run scripts/test.sh)";
            if std::env::var("RESETKIT_REQUIRE_DB").is_ok_and(|v| v == "1") {
                panic!("{message} (RESETKIT_REQUIRE_DB=1, so this is a failure)");
            }
            eprintln!("\n*** SKIPPED *** {message}\n");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_works_on_postgres_and_restarts_reseed() {
    let Some(url) = database_url() else {
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let schema = format!("portal_test_{}_{nanos}", std::process::id());
    let configure = |c: &mut resetkit_portal::PortalConfig| {
        c.database_url = Some(SecretString::from(url.clone()));
        c.db_schema = schema.clone();
    };

    let portal = start_with(configure).await;
    assert!(portal.banner().contains("store: postgres"), "{}", portal.banner());
    let user = Browser::new(&portal);
    user.sign_in("bob", "bob-demo-password-22")
        .await
        .assert_redirect("/account");
    user.forgot("bob@example.test")
        .await
        .assert_redirect("/forgot/sent");
    let mail = reset_mail(&portal, 0, "bob@example.test", "bob").await;
    user.get(&mail.path()).await.assert_redirect("/reset/new");
    let csrf = user.get("/reset/new").await.csrf();
    let pw = "postgres keeps this one safe";
    user.post(
        "/reset/new",
        &[("password", pw), ("confirm", pw), ("csrf_token", &csrf)],
    )
    .await
    .assert_redirect("/reset/done");
    user.sign_in("bob", pw).await.assert_redirect("/account");
    portal.shutdown().await;

    // A restart upserts the demo accounts: the demo password is back and the
    // old link stays dead.
    let portal = start_with(configure).await;
    let user = Browser::new(&portal);
    user.sign_in("bob", "bob-demo-password-22")
        .await
        .assert_redirect("/account");
    user.get(&mail.path()).await.assert_redirect("/reset/invalid");
    portal.shutdown().await;

    let pool = sqlx::PgPool::connect(&url)
        .await
        .expect("connect to drop the schema");
    // The schema name is ours: letters, digits and `_` only.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .execute(&pool)
        .await
        .expect("drop the test schema");
}

/// A TCP proxy in front of PostgreSQL that can be cut: open connections are
/// dropped and new ones closed at once, as when the database goes down.
struct Outage {
    addr: std::net::SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<tokio::task::JoinSet<()>>>,
}

impl Outage {
    async fn start(upstream: String) -> Outage {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let links = std::sync::Arc::new(std::sync::Mutex::new(tokio::task::JoinSet::new()));
        let (d, l) = (down.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                l.lock().unwrap().spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Outage { addr, down, links }
    }

    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        self.links.lock().unwrap().abort_all();
    }
}

/// With the database down, "forgot password" must not claim the mail is on
/// its way: the request was not recorded. Known and unknown addresses get
/// the same 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_forgot_answers_503_for_everyone() {
    let Some(url) = database_url() else {
        return;
    };
    let mut parsed = url::Url::parse(&url).expect("DATABASE_URL parses");
    let upstream = format!(
        "{}:{}",
        parsed.host_str().expect("DATABASE_URL has a host"),
        parsed.port().unwrap_or(5432)
    );
    let outage = Outage::start(upstream).await;
    parsed.set_port(Some(outage.addr.port())).unwrap();
    parsed.set_host(Some("127.0.0.1")).unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let schema = format!("portal_down_{}_{nanos}", std::process::id());
    let portal = start_with(|c| {
        c.database_url = Some(SecretString::from(parsed.to_string()));
        c.db_schema = schema.clone();
    })
    .await;
    let user = Browser::new(&portal);
    // Up: accepted.
    user.forgot("nobody@example.test")
        .await
        .assert_redirect("/forgot/sent");
    let csrf = user.csrf("/forgot").await;
    outage.cut();
    for identifier in ["bob@example.test", "nobody@example.test", "bob"] {
        let page = user
            .post("/forgot", &[("identifier", identifier), ("csrf_token", &csrf)])
            .await;
        assert_eq!(
            page.status,
            reqwest::StatusCode::SERVICE_UNAVAILABLE,
            "{identifier}: {page:?}"
        );
        assert!(
            page.body.contains("try again in a moment"),
            "{identifier}: {}",
            page.body
        );
        assert_eq!(page.header("retry-after"), Some("5"), "{identifier}");
        assert!(!page.body.contains("we have sent"), "{identifier}");
    }
    portal.shutdown().await;
    let pool = sqlx::PgPool::connect(&url)
        .await
        .expect("connect to drop the schema");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .execute(&pool)
        .await
        .expect("drop the test schema");
}

/// The operator console on the PostgreSQL stores: the timeline of a reset
/// read back from the events table, a template saved through the
/// PostgreSQL template store and used after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_console_works_on_postgres() {
    let Some(url) = database_url() else {
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let schema = format!("portal_admin_{}_{nanos}", std::process::id());
    let configure = |c: &mut resetkit_portal::PortalConfig| {
        c.database_url = Some(SecretString::from(url.clone()));
        c.db_schema = schema.clone();
    };
    let portal = start_with(configure).await;
    let user = Browser::new(&portal);
    user.forgot("bob@example.test")
        .await
        .assert_redirect("/forgot/sent");
    let mail = reset_mail(&portal, 0, "bob@example.test", "bob").await;
    user.get(&mail.path()).await.assert_redirect("/reset/new");
    let csrf = user.get("/reset/new").await.csrf();
    let pw = "the operator never sees this";
    user.post(
        "/reset/new",
        &[("password", pw), ("confirm", pw), ("csrf_token", &csrf)],
    )
    .await
    .assert_redirect("/reset/done");

    let operator = Browser::new(&portal);
    assert_eq!(
        operator.get("/admin").await.location(),
        Some("/login"),
        "signed out: to the sign-in page"
    );
    operator
        .sign_in("operator", "operator-demo-password-6")
        .await
        .assert_redirect("/account");
    let found = operator.get("/admin/?q=bob@example.test").await;
    assert!(found.body.contains("1 account for"), "{}", found.body);
    let timeline = operator.get("/admin/account?id=bob").await;
    for step in [
        "requested",
        "sender resolved",
        "SMTP 250",
        "delivered",
        "link opened",
        "password changed",
    ] {
        assert!(
            timeline.body.contains(&format!(">{step}<")),
            "no `{step}`:\n{}",
            timeline.body
        );
    }
    for secret in [mail.token.as_str(), mail.link.as_str(), pw] {
        assert!(!timeline.body.contains(secret), "the timeline shows a secret");
    }
    let bob_signed_in = Browser::new(&portal);
    bob_signed_in.sign_in("bob", pw).await.assert_redirect("/account");
    assert_eq!(
        bob_signed_in.get("/admin").await.status,
        reqwest::StatusCode::FORBIDDEN,
        "bob is no operator"
    );

    let edit = operator.get("/admin/templates/edit?locale=en&kind=reset").await;
    let text = "Hi \"{{ username }}\", your link from the PostgreSQL template store:\n\n{{ link }}\n\nNot you?\n{{ deny_link }}\n";
    let html = common::hidden_textarea(&edit.body, "html");
    operator
        .post(
            "/admin/templates/save",
            &[
                ("locale", "en"),
                ("kind", "reset"),
                ("subject", "Reset your {{ site_name }} password"),
                ("text", text),
                ("html", &html),
                ("csrf_token", &edit.csrf()),
            ],
        )
        .await
        .assert_redirect("/admin/templates/edit?locale=en&kind=reset&saved=1");
    portal.shutdown().await;

    // Another instance (a restart) loads the active template from the table.
    let portal = start_with(configure).await;
    let user = Browser::new(&portal);
    user.forgot("bob@example.test")
        .await
        .assert_redirect("/forgot/sent");
    let mail = reset_mail(&portal, 0, "bob@example.test", "bob").await;
    assert!(
        mail.text.contains("from the PostgreSQL template store"),
        "{}",
        mail.text
    );
    let operator = Browser::new(&portal);
    operator
        .sign_in("operator", "operator-demo-password-6")
        .await
        .assert_redirect("/account");
    let edit = operator.get("/admin/templates/edit?locale=en&kind=reset").await;
    assert!(edit.body.contains("in use"), "version 1 listed as in use");
    portal.shutdown().await;

    let pool = sqlx::PgPool::connect(&url)
        .await
        .expect("connect to drop the schema");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .execute(&pool)
        .await
        .expect("drop the test schema");
}
