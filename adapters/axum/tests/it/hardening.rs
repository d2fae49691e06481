//! One test per hardening property of the pages.

use crate::common;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use common::{Browser, start, start_with};
use reqwest::{Method, StatusCode};
use resetkit_axum::{CSRF_REFUSED, ServeOptions};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tower::ServiceExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_post_needs_a_valid_csrf_token() {
    let app = start().await;
    let user = Browser::new(&app);
    let csrf = user.get("/forgot").await.csrf();
    let other = Browser::new(&app);
    let other_csrf = other.get("/forgot").await.csrf();
    let no_cookie = Browser::new(&app);
    let posts: [(&str, Vec<(&str, &str)>); 4] = [
        ("/forgot", vec![("identifier", "alice")]),
        ("/reset/new", vec![("password", "x"), ("confirm", "x")]),
        ("/reset/deny", vec![]),
        ("/account/security", vec![]),
    ];
    for (path, fields) in &posts {
        let mut with_token = fields.clone();
        with_token.push(("csrf_token", &csrf));
        let page = no_cookie.post(path, &with_token).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} without cookie");
        assert!(page.body.contains(CSRF_REFUSED), "{path}");
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
        }
    }
    // The reset form's token is its own form's id: the forgot form's token
    // (valid for the browser) does not open it.
    user.forgot("alice").await.assert_redirect("/forgot/sent");
    user.get(&app.reset_path("alice@example.test")).await;
    let page = user
        .post(
            "/reset/new",
            &[("password", "x"), ("confirm", "x"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(app.mailer.sent().len(), 1, "only the one valid request sent mail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_sends_no_referrer_no_store_csp_nosniff() {
    let app = start().await;
    let user = Browser::new(&app);
    user.forgot("alice").await;
    let link = app.reset_path("alice@example.test");
    let deny = app.deny_path("alice@example.test");
    let mut pages = Vec::new();
    for path in [
        "/forgot",
        "/forgot/sent",
        link.as_str(),
        "/reset/new",
        "/reset/done",
        "/reset/invalid",
        "/reset?token=bogus",
        deny.as_str(),
        "/reset/deny/done",
        "/account/security",
    ] {
        pages.push((path.to_owned(), user.get(path).await));
    }
    pages.push(("HEAD link".into(), user.head(&link).await));
    pages.push(("POST /forgot (refused)".into(), user.post("/forgot", &[]).await));
    for (what, page) in &pages {
        assert_eq!(page.header("referrer-policy"), Some("no-referrer"), "{what}");
        assert_eq!(page.header("cache-control"), Some("no-store"), "{what}");
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"), "{what}");
        assert_eq!(page.header("x-frame-options"), Some("DENY"), "{what}");
        let csp = page.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{what}"
        );
        if let Some(location) = page.location() {
            assert!(!location.contains("token"), "{what} -> {location}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_head_of_the_link_never_spend_it_and_land_on_a_clean_url() {
    let app = start().await;
    Browser::new(&app).forgot("bob").await;
    let link = app.reset_path("bob@example.test");
    for _ in 0..3 {
        let scanner = Browser::new(&app);
        let landed = scanner.head(&link).await;
        landed.assert_redirect("/reset/new");
        scanner.get(&link).await.assert_redirect("/reset/new");
        let cookie = landed
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with("resetkit_link="))
            .expect("opening a link starts the browser's pending state");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(!cookie.contains(link.split("token=").nth(1).unwrap()));
        assert_eq!(scanner.get("/reset/new").await.status, StatusCode::OK);
    }
    let user = Browser::new(&app);
    user.get(&link).await.assert_redirect("/reset/new");
    let csrf = user.get("/reset/new").await.csrf();
    let pw = "finally picked a long one here";
    user.post(
        "/reset/new",
        &[("password", pw), ("confirm", pw), ("csrf_token", &csrf)],
    )
    .await
    .assert_redirect("/reset/done");
    Browser::new(&app)
        .get(&link)
        .await
        .assert_redirect("/reset/invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_list_valued_and_non_form_bodies_are_refused() {
    let app = start().await;
    let user = Browser::new(&app);
    let csrf = user.get("/forgot").await.csrf();
    for fields in [
        vec![
            ("identifier", "alice@example.test"),
            ("identifier", "bob@example.test"),
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
        assert!(page.body.contains("Send exactly one identifier"), "{fields:?}");
    }
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
    // A malformed identifier: 400 with the form, the same token, no cookie.
    let page = user
        .post(
            "/forgot",
            &[("identifier", "alice@@example.test"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert_eq!(page.csrf(), csrf);
    assert!(page.set_cookies().is_empty());
    assert!(page.body.contains("aria-invalid=\"true\""));
    assert!(app.mailer.sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    let app = start_with(|b| b.body_limit(1024), ServeOptions::default()).await;
    let user = Browser::new(&app);
    let csrf = user.get("/forgot").await.csrf();
    let big = "a".repeat(4096);
    let page = user
        .post("/forgot", &[("identifier", &big), ("csrf_token", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(app.mailer.sent().is_empty());
}

/// Cookie-less GETs of every page an anonymous visitor can reach store
/// nothing (the pages keep no server state: opened links are sealed into
/// the browser's cookie and form), so no flood evicts anyone's open form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_thousand_cookieless_gets_store_nothing() {
    let app = start().await;
    let user = Browser::new(&app);
    user.forgot("alice").await;
    user.get(&app.reset_path("alice@example.test")).await;
    let open_form = user.get("/reset/new").await.csrf();

    let router = app.pages.router();
    let paths = [
        "/forgot",
        "/forgot/sent",
        "/reset/new",
        "/reset/invalid",
        "/reset?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/reset/deny?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/reset/deny",
        "/account/security",
        "/reset/done",
    ];
    let total = 200_000;
    for i in 0..total {
        let request = Request::get(paths[i % paths.len()]).body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert!(response.status().is_success() || response.status().is_redirection());
    }
    // The pages keep no state at all (opened links are sealed into the
    // browser's cookie and form): the open form still works.
    let pw = "a brand new pass phrase here";
    user.post(
        "/reset/new",
        &[("password", pw), ("confirm", pw), ("csrf_token", &open_form)],
    )
    .await
    .assert_redirect("/reset/done");
}

async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_header_trickling_connections_are_closed() {
    let options = ServeOptions::default().with_header_read_timeout(Duration::from_millis(300));
    let app = start_with(|b| b, options).await;
    // Connects and sends nothing.
    let mut idle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // Sends half a request head and stops.
    let mut trickle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    trickle
        .write_all(b"GET /forgot HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Finishes a request, then sits on the keep-alive connection.
    let mut kept = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    kept.write_all(b"GET /forgot/sent HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = vec![0u8; 64];
    let n = kept.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));
    // Generous bound: a connection kept open would block here forever.
    for (what, stream) in [
        ("idle", &mut idle),
        ("trickling", &mut trickle),
        ("keep-alive", &mut kept),
    ] {
        assert!(
            closed_within(stream, Duration::from_secs(20)).await,
            "{what} connection still open"
        );
    }
}

/// A host hook that never answers.
struct Stuck;

#[resetkit::async_trait]
impl resetkit_axum::HostSessions for Stuck {
    async fn signed_in(&self, _request: &axum::http::request::Parts) -> Option<resetkit_axum::SignedIn> {
        std::future::pending().await
    }
}

#[resetkit::async_trait]
impl resetkit::SessionRevoker for Stuck {
    async fn revoke_sessions(&self, _account: &resetkit::account::AccountId) -> Result<(), String> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_takes_too_long_is_answered_408() {
    let app = start_with(
        |b| {
            b.host_sessions(std::sync::Arc::new(Stuck))
                .request_timeout(Duration::from_millis(200))
        },
        ServeOptions::default(),
    )
    .await;
    let page = Browser::new(&app).get("/account/security").await;
    assert_eq!(page.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(page.header("cache-control"), Some("no-store"));
}

/// A directory whose password write fails as unavailable (the database
/// went away between the link and the form).
struct WriteDown(resetkit::prelude::InMemoryAccounts);

#[async_trait::async_trait]
impl resetkit::prelude::AccountDirectory for WriteDown {
    async fn find_by_email(
        &self,
        email: &str,
    ) -> Result<Vec<resetkit::prelude::Account>, resetkit::error::StoreError> {
        self.0.find_by_email(email).await
    }
    async fn find_by_username(
        &self,
        username: &str,
    ) -> Result<Option<resetkit::prelude::Account>, resetkit::error::StoreError> {
        self.0.find_by_username(username).await
    }
    async fn find_by_id(
        &self,
        id: &resetkit::account::AccountId,
    ) -> Result<Option<resetkit::prelude::Account>, resetkit::error::StoreError> {
        self.0.find_by_id(id).await
    }
    async fn set_password_hash(
        &self,
        _: &resetkit::account::AccountId,
        _: &resetkit::prelude::PasswordHash,
    ) -> Result<(), resetkit::error::StoreError> {
        Err(resetkit::error::StoreError::unavailable(
            "accounts",
            "injected: database down",
        ))
    }
}

/// A failing store gives the pages' error page: 503, `Retry-After`, the
/// "try again" text, the security headers, and nothing of the error itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_is_the_503_page_with_retry_after() {
    use std::sync::Arc;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accounts = resetkit::prelude::InMemoryAccounts::default();
    accounts.insert(resetkit::prelude::Account::new(
        "alice",
        "alice",
        "alice@example.test",
    ));
    let mailer = resetkit::prelude::CapturingMailer::default();
    let service = resetkit::ResetService::builder()
        .request_processing(resetkit::flow::RequestProcessing::Immediate)
        .base_url(format!("http://{addr}"))
        .allow_insecure_http_for_local_testing()
        .site_name("Test site")
        .accounts(Arc::new(WriteDown(accounts)))
        .tokens(Arc::new(resetkit::prelude::InMemoryTokenStore::default()))
        .events(Arc::new(resetkit::prelude::InMemoryEventLog::default()))
        .mailer(Arc::new(mailer.clone()))
        .sender(Arc::new(resetkit::prelude::FixedSender::new(
            resetkit::prelude::Mailbox::address_only("noreply@example.test").unwrap(),
        )))
        .hasher(Arc::new(
            resetkit::prelude::Argon2Hasher::fast_insecure_for_tests(),
        ))
        .build()
        .unwrap();
    let pages = resetkit_axum::ResetPages::builder(service)
        .secure_cookies(false)
        .build()
        .unwrap();
    tokio::spawn(resetkit_axum::serve(
        listener,
        pages.router(),
        ServeOptions::default(),
        std::future::pending(),
    ));
    let user = Browser::at(format!("http://{addr}"));
    let form = user.get("/forgot").await;
    user.post(
        "/forgot",
        &[("identifier", "alice"), ("csrf_token", &form.csrf())],
    )
    .await
    .assert_redirect("/forgot/sent");
    let mail = mailer
        .sent_to("alice@example.test")
        .pop()
        .expect("a mail was sent");
    let link = mail
        .expose_text()
        .lines()
        .map(str::trim)
        .find(|l| l.contains("/reset?token="))
        .expect("a reset link")
        .to_owned();
    let link = url::Url::parse(&link).unwrap();
    user.get(&format!("{}?{}", link.path(), link.query().unwrap()))
        .await
        .assert_redirect("/reset/new");
    let form = user.get("/reset/new").await;
    let password = "a-new-password-long-enough";
    let page = user
        .post(
            "/reset/new",
            &[
                ("password", password),
                ("confirm", password),
                ("csrf_token", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{}", page.body);
    assert_eq!(page.headers["retry-after"], "5");
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    assert!(
        page.body.contains("<title>Please try again in a moment"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(
            "The service is temporarily unavailable. Nothing was sent: please try again in a moment."
        ),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("injected"),
        "the error stays in the log: {}",
        page.body
    );
}

/// A request shed because the inbox is full gets the same 503 page as an
/// outage (rendered once, then copied), with `Retry-After` and the security
/// headers, whatever the identifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shed_request_is_the_503_page_with_retry_after() {
    use std::sync::Arc;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accounts = resetkit::prelude::InMemoryAccounts::default();
    accounts.insert(resetkit::prelude::Account::new(
        "alice",
        "alice",
        "alice@example.test",
    ));
    let service = resetkit::ResetService::builder()
        .request_processing(resetkit::flow::RequestProcessing::External)
        .inbox(Arc::new(resetkit::prelude::InMemoryInbox::with_capacity(1)))
        .rate_limits(resetkit::policy::RateLimits::unlimited())
        .base_url(format!("http://{addr}"))
        .allow_insecure_http_for_local_testing()
        .site_name("Test site")
        .accounts(Arc::new(accounts))
        .tokens(Arc::new(resetkit::prelude::InMemoryTokenStore::default()))
        .events(Arc::new(resetkit::prelude::InMemoryEventLog::default()))
        .mailer(Arc::new(resetkit::prelude::CapturingMailer::default()))
        .sender(Arc::new(resetkit::prelude::FixedSender::new(
            resetkit::prelude::Mailbox::address_only("noreply@example.test").unwrap(),
        )))
        .hasher(Arc::new(
            resetkit::prelude::Argon2Hasher::fast_insecure_for_tests(),
        ))
        .build()
        .unwrap();
    let pages = resetkit_axum::ResetPages::builder(service)
        .secure_cookies(false)
        .build()
        .unwrap();
    tokio::spawn(resetkit_axum::serve(
        listener,
        pages.router(),
        ServeOptions::default(),
        std::future::pending(),
    ));
    let user = Browser::at(format!("http://{addr}"));
    let form = user.get("/forgot").await;
    let csrf = form.csrf();
    user.post("/forgot", &[("identifier", "alice"), ("csrf_token", &csrf)])
        .await
        .assert_redirect("/forgot/sent");
    let mut bodies = Vec::new();
    for identifier in ["alice", "nobody@example.test", "alice@example.test"] {
        let page = user
            .post("/forgot", &[("identifier", identifier), ("csrf_token", &csrf)])
            .await;
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{}", page.body);
        assert_eq!(page.headers["retry-after"], "5");
        assert_eq!(page.headers["cache-control"], "no-store");
        assert_eq!(page.headers["referrer-policy"], "no-referrer");
        assert!(
            page.body.contains("<title>Please try again in a moment"),
            "{}",
            page.body
        );
        assert!(!page.body.contains(identifier), "{}", page.body);
        bodies.push(page.body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every shed request gets the same page"
    );
}
