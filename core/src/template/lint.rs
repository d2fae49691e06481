//! The link lint: what counts as "the email carries the link".
//!
//! A template is checked on its rendered output, parsed the way a mail
//! client parses it (html5ever, through `scraper`), not by searching the
//! source text: a link inside an HTML comment, in a hidden element, in the
//! `<head>`, in an attribute other than an `<a>`'s `href`, or in an `<a>`
//! with nothing to click is not a link the user can follow. In the text
//! part, the full URL must stand alone on a line so it can be copied.
//!
//! Every email is rendered for several sample accounts
//! ([`sample_usernames`]: odd, long, right-to-left, markup characters) and
//! for the service's real site name and link lifetime, so a template whose
//! link appears only for one sample does not pass.

use minijinja::Value;
use scraper::{ElementRef, Html};

use super::{
    AccountLinks, CompiledTemplates, combined_context, confine, describe, password_changed_context,
    reset_context, template_error, username_required_context,
};
use crate::error::BuildError;
use crate::link::LinkBuilder;
use crate::mail::EmailKind;
use crate::token::RawToken;

/// Elements whose content is never shown in the message body.
const NEVER_SHOWN: &[&str] = &["head", "template", "noscript", "title", "script", "style"];

/// Inline styles that hide an element (compared with spaces removed, lower case).
const HIDING_STYLES: &[&str] = &[
    "display:none",
    "visibility:hidden",
    "mso-hide:all",
    "opacity:0;",
    "font-size:0;",
    "max-height:0;",
];

/// The `href`s (trimmed, entities decoded) of the visible `<a>` elements of
/// an HTML body: not in a comment, not hidden, with something to click.
pub(crate) fn visible_links(html: &str) -> Vec<String> {
    let document = Html::parse_document(html);
    document
        .tree
        .root()
        .descendants()
        .filter_map(ElementRef::wrap)
        .filter(|e| e.value().name() == "a")
        .filter(|a| is_visible(*a) && has_clickable_content(*a))
        .filter_map(|a| a.value().attr("href").map(|h| h.trim().to_owned()))
        .collect()
}

/// Whether the HTML body has a visible `<a>` whose `href` is exactly `link`.
impl CompiledTemplates {
    pub(super) fn check_locale(&self, locale: &str, samples: &LintSamples<'_>) -> Result<(), BuildError> {
        let sample = |kind, part, reason: String| template_error(locale, kind, part, reason);
        let entropy = |e: crate::token::EntropyError| sample(EmailKind::Reset, "text", e.to_string());
        let users = sample_usernames();
        // Two renderings of every case, with the same accounts and other
        // tokens: what differs between them depends on the token.
        let mut renderings = Vec::with_capacity(2);
        let mut tokens = Vec::with_capacity(2 * users.len());
        for _ in 0..2 {
            let mut accounts = Vec::with_capacity(users.len());
            for username in &users {
                let token = RawToken::generate().map_err(entropy)?;
                accounts.push(AccountLinks {
                    username: username.clone(),
                    link: samples.reset_links.link(&token),
                    deny_link: samples.deny_links.link(&token),
                });
                tokens.push(token.expose_encoded().to_owned());
            }
            renderings.push(lint_cases(samples, &accounts, &users));
        }
        let second = renderings.pop().unwrap_or_default();
        let first = renderings.pop().unwrap_or_default();
        let link_page = confine::link_page(samples.reset_links);
        for (case, other) in first.into_iter().zip(second) {
            let LintCase {
                kind,
                ctx,
                links: required_links,
                username,
            } = case;
            let with = || describe_sample(&username);
            let render = |ctx: &Value| {
                self.render(locale, kind, ctx)
                    .map_err(|e| sample(kind, "render", format!("{}{}", e.reason, with())))
            };
            let rendered = render(&ctx)?;
            let rendered_other = render(&other.ctx)?;
            if rendered.subject.is_empty() {
                return Err(sample(kind, "subject", format!("renders empty{}", with())));
            }
            if tokens.iter().any(|t| rendered.subject.contains(t.as_str())) {
                return Err(sample(
                    kind,
                    "subject",
                    "must not contain the link or token".into(),
                ));
            }
            if kind == EmailKind::UsernameRequired
                && tokens
                    .iter()
                    .any(|t| rendered.text.contains(t.as_str()) || rendered.html.contains(t.as_str()))
            {
                return Err(sample(kind, "text", "must not contain reset links".into()));
            }
            let visible = if required_links.is_empty() {
                Vec::new()
            } else {
                visible_links(&rendered.html)
            };
            for link in &required_links {
                if !text_has_link_alone(&rendered.text, link) {
                    return Err(sample(
                        kind,
                        "text",
                        format!(
                            "must contain the full URL alone on its own line (missing `{}`{})",
                            describe(link),
                            with()
                        ),
                    ));
                }
                if !visible.iter().any(|href| href == link) {
                    return Err(sample(
                        kind,
                        "html",
                        format!(
                            "must contain the link as the href of a visible <a> (missing `{}`{}); \
                             links in comments, hidden elements or other attributes do not count",
                            describe(link),
                            with()
                        ),
                    ));
                }
            }
            // Then that the token goes nowhere else.
            let links: Vec<&str> = required_links.iter().map(String::as_str).collect();
            let other_links: Vec<&str> = other.links.iter().map(String::as_str).collect();
            confine::check_rendered(&rendered, &rendered_other, &links, &other_links, &link_page)
                .map_err(|(part, reason)| sample(kind, part, format!("{reason}{}", with())))?;
        }
        Ok(())
    }
}

