//! An event as a timeline row: a short label, a sentence of detail and a
//! tone. Events never hold a token, a link or a password, and nothing here
//! adds one.

use std::time::{SystemTime, UNIX_EPOCH};

use resetkit::event::{EventKind, IgnoreReason, RateScope};
use resetkit::token::{RejectReason, RevokeReason};

/// One row of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) label: String,
    pub(crate) detail: String,
    /// `good`, `bad`, `warn` or `` (neutral): the CSS class of the label.
    pub(crate) tone: &'static str,
}

fn row(label: impl Into<String>, detail: impl Into<String>, tone: &'static str) -> Row {
    Row {
        label: label.into(),
        detail: detail.into(),
        tone,
    }
}

/// `2026-12-01 01:40:53` (UTC).
pub(crate) fn utc(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn ignore_text(reason: IgnoreReason) -> &'static str {
    match reason {
        IgnoreReason::AccountDisabled => "the account is disabled",
        IgnoreReason::EmailUnconfirmed => "the account's email address is not confirmed",
        IgnoreReason::NoEmailAddress => "the account has no email address",
        IgnoreReason::UnknownIdentifier => "no account matches",
        _ => "not eligible",
    }
}

fn strategy_text(strategy: &str) -> String {
    match strategy {
        "fixed" => "the configured fixed sender".into(),
        "owner" => "the account owner's mailbox".into(),
        "queue" => "the shared queue mailbox".into(),
        other => format!("strategy `{other}`"),
    }
}

fn revoke_text(reason: RevokeReason) -> String {
    match reason {
        RevokeReason::Superseded => "superseded by a newer link".into(),
        RevokeReason::PasswordReset => "the password was reset".into(),
        RevokeReason::UserDenied => "\"this wasn't me\"".into(),
        other => other.as_str().replace('_', " "),
    }
}

fn reject_label(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::Expired => "link expired",
        RejectReason::AlreadyUsed => "link already used",
        RejectReason::Revoked(_) => "revoked link used",
        _ => "link refused",
    }
}

/// The row for one event.
pub(crate) fn describe(kind: &EventKind) -> Row {
    match kind {
        EventKind::ResetRequested { via, client } => row(
            "requested",
            format!(
                "by {via}, from {}",
                client.as_deref().unwrap_or("an unknown client address")
            ),
            "",
        ),
        EventKind::RequestIgnored { reason, .. } => {
            row("ignored", format!("no email: {}", ignore_text(*reason)), "warn")
        }
        EventKind::RateLimited { scope, client, count } => {
            let which = match scope {
                RateScope::Client => format!(
                    "the per-client limit ({})",
                    client.as_deref().unwrap_or("unknown client")
                ),
                _ => "the per-account limit".to_owned(),
            };
            let text = if *count > 1 {
                format!("no email: {which} refused {count} more requests in its window")
            } else {
                format!("no email: {which} was reached")
            };
            row("rate limited", text, "warn")
        }
        EventKind::TokenIssued { expires_at } => {
            row("link issued", format!("valid until {} UTC", utc(*expires_at)), "")
        }
        EventKind::EmailQueued {
            message_id,
            email,
            from,
            to,
            sender_strategy,
            sender_fallbacks,
        } => {
            let mut detail = format!("From {from}: {}", strategy_text(sender_strategy));
            if !sender_fallbacks.is_empty() {
                detail.push_str(&format!(", as a fallback after: {}", sender_fallbacks.join("; ")));
            }
            detail.push_str(&format!(". {} email to {to}, {message_id}", email.as_str()));
            let tone = if sender_fallbacks.is_empty() { "" } else { "warn" };
            row("sender resolved", detail, tone)
        }
        EventKind::EmailSent { message_id, from, to } => row(
            "delivered",
            format!("the mail server accepted {message_id} from {from} to {to}"),
            "good",
        ),
        EventKind::ServerReplied {
            message_id,
            accepted,
            reply,
        } => row(
            format!("SMTP {}", reply.code),
            format!(
                "{}: {reply} ({message_id})",
                if *accepted { "accepted" } else { "refused" }
            ),
            if *accepted { "good" } else { "bad" },
        ),
        EventKind::DeliveryFailed {
            reason,
            permanent,
            will_retry,
            ..
        } => {
            let next = if *will_retry {
                "a retry is scheduled"
            } else if *permanent {
                "permanent: this message is not retried as is"
            } else {
                "not retried"
            };
            row("delivery failed", format!("{reason}; {next}"), "bad")
        }
        EventKind::SenderUnavailable { reason } => row("no sender", reason.clone(), "bad"),
        EventKind::TokenRejected { reason } => row(
            reject_label(*reason),
            format!("a link was refused: {reason}"),
            "warn",
        ),
        EventKind::PasswordRejected { reason } => row("password refused", reason.clone(), "warn"),
        EventKind::ResetCompleted => row("password changed", "the reset was completed", "good"),
        EventKind::LinksRevoked { reason, count } => {
            let label = if *reason == RevokeReason::UserDenied {
                "denied"
            } else {
                "links revoked"
            };
            row(label, format!("{count} link(s): {}", revoke_text(*reason)), "")
        }
        EventKind::SessionRevocationFailed { reason } => row("sessions not revoked", reason.clone(), "bad"),
        EventKind::RevokedDuringReset { reason } => row(
            "revoked during reset",
            format!(
                "the link was revoked while the password was being stored: {}",
                revoke_text(*reason)
            ),
            "warn",
        ),
        EventKind::EmailDropped { message_id, reason } => row(
            "email not sent",
            format!("{message_id}: its link died while it waited ({reason})"),
            "warn",
        ),
        EventKind::LinkOpened { .. } => row(
            "link opened",
            "the reset page was loaded (by the user, or a mail scanner)",
            "",
        ),
        EventKind::LinkReissued { replaces, operator } => row(
            "fresh link sent",
            match replaces {
                Some(id) => format!("by operator {operator}, in place of {id}"),
                None => format!("by operator {operator}"),
            },
            "",
        ),
        EventKind::RateLimitCleared { removed, operator } => row(
            "rate limit cleared",
            format!("by operator {operator} ({removed} recorded request(s) forgotten)"),
            "",
        ),
        other => row(other.name().replace('_', " "), "", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00");
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(1_796_089_253)),
            "2026-12-01 01:40:53"
        );
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29 00:00:00"
        );
    }
}
