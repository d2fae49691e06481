//! Property tests: the form reader and the target-file loader never panic,
//! whatever they are given.

use proptest::prelude::*;
use resetkit_harness::http::html;
use resetkit_harness::http::target_file::HttpTarget;

const SHIPPED: &str = include_str!("../../targets/portal.toml");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn form_reading_never_panics(page in "(<|>|/|=|\"|'|&|#|;|form|input|textarea|script|name|value|type|hidden|x| |\n|ı|é){0,80}") {
        let forms = html::forms(&page);
        for form in &forms {
            for field in &form.fields {
                // Names come from the page (possibly entity-decoded).
                prop_assert!(field.name.chars().count() <= page.chars().count());
            }
        }
        let _ = html::meta_content(&page, "csrf-token");
        let _ = html::title(&page);
    }

    #[test]
    fn fields_written_by_a_server_are_read_back(name in "[a-z_]{1,12}", value in "[ -~]{0,30}") {
        let escaped = value.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
        let page = format!("<form method=post><input type=hidden name=\"{name}\" value=\"{escaped}\"></form>");
        let forms = html::forms(&page);
        prop_assert_eq!(forms.len(), 1);
        prop_assert_eq!(forms[0].value(&name), Some(value.as_str()));
    }

    #[test]
    fn loading_arbitrary_text_never_panics(text in "[ -~\n]{0,200}") {
        let _ = HttpTarget::from_toml_str(&text, "fuzz.toml");
    }

    #[test]
    fn dropping_or_damaging_a_line_of_the_shipped_file_gives_a_result_not_a_panic(
        line in 0usize..200,
        damage in prop::sample::select(vec!["", "x = 1", "[x]", "status = \"303\"", "page = 5", "= ="]),
    ) {
        let lines: Vec<&str> = SHIPPED.lines().collect();
        let at = line % lines.len();
        let mut edited: Vec<&str> = lines.clone();
        edited[at] = damage;
        let text = edited.join("\n");
        if let Err(e) = HttpTarget::from_toml_str(&text, "edited.toml") {
            prop_assert!(e.to_string().contains("edited.toml"));
        }
    }
}

#[test]
fn the_shipped_portal_target_file_loads() {
    let target = HttpTarget::from_toml_str(SHIPPED, "portal.toml").expect("portal.toml is valid");
    assert_eq!(target.name, "resetkit example portal");
    assert_eq!(target.plain_accounts().len(), 2);
    assert_eq!(target.shared_email_groups()[0].len(), 2);
    assert_eq!(target.lookalikes.len(), 3);
    assert!(target.app.is_some());
    assert_eq!(target.link_target(), "http://127.0.0.1:18380/reset?token={token}");
}

/// Every `toml` block of the target-file reference is a valid target file.
#[test]
fn the_examples_in_targets_md_load() {
    let doc = include_str!("../../TARGETS.md");
    let mut blocks = 0;
    let mut api = 0;
    for block in doc.split("```toml").skip(1) {
        let Some((toml, _)) = block.split_once("```") else {
            panic!("unterminated toml block in TARGETS.md");
        };
        let target = HttpTarget::from_toml_str(toml, "TARGETS.md").unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert!(!target.accounts.is_empty());
        assert!(
            target.load_notes.is_empty(),
            "written in the current format: {:?}",
            target.load_notes
        );
        blocks += 1;
        api += usize::from(target.is_api());
    }
    assert_eq!(blocks, 8, "one complete example per fixture shape");
    assert_eq!(api, 3, "three of them JSON APIs");
}