/// One email the lint renders: its context, the links it must carry, and
/// the sample username (for the error message).
struct LintCase {
    kind: EmailKind,
    ctx: Value,
    links: Vec<String>,
    username: String,
}

/// Every email of a locale, for each site name and sample account.
fn lint_cases(samples: &LintSamples<'_>, accounts: &[AccountLinks], users: &[String]) -> Vec<LintCase> {
    let security_link = samples.security_link;
    let mut cases = Vec::new();
    for site in samples.site_names() {
        for (i, a) in accounts.iter().enumerate() {
            let b = &accounts[(i + 1) % accounts.len()];
            cases.push(LintCase {
                kind: EmailKind::Reset,
                ctx: reset_context(site, a, samples.expires_minutes),
                links: vec![a.link.clone(), a.deny_link.clone()],
                username: a.username.clone(),
            });
            cases.push(LintCase {
                kind: EmailKind::ResetCombined,
                ctx: combined_context(site, &[a.clone(), b.clone()], samples.expires_minutes),
                links: vec![
                    a.link.clone(),
                    a.deny_link.clone(),
                    b.link.clone(),
                    b.deny_link.clone(),
                ],
                username: a.username.clone(),
            });
            cases.push(LintCase {
                kind: EmailKind::PasswordChanged,
                ctx: password_changed_context(site, &a.username, security_link),
                links: vec![security_link.to_owned()],
                username: a.username.clone(),
            });
        }
        cases.push(LintCase {
            kind: EmailKind::UsernameRequired,
            ctx: username_required_context(site, users),
            links: vec![],
            username: String::new(),
        });
    }
    cases
}

/// What the lint renders every template with: the service's links, its
/// real site name and link lifetime, and sample accounts.
pub(super) struct LintSamples<'a> {
    pub(super) reset_links: &'a LinkBuilder,
    pub(super) deny_links: &'a LinkBuilder,
    pub(super) security_link: &'a str,
    pub(super) site_name: &'a str,
    pub(super) expires_minutes: u64,
}

impl LintSamples<'_> {
    fn site_names(&self) -> Vec<&str> {
        let mut names = vec![self.site_name];
        if self.site_name != "Sample Site" {
            names.push("Sample Site");
        }
        names
    }
}

