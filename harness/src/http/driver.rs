//! The HTTP driver: virtual users, each with its own cookie jar, that load
//! pages, fill forms the way a browser would (hidden fields and the CSRF
//! token included), follow same-site redirects one hop at a time, and record
//! every exchange as evidence.
//!
//! ```no_run
//! # async fn demo(target: std::sync::Arc<resetkit_harness::http::target_file::HttpTarget>)
//! # -> Result<(), resetkit_harness::http::driver::DriverError> {
//! use resetkit_harness::http::driver::{Driver, Submission};
//! use resetkit_harness::http::exchange::ExchangeLog;
//!
//! let driver = Driver::new(target.clone(), ExchangeLog::default());
//! let user = driver.user("alice")?;
//! let page = user.load_form(&target.url(&target.forgot.page), &target.forgot.identifier_field).await?;
//! let visit = user
//!     .submit(&page, target.forgot.action.as_deref(), &Submission::new().set("identifier", "alice"))
//!     .await?;
//! assert!(target.forgot.accepted.check(&visit).is_ok());
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use super::exchange::{Exchange, ExchangeLog, Visit};
use super::html::{self, Form};
use super::target_file::{FormStep, HttpTarget};

/// Redirects followed at most per visit.
const MAX_REDIRECTS: usize = 10;
/// Bytes of a response body kept.
const MAX_BODY: usize = 512 * 1024;

/// What went wrong while driving the app (the app did not answer, or a page
/// lacks what the target file says it has).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The request failed: connection refused, timeout, bad TLS.
    #[error("{method} {url} failed: {reason}")]
    Transport {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The page has no form with the expected field.
    #[error("{url} (status {status}) has no form with a `{field}` field; forms found: {found}")]
    NoForm {
        /// The page (after redirects).
        url: String,
        /// Its status.
        status: u16,
        /// The field looked for.
        field: String,
        /// The fields of the forms that were there.
        found: String,
    },
    /// The form lacks the hidden CSRF field named by `csrf.field`.
    #[error("the form on {url} has no hidden `{field}` field ({table}.field in the target file)")]
    CsrfField {
        /// The page.
        url: String,
        /// The field.
        field: String,
        /// The target file's table that names it (`csrf`, `forgot.csrf`, ...).
        table: &'static str,
    },
    /// The CSRF cookie named by `csrf.cookie` was not set.
    #[error("no `{cookie}` cookie was set by {url} ({table}.cookie in the target file)")]
    CsrfCookie {
        /// The page loaded before.
        url: String,
        /// The cookie.
        cookie: String,
        /// The target file's table that names it (`csrf`, `forgot.csrf`, ...).
        table: &'static str,
    },
    /// The page has no `<meta>` named by `csrf.meta`.
    #[error("{url} has no <meta name=\"{name}\"> ({table}.meta in the target file)")]
    CsrfMeta {
        /// The page.
        url: String,
        /// The meta name.
        name: String,
        /// The target file's table that names it (`csrf`, `forgot.csrf`, ...).
        table: &'static str,
    },
    /// A header the harness was to send is not valid HTTP.
    #[error("cannot send header {name:?}: {reason}")]
    Header {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The CSRF endpoint's answer has no token where `pointer` says.
    #[error("{url} answered without a CSRF token at {pointer} ({table}.pointer in the target file): {got}")]
    CsrfJson {
        /// The endpoint (`csrf.fetch`).
        url: String,
        /// The JSON pointer looked at.
        pointer: String,
        /// The target file's table that names it.
        table: &'static str,
        /// What the answer was (status and a body excerpt).
        got: String,
    },
}

/// Makes virtual users for one scenario; every user records into the same log.
#[derive(Debug)]
pub struct Driver {
    target: Arc<HttpTarget>,
    log: ExchangeLog,
    users: AtomicUsize,
}

impl Driver {
    /// A driver for `target` recording into `log`.
    pub fn new(target: Arc<HttpTarget>, log: ExchangeLog) -> Self {
        Driver {
            target,
            log,
            users: AtomicUsize::new(0),
        }
    }

    /// The exchanges recorded so far.
    pub fn log(&self) -> &ExchangeLog {
        &self.log
    }

    /// The target.
    pub fn target(&self) -> &HttpTarget {
        &self.target
    }

    /// A new virtual user with an empty cookie jar; `label` names it in evidence.
    pub fn user(&self, label: &str) -> Result<User, DriverError> {
        let n = self.users.fetch_add(1, Ordering::Relaxed);
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(self.target.client.timeout_secs))
            .user_agent(concat!("resetkit-harness/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DriverError::Client(e.to_string()))?;
        // TEST-NET-2 and TEST-NET-3 (RFC 5737): never a real client.
        let address = self.target.client.address_header.as_ref().map(|header| {
            let net = if (n / 254).is_multiple_of(2) {
                "198.51.100"
            } else {
                "203.0.113"
            };
            (header.clone(), format!("{net}.{}", n % 254 + 1))
        });
        Ok(User {
            label: format!("{label}#{n}"),
            client,
            jar,
            target: self.target.clone(),
            log: self.log.clone(),
            address,
        })
    }
}

/// What to change in a form before sending it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Submission {
    set: Vec<(String, String)>,
    remove: Vec<String>,
    headers: Vec<(String, String)>,
}

impl Submission {
    /// Send the form as it is.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a field; calling it twice with one name sends the field twice.
    /// The form's own value of that field is dropped.
    pub fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set.push((name.into(), value.into()));
        self
    }

    /// Drops a field.
    pub fn remove(mut self, name: impl Into<String>) -> Self {
        self.remove.push(name.into());
        self
    }

    /// Adds `other`'s changes after these.
    pub fn merge(mut self, other: Submission) -> Self {
        self.set.extend(other.set);
        self.remove.extend(other.remove);
        self.headers.extend(other.headers);
        self
    }

    /// Adds a request header (`Host` replaces the real one).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The request headers added.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }
}

