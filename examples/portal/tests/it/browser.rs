//! A real browser clicks through the flow: Debian's headless Chromium driven
//! over WebDriver (chromedriver, spoken with plain HTTP + JSON):
//! forgot → /dev/mail (read the link) → link → new password → sign in, with
//! a phone-sized window and a screenshot of every step under
//! `<target>/portal-screenshots/` (or `$RESETKIT_SCREENSHOT_DIR`).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (`apt-get install -y chromium chromium-driver`). Without them the test
//! prints a loud SKIP and passes, unless `RESETKIT_REQUIRE_BROWSER=1`, which
//! makes a missing browser a failure.

use crate::common;
use crate::webdriver;

use std::time::{Duration, Instant};

use webdriver::{browser_available, open_session, screenshot_dir, start_driver};

const NEW_PASSWORD: &str = "lantern orchard velvet 2031";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_clicks_through_forgot_mail_link_new_password_sign_in() {
    if !browser_available() {
        return;
    }
    let portal = common::start().await;
    let site = portal.url();
    let profile = tempfile::tempdir().expect("profile dir");
    let shots = screenshot_dir("portal-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");

    let driver = start_driver().await;
    let mut b = open_session(&driver, profile.path(), shots, 412, 915).await;

    // Home → "Forgot your password?".
    b.goto(&format!("{site}/")).await;
    b.screenshot("home").await;
    b.click(".card a[href=\"/forgot\"]").await;
    b.wait_for_path("/forgot").await;
    b.type_into("#identifier", "alice").await;
    b.screenshot("forgot").await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/forgot/sent").await;
    assert!(b.source().await.contains("Check your email"));
    b.screenshot("check-your-email").await;

    // The captured mail, read from /dev/mail like a developer would.
    let deadline = Instant::now() + Duration::from_secs(10);
    let link = loop {
        b.goto(&format!("{site}/dev/mail")).await;
        if b.source().await.contains("/reset?token=") {
            break b.attribute("a.link[href*=\"/reset?token=\"]", "href").await;
        }
        assert!(Instant::now() < deadline, "no reset link appeared on /dev/mail");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    b.screenshot("dev-mail").await;
    assert!(link.starts_with(&format!("{site}/reset?token=")), "{link}");

    // The link lands on a clean URL with the form.
    b.goto(&link).await;
    let landed = b.wait_for_path("/reset/new").await;
    assert!(
        !landed.contains("token"),
        "the token left the address bar: {landed}"
    );
    assert!(b.source().await.contains(">alice<"));
    b.screenshot("choose-new-password").await;

    // A mismatch is explained; then the real change.
    b.type_into("#password", NEW_PASSWORD).await;
    b.type_into("#confirm", "something else entirely").await;
    b.click("button[type=submit]").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.source().await.contains("do not match") {
        assert!(Instant::now() < deadline, "no mismatch message");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.screenshot("passwords-do-not-match").await;
    b.type_into("#password", NEW_PASSWORD).await;
    b.type_into("#confirm", NEW_PASSWORD).await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/reset/done").await;
    assert!(b.source().await.contains("Your password has been changed"));
    b.screenshot("password-changed").await;

    // Sign in with the new password.
    b.goto(&format!("{site}/login")).await;
    b.type_into("#identifier", "alice").await;
    b.type_into("#password", NEW_PASSWORD).await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/account").await;
    assert!(b.source().await.contains("Signed in as alice"));
    b.screenshot("signed-in").await;

    // The link is spent.
    b.goto(&link).await;
    b.wait_for_path("/reset/invalid").await;
    assert!(b.source().await.contains("invalid or has expired"));
    b.screenshot("link-spent").await;

    b.close().await;
    drop(driver);
    portal.shutdown().await;
}
