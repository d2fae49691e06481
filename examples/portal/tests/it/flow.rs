//! The portal's flows end to end over HTTP: forgot → mail → link → new
//! password → sign in; shared emails; "this wasn't me"; sign-in; /dev/mail.

use crate::common;

use common::{Browser, mail_count, reset_mail, settle, start, start_with};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_mail_link_new_password_then_sign_in() {
    let portal = start().await;
    let user = Browser::new(&portal);

    // The old password works before the reset.
    user.sign_in("alice", "alice-demo-password-1")
        .await
        .assert_redirect("/account");
    user.forget_cookies();

    let home = user.get("/").await;
    assert!(home.body.contains("href=\"/login\"") && home.body.contains("href=\"/forgot\""));

    let sent = user.forgot("alice@example.test").await;
    sent.assert_redirect("/forgot/sent");
    let page = user.get("/forgot/sent").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Check your email"));

    let mail = reset_mail(&portal, 0, "alice@example.test", "alice").await;
    assert_eq!(mail.to, vec!["alice@example.test".to_owned()]);

    // The link moves the token into the session and lands on a clean URL.
    let link = user.get(&mail.path()).await;
    link.assert_redirect("/reset/new");
    let form = user.get("/reset/new").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains(">alice<"), "the form names the account");
    assert!(!form.body.contains(&mail.token), "the token is not in the page");
    let csrf = form.csrf();

    // Mismatch and a weak password re-render the form; the link still works.
    let mismatch = user
        .post(
            "/reset/new",
            &[
                ("password", "tangerine lighthouse orbit 42"),
                ("confirm", "tangerine lighthouse orbit 43"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::OK);
    assert!(mismatch.body.contains("do not match"), "{}", mismatch.body);
    let weak = user
        .post(
            "/reset/new",
            &[("password", "short"), ("confirm", "short"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(weak.status, StatusCode::OK);
    assert!(weak.body.contains("at least 15 characters"), "{}", weak.body);

    let new_password = "tangerine lighthouse orbit 42";
    let done = user
        .post(
            "/reset/new",
            &[
                ("password", new_password),
                ("confirm", new_password),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    done.assert_redirect("/reset/done");
    let page = user.get("/reset/done").await;
    assert!(page.body.contains("Your password has been changed"));

    // The link is spent.
    user.get(&mail.path()).await.assert_redirect("/reset/invalid");
    let invalid = user.get("/reset/invalid").await;
    assert_eq!(invalid.status, StatusCode::OK);
    assert!(invalid.body.contains("invalid or has expired"));

    // Old password refused, new one accepted.
    let old = user.sign_in("alice", "alice-demo-password-1").await;
    assert_eq!(old.status, StatusCode::OK);
    assert!(old.body.contains("Wrong username or password"));
    user.sign_in("alice", new_password)
        .await
        .assert_redirect("/account");
    let account = user.get("/account").await;
    assert!(account.body.contains("Signed in as alice"), "{}", account.body);
    portal.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_email_accounts_can_each_reset() {
    let portal = start().await;
    let user = Browser::new(&portal);
    user.forgot("family@example.test")
        .await
        .assert_redirect("/forgot/sent");
    let dave = reset_mail(&portal, 0, "family@example.test", "dave").await;
    let erin = reset_mail(&portal, 0, "family@example.test", "erin").await;
    assert_ne!(dave.token, erin.token);

    for (mail, username, password) in [
        (&dave, "dave", "violet harbor lanterns at dusk"),
        (&erin, "erin", "copper kettle whistles twice"),
    ] {
        let b = Browser::new(&portal);
        b.get(&mail.path()).await.assert_redirect("/reset/new");
        let form = b.get("/reset/new").await;
        assert!(form.body.contains(&format!(">{username}<")), "{}", form.body);
        let csrf = form.csrf();
        b.post(
            "/reset/new",
            &[
                ("password", password),
                ("confirm", password),
                ("csrf_token", &csrf),
            ],
        )
        .await
        .assert_redirect("/reset/done");
        b.sign_in(username, password).await.assert_redirect("/account");
        assert!(
            b.get("/account")
                .await
                .body
                .contains(&format!("Signed in as {username}"))
        );
    }
    // Signing in with the shared email is ambiguous, so it is refused.
    let b = Browser::new(&portal);
    let shared = b
        .sign_in("family@example.test", "violet harbor lanterns at dusk")
        .await;
    assert!(shared.body.contains("Wrong username or password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_link_asks_before_revoking() {
    let portal = start().await;
    let user = Browser::new(&portal);
    user.forgot("bob").await.assert_redirect("/forgot/sent");
    let mail = reset_mail(&portal, 0, "bob@example.test", "bob").await;
    assert!(mail.deny_path().starts_with("/reset/deny?token="));

    // A mail scanner fetching the deny link changes nothing.
    let scanner = Browser::new(&portal);
    let confirm = scanner.get(&mail.deny_path()).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("action=\"/reset/deny\""));
    assert!(!confirm.body.contains(&mail.token));
    scanner.head(&mail.deny_path()).await;
    user.get(&mail.path()).await.assert_redirect("/reset/new");

    // The user confirms: the link dies.
    let csrf = confirm.csrf();
    scanner
        .post("/reset/deny", &[("csrf_token", &csrf)])
        .await
        .assert_redirect("/reset/deny/done");
    assert!(scanner.get("/reset/deny/done").await.body.contains("cancelled"));
    user.get("/reset/new").await.assert_redirect("/reset/invalid");
    user.get(&mail.path()).await.assert_redirect("/reset/invalid");
    // Without a token there is nothing to confirm.
    Browser::new(&portal)
        .get("/reset/deny")
        .await
        .assert_redirect("/reset/invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refuses_without_saying_why_and_rotates_the_session() {
    let portal = start().await;
    let user = Browser::new(&portal);
    for (identifier, password) in [
        ("alice", "wrong password here"),
        ("nobody", "alice-demo-password-1"),
        ("carol", "carol-demo-password-5"),
        ("alice\u{0}", "alice-demo-password-1"),
    ] {
        let page = user.sign_in(identifier, password).await;
        assert_eq!(page.status, StatusCode::OK, "{identifier}");
        assert!(page.body.contains("Wrong username or password"), "{identifier}");
        assert!(page.set_cookies().is_empty());
    }
    // Anonymous visitors have no server-side session (the sign-in form's
    // CSRF is a signed cookie); a planted session id is replaced.
    assert_eq!(user.cookie("portal_session"), None);
    let planted = Browser::new(&portal);
    planted
        .sign_in("alice", "alice-demo-password-1")
        .await
        .assert_redirect("/account");
    let before = planted.cookie("portal_session").unwrap();
    planted
        .sign_in("Alice@Example.TEST", "alice-demo-password-1")
        .await
        .assert_redirect("/account");
    let after = planted.cookie("portal_session").unwrap();
    assert_ne!(before, after, "signing in starts a new session");
    user.sign_in("Alice@Example.TEST", "alice-demo-password-1")
        .await
        .assert_redirect("/account");
    assert!(user.get("/account").await.body.contains("Signed in as alice"));

    let csrf = user.get("/account").await.csrf();
    user.post("/logout", &[("csrf_token", &csrf)])
        .await
        .assert_redirect("/");
    user.get("/account").await.assert_redirect("/login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_signs_the_account_out_everywhere() {
    let portal = start().await;
    let elsewhere = Browser::new(&portal);
    elsewhere
        .sign_in("bob", "bob-demo-password-22")
        .await
        .assert_redirect("/account");
    let user = Browser::new(&portal);
    user.forgot("bob@example.test").await;
    let mail = reset_mail(&portal, 0, "bob@example.test", "bob").await;
    user.get(&mail.path()).await;
    let csrf = user.get("/reset/new").await.csrf();
    let pw = "a brand new pass phrase here";
    user.post(
        "/reset/new",
        &[("password", pw), ("confirm", pw), ("csrf_token", &csrf)],
    )
    .await
    .assert_redirect("/reset/done");
    elsewhere.get("/account").await.assert_redirect("/login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mail_is_off_unless_enabled() {
    let off = start_with(|c| c.dev_mail = false).await;
    let b = Browser::new(&off);
    b.forgot("alice").await.assert_redirect("/forgot/sent");
    assert_eq!(b.get("/dev/mail").await.status, StatusCode::NOT_FOUND);
    assert!(off.mail().is_some(), "capture still runs without the page");

    let on = start().await;
    let b = Browser::new(&on);
    b.forgot("alice").await;
    let mail = reset_mail(&on, 0, "alice@example.test", "alice").await;
    let page = b.get("/dev/mail").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("alice@example.test"));
    // The page is a minijinja template: the href is HTML-escaped (`/` as
    // `&#x2f;`, `&` as `&amp;`); the browser reads the link itself.
    assert!(
        resetkit_harness::inspect::unescape_html(&page.body).contains(&format!("href=\"{}\"", mail.link)),
        "{}",
        page.body
    );
    assert_eq!(settle(&on).await, mail_count(&on));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_mode_sends_to_the_configured_server() {
    let server = resetkit_harness::fake_smtp::FakeSmtpServer::start().unwrap();
    let smtp_url = format!("{}?tls=none", server.url());
    let portal = start_with(|c| c.smtp = Some(secrecy::SecretString::from(smtp_url.clone()))).await;
    assert!(portal.mail().is_none(), "no capture server with --smtp");
    assert!(
        portal.banner().contains(&format!("mail: {smtp_url}")),
        "{}",
        portal.banner()
    );
    let user = Browser::new(&portal);
    assert_eq!(user.get("/dev/mail").await.status, StatusCode::NOT_FOUND);
    user.forgot("bob").await.assert_redirect("/forgot/sent");
    let mail = server
        .wait_for(
            |m| m.has_recipient("bob@example.test"),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(mail.mail_from, "noreply@portal.localhost");
}

/// `--dev-inbox`: the capture server's web inbox (the harness's) shows the
/// portal's reset mail; refused off loopback and without `--dev-mail`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_inbox_shows_the_captured_reset_mail() {
    let portal = start_with(|c| c.dev_inbox = Some("127.0.0.1:0".parse().unwrap())).await;
    let inbox = portal.dev_inbox_addr().expect("the dev inbox listens");
    let b = Browser::new(&portal);
    b.forgot("alice").await.assert_redirect("/forgot/sent");
    let mail = reset_mail(&portal, 0, "alice@example.test", "alice").await;
    let api = reqwest::get(format!("http://{inbox}/api/messages"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(api.contains("alice@example.test"), "{api}");
    let page = reqwest::get(format!("http://{inbox}/")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("alice@example.test"));
    assert!(!mail.link.is_empty());
    portal.shutdown().await;

    for (what, edit) in [
        ("without --dev-mail", (false, "127.0.0.1:0")),
        ("off loopback", (true, "0.0.0.0:0")),
    ] {
        let refused = resetkit_portal::Portal::start({
            let mut c = resetkit_portal::PortalConfig::local_test();
            c.dev_mail = edit.0;
            c.dev_inbox = Some(edit.1.parse().unwrap());
            c
        })
        .await;
        let error = refused
            .err()
            .unwrap_or_else(|| panic!("{what}: the portal started"));
        assert!(error.to_string().contains("--dev-inbox"), "{what}: {error}");
    }
}

/// Finding 2 of the fourth review: `--listen 0.0.0.0:… --dev-mail` started
/// and served `/dev/mail` (every live link) to the network, and a
/// non-loopback listener served plain-http links. Both are refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mail_and_http_links_are_refused_on_a_listener_others_reach() {
    for (listen, base, dev_mail, names) in [
        ("0.0.0.0:0", "https://portal.example", true, "--dev-mail"),
        ("[::]:0", "http://[::1]:18090", false, "--base-url"),
        ("0.0.0.0:0", "http://127.0.0.1:18090", false, "--base-url"),
    ] {
        let mut c = resetkit_portal::PortalConfig::local_test();
        c.listen = listen.parse().unwrap();
        c.base_url = Some(base.to_owned());
        c.dev_mail = dev_mail;
        let Err(error) = resetkit_portal::Portal::start(c).await else {
            panic!("{listen} {base} dev_mail={dev_mail}: the portal started");
        };
        let said = error.to_string();
        assert!(
            said.contains(names) && said.contains("other machines"),
            "{listen}: {said}"
        );
    }
    // Public https with real mail settings still starts off loopback.
    let mut c = resetkit_portal::PortalConfig::local_test();
    c.listen = "0.0.0.0:0".parse().unwrap();
    c.base_url = Some("https://portal.example".into());
    c.dev_mail = false;
    c.secrets = Some(resetkit::secrets::DeploymentSecrets::random());
    let portal = resetkit_portal::Portal::start(c)
        .await
        .expect("https off loopback starts");
    portal.shutdown().await;
}

/// Finding 8 of the fourth review: the dev inbox held an idle connection
/// open at 45 s while the portal closes one at its header-read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_inbox_closes_idle_connections_like_the_portal() {
    use tokio::io::AsyncReadExt;
    let portal = start_with(|c| c.dev_inbox = Some("127.0.0.1:0".parse().unwrap())).await;
    let inbox = portal.dev_inbox_addr().expect("the dev inbox listens");
    let mut idle = tokio::net::TcpStream::connect(inbox).await.unwrap();
    let bound = resetkit_portal::HEADER_READ_TIMEOUT * 3;
    let closed = tokio::time::timeout(bound, async {
        let mut buf = [0u8; 512];
        loop {
            match idle.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the idle connection was still open after {bound:?}"
    );
    portal.shutdown().await;
}

/// The fourth review's follow-up: `/dev/mail` answered any Host, so a page
/// the developer visits could rebind its name to 127.0.0.1 and read every
/// live link. The dev pages answer loopback names only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mail_answers_loopback_host_names_only() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let portal = start().await;
    let status = |host: &'static str| {
        let addr = portal.addr();
        async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET /dev/mail HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            answer.lines().next().unwrap_or_default().to_owned()
        }
    };
    for host in ["rebind.evil.example", "rebind.evil.example:8080", "10.0.0.5:8080"] {
        let line = status(host).await;
        assert!(line.contains("421"), "{host}: {line}");
    }
    for host in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"] {
        let line = status(host).await;
        assert!(line.contains("200"), "{host}: {line}");
    }
    portal.shutdown().await;
}

#[tokio::test]
async fn metrics_are_served_to_operators_only_and_count_what_happened() {
    let portal = common::start().await;
    let anonymous = Browser::new(&portal);
    let refused = anonymous.get("/metrics").await;
    refused.assert_redirect("/login");
    let alice = Browser::new(&portal);
    alice.sign_in("alice", "alice-demo-password-1").await;
    assert_eq!(alice.get("/metrics").await.status, reqwest::StatusCode::FORBIDDEN);

    let operator = Browser::new(&portal);
    operator.sign_in("operator", "operator-demo-password-6").await;
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    let before = operator.get("/metrics").await;
    assert_eq!(before.status, reqwest::StatusCode::OK);
    let user = Browser::new(&portal);
    user.forgot("bob").await;
    let mail = common::reset_mail(&portal, 0, "bob@example.test", "bob").await;
    assert!(mail.path().starts_with("/reset"));
    common::settle(&portal).await;
    let after = operator.get("/metrics").await;
    let accepted = "resetkit_requests_total{outcome=\"accepted\"}";
    let delivered = "resetkit_emails_total{result=\"delivered\",reason=\"none\",reply_class=\"2xx\"}";
    assert_eq!(
        value(&after.body, accepted) - value(&before.body, accepted),
        1.0,
        "{}",
        after.body
    );
    assert_eq!(
        value(&after.body, delivered) - value(&before.body, delivered),
        1.0,
        "{}",
        after.body
    );
    assert!(!after.body.contains("bob"), "no identifier in the metrics");
    assert!(after.body.contains("resetkit_queue_depth 0"), "{}", after.body);
}
