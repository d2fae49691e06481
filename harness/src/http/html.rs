//! Just enough HTML reading to drive forms: the `<form>` elements of a page
//! with their fields (so hidden CSRF tokens and defaults are sent as a
//! browser would), and `<meta name=... content=...>` values (Rails / Laravel
//! put the CSRF token there).
//!
//! This is a small, forgiving tokenizer rather than a full HTML5 parser:
//! server-rendered reset forms are simple, and a tree builder (html5ever via
//! `scraper`) would add some twenty crates to the build for three element
//! kinds. It skips comments, `<script>` and `<style>` contents, decodes
//! character references in attribute values, and never panics on bad input.
//! Not handled: fields tied to a form with the `form=` attribute, forms
//! nested in forms, and `<select>` elements.
//!
//! ```
//! use resetkit_harness::http::html;
//!
//! let page = r#"<form method="post" action="/forgot?x=1&amp;y=2">
//!   <input type="hidden" name="csrf_token" value="abc&quot;def">
//!   <input name="identifier" autofocus>
//!   <button type="submit">Send</button>
//! </form>"#;
//! let forms = html::forms(page);
//! assert_eq!(forms.len(), 1);
//! assert_eq!(forms[0].action.as_deref(), Some("/forgot?x=1&y=2"));
//! assert_eq!(forms[0].value("csrf_token"), Some("abc\"def"));
//! assert!(forms[0].has_field("identifier"));
//! ```

/// One field of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The `name` attribute.
    pub name: String,
    /// The value a browser would send unchanged (the `value` attribute, or a
    /// `<textarea>`'s text).
    pub value: String,
    /// The input type in lower case (`hidden`, `text`, `password`,
    /// `checkbox`, ...; `textarea` for a text area).
    pub kind: String,
    /// For checkboxes and radio buttons: whether `checked` is set.
    pub checked: bool,
}

impl Field {
    /// Whether a browser submits this field without the user touching it.
    pub fn submitted_by_default(&self) -> bool {
        match self.kind.as_str() {
            "submit" | "button" | "image" | "reset" | "file" => false,
            "checkbox" | "radio" => self.checked,
            _ => true,
        }
    }
}

/// A `<form>` element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    /// The `action` attribute as written (decoded), if any.
    pub action: Option<String>,
    /// The method in lower case (`get` when absent, as in browsers).
    pub method: String,
    /// The fields, in document order.
    pub fields: Vec<Field>,
}

impl Form {
    /// Whether a field called `name` exists.
    pub fn has_field(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.name == name)
    }

    /// The value of the first field called `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_str())
    }

    /// `(name, value)` of every field a browser would send by default.
    pub fn default_values(&self) -> Vec<(String, String)> {
        self.fields
            .iter()
            .filter(|f| f.submitted_by_default())
            .map(|f| (f.name.clone(), f.value.clone()))
            .collect()
    }
}

/// Every `<form>` in `html`, in document order. A form left open at the end
/// of the page is still returned.
pub fn forms(html: &str) -> Vec<Form> {
    let mut forms = Vec::new();
    let mut current: Option<Form> = None;
    for tag in Tags::new(html) {
        match tag.name.as_str() {
            "form" if !tag.closing => {
                if let Some(open) = current.take() {
                    forms.push(open);
                }
                current = Some(Form {
                    action: tag.attribute("action").map(str::to_owned),
                    method: tag
                        .attribute("method")
                        .map_or_else(|| "get".to_owned(), |m| m.trim().to_ascii_lowercase()),
                    fields: Vec::new(),
                });
            }
            "form" => {
                if let Some(open) = current.take() {
                    forms.push(open);
                }
            }
            "input" | "textarea" if !tag.closing => {
                let (Some(form), Some(name)) = (current.as_mut(), tag.attribute("name")) else {
                    continue;
                };
                let kind = if tag.name == "textarea" {
                    "textarea".to_owned()
                } else {
                    tag.attribute("type")
                        .map_or_else(|| "text".to_owned(), |t| t.trim().to_ascii_lowercase())
                };
                let value = if tag.name == "textarea" {
                    tag.text.clone().unwrap_or_default()
                } else {
                    tag.attribute("value").unwrap_or_default().to_owned()
                };
                form.fields.push(Field {
                    name: name.to_owned(),
                    value,
                    checked: tag.attribute("checked").is_some(),
                    kind,
                });
            }
            _ => {}
        }
    }
    forms.extend(current);
    forms
}

/// The `content` of the first `<meta name="NAME">` (name compared without
/// ASCII case), e.g. `csrf-token`.
pub fn meta_content(html: &str, name: &str) -> Option<String> {
    Tags::new(html)
        .filter(|t| t.name == "meta" && !t.closing)
        .find(|t| t.attribute("name").is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .and_then(|t| t.attribute("content").map(str::to_owned))
}

/// The text of the `<title>` element, trimmed.
pub fn title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let end = open_end + lower[open_end..].find("</title")?;
    Some(unescape(html.get(open_end..end)?.trim()))
}

