//! Test helpers: start a portal in-process, a small HTTP "browser" that
//! keeps the session cookie itself (so tests can see every `Set-Cookie`)
//! and never follows redirects, and reading reset links from captured mail.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use resetkit_harness::inspect::{ParsedMail, text_links};
use resetkit_portal::{Portal, PortalConfig, RunningPortal};

/// A portal on a free port with capture mail, `/dev/mail`, fast hashing and
/// no rate limits, changed by `edit`.
pub async fn start_with(edit: impl FnOnce(&mut PortalConfig)) -> RunningPortal {
    let mut config = PortalConfig::local_test();
    edit(&mut config);
    Portal::start(config).await.expect("portal starts")
}

pub async fn start() -> RunningPortal {
    start_with(|_| {}).await
}

/// One HTTP response, read whole.
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

    /// The hidden CSRF field's value.
    pub fn csrf(&self) -> String {
        hidden_value(&self.body, "csrf_token")
            .unwrap_or_else(|| panic!("no csrf_token field in:\n{}", self.body))
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

/// A cookie-keeping client for one portal; redirects are not followed.
pub struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl Browser {
    pub fn new(portal: &RunningPortal) -> Self {
        Self::at(portal.url())
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

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn forget_cookies(&self) {
        self.cookies.lock().unwrap().clear();
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
            if value.is_empty() || set.contains("Max-Age=0") {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        page
    }

    pub async fn get(&self, path: &str) -> Page {
        self.request(Method::GET, path, &[], None).await
    }

    pub async fn head(&self, path: &str) -> Page {
        self.request(Method::HEAD, path, &[], None).await
    }

    /// POSTs `fields` URL-encoded, in order (repeats allowed).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_with(path, fields, &[]).await
    }

    pub async fn post_with(&self, path: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.request(
            Method::POST,
            path,
            headers,
            Some(("application/x-www-form-urlencoded", body)),
        )
        .await
    }

    /// GETs a form page and returns its CSRF token.
    pub async fn csrf(&self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {page:?}");
        page.csrf()
    }

    /// Asks for a reset link through the form.
    pub async fn forgot(&self, identifier: &str) -> Page {
        let csrf = self.csrf("/forgot").await;
        self.post("/forgot", &[("identifier", identifier), ("csrf_token", &csrf)])
            .await
    }

    /// Signs in; returns the response to the POST.
    pub async fn sign_in(&self, identifier: &str, password: &str) -> Page {
        let csrf = self.csrf("/login").await;
        self.post(
            "/login",
            &[
                ("identifier", identifier),
                ("password", password),
                ("csrf_token", &csrf),
            ],
        )
        .await
    }
}

/// A reset email captured by the portal's capture server.
#[derive(Debug, Clone)]
pub struct ResetMail {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    /// The reset link as mailed.
    pub link: String,
    /// The token in it.
    pub token: String,
    /// The "this wasn't me" link as mailed.
    pub deny_link: String,
}

impl ResetMail {
    /// The link's path and query, to request from the portal itself.
    pub fn path(&self) -> String {
        path_of(&self.link)
    }

    pub fn deny_path(&self) -> String {
        path_of(&self.deny_link)
    }
}

pub fn path_of(link: &str) -> String {
    let url = url::Url::parse(link).unwrap();
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

pub fn mail_count(portal: &RunningPortal) -> usize {
    portal.mail().unwrap().messages().len()
}

/// Waits for a reset email to `to` naming `username`, among the messages
/// captured after the first `skip`.
pub async fn reset_mail(portal: &RunningPortal, skip: usize, to: &str, username: &str) -> ResetMail {
    let deadline = Instant::now() + Duration::from_secs(10);
    let reset_prefix = format!("{}reset?token=", portal.base_url());
    let deny_prefix = format!("{}reset/deny?token=", portal.base_url());
    loop {
        for captured in portal.mail().unwrap().messages().iter().skip(skip) {
            if !captured.has_recipient(to) {
                continue;
            }
            let mail = ParsedMail::parse(&captured.data).unwrap();
            let text = mail.text.clone().unwrap_or_default();
            if !text.contains(&format!("\"{username}\"")) {
                continue;
            }
            let links = text_links(&text);
            let Some(link) = links.iter().find(|l| l.starts_with(&reset_prefix)) else {
                continue;
            };
            let deny_link = links
                .iter()
                .find(|l| l.starts_with(&deny_prefix))
                .unwrap()
                .clone();
            return ResetMail {
                to: mail.to.clone(),
                subject: mail.subject.clone(),
                text,
                token: link[reset_prefix.len()..].to_owned(),
                link: link.clone(),
                deny_link,
            };
        }
        assert!(
            Instant::now() < deadline,
            "no reset email to {to} for {username} within 10 s; captured: {:#?}",
            portal
                .mail()
                .unwrap()
                .messages()
                .iter()
                .map(|m| m.rcpt_to.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `count` messages were captured in all, then a little more,
/// and returns how many there are (to prove that no more arrive).
pub async fn settle(portal: &RunningPortal) -> usize {
    // The request is processed in the background and mail leaves through
    // the outbox; give both a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    mail_count(portal)
}

/// The (HTML-unescaped) content of the `<textarea name="NAME">` in `html`.
pub fn hidden_textarea(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\"");
    let start = html.find(&marker).expect("the textarea");
    let open = html[start..].find('>').expect("its tag ends") + start + 1;
    let end = html[open..].find("</textarea>").expect("its end") + open;
    html[open..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}
