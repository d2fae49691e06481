//! Reports that are safe to keep: reset tokens shown as a short fingerprint.
//!
//! A run's reports (console, JSON, JUnit, HTML) end up in CI artifacts; the
//! reset links of the test accounts in them would be live. A
//! [`TokenRedactor`] learns the secrets of every link in the mail the run
//! captured (query values, fragment values and path segments that look like
//! tokens) and replaces each occurrence, also one split by a
//! quoted-printable soft line break (`=\r\n`), with
//! `tok#` + the first 8 hex digits of its SHA-256 + `…`: the same token gets
//! the same fingerprint everywhere, so evidence can still be followed.
//!
//! ```
//! use resetkit_harness::report::{TokenRedactor, token_fingerprint};
//!
//! let mut redactor = TokenRedactor::default();
//! redactor.learn_text("open https://app.example/reset?token=9HKzMoxhzXYGr1iOhiJC7BrRyGiTdiZjW9PKCUoGhxk");
//! let shown = redactor.redact("token=9HKzMoxhzXYGr1iOhiJC7B=\r\nrRyGiTdiZjW9PKCUoGhxk in the raw mail");
//! assert_eq!(shown, format!("token={} in the raw mail", token_fingerprint("9HKzMoxhzXYGr1iOhiJC7BrRyGiTdiZjW9PKCUoGhxk")));
//! assert!(shown.starts_with("token=tok#"));
//! ```

use std::borrow::Cow;
use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::inspect::{ParsedMail, html_links, text_links};
use crate::scenario::{RunReport, ScenarioResult, Verdict};

/// Shortest value taken for a token (shorter values are ids, not secrets).
const MIN_TOKEN_LEN: usize = 16;

/// `tok#` + the first 8 hex digits of the token's SHA-256 + `…`.
pub fn token_fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::from("tok#");
    for byte in &digest[..4] {
        out.push_str(&format!("{byte:02x}"));
    }
    out.push('…');
    out
}

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')
}

/// Whether a link part looks like a secret: long, URL-safe, and not a word
/// (it has a digit, or both upper- and lower-case letters).
pub(crate) fn looks_like_token(value: &str) -> bool {
    value.len() >= MIN_TOKEN_LEN
        && value.chars().all(token_char)
        && (value.chars().any(|c| c.is_ascii_digit())
            || (value.chars().any(|c| c.is_ascii_uppercase())
                && value.chars().any(|c| c.is_ascii_lowercase())))
}

/// The parts of a link that look like tokens, with where they are
/// (`query token`, `fragment`, `path segment 3`): long, URL-safe and not a
/// word.
pub(crate) fn token_parts(url: &url::Url) -> Vec<(String, String)> {
    let mut candidates: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (format!("query {k}"), v.into_owned()))
        .collect();
    if let Some(fragment) = url.fragment() {
        candidates.push(("fragment".to_owned(), fragment.to_owned()));
        candidates.extend(
            url::form_urlencoded::parse(fragment.as_bytes())
                .map(|(k, v)| (format!("fragment {k}"), v.into_owned())),
        );
    }
    if let Some(segments) = url.path_segments() {
        candidates.extend(segments.enumerate().map(|(i, s)| {
            (
                format!("path segment {}", i + 1),
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        }));
    }
    candidates.retain(|(_, v)| looks_like_token(v));
    candidates
}

/// Finds tokens in captured mail and replaces them in report text.
#[derive(Debug, Clone, Default)]
pub struct TokenRedactor {
    tokens: BTreeSet<String>,
}

