//! The link lint: what counts as "the email carries the link".
//!
//! A template is checked on its rendered output, parsed the way a mail
//! client parses it (html5ever, through `scraper`), not by searching the
//! source text: a link inside an HTML comment, in a hidden element, in the
//! `<head>`, in an attribute other than an `<a>`'s `href`, or in an `<a>`
//! with nothing to click is not a link the user can follow. In the text
//! part, the full URL must stand alone on a line so it can be copied.

use scraper::{ElementRef, Html};

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