/// The usernames every template is rendered with before it is accepted: a
/// template must carry its links for any account, not just for one sample.
pub fn sample_usernames() -> Vec<String> {
    vec![
        "sample-user-a".to_owned(),
        // Markup characters: a template that prints the username unescaped
        // (`|safe`) can swallow the link into a comment or an attribute.
        "o'brien & <b>\"co\"</b> <!-- </a>".to_owned(),
        // Long: a template that truncates a line holding username and link.
        format!("a-very-long-username-{}", "x".repeat(129)),
        // Right-to-left text and a bidi override.
        "\u{645}\u{633}\u{62a}\u{62e}\u{62f}\u{645}-\u{5de}\u{5e9}\u{5ea}\u{5de}\u{5e9}\u{202e}".to_owned(),
        // Odd: spaces, digits, non-Latin scripts, an apostrophe.
        "Zoë 李 O'Neil 42".to_owned(),
    ]
}

fn describe_sample(username: &str) -> String {
    if username.is_empty() {
        String::new()
    } else {
        let short: String = username.chars().take(24).collect();
        let ellipsis = if short.len() < username.len() { "…" } else { "" };
        format!(" when the username is {short:?}{ellipsis}")
    }
}

#[cfg(test)]
fn html_has_visible_link(html: &str, link: &str) -> bool {
    visible_links(html).iter().any(|h| h == link)
}

/// Whether the text body has `link` alone on a line (surrounding spaces allowed).
pub(crate) fn text_has_link_alone(text: &str, link: &str) -> bool {
    text.lines().any(|line| line.trim() == link)
}

fn is_visible(element: ElementRef<'_>) -> bool {
    std::iter::once(element)
        .chain(element.ancestors().filter_map(ElementRef::wrap))
        .all(|e| {
            let el = e.value();
            !NEVER_SHOWN.contains(&el.name())
                && el.attr("hidden").is_none()
                && !el.attr("style").is_some_and(style_hides)
        })
}

fn style_hides(style: &str) -> bool {
    let mut compact: String = style
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    compact.push(';');
    HIDING_STYLES.iter().any(|h| {
        compact
            .match_indices(h)
            .any(|(i, _)| i == 0 || compact[..i].ends_with(';'))
    })
}

fn has_clickable_content(a: ElementRef<'_>) -> bool {
    a.text().any(|t| !t.trim().is_empty())
        || a.descendants()
            .filter_map(ElementRef::wrap)
            .any(|e| e.value().name() == "img")
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: &str = "https://a.example/reset?token=abc";

    #[test]
    fn a_plain_link_counts_and_entities_are_decoded() {
        assert!(html_has_visible_link(
            &format!("<p><a href=\"{L}\">Reset</a></p>"),
            L
        ));
        assert!(html_has_visible_link(
            &format!("<a href='{L}'><img src=x alt=Reset></a>"),
            L
        ));
        let with_amp = "https://a.example/reset?x=1&token=abc";
        assert!(html_has_visible_link(
            "<a href=\"https://a.example/reset?x=1&amp;token=abc\">Reset</a>",
            with_amp
        ));
        assert!(html_has_visible_link(
            &format!("<a style=\"color: red; display: inline\" href=\"{L}\">x</a>"),
            L
        ));
    }

    #[test]
    fn hidden_commented_and_empty_links_do_not_count() {
        for html in [
            format!("<!-- <a href=\"{L}\">Reset</a> -->"),
            format!("<a href=\"{L}\"></a>"),
            format!("<a href=\"{L}\">   </a>"),
            format!("<div hidden><a href=\"{L}\">Reset</a></div>"),
            format!("<div style=\"DISPLAY: none\"><a href=\"{L}\">Reset</a></div>"),
            format!("<a style=\"visibility:hidden\" href=\"{L}\">Reset</a>"),
            format!("<template><a href=\"{L}\">Reset</a></template>"),
            format!("<p title=\"{L}\">{L}</p>"),
            format!("<a href=\"{L}x\">Reset</a>"),
        ] {
            assert!(!html_has_visible_link(&html, L), "{html}");
        }
    }

    #[test]
    fn text_needs_the_url_alone_on_a_line() {
        assert!(text_has_link_alone(&format!("Open:\n\n  {L}  \n"), L));
        assert!(!text_has_link_alone(&format!("Open {L} now"), L));
        assert!(!text_has_link_alone(&format!("<{L}>"), L));
    }
}
