//! One HTTP request and its response as the harness saw it, kept as
//! evidence: method, URL, the headers the harness set on purpose, the form
//! body (passwords redacted), status, the response headers that matter for
//! a reset flow, and the body.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use url::Url;

/// Response headers shown in evidence (all are kept in [`Exchange::headers`]).
const SHOWN_HEADERS: &[&str] = &[
    "location",
    "set-cookie",
    "referrer-policy",
    "cache-control",
    "pragma",
    "expires",
    "content-type",
    "retry-after",
];

/// Characters of a body shown in evidence.
const BODY_EXCERPT: usize = 300;

/// One request and response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The virtual user that sent it.
    pub user: String,
    /// `GET`, `HEAD`, `POST`.
    pub method: String,
    /// The URL requested.
    pub url: Url,
    /// Headers the harness set on purpose (Host overrides, forwarding
    /// headers, CSRF header, client address).
    pub request_headers: Vec<(String, String)>,
    /// The form body sent, with password fields redacted.
    pub request_body: Option<String>,
    /// The response status.
    pub status: u16,
    /// Every response header, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The response body (lossy UTF-8, at most 512 KiB).
    pub body: String,
    /// From sending the request to the end of the body.
    pub elapsed: Duration,
}

impl Exchange {
    /// The first response header called `name` (any case).
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.header_all(name).next()
    }

    /// Every response header called `name` (any case), in order.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the response is a redirect with a `Location`.
    pub fn is_redirect(&self) -> bool {
        matches!(self.status, 301 | 302 | 303 | 307 | 308) && self.header("location").is_some()
    }

    /// The `Location`, resolved against the request URL.
    pub fn location(&self) -> Option<Url> {
        self.header("location").and_then(|l| self.url.join(l.trim()).ok())
    }

    /// One line: `POST http://host/forgot → 303 /forgot/sent (3.1 ms)`.
    pub fn summary(&self) -> String {
        let to = self
            .header("location")
            .map(|l| format!(" → {l}"))
            .unwrap_or_default();
        format!(
            "{} {} → {}{to} ({:.1} ms)",
            self.method,
            self.url,
            self.status,
            self.elapsed.as_secs_f64() * 1000.0
        )
    }

    /// The body's first characters on one line.
    pub fn body_excerpt(&self) -> String {
        let flat: String = self
            .body
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(BODY_EXCERPT + 1)
            .collect();
        if flat.chars().count() > BODY_EXCERPT {
            let cut: String = flat.chars().take(BODY_EXCERPT).collect();
            format!("{cut}… ({} bytes)", self.body.len())
        } else {
            flat
        }
    }
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[{}] {}", self.user, self.summary())?;
        for (name, value) in &self.request_headers {
            writeln!(f, "  > {name}: {value}")?;
        }
        if let Some(body) = &self.request_body {
            writeln!(f, "  > body: {body}")?;
        }
        for (name, value) in &self.headers {
            if SHOWN_HEADERS.contains(&name.as_str()) {
                writeln!(f, "  < {name}: {value}")?;
            }
        }
        let body = self.body_excerpt();
        if body.is_empty() {
            write!(f, "  < (empty body)")
        } else {
            write!(f, "  < body: {body}")
        }
    }
}

/// A redirect chain: the first exchange is the request made, the last the
/// page it ended on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    first: Exchange,
    rest: Vec<Exchange>,
}

impl Visit {
    /// A visit that starts with `first`.
    pub fn new(first: Exchange) -> Self {
        Visit {
            first,
            rest: Vec::new(),
        }
    }

    /// Adds the next hop.
    pub fn push(&mut self, next: Exchange) {
        self.rest.push(next);
    }

    /// The request made.
    pub fn first(&self) -> &Exchange {
        &self.first
    }

    /// The page it ended on.
    pub fn last(&self) -> &Exchange {
        self.rest.last().unwrap_or(&self.first)
    }

    /// Every exchange, in order.
    pub fn exchanges(&self) -> impl Iterator<Item = &Exchange> {
        std::iter::once(&self.first).chain(&self.rest)
    }

    /// `GET /a → 303 /b; GET /b → 200`.
    pub fn summary(&self) -> String {
        self.exchanges()
            .map(Exchange::summary)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Every exchange of a scenario, shared by its virtual users.
#[derive(Debug, Clone, Default)]
pub struct ExchangeLog {
    inner: Arc<Mutex<Vec<Exchange>>>,
}

impl ExchangeLog {
    /// Records an exchange.
    pub fn push(&self, exchange: Exchange) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(exchange);
    }

    /// Everything recorded so far, in order.
    pub fn snapshot(&self) -> Vec<Exchange> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many exchanges were recorded.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