/// One start or end tag with decoded attribute values.
#[derive(Debug)]
struct Tag {
    name: String,
    closing: bool,
    attributes: Vec<(String, Option<String>)>,
    /// For `<textarea>`: the raw text up to `</textarea>`, decoded.
    text: Option<String>,
}

impl Tag {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or_default())
    }
}

/// Iterates over the tags of a document.
struct Tags<'a> {
    rest: &'a str,
}

impl<'a> Tags<'a> {
    fn new(html: &'a str) -> Self {
        Tags { rest: html }
    }

    /// Skips raw text up to (not including) `</name`, case-insensitively;
    /// returns the skipped text.
    fn raw_text(&mut self, name: &str) -> &'a str {
        let close = format!("</{name}");
        let end = find_ascii_ci(self.rest, &close).unwrap_or(self.rest.len());
        let text = &self.rest[..end];
        self.rest = &self.rest[end..];
        text
    }
}

impl Iterator for Tags<'_> {
    type Item = Tag;

    fn next(&mut self) -> Option<Tag> {
        loop {
            let lt = self.rest.find('<')?;
            self.rest = &self.rest[lt + 1..];
            if let Some(comment) = self.rest.strip_prefix("!--") {
                self.rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
                continue;
            }
            let closing = self.rest.starts_with('/');
            let after_slash = if closing { &self.rest[1..] } else { self.rest };
            let name_len = after_slash
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(after_slash.len());
            if name_len == 0 {
                // `<` not starting a tag (`a < b`, `<!DOCTYPE`, `<?xml`): skip to `>`.
                if !after_slash.starts_with(['!', '?']) {
                    continue;
                }
                self.rest = after_slash.find('>').map_or("", |end| &after_slash[end + 1..]);
                continue;
            }
            let name = after_slash[..name_len].to_ascii_lowercase();
            let (attributes, after) = attributes(&after_slash[name_len..]);
            self.rest = after;
            let mut tag = Tag {
                name,
                closing,
                attributes,
                text: None,
            };
            if !closing {
                match tag.name.as_str() {
                    "script" | "style" => {
                        self.raw_text(&tag.name.clone());
                    }
                    "textarea" => {
                        let text = self.raw_text("textarea");
                        tag.text = Some(unescape(text.strip_prefix('\n').unwrap_or(text)));
                    }
                    _ => {}
                }
            }
            return Some(tag);
        }
    }
}

/// Byte offset of `needle` (ASCII) in `haystack`, ignoring ASCII case.
fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Attributes of one tag, from just after its name; returns them (values
/// decoded) and the text after the closing `>`.
fn attributes(tag: &str) -> (Vec<(String, Option<String>)>, &str) {
    let (raw, after) = crate::inspect::tag_attributes(tag);
    let decoded = raw
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.map(unescape)))
        .collect();
    (decoded, after)
}

/// Decodes HTML character references (shared with the mail inspection).
pub use crate::inspect::unescape_html as unescape;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_of_several_forms() {
        let page = r#"<!DOCTYPE html><html><head><meta name="csrf-token" content="m&amp;1"><title> Reset &amp; co </title>
            <script>if (a < b) { document.write("<form><input name=fake>") }</script></head>
            <body><!-- <form><input name="commented"></form> -->
            <FORM Method=POST action=/login><INPUT TYPE=hidden NAME=csrf value=x1>
              <input type=password name=password>
              <input type=checkbox name=remember checked><input type=checkbox name=spam>
              <input type=submit name=go value=Go></FORM>
            <form action='/reset/new' method='post'>
              <input type="hidden" name="csrf" value='x2'/>
              <textarea name="note">
a &lt; b</textarea>
            </form></body></html>"#;
        let forms = forms(page);
        assert_eq!(forms.len(), 2, "{forms:#?}");
        assert_eq!(forms[0].method, "post");
        assert_eq!(forms[0].action.as_deref(), Some("/login"));
        assert_eq!(forms[0].value("csrf"), Some("x1"));
        assert_eq!(
            forms[0].default_values(),
            vec![
                ("csrf".to_owned(), "x1".to_owned()),
                ("password".to_owned(), String::new()),
                ("remember".to_owned(), String::new()),
            ]
        );
        assert_eq!(forms[1].value("csrf"), Some("x2"));
        assert_eq!(forms[1].value("note"), Some("a < b"));
        assert!(
            !forms
                .iter()
                .any(|f| f.has_field("fake") || f.has_field("commented"))
        );
        assert_eq!(meta_content(page, "CSRF-Token").as_deref(), Some("m&1"));
        assert_eq!(title(page).as_deref(), Some("Reset & co"));
    }

    #[test]
    fn tolerates_broken_markup() {
        for page in [
            "<form",
            "<form action=\"x",
            "<input name=a>",
            "<<>>",
            "<form><input name=",
            "&#xZZ;<",
            "<textarea>",
        ] {
            let _ = forms(page);
            let _ = meta_content(page, "x");
            let _ = title(page);
        }
        let open = forms("<form method=post><input name=a value=1>");
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].value("a"), Some("1"));
    }

    #[test]
    fn method_defaults_to_get() {
        assert_eq!(forms("<form><input name=q></form>")[0].method, "get");
    }
}
