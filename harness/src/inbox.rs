//! The web inbox of the capture server (`resetkit-harness smtp --web ADDR`):
//! messages newest first, one message's text, HTML (sandboxed), raw source
//! and headers, its links with what the mail inspection finds (a reset
//! link? on which host? what token shape?), a JSON API for scripts and
//! "clear all".
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the inbox page |
//! | `GET /messages/{id}` | one message |
//! | `GET /api/messages` | every message, newest first, as JSON |
//! | `GET /api/messages/{id}` | one message as JSON (text, HTML, raw, headers, links) |
//! | `GET /api/messages/{id}/raw` | the message as received (`message/rfc822`) |
//! | `POST /api/messages/clear` | forget every message |
//!
//! Safe to leave running on a developer machine: [`serve`] closes
//! connections that send no complete request head within a timeout (idle
//! or trickling clients), requests must name a loopback host (no DNS
//! rebinding; [`InboxAccess::Network`], for `--web-public`, also accepts IP
//! literals), clearing needs a
//! same-origin request (`Sec-Fetch-Site` / `Origin`) or an
//! `X-Inbox-Clear: 1` header (no cross-site form can send either), pages send a CSP without scripts or
//! remote loads, and an email's HTML is shown defanged in a sandboxed frame.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use resetkit_harness::fake_smtp::FakeSmtpServer;
//!
//! let server = Arc::new(FakeSmtpServer::start().expect("fake SMTP server"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8025").await?;
//! resetkit_harness::inbox::serve(
//!     listener,
//!     server,
//!     resetkit_harness::inbox::InboxAccess::Loopback,
//!     std::time::Duration::from_secs(10),
//! )
//! .await
//! # }
//! ```

mod pages;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::fake_smtp::{CapturedMessage, FakeSmtpServer};
use crate::http::token_strength;
use crate::inspect::{ParsedMail, html_links, text_links};
use crate::report::redact::token_parts;

const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'; \
                        form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Who may reach an inbox: it shows live reset links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxAccess {
    /// Requests must name a loopback host (`localhost`, `127.0.0.1`,
    /// `[::1]`): the default, and the only choice on a loopback listener.
    Loopback,
    /// Requests may also name an IP literal (a machine's network address):
    /// for a test network where other machines read the inbox on purpose
    /// (`resetkit-harness smtp --web-public`). Names other than `localhost`
    /// stay refused (DNS rebinding).
    Network,
}

/// Serves the inbox on `listener` until the task is dropped, closing
/// connections that send no complete request head within
/// `header_read_timeout` (after connecting or after a response), as the
/// web layer does for the portal.
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: Arc<FakeSmtpServer>,
    access: InboxAccess,
    header_read_timeout: std::time::Duration,
) -> std::io::Result<()> {
    let options = resetkit_axum::ServeOptions::default().with_header_read_timeout(header_read_timeout);
    resetkit_axum::serve(
        listener,
        router_for(server, access),
        options,
        std::future::pending(),
    )
    .await
}

/// The inbox as an axum router over `server`'s captured mail, answering
/// loopback hosts only. Serve it with [`serve`] (timeouts), not bare
/// `axum::serve`.
pub fn router(server: Arc<FakeSmtpServer>) -> Router {
    router_for(server, InboxAccess::Loopback)
}

/// The inbox router for `access`.
pub fn router_for(server: Arc<FakeSmtpServer>, access: InboxAccess) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/messages/{id}", get(pages::message_page))
        .route("/api/messages", get(api_list))
        .route("/api/messages/clear", post(clear))
        .route("/api/messages/{id}", get(api_message))
        .route("/api/messages/{id}/raw", get(api_raw))
        .layer(axum::middleware::from_fn(move |request, next| {
            guard(access, request, next)
        }))
        .with_state(server)
}

