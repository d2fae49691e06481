//! The portal's hardening, checked over HTTP: CSRF on every form, repeated
//! and list-valued fields refused, GET/HEAD of the link never spend it,
//! no-referrer / no-store on reset pages, links immune to Host headers, and
//! one answer for every well-formed identifier.

use crate::common;

use common::{Browser, hidden_value, mail_count, reset_mail, settle, start, start_with};
use reqwest::{Method, StatusCode};
use resetkit::policy::{Limit, RateLimits};

const CSRF_TEXT: &str = "Invalid or missing CSRF token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_post_needs_the_sessions_csrf_token() {
    let portal = start().await;
    let user = Browser::new(&portal);
    let csrf = user.csrf("/forgot").await;
    let other = Browser::new(&portal);
    let other_csrf = other.csrf("/login").await;
    let no_cookie = Browser::new(&portal);
    let posts: [(&str, Vec<(&str, &str)>); 6] = [
        ("/forgot", vec![("identifier", "alice")]),
        (
            "/login",
            vec![("identifier", "alice"), ("password", "alice-demo-password-1")],
        ),
        ("/reset/new", vec![("password", "x"), ("confirm", "x")]),
        ("/reset/deny", vec![]),
        ("/logout", vec![]),
        ("/account/security", vec![]),
    ];
    for (path, fields) in &posts {
        // No session cookie at all, even with a token from some session.
        let mut with_token = fields.clone();
        with_token.push(("csrf_token", &csrf));
        let page = no_cookie.post(path, &with_token).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} without cookie");
        assert!(page.body.contains(CSRF_TEXT), "{path}");
        // The session cookie, but no token / a wrong one / another session's.
        let mut wrong = fields.clone();
        wrong.push(("csrf_token", "forged"));
        let mut foreign = fields.clone();
        foreign.push(("csrf_token", &other_csrf));
        let mut twice = fields.clone();
        twice.push(("csrf_token", &csrf));
        twice.push(("csrf_token", &csrf));
        for body in [fields.clone(), wrong, foreign, twice] {
            let page = user.post(path, &body).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} {body:?}");
            assert!(page.body.contains(CSRF_TEXT), "{path}");
        }
    }
    assert_eq!(settle(&portal).await, 0, "no refused request sent mail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_or_list_valued_fields_are_refused() {
    let portal = start().await;
    let user = Browser::new(&portal);
    let csrf = user.csrf("/forgot").await;
    for fields in [
        vec![
            ("identifier", "alice@example.test"),
            ("identifier", "bob@example.test"),
        ],
        vec![
            ("identifier", "alice@example.test"),
            ("identifier", "alice@example.test"),
        ],
        vec![
            ("identifier[]", "alice@example.test"),
            ("identifier[]", "bob@example.test"),
        ],
        vec![("identifier[]", "alice@example.test")],
        vec![
            ("identifier", "alice@example.test"),
            ("identifier[0]", "bob@example.test"),
        ],
        vec![],
    ] {
        let mut body = fields.clone();
        body.push(("csrf_token", &csrf));
        let page = user.post("/forgot", &body).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{fields:?}");
        assert!(
            page.body.contains("Send exactly one identifier"),
            "{fields:?}: {}",
            page.body
        );
    }
    // A JSON body (with a list) is not a form at all.
    let json = user
        .request(
            Method::POST,
            "/forgot",
            &[],
            Some((
                "application/json",
                format!(
                    r#"{{"identifier":["alice@example.test","bob@example.test"],"csrf_token":"{csrf}"}}"#
                ),
            )),
        )
        .await;
    assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Repeated password fields on the reset form.
    user.forgot("alice").await;
    let mail = reset_mail(&portal, 0, "alice@example.test", "alice").await;
    user.get(&mail.path()).await.assert_redirect("/reset/new");
    let csrf = user.get("/reset/new").await.csrf();
    let pw = "a long enough new password";
    let page = user
        .post(
            "/reset/new",
            &[
                ("password", pw),
                ("password", "another long password"),
                ("confirm", pw),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("Send exactly one password"));
    // Only the one well-formed request sent mail, and the link still works.
    assert_eq!(settle(&portal).await, 1);
    user.get("/reset/new").await.csrf();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_head_of_the_link_do_not_spend_it() {
    let portal = start().await;
    Browser::new(&portal).forgot("bob").await;
    let mail = reset_mail(&portal, 0, "bob@example.test", "bob").await;
    // Scanners and previewers: HEAD and GET, several times, each without cookies.
    for _ in 0..3 {
        let scanner = Browser::new(&portal);
        scanner.head(&mail.path()).await.assert_redirect("/reset/new");
        scanner.get(&mail.path()).await.assert_redirect("/reset/new");
        // Even rendering the form does not spend it.
        assert_eq!(scanner.get("/reset/new").await.status, StatusCode::OK);
    }
    let user = Browser::new(&portal);
    user.get(&mail.path()).await.assert_redirect("/reset/new");
    let csrf = user.get("/reset/new").await.csrf();
    let pw = "finally picked a long one here";
    user.post(
        "/reset/new",
        &[("password", pw), ("confirm", pw), ("csrf_token", &csrf)],
    )
    .await
    .assert_redirect("/reset/done");
    // Spent now: every holder of the link is refused.
    Browser::new(&portal)
        .get(&mail.path())
        .await
        .assert_redirect("/reset/invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_pages_send_no_referrer_and_no_store_and_clean_urls() {
    let portal = start().await;
    Browser::new(&portal).forgot("alice").await;
    let mail = reset_mail(&portal, 0, "alice@example.test", "alice").await;

    // A browser opening the link from the email has no session yet.
    let user = Browser::new(&portal);
    let link = user.get(&mail.path()).await;
    link.assert_redirect("/reset/new");
    let cookie = link
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("resetkit_link="))
        .expect("the link starts the browser's pending-link state");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains(&mail.token), "the token is not in the cookie");

    let mut pages = vec![
        ("GET", mail.path(), user.head(&mail.path()).await),
        ("GET", mail.path(), link),
        ("GET", "/reset/new".into(), user.get("/reset/new").await),
        ("GET", "/reset/done".into(), user.get("/reset/done").await),
        ("GET", "/reset/invalid".into(), user.get("/reset/invalid").await),
        (
            "GET",
            "/reset?token=bogus".into(),
            user.get("/reset?token=bogus").await,
        ),
        ("GET", mail.deny_path(), user.get(&mail.deny_path()).await),
    ];
    // The bogus link dropped the pending token; open the real one again.
    user.get(&mail.path()).await.assert_redirect("/reset/new");
    let csrf = user.get("/reset/new").await.csrf();
    pages.push((
        "POST",
        "/reset/new".into(),
        user.post(
            "/reset/new",
            &[("password", "x"), ("confirm", "y"), ("csrf_token", &csrf)],
        )
        .await,
    ));
    for (method, path, page) in &pages {
        assert_eq!(
            page.header("referrer-policy"),
            Some("no-referrer"),
            "{method} {path}"
        );
        assert_eq!(page.header("cache-control"), Some("no-store"), "{method} {path}");
        if let Some(location) = page.location() {
            assert!(!location.contains("token"), "{method} {path} -> {location}");
        }
    }
    assert!(pages[5].2.location() == Some("/reset/invalid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_forwarded_headers_do_not_move_the_link() {
    let portal = start_with(|c| c.base_url = Some("https://portal.example.test".into())).await;
    let user = Browser::new(&portal);
    let form = user.get("/forgot").await;
    let cookie = form.set_cookies().join(" ");
    assert!(
        cookie.contains("Secure"),
        "an https base URL makes the cookie Secure: {cookie}"
    );
    let csrf = form.csrf();
    let sent = user
        .post_with(
            "/forgot",
            &[("identifier", "alice"), ("csrf_token", &csrf)],
            &[
                ("host", "evil.example"),
                ("x-forwarded-host", "evil.example"),
                ("x-forwarded-proto", "http"),
                ("forwarded", "host=evil.example;proto=http"),
                ("x-original-url", "http://evil.example/reset"),
            ],
        )
        .await;
    sent.assert_redirect("/forgot/sent");
    let mail = reset_mail(&portal, 0, "alice@example.test", "alice").await;
    assert!(
        mail.link.starts_with("https://portal.example.test/reset?token="),
        "{}",
        mail.link
    );
    assert!(!mail.text.contains("evil.example"));
    // The link is good for this portal.
    user.get(&mail.path()).await.assert_redirect("/reset/new");
}

/// What an observer of `POST /forgot` sees.
fn observable(page: &common::Page) -> (StatusCode, Option<String>, String, Vec<String>, Vec<String>) {
    let mut names: Vec<String> = page
        .headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k != "date")
        .collect();
    names.sort();
    (
        page.status,
        page.location().map(str::to_owned),
        page.body.clone(),
        page.set_cookies(),
        names,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_well_formed_identifier_gets_the_same_answer() {
    let limits = RateLimits {
        per_account: Some(Limit {
            max: 1,
            window: std::time::Duration::from_secs(900),
        }),
        per_client: None,
    };
    let portal = start_with(|c| c.rate_limits = Some(limits)).await;
    let user = Browser::new(&portal);
    let first = user.forgot("alice@example.test").await;
    let expected = observable(&first);
    assert_eq!(expected.0, StatusCode::SEE_OTHER);
    assert_eq!(expected.1.as_deref(), Some("/forgot/sent"));
    assert!(expected.3.is_empty(), "no cookie is set by the answer");
    reset_mail(&portal, 0, "alice@example.test", "alice").await;

    let cases = [
        ("known email", "alice@example.test"), // throttled now (1 per window)
        ("known username", "bob"),
        ("unknown email", "nobody@example.test"),
        ("unknown username", "nobody"),
        ("disabled", "carol@example.test"),
        ("shared email", "family@example.test"),
        ("look-alike", "ALICE@EXAMPLE.TEST"),
    ];
    for (what, identifier) in cases {
        let page = user.forgot(identifier).await;
        assert_eq!(observable(&page), expected, "{what} ({identifier})");
    }
    // Malformed input is refused the same way whatever it resembles.
    let csrf = user.csrf("/forgot").await;
    let mut bodies = Vec::new();
    for identifier in ["alice@@example.test", "nobody@@example.test"] {
        let page = user
            .post("/forgot", &[("identifier", identifier), ("csrf_token", &csrf)])
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{identifier}");
        assert!(page.set_cookies().is_empty());
        bodies.push(page.body.replace(identifier, "IDENTIFIER"));
        assert_eq!(
            hidden_value(&page.body, "csrf_token").as_deref(),
            Some(csrf.as_str())
        );
    }
    assert_eq!(bodies[0], bodies[1]);
    // Mail went only where it should: bob, and dave and erin.
    reset_mail(&portal, 0, "family@example.test", "dave").await;
    reset_mail(&portal, 0, "family@example.test", "erin").await;
    reset_mail(&portal, 0, "bob@example.test", "bob").await;
    assert_eq!(
        settle(&portal).await,
        4,
        "alice once (then throttled), bob, dave, erin"
    );
    assert_eq!(mail_count(&portal), 4);
}

/// Finding 6 of the fourth review: 200 wrong passwords for bob took 0.1 s,
/// then the right one signed in (and the operator console sits behind the
/// same sign-in). Past the per-identifier limit every attempt answers 429,
/// the right password included, alike for a known and an unknown name; the
/// per-client limit bounds one client across identifiers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_limited_per_identifier_and_per_client() {
    let portal = start().await;
    let limit = resetkit_portal::SIGN_IN_LIMITS.per_account.unwrap().max;
    let attacker = Browser::new(&portal);
    for who in ["bob", "nobody-here"] {
        for i in 0..limit {
            let page = attacker.sign_in(who, &format!("guess-{i}")).await;
            assert_eq!(page.status, StatusCode::OK, "{who} attempt {i}");
            assert!(page.body.contains("Wrong username or password"));
        }
        for password in ["guess-x", "bob-demo-password-22"] {
            let page = attacker.sign_in(who, password).await;
            assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{who} past the limit");
            assert!(page.body.contains("Too many sign-in attempts"), "{}", page.body);
            assert!(page.header("retry-after").is_some());
            assert!(!page.body.contains("signed-in"));
        }
    }
    // Another spelling of the same identifier shares the count.
    let page = attacker.sign_in("BOB", "bob-demo-password-22").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    // Other identifiers still sign in (from another client in real life;
    // here the client limit of 100 is not reached yet).
    let alice = Browser::new(&portal);
    alice
        .sign_in("alice", "alice-demo-password-1")
        .await
        .assert_redirect("/account");

    // One client across many identifiers: the per-client limit.
    let portal = start_with(|c| {
        c.sign_in_limits = RateLimits {
            per_account: None,
            per_client: Some(Limit {
                max: 5,
                window: std::time::Duration::from_secs(900),
            }),
        }
    })
    .await;
    let sprayer = Browser::new(&portal);
    for i in 0..5 {
        let page = sprayer.sign_in(&format!("user{i}"), "Winter2026!").await;
        assert_eq!(page.status, StatusCode::OK);
    }
    let page = sprayer.sign_in("alice", "alice-demo-password-1").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
}

/// Issue 20: a portal reachable from the network needs the deployment's
/// keys (every instance behind a load balancer must share them); without
/// them it refuses to start, naming the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_portal_refuses_to_start_without_the_deployment_keys() {
    let config = resetkit_portal::PortalConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        base_url: Some("https://portal.example".into()),
        fast_hash: true,
        ..resetkit_portal::PortalConfig::default()
    };
    let error = match resetkit_portal::Portal::start(config.clone()).await {
        Ok(_) => panic!("started off loopback without RESETKIT_PAGES_KEY"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("RESETKIT_PAGES_KEY is not set"), "{error}");
    assert!(error.contains("RESETKIT_FINGERPRINT_KEY"), "{error}");
    let with_keys = resetkit_portal::PortalConfig {
        secrets: Some(resetkit::secrets::DeploymentSecrets::random()),
        ..config
    };
    let portal = resetkit_portal::Portal::start(with_keys)
        .await
        .expect("starts with its keys");
    portal.shutdown().await;
}
