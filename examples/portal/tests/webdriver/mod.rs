//! WebDriver over plain HTTP + JSON (chromedriver driving Debian's headless
//! Chromium), shared by the portal's browser tests (`browser.rs`,
//! `admin_browser.rs`).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver, killed when dropped.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session.
pub struct Session {
    pub http: reqwest::Client,
    pub base: String,
    pub shots: PathBuf,
    pub step: usize,
}

impl Session {
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
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

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found[ELEMENT_KEY].as_str().expect("element id").to_owned()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub async fn attribute(&self, css: &str, name: &str) -> String {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::GET,
            &format!("/element/{id}/attribute/{name}"),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits until the address bar shows `path` (after a click's navigation).
    pub async fn wait_for_path(&self, path: &str) -> String {
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

    pub async fn screenshot(&mut self, name: &str) {
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

pub fn json_body(req: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
    req.header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
}

pub async fn read_json(resp: reqwest::Response) -> Option<Value> {
    let bytes = resp.bytes().await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `<target>/<name>`, from this test binary's location
/// (`<target>/debug/deps/browser-*`), unless `RESETKIT_SCREENSHOT_DIR` is set.
pub fn screenshot_dir(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("RESETKIT_SCREENSHOT_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .map(|target| target.join(name))
        .unwrap_or_else(|| PathBuf::from("target").join(name))
}

/// Whether the browser can run; prints a loud SKIP (or fails when required).
pub fn browser_available() -> bool {
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

pub async fn start_driver() -> Driver {
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

impl Session {
    /// Empties a text field.
    pub async fn clear(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
    }

    /// Waits until the page source contains `text`, reloading `url` (when
    /// given) between looks; returns the source.
    pub async fn wait_for_text(&self, url: Option<&str>, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(url) = url {
                self.goto(url).await;
            }
            let source = self.source().await;
            if source.contains(text) {
                return source;
            }
            assert!(
                Instant::now() < deadline,
                "`{text}` did not appear; page:\n{source}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Ends the session.
    pub async fn close(&self) {
        let _ = self.http.delete(self.base.clone()).send().await;
    }
}

/// A Chromium session through `driver` with a window of `width`×`height`.
pub async fn open_session(
    driver: &Driver,
    profile: &Path,
    shots: PathBuf,
    width: u32,
    height: u32,
) -> Session {
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
        format!("--window-size={width},{height}"),
        format!("--user-data-dir={}", profile.display()),
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
    Session {
        http,
        base: format!("{}/session/{id}", driver.url),
        shots,
        step: 0,
    }
}
