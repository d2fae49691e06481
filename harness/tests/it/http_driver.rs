//! The HTTP driver against wiremock-stubbed pages: CSRF extraction (hidden
//! field, cookie + header, meta tag), one cookie jar per virtual user,
//! redirects, and how success and failure are recognised.

use std::sync::Arc;

use resetkit_harness::http::driver::{Driver, DriverError, Submission};
use resetkit_harness::http::exchange::ExchangeLog;
use resetkit_harness::http::target_file::{Expect, HttpTarget};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn target(server: &MockServer, csrf: &str) -> Arc<HttpTarget> {
    let toml = format!(
        r#"
        base_url = "{}"
        {csrf}
        [forgot]
        page = "/forgot"
        identifier_field = "identifier"
        accepted = {{ status = 303, redirect = "/forgot/sent" }}
        [set_password]
        password_field = "password"
        success = {{ redirect = "/done" }}
        "#,
        server.uri()
    );
    Arc::new(HttpTarget::from_toml_str(&toml, "stub.toml").expect("target file"))
}

fn html(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.to_owned(), "text/html; charset=utf-8")
}

const FORGOT_FORM: &str = r#"<html><body><form method="post" action="/forgot">
    <input type="hidden" name="csrf_token" value="tok&amp;123">
    <input name="identifier"><button>Send</button></form></body></html>"#;

