//! Event kinds to and from (name, JSON detail) for the `events` table.

use std::time::{Duration, SystemTime};

use resetkit::event::{EventKind, FAILURE_CLASSES, IgnoreReason, RateScope};
use resetkit::mail::{EmailKind, SmtpReply};
use resetkit::token::{RejectReason, RevokeReason};
use serde_json::{Value, json};

fn revoke_name(r: RevokeReason) -> &'static str {
    r.as_str()
}

fn reject_from(text: &str) -> Option<RejectReason> {
    Some(match text {
        "malformed" => RejectReason::Malformed,
        "unknown" => RejectReason::Unknown,
        "expired" => RejectReason::Expired,
        "already_used" => RejectReason::AlreadyUsed,
        "superseded" => RejectReason::Revoked(RevokeReason::Superseded),
        "revoked_after_reset" => RejectReason::Revoked(RevokeReason::PasswordReset),
        "revoked_by_user" => RejectReason::Revoked(RevokeReason::UserDenied),
        "email_changed" => RejectReason::EmailChanged,
        "password_changed" => RejectReason::PasswordChanged,
        "account_disabled" => RejectReason::AccountDisabled,
        "account_gone" => RejectReason::AccountGone,
        _ => return None,
    })
}

fn ignore_from(text: &str) -> Option<IgnoreReason> {
    Some(match text {
        "unknown_identifier" => IgnoreReason::UnknownIdentifier,
        "account_disabled" => IgnoreReason::AccountDisabled,
        "email_unconfirmed" => IgnoreReason::EmailUnconfirmed,
        "no_email_address" => IgnoreReason::NoEmailAddress,
        _ => return None,
    })
}

/// The static class name stored as `text` (`unknown` when not one of them).
fn class_from(text: &str) -> &'static str {
    FAILURE_CLASSES
        .iter()
        .find(|c| **c == text)
        .copied()
        .unwrap_or("unknown")
}

fn scope_name(s: RateScope) -> &'static str {
    match s {
        RateScope::Client => "client",
        _ => "account",
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The stored name and detail of `kind`.
pub(crate) fn encode(kind: &EventKind) -> (&'static str, Value) {
    let detail = match kind {
        EventKind::ResetRequested { via, client } => json!({ "via": via, "client": client }),
        EventKind::RequestIgnored { reason, fingerprint } => {
            json!({ "reason": reason.as_str(), "fingerprint": fingerprint })
        }
        EventKind::RateLimited { scope, client, count } => {
            json!({ "scope": scope_name(*scope), "client": client, "count": count })
        }
        EventKind::TokenIssued { expires_at } => json!({ "expires_at_unix_nanos": nanos(*expires_at) }),
        EventKind::EmailQueued {
            message_id,
            email,
            from,
            to,
            sender_strategy,
            sender_fallbacks,
        } => json!({
            "message_id": message_id, "email": email.as_str(), "from": from, "to": to,
            "sender_strategy": sender_strategy, "sender_fallbacks": sender_fallbacks,
        }),
        EventKind::EmailSent { message_id, from, to } => {
            json!({ "message_id": message_id, "from": from, "to": to })
        }
        EventKind::DeliveryFailed {
            message_id,
            reason,
            permanent,
            will_retry,
            from,
            class,
        } => json!({
            "message_id": message_id, "reason": reason, "permanent": permanent, "will_retry": will_retry,
            "from": from, "class": class,
        }),
        EventKind::SenderUnavailable { reason } | EventKind::PasswordRejected { reason } => {
            json!({ "reason": reason })
        }
        EventKind::SessionRevocationFailed { reason } => json!({ "reason": reason }),
        EventKind::TokenRejected { reason } => json!({ "reason": reason.as_str() }),
        EventKind::EmailDropped { message_id, reason } => {
            json!({ "message_id": message_id, "reason": reason.as_str() })
        }
        EventKind::RevokedDuringReset { reason } => json!({ "reason": revoke_name(*reason) }),
        EventKind::ResetCompleted => json!({}),
        EventKind::LinksRevoked { reason, count } => {
            json!({ "reason": revoke_name(*reason), "count": count })
        }
        EventKind::LinkOpened { expires_at } => json!({ "expires_at_unix_nanos": nanos(*expires_at) }),
        EventKind::ServerReplied {
            message_id,
            accepted,
            reply,
        } => json!({
            "message_id": message_id, "accepted": accepted, "code": reply.code,
            "enhanced": reply.enhanced, "text": reply.text,
        }),
        EventKind::LinkReissued { replaces, operator } => {
            json!({ "replaces": replaces, "operator": operator })
        }
        EventKind::RateLimitCleared { removed, operator } => {
            json!({ "removed": removed, "operator": operator })
        }
        _ => json!({}),
    };
    (kind.name(), detail)
}

fn text(v: &Value, field: &str) -> Result<String, String> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("field `{field}` missing or not text"))
}

