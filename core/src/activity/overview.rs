//! [`Overview`]: the numbers of the console's landing page, from an
//! [`ActivityLog`] and a [`QueueAge`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::{Activity, ActivityLog, Bucket, QueueAge, minute_of};
use crate::error::StoreError;
use crate::event::{Event, EventKind};

/// Counts by [`Activity`] over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally(BTreeMap<Activity, u64>);

impl Tally {
    /// How many of `activity`.
    pub fn get(&self, activity: Activity) -> u64 {
        self.0.get(&activity).copied().unwrap_or(0)
    }

    /// Adds `n` of `activity`.
    pub fn add(&mut self, activity: Activity, n: u64) {
        let slot = self.0.entry(activity).or_insert(0);
        *slot = slot.saturating_add(n);
    }

    /// Every refusal or failure of a delivery attempt.
    pub fn refused(&self) -> u64 {
        self.0
            .iter()
            .filter(|(a, _)| a.is_refusal())
            .map(|(_, n)| *n)
            .sum()
    }
}

/// One hour of the chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourBar {
    /// The hour's start.
    pub hour: SystemTime,
    /// Emails the server accepted.
    pub delivered: u64,
    /// Delivery attempts refused or failed.
    pub refused: u64,
}

/// A sender's latest delivery result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderResult {
    /// The From address.
    pub sender: String,
    /// When.
    pub at: SystemTime,
    /// Whether the server accepted the email.
    pub accepted: bool,
    /// The server's reply (`250 2.0.0 Ok`, `550 5.7.1 …`), or the
    /// failure's reason when no reply was recorded.
    pub reply: String,
    /// The failure's class ([`EventKind::DeliveryFailed::class`]), when refused.
    pub class: Option<&'static str>,
}

/// A sender the mail server keeps refusing: refusals in the alert window
/// and no delivery from it since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderAlert {
    /// The From address.
    pub sender: String,
    /// Refusals in the window.
    pub refusals: u64,
    /// The first refusal in the window.
    pub since: SystemTime,
    /// The latest reply (or reason).
    pub reply: String,
    /// The latest refusal's class.
    pub class: &'static str,
    /// Its latest delivery among the results read, if any.
    pub last_delivered: Option<SystemTime>,
}

/// How much waits in the delivery queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueState {
    /// Messages pending or being sent.
    pub depth: usize,
    /// When the oldest of them was queued.
    pub oldest: Option<SystemTime>,
}

/// Everything the overview page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    /// When it was computed.
    pub now: SystemTime,
    /// The last 60 minutes (by minute: the current minute and the 59
    /// before).
    pub last_hour: Tally,
    /// The last 24 hours (by hour: the current hour and the 23 before, the
    /// bars of [`hours`](Self::hours)).
    pub last_day: Tally,
    /// 24 hourly bars, oldest first; the last one is the current hour.
    pub hours: Vec<HourBar>,
    /// The queue, when the outbox can tell (outbox delivery).
    pub queue: Option<QueueState>,
    /// Each sender's latest result, most recent first.
    pub senders: Vec<SenderResult>,
    /// Senders being refused now.
    pub alerts: Vec<SenderAlert>,
}

/// The window in which refusals without a delivery raise an alert.
pub const ALERT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Delivery results [`Overview::load`] reads for the senders' lines and
/// the alerts (newest first, from the last 24 hours).
pub const DELIVERY_RESULTS_READ: usize = 1000;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

impl Overview {
    /// Reads the counts of the last 24 hours, the newest delivery results
    /// and the queue, as of `now`.
    pub async fn load(
        log: &dyn ActivityLog,
        queue: Option<&dyn QueueAge>,
        now: SystemTime,
    ) -> Result<Overview, StoreError> {
        let this_hour = Bucket::Hour.start_of(now);
        let first_hour = this_hour
            .checked_sub(DAY - HOUR)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let day_ago = now.checked_sub(DAY).unwrap_or(SystemTime::UNIX_EPOCH);
        let this_minute = minute_of(now);
        let first_minute = this_minute
            .checked_sub(HOUR - Bucket::Minute.length())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let minutes = log
            .activity(
                Bucket::Minute,
                first_minute,
                this_minute + Bucket::Minute.length(),
            )
            .await?;
        let mut last_hour = Tally::default();
        for c in &minutes {
            last_hour.add(c.activity, c.count);
        }
        let counts = log.activity(Bucket::Hour, first_hour, this_hour + HOUR).await?;
        let mut last_day = Tally::default();
        let mut hours: Vec<HourBar> = (0..24u32)
            .map(|i| HourBar {
                hour: first_hour + HOUR * i,
                delivered: 0,
                refused: 0,
            })
            .collect();
        for c in &counts {
            last_day.add(c.activity, c.count);
            let index = c
                .start
                .duration_since(first_hour)
                .ok()
                .map(|d| d.as_secs() / 3600)
                .and_then(|i| usize::try_from(i).ok());
            if let Some(bar) = index.and_then(|i| hours.get_mut(i)) {
                if c.activity == Activity::Delivered {
                    bar.delivered += c.count;
                } else if c.activity.is_refusal() {
                    bar.refused += c.count;
                }
            }
        }
        let results = log.deliveries(day_ago, DELIVERY_RESULTS_READ).await?;
        let (senders, alerts) = senders_and_alerts(&results, now);
        let queue = match queue {
            Some(q) => Some(QueueState {
                depth: q.counts().await?.waiting,
                oldest: q.oldest_waiting().await?,
            }),
            None => None,
        };
        Ok(Overview {
            now,
            last_hour,
            last_day,
            hours,
            queue,
            senders,
            alerts,
        })
    }
}

