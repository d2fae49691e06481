//! Mail inspection: parse a captured reset email (MIME, any transfer
//! encoding), extract its links from the text part and from HTML `href`s,
//! and check what a user and a mail client depend on: exactly one reset link,
//! the same in both parts, alone on its own line in the text part, on the
//! expected scheme / host / path, carrying a well-formed token of enough
//! entropy that goes nowhere else; From / To as expected; `Auto-Submitted`,
//! `Message-ID` and `Date` present; no token in the subject or other headers.
//!
//! Every check gives a [`Finding`] with what was expected and what was seen,
//! so a failure explains itself.
//!
//! ```
//! use resetkit_harness::inspect::{self, Check, LinkExpectation, MailExpectation, ParsedMail};
//!
//! let token = "q2ZxXJ0aW4uZ3Jvd3RoLnRva2VuLnZhbHVlLmhlcmUu"; // 43 characters, 256 bits
//! let link = format!("https://app.example.com/reset?token={token}&lang=en");
//! let raw = format!(
//!     "From: Support <noreply@example.com>\r\nTo: alice@example.com\r\n\
//!      Subject: Reset your password\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\
//!      Message-ID: <1.abc@example.com>\r\nAuto-Submitted: auto-generated\r\n\
//!      MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
//!      --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOpen this link:\r\n\r\n{link}\r\n\r\n\
//!      --b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<a href=\"{}\">Reset</a>\r\n--b--\r\n",
//!     link.replace('&', "&amp;"),
//! );
//! let mail = ParsedMail::parse(raw.as_bytes()).unwrap();
//! let expect = MailExpectation::new(LinkExpectation::parse("https://app.example.com/reset").unwrap())
//!     .from("noreply@example.com")
//!     .to("alice@example.com");
//! let findings = inspect::check(&mail, &expect);
//! assert!(findings.iter().all(|f| f.ok), "{findings:#?}");
//! assert_eq!(inspect::reset_token(&mail, &expect.link).unwrap(), token);
//!
//! // A link on the wrong host is caught, with the evidence in the finding.
//! let evil = raw.replace("https://app.example.com/", "https://evil.example/");
//! let findings = inspect::check(&ParsedMail::parse(evil.as_bytes()).unwrap(), &expect);
//! let bad = findings.iter().find(|f| f.check == Check::LinkMatchesBase).unwrap();
//! assert!(!bad.ok && bad.actual.contains("evil.example"));
//! ```

use std::fmt;

use mail_parser::{HeaderName, MessageParser, PartType};
use resetkit::link::{TOKEN_PARAM, TokenPlacement};
use serde::Serialize;
use url::Url;

/// Tokens shorter than this are not searched for in headers or other links
/// (they would match by accident); [`Check::TokenShape`] already fails them.
const MIN_SEARCHED_TOKEN: usize = 8;

/// Why a message could not be inspected at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// Nothing but whitespace was given.
    #[error("cannot inspect the mail: the message is empty")]
    Empty,
    /// The MIME parser gave up on the input.
    #[error("cannot inspect the mail: the MIME parser cannot read these {len} bytes")]
    Unparseable {
        /// Size of the input.
        len: usize,
    },
    /// No `Name: value` header line was found before the body.
    #[error(
        "cannot inspect the mail: no header fields found (first line: {first_line:?}); \
         expected `Name: value` lines, a blank line, then the body"
    )]
    NoHeaders {
        /// The first line of the input (at most 80 characters), for the report.
        first_line: String,
    },
}

/// A parsed message: the parts the checks look at, plus the raw text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMail {
    /// Addresses in the `From` header(s); a correct email has exactly one.
    pub from: Vec<String>,
    /// Addresses in the `To` header(s).
    pub to: Vec<String>,
    /// Addresses in the `Reply-To` header(s).
    pub reply_to: Vec<String>,
    /// The decoded subject (RFC 2047), empty when there is none.
    pub subject: String,
    /// The `Date`, as RFC 3339, when present and valid.
    pub date: Option<String>,
    /// The decoded `text/plain` body (several are joined by a newline).
    pub text: Option<String>,
    /// The decoded `text/html` body (several are joined by a newline).
    pub html: Option<String>,
    /// Top-level headers in order: name as written, value unfolded and trimmed
    /// but not decoded.
    pub headers: Vec<(String, String)>,
    /// The whole message as text (invalid UTF-8 replaced).
    pub raw: String,
}

