//! The checks and their findings; the link checks live here, the header
//! checks in [`super::headers`].

use std::fmt;

use serde::Serialize;
use url::Url;

use super::expectation::{LinkExpectation, MailExpectation, TokenLocation};
use super::headers::{
    auto_submitted, date, message_id, no_token_in_headers, no_token_in_subject, one_address,
};
use super::links::{ResetLink, all_links, find_reset_links, text_links};
use super::mime::ParsedMail;

/// Tokens shorter than this are not searched for in headers or other links
/// (they would match by accident); [`Check::TokenShape`] already fails them.
const MIN_SEARCHED_TOKEN: usize = 8;

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
    pub(super) fn new(
        check: Check,
        ok: bool,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Self {
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

pub(super) fn list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
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