/// A request body as sent, with its type, and as shown in evidence
/// (passwords redacted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBody {
    /// `application/json` or `application/x-www-form-urlencoded`.
    pub content_type: String,
    /// The bytes sent.
    pub text: String,
    /// What evidence shows.
    pub shown: String,
}

impl RawBody {
    /// A form-encoded body of `fields`, `secret` ones redacted in evidence.
    pub fn form(fields: &[(String, String)], secret: &[String]) -> RawBody {
        RawBody {
            content_type: "application/x-www-form-urlencoded".into(),
            text: encode(fields, &[]),
            shown: encode(fields, secret),
        }
    }
}

/// A page with the form a flow step needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPage {
    /// How the page was reached.
    pub visit: Visit,
    /// The form.
    pub form: Form,
    /// Which of the flow's forms it is (its CSRF settings follow), when known.
    pub step: Option<FormStep>,
}

impl FormPage {
    /// The page's URL (after redirects).
    pub fn url(&self) -> &Url {
        &self.visit.last().url
    }

    /// Says which of the flow's forms this is: submitting it then uses
    /// that form's CSRF settings (`[forgot.csrf]`, ...).
    pub fn for_step(mut self, step: FormStep) -> Self {
        self.step = Some(step);
        self
    }
}

/// One virtual user: a browser with its own cookie jar.
#[derive(Debug, Clone)]
pub struct User {
    pub(super) label: String,
    client: reqwest::Client,
    pub(super) jar: Arc<Jar>,
    pub(super) target: Arc<HttpTarget>,
    pub(super) log: ExchangeLog,
    pub(super) address: Option<(String, String)>,
}

/// A filled-in form, ready to send: what [`User::submit`] sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// `GET` or `POST`.
    pub method: Method,
    /// Where it goes.
    pub url: Url,
    /// Extra headers (CSRF header, the caller's).
    pub headers: Vec<(String, String)>,
    /// The form fields (a POST body; for GET already in the URL).
    pub fields: Vec<(String, String)>,
    /// An API call's body (JSON or form-encoded), sent instead of `fields`.
    pub body: Option<RawBody>,
}

impl User {
    /// The name shown in evidence.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The value of cookie `name` this user would send to `url`.
    pub fn cookie(&self, name: &str, url: &Url) -> Option<String> {
        let header = self.jar.cookies(url)?;
        let text = header.to_str().ok()?;
        text.split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
    }

