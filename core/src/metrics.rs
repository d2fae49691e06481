//! Prometheus metrics of the flow, on the Prometheus project's own client
//! (`prometheus-client`): no global registry, so each service (and each
//! test) counts on its own.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `resetkit_requests_total` | counter | `outcome`: `accepted`, `throttled`, `invalid`, `unavailable` (the answer to `request`) |
//! | `resetkit_requests_not_sent_total` | counter | `reason`: `throttled`, `unknown`, `disabled`, `other` (what processing found) |
//! | `resetkit_emails_total` | counter | `result`: `delivered`, `refused`, `deferred`, `dropped`, `not_prepared`; `reason`: `none`, `sender_rejected`, `recipient_rejected`, `message_rejected`, `transient`, `misconfigured`, `link_dead`, `not_prepared`; `reply_class`: `2xx`, `4xx`, `5xx`, `none` |
//! | `resetkit_links_opened_total` | counter | |
//! | `resetkit_resets_completed_total` | counter | |
//! | `resetkit_denied_total` | counter | ("this wasn't me") |
//! | `resetkit_queue_depth` | gauge | messages waiting (set by [`ResetMetrics::set_queue`] before each scrape) |
//! | `resetkit_queue_oldest_age_seconds` | gauge | age of the oldest waiting message |
//! | `resetkit_request_duration_seconds` | histogram | time `request` took to answer |
//! | `resetkit_request_to_delivery_seconds` | histogram | from the request's acceptance to the server's `250` |
//!
//! Every label value is one of the fixed words above: no account id, no
//! address, no token, no client address can reach a label.
//!
//! ```
//! use resetkit::metrics::ResetMetrics;
//! let metrics = ResetMetrics::new();
//! // ResetService::builder().metrics(metrics.clone()) ... then, in the host's handler:
//! let text = metrics.render();
//! assert!(text.contains("resetkit_links_opened_total 0"), "{text}");
//! assert!(text.ends_with("# EOF\n"));
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

use crate::error::StoreError;
use crate::event::{Event, EventKind, IgnoreReason};
use crate::store::EventLog;
use crate::token::RevokeReason;

/// The content type of [`ResetMetrics::render`]'s text (OpenMetrics, which
/// Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels1 = [(&'static str, &'static str); 1];
type Labels3 = [(&'static str, &'static str); 3];

struct Families {
    registry: Registry,
    requests: Family<Labels1, Counter>,
    not_sent: Family<Labels1, Counter>,
    emails: Family<Labels3, Counter>,
    links_opened: Counter,
    resets_completed: Counter,
    denied: Counter,
    queue_depth: Gauge,
    queue_oldest: Gauge<f64, AtomicU64>,
    request_duration: Histogram,
    request_to_delivery: Histogram,
}

/// The flow's metrics, with their own registry. Cheap to clone (clones
/// share the counters). Give it to
/// [`ResetServiceBuilder::metrics`](crate::ResetServiceBuilder::metrics);
/// serve [`render`](Self::render) behind the host's guard.
#[derive(Clone)]
pub struct ResetMetrics {
    inner: Arc<Families>,
}

impl std::fmt::Debug for ResetMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetMetrics").finish_non_exhaustive()
    }
}

impl Default for ResetMetrics {
    fn default() -> Self {
        ResetMetrics::new()
    }
}

/// The outcome of `request`, as the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestOutcome {
    /// Recorded in the inbox.
    Accepted,
    /// Refused by the per-client limit (answered like an accepted one).
    Throttled,
    /// Malformed input.
    Invalid,
    /// Could not be recorded (inbox full or down).
    Unavailable,
}

impl RequestOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestOutcome::Accepted => "accepted",
            RequestOutcome::Throttled => "throttled",
            RequestOutcome::Invalid => "invalid",
            RequestOutcome::Unavailable => "unavailable",
        }
    }
}

