//! The inbox's HTML pages: the list, newest first, and one message.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{find, inspect, newest_first, not_found};
use crate::fake_smtp::FakeSmtpServer;
use crate::report::html::{esc, sandboxed_frame};

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

pub(super) async fn index(State(server): State<Arc<FakeSmtpServer>>) -> Response {
    let messages = newest_first(&server);
    let mut body = format!(
        "<header><h1>Captured mail</h1><span class=\"count\">{} message(s)</span>\
         <form method=\"post\" action=\"/api/messages/clear\"><button type=\"submit\">Clear all</button></form>\
         <a href=\"/\">Refresh</a> · <a href=\"/api/messages\">JSON</a></header>",
        messages.len()
    );
    if messages.is_empty() {
        body.push_str("<p class=\"empty\">No mail yet. Point the app's SMTP settings at this server (plain SMTP, no TLS), ask for a reset, then refresh.</p>");
    } else {
        body.push_str("<table class=\"list\"><thead><tr><th>#</th><th>received (UTC)</th><th>from</th><th>to</th><th>subject</th><th>reset link</th></tr></thead><tbody>");
        for m in &messages {
            let d = inspect(m);
            let s = &d.summary;
            let from = if s.from.is_empty() {
                &s.mail_from
            } else {
                &s.from.join(", ")
            };
            let to = if s.to.is_empty() {
                s.rcpt_to.join(", ")
            } else {
                s.to.join(", ")
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"/messages/{}\">{}</a></td><td class=\"{}\">{}</td></tr>",
                s.id,
                esc(&s.received_at),
                esc(from),
                esc(&to),
                s.id,
                esc(if s.subject.is_empty() {
                    "(no subject)"
                } else {
                    &s.subject
                }),
                if s.has_reset_link { "yes" } else { "no" },
                if s.has_reset_link { "found" } else { "none" },
            );
        }
        body.push_str("</tbody></table>");
    }
    page("Captured mail", &body)
}

pub(super) async fn message_page(
    State(server): State<Arc<FakeSmtpServer>>,
    Path(id): Path<String>,
) -> Response {
    let Some(m) = find(&server, &id) else {
        return not_found(&id);
    };
    let d = inspect(&m);
    let s = &d.summary;
    let mut body = format!(
        "<header><a href=\"/\">← Inbox</a><h1>{}</h1></header>\
         <table class=\"meta\"><tr><th>From</th><td>{}</td></tr><tr><th>To</th><td>{}</td></tr>\
         <tr><th>Envelope</th><td>MAIL FROM &lt;{}&gt; RCPT TO {}</td></tr><tr><th>Received</th><td>{} ({} bytes{})</td></tr></table>",
        esc(if s.subject.is_empty() {
            "(no subject)"
        } else {
            &s.subject
        }),
        esc(&s.from.join(", ")),
        esc(&s.to.join(", ")),
        esc(&s.mail_from),
        esc(&s
            .rcpt_to
            .iter()
            .map(|r| format!("<{r}>"))
            .collect::<Vec<_>>()
            .join(", ")),
        esc(&s.received_at),
        s.size,
        if m.tls { ", over STARTTLS" } else { "" },
    );
    body.push_str("<section class=\"findings\"><h2>Links and findings</h2>");
    for p in &d.problems {
        let _ = write!(body, "<p class=\"problem\">⚠ {}</p>", esc(p));
    }
    if d.links.is_empty() {
        body.push_str("<p>No links.</p>");
    } else {
        body.push_str("<table class=\"links\"><thead><tr><th>link</th><th>reset link?</th><th>host</th><th>token</th><th>in</th></tr></thead><tbody>");
        for l in &d.links {
            let token = match (&l.token_location, l.token_length, l.token_bits) {
                (Some(loc), Some(len), Some(bits)) => format!(
                    "{} · {len} chars · ~{bits:.0} bits<br><small>{}</small>",
                    esc(loc),
                    esc(l.token_shape.as_deref().unwrap_or_default())
                ),
                _ => "–".into(),
            };
            let parts = match (l.in_text, l.in_html) {
                (true, true) => "text + HTML",
                (true, false) => "text",
                _ => "HTML",
            };
            let problems: String = l
                .problems
                .iter()
                .map(|p| format!("<div class=\"problem\">⚠ {}</div>", esc(p)))
                .collect();
            let _ = write!(
                body,
                "<tr><td><a href=\"{}\" rel=\"noreferrer noopener\" target=\"_blank\">{}</a>{problems}</td><td class=\"{}\">{}</td><td>{}://{}</td><td>{token}</td><td>{parts}</td></tr>",
                esc(&l.url),
                esc(&l.url),
                if l.reset_link { "found" } else { "none" },
                if l.reset_link { "yes" } else { "no" },
                esc(&l.scheme),
                esc(l.host.as_deref().unwrap_or("")),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    if let Some(text) = &d.text {
        let _ = write!(
            body,
            "<details open><summary>Text part</summary><pre>{}</pre></details>",
            esc(text)
        );
    }
    if let Some(html) = &d.html {
        let _ = write!(
            body,
            "<details open><summary>HTML part (sandboxed: no scripts, no remote images)</summary>{}</details>",
            sandboxed_frame(html)
        );
    }
    body.push_str("<details><summary>Headers</summary><table class=\"headers\">");
    for (name, value) in &d.headers {
        let _ = write!(body, "<tr><th>{}</th><td>{}</td></tr>", esc(name), esc(value));
    }
    let _ = write!(
        body,
        "</table></details><details><summary>Raw message</summary><pre>{}</pre><a href=\"/api/messages/{}/raw\">download .eml</a></details>",
        esc(&d.raw),
        s.id
    );
    page(&s.subject, &body)
}

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 12px 20px; color: #1f2328; }
header { display: flex; gap: 14px; align-items: center; flex-wrap: wrap; } h1 { font-size: 20px; margin: 6px 0; } h2 { font-size: 15px; }
header form { margin: 0; } button { padding: 3px 10px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; } th, td { border-bottom: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
table.meta th, table.headers th { width: 140px; color: #57606a; font-weight: normal; }
td.found { color: #1a7f37; font-weight: bold; } td.none { color: #8c959f; }
.problem { color: #9a6700; } .empty { color: #57606a; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f8fa; padding: 8px; font-size: 12px; }
iframe.mailhtml { width: 100%; height: 360px; border: 1px solid #d0d7de; background: #fff; }
details { margin: 8px 0; } summary { cursor: pointer; font-weight: bold; }
td a { word-break: break-all; }
"#;