impl ParsedMail {
    /// Parses a message as captured by the fake SMTP server (the bytes after
    /// `DATA`). Never panics; input that is not an email is an [`InspectError`].
    pub fn parse(raw: &[u8]) -> Result<ParsedMail, InspectError> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(InspectError::Empty);
        }
        let unparseable = InspectError::Unparseable { len: raw.len() };
        let message = MessageParser::default().parse(raw).ok_or(unparseable.clone())?;
        let root = message.parts.first().ok_or(unparseable)?;
        let headers: Vec<(String, String)> = root
            .headers
            .iter()
            .map(|h| {
                let value = raw
                    .get(h.offset_start as usize..h.offset_end as usize)
                    .unwrap_or_default();
                let value = String::from_utf8_lossy(value).replace(['\r', '\n'], "");
                (h.name.as_str().to_owned(), value.trim().to_owned())
            })
            .collect();
        // RFC 5322 field names are printable ASCII without `:`; the parser is
        // lenient and takes any first line of text for one.
        let field_name =
            |name: &str| !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
        if !headers.iter().any(|(name, _)| field_name(name)) {
            let text = String::from_utf8_lossy(raw);
            let first_line = text.trim_start().lines().next().unwrap_or_default();
            return Err(InspectError::NoHeaders {
                first_line: first_line.chars().take(80).collect(),
            });
        }
        let addresses = |name: HeaderName<'static>| -> Vec<String> {
            message
                .header_values(name)
                .filter_map(|v| v.as_address())
                .flat_map(|a| a.iter())
                .filter_map(|a| a.address())
                .map(str::to_owned)
                .collect()
        };
        let join = |bodies: Vec<&str>| (!bodies.is_empty()).then(|| bodies.join("\n"));
        let text = join(
            message
                .text_bodies()
                .filter_map(|p| match &p.body {
                    PartType::Text(t) => Some(t.as_ref()),
                    _ => None,
                })
                .collect(),
        );
        let html = join(
            message
                .html_bodies()
                .filter_map(|p| match &p.body {
                    PartType::Html(h) => Some(h.as_ref()),
                    _ => None,
                })
                .collect(),
        );
        Ok(ParsedMail {
            from: addresses(HeaderName::From),
            to: addresses(HeaderName::To),
            reply_to: addresses(HeaderName::ReplyTo),
            subject: message.subject().unwrap_or_default().to_owned(),
            date: message.date().filter(|d| d.is_valid()).map(|d| d.to_rfc3339()),
            text,
            html,
            headers,
            raw: String::from_utf8_lossy(raw).into_owned(),
        })
    }

    /// The first header called `name` (case-insensitive), unfolded, not decoded.
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.header_all(name).next()
    }

    /// Every header called `name` (case-insensitive), in order.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

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
fn tag_attributes(tag: &str) -> (Vec<(&str, Option<&str>)>, &str) {
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
fn unescape_html(text: &str) -> String {
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

/// Where a reset link carries its token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenLocation {
    /// In this query parameter (`?token=...`; resetkit's default).
    Query(String),
    /// In this parameter of the fragment (`#token=...`).
    Fragment(String),
    /// As the last path segment under the reset path (`/reset/<token>`), as
    /// some frameworks do. Every link under the reset path then counts as a
    /// reset link, so another endpoint below it (say `/reset/deny`) would too.
    PathSegment,
}

impl Default for TokenLocation {
    fn default() -> Self {
        TokenLocation::Query(TOKEN_PARAM.to_owned())
    }
}

impl From<TokenPlacement> for TokenLocation {
    /// resetkit's placements, with its parameter name ([`TOKEN_PARAM`]).
    fn from(placement: TokenPlacement) -> Self {
        match placement {
            TokenPlacement::Fragment => TokenLocation::Fragment(TOKEN_PARAM.to_owned()),
            _ => TokenLocation::Query(TOKEN_PARAM.to_owned()),
        }
    }
}

impl fmt::Display for TokenLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenLocation::Query(name) => write!(f, "the `{name}` query parameter"),
            TokenLocation::Fragment(name) => write!(f, "the `{name}` fragment parameter"),
            TokenLocation::PathSegment => write!(f, "the last path segment"),
        }
    }
}

