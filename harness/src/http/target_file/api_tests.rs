//! The API keys of a target file: what loads, and errors that name the key.

use super::*;

const API: &str = r#"
    format = 2
    base_url = "http://127.0.0.1:9"
    [csrf]
    fetch = "/api/csrf/"
    cookie = "csrftoken"
    header = "X-CSRFToken"
    [forgot]
    url = "/api/password/reset/"
    body = { email = "{identifier}" }
    accepted = { status = 200, json = { detail = "sent" } }
    [link]
    url = "https://app.example.test/reset/{uid}/{token}/"
    page = "front_end"
    front_end_url = "http://127.0.0.1:5173"
    [set_password]
    url = "/api/password/reset/confirm/"
    body = { uid = "{uid}", token = "{token}", new_password1 = "{password}", new_password2 = "{password}" }
    success = { status = 200 }
    failure = { status = 400, json_has = ["/token"] }
"#;

fn error(text: &str) -> String {
    HttpTarget::from_toml_str(text, "t.toml").unwrap_err().to_string()
}

#[test]
fn an_api_target_loads() {
    let t = HttpTarget::from_toml_str(API, "t.toml").unwrap();
    let forgot = t.forgot_api().unwrap();
    assert_eq!(forgot.method, reqwest::Method::POST);
    assert_eq!(forgot.encoding, Encoding::Json);
    assert!(t.set_password_api().is_some() && t.login_api().is_none() && t.is_api());
    assert_eq!(t.entry_url().as_str(), "http://127.0.0.1:9/api/password/reset/");
    let link = Url::parse("https://app.example.test/reset/MQ/abc-123/").unwrap();
    assert_eq!(
        t.link_page_url(&link).unwrap().as_str(),
        "http://127.0.0.1:5173/reset/MQ/abc-123/"
    );
    assert_eq!(
        t.forgot.accepted.to_string(),
        "status 200, JSON /detail = \"sent\""
    );
}

#[test]
fn without_a_front_end_url_the_link_page_is_not_loaded() {
    let t = HttpTarget::from_toml_str(
        &API.replace("front_end_url = \"http://127.0.0.1:5173\"", ""),
        "t.toml",
    )
    .unwrap();
    let link = Url::parse("https://app.example.test/reset/MQ/abc/").unwrap();
    assert!(t.link_page_url(&link).unwrap_err().contains("front_end_url"));
}

#[test]
fn api_errors_name_the_key() {
    let cases = [
        (API.replace("url = \"/api/password/reset/\"\n", ""), "forgot.url"),
        (
            API.replace("{ email = \"{identifier}\" }", "{ email = \"x\" }"),
            "forgot.body",
        ),
        (
            API.replace("{ email = \"{identifier}\" }", "{ email = \"a {identifier}\" }"),
            "exactly",
        ),
        (API.replace("uid = \"{uid}\"", "uid = \"{user}\""), "{user}"),
        (API.replace("token = \"{token}\", ", ""), "{token}"),
        (
            API.replace(
                "url = \"/api/password/reset/\"",
                "url = \"/api/password/reset/\"\nmethod = \"GET\"",
            ),
            "forgot.method",
        ),
        (
            API.replace(
                "url = \"/api/password/reset/\"",
                "url = \"/api/password/reset/\"\npage = \"/forgot\"",
            ),
            "forgot.page",
        ),
        (API.replace("page = \"front_end\"", ""), "link.front_end_url"),
        (
            API.replace("cookie = \"csrftoken\"", "pointer = \"/csrfToken\"")
                .replace("fetch = \"/api/csrf/\"\n", ""),
            "csrf.pointer",
        ),
        (
            API.replace("url = \"/api/password/reset/confirm/\"\n", "")
                .replace("body = { uid", "password_field = \"pw\"\n    x = { uid"),
            "x",
        ),
        (
            API.replace("json_has = [\"/token\"]", "json_has = [\"\"]"),
            "set_password.failure.json",
        ),
    ];
    for (text, key) in cases {
        let e = error(&text);
        assert!(e.contains(key), "{key}: {e}");
    }
}

#[test]
fn a_front_end_link_needs_the_set_password_call() {
    let text = API
        .replace("url = \"/api/password/reset/confirm/\"\n", "")
        .replace(
            "body = { uid = \"{uid}\", token = \"{token}\", new_password1 = \"{password}\", new_password2 = \"{password}\" }",
            "password_field = \"pw\"",
        );
    let e = error(&text);
    assert!(e.contains("link.page"), "{e}");
}

#[test]
fn form_encoded_bodies_take_strings_only() {
    let text = API.replace(
        "body = { email = \"{identifier}\" }",
        "encoding = \"form\"\n    body = { email = \"{identifier}\", n = 1 }",
    );
    assert!(error(&text).contains("every value must be a string"));
}

#[test]
fn identifier_shapes_in_form_bodies() {
    use crate::http::api::{IdentifierShape, render};
    let call = ApiCall {
        method: reqwest::Method::POST,
        url: "/x".into(),
        encoding: Encoding::Form,
        body: serde_json::json!({ "email": "{identifier}", "next": "/" }),
    };
    let vars = [("identifier".to_owned(), "a@b.test".to_owned())];
    let text = |shape| render(&call, &vars, shape, Some("c@d.test"), &[]).text;
    assert_eq!(text(IdentifierShape::Single), "email=a%40b.test&next=%2F");
    assert_eq!(
        text(IdentifierShape::Repeated),
        "email=a%40b.test&email=c%40d.test&next=%2F"
    );
    assert_eq!(
        text(IdentifierShape::List),
        "email%5B%5D=a%40b.test&email%5B%5D=c%40d.test&next=%2F"
    );
    let nested = ApiCall {
        encoding: Encoding::Json,
        body: serde_json::json!({ "user": { "email": "{identifier}" }, "password": "{password}" }),
        ..call
    };
    let vars = [
        ("identifier".to_owned(), "a@b.test".to_owned()),
        ("password".to_owned(), "s3cret".to_owned()),
    ];
    let body = render(
        &nested,
        &vars,
        IdentifierShape::List,
        Some("c@d.test"),
        &["password"],
    );
    assert_eq!(
        body.text,
        r#"{"password":"s3cret","user":{"email":["a@b.test","c@d.test"]}}"#
    );
    assert_eq!(
        body.shown,
        r#"{"password":"[REDACTED]","user":{"email":["a@b.test","c@d.test"]}}"#
    );
}