fn opt_text(v: &Value, field: &str) -> Option<String> {
    v.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn flag(v: &Value, field: &str) -> Result<bool, String> {
    v.get(field)
        .and_then(Value::as_bool)
        .ok_or_else(|| format!("field `{field}` missing or not a boolean"))
}

fn parsed<T>(v: &Value, field: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, String> {
    let t = text(v, field)?;
    parse(&t).ok_or_else(|| format!("field `{field}` has unknown value `{t}`"))
}

/// Rebuilds an event kind from its stored name and detail.
pub(crate) fn decode(name: &str, v: &Value) -> Result<EventKind, String> {
    Ok(match name {
        "reset_requested" => EventKind::ResetRequested {
            via: parsed(v, "via", |t| match t {
                "email" => Some("email"),
                "username" => Some("username"),
                _ => None,
            })?,
            client: opt_text(v, "client"),
        },
        "request_ignored" => EventKind::RequestIgnored {
            reason: parsed(v, "reason", ignore_from)?,
            // Rows written before migration 4 had their clear-text
            // identifier erased and carry an empty fingerprint.
            fingerprint: opt_text(v, "fingerprint").unwrap_or_default(),
        },
        "rate_limited" => EventKind::RateLimited {
            scope: parsed(v, "scope", |t| match t {
                "account" => Some(RateScope::Account),
                "client" => Some(RateScope::Client),
                _ => None,
            })?,
            client: opt_text(v, "client"),
            // Rows from before counts were kept stand for one request.
            count: v.get("count").and_then(Value::as_u64).unwrap_or(1),
        },
        "token_issued" => EventKind::TokenIssued {
            expires_at: SystemTime::UNIX_EPOCH
                + Duration::from_nanos(
                    v.get("expires_at_unix_nanos")
                        .and_then(Value::as_u64)
                        .ok_or("field `expires_at_unix_nanos` missing")?,
                ),
        },
        "email_queued" => EventKind::EmailQueued {
            message_id: text(v, "message_id")?,
            email: parsed(v, "email", EmailKind::parse)?,
            from: text(v, "from")?,
            to: text(v, "to")?,
            sender_strategy: text(v, "sender_strategy")?,
            sender_fallbacks: v
                .get("sender_fallbacks")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
        },
        "email_sent" => EventKind::EmailSent {
            message_id: text(v, "message_id")?,
            from: text(v, "from")?,
            to: text(v, "to")?,
        },
        "delivery_failed" => EventKind::DeliveryFailed {
            message_id: text(v, "message_id")?,
            reason: text(v, "reason")?,
            permanent: flag(v, "permanent")?,
            will_retry: flag(v, "will_retry")?,
            // Both were added in migration 9's release: older rows lack them.
            from: opt_text(v, "from").unwrap_or_default(),
            class: class_from(v.get("class").and_then(Value::as_str).unwrap_or("unknown")),
        },
        "sender_unavailable" => EventKind::SenderUnavailable {
            reason: text(v, "reason")?,
        },
        "token_rejected" => EventKind::TokenRejected {
            reason: parsed(v, "reason", reject_from)?,
        },
        "password_rejected" => EventKind::PasswordRejected {
            reason: text(v, "reason")?,
        },
        "reset_completed" => EventKind::ResetCompleted,
        "links_revoked" => EventKind::LinksRevoked {
            reason: parsed(v, "reason", RevokeReason::parse)?,
            count: v
                .get("count")
                .and_then(Value::as_u64)
                .and_then(|c| usize::try_from(c).ok())
                .ok_or("field `count` missing")?,
        },
        "session_revocation_failed" => EventKind::SessionRevocationFailed {
            reason: text(v, "reason")?,
        },
        "revoked_during_reset" => EventKind::RevokedDuringReset {
            reason: parsed(v, "reason", RevokeReason::parse)?,
        },
        "email_dropped" => EventKind::EmailDropped {
            message_id: text(v, "message_id")?,
            reason: parsed(v, "reason", reject_from)?,
        },
        "link_opened" => EventKind::LinkOpened {
            expires_at: SystemTime::UNIX_EPOCH
                + Duration::from_nanos(
                    v.get("expires_at_unix_nanos")
                        .and_then(Value::as_u64)
                        .ok_or("field `expires_at_unix_nanos` missing")?,
                ),
        },
        "server_replied" => EventKind::ServerReplied {
            message_id: text(v, "message_id")?,
            accepted: flag(v, "accepted")?,
            reply: SmtpReply {
                code: v
                    .get("code")
                    .and_then(Value::as_u64)
                    .and_then(|c| u16::try_from(c).ok())
                    .ok_or("field `code` missing")?,
                enhanced: opt_text(v, "enhanced"),
                text: text(v, "text")?,
            },
        },
        "link_reissued" => EventKind::LinkReissued {
            replaces: opt_text(v, "replaces"),
            operator: text(v, "operator")?,
        },
        "rate_limit_cleared" => EventKind::RateLimitCleared {
            removed: v
                .get("removed")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("field `removed` missing")?,
            operator: text(v, "operator")?,
        },
        other => return Err(format!("unknown event kind `{other}`")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let kinds = vec![
            EventKind::ResetRequested {
                via: "username",
                client: Some("203.0.113.1".into()),
            },
            EventKind::RequestIgnored {
                reason: IgnoreReason::EmailUnconfirmed,
                fingerprint: "00ff".into(),
            },
            EventKind::RateLimited {
                scope: RateScope::Client,
                client: None,
                count: 7,
            },
            EventKind::TokenIssued {
                expires_at: SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123),
            },
            EventKind::EmailQueued {
                message_id: "<1@x>".into(),
                email: EmailKind::ResetCombined,
                from: "f@x".into(),
                to: "t@x".into(),
                sender_strategy: "owner".into(),
                sender_fallbacks: vec!["queue: nope".into()],
            },
            EventKind::EmailSent {
                message_id: "<1@x>".into(),
                from: "f@x".into(),
                to: "t@x".into(),
            },
            EventKind::DeliveryFailed {
                message_id: "<1@x>".into(),
                reason: "550".into(),
                permanent: true,
                will_retry: false,
                from: "f@x".into(),
                class: "sender_rejected",
            },
            EventKind::SenderUnavailable {
                reason: "none".into(),
            },
            EventKind::TokenRejected {
                reason: RejectReason::Revoked(RevokeReason::UserDenied),
            },
            EventKind::PasswordRejected {
                reason: "short".into(),
            },
            EventKind::ResetCompleted,
            EventKind::LinksRevoked {
                reason: RevokeReason::Superseded,
                count: 3,
            },
            EventKind::SessionRevocationFailed {
                reason: "hook".into(),
            },
            EventKind::EmailDropped {
                message_id: "<m@x>".into(),
                reason: RejectReason::Revoked(RevokeReason::Superseded),
            },
            EventKind::RevokedDuringReset {
                reason: RevokeReason::UserDenied,
            },
            EventKind::LinkOpened {
                expires_at: SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5),
            },
            EventKind::ServerReplied {
                message_id: "<m@x>".into(),
                accepted: false,
                reply: SmtpReply::new(550, Some("5.7.1"), "not authorised"),
            },
            EventKind::ServerReplied {
                message_id: "<m@x>".into(),
                accepted: true,
                reply: SmtpReply::new(250, None, "OK"),
            },
            EventKind::LinkReissued {
                replaces: Some("<m@x>".into()),
                operator: "ops".into(),
            },
            EventKind::LinkReissued {
                replaces: None,
                operator: "ops".into(),
            },
            EventKind::RateLimitCleared {
                removed: 3,
                operator: "ops".into(),
            },
        ];
        for kind in kinds {
            let (name, detail) = encode(&kind);
            assert_eq!(decode(name, &detail), Ok(kind));
        }
        assert!(decode("nope", &json!({})).is_err());
    }
}