/// Refuses hosts that `access` does not allow (DNS rebinding, other
/// machines), and adds the security headers.
async fn guard(
    access: InboxAccess,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !host_allowed(host, access) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            match access {
                InboxAccess::Loopback => "the inbox answers only to loopback hosts (Host header refused)\n",
                InboxAccess::Network => {
                    "the inbox answers only to localhost and IP addresses (Host header refused)\n"
                }
            },
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether a `Host` header names this machine by a loopback name or
/// address (`localhost`, `*.localhost`, 127.0.0.0/8, `[::1]`, with or
/// without a port): pages that show live reset links answer only these, so
/// a web page cannot read them by rebinding its own name to 127.0.0.1.
pub fn loopback_host(host: &str) -> bool {
    host_allowed(host, InboxAccess::Loopback)
}

fn host_allowed(host: &str, access: InboxAccess) -> bool {
    let ip_allowed = |ip: std::net::IpAddr| ip.is_loopback() || access == InboxAccess::Network;
    let name = match host.strip_prefix('[') {
        Some(v6) => {
            return v6
                .split(']')
                .next()
                .and_then(|a| a.parse::<std::net::Ipv6Addr>().ok())
                .is_some_and(|ip| ip_allowed(ip.into()));
        }
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip_allowed(ip.into()))
}

/// What the inspection says about one link.
#[derive(Debug, Clone, Serialize)]
pub struct LinkReport {
    /// The link as written.
    pub url: String,
    /// Found in the text part.
    pub in_text: bool,
    /// Found in the HTML part.
    pub in_html: bool,
    /// `https`, `http`, ...
    pub scheme: String,
    /// The host, if any.
    pub host: Option<String>,
    /// The path.
    pub path: String,
    /// Whether it carries a token (then it is probably a reset or "this
    /// wasn't me" link).
    pub reset_link: bool,
    /// Where the token is (`query token`, `path segment 3`, `fragment`).
    pub token_location: Option<String>,
    /// Its length.
    pub token_length: Option<usize>,
    /// Estimated bits of the random part, with how it was reached.
    pub token_bits: Option<f64>,
    /// How the estimate was reached.
    pub token_shape: Option<String>,
    /// Problems a person should look at.
    pub problems: Vec<String>,
}

/// One message as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageSummary {
    /// Its number ([`CapturedMessage::id`]).
    pub id: u64,
    /// When it arrived (RFC 3339, UTC).
    pub received_at: String,
    /// Envelope sender.
    pub mail_from: String,
    /// Envelope recipients.
    pub rcpt_to: Vec<String>,
    /// `From` header addresses.
    pub from: Vec<String>,
    /// `To` header addresses.
    pub to: Vec<String>,
    /// Decoded subject.
    pub subject: String,
    /// Size in bytes.
    pub size: usize,
    /// Whether a link carries a token.
    pub has_reset_link: bool,
}

/// One message in full.
#[derive(Debug, Clone, Serialize)]
pub struct MessageDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: MessageSummary,
    /// Decoded text part.
    pub text: Option<String>,
    /// Decoded HTML part.
    pub html: Option<String>,
    /// Top-level headers.
    pub headers: Vec<(String, String)>,
    /// Every link with the inspection's findings.
    pub links: Vec<LinkReport>,
    /// Findings about the message as a whole.
    pub problems: Vec<String>,
    /// The raw message.
    pub raw: String,
}

/// Inspects one captured message.
pub fn inspect(message: &CapturedMessage) -> MessageDetail {
    let parsed = ParsedMail::parse(&message.data).ok();
    let mut problems = Vec::new();
    let mut links: Vec<LinkReport> = Vec::new();
    if let Some(mail) = &parsed {
        let text = mail.text.as_deref().map(text_links).unwrap_or_default();
        let html = mail.html.as_deref().map(html_links).unwrap_or_default();
        for (link, in_text) in text
            .iter()
            .map(|l| (l, true))
            .chain(html.iter().map(|l| (l, false)))
        {
            match links.iter_mut().find(|r| &r.url == link) {
                Some(r) => {
                    r.in_text |= in_text;
                    r.in_html |= !in_text;
                }
                None => links.push(link_report(link, in_text)),
            }
        }
        for link in links.iter_mut().filter(|l| l.reset_link) {
            if mail.text.is_some() && !link.in_text {
                link.problems
                    .push("only in the HTML part: a plain-text reader cannot open it".into());
            }
            if mail.html.is_some() && !link.in_html {
                link.problems.push("not in the HTML part".into());
            }
        }
        if !links.iter().any(|l| l.reset_link) {
            problems.push("no link with a token: a reset email must carry its link".into());
        }
        if mail.from.len() != 1 {
            problems.push(format!("{} From addresses (one expected)", mail.from.len()));
        }
        let has = |name: &str| mail.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        for header in ["Message-ID", "Date"] {
            if !has(header) {
                problems.push(format!("no {header} header"));
            }
        }
        if !has("Auto-Submitted") {
            problems.push("no Auto-Submitted header (auto-replies may answer it)".into());
        }
    } else {
        problems.push("not parseable as an email".into());
    }
    let summary = summary_of(message, parsed.as_ref(), links.iter().any(|l| l.reset_link));
    MessageDetail {
        summary,
        text: parsed.as_ref().and_then(|m| m.text.clone()),
        html: parsed.as_ref().and_then(|m| m.html.clone()),
        headers: parsed.as_ref().map(|m| m.headers.clone()).unwrap_or_default(),
        links,
        problems,
        raw: message.data_text(),
    }
}

fn summary_of(
    message: &CapturedMessage,
    parsed: Option<&ParsedMail>,
    has_reset_link: bool,
) -> MessageSummary {
    MessageSummary {
        id: message.id,
        received_at: crate::event_text::time(message.received_at),
        mail_from: message.mail_from.clone(),
        rcpt_to: message.rcpt_to.clone(),
        from: parsed.map(|m| m.from.clone()).unwrap_or_default(),
        to: parsed.map(|m| m.to.clone()).unwrap_or_default(),
        subject: parsed.map(|m| m.subject.clone()).unwrap_or_default(),
        size: message.data.len(),
        has_reset_link,
    }
}

