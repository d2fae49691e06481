//! Parsing a captured message into the parts the checks look at.

use mail_parser::{HeaderName, MessageParser, PartType};

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