/// What the reset link must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkExpectation {
    /// The configured target without token, e.g. `https://app.example.com/reset`:
    /// links must have exactly its scheme, host, port and path.
    pub reset_target: Url,
    /// Where the token travels.
    pub placement: TokenLocation,
    /// Minimum entropy the token's length allows (default 128 bits).
    pub min_token_bits: u32,
}

impl LinkExpectation {
    /// Links to `reset_target`, token in the `token` query parameter, at least 128 bits.
    pub fn new(reset_target: Url) -> Self {
        LinkExpectation {
            reset_target,
            placement: TokenLocation::default(),
            min_token_bits: 128,
        }
    }

    /// [`LinkExpectation::new`] from text.
    pub fn parse(reset_target: &str) -> Result<Self, url::ParseError> {
        Ok(Self::new(Url::parse(reset_target)?))
    }

    /// Sets where the token travels.
    pub fn placement(mut self, placement: impl Into<TokenLocation>) -> Self {
        self.placement = placement.into();
        self
    }

    /// Sets the minimum token entropy in bits.
    pub fn min_token_bits(mut self, bits: u32) -> Self {
        self.min_token_bits = bits;
        self
    }

    /// Whether `url` is a reset link: its path is the reset path (for
    /// [`TokenLocation::PathSegment`]: lies under it), whatever its scheme
    /// and host, so links to a wrong host are still found and then fail
    /// [`Check::LinkMatchesBase`]. A trailing `/` is ignored here.
    fn is_reset_link(&self, url: &Url) -> bool {
        let target = self.reset_target.path().trim_end_matches('/');
        let path = url.path().trim_end_matches('/');
        match self.placement {
            TokenLocation::PathSegment => path
                .strip_prefix(target)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|rest| !rest.is_empty()),
            _ => path == target,
        }
    }

    /// Every token value `url` carries where the token is expected.
    fn tokens_in(&self, url: &Url) -> Vec<String> {
        let params = |text: Option<&str>, name: &str| -> Vec<String> {
            url::form_urlencoded::parse(text.unwrap_or_default().as_bytes())
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .collect()
        };
        match &self.placement {
            TokenLocation::Query(name) => params(url.query(), name),
            TokenLocation::Fragment(name) => params(url.fragment(), name),
            TokenLocation::PathSegment => url
                .path_segments()
                .and_then(|mut s| s.rfind(|s| !s.is_empty()))
                .map(str::to_owned)
                .into_iter()
                .collect(),
        }
    }
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
struct Found {
    written: String,
    url: Url,
    relative: bool,
    in_text: bool,
}

fn all_links(mail: &ParsedMail, exp: &LinkExpectation) -> (Vec<Found>, Vec<String>) {
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

/// What the whole message must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailExpectation {
    /// The reset link.
    pub link: LinkExpectation,
    /// The expected sender address (`From`), when known.
    pub from: Option<String>,
    /// The expected recipient address (`To`), when known.
    pub to: Option<String>,
}

impl MailExpectation {
    /// Expects `link`; any single sender and recipient.
    pub fn new(link: LinkExpectation) -> Self {
        MailExpectation {
            link,
            from: None,
            to: None,
        }
    }

    /// Expects this sender address.
    pub fn from(mut self, address: impl Into<String>) -> Self {
        self.from = Some(address.into());
        self
    }

    /// Expects this recipient address.
    pub fn to(mut self, address: impl Into<String>) -> Self {
        self.to = Some(address.into());
        self
    }
}

