//! The inbox's HTML pages: the list, newest first, and one message.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};

use super::{find, inspect, newest_first, not_found};
use crate::fake_smtp::FakeSmtpServer;
use crate::report::html::{render, sandboxed_frame};

fn page(name: &str, ctx: Value) -> Response {
    let html = render(
        name,
        context! { style => Value::from_safe_string(STYLE.to_owned()), ..ctx },
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

fn subject_or_none(subject: &str) -> &str {
    if subject.is_empty() {
        "(no subject)"
    } else {
        subject
    }
}

pub(super) async fn index(State(server): State<Arc<FakeSmtpServer>>) -> Response {
    let messages: Vec<Value> = newest_first(&server)
        .iter()
        .map(|m| {
            let s = inspect(m).summary;
            let from = if s.from.is_empty() {
                s.mail_from.clone()
            } else {
                s.from.join(", ")
            };
            let to = if s.to.is_empty() {
                s.rcpt_to.join(", ")
            } else {
                s.to.join(", ")
            };
            context! {
                id => s.id,
                received_at => s.received_at,
                from,
                to,
                subject => subject_or_none(&s.subject),
                reset_link => s.has_reset_link,
            }
        })
        .collect();
    page(
        "inbox_index.html",
        context! { title => "Captured mail", messages },
    )
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
    let links: Vec<Value> = d
        .links
        .iter()
        .map(|l| {
            let token = match (&l.token_location, l.token_length, l.token_bits) {
                (Some(location), Some(length), Some(bits)) => Some(context! {
                    location,
                    length,
                    bits => format!("{bits:.0}"),
                    shape => l.token_shape.as_deref().unwrap_or_default(),
                }),
                _ => None,
            };
            let parts = match (l.in_text, l.in_html) {
                (true, true) => "text + HTML",
                (true, false) => "text",
                _ => "HTML",
            };
            context! {
                url => l.url,
                problems => l.problems,
                reset_link => l.reset_link,
                scheme => l.scheme,
                host => l.host.as_deref().unwrap_or(""),
                token,
                parts,
            }
        })
        .collect();
    page(
        "inbox_message.html",
        context! {
            title => s.subject,
            id => s.id,
            subject => subject_or_none(&s.subject),
            from => s.from.join(", "),
            to => s.to.join(", "),
            mail_from => s.mail_from,
            rcpt_to => s.rcpt_to.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>().join(", "),
            received_at => s.received_at,
            size => s.size,
            tls => m.tls,
            problems => d.problems,
            links,
            text => d.text,
            frame => d.html.as_deref().map(|h| Value::from_safe_string(sandboxed_frame(h))),
            headers => d.headers,
            raw => d.raw,
        },
    )
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