/// Each sender's latest result and the senders refused in the alert
/// window with no delivery since, from delivery results newest first.
fn senders_and_alerts(results: &[Event], now: SystemTime) -> (Vec<SenderResult>, Vec<SenderAlert>) {
    // The server's reply to each message's latest attempt.
    let mut replies: BTreeMap<&str, String> = BTreeMap::new();
    for e in results {
        if let EventKind::ServerReplied {
            message_id, reply, ..
        } = &e.kind
        {
            replies
                .entry(message_id.as_str())
                .or_insert_with(|| reply.to_string());
        }
    }
    let window_start = now.checked_sub(ALERT_WINDOW).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut senders: Vec<SenderResult> = Vec::new();
    let mut alerts: BTreeMap<&str, SenderAlert> = BTreeMap::new();
    // Senders seen delivering (newer results come first): refusals older
    // than a delivery do not count towards an alert.
    let mut delivered: BTreeMap<&str, SystemTime> = BTreeMap::new();
    for e in results {
        let (sender, accepted, reply, class) = match &e.kind {
            EventKind::EmailSent { message_id, from, .. } => (
                from.as_str(),
                true,
                replies
                    .get(message_id.as_str())
                    .cloned()
                    .unwrap_or_else(|| "accepted".to_owned()),
                None,
            ),
            EventKind::DeliveryFailed {
                message_id,
                reason,
                from,
                class,
                ..
            } if !from.is_empty() => (
                from.as_str(),
                false,
                replies
                    .get(message_id.as_str())
                    .cloned()
                    .unwrap_or_else(|| reason.clone()),
                Some(*class),
            ),
            _ => continue,
        };
        if !senders.iter().any(|s| s.sender == sender) {
            senders.push(SenderResult {
                sender: sender.to_owned(),
                at: e.at,
                accepted,
                reply: reply.clone(),
                class,
            });
        }
        if accepted {
            delivered.entry(sender).or_insert(e.at);
            continue;
        }
        if e.at < window_start || delivered.contains_key(sender) {
            continue;
        }
        let alert = alerts.entry(sender).or_insert_with(|| SenderAlert {
            sender: sender.to_owned(),
            refusals: 0,
            since: e.at,
            reply,
            class: class.unwrap_or("unknown"),
            last_delivered: None,
        });
        alert.refusals += 1;
        alert.since = e.at;
    }
    let mut alerts: Vec<SenderAlert> = alerts
        .into_values()
        .map(|mut a| {
            a.last_delivered = delivered.get(a.sender.as_str()).copied();
            a
        })
        .collect();
    alerts.sort_by(|a, b| b.refusals.cmp(&a.refusals).then_with(|| a.sender.cmp(&b.sender)));
    (senders, alerts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::SmtpReply;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn sent(t: u64, from: &str) -> Event {
        Event::new(
            at(t),
            None,
            EventKind::EmailSent {
                message_id: format!("<{t}@x>"),
                from: from.into(),
                to: "u@x".into(),
            },
        )
    }

    fn refused(t: u64, from: &str) -> Vec<Event> {
        vec![
            Event::new(
                at(t),
                None,
                EventKind::DeliveryFailed {
                    message_id: format!("<{t}@x>"),
                    reason: format!("sender <{from}> rejected"),
                    permanent: true,
                    will_retry: false,
                    from: from.into(),
                    class: "sender_rejected",
                },
            ),
            Event::new(
                at(t),
                None,
                EventKind::ServerReplied {
                    message_id: format!("<{t}@x>"),
                    accepted: false,
                    reply: SmtpReply::new(550, Some("5.7.1"), "not allowed"),
                },
            ),
        ]
    }

    #[test]
    fn refusals_without_a_delivery_since_raise_an_alert_naming_sender_and_reply() {
        let now = at(3600);
        // Newest first: three refusals of noreply after a delivery of
        // support; an older delivery of noreply before the window.
        let mut results = Vec::new();
        results.extend(refused(3500, "noreply@x"));
        results.push(sent(3450, "support@x"));
        results.extend(refused(3400, "noreply@x"));
        results.extend(refused(3300, "noreply@x"));
        results.push(sent(100, "noreply@x"));
        let (senders, alerts) = senders_and_alerts(&results, now);
        assert_eq!(senders.len(), 2);
        assert_eq!(senders[0].sender, "noreply@x");
        assert!(!senders[0].accepted);
        assert_eq!(senders[0].reply, "550 5.7.1 not allowed");
        assert!(senders[1].accepted);
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0];
        assert_eq!((alert.sender.as_str(), alert.refusals), ("noreply@x", 3));
        assert_eq!(alert.since, at(3300));
        assert_eq!(alert.last_delivered, Some(at(100)));
        assert_eq!(alert.reply, "550 5.7.1 not allowed");
    }

    #[test]
    fn a_delivery_after_the_refusals_clears_the_alert() {
        let now = at(3600);
        let mut results = vec![sent(3550, "noreply@x")];
        results.extend(refused(3500, "noreply@x"));
        let (_, alerts) = senders_and_alerts(&results, now);
        assert!(alerts.is_empty(), "{alerts:?}");
        let old = refused(100, "noreply@x");
        let (_, alerts) = senders_and_alerts(&old, now);
        assert!(alerts.is_empty(), "refusals before the window: {alerts:?}");
    }
}