/// The checks, in the order [`check`] reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Check {
    /// The message has a `text/plain` and a `text/html` part.
    BothParts,
    /// Exactly one distinct reset link.
    OneResetLink,
    /// The text and HTML parts carry the same reset link(s).
    SameLinkBothParts,
    /// The full reset URL stands alone on a line of the text part.
    LinkOnOwnLine,
    /// Reset links have exactly the expected scheme, host, port and path.
    LinkMatchesBase,
    /// Tokens are URL-safe base64 without padding, long enough.
    TokenShape,
    /// No link to another site carries the token.
    TokenStaysOnSite,
    /// One `From` address, the expected one.
    FromMatches,
    /// One `To` address, the expected one.
    ToMatches,
    /// `Auto-Submitted: auto-generated`.
    AutoSubmitted,
    /// One well-formed `Message-ID`.
    MessageId,
    /// One valid `Date`.
    Date,
    /// The subject (decoded or raw) contains no token that a link of the
    /// message carries.
    NoTokenInSubject,
    /// No other header contains such a token.
    NoTokenInHeaders,
}

impl Check {
    /// Stable snake-case name (used in reports).
    pub fn id(self) -> &'static str {
        match self {
            Check::BothParts => "both_parts",
            Check::OneResetLink => "one_reset_link",
            Check::SameLinkBothParts => "same_link_both_parts",
            Check::LinkOnOwnLine => "link_on_own_line",
            Check::LinkMatchesBase => "link_matches_base",
            Check::TokenShape => "token_shape",
            Check::TokenStaysOnSite => "token_stays_on_site",
            Check::FromMatches => "from_matches",
            Check::ToMatches => "to_matches",
            Check::AutoSubmitted => "auto_submitted",
            Check::MessageId => "message_id",
            Check::Date => "date",
            Check::NoTokenInSubject => "no_token_in_subject",
            Check::NoTokenInHeaders => "no_token_in_headers",
        }
    }

    /// Whether the check is about the reset link (run by [`check_links`]).
    pub fn is_link_check(self) -> bool {
        matches!(
            self,
            Check::BothParts
                | Check::OneResetLink
                | Check::SameLinkBothParts
                | Check::LinkOnOwnLine
                | Check::LinkMatchesBase
                | Check::TokenShape
                | Check::TokenStaysOnSite
        )
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Which check.
    pub check: Check,
    /// Whether the message passed it.
    pub ok: bool,
    /// What was expected.
    pub expected: String,
    /// What the message has.
    pub actual: String,
}

