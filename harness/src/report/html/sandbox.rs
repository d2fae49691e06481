//! An email's HTML shown safely: defanged, in a sandboxed frame.

use minijinja::{Value, context};

use super::{MAIL_CSP, render};

/// An email's HTML in a frame that can run nothing and load nothing:
/// `sandbox=""` (no scripts, no forms, no navigation, unique origin), a CSP
/// meta inside the document, and the HTML [defanged](defang) (browsers open
/// connections for `<link rel=preconnect>` and nested frames before any
/// policy is applied).
pub fn sandboxed_frame(html: &str) -> String {
    let doc = render(
        "mail_doc.html",
        context! {
            mail_csp => Value::from_safe_string(MAIL_CSP.to_owned()),
            defanged => Value::from_safe_string(defang(html)),
        },
    );
    render("mail_frame.html", context! { doc })
}

/// Elements that fetch or navigate on their own; renamed (`<blocked-link>`)
/// so the browser sees an inert unknown element.
const BLOCKED_ELEMENTS: &[&str] = &[
    "link",
    "meta",
    "base",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "portal",
    "fencedframe",
    "script",
    "noscript",
    "applet",
    "form",
];

/// An email's HTML made inert for a preview: elements that load or
/// navigate by themselves are renamed, and links (`<a>`, `<area>`) lose
/// `href` / `ping` (kept as `data-blocked-href`), so neither hovering nor a
/// click leaves the page. Text and layout stay as they are.
pub fn defang(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + 64);
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        let after = &rest[1..];
        let (slash, name_start) = match after.strip_prefix('/') {
            Some(rest) => ("/", rest),
            None => ("", after),
        };
        let name_len = name_start
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == ':'))
            .unwrap_or(name_start.len());
        let name = &name_start[..name_len];
        if name.is_empty() {
            out.push('<');
            rest = after;
            continue;
        }
        let lower = name.to_ascii_lowercase();
        let consumed = 1 + slash.len() + name_len;
        if BLOCKED_ELEMENTS.contains(&lower.as_str()) {
            out.push('<');
            out.push_str(slash);
            out.push_str("blocked-");
            out.push_str(name);
            rest = &rest[consumed..];
        } else if (lower == "a" || lower == "area") && slash.is_empty() {
            let tag_end = tag_end(&rest[consumed..]).map_or(rest.len(), |e| consumed + e);
            out.push_str(&rest[..consumed]);
            out.push_str(&rename_link_attributes(&rest[consumed..tag_end]));
            rest = &rest[tag_end..];
        } else {
            out.push_str(&rest[..consumed]);
            rest = &rest[consumed..];
        }
    }
    out.push_str(rest);
    out
}

/// Where a tag's `>` is, skipping quoted attribute values.
fn tag_end(attrs: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in attrs.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// `href`, `xlink:href` and `ping` attribute names prefixed with `data-blocked-`.
fn rename_link_attributes(attrs: &str) -> String {
    let mut out = String::with_capacity(attrs.len() + 16);
    let bytes = attrs.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == q {
                quote = None;
            }
        } else if b == b'"' || b == b'\'' {
            quote = Some(b);
        } else if (i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'/'))
            && let Some(len) = ["xlink:href", "href", "ping"]
                .iter()
                .find(|name| {
                    attrs[i..].len() >= name.len() && attrs[i..i + name.len()].eq_ignore_ascii_case(name)
                })
                .map(|name| name.len())
        {
            out.push_str("data-blocked-");
            out.push_str(&attrs[i..i + len]);
            i += len;
            continue;
        }
        let ch_len = attrs[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&attrs[i..i + ch_len]);
        i += ch_len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::defang;

    #[test]
    fn defang_renames_loading_elements_and_unlinks_anchors() {
        let html = r#"<LINK rel=preconnect href="http://x/"><iframe/src="http://x/f"></iframe><p>Hi <a class=b HREF="http://x/r?a>b" ping=http://x/p>go</a></p><img src="http://x/i">"#;
        let out = defang(html);
        assert!(out.contains("<blocked-LINK rel=preconnect"), "{out}");
        assert!(
            out.contains("<blocked-iframe/src") && out.contains("</blocked-iframe>"),
            "{out}"
        );
        assert!(
            out.contains(
                r#"<a class=b data-blocked-HREF="http://x/r?a>b" data-blocked-ping=http://x/p>go</a>"#
            ),
            "{out}"
        );
        assert!(out.contains("<img src=") && out.contains("<p>Hi "), "{out}");
        assert_eq!(defang("a < b and <3 and <"), "a < b and <3 and <");
    }
}