#[tokio::test]
async fn hidden_csrf_field_and_session_cookie_go_back_with_the_form() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/forgot"))
        .respond_with(html(FORGOT_FORM).insert_header("set-cookie", "sid=abc; Path=/; HttpOnly"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/forgot"))
        .and(header("cookie", "sid=abc"))
        .and(body_string_contains("csrf_token=tok%26123"))
        .and(body_string_contains("identifier=alice%40example.test"))
        .respond_with(ResponseTemplate::new(303).insert_header("location", "/forgot/sent"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/forgot/sent"))
        .respond_with(html("<p>Check your email</p>"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_string("CSRF"))
        .with_priority(10)
        .mount(&server)
        .await;

    let target = target(
        &server,
        r#"[csrf]
        field = "csrf_token""#,
    );
    let driver = Driver::new(target.clone(), ExchangeLog::default());
    let alice = driver.user("alice").unwrap();
    let page = alice
        .load_form(&target.url("/forgot"), "identifier")
        .await
        .unwrap();
    assert_eq!(page.form.value("csrf_token"), Some("tok&123"));
    let visit = alice
        .submit(
            &page,
            None,
            &Submission::new().set("identifier", "alice@example.test"),
        )
        .await
        .unwrap();
    assert_eq!(visit.first().status, 303);
    assert_eq!(visit.last().url.path(), "/forgot/sent");
    target.forgot.accepted.check(&visit).unwrap();
    let by_text = Expect {
        text: Some("Check your email".into()),
        ..Expect::default()
    };
    by_text.check(&visit).unwrap();

    // Another user has its own (empty) jar: same form, no session cookie.
    let mallory = driver.user("mallory").unwrap();
    let visit = mallory
        .submit(
            &page,
            None,
            &Submission::new().set("identifier", "alice@example.test"),
        )
        .await
        .unwrap();
    assert_eq!(visit.first().status, 403);
    let why = target.forgot.accepted.check(&visit).unwrap_err();
    assert!(why.contains("status 403") && why.contains("no redirect"), "{why}");
    assert_eq!(alice.cookie("sid", &target.base_url).as_deref(), Some("abc"));
    assert_eq!(mallory.cookie("sid", &target.base_url), None);
    // Every exchange was logged, with the user's name.
    let log = driver.log().snapshot();
    assert_eq!(log.len(), 4);
    assert!(log[0].user.starts_with("alice#") && log[3].user.starts_with("mallory#"));
}

#[tokio::test]
async fn csrf_from_a_cookie_goes_in_a_header_and_from_meta_too() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/forgot"))
        .respond_with(
            html(r#"<meta name="csrf-token" content="meta-tok"><form method=post><input name=identifier></form>"#)
                .insert_header("set-cookie", "csrftoken=cookie-tok; Path=/"),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/forgot"))
        .and(header("x-csrftoken", "cookie-tok"))
        .respond_with(ResponseTemplate::new(303).insert_header("location", "/forgot/sent"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/forgot"))
        .and(header("x-csrf-token", "meta-tok"))
        .respond_with(ResponseTemplate::new(303).insert_header("location", "/forgot/sent"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/forgot/sent"))
        .respond_with(html("ok"))
        .mount(&server)
        .await;

    for csrf in [
        "[csrf]\ncookie = \"csrftoken\"\nheader = \"X-CSRFToken\"",
        "[csrf]\nmeta = \"csrf-token\"\nheader = \"X-CSRF-Token\"",
    ] {
        let target = target(&server, csrf);
        let driver = Driver::new(target.clone(), ExchangeLog::default());
        let user = driver.user("u").unwrap();
        let page = user
            .load_form(&target.url("/forgot"), "identifier")
            .await
            .unwrap();
        let visit = user
            .submit(
                &page,
                None,
                &Submission::new().set("identifier", "a@example.test"),
            )
            .await
            .unwrap();
        target
            .forgot
            .accepted
            .check(&visit)
            .unwrap_or_else(|e| panic!("{csrf}: {e}"));
    }
}

#[tokio::test]
async fn missing_csrf_sources_and_forms_are_named() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/forgot"))
        .respond_with(html(
            "<form method=post><input name=identifier></form><form><input name=q></form>",
        ))
        .mount(&server)
        .await;
    let field_target = target(&server, "[csrf]\nfield = \"csrf_token\"");
    let user = Driver::new(field_target.clone(), ExchangeLog::default())
        .user("u")
        .unwrap();

    let page = user
        .load_form(&field_target.url("/forgot"), "identifier")
        .await
        .unwrap();
    let err = user.submit(&page, None, &Submission::new()).await.unwrap_err();
    assert!(
        matches!(&err, DriverError::CsrfField { field, .. } if field == "csrf_token"),
        "{err}"
    );
    assert!(err.to_string().contains("csrf.field"), "{err}");

    let err = user
        .load_form(&field_target.url("/forgot"), "email")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`email`") && text.contains("[identifier]") && text.contains("[q]"),
        "{text}"
    );

    let cookie_target = target(
        &server,
        "[csrf]\ncookie = \"csrftoken\"\nheader = \"X-CSRFToken\"",
    );
    let user = Driver::new(cookie_target.clone(), ExchangeLog::default())
        .user("u")
        .unwrap();
    let page = user
        .load_form(&cookie_target.url("/forgot"), "identifier")
        .await
        .unwrap();
    let err = user.submit(&page, None, &Submission::new()).await.unwrap_err();
    assert!(matches!(err, DriverError::CsrfCookie { .. }), "{err}");
}

#[tokio::test]
async fn redirects_are_followed_on_site_only_and_recorded() {
    let server = MockServer::start().await;
    Mock::given(path("/a"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/b?x=1"))
        .mount(&server)
        .await;
    Mock::given(path("/b"))
        .respond_with(ResponseTemplate::new(303).insert_header("location", "/c"))
        .mount(&server)
        .await;
    Mock::given(path("/c"))
        .respond_with(html("<p>the end</p>").insert_header("referrer-policy", "no-referrer"))
        .mount(&server)
        .await;
    Mock::given(path("/away"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "https://elsewhere.example/x"))
        .mount(&server)
        .await;
    let target = target(&server, "");
    let user = Driver::new(target.clone(), ExchangeLog::default())
        .user("u")
        .unwrap();

    let visit = user.open(&target.url("/a")).await.unwrap();
    let hops: Vec<String> = visit
        .exchanges()
        .map(|e| format!("{} {}", e.url.path(), e.status))
        .collect();
    assert_eq!(hops, ["/a 302", "/b 303", "/c 200"]);
    assert_eq!(visit.last().header("Referrer-Policy"), Some("no-referrer"));
    assert!(visit.summary().contains("→ 302 → /b?x=1"), "{}", visit.summary());
    let expect = Expect {
        status: Some(vec![302]),
        redirect: Some("/b?x=1".into()),
        text: Some("the end".into()),
        ..Expect::default()
    };
    expect.check(&visit).unwrap();
    let wrong = Expect {
        redirect: Some("/elsewhere".into()),
        text: Some("welcome".into()),
        ..Expect::default()
    };
    let why = wrong.check(&visit).unwrap_err();
    assert!(why.contains("/b?x=1") && why.contains("\"welcome\""), "{why}");

    let visit = user.open(&target.url("/away")).await.unwrap();
    assert_eq!(
        visit.exchanges().count(),
        1,
        "off-site redirects are not followed"
    );
    assert_eq!(
        visit.first().location().unwrap().host_str(),
        Some("elsewhere.example")
    );
}

#[tokio::test]
async fn forged_host_and_forwarding_headers_reach_the_app_and_secrets_are_redacted() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/forgot"))
        .respond_with(html(
            "<form method=post><input name=identifier><input type=password name=password></form>",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(header("host", "evil.example"))
        .and(header("x-forwarded-host", "xfh.example"))
        .respond_with(ResponseTemplate::new(303).insert_header("location", "/forgot/sent"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400))
        .with_priority(10)
        .mount(&server)
        .await;
    let target = target(&server, "");
    let driver = Driver::new(target.clone(), ExchangeLog::default());
    let user = driver.user("attacker").unwrap();
    let page = user
        .load_form(&target.url("/forgot"), "identifier")
        .await
        .unwrap();
    let submission = Submission::new()
        .set("identifier", "a@example.test")
        .set("password", "hunter2-hunter2")
        .header("Host", "evil.example")
        .header("X-Forwarded-Host", "xfh.example");
    let visit = user.submit(&page, Some("/forgot"), &submission).await.unwrap();
    assert_eq!(visit.first().status, 303, "{}", visit.first());
    let shown = visit.first().to_string();
    assert!(shown.contains("> Host: evil.example"), "{shown}");
    assert!(
        shown.contains("password=%5BREDACTED%5D") && !shown.contains("hunter2"),
        "{shown}"
    );
}
