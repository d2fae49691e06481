//! Link extraction: URLs in the text part, `href`s in the HTML part, and
//! which of them are reset links.

use url::Url;

use super::expectation::LinkExpectation;
use super::mime::ParsedMail;

/// Links in a plain-text body, in order of appearance (repeats kept): every
/// `http://` or `https://` URL, ended by whitespace, `<`, `>` or `"`, without
/// trailing sentence punctuation (`.,;:!?` and an unbalanced `'`, `)` or `]`).
pub fn text_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let Some(start) = find_scheme(text, pos) else {
            break;
        };
        let rest = &text[start..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
            .unwrap_or(rest.len());
        let mut link = &rest[..end];
        loop {
            let trimmed = link.trim_end_matches(['.', ',', ';', ':', '!', '?']);
            let trimmed = match trimmed.chars().last() {
                Some('\'') if trimmed.matches('\'').count() % 2 == 1 => &trimmed[..trimmed.len() - 1],
                Some(')') if trimmed.matches('(').count() < trimmed.matches(')').count() => {
                    &trimmed[..trimmed.len() - 1]
                }
                Some(']') if trimmed.matches('[').count() < trimmed.matches(']').count() => {
                    &trimmed[..trimmed.len() - 1]
                }
                _ => trimmed,
            };
            if trimmed.len() == link.len() {
                break;
            }
            link = trimmed;
        }
        if link.split_once("://").is_some_and(|(_, after)| !after.is_empty()) {
            links.push(link.to_owned());
        }
        pos = start + end.max(1);
    }
    links
}

/// Byte offset of the next `http://` / `https://` (any case) at or after
/// `from` that does not continue a word.
fn find_scheme(text: &str, from: usize) -> Option<usize> {
    let mut prev_alnum = text[..from]
        .chars()
        .next_back()
        .is_some_and(char::is_alphanumeric);
    for (i, c) in text[from..].char_indices() {
        let at = from + i;
        if !prev_alnum && (c == 'h' || c == 'H') {
            let is = |scheme: &str| {
                text.get(at..at + scheme.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
            };
            if is("http://") || is("https://") {
                return Some(at);
            }
        }
        prev_alnum = c.is_alphanumeric();
    }
    None
}

/// The `href` values of `<a>` and `<area>` elements in an HTML body, in order
/// (repeats kept), with HTML character references decoded (`&amp;`,
/// `&quot;`, `&#39;`, `&#x2F;` ...) and surrounding whitespace removed.
/// Comments, `<script>` and `<style>` contents are skipped.
pub fn html_links(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        rest = &rest[lt + 1..];
        if let Some(comment) = rest.strip_prefix("!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let name_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let name = rest[..name_len].to_ascii_lowercase();
        let (attributes, after) = tag_attributes(&rest[name_len..]);
        rest = after;
        if name == "a" || name == "area" {
            for (attribute, value) in attributes {
                if attribute.eq_ignore_ascii_case("href")
                    && let Some(value) = value
                {
                    links.push(unescape_html(value).trim().to_owned());
                }
            }
        } else if name == "script" || name == "style" {
            let close = format!("</{name}");
            rest = rest
                .to_ascii_lowercase()
                .find(&close)
                .map_or("", |end| &rest[end..]);
        }
    }
    links
}

/// Attributes of one tag, from just after its name; returns them and the
/// text after the closing `>`.
pub(crate) fn tag_attributes(tag: &str) -> (Vec<(&str, Option<&str>)>, &str) {
    let bytes = tag.as_bytes();
    let mut attributes = Vec::new();
    let mut i = 0;
    let skip_space = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        match bytes.get(i) {
            None => return (attributes, ""),
            Some(b'>') => return (attributes, &tag[i + 1..]),
            Some(_) => {}
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = &tag[start..i];
        i = skip_space(i);
        if bytes.get(i) != Some(&b'=') {
            attributes.push((name, None));
            continue;
        }
        i = skip_space(i + 1);
        let value = match bytes.get(i) {
            Some(&quote @ (b'"' | b'\'')) => {
                let from = i + 1;
                let end = tag[from..]
                    .find(char::from(quote))
                    .map_or(tag.len(), |e| from + e);
                i = (end + 1).min(tag.len());
                &tag[from..end]
            }
            _ => {
                let from = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                &tag[from..i]
            }
        };
        attributes.push((name, Some(value)));
    }
}

/// Decodes HTML character references: `&amp; &lt; &gt; &quot; &apos; &nbsp;`
/// and numeric ones (`&#39;`, `&#x2F;`). Unknown or malformed ones stay as written.
pub fn unescape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest
            .char_indices()
            .take(12)
            .find(|&(_, c)| c == ';')
            .and_then(|(semi, _)| Some((entity(&rest[1..semi])?, semi)));
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    let code = if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
        u32::from_str_radix(hex, 16).ok()?
    } else if let Some(dec) = name.strip_prefix('#') {
        dec.parse().ok()?
    } else {
        return match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => None,
        };
    };
    char::from_u32(code).filter(|&c| c != '\0')
}

/// A reset link found in a message (equal links in both parts are one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetLink {
    /// The link; a relative HTML `href` is resolved against the expected
    /// target (and flagged by `relative`).
    pub url: Url,
    /// The link was written relative (no scheme and host); no mail client
    /// can open it.
    pub relative: bool,
    /// The token where it is expected (the first one, if there are several).
    pub token: Option<String>,
    /// Found in the text part.
    pub in_text: bool,
    /// Found in the HTML part.
    pub in_html: bool,
}

/// One link as found, parsed.
pub(super) struct Found {
    pub(super) written: String,
    pub(super) url: Url,
    pub(super) relative: bool,
    pub(super) in_text: bool,
}

pub(super) fn all_links(mail: &ParsedMail, exp: &LinkExpectation) -> (Vec<Found>, Vec<String>) {
    let mut found = Vec::new();
    let mut unparseable = Vec::new();
    let text = mail.text.as_deref().map(text_links).unwrap_or_default();
    let html = mail.html.as_deref().map(html_links).unwrap_or_default();
    let tagged = text
        .into_iter()
        .map(|l| (l, true))
        .chain(html.into_iter().map(|l| (l, false)));
    for (written, in_text) in tagged {
        let parsed = match Url::parse(&written) {
            Ok(url) => Some((url, false)),
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                exp.reset_target.join(&written).ok().map(|url| (url, true))
            }
            Err(_) => None,
        };
        match parsed {
            Some((url, relative)) => found.push(Found {
                written,
                url,
                relative,
                in_text,
            }),
            None => unparseable.push(written),
        }
    }
    (found, unparseable)
}

/// The reset links in `mail`, text part first: links whose path is the
/// expected reset path, on any host (see [`LinkExpectation`]).
pub fn find_reset_links(mail: &ParsedMail, exp: &LinkExpectation) -> Vec<ResetLink> {
    let (found, _) = all_links(mail, exp);
    let mut links: Vec<ResetLink> = Vec::new();
    for f in found.into_iter().filter(|f| exp.is_reset_link(&f.url)) {
        let seen = links
            .iter()
            .position(|l| l.url == f.url && l.relative == f.relative);
        let index = seen.unwrap_or_else(|| {
            links.push(ResetLink {
                token: exp.tokens_in(&f.url).into_iter().next(),
                url: f.url.clone(),
                relative: f.relative,
                in_text: false,
                in_html: false,
            });
            links.len() - 1
        });
        links[index].in_text |= f.in_text;
        links[index].in_html |= !f.in_text;
    }
    links
}
