//! A real browser clicks through the existing app with reset added:
//! Debian's headless Chromium over WebDriver (chromedriver, plain HTTP +
//! JSON): a bcrypt user signs in; another uses "Forgot your password?" →
//! the emailed link (read from the fake SMTP server) → new password → sign
//! in, with a phone-sized window and a screenshot of every step under
//! `<target>/existing-app-screenshots/` (or `$RESETKIT_SCREENSHOT_DIR`).
//! Needs `DATABASE_URL` as well (skips loudly; fails with
//! `RESETKIT_REQUIRE_DB=1`).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (`apt-get install -y chromium chromium-driver`). Without them the test
//! prints a loud SKIP and passes, unless `RESETKIT_REQUIRE_BROWSER=1`, which
//! makes a missing browser a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const NEW_PASSWORD: &str = "lantern orchard velvet 2031";

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session.
struct Session {
    http: reqwest::Client,
    base: String,
    shots: PathBuf,
    step: usize,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            req = json_body(req, &body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let value = read_json(resp).await.expect("WebDriver answers JSON");
        if let Some(error) = value["value"]["error"].as_str() {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                value["value"]["message"]
            );
        }
        value["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found[ELEMENT_KEY].as_str().expect("element id").to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Waits until the address bar shows `path` (after a click's navigation).
    async fn wait_for_path(&self, path: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.current_url().await;
            if url::Url::parse(&url).is_ok_and(|u| u.path() == path) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "expected to reach {path}, still at {url}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn screenshot(&mut self, name: &str) {
        self.step += 1;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 screenshot"))
            .expect("valid base64");
        let path = self.shots.join(format!("{:02}-{name}.png", self.step));
        std::fs::write(&path, bytes).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
    }
}

fn json_body(req: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
    req.header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
}

async fn read_json(resp: reqwest::Response) -> Option<Value> {
    let bytes = resp.bytes().await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `<target>/existing-app-screenshots`, from this test binary's location
/// (`<target>/debug/deps/browser-*`), unless `RESETKIT_SCREENSHOT_DIR` is set.
fn screenshot_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RESETKIT_SCREENSHOT_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("existing-app-screenshots"))
        .unwrap_or_else(|| PathBuf::from("target/existing-app-screenshots"))
}

/// Whether the browser can run; prints a loud SKIP (or fails when required).
fn browser_available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "browser test: {} not found; install with `apt-get install -y chromium chromium-driver`",
        missing.join(" and ")
    );
    if std::env::var("RESETKIT_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!("{message} (RESETKIT_REQUIRE_BROWSER=1, so this is a failure)");
    }
    eprintln!("\n*** SKIPPED *** {message}\n");
    false
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(resp) = http.get(format!("{}/status", driver.url)).send().await
            && let Some(status) = read_json(resp).await
            && status["value"]["ready"].as_bool() == Some(true)
        {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("RESETKIT_REQUIRE_DB").is_ok_and(|v| v == "1") => {
            panic!("DATABASE_URL is not set but RESETKIT_REQUIRE_DB=1 requires a database")
        }
        _ => {
            eprintln!("\n*** SKIPPED *** existing-app browser test: DATABASE_URL is not set\n");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_clicks_through_sign_in_forgot_link_new_password() {
    if !browser_available() {
        return;
    }
    let Some(database_url) = database_url() else {
        return;
    };
    let smtp = resetkit_harness::fake_smtp::FakeSmtpServer::builder()
        .start()
        .expect("fake SMTP server");
    let suffix = format!("{}_{}", std::process::id(), free_port());
    let settings = existing_app::Settings {
        listen: "127.0.0.1:0".parse().expect("address"),
        base_url: String::new(),
        database_url: database_url.clone(),
        app_schema: format!("ea_browser_app_{suffix}"),
        resetkit_schema: format!("ea_browser_rk_{suffix}"),
        smtp_url: format!("smtp://{}?tls=none", smtp.addr()),
        fast_hash: true,
        rate_limits: None,
        fresh_reset_state: false,
    };
    let app = existing_app::start(settings.clone()).await.expect("app starts");
    let site = format!("http://{}", app.addr);
    let profile = tempfile::tempdir().expect("profile dir");
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).expect("screenshot dir");

    let driver = start_driver().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let args = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--window-size=412,915".to_owned(),
        format!("--user-data-dir={}", profile.path().display()),
    ];
    let capabilities = json!({ "capabilities": { "alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
    }}});
    let resp = json_body(http.post(format!("{}/session", driver.url)), &capabilities)
        .send()
        .await
        .expect("new WebDriver session");
    let created = read_json(resp).await.expect("session JSON");
    let id = created["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
        .to_owned();
    let mut b = Session {
        http: http.clone(),
        base: format!("{}/session/{id}", driver.url),
        shots,
        step: 0,
    };

    // alice's password is still a bcrypt hash from the old framework.
    b.goto(&format!("{site}/login")).await;
    b.type_into("#identifier", "alice").await;
    b.type_into("#password", "alice-demo-password-1").await;
    b.screenshot("sign-in-bcrypt-user").await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/account").await;
    assert!(b.source().await.contains("Signed in as alice"));
    b.screenshot("signed-in-alice").await;

    // bob forgot his: the app's sign-in page links to the mounted pages.
    b.goto(&format!("{site}/login")).await;
    b.click("a[href=\"/forgot\"]").await;
    b.wait_for_path("/forgot").await;
    b.type_into("#identifier", "bob").await;
    b.screenshot("forgot").await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/forgot/sent").await;
    assert!(b.source().await.contains("Check your email"));
    b.screenshot("check-your-email").await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let link = loop {
        let found = smtp.messages().iter().find_map(|m| {
            let mail = resetkit_harness::inspect::ParsedMail::parse(&m.data).ok()?;
            resetkit_harness::inspect::text_links(mail.text.as_deref()?)
                .into_iter()
                .find(|l| l.contains("/reset?token="))
        });
        if let Some(link) = found {
            break link;
        }
        assert!(Instant::now() < deadline, "no reset mail for bob");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(link.starts_with(&format!("{site}/reset?token=")), "{link}");
    b.goto(&link).await;
    let landed = b.wait_for_path("/reset/new").await;
    assert!(
        !landed.contains("token"),
        "the token left the address bar: {landed}"
    );
    assert!(b.source().await.contains(">bob<"));
    b.screenshot("choose-new-password").await;
    b.type_into("#password", NEW_PASSWORD).await;
    b.type_into("#confirm", NEW_PASSWORD).await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/reset/done").await;
    assert!(b.source().await.contains("Your password has been changed"));
    b.screenshot("password-changed").await;

    b.goto(&format!("{site}/login")).await;
    b.type_into("#identifier", "bob").await;
    b.type_into("#password", NEW_PASSWORD).await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/account").await;
    assert!(b.source().await.contains("Signed in as bob"));
    b.screenshot("signed-in-bob").await;

    let _ = http.delete(b.base.clone()).send().await;
    drop(driver);
    drop(app);
    if let Ok(pool) = sqlx::PgPool::connect(&database_url).await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE; DROP SCHEMA {} CASCADE",
            settings.app_schema, settings.resetkit_schema
        )))
        .execute(&pool)
        .await;
    }
}