impl ResetMetrics {
    /// Fresh metrics in a registry of their own.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels1, Counter>::default();
        registry.register(
            "resetkit_requests",
            "Password reset requests by the answer given (accepted, throttled, invalid, unavailable)",
            requests.clone(),
        );
        let not_sent = Family::<Labels1, Counter>::default();
        registry.register(
            "resetkit_requests_not_sent",
            "Accounts asked for that got no email, by reason (throttled, unknown, disabled, other)",
            not_sent.clone(),
        );
        let emails = Family::<Labels3, Counter>::default();
        registry.register(
            "resetkit_emails",
            "Delivery attempts by result, failure reason and the SMTP reply class",
            emails.clone(),
        );
        let links_opened = Counter::default();
        registry.register(
            "resetkit_links_opened",
            "Reset link pages loaded",
            links_opened.clone(),
        );
        let resets_completed = Counter::default();
        registry.register(
            "resetkit_resets_completed",
            "Passwords reset",
            resets_completed.clone(),
        );
        let denied = Counter::default();
        registry.register(
            "resetkit_denied",
            "\"This wasn't me\" answers that revoked links",
            denied.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "resetkit_queue_depth",
            "Emails waiting in the delivery queue (pending or being sent)",
            queue_depth.clone(),
        );
        let queue_oldest = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "resetkit_queue_oldest_age",
            "Age of the oldest email waiting in the delivery queue",
            Unit::Seconds,
            queue_oldest.clone(),
        );
        let request_duration = Histogram::new(exponential_buckets(0.000_1, 2.5, 12));
        registry.register_with_unit(
            "resetkit_request_duration",
            "Time the request step took to answer",
            Unit::Seconds,
            request_duration.clone(),
        );
        let request_to_delivery = Histogram::new(exponential_buckets(0.01, 2.5, 14));
        registry.register_with_unit(
            "resetkit_request_to_delivery",
            "Time from a request's acceptance to the mail server accepting its email",
            Unit::Seconds,
            request_to_delivery.clone(),
        );
        ResetMetrics {
            inner: Arc::new(Families {
                registry,
                requests,
                not_sent,
                emails,
                links_opened,
                resets_completed,
                denied,
                queue_depth,
                queue_oldest,
                request_duration,
                request_to_delivery,
            }),
        }
    }

    /// The metrics in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.inner.registry);
        text
    }

    /// Sets the queue gauges (call before [`render`](Self::render), e.g.
    /// with [`QueueAge`](crate::activity::QueueAge) readings).
    pub fn set_queue(&self, depth: usize, oldest_age: Option<Duration>) {
        self.inner
            .queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
        self.inner
            .queue_oldest
            .set(oldest_age.map_or(0.0, |d| d.as_secs_f64()));
    }

    /// Counts one answer of `request` and how long it took.
    pub(crate) fn request_answered(&self, outcome: RequestOutcome, took: Duration) {
        self.inner
            .requests
            .get_or_create(&[("outcome", outcome.as_str())])
            .inc();
        self.inner.request_duration.observe(took.as_secs_f64());
    }

    /// Observes a delivery's time since its request.
    pub(crate) fn delivered_after(&self, requested_at: Option<SystemTime>, now: SystemTime) {
        if let Some(took) = requested_at.and_then(|r| now.duration_since(r).ok()) {
            self.inner.request_to_delivery.observe(took.as_secs_f64());
        }
    }

    /// Counts what one flow step's events say (the events of one step come
    /// together: a failure's reply precedes it).
    pub(crate) fn count_events(&self, events: &[Event]) {
        let m = &self.inner;
        for (i, event) in events.iter().enumerate() {
            if let Some((n, at_the_door)) = crate::activity::throttled(&event.kind) {
                // At the door it was counted as `requests_total{outcome="throttled"}`.
                if !at_the_door {
                    m.not_sent.get_or_create(&[("reason", "throttled")]).inc_by(n);
                }
                continue;
            }
            match &event.kind {
                EventKind::RequestIgnored { reason, .. } => {
                    let reason = match reason {
                        IgnoreReason::UnknownIdentifier => "unknown",
                        IgnoreReason::AccountDisabled => "disabled",
                        _ => "other",
                    };
                    m.not_sent.get_or_create(&[("reason", reason)]).inc();
                }
                EventKind::SenderUnavailable { .. } => {
                    m.not_sent.get_or_create(&[("reason", "other")]).inc();
                }
                EventKind::EmailSent { message_id, .. } => {
                    let class = reply_class(events, i, message_id);
                    m.emails
                        .get_or_create(&[
                            ("result", "delivered"),
                            ("reason", "none"),
                            ("reply_class", class),
                        ])
                        .inc();
                }
                EventKind::DeliveryFailed {
                    message_id,
                    class,
                    will_retry,
                    ..
                } => {
                    let result = if *class == crate::event::NOT_PREPARED {
                        "not_prepared"
                    } else if *will_retry {
                        "deferred"
                    } else {
                        "refused"
                    };
                    let reply = reply_class(events, i, message_id);
                    m.emails
                        .get_or_create(&[("result", result), ("reason", class), ("reply_class", reply)])
                        .inc();
                }
                EventKind::EmailDropped { .. } => {
                    m.emails
                        .get_or_create(&[
                            ("result", "dropped"),
                            ("reason", "link_dead"),
                            ("reply_class", "none"),
                        ])
                        .inc();
                }
                EventKind::LinkOpened { .. } => {
                    m.links_opened.inc();
                }
                EventKind::ResetCompleted => {
                    m.resets_completed.inc();
                }
                EventKind::LinksRevoked {
                    reason: RevokeReason::UserDenied,
                    ..
                } => {
                    m.denied.inc();
                }
                _ => {}
            }
        }
    }
}