    /// Sends one request (redirects are not followed) and records it.
    /// `form` is sent as an `application/x-www-form-urlencoded` body.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: &[(String, String)],
        form: Option<&[(String, String)]>,
    ) -> Result<Exchange, DriverError> {
        let body = form.map(|fields| RawBody::form(fields, &self.target.secret_fields()));
        self.send_raw(method, url, headers, body.as_ref()).await
    }

    /// Sends one request with `body` (any encoding), redirects not
    /// followed, and records it.
    pub async fn send_raw(
        &self,
        method: Method,
        url: &Url,
        headers: &[(String, String)],
        body: Option<&RawBody>,
    ) -> Result<Exchange, DriverError> {
        let mut map = HeaderMap::new();
        let mut shown = Vec::new();
        let fixed: Vec<(String, String)> = self
            .target
            .client
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        for (name, value) in self.address.iter().chain(&fixed).chain(headers) {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|e| DriverError::Header {
                name: name.clone(),
                reason: e.to_string(),
            })?;
            let value_h = HeaderValue::from_str(value).map_err(|e| DriverError::Header {
                name: name.clone(),
                reason: e.to_string(),
            })?;
            map.append(header, value_h);
            shown.push((name.clone(), value.clone()));
        }
        let mut request = self.client.request(method.clone(), url.clone()).headers(map);
        let mut shown_body = None;
        if let Some(body) = body {
            request = request
                .header("content-type", body.content_type.as_str())
                .body(body.text.clone());
            shown_body = Some(body.shown.clone());
        }
        let transport = |e: reqwest::Error| DriverError::Transport {
            method: method.to_string(),
            url: url.to_string(),
            reason: error_chain(&e),
        };
        let started = Instant::now();
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let response_headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            let room = MAX_BODY.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        let exchange = Exchange {
            user: self.label.clone(),
            method: method.to_string(),
            url: url.clone(),
            request_headers: shown,
            request_body: shown_body,
            status,
            headers: response_headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            elapsed: started.elapsed(),
        };
        self.log.push(exchange.clone());
        Ok(exchange)
    }

    /// `GET url`, redirects not followed.
    pub async fn get(&self, url: &Url) -> Result<Exchange, DriverError> {
        self.send(Method::GET, url, &[], None).await
    }

    /// `HEAD url`, redirects not followed.
    pub async fn head(&self, url: &Url) -> Result<Exchange, DriverError> {
        self.send(Method::HEAD, url, &[], None).await
    }

    /// Follows redirects from `first` with GET, as a browser would, while
    /// they stay on the app's host (at most ten hops).
    pub async fn follow(&self, first: Exchange) -> Result<Visit, DriverError> {
        let mut visit = Visit::new(first);
        for _ in 0..MAX_REDIRECTS {
            let last = visit.last();
            let Some(next) = last.location().filter(|_| last.is_redirect()) else {
                break;
            };
            if !self.same_site(&next) {
                break;
            }
            let exchange = self.get(&next).await?;
            visit.push(exchange);
        }
        Ok(visit)
    }

    /// `GET url` and follow redirects.
    pub async fn open(&self, url: &Url) -> Result<Visit, DriverError> {
        let first = self.get(url).await?;
        self.follow(first).await
    }

    /// Opens `url` and finds the form that has `field`.
    pub async fn load_form(&self, url: &Url, field: &str) -> Result<FormPage, DriverError> {
        let visit = self.open(url).await?;
        form_in(visit, field)
    }

    /// Fills and sends `page`'s form: its default values (hidden fields,
    /// CSRF token), changed by `submission`; posted to `action` if given,
    /// else the form's `action`, else the page. Follows redirects.
    pub async fn submit(
        &self,
        page: &FormPage,
        action: Option<&str>,
        submission: &Submission,
    ) -> Result<Visit, DriverError> {
        let prepared = self.prepare(page, action, submission)?;
        let first = if prepared.method == Method::GET {
            self.send(Method::GET, &prepared.url, &prepared.headers, None)
                .await?
        } else {
            self.send(
                Method::POST,
                &prepared.url,
                &prepared.headers,
                Some(&prepared.fields),
            )
            .await?
        };
        self.follow(first).await
    }

    /// Fills `page`'s form as [`submit`](Self::submit) would, without sending it.
    pub fn prepare(
        &self,
        page: &FormPage,
        action: Option<&str>,
        submission: &Submission,
    ) -> Result<Prepared, DriverError> {
        let mut fields: Vec<(String, String)> = page
            .form
            .default_values()
            .into_iter()
            .filter(|(name, _)| {
                !submission.set.iter().any(|(n, _)| n == name) && !submission.remove.contains(name)
            })
            .collect();
        let mut headers = Vec::new();
        self.add_csrf(page, &mut fields, &mut headers)?;
        fields.extend(submission.set.iter().cloned());
        headers.extend(submission.headers.iter().cloned());
        let target = action
            .map(|a| self.target.url(a))
            .or_else(|| {
                let written = page.form.action.as_deref()?.trim();
                (!written.is_empty())
                    .then(|| page.url().join(written).ok())
                    .flatten()
            })
            .unwrap_or_else(|| page.url().clone());
        Ok(if page.form.method == "get" {
            let mut url = target;
            url.set_query(Some(&encode(&fields, &[])));
            Prepared {
                method: Method::GET,
                url,
                headers,
                fields: Vec::new(),
                body: None,
            }
        } else {
            Prepared {
                method: Method::POST,
                url: target,
                headers,
                fields,
                body: None,
            }
        })
    }

    fn add_csrf(
        &self,
        page: &FormPage,
        fields: &mut Vec<(String, String)>,
        headers: &mut Vec<(String, String)>,
    ) -> Result<(), DriverError> {
        let csrf = self.target.csrf_for(page.step);
        let table = self.target.csrf_table(page.step);
        let token = if let Some(cookie) = &csrf.cookie {
            Some(
                self.cookie(cookie, page.url())
                    .ok_or_else(|| DriverError::CsrfCookie {
                        table,
                        url: page.url().to_string(),
                        cookie: cookie.clone(),
                    })?,
            )
        } else if let Some(name) = &csrf.meta {
            Some(
                html::meta_content(&page.visit.last().body, name).ok_or_else(|| DriverError::CsrfMeta {
                    table,
                    url: page.url().to_string(),
                    name: name.clone(),
                })?,
            )
        } else {
            None
        };
        match (token, &csrf.header, &csrf.field) {
            (Some(token), Some(header), _) => headers.push((header.clone(), token)),
            (Some(token), None, Some(field)) => {
                fields.retain(|(n, _)| n != field);
                fields.push((field.clone(), token));
            }
            (None, _, Some(field)) if !page.form.has_field(field) => {
                return Err(DriverError::CsrfField {
                    table,
                    url: page.url().to_string(),
                    field: field.clone(),
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn same_site(&self, url: &Url) -> bool {
        let base = &self.target.base_url;
        url.host_str() == base.host_str() && matches!(url.scheme(), "http" | "https")
    }
}

/// The form in `visit`'s final page that has `field`.
pub fn form_in(visit: Visit, field: &str) -> Result<FormPage, DriverError> {
    let forms = html::forms(&visit.last().body);
    match forms.iter().position(|f| f.has_field(field)) {
        Some(i) => Ok(FormPage {
            form: forms[i].clone(),
            visit,
            step: None,
        }),
        None => Err(DriverError::NoForm {
            url: visit.last().url.to_string(),
            status: visit.last().status,
            field: field.to_owned(),
            found: describe_forms(&forms),
        }),
    }
}

fn describe_forms(forms: &[Form]) -> String {
    if forms.is_empty() {
        return "none".into();
    }
    forms
        .iter()
        .map(|f| {
            let names: Vec<&str> = f.fields.iter().map(|x| x.name.as_str()).collect();
            format!("[{}]", names.join(", "))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Form-encodes `fields`, replacing the values of `secret` ones.
pub(super) fn encode(fields: &[(String, String)], secret: &[String]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        if secret.contains(name) {
            out.append_pair(name, "[REDACTED]");
        } else {
            out.append_pair(name, value);
        }
    }
    out.finish()
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_redacts_secrets() {
        let fields = vec![
            ("identifier".to_owned(), "a b&c".to_owned()),
            ("password".to_owned(), "hunter2".to_owned()),
        ];
        assert_eq!(
            encode(&fields, &["password".to_owned()]),
            "identifier=a+b%26c&password=%5BREDACTED%5D"
        );
    }
}
