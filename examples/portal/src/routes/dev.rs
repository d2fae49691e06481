//! `/dev/mail`: the messages the in-process capture server received, with
//! their links. Only routed with `--dev-mail` in capture mode: it shows live
//! reset links, so it must never run in production.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use resetkit_harness::fake_smtp::{FaultRule, Stage};
use resetkit_harness::inspect::{ParsedMail, html_links, text_links};

use super::{Answer, PageError, State, page, parse_form, see_other, single, with_cookie};
use crate::html::{self, DevMail};

pub(super) async fn mail(state: State) -> Answer {
    let Some(capture) = state.dev_mail.as_ref() else {
        return Err(PageError::not_found());
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
    Ok(page(StatusCode::OK, html::dev_mail(&messages)))
}

/// `GET /dev/faults`: the capture server's fault switches (development
/// only, like `/dev/mail`): make it refuse a sender at `MAIL FROM` or a
/// recipient at `RCPT TO`, to see a failure on the operator timeline.
pub(super) async fn faults(state: State, headers: HeaderMap) -> Answer {
    if state.dev_mail.is_none() {
        return Err(PageError::not_found());
    }
    let csrf = state.pages.csrf().token(&headers);
    let senders: Vec<String> = state
        .service
        .candidate_senders()
        .iter()
        .map(|m| m.address().to_owned())
        .collect();
    let active = lock(&state.faults).clone();
    Ok(with_cookie(
        page(StatusCode::OK, html::dev_faults(&csrf.value, &senders, &active)),
        csrf.set_cookie,
    ))
}

/// `POST /dev/faults` (`action` = `refuse_sender` | `refuse_recipient` |
/// `clear`, `address`).
pub(super) async fn faults_submit(state: State, headers: HeaderMap, body: Bytes) -> Answer {
    let Some(capture) = state.dev_mail.clone() else {
        return Err(PageError::not_found());
    };
    let form = parse_form(&headers, &body)?;
    if !state.pages.csrf().verify(&headers, form.get("csrf_token")) {
        return Err(PageError::csrf());
    }
    let action = single(&form, "action")?;
    if action == "clear" {
        capture.clear_rules();
        lock(&state.faults).clear();
        return Ok(see_other("/dev/faults"));
    }
    let address = single(&form, "address")?.trim().to_owned();
    if resetkit::mail::Mailbox::address_only(&address).is_err() {
        return Err(PageError::refused(
            StatusCode::BAD_REQUEST,
            "Type one email address.",
        ));
    }
    let (rule, text) = match action {
        "refuse_sender" => (
            FaultRule::reply(
                Stage::MailFrom,
                550,
                Some("5.7.1"),
                "sender not authorised to send",
            )
            .sender(&address),
            format!("MAIL FROM <{address}> is refused with 550 5.7.1"),
        ),
        "refuse_recipient" => (
            FaultRule::reply(Stage::RcptTo, 550, Some("5.1.1"), "mailbox unavailable").recipient(&address),
            format!("RCPT TO <{address}> is refused with 550 5.1.1"),
        ),
        _ => {
            return Err(PageError::refused(
                StatusCode::BAD_REQUEST,
                "`action` must be refuse_sender, refuse_recipient or clear.",
            ));
        }
    };
    capture.add_rule(rule);
    lock(&state.faults).push(text);
    Ok(see_other("/dev/faults"))
}

/// Refuses (421) a request whose `Host` is not a loopback name or address.
pub(super) async fn loopback_host_only(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !resetkit_harness::inbox::loopback_host(host) {
        return page(
            StatusCode::MISDIRECTED_REQUEST,
            html::error(
                "Not here",
                "The development mail pages answer only to a loopback host name (localhost, 127.0.0.1, [::1]).",
            ),
        );
    }
    next.run(request).await
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
