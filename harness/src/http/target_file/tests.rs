use super::*;

const MINIMAL: &str = r#"
    format = 2
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

#[test]
fn a_format_1_file_whose_meaning_changed_is_refused_with_how_to_convert_it() {
    // Written for format 1: `url` was the prefix, the token a segment below it.
    let old = MINIMAL.replace("format = 2", "") + "[link]\nurl = \"/accounts/reset/\"\ntoken_in = \"path\"\n";
    let err = error(&old);
    for words in [
        "link.token_in",
        "format 1",
        "no `format` line",
        "url = \"/accounts/reset/{uidb64}/{token}/\"",
        "remove `token_in`",
        "format = 2",
    ] {
        assert!(err.contains(words), "{words:?} in: {err}");
    }
    // The same file with `format = 1` said out loud: refused alike.
    let said = format!("format = 1\n{}", old);
    assert!(error(&said).contains("`format = 1`"));
}

#[test]
fn a_format_1_file_with_the_same_meaning_is_converted_with_a_note() {
    let old = MINIMAL.replace("format = 2", "") + "[link]\nurl = \"/reset\"\ntoken_in = \"query\"\n";
    let t = HttpTarget::from_toml_str(&old, "t.toml").unwrap();
    assert_eq!(t.link_target(), "http://127.0.0.1:9/reset?token={token}");
    assert_eq!(t.load_notes.len(), 1);
    assert!(t.load_notes[0].contains("Add `format = 2`"), "{:?}", t.load_notes);
    let current = HttpTarget::from_toml_str(MINIMAL, "t.toml").unwrap();
    assert!(current.load_notes.is_empty());
    // A pattern in format 2 with the token in the path is what the old file should become.
    let new = format!("{MINIMAL}\n[link]\nurl = \"/accounts/reset/{{uidb64}}/{{token}}/\"\n");
    assert!(
        HttpTarget::from_toml_str(&new, "t.toml")
            .unwrap()
            .load_notes
            .is_empty()
    );
}

#[test]
fn a_newer_or_malformed_format_is_refused() {
    let err = error(&MINIMAL.replace("format = 2", "format = 3"));
    assert!(
        err.contains("`format` is 3") && err.contains("newer resetkit-harness"),
        "{err}"
    );
    let err = error(&MINIMAL.replace("format = 2", "format = \"2\""));
    assert!(err.contains("`format` must be a whole number"), "{err}");
}
