//! The overview, the console's landing page when the console has an
//! [`ActivityLog`](resetkit::activity::ActivityLog): counts of the last
//! hour and day, the queue, each sender's last result, an hourly chart
//! (inline SVG: no script, nothing loaded) and a banner when a sender is
//! being refused.

use std::time::SystemTime;

use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use resetkit::activity::{Activity, HourBar, Overview};

use super::timeline::utc;
use super::views::{Ctx, PageOut};
use crate::page::PageError;

/// Sections of the counts table, with each row's label.
const SECTIONS: [(&str, &[(Activity, &str)]); 5] = [
    (
        "Requests",
        &[
            (Activity::Requested, "Reset requests (per account asked for)"),
            (Activity::EmailQueued, "Emails queued"),
        ],
    ),
    (
        "Delivered",
        &[(Activity::Delivered, "Accepted by the mail server")],
    ),
    (
        "Refused by the server",
        &[
            (Activity::RefusedSender, "Sender refused (MAIL FROM)"),
            (Activity::RefusedRecipient, "Recipient refused (RCPT TO)"),
            (Activity::RefusedMessage, "Message refused (DATA)"),
            (Activity::Transient, "Temporary failure (retried)"),
            (Activity::Misconfigured, "Mailer setup (TLS, authentication)"),
        ],
    ),
    (
        "Not sent",
        &[
            (Activity::Throttled, "Throttled (per client or account)"),
            (Activity::Unknown, "No such account"),
            (Activity::Disabled, "Account disabled"),
            (
                Activity::NotSentOther,
                "Other (no confirmed address, no sender allowed, link died while queued)",
            ),
        ],
    ),
    (
        "Links",
        &[
            (Activity::LinkOpened, "Links opened"),
            (Activity::LinkRejected, "Links refused (expired, used, revoked)"),
            (Activity::ResetCompleted, "Passwords reset"),
            (Activity::Denied, "\u{201c}This wasn't me\u{201d}"),
        ],
    ),
];

/// Chart geometry (SVG user units).
const LEFT: u64 = 48;
const SLOT: u64 = 30;
const BAR: u64 = 12;
const PLOT: u64 = 140;
const TOP: u64 = 14;

/// Renders the overview (the landing page with an activity log).
pub(super) async fn page(ctx: &Ctx) -> Result<Response, PageError> {
    let Some(sources) = &ctx.site.overview else {
        return Err(PageError::unavailable(
            "The overview",
            &"no activity log configured",
        ));
    };
    let now = SystemTime::now();
    let overview = Overview::load(sources.activity.as_ref(), sources.queue.as_deref(), now)
        .await
        .map_err(|e| PageError::unavailable("Reading the activity counts", &e))?;
    Ok(ctx.render(PageOut {
        status: StatusCode::OK,
        name: "overview.html",
        title: "Overview",
        notice: None,
        ctx: overview_value(&overview),
    }))
}

fn age(now: SystemTime, then: SystemTime) -> String {
    let secs = now.duration_since(then).unwrap_or_default().as_secs();
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} days", secs / 86_400),
    }
}

/// What a refusal class means, for the banner.
fn refusal_words(class: &str) -> Option<&'static str> {
    Some(match class {
        "sender_rejected" => "the server refuses this sender",
        "recipient_rejected" => "the server refuses the recipients",
        "message_rejected" => "the server refuses the message",
        "transient" => "temporary failures, retried",
        "misconfigured" => "the mailer's TLS or authentication",
        _ => return None,
    })
}

fn overview_value(o: &Overview) -> Value {
    let sections: Vec<Value> = SECTIONS
        .iter()
        .map(|(title, rows)| {
            let rows: Vec<Value> = rows
                .iter()
                .map(|(a, label)| {
                    context! {
                        name => a.as_str(),
                        label => *label,
                        hour => o.last_hour.get(*a),
                        day => o.last_day.get(*a),
                    }
                })
                .collect();
            context! { title => *title, rows => rows }
        })
        .collect();
    let senders: Vec<Value> = o
        .senders
        .iter()
        .map(|s| {
            context! {
                sender => s.sender,
                accepted => s.accepted,
                reply => s.reply,
                class => s.class,
                at => utc(s.at),
                ago => age(o.now, s.at),
            }
        })
        .collect();
    let alerts: Vec<Value> = o
        .alerts
        .iter()
        .map(|a| {
            context! {
                sender => a.sender,
                refusals => a.refusals,
                since => utc(a.since),
                reply => a.reply,
                class => a.class,
                what => refusal_words(a.class),
                last_delivered => a.last_delivered.map(utc),
            }
        })
        .collect();
    let queue = o.queue.map(|q| {
        context! {
            depth => q.depth,
            oldest => q.oldest.map(utc),
            oldest_age => q.oldest.map(|t| age(o.now, t)),
        }
    });
    context! {
        now => utc(o.now),
        sections => sections,
        hour_refused => o.last_hour.refused(),
        day_refused => o.last_day.refused(),
        senders => senders,
        alerts => alerts,
        queue => queue,
        chart => chart(&o.hours),
        window_minutes => resetkit::activity::ALERT_WINDOW.as_secs() / 60,
    }
}

/// The bars of the hourly chart, scaled to the busiest hour.
fn chart(hours: &[HourBar]) -> Value {
    let max = hours
        .iter()
        .map(|h| h.delivered.max(h.refused))
        .max()
        .unwrap_or(0)
        .max(1);
    let height = |v: u64| {
        if v == 0 {
            0
        } else {
            (v.saturating_mul(PLOT) / max).max(2)
        }
    };
    let bars: Vec<Value> = hours
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let x = LEFT + SLOT * u64::try_from(i).unwrap_or(0) + 3;
            let (hd, hr) = (height(h.delivered), height(h.refused));
            let label = utc(h.hour);
            let hh = label.get(11..16).unwrap_or("").to_owned();
            context! {
                xd => x, yd => TOP + PLOT - hd, hd => hd,
                xr => x + BAR, yr => TOP + PLOT - hr, hr => hr,
                delivered => h.delivered, refused => h.refused,
                hour => label,
                tick => (i % 3 == 0).then_some(hh),
                tx => x + BAR,
            }
        })
        .collect();
    context! {
        bars => bars,
        max => max,
        width => LEFT + SLOT * 24 + 4,
        height => TOP + PLOT + 30,
        base => TOP + PLOT,
        top => TOP,
        label_y => TOP + PLOT + 22,
        left => LEFT,
        right => LEFT + SLOT * 24,
    }
}
