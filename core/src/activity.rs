//! Fleet-wide activity: "are reset emails failing right now?" for the
//! operator's overview.
//!
//! Every recorded event counts towards at most two [`Activity`] kinds
//! ([`counted`]). An event log that can answer counts per minute and per
//! hour from rollups (not by reading the events) and the newest delivery results
//! implements [`ActivityLog`]; an outbox that can tell its oldest waiting
//! message implements [`QueueAge`]. Both are optional capabilities built
//! on the core traits: the console's overview asks for them in its types.
//! [`Overview::load`] turns them into the numbers the page shows.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::time::{Duration, SystemTime};
//! use resetkit::activity::{Activity, Overview};
//! use resetkit::event::{Event, EventKind};
//! use resetkit::memory::{InMemoryEventLog, InMemoryOutbox};
//! use resetkit::store::EventLog;
//!
//! let log = InMemoryEventLog::default();
//! let now = SystemTime::now();
//! log.record(Event::new(now, None, EventKind::ResetCompleted)).await.unwrap();
//! let overview = Overview::load(&log, Some(&InMemoryOutbox::default()), now).await.unwrap();
//! assert_eq!(overview.last_hour.get(Activity::ResetCompleted), 1);
//! assert!(overview.alerts.is_empty());
//! # });
//! ```

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::StoreError;
use crate::event::{Event, EventKind, IgnoreReason, RateScope};
use crate::store::{EventLog, Outbox};
use crate::token::RevokeReason;

/// What the overview counts. Stable names ([`Activity::as_str`]) are what
/// stores keep in their rollups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Activity {
    /// A reset was asked for: per account matched, per unknown
    /// identifier, per request throttled at the door.
    Requested,
    /// An email was queued (or sent inline), fallbacks included.
    EmailQueued,
    /// The mail server accepted an email.
    Delivered,
    /// Refused: the server would not take the sender (MAIL FROM).
    RefusedSender,
    /// Refused: the server would not take the recipient (RCPT TO).
    RefusedRecipient,
    /// Refused: the server would not take the message (DATA).
    RefusedMessage,
    /// Not delivered this time: 4xx, connection refused or dropped, timeout.
    Transient,
    /// Not delivered: the mailer's TLS, authentication or settings.
    Misconfigured,
    /// Not sent: a rate limit (per client or per account).
    Throttled,
    /// Not sent: no account matches.
    Unknown,
    /// Not sent: the account is disabled.
    Disabled,
    /// Not sent for another reason: no confirmed address, no sender
    /// allowed, the email could not be built, or its link died while it
    /// waited in the queue.
    NotSentOther,
    /// A reset link's page was loaded.
    LinkOpened,
    /// A link was refused (expired, used, revoked, unknown).
    LinkRejected,
    /// A password was reset.
    ResetCompleted,
    /// The owner answered "this wasn't me".
    Denied,
}

impl Activity {
    /// Every kind, in the overview's order.
    pub const ALL: [Activity; 16] = [
        Activity::Requested,
        Activity::EmailQueued,
        Activity::Delivered,
        Activity::RefusedSender,
        Activity::RefusedRecipient,
        Activity::RefusedMessage,
        Activity::Transient,
        Activity::Misconfigured,
        Activity::Throttled,
        Activity::Unknown,
        Activity::Disabled,
        Activity::NotSentOther,
        Activity::LinkOpened,
        Activity::LinkRejected,
        Activity::ResetCompleted,
        Activity::Denied,
    ];

    /// Stable snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Requested => "requested",
            Activity::EmailQueued => "email_queued",
            Activity::Delivered => "delivered",
            Activity::RefusedSender => "refused_sender",
            Activity::RefusedRecipient => "refused_recipient",
            Activity::RefusedMessage => "refused_message",
            Activity::Transient => "transient",
            Activity::Misconfigured => "misconfigured",
            Activity::Throttled => "throttled",
            Activity::Unknown => "unknown",
            Activity::Disabled => "disabled",
            Activity::NotSentOther => "not_sent_other",
            Activity::LinkOpened => "link_opened",
            Activity::LinkRejected => "link_rejected",
            Activity::ResetCompleted => "reset_completed",
            Activity::Denied => "denied",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(text: &str) -> Option<Activity> {
        Activity::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// Whether it is a refusal or failure of a delivery attempt (what the
    /// chart draws as "refused").
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            Activity::RefusedSender
                | Activity::RefusedRecipient
                | Activity::RefusedMessage
                | Activity::Transient
                | Activity::Misconfigured
        )
    }
}

/// How many requests a throttling event stands for, and whether it was
/// throttled at the door (per client: no other event records that
/// request). The one place that reads throttling events for counts (the
/// overview's and the metrics'). A window's first refusal is an event of
/// its own (`count` 1); the rest of the window arrive as one event with
/// their count when the window has passed (see `flow::throttle`), and are
/// counted at that time.
pub(crate) fn throttled(kind: &EventKind) -> Option<(u64, bool)> {
    match kind {
        EventKind::RateLimited { scope, count, .. } => Some((*count, *scope == RateScope::Client)),
        _ => None,
    }
}

/// The activity kind of a failed delivery's class.
fn refusal(class: &str) -> Activity {
    match class {
        "sender_rejected" => Activity::RefusedSender,
        "recipient_rejected" => Activity::RefusedRecipient,
        "message_rejected" => Activity::RefusedMessage,
        "transient" => Activity::Transient,
        "misconfigured" => Activity::Misconfigured,
        _ => Activity::NotSentOther,
    }
}

