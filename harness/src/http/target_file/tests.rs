use super::*;

const MINIMAL: &str = r#"
    base_url = "http://127.0.0.1:9"
    [forgot]
    page = "/forgot"
    identifier_field = "email"
    accepted = { status = 200, text = "sent" }
    [set_password]
    password_field = "pw"
    success = { redirect = "/done" }
"#;

fn error(text: &str) -> String {
    HttpTarget::from_toml_str(text, "t.toml").unwrap_err().to_string()
}

#[test]
fn minimal_file_gets_defaults() {
    let t = HttpTarget::from_toml_str(MINIMAL, "t.toml").unwrap();
    assert_eq!(t.name, "http://127.0.0.1:9/");
    assert_eq!(t.link_target().as_str(), "http://127.0.0.1:9/reset");
    assert_eq!(t.link.follow, Follow::Form);
    assert_eq!(t.forgot.accepted.status, Some(vec![200]));
    assert_eq!(t.checks.parallel_submits, 8);
    assert!(!t.csrf.is_used());
    assert_eq!(t.url("/forgot").as_str(), "http://127.0.0.1:9/forgot");
}

#[test]
fn errors_name_the_key() {
    let cases = [
        (
            MINIMAL.replace("identifier_field", "identifer_field"),
            "identifer_field",
        ),
        (MINIMAL.replace("http://127.0.0.1:9", "127.0.0.1:9"), "base_url"),
        (MINIMAL.replace("\"/forgot\"", "\"forgot\""), "page"),
        (MINIMAL.replace("status = 200", "status = 9999"), "9999"),
        (MINIMAL.replace("status = 200", "status = \"ok\""), "status"),
        (
            MINIMAL.replace("success = { redirect = \"/done\" }", "success = {}"),
            "set_password.success",
        ),
        (
            format!("{MINIMAL}\n[link]\nfollow = \"redirect\""),
            "set_password.page",
        ),
        (format!("{MINIMAL}\n[link]\nfollow = \"teleport\""), "follow"),
        (
            format!("{MINIMAL}\n[checks]\nparallel_submits = 1"),
            "checks.parallel_submits",
        ),
        (
            format!("{MINIMAL}\n[[accounts]]\nidentifier = \"a\"\nemail = \"nope\""),
            "accounts[0].email",
        ),
        (
            format!("{MINIMAL}\n[[lookalikes]]\ntyped = \"x@y\"\naccount = \"zed\""),
            "lookalikes[0].account",
        ),
        (format!("{MINIMAL}\n[csrf]\nheader = \"X-CSRF\""), "csrf.header"),
        (format!("{MINIMAL}\n[app]\ncommand = []"), "app.command"),
        ("base_url = ".to_owned(), "line 1"),
    ];
    for (text, key) in cases {
        let err = error(&text);
        assert!(err.contains(key), "expected {key:?} in: {err}");
        assert!(err.contains("t.toml"), "{err}");
    }
}

#[test]
fn groups_accounts_by_address() {
    let text = format!(
        "{MINIMAL}
        [[accounts]]
        identifier = \"alice\"
        email = \"alice@example.test\"
        password = \"hunter2-hunter2\"
        [[accounts]]
        identifier = \"dave\"
        email = \"family@example.test\"
        [[accounts]]
        identifier = \"erin\"
        email = \"Family@example.test\"
        [[accounts]]
        identifier = \"carol\"
        email = \"carol@example.test\"
        disabled = true
        [[lookalikes]]
        typed = \"ALICE@example.test\"
        account = \"alice\"
        [[lookalikes]]
        typed = \"al\u{131}ce@example.test\"
        account = \"alice\""
    );
    let t = HttpTarget::from_toml_str(&text, "t.toml").unwrap();
    let plain: Vec<&str> = t.plain_accounts().iter().map(|a| a.identifier.as_str()).collect();
    assert_eq!(plain, ["alice"]);
    let groups = t.shared_email_groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].len(), 2);
    let stored = "alice@example.test";
    assert_eq!(t.lookalikes[0].kind(stored), LookAlikeKind::CaseVariant);
    assert_eq!(t.lookalikes[1].kind(stored), LookAlikeKind::Unicode);
    assert!(
        !format!("{t:?}").contains("hunter2"),
        "passwords stay out of Debug"
    );
}
