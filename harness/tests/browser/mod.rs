//! Headless Chromium over WebDriver (chromedriver, plain HTTP + JSON), as
//! the portal's browser test drives it, for the harness's pages: the HTML
//! report and the mail inbox. Screenshots go to `<target>/screenshots/`
//! (or `$RESETKIT_SCREENSHOT_DIR`).
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` a test prints a
//! loud SKIP and passes, unless `RESETKIT_REQUIRE_BROWSER=1`.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `<target>/screenshots`, from the test binary's location, unless
/// `RESETKIT_SCREENSHOT_DIR` is set.
pub fn screenshot_dir() -> PathBuf {
    let dir = match std::env::var_os("RESETKIT_SCREENSHOT_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.ancestors().nth(3).map(|t| t.join("screenshots")))
            .unwrap_or_else(|| PathBuf::from("target/screenshots")),
    };
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Whether the browser can run; prints a loud SKIP (or fails when required).
pub fn available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "browser test: {} not found; install with scripts/install-chromium.sh",
        missing.join(" and ")
    );
    if std::env::var("RESETKIT_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!("{message} (RESETKIT_REQUIRE_BROWSER=1, so this is a failure)");
    }
    eprintln!("\n*** SKIPPED *** {message}\n");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// chromedriver with one session; both end when dropped.
pub struct Browser {
    child: Child,
    http: reqwest::Client,
    base: String,
    driver: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn read_json(resp: reqwest::Response) -> Option<Value> {
    let bytes = resp.bytes().await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of `width` × `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(resp) = http.get(format!("{driver}/status")).send().await
                && let Some(status) = read_json(resp).await
                && status["value"]["ready"].as_bool() == Some(true)
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
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
            "--allow-file-access-from-files".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        }}});
        let resp = http
            .post(format!("{driver}/session"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(capabilities.to_string())
            .send()
            .await
            .expect("new WebDriver session");
        let created = read_json(resp).await.expect("session JSON");
        let id = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_owned();
        Browser {
            child,
            http,
            base: format!("{driver}/session/{id}"),
            driver,
            _profile: profile,
        }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
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

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs a script in the page (WebDriver's own, not subject to the
    /// page's CSP) and returns its value.
    pub async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
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

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
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

    /// Switches into the iframe matched by `css` (`None`: back to the top).
    pub async fn frame(&self, css: Option<&str>) {
        let id = match css {
            Some(css) => {
                let element = self.find(css).await;
                json!({ "id": { ELEMENT_KEY: element } })
            }
            None => json!({ "id": null }),
        };
        self.call(reqwest::Method::POST, "/frame", Some(id)).await;
    }

    /// Saves a screenshot of the window as `<dir>/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 screenshot"))
            .expect("valid base64");
        assert!(bytes.len() > 1000, "a real screenshot");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, bytes).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }
}