impl Finding {
    fn new(check: Check, ok: bool, expected: impl Into<String>, actual: impl Into<String>) -> Self {
        Finding {
            check,
            ok,
            expected: expected.into(),
            actual: actual.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.ok { "ok" } else { "FAIL" };
        write!(
            f,
            "[{status}] {}: expected {}; saw {}",
            self.check, self.expected, self.actual
        )
    }
}

/// Runs every check: [`check_links`], then sender, recipient and headers.
/// When there is no reset link, the per-link checks are left out
/// ([`Check::OneResetLink`] fails).
pub fn check(mail: &ParsedMail, exp: &MailExpectation) -> Vec<Finding> {
    let mut findings = check_links(mail, &exp.link);
    let tokens = known_tokens(mail, &exp.link);
    findings.push(one_address(
        Check::FromMatches,
        "From",
        &mail.from,
        exp.from.as_deref(),
    ));
    findings.push(one_address(Check::ToMatches, "To", &mail.to, exp.to.as_deref()));
    findings.push(auto_submitted(mail));
    findings.push(message_id(mail));
    findings.push(date(mail));
    findings.push(no_token_in_subject(mail, &tokens));
    findings.push(no_token_in_headers(mail, &tokens));
    findings
}

/// Only the link checks (the [`Check::is_link_check`] ones).
pub fn check_links(mail: &ParsedMail, exp: &LinkExpectation) -> Vec<Finding> {
    let links = find_reset_links(mail, exp);
    let target = &exp.reset_target;
    let mut findings = vec![Finding::new(
        Check::BothParts,
        mail.text.is_some() && mail.html.is_some(),
        "a text/plain and a text/html part",
        format!(
            "text/plain {}, text/html {}",
            if mail.text.is_some() { "present" } else { "missing" },
            if mail.html.is_some() { "present" } else { "missing" }
        ),
    )];
    let (found, unparseable) = all_links(mail, exp);
    let shown = |links: &[ResetLink]| list(links.iter().map(describe));
    findings.push(Finding::new(
        Check::OneResetLink,
        links.len() == 1,
        format!(
            "exactly one link to the reset path `{}` (on any host)",
            target.path()
        ),
        match links.len() {
            1 => shown(&links),
            n => {
                let others: Vec<&str> = found
                    .iter()
                    .filter(|f| !exp.is_reset_link(&f.url))
                    .map(|f| f.written.as_str())
                    .chain(unparseable.iter().map(String::as_str))
                    .collect();
                format!(
                    "{n} reset link(s) {}; other links: {}",
                    shown(&links),
                    list(others)
                )
            }
        },
    ));
    if links.is_empty() {
        return findings;
    }
    let in_text: Vec<&ResetLink> = links.iter().filter(|l| l.in_text).collect();
    let in_html: Vec<&ResetLink> = links.iter().filter(|l| l.in_html).collect();
    findings.push(Finding::new(
        Check::SameLinkBothParts,
        links.iter().all(|l| l.in_text && l.in_html),
        "the same reset link(s) in the text and the HTML part",
        format!(
            "text part: {}; HTML part: {}",
            list(in_text.iter().map(|l| describe(l))),
            list(in_html.iter().map(|l| describe(l)))
        ),
    ));
    let text = mail.text.as_deref().unwrap_or_default();
    let not_alone: Vec<&ResetLink> = links.iter().filter(|l| !alone_on_a_line(text, &l.url)).collect();
    findings.push(Finding::new(
        Check::LinkOnOwnLine,
        not_alone.is_empty(),
        "each reset URL in full, alone on a line of the text part",
        if not_alone.is_empty() {
            "every reset URL stands alone on a line".to_owned()
        } else {
            let lines: Vec<String> = not_alone.iter().map(|l| line_with(text, l)).collect();
            format!("not alone on a line: {}", list(lines))
        },
    ));
    let off_base: Vec<&ResetLink> = links.iter().filter(|l| !matches_base(l, exp)).collect();
    findings.push(Finding::new(
        Check::LinkMatchesBase,
        off_base.is_empty(),
        format!("links to `{target}` (same scheme, host, port and path)"),
        if off_base.is_empty() {
            shown(&links)
        } else {
            list(off_base.iter().map(|l| describe(l)))
        },
    ));
    let problems: Vec<String> = links
        .iter()
        .filter_map(|l| {
            let problem = token_problem(&exp.tokens_in(&l.url), exp)?;
            Some(format!("{}: {problem}", l.url))
        })
        .collect();
    findings.push(Finding::new(
        Check::TokenShape,
        problems.is_empty(),
        format!(
            "a token in {}: URL-safe base64 (A-Z a-z 0-9 - _), no padding, at least {} bits",
            exp.placement, exp.min_token_bits
        ),
        if problems.is_empty() {
            let lengths: Vec<String> = links
                .iter()
                .filter_map(|l| l.token.as_ref())
                .map(|t| format!("{} characters ({} bits)", t.len(), t.len() * 6 / 8 * 8))
                .collect();
            format!("token(s) of {}", lengths.join(", "))
        } else {
            problems.join("; ")
        },
    ));
    let tokens = known_tokens(mail, exp);
    let leaks: Vec<&str> = found
        .iter()
        .filter(|f| f.url.origin() != target.origin())
        .filter(|f| {
            tokens
                .iter()
                .any(|t| f.url.as_str().contains(t.as_str()) || f.written.contains(t.as_str()))
        })
        .map(|f| f.written.as_str())
        .collect();
    findings.push(Finding::new(
        Check::TokenStaysOnSite,
        leaks.is_empty(),
        format!(
            "the token only in links to {}",
            target.origin().ascii_serialization()
        ),
        if leaks.is_empty() {
            "no link elsewhere carries it".to_owned()
        } else {
            format!("carried to: {}", list(leaks))
        },
    ));
    findings
}

/// The token of the message's single valid reset link, or the failing link
/// findings (see [`check_links`]). Sender and headers are not checked here.
pub fn reset_token(mail: &ParsedMail, exp: &LinkExpectation) -> Result<String, Vec<Finding>> {
    let failures: Vec<Finding> = check_links(mail, exp).into_iter().filter(|f| !f.ok).collect();
    if !failures.is_empty() {
        return Err(failures);
    }
    match find_reset_links(mail, exp)
        .into_iter()
        .next()
        .and_then(|l| l.token)
    {
        Some(token) => Ok(token),
        None => Err(vec![Finding::new(
            Check::TokenShape,
            false,
            format!("a token in {}", exp.placement),
            "none",
        )]),
    }
}

fn describe(link: &ResetLink) -> String {
    if link.relative {
        format!("{} (written relative)", link.url)
    } else {
        link.url.to_string()
    }
}

fn list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| format!("`{}`", s.as_ref())).collect();
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// Whether a line of `text` is `url` alone (surrounding spaces or `<...>` allowed).
fn alone_on_a_line(text: &str, url: &Url) -> bool {
    text.lines().map(str::trim).any(|line| {
        let line = line
            .strip_prefix('<')
            .and_then(|l| l.strip_suffix('>'))
            .unwrap_or(line);
        Url::parse(line).is_ok_and(|u| &u == url)
    })
}