/// What `kind` counts towards, with how much: at most two kinds (a request
/// throttled at the door is both requested and throttled).
pub fn counted(kind: &EventKind) -> Vec<(Activity, u64)> {
    if let Some((n, at_the_door)) = throttled(kind) {
        return if at_the_door {
            vec![(Activity::Requested, n), (Activity::Throttled, n)]
        } else {
            vec![(Activity::Throttled, n)]
        };
    }
    let one = match kind {
        EventKind::ResetRequested { .. } => Activity::Requested,
        EventKind::RequestIgnored {
            reason: IgnoreReason::UnknownIdentifier,
            ..
        } => return vec![(Activity::Requested, 1), (Activity::Unknown, 1)],
        EventKind::RequestIgnored {
            reason: IgnoreReason::AccountDisabled,
            ..
        } => Activity::Disabled,
        EventKind::RequestIgnored { .. }
        | EventKind::SenderUnavailable { .. }
        | EventKind::EmailDropped { .. } => Activity::NotSentOther,
        EventKind::EmailQueued { .. } => Activity::EmailQueued,
        EventKind::EmailSent { .. } => Activity::Delivered,
        EventKind::DeliveryFailed { class, .. } => refusal(class),
        EventKind::LinkOpened { .. } => Activity::LinkOpened,
        EventKind::TokenRejected { .. } => Activity::LinkRejected,
        EventKind::ResetCompleted => Activity::ResetCompleted,
        EventKind::LinksRevoked {
            reason: RevokeReason::UserDenied,
            ..
        } => Activity::Denied,
        _ => return Vec::new(),
    };
    vec![(one, 1)]
}

/// The start of the minute `at` falls in (UTC, like PostgreSQL's
/// `date_trunc('minute', …)`).
pub fn minute_of(at: SystemTime) -> SystemTime {
    Bucket::Minute.start_of(at)
}

/// How long the periods of [`ActivityLog::activity`] are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Bucket {
    /// Minutes (the last hour).
    Minute,
    /// Hours (the last day, the chart).
    Hour,
}

impl Bucket {
    /// Its length.
    pub fn length(self) -> Duration {
        match self {
            Bucket::Minute => Duration::from_secs(60),
            Bucket::Hour => Duration::from_secs(3600),
        }
    }

    /// The start of the period `at` falls in (UTC, whole periods since the
    /// Unix epoch).
    pub fn start_of(self, at: SystemTime) -> SystemTime {
        let secs = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let len = self.length().as_secs();
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs - secs % len)
    }
}

/// How many events of one kind happened in one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityCount {
    /// The period's start ([`Bucket::start_of`]).
    pub start: SystemTime,
    /// What.
    pub activity: Activity,
    /// How many.
    pub count: u64,
}

/// An event log that answers the overview's questions cheaply: counts from
/// per-minute and per-hour rollups kept as events are recorded (reading
/// them costs the same however many events there are), and the newest
/// delivery results from an index. Optional: the console's overview
/// requires it.
#[async_trait]
pub trait ActivityLog: EventLog {
    /// The non-zero counts per `bucket` and [`Activity`] for the periods
    /// starting in `[from, until)`, in any order.
    async fn activity(
        &self,
        bucket: Bucket,
        from: SystemTime,
        until: SystemTime,
    ) -> Result<Vec<ActivityCount>, StoreError>;

    /// The newest delivery results at or after `since`, newest first, at
    /// most `limit`: [`EventKind::EmailSent`], [`EventKind::DeliveryFailed`]
    /// and [`EventKind::ServerReplied`] events.
    async fn deliveries(&self, since: SystemTime, limit: usize) -> Result<Vec<Event>, StoreError>;
}

/// An outbox that tells how old its oldest waiting message is. Optional:
/// the overview's queue line and the queue-age gauge require it.
#[async_trait]
pub trait QueueAge: Outbox {
    /// When the oldest message still waiting (pending or claimed) was
    /// queued; `None` when nothing waits.
    async fn oldest_waiting(&self) -> Result<Option<SystemTime>, StoreError>;
}

mod overview;

pub use overview::{
    ALERT_WINDOW, DELIVERY_RESULTS_READ, HourBar, Overview, QueueState, SenderAlert, SenderResult, Tally,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back() {
        for a in Activity::ALL {
            assert_eq!(Activity::parse(a.as_str()), Some(a));
        }
        assert_eq!(Activity::parse("nope"), None);
    }

    #[test]
    fn a_request_throttled_at_the_door_counts_as_requested_and_throttled() {
        let door = EventKind::RateLimited {
            scope: RateScope::Client,
            client: None,
            count: 1,
        };
        assert_eq!(
            counted(&door),
            vec![(Activity::Requested, 1), (Activity::Throttled, 1)]
        );
        let account = EventKind::RateLimited {
            scope: RateScope::Account,
            client: None,
            count: 1,
        };
        assert_eq!(counted(&account), vec![(Activity::Throttled, 1)]);
        // A window's closing event stands for the rest of its refusals.
        let closing = EventKind::RateLimited {
            scope: RateScope::Client,
            client: None,
            count: 41,
        };
        assert_eq!(
            counted(&closing),
            vec![(Activity::Requested, 41), (Activity::Throttled, 41)]
        );
    }
}