impl TokenRedactor {
    /// How many distinct tokens it knows.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether it knows no token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The tokens it knows (for tests that check reports leak none).
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.tokens.iter().map(String::as_str)
    }

    /// Adds one token.
    pub fn learn_token(&mut self, token: &str) {
        if token.len() >= MIN_TOKEN_LEN {
            self.tokens.insert(token.to_owned());
        }
    }

    /// Learns the tokens of every link in a raw message (text and HTML
    /// parts, decoded).
    pub fn learn_message(&mut self, raw: &[u8]) {
        match ParsedMail::parse(raw) {
            Ok(mail) => {
                if let Some(text) = &mail.text {
                    self.learn_text(text);
                }
                if let Some(html) = &mail.html {
                    for link in html_links(html) {
                        self.learn_link(&link);
                    }
                }
            }
            // Not MIME: take what looks like a link in the bytes.
            Err(_) => self.learn_text(&String::from_utf8_lossy(raw)),
        }
    }

    /// Learns the tokens of every `http(s)://` link in plain text.
    pub fn learn_text(&mut self, text: &str) {
        for link in text_links(text) {
            self.learn_link(&link);
        }
    }

    /// Learns the token-like parts of one link.
    pub fn learn_link(&mut self, link: &str) {
        if let Ok(url) = url::Url::parse(link) {
            for (_, token) in token_parts(&url) {
                self.tokens.insert(token);
            }
        }
    }

    /// Learns the tokens a result carries: its evidence's secrets and the
    /// links of its emails.
    pub fn learn_result(&mut self, result: &ScenarioResult) {
        for secret in &result.evidence.secrets {
            self.learn_token(secret);
        }
        for email in &result.evidence.emails {
            self.learn_message(email.as_bytes());
        }
    }

    /// Learns every token a report's results carry.
    pub fn learn_report(&mut self, report: &RunReport) {
        for result in &report.results {
            self.learn_result(result);
        }
    }

    /// The secrets of every link in these raw messages (for [`Evidence::secrets`](crate::scenario::Evidence::secrets)).
    pub fn secrets_of<'m>(messages: impl IntoIterator<Item = &'m [u8]>) -> Vec<String> {
        let mut redactor = TokenRedactor::default();
        for raw in messages {
            redactor.learn_message(raw);
        }
        redactor.tokens.into_iter().collect()
    }

    /// `text` with every known token replaced by its fingerprint, also
    /// where a quoted-printable soft line break splits it.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.tokens.is_empty() || text.len() < MIN_TOKEN_LEN {
            return Cow::Borrowed(text);
        }
        let mut spans: Vec<(usize, usize, &str)> = Vec::new();
        for run in token_runs(text) {
            if run.chars.len() < MIN_TOKEN_LEN {
                continue;
            }
            let joined: String = run.chars.iter().map(|&(_, c)| c).collect();
            for token in &self.tokens {
                let mut from = 0;
                while let Some(found) = joined[from..].find(token.as_str()) {
                    let start = from + found;
                    let last = start + token.len() - 1;
                    let begin = run.chars[start].0;
                    let end = run.chars[last].0 + 1;
                    spans.push((begin, end, token));
                    from = start + token.len();
                }
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        spans.sort_by_key(|&(begin, end, _)| (begin, std::cmp::Reverse(end)));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (begin, end, token) in spans {
            if begin < at {
                continue; // overlaps a longer token already replaced
            }
            out.push_str(&text[at..begin]);
            out.push_str(&token_fingerprint(token));
            at = end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }

    fn redact_in_place(&self, text: &mut String) {
        if let Cow::Owned(redacted) = self.redact(text) {
            *text = redacted;
        }
    }

    /// Redacts one scenario result's text (expected, actual, reasons, evidence).
    pub fn redact_result(&self, result: &mut ScenarioResult) {
        if self.tokens.is_empty() {
            return;
        }
        for text in [&mut result.expected, &mut result.actual].into_iter().flatten() {
            self.redact_in_place(text);
        }
        if let Verdict::Skipped(reason) | Verdict::Error(reason) = &mut result.verdict {
            self.redact_in_place(reason);
        }
        let e = &mut result.evidence;
        for text in e
            .emails
            .iter_mut()
            .chain(&mut e.events)
            .chain(&mut e.notes)
            .chain(&mut e.transcript)
        {
            self.redact_in_place(text);
        }
    }

    /// Redacts a whole report.
    pub fn redact_report(&self, report: &mut RunReport) {
        self.redact_in_place(&mut report.target);
        for result in &mut report.results {
            self.redact_result(result);
        }
    }
}

/// The report as written when tokens are not revealed: every token in its
/// evidence (and in `captured`, every raw message of the run) replaced by
/// its fingerprint.
pub fn redacted<'m>(mut report: RunReport, captured: impl IntoIterator<Item = &'m [u8]>) -> RunReport {
    let mut redactor = TokenRedactor::default();
    redactor.learn_report(&report);
    for raw in captured {
        redactor.learn_message(raw);
    }
    redactor.redact_report(&mut report);
    report
}

