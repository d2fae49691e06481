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
    assert_eq!(t.link_target(), "http://127.0.0.1:9/reset?token={token}");
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
            format!("{MINIMAL}\n[link]\nurl = \"/reset/{{uid}}/\""),
            "link.url",
        ),
        (
            format!(
                "{MINIMAL}\n[[accounts]]\nidentifier = \"a@x.test\"\nemail = \"a@x.test\"\n[[accounts]]\nidentifier = \"a@x.test\"\nemail = \"b@x.test\""
            ),
            "accounts[1].identifier",
        ),
        (
            format!(
                "{MINIMAL}\n[[accounts]]\nidentifier = \"f@x.test\"\nemail = \"f@x.test\"\n[[accounts]]\nidentifier = \"f@x.test\"\nemail = \"f@x.test\""
            ),
            "need a `username` each",
        ),
        (
            MINIMAL.replace(
                "identifier_field = \"email\"",
                "identifier_field = \"email\"\nidentifier_kind = \"email\"",
            ) + "\n[[accounts]]\nidentifier = \"alice\"\nemail = \"a@x.test\"",
            "must be an email address",
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
fn accounts_sharing_an_address_may_share_the_identifier_with_usernames() {
    let text = MINIMAL.replace(
        "identifier_field = \"email\"",
        "identifier_field = \"email\"\nidentifier_kind = \"email\"\nshared_address = \"one_combined_mail\"",
    ) + "
        [link]
        url = \"/accounts/reset/{uidb64}/{token}/\"
        [[accounts]]
        identifier = \"family@x.test\"
        username = \"dave\"
        email = \"family@x.test\"
        [[accounts]]
        identifier = \"family@x.test\"
        username = \"erin\"
        email = \"family@x.test\"";
    let t = HttpTarget::from_toml_str(&text, "t.toml").unwrap();
    assert_eq!(t.forgot.identifier_kind, IdentifierKind::Email);
    assert_eq!(t.forgot.shared_address, SharedAddress::OneCombinedMail);
    assert_eq!(t.shared_email_groups()[0].len(), 2);
    assert_eq!(t.account("erin").map(|a| a.login_name()), Some("erin"));
    assert_eq!(t.link_target(), "/accounts/reset/{uidb64}/{token}/");
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