/// The text line that carries `link`, for the report.
fn line_with(text: &str, link: &ResetLink) -> String {
    if !link.in_text {
        return format!("{} is not in the text part", link.url);
    }
    text.lines()
        .map(str::trim)
        .find(|line| {
            text_links(line)
                .iter()
                .any(|l| Url::parse(l).is_ok_and(|u| u == link.url))
        })
        .unwrap_or_default()
        .to_owned()
}

fn matches_base(link: &ResetLink, exp: &LinkExpectation) -> bool {
    let (url, target) = (&link.url, &exp.reset_target);
    let path_ok = match exp.placement {
        TokenLocation::PathSegment => url
            .path()
            .strip_prefix(target.path().trim_end_matches('/'))
            .is_some_and(|rest| rest.starts_with('/')),
        _ => url.path() == target.path(),
    };
    !link.relative
        && url.scheme() == target.scheme()
        && url.host_str() == target.host_str()
        && url.port_or_known_default() == target.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none()
        && path_ok
}

/// What is wrong with the token(s) a reset link carries, if anything.
fn token_problem(tokens: &[String], exp: &LinkExpectation) -> Option<String> {
    let token = match tokens {
        [] => return Some(format!("no token in {}", exp.placement)),
        [token] => token,
        _ => return Some(format!("{} tokens in {}", tokens.len(), exp.placement)),
    };
    if token.is_empty() {
        return Some("the token is empty".to_owned());
    }
    if token.contains('=') {
        return Some(format!("the token `{token}` is padded with `=`"));
    }
    if token.contains(['+', '/']) {
        return Some(format!(
            "the token `{token}` uses the standard base64 alphabet (`+`, `/`), not the URL-safe one"
        ));
    }
    let bad: String = token
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        .collect();
    if !bad.is_empty() {
        return Some(format!(
            "the token `{token}` has characters outside URL-safe base64: {bad:?}"
        ));
    }
    if token.len() % 4 == 1 {
        return Some(format!(
            "{} characters is not a possible base64 length",
            token.len()
        ));
    }
    let bits = token.len() * 6 / 8 * 8;
    if bits < exp.min_token_bits as usize {
        return Some(format!(
            "the token has {} characters = {bits} bits, fewer than {}",
            token.len(),
            exp.min_token_bits
        ));
    }
    None
}