/// A maximal run of token characters, quoted-printable soft line breaks
/// inside it removed: each character with its byte offset in the text.
struct Run {
    chars: Vec<(usize, char)>,
}

fn token_runs(text: &str) -> Vec<Run> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut current: Vec<(usize, char)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if (b as char).is_ascii() && token_char(b as char) {
            current.push((i, b as char));
            i += 1;
            continue;
        }
        // A soft line break continues the run: `=\r\n` or `=\n`.
        if b == b'=' && !current.is_empty() {
            let skip = if bytes.get(i + 1..i + 3) == Some(b"\r\n") {
                3
            } else if bytes.get(i + 1) == Some(&b'\n') {
                2
            } else {
                0
            };
            if skip > 0 && bytes.get(i + skip).is_some_and(|&n| token_char(n as char)) {
                i += skip;
                continue;
            }
        }
        if !current.is_empty() {
            runs.push(Run {
                chars: std::mem::take(&mut current),
            });
        }
        i += 1;
    }
    if !current.is_empty() {
        runs.push(Run { chars: current });
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "Sl6LJIgq1RZuYmS-A68_b3RAwzmM4-jqtxqNi75nBCc";

    #[test]
    fn learns_query_fragment_and_path_tokens_not_words() {
        let mut r = TokenRedactor::default();
        r.learn_link(&format!("https://a.example/reset?token={TOKEN}&lang=en"));
        r.learn_link("https://a.example/accounts/reset/MQ/c3r5yd-0123456789abcdef0123456789abcdef/");
        r.learn_link("https://a.example/reset#token=AbCdEfGhIjKlMnOpQrSt");
        r.learn_link("https://a.example/forgot-password-confirmation/");
        let tokens: Vec<&str> = r.tokens().collect();
        assert!(tokens.contains(&TOKEN));
        assert!(tokens.contains(&"c3r5yd-0123456789abcdef0123456789abcdef"));
        assert!(tokens.contains(&"AbCdEfGhIjKlMnOpQrSt"));
        assert!(!tokens.iter().any(|t| t.contains("forgot")));
    }

    #[test]
    fn redacts_plain_and_soft_broken_occurrences() {
        let mut r = TokenRedactor::default();
        r.learn_token(TOKEN);
        let fp = token_fingerprint(TOKEN);
        assert_eq!(r.redact(&format!("a {TOKEN} b")), format!("a {fp} b"));
        let qp = "deny?token=3DSl6LJIgq1RZuYmS-A68_b3RAwzmM4-j=\r\nqtxqNi75nBCc\r\n";
        assert_eq!(r.redact(qp), format!("deny?token=3D{fp}\r\n"));
        assert_eq!(
            r.redact("nothing here at all, really"),
            "nothing here at all, really"
        );
        assert!(fp.starts_with("tok#") && fp.chars().count() == 13);
    }

    #[test]
    fn handles_non_ascii_text_around_tokens() {
        let mut r = TokenRedactor::default();
        r.learn_token(TOKEN);
        let text = format!("é→{TOKEN}←ü");
        assert_eq!(r.redact(&text), format!("é→{}←ü", token_fingerprint(TOKEN)));
    }
}
