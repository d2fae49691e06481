//! `/dev/mail`: the messages the in-process capture server received, with
//! their links. Only routed with `--dev-mail` in capture mode: it shows live
//! reset links, so it must never run in production.

use axum::http::StatusCode;
use axum::response::Response;
use resetkit_harness::inspect::{ParsedMail, html_links, text_links};

use super::{State, page};
use crate::html::{self, DevMail};

pub(super) async fn mail(state: State) -> Response {
    let Some(capture) = state.dev_mail.as_ref() else {
        return page(
            StatusCode::NOT_FOUND,
            html::error("Not found", "There is no such page."),
        );
    };
    let messages: Vec<DevMail> = capture
        .messages()
        .iter()
        .rev()
        .map(|captured| match ParsedMail::parse(&captured.data) {
            Ok(mail) => {
                let mut links = mail.text.as_deref().map(text_links).unwrap_or_default();
                for link in mail.html.as_deref().map(html_links).unwrap_or_default() {
                    if !links.contains(&link) {
                        links.push(link);
                    }
                }
                let to = if mail.to.is_empty() {
                    captured.rcpt_to.join(", ")
                } else {
                    mail.to.join(", ")
                };
                DevMail {
                    to,
                    subject: mail.subject,
                    links,
                }
            }
            Err(error) => DevMail {
                to: captured.rcpt_to.join(", "),
                subject: format!("(unreadable message: {error})"),
                links: Vec::new(),
            },
        })
        .collect();
    page(StatusCode::OK, html::dev_mail(&messages))
}
