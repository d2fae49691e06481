//! The README recipe "Add reset to your own app", walked on PostgreSQL from
//! the crate's own code: an `accounts` table of the app's (uuid ids, a
//! `login` column, two accounts sharing an address, a `locked` account,
//! Django PBKDF2 hashes), the stores, migrations, outbox and worker, SMTP
//! (the fake server), the pages, and sign-in with check-then-rehash while
//! a reset link is pending. Needs `DATABASE_URL` (skips loudly; fails with
//! `RESETKIT_REQUIRE_DB=1`). Also checks the README quotes this code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use resetkit_fake_smtp::FakeSmtpServer;
use resetkit_own_app::{Settings, reset_service, serve};

/// Django's `pbkdf2_sha256` of "legacy password 1" (1000 iterations, for speed).
const DJANGO: &str = "pbkdf2_sha256$1000$c2FsdHNhbHQ$bT86YLGvDWl732f3wJjiqRNnY/5Czo0VlS7c5JZrgEI=";
const OLD: &str = "legacy password 1";

fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("RESETKIT_REQUIRE_DB").is_ok_and(|v| v == "1") => {
            panic!("DATABASE_URL is not set but RESETKIT_REQUIRE_DB=1 requires a database")
        }
        _ => {
            eprintln!("\n!!!!! SKIPPED the own-app recipe test: DATABASE_URL is not set !!!!!\n");
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
}

fn hidden(body: &str, name: &str) -> String {
    let at = body
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no {name} in {body}"));
    let rest = &body[at..];
    let value = rest.split("value=\"").nth(1).unwrap();
    value[..value.find('"').unwrap()].to_owned()
}

/// The reset link in the newest mail to `to` (quoted-printable undone).
fn link_to(server: &FakeSmtpServer, to: &str, base: &str) -> String {
    let mail = server
        .messages()
        .into_iter()
        .rev()
        .find(|m| m.has_recipient(to))
        .expect("a mail");
    let text = mail.data_text().replace("=\r\n", "").replace("=3D", "=");
    let start = text.find(&format!("{base}/reset?token=")).expect("a reset link");
    text[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn the_readme_quotes_the_recipe_as_it_is_built() {
    let readme = include_str!("../../../README.md");
    let source = include_str!("../src/lib.rs");
    let section = readme
        .split("## Add reset to your own app")
        .nth(1)
        .expect("the README has the recipe section");
    for part in ["service", "serve", "sign-in"] {
        let start = format!("// --- recipe: {part} ---\n");
        let code = source
            .split(&start)
            .nth(1)
            .and_then(|rest| rest.split("// --- end ---").next())
            .unwrap_or_else(|| panic!("no `{part}` part in src/lib.rs"));
        assert!(
            section.contains(code.trim()),
            "README's recipe must show the `{part}` part of examples/own-app/src/lib.rs as it is:\n{code}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recipe_resets_and_upgrades_on_the_apps_own_table() {
    let Some(url) = database_url() else { return };
    // A database of its own: the app's table is `public.accounts`.
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let name = format!("recipe_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let mut app_url = url::Url::parse(&url).unwrap();
    app_url.set_path(&format!("/{name}"));
    let pool = sqlx::PgPool::connect(app_url.as_str()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE accounts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), login text UNIQUE NOT NULL, \
         email text, password text, locked boolean NOT NULL DEFAULT false);
         INSERT INTO accounts (login, email, password, locked) VALUES
           ('ann', 'family@example.test', '{DJANGO}', false),
           ('ben', 'family@example.test', '{DJANGO}', false),
           ('cal', 'cal@example.test', '{DJANGO}', true);"
    )))
    .execute(&pool)
    .await
    .unwrap();

    let smtp = FakeSmtpServer::start().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let settings = Settings {
        base_url: base.clone(),
        smtp_url: format!("smtp://{}?tls=none", smtp.addr()),
        from: "noreply@app.example".into(),
        resetkit_schema: "resetkit".into(),
    };
    let service = reset_service(pool.clone(), &settings).await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn({
        let pool = pool.clone();
        async move { serve(service, pool, &settings, listener, stopped).await }
    });
    let client = Client {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        base: base.clone(),
        jar: Mutex::new(BTreeMap::new()),
    };

    // "Forgot password" for the shared address: one link per account,
    // delivered by the worker through the outbox.
    let form = client.send("/forgot", None).await;
    let csrf = hidden(&form.body, "csrf_token");
    let sent = client
        .send(
            "/forgot",
            Some(&[("csrf_token", &csrf), ("identifier", "family@example.test")]),
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while smtp
        .messages()
        .iter()
        .filter(|m| m.has_recipient("family@example.test"))
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "two reset emails through the outbox worker"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let link = link_to(&smtp, "family@example.test", &base);
    let ann_mail = smtp
        .messages()
        .into_iter()
        .filter(|m| m.has_recipient("family@example.test"))
        .find(|m| {
            m.data_text()
                .replace("=\r\n", "")
                .replace("=3D", "=")
                .contains(&link)
        })
        .unwrap();
    let owner = if ann_mail.data_text().contains("ann") {
        "ann"
    } else {
        "ben"
    };

    // Meanwhile the owner remembers the old password and signs in: the
    // Django hash is upgraded, and the pending link keeps working.
    let signed = client
        .send("/login", Some(&[("login", owner), ("password", OLD)]))
        .await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    let stored: String = sqlx::query_scalar("SELECT password FROM accounts WHERE login = $1")
        .bind(owner)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$"), "upgraded: {stored}");

    let path = link.strip_prefix(&base).unwrap();
    let opened = client.send(path, None).await;
    assert_eq!(opened.location.as_deref(), Some("/reset/new"), "{}", opened.body);
    let page = client.send("/reset/new", None).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "the link survived the re-hash: {}",
        page.body
    );
    let csrf = hidden(&page.body, "csrf_token");
    let new = "a new passphrase for the recipe";
    let done = client
        .send(
            "/reset/new",
            Some(&[("csrf_token", &csrf), ("password", new), ("confirm", new)]),
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let signed = client
        .send("/login", Some(&[("login", owner), ("password", new)]))
        .await;
    assert_eq!(signed.status, StatusCode::OK, "the new password works");
    let old = client
        .send("/login", Some(&[("login", owner), ("password", OLD)]))
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "the old one does not");
    // The locked account gets no mail, and resetkit made no accounts table of its own.
    let before = smtp.messages().len();
    client
        .send(
            "/forgot",
            Some(&[
                (
                    "csrf_token",
                    &hidden(&client.send("/forgot", None).await.body, "csrf_token"),
                ),
                ("identifier", "cal"),
            ]),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.messages().len(), before, "no mail for the locked account");
    let own: Option<String> = sqlx::query_scalar("SELECT to_regclass('resetkit.accounts')::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(own, None);

    let _ = stop.send(true);
    let _ = server.await;
    pool.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
}