fn link_report(link: &str, in_text: bool) -> LinkReport {
    let mut report = LinkReport {
        url: link.to_owned(),
        in_text,
        in_html: !in_text,
        scheme: String::new(),
        host: None,
        path: String::new(),
        reset_link: false,
        token_location: None,
        token_length: None,
        token_bits: None,
        token_shape: None,
        problems: Vec::new(),
    };
    let Ok(url) = url::Url::parse(link) else {
        report
            .problems
            .push("not an absolute URL: no mail client can open it".into());
        return report;
    };
    report.scheme = url.scheme().to_owned();
    report.host = url.host_str().map(str::to_owned);
    report.path = url.path().to_owned();
    if let Some((location, token)) = token_parts(&url).into_iter().next() {
        report.reset_link = true;
        report.token_location = Some(location);
        report.token_length = Some(token.len());
        let estimate = token_strength::estimate(std::slice::from_ref(&token));
        report.token_bits = Some(estimate.bits);
        report.token_shape = Some(estimate.explanation);
        if estimate.bits < 128.0 {
            report.problems.push(format!(
                "token of about {:.0} bits: at least 128 expected",
                estimate.bits
            ));
        }
        if url.scheme() != "https" {
            report
                .problems
                .push(format!("{}:// link: reset links must use https", url.scheme()));
        }
    }
    report
}

fn newest_first(server: &FakeSmtpServer) -> Vec<CapturedMessage> {
    let mut messages = server.messages();
    messages.reverse();
    messages
}

async fn api_list(State(server): State<Arc<FakeSmtpServer>>) -> Response {
    let list: Vec<MessageSummary> = newest_first(&server).iter().map(|m| inspect(m).summary).collect();
    axum::Json(list).into_response()
}

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no message {id:?} (it may have been cleared)\n"),
    )
        .into_response()
}

fn find(server: &FakeSmtpServer, id: &str) -> Option<CapturedMessage> {
    id.parse::<u64>().ok().and_then(|id| server.message(id))
}

async fn api_message(State(server): State<Arc<FakeSmtpServer>>, Path(id): Path<String>) -> Response {
    match find(&server, &id) {
        Some(m) => axum::Json(inspect(&m)).into_response(),
        None => not_found(&id),
    }
}

async fn api_raw(State(server): State<Arc<FakeSmtpServer>>, Path(id): Path<String>) -> Response {
    match find(&server, &id) {
        Some(m) => (
            [
                (header::CONTENT_TYPE, "message/rfc822"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"message.eml\"",
                ),
            ],
            m.data,
        )
            .into_response(),
        None => not_found(&id),
    }
}

/// Clearing needs proof the request is not a cross-site form: a browser's
/// `Sec-Fetch-Site: same-origin`, a same-origin `Origin`, or the
/// `X-Inbox-Clear: 1` header (which a form cannot send).
async fn clear(State(server): State<Arc<FakeSmtpServer>>, headers: HeaderMap) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
    // Browsers send `Sec-Fetch-Site` (no page can forge it); with
    // `Referrer-Policy: no-referrer` their form POSTs carry `Origin: null`.
    let fetch_site = headers.get("sec-fetch-site").and_then(|h| h.to_str().ok());
    let same_origin = fetch_site == Some("same-origin")
        || matches!((origin, host), (Some(o), Some(h)) if o == format!("http://{h}"));
    let scripted = headers.get("x-inbox-clear").is_some_and(|v| v.as_bytes() == b"1");
    if !(same_origin || scripted) {
        return (
            StatusCode::FORBIDDEN,
            "clearing needs a same-origin request or the header `X-Inbox-Clear: 1`\n",
        )
            .into_response();
    }
    let cleared = server.message_count();
    server.clear();
    if scripted && !same_origin {
        axum::Json(serde_json::json!({ "cleared": cleared })).into_response()
    } else {
        Redirect::to("/").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::{InboxAccess, host_allowed};

    #[test]
    fn only_loopback_hosts_are_served_unless_the_network_is_allowed() {
        for ok in [
            "127.0.0.1:8025",
            "127.1.2.3",
            "localhost:8025",
            "localhost",
            "[::1]:8025",
            "inbox.localhost:1",
        ] {
            assert!(host_allowed(ok, InboxAccess::Loopback), "{ok}");
            assert!(host_allowed(ok, InboxAccess::Network), "{ok}");
        }
        // A machine's network address: only with the explicit opt-in.
        for network in ["10.0.0.5", "192.168.1.20:8025", "[fe80::1]:8025", "[2001:db8::1]"] {
            assert!(!host_allowed(network, InboxAccess::Loopback), "{network}");
            assert!(host_allowed(network, InboxAccess::Network), "{network}");
        }
        for bad in ["evil.example:8025", "", "127.0.0.1.evil.example", "[evil]:1"] {
            assert!(!host_allowed(bad, InboxAccess::Loopback), "{bad}");
            assert!(!host_allowed(bad, InboxAccess::Network), "{bad}");
        }
    }
}
