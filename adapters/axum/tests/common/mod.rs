//! Test helpers: an app with the reset pages on in-memory stores, served by
//! `resetkit_axum::serve` on a free port, and a small cookie-keeping client
//! that never follows redirects.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use resetkit::prelude::*;
use resetkit_axum::{ResetPages, ResetPagesBuilder, ServeOptions};
use secrecy::ExposeSecret;
use tokio::sync::oneshot;

pub struct App {
    pub addr: SocketAddr,
    pub pages: ResetPages,
    pub mailer: CapturingMailer,
    pub accounts: Arc<InMemoryAccounts>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The reset link's path+query of the newest mail to `to`.
    pub fn reset_path(&self, to: &str) -> String {
        self.link_path(to, "/reset?token=")
    }

    /// The deny link's path+query of the newest mail to `to`.
    pub fn deny_path(&self, to: &str) -> String {
        self.link_path(to, "/reset/deny?token=")
    }

    pub fn link_path_under(&self, to: &str, marker: &str) -> String {
        self.link_path(to, marker)
    }

    fn link_path(&self, to: &str, marker: &str) -> String {
        let mail = self.mailer.sent_to(to).pop().expect("a mail was sent");
        let text = mail.expose_text().to_owned();
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("http") && l.contains(marker))
            .unwrap_or_else(|| panic!("no {marker} link in:\n{text}"));
        let url = url::Url::parse(line).unwrap();
        format!("{}?{}", url.path(), url.query().unwrap_or_default())
    }
}

pub const ALICE_PASSWORD: &str = "alice-original-password-1";

/// An app with alice, bob and mallory, changed by `edit`.
pub async fn start_with(
    edit: impl FnOnce(ResetPagesBuilder) -> ResetPagesBuilder,
    options: ServeOptions,
) -> App {
    start_full("", edit, options).await
}

/// The same with the pages mounted under `mount` (merged: the router serves under its mount path).
pub async fn start_nested(mount: &str, options: ServeOptions) -> App {
    start_full(mount, |b| b, options).await
}

async fn start_full(
    mount: &str,
    edit: impl FnOnce(ResetPagesBuilder) -> ResetPagesBuilder,
    options: ServeOptions,
) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hasher = Arc::new(Argon2Hasher::fast_insecure_for_tests());
    let accounts = Arc::new(InMemoryAccounts::default());
    for (id, email) in [
        ("alice", "alice@example.test"),
        ("bob", "bob@example.test"),
        ("mallory", "mallory@example.test"),
    ] {
        let hash = hasher.hash(&secrecy::SecretString::from(ALICE_PASSWORD)).unwrap();
        accounts.insert(Account::new(id, id, email).with_password_hash(hash));
    }
    let mailer = CapturingMailer::default();
    let builder = resetkit_axum::link_paths(ResetService::builder(), mount);
    let service = builder
        // The tests read the mail as soon as the forgot form answers.
        .request_processing(resetkit::flow::RequestProcessing::Immediate)
        .base_url(format!("http://{addr}"))
        .allow_insecure_http_for_local_testing()
        .site_name("Test site")
        .accounts(accounts.clone())
        .tokens(Arc::new(InMemoryTokenStore::default()))
        .events(Arc::new(InMemoryEventLog::default()))
        .mailer(Arc::new(mailer.clone()))
        .sender(Arc::new(FixedSender::new(
            Mailbox::new(Some("Test"), "noreply@example.test").unwrap(),
        )))
        .hasher(hasher)
        .rate_limits(RateLimits::unlimited())
        .build()
        .unwrap();
    let pages = edit(
        ResetPages::builder(service)
            .secure_cookies(false)
            .mount_path(mount),
    )
    .build()
    .unwrap();
    // The router serves its paths under the mount path: merged, not nested.
    let app = axum::Router::new().merge(pages.router());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(resetkit_axum::serve(listener, app, options, async move {
        let _ = stopped.await;
    }));
    App {
        addr,
        pages,
        mailer,
        accounts,
        stop: Some(stop),
    }
}

pub async fn start() -> App {
    start_with(|b| b, ServeOptions::default()).await
}

#[derive(Debug, Clone)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    pub fn csrf(&self) -> String {
        hidden_value(&self.body, "csrf_token").unwrap_or_else(|| panic!("no csrf_token in:\n{}", self.body))
    }

    #[track_caller]
    pub fn assert_redirect(&self, to: &str) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{self:?}");
        assert_eq!(self.location(), Some(to), "{self:?}");
    }
}

pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// A cookie-keeping client; redirects are not followed.
pub struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl Browser {
    pub fn new(app: &App) -> Self {
        Self::at(app.url(""))
    }

    /// A browser for the server at `base` (`http://ADDR`).
    pub fn at(base: String) -> Self {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            base,
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    /// Puts a cookie in the jar, as a sibling subdomain or a plain-http
    /// response could (cookie tossing).
    pub fn plant(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.to_owned());
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> Page {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        let jar = self
            .cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        if !jar.is_empty() {
            req = req.header(COOKIE, jar);
        }
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        if let Some((content_type, body)) = body {
            req = req.header(CONTENT_TYPE, content_type).body(body);
        }
        let resp = req.send().await.unwrap();
        let page = Page {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        };
        let mut cookies = self.cookies.lock().unwrap();
        for set in page.set_cookies() {
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            cookies.insert(name.to_owned(), value.to_owned());
        }
        page
    }

    pub async fn get(&self, path: &str) -> Page {
        self.request(Method::GET, path, &[], None).await
    }

    pub async fn head(&self, path: &str) -> Page {
        self.request(Method::HEAD, path, &[], None).await
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.request(
            Method::POST,
            path,
            &[],
            Some(("application/x-www-form-urlencoded", body)),
        )
        .await
    }

    pub async fn forgot(&self, identifier: &str) -> Page {
        let csrf = self.get("/forgot").await.csrf();
        self.post("/forgot", &[("identifier", identifier), ("csrf_token", &csrf)])
            .await
    }
}

/// Whether `password` is now the account's password.
pub async fn password_is(app: &App, account: &str, password: &str) -> bool {
    app.pages
        .service()
        .verify_password(&AccountId::from(account), &secrecy::SecretString::from(password))
        .await
        .unwrap()
}

pub fn expose(s: &secrecy::SecretString) -> &str {
    s.expose_secret()
}