/// The class (`2xx`, `4xx`, `5xx`) of the server's reply recorded just
/// before `events[i]` for `message_id`, or `none`.
fn reply_class(events: &[Event], i: usize, message_id: &str) -> &'static str {
    let reply = events[..i].iter().rev().find_map(|e| match &e.kind {
        EventKind::ServerReplied {
            message_id: m, reply, ..
        } if m == message_id => Some(reply.code),
        _ => None,
    });
    match reply {
        Some(200..=299) => "2xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "none",
    }
}

/// An event log that counts what it records into [`ResetMetrics`] and
/// passes everything to the log it wraps (the service wraps its log in
/// one when given metrics).
pub(crate) struct MeteredEvents {
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) metrics: ResetMetrics,
}

#[async_trait]
impl EventLog for MeteredEvents {
    async fn record(&self, event: Event) -> Result<(), StoreError> {
        let counted = [event.clone()];
        self.log.record(event).await?;
        self.metrics.count_events(&counted);
        Ok(())
    }

    async fn record_all(&self, events: Vec<Event>) -> Result<(), StoreError> {
        let counted = events.clone();
        self.log.record_all(events).await?;
        self.metrics.count_events(&counted);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::SmtpReply;

    fn value(text: &str, line_start: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn a_refusal_counts_with_its_class_and_reply_class() {
        let m = ResetMetrics::new();
        let t = SystemTime::UNIX_EPOCH;
        m.count_events(&[
            Event::new(
                t,
                None,
                EventKind::ServerReplied {
                    message_id: "<1@x>".into(),
                    accepted: false,
                    reply: SmtpReply::new(550, Some("5.7.1"), "no"),
                },
            ),
            Event::new(
                t,
                None,
                EventKind::DeliveryFailed {
                    message_id: "<1@x>".into(),
                    reason: "sender <a@x> rejected".into(),
                    permanent: true,
                    will_retry: false,
                    from: "a@x".into(),
                    class: "sender_rejected",
                },
            ),
            Event::new(t, None, EventKind::ResetCompleted),
        ]);
        m.request_answered(RequestOutcome::Accepted, Duration::from_millis(1));
        let text = m.render();
        assert_eq!(
            value(
                &text,
                "resetkit_emails_total{result=\"refused\",reason=\"sender_rejected\",reply_class=\"5xx\"}"
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(value(&text, "resetkit_resets_completed_total"), Some(1.0));
        assert_eq!(
            value(&text, "resetkit_requests_total{outcome=\"accepted\"}"),
            Some(1.0)
        );
        assert_eq!(value(&text, "resetkit_request_duration_seconds_count"), Some(1.0));
        assert!(!text.contains("a@x"), "no address in the metrics");
    }
}
