//! Events as one plain line each, for people: `token_issued expires_at=2026-12-01T02:10:00Z`
//! rather than Rust `Debug` output.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use resetkit::event::{Event, EventKind};
//!
//! let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
//! let event = Event::new(at, None, EventKind::TokenIssued { expires_at: at });
//! assert_eq!(resetkit_harness::event_text::line(&event), "[-] token_issued expires_at=2026-01-01T00:00:00Z");
//! ```

use std::fmt::Write as _;
use std::time::SystemTime;

use resetkit::event::{Event, EventKind, RateScope};

/// A time as RFC 3339 UTC, to the second.
pub fn time(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `[account] name key=value ...`.
pub fn line(event: &Event) -> String {
    let who = event
        .account
        .as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string);
    format!("[{who}] {}", kind(&event.kind))
}

fn quoted(value: &str) -> String {
    if !value.is_empty() && !value.contains([' ', '"', '=', '\n', '\r', '\t']) {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

/// The event's name and fields, `key=value` separated by spaces.
pub fn kind(kind: &EventKind) -> String {
    let mut out = kind.name().to_owned();
    let mut field = |key: &str, value: &str| {
        let _ = write!(out, " {key}={}", quoted(value));
    };
    match kind {
        EventKind::ResetRequested { via, client } => {
            field("via", via);
            if let Some(client) = client {
                field("client", client);
            }
        }
        EventKind::RequestIgnored { reason, fingerprint } => {
            field("reason", reason.as_str());
            field("fingerprint", fingerprint);
        }
        EventKind::RateLimited { scope, client, count } => {
            let scope = match scope {
                RateScope::Account => "account",
                RateScope::Client => "client",
                _ => "other",
            };
            field("scope", scope);
            if let Some(client) = client {
                field("client", client);
            }
            field("count", &count.to_string());
        }
        EventKind::TokenIssued { expires_at } => field("expires_at", &time(*expires_at)),
        EventKind::EmailQueued {
            message_id,
            email,
            from,
            to,
            sender_strategy,
            sender_fallbacks,
        } => {
            field("email", email.as_str());
            field("from", from);
            field("to", to);
            field("sender_strategy", sender_strategy);
            if !sender_fallbacks.is_empty() {
                field("fallbacks", &sender_fallbacks.join("; "));
            }
            field("message_id", message_id);
        }
        EventKind::EmailSent { message_id, from, to } => {
            field("from", from);
            field("to", to);
            field("message_id", message_id);
        }
        EventKind::DeliveryFailed {
            message_id,
            reason,
            permanent,
            will_retry,
            from,
            class,
        } => {
            field("class", class);
            field("from", from);
            field("permanent", &permanent.to_string());
            field("will_retry", &will_retry.to_string());
            field("reason", reason);
            field("message_id", message_id);
        }
        EventKind::SenderUnavailable { reason }
        | EventKind::PasswordRejected { reason }
        | EventKind::SessionRevocationFailed { reason } => field("reason", reason),
        EventKind::TokenRejected { reason } => field("reason", reason.as_str()),
        EventKind::ResetCompleted => {}
        EventKind::LinksRevoked { reason, count } => {
            field("reason", reason.as_str());
            field("count", &count.to_string());
        }
        EventKind::RevokedDuringReset { reason } => field("reason", reason.as_str()),
        EventKind::EmailDropped { message_id, reason } => {
            field("reason", reason.as_str());
            field("message_id", message_id);
        }
        // A kind this harness does not know yet: its name is still plain.
        _ => {}
    }
    out
}
