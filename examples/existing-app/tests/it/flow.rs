//! The existing app end to end on PostgreSQL: a bcrypt user signs in and is
//! upgraded to argon2id, a user resets through the mounted pages, and
//! resetkit created no `accounts` table of its own. Needs `DATABASE_URL`
//! (skips loudly; fails with `RESETKIT_REQUIRE_DB=1`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use existing_app::{Settings, start};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use resetkit_harness::fake_smtp::FakeSmtpServer;
use resetkit_harness::inspect::{ParsedMail, text_links};

fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("RESETKIT_REQUIRE_DB").is_ok_and(|v| v == "1") => {
            panic!("DATABASE_URL is not set but RESETKIT_REQUIRE_DB=1 requires a database")
        }
        _ => {
            eprintln!("\n!!!!! SKIPPED existing-app tests: DATABASE_URL is not set !!!!!\n");
            None
        }
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    jar: Mutex<BTreeMap<String, String>>,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Client {
    async fn send(&self, path: &str, form: Option<&[(&str, &str)]>) -> Answer {
        let url = format!("{}{path}", self.base);
        let mut request = match form {
            Some(fields) => self
                .http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(
                    url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(fields)
                        .finish(),
                ),
            None => self.http.get(url),
        };
        let cookies: Vec<String> = self
            .jar
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !cookies.is_empty() {
            request = request.header(COOKIE, cookies.join("; "));
        }
        let response = request.send().await.unwrap();
        for set in response.headers().get_all(SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.jar.lock().unwrap().insert(k.to_owned(), v.to_owned());
        }
        Answer {
            status: response.status(),
            location: response
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            body: response.text().await.unwrap(),
        }
    }

    async fn form(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> Answer {
        let html = self.send(page, None).await.body;
        let marker = "name=\"csrf_token\" value=\"";
        let start = html.find(marker).expect("a CSRF field") + marker.len();
        let csrf = &html[start..start + html[start..].find('"').unwrap()];
        let mut all = fields.to_vec();
        all.push(("csrf_token", csrf));
        self.send(action, Some(&all)).await
    }
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{:x}_{}", nanos & 0xffff_ffff_ffff, std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bcrypt_users_sign_in_and_are_upgraded_and_reset_works_on_the_host_table() {
    let Some(database_url) = database_url() else {
        return;
    };
    let smtp = FakeSmtpServer::builder().start().unwrap();
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        base_url: String::new(),
        database_url: database_url.clone(),
        app_schema: unique("ea_app"),
        resetkit_schema: unique("ea_rk"),
        smtp_url: format!("smtp://{}?tls=none", smtp.addr()),
        fast_hash: true,
        rate_limits: None,
        fresh_reset_state: false,
    };
    let app = start(settings.clone()).await.unwrap();
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let hash_of = |user: &'static str| {
        let pool = pool.clone();
        let sql = format!(
            "SELECT password_hash FROM {}.users WHERE username = $1",
            settings.app_schema
        );
        async move {
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
                .bind(user)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let client = Client {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: format!("http://{}", app.addr),
        jar: Mutex::new(BTreeMap::new()),
    };

    // alice still has her bcrypt hash: she signs in, and it becomes argon2id.
    assert!(hash_of("alice").await.starts_with("$2b$"));
    let signed_in = client
        .form(
            "/login",
            "/login",
            &[("identifier", "alice"), ("password", "alice-demo-password-1")],
        )
        .await;
    assert_eq!(
        signed_in.location.as_deref(),
        Some("/account"),
        "{}",
        signed_in.body
    );
    assert!(hash_of("alice").await.starts_with("$argon2id$"));
    let again = Client {
        http: client.http.clone(),
        base: client.base.clone(),
        jar: Mutex::new(BTreeMap::new()),
    };
    let wrong = again
        .form(
            "/login",
            "/login",
            &[("identifier", "alice"), ("password", "not her password")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::OK);
    assert!(wrong.body.contains("Wrong username or password"));

    // bob (bcrypt) forgets his password and resets it through the pages.
    let sent = again
        .form("/forgot", "/forgot", &[("identifier", "bob@example.test")])
        .await;
    assert_eq!(sent.location.as_deref(), Some("/forgot/sent"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let link = loop {
        let found = smtp.messages().iter().find_map(|m| {
            let mail = ParsedMail::parse(&m.data).ok()?;
            text_links(mail.text.as_deref()?)
                .into_iter()
                .find(|l| l.contains("/reset?token="))
        });
        if let Some(link) = found {
            break link;
        }
        assert!(Instant::now() < deadline, "no reset mail for bob");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let path = link.trim_start_matches(&client.base).to_owned();
    assert_eq!(
        again.send(&path, None).await.location.as_deref(),
        Some("/reset/new")
    );
    let pw = "tangerine lighthouse orbit 42";
    let done = again
        .form("/reset/new", "/reset/new", &[("password", pw), ("confirm", pw)])
        .await;
    assert_eq!(done.location.as_deref(), Some("/reset/done"));
    assert!(hash_of("bob").await.starts_with("$argon2id$"));
    let bob = again
        .form("/login", "/login", &[("identifier", "bob"), ("password", pw)])
        .await;
    assert_eq!(bob.location.as_deref(), Some("/account"));

    // resetkit's tables exist, its own accounts table does not.
    let accounts: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(format!("{}.accounts", settings.resetkit_schema))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(accounts, None);
    drop(app);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA {} CASCADE; DROP SCHEMA {} CASCADE",
        settings.app_schema, settings.resetkit_schema
    )))
    .execute(&pool)
    .await
    .unwrap();
}
