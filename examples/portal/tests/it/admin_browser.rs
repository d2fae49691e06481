//! The operator console in a real browser (headless Chromium over
//! WebDriver), on the portal with its capture mail server: the demo
//! operator finds the accounts sharing `family@example.test`, opens the one
//! that reset its password and reads request → sender → SMTP 250 → opened
//! → changed; then the capture server refuses the sender (`/dev/faults`)
//! and the timeline shows the refusal and the fallback sender; the sender
//! check shows each SMTP step; a template without its link is refused with
//! the reason. Screenshots of every step go to `<target>/admin-screenshots/`
//! (or `$RESETKIT_SCREENSHOT_DIR`).
//!
//! The second test is the overview: the capture server refuses the sender,
//! three users ask for a link, and the console's landing page shows the
//! jump, a banner naming the sender and the server's reply, with a link to
//! the sender check (screenshots in `<target>/overview-screenshots/`).
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` it prints a loud
//! SKIP, unless `RESETKIT_REQUIRE_BROWSER=1`.

use crate::common;
use crate::webdriver;

use std::time::Duration;

use webdriver::{browser_available, open_session, screenshot_dir, start_driver};

const NEW_PASSWORD: &str = "meadow lantern quartz 4417";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_follows_a_reset_a_refused_sender_the_sender_check_and_a_refused_template() {
    if !browser_available() {
        return;
    }
    let portal = common::start().await;
    let site = portal.url();
    let profile = tempfile::tempdir().expect("profile dir");
    let shots = match std::env::var_os("RESETKIT_SCREENSHOT_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => screenshot_dir("admin-screenshots"),
    };
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let driver = start_driver().await;
    let mut b = open_session(&driver, profile.path(), shots, 1280, 1000).await;
    let wait = Duration::from_secs(15);

    // A user of the shared address asks for a link and resets the password.
    b.goto(&format!("{site}/forgot")).await;
    b.type_into("#identifier", "family@example.test").await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/forgot/sent").await;
    b.wait_for_text(Some(&format!("{site}/dev/mail")), "/reset?token=", wait)
        .await;
    let link = b.attribute("a.link[href*=\"/reset?token=\"]", "href").await;
    b.goto(&link).await;
    b.wait_for_path("/reset/new").await;
    let form = b.source().await;
    let user = ["dave", "erin"]
        .into_iter()
        .find(|name| form.contains(&format!(">{name}<")))
        .expect("the form names dave or erin");
    b.type_into("#password", NEW_PASSWORD).await;
    b.type_into("#confirm", NEW_PASSWORD).await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/reset/done").await;

    // The operator signs in; the console is behind the portal's guard.
    b.goto(&format!("{site}/admin")).await;
    b.wait_for_path("/login").await;
    b.type_into("#identifier", "operator").await;
    b.type_into("#password", "operator-demo-password-6").await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/account").await;
    b.goto(&format!("{site}/admin")).await;
    b.type_into("#q", "family@example.test").await;
    b.click("button[type=submit]").await;
    let found = b.wait_for_text(None, "2 accounts for", wait).await;
    assert!(found.contains(">dave<") && found.contains(">erin<"), "{found}");
    assert!(found.contains("share an email address"));
    b.screenshot("admin-shared-email-accounts").await;

    b.click(&format!("a[href=\"/admin/account?id={user}\"]")).await;
    b.wait_for_path("/admin/account").await;
    let timeline = b.source().await;
    for step in [
        "requested",
        "sender resolved",
        "SMTP 250",
        "delivered",
        "link opened",
        "password changed",
    ] {
        assert!(
            timeline.contains(&format!(">{step}<")),
            "no `{step}` on the timeline:\n{timeline}"
        );
    }
    assert!(timeline.contains("the configured fixed sender"));
    b.screenshot("admin-timeline-reset").await;

    // The capture server now refuses the sender.
    b.goto(&format!("{site}/dev/faults")).await;
    b.click("form:first-of-type button[type=submit]").await;
    let faults = b.wait_for_text(None, "is refused with 550 5.7.1", wait).await;
    assert!(faults.contains("MAIL FROM &lt;noreply@"), "{faults}");
    b.screenshot("dev-faults-refuse-sender").await;

    // A fresh link: noreply@ is refused, the queue mailbox takes over.
    let account_url = format!("{site}/admin/account?id={user}");
    b.goto(&account_url).await;
    b.click("form[action=\"/admin/account/reissue\"] button").await;
    // The POST's answer first (navigating away could cancel it).
    b.wait_for_text(None, "A fresh link was issued", wait).await;
    let refused = b
        .wait_for_text(Some(&account_url), "as a fallback after", wait)
        .await;
    assert!(refused.contains(">SMTP 550<"), "{refused}");
    assert!(
        refused.contains("550 5.7.1 sender not authorised to send"),
        "{refused}"
    );
    assert!(refused.contains("the shared queue mailbox"), "{refused}");
    let delivered = b.wait_for_text(Some(&account_url), "From support@", wait).await;
    assert!(delivered.contains("fresh link sent"));
    b.screenshot("admin-timeline-refused-sender-fallback").await;

    // The sender check, from the page.
    b.goto(&format!("{site}/admin/senders")).await;
    b.click("form[action=\"/admin/senders/check\"] button").await;
    let checked = b.wait_for_text(None, "Probe recipient", wait).await;
    let noreply = checked
        .split("<h2>")
        .skip(1)
        .find(|s| s.contains("noreply@"))
        .expect("a report for noreply@");
    assert!(
        noreply.contains("refused") && noreply.contains("mail_from"),
        "{noreply}"
    );
    let support = checked
        .split("<h2>")
        .skip(1)
        .find(|s| s.contains("support@"))
        .expect("a report for support@");
    assert!(
        support.contains("rcpt_to") && support.contains(">ok<"),
        "{support}"
    );
    b.screenshot("admin-sender-check").await;

    // A template that lost its link is refused, naming what is missing.
    b.goto(&format!("{site}/admin/templates/edit?locale=en&kind=reset"))
        .await;
    b.screenshot("admin-template-preview").await;
    b.clear("#text").await;
    b.type_into("#text", "Hello {{ username }}, please reset your password soon.")
        .await;
    b.click("form[action=\"/admin/templates/save\"] button").await;
    let refused = b.wait_for_text(None, "Not saved", wait).await;
    assert!(refused.contains("reset.text"), "{refused}");
    assert!(
        refused.contains("must contain the full URL alone on its own line"),
        "{refused}"
    );
    b.screenshot("admin-template-refused").await;
    assert!(
        portal
            .service()
            .templates()
            .locale("en")
            .expect("en")
            .reset
            .text
            .contains("{{ link }}"),
        "the service kept its template"
    );

    b.close().await;
    drop(driver);
    portal.shutdown().await;
}

/// The number in the overview's counts table: row `activity`, last hour.
fn last_hour(page: &str, activity: &str) -> u64 {
    page.split(&format!("data-activity=\"{activity}\""))
        .nth(1)
        .and_then(|row| row.split("class=\"hour\">").nth(1))
        .and_then(|cell| cell.split('<').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count for {activity}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_a_refused_sender_jump_with_a_banner_naming_sender_and_reply() {
    if !browser_available() {
        return;
    }
    let portal = common::start().await;
    let site = portal.url();
    let profile = tempfile::tempdir().expect("profile dir");
    let shots = match std::env::var_os("RESETKIT_SCREENSHOT_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => screenshot_dir("overview-screenshots"),
    };
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let driver = start_driver().await;
    let mut b = open_session(&driver, profile.path(), shots, 1280, 1400).await;
    let wait = Duration::from_secs(15);

    // The operator signs in: the console opens on the overview.
    b.goto(&format!("{site}/admin")).await;
    b.wait_for_path("/login").await;
    b.type_into("#identifier", "operator").await;
    b.type_into("#password", "operator-demo-password-6").await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/account").await;
    b.goto(&format!("{site}/admin")).await;
    let quiet = b
        .wait_for_text(None, "Delivered and refused, per hour", wait)
        .await;
    assert!(!quiet.contains("role=\"alert\""), "no banner yet");
    assert!(quiet.contains("<svg"), "the chart is inline SVG");
    assert!(!quiet.contains("<script"), "no script");
    assert_eq!(last_hour(&quiet, "refused_sender"), 0);
    b.screenshot("overview-quiet").await;

    // The capture server starts refusing the sender.
    b.goto(&format!("{site}/dev/faults")).await;
    b.click("form:first-of-type button[type=submit]").await;
    b.wait_for_text(None, "is refused with 550 5.7.1", wait).await;

    // Three users ask for a link.
    for who in ["alice", "bob", "dave"] {
        b.goto(&format!("{site}/forgot")).await;
        b.type_into("#identifier", who).await;
        b.click("button[type=submit]").await;
        b.wait_for_path("/forgot/sent").await;
    }

    // The overview shows the jump and says who is refused and why.
    let overview = format!("{site}/admin");
    let page = b.wait_for_text(Some(&overview), "3 refusals since", wait).await;
    let banner = page
        .split("role=\"alert\"")
        .nth(1)
        .expect("a banner")
        .split("</div>")
        .next()
        .expect("banner text")
        .to_owned();
    assert!(banner.contains("noreply@portal.localhost"), "{banner}");
    assert!(banner.contains("are being refused"), "{banner}");
    assert!(
        banner.contains("550 5.7.1 sender not authorised to send"),
        "{banner}"
    );
    assert!(banner.contains("href=\"/admin/senders\""), "{banner}");
    assert_eq!(last_hour(&page, "refused_sender"), 3, "the jump");
    assert!(last_hour(&page, "requested") >= 3);
    // The chain's fallback (support@) delivered them.
    let page = b
        .wait_for_text(Some(&overview), "support@portal.localhost", wait)
        .await;
    assert!(
        page.contains("<span class=\"tag bad\">refused"),
        "noreply's last result"
    );
    b.screenshot("overview-refused-sender-banner").await;

    // The banner leads to the sender check.
    b.click("div[role=alert] a[href=\"/admin/senders\"]").await;
    b.wait_for_path("/admin/senders").await;
    b.screenshot("overview-banner-to-sender-check").await;
    b.close().await;
}