/// Tokens carried by any link of the message (at the expected place), long
/// enough to search for.
fn known_tokens(mail: &ParsedMail, exp: &LinkExpectation) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    for found in all_links(mail, exp).0 {
        for token in exp.tokens_in(&found.url) {
            if token.len() >= MIN_SEARCHED_TOKEN && !tokens.contains(&token) {
                tokens.push(token);
            }
        }
    }
    tokens
}

fn bare_address(address: &str) -> &str {
    let address = address.trim();
    match (address.rfind('<'), address.rfind('>')) {
        (Some(open), Some(close)) if open < close => &address[open + 1..close],
        _ => address,
    }
}

fn one_address(check: Check, header: &str, seen: &[String], expected: Option<&str>) -> Finding {
    let expected = expected.map(bare_address);
    let ok = match (seen, expected) {
        ([one], Some(expected)) => one.to_lowercase() == expected.to_lowercase(),
        ([_], None) => true,
        _ => false,
    };
    Finding::new(
        check,
        ok,
        match expected {
            Some(address) => format!("{header}: exactly <{address}>"),
            None => format!("{header}: exactly one address"),
        },
        format!("{header}: {}", list(seen)),
    )
}

fn auto_submitted(mail: &ParsedMail) -> Finding {
    let values: Vec<&str> = mail.header_all("Auto-Submitted").collect();
    let ok = matches!(values.as_slice(), [value]
        if value.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("auto-generated"));
    Finding::new(
        Check::AutoSubmitted,
        ok,
        "one `Auto-Submitted: auto-generated` header",
        format!("Auto-Submitted: {}", list(values)),
    )
}

fn message_id(mail: &ParsedMail) -> Finding {
    let values: Vec<&str> = mail.header_all("Message-ID").collect();
    let well_formed = |id: &str| {
        id.strip_prefix('<')
            .and_then(|id| id.strip_suffix('>'))
            .and_then(|id| id.split_once('@'))
            .is_some_and(|(left, right)| {
                let fine =
                    |s: &str| !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || "<>@".contains(c));
                fine(left) && fine(right)
            })
    };
    Finding::new(
        Check::MessageId,
        matches!(values.as_slice(), [id] if well_formed(id)),
        "one `Message-ID: <left@right>` header",
        format!("Message-ID: {}", list(values)),
    )
}

fn date(mail: &ParsedMail) -> Finding {
    let values: Vec<&str> = mail.header_all("Date").collect();
    Finding::new(
        Check::Date,
        values.len() == 1 && mail.date.is_some(),
        "one valid RFC 5322 `Date` header",
        format!(
            "Date: {}{}",
            list(values),
            if mail.date.is_none() {
                " (not a valid date)"
            } else {
                ""
            }
        ),
    )
}

fn no_token_in_subject(mail: &ParsedMail, tokens: &[String]) -> Finding {
    let raw = mail.header("Subject").unwrap_or_default();
    let leaked: Vec<&str> = tokens
        .iter()
        .map(String::as_str)
        .filter(|t| mail.subject.contains(t) || raw.contains(t))
        .collect();
    Finding::new(
        Check::NoTokenInSubject,
        leaked.is_empty(),
        "a subject without the token",
        format!(
            "Subject: {:?}{}",
            mail.subject,
            if leaked.is_empty() {
                ""
            } else {
                " contains a token"
            }
        ),
    )
}

fn no_token_in_headers(mail: &ParsedMail, tokens: &[String]) -> Finding {
    let leaking: Vec<&str> = mail
        .headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("Subject"))
        .filter(|(_, value)| tokens.iter().any(|t| value.contains(t.as_str())))
        .map(|(name, _)| name.as_str())
        .collect();
    Finding::new(
        Check::NoTokenInHeaders,
        leaking.is_empty(),
        "the token in no header",
        if leaking.is_empty() {
            "no header carries it".to_owned()
        } else {
            format!("carried by: {}", list(leaking))
        },
    )
}
