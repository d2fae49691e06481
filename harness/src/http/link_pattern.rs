//! What a reset link looks like, with placeholders: the one function that
//! decides "this link is a reset link" and "this link is on the target",
//! used by every check.
//!
//! `link.url` in the target file is either a plain URL (the token then
//! travels as `link.token_in` / `link.token_param` say) or a pattern:
//! `{token}` stands for the token, as a whole path segment, a query value
//! or a fragment value; any other `{name}` matches one non-empty path
//! segment or query / fragment value (a per-user segment, an address).
//! A pattern may be a path (joined to `base_url`) or an absolute URL.
//!
//! ```
//! use resetkit_harness::http::link_pattern::LinkPattern;
//! use url::Url;
//!
//! let base = Url::parse("http://127.0.0.1:8000").unwrap();
//! let pattern = LinkPattern::parse("/accounts/reset/{uidb64}/{token}/", &base).unwrap();
//! let link = Url::parse("http://127.0.0.1:8000/accounts/reset/Mg/c4x8f2-9a1b/").unwrap();
//! assert_eq!(pattern.on_target(&link).unwrap(), "c4x8f2-9a1b");
//!
//! let moved = Url::parse("http://evil.test/accounts/reset/Mg/c4x8f2-9a1b/").unwrap();
//! assert_eq!(pattern.token(&moved).as_deref(), Some("c4x8f2-9a1b")); // a reset link ...
//! assert!(pattern.on_target(&moved).is_err());                         // ... but not on the target
//!
//! let laravel = LinkPattern::parse("/reset-password/{token}?email={email}", &base).unwrap();
//! let link = Url::parse("http://127.0.0.1:8000/reset-password/abc123?email=a%40b.test").unwrap();
//! assert_eq!(laravel.token(&link).as_deref(), Some("abc123"));
//! ```

use std::fmt;

use url::Url;

use crate::inspect::{LinkExpectation, TokenLocation};

/// One part of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Exactly this text.
    Literal(String),
    /// The token.
    Token,
    /// Any one non-empty value (`{name}`).
    Any(String),
    /// Placeholders sharing one segment or value with literal text
    /// between them (`{uidb36}-{token}`): each placeholder but the last
    /// takes the shortest non-empty text before the next literal, the last
    /// one the rest.
    Compound(Vec<Part>),
}

fn placeholder(text: &str) -> Result<Option<Part>, String> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .filter(|t| !t.contains(['{', '}']));
    match inner {
        Some("token") => Ok(Some(Part::Token)),
        Some(name) if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Ok(Some(Part::Any(name.to_owned())))
        }
        Some(_) => Err(format!("`{text}` is not a placeholder (`{{token}}`, `{{name}}`)")),
        None => Ok(None),
    }
}

impl Part {
    fn parse(text: &str) -> Result<Part, String> {
        if let Some(part) = placeholder(text)? {
            return Ok(part);
        }
        if !text.contains(['{', '}']) {
            return Ok(Part::Literal(text.to_owned()));
        }
        // Placeholders with literal text between them, in one segment.
        let mut pieces = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("`{text}`: a `{{` without its `}}`"))?;
                    let piece = placeholder(&rest[..=end])?
                        .ok_or_else(|| format!("`{text}` is not a placeholder (`{{token}}`, `{{name}}`)"))?;
                    if matches!(pieces.last(), Some(Part::Token | Part::Any(_))) {
                        return Err(format!(
                            "`{text}`: two placeholders need literal text between them (`{{uidb36}}-{{token}}`)"
                        ));
                    }
                    pieces.push(piece);
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    if rest[..end].contains('}') {
                        return Err(format!("`{text}`: a `}}` without its `{{`"));
                    }
                    pieces.push(Part::Literal(rest[..end].to_owned()));
                    rest = &rest[end..];
                }
            }
        }
        Ok(Part::Compound(pieces))
    }

    /// Whether this part is or holds the token.
    fn has_token(&self) -> bool {
        match self {
            Part::Token => true,
            Part::Compound(pieces) => pieces.contains(&Part::Token),
            _ => false,
        }
    }

    /// Splits `value` by a compound's pieces: `(piece, text)` per
    /// placeholder, or `None` when it does not fit.
    fn split_compound<'a>(pieces: &'a [Part], value: &str) -> Option<Vec<(&'a Part, String)>> {
        let mut out = Vec::new();
        let mut rest = value;
        let mut i = 0;
        while i < pieces.len() {
            match &pieces[i] {
                Part::Literal(lit) => {
                    rest = rest.strip_prefix(decode(lit).as_str())?;
                    i += 1;
                }
                piece => {
                    let taken = match pieces.get(i + 1) {
                        Some(Part::Literal(next)) => {
                            let next = decode(next);
                            // Shortest non-empty text before the next literal.
                            let at = rest.get(1..)?.find(next.as_str())? + 1;
                            &rest[..at]
                        }
                        _ => rest,
                    };
                    if taken.is_empty() {
                        return None;
                    }
                    out.push((piece, taken.to_owned()));
                    rest = &rest[taken.len()..];
                    i += 1;
                }
            }
        }
        rest.is_empty().then_some(out)
    }
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Where the pattern's `{token}` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSlot {
    /// Path segment number `index` (0-based); `last` when no segment follows.
    Path {
        /// Its index.
        index: usize,
        /// Whether it is the last segment.
        last: bool,
    },
    /// The value of this query parameter.
    Query(String),
    /// The value of this fragment parameter.
    Fragment(String),
    /// The whole fragment.
    WholeFragment,
}

/// A reset link's shape: origin, path segments, query and fragment
/// parameters, with placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPattern {
    origin: Url,
    path: Vec<Part>,
    query: Vec<(String, Part)>,
    fragment: Vec<(String, Part)>,
    whole_fragment: Option<Part>,
    text: String,
}

impl fmt::Display for LinkPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl LinkPattern {
    /// Parses a pattern: a path (joined to `base`) or an absolute
    /// `http(s)://` URL, with exactly one `{token}`.
    pub fn parse(text: &str, base: &Url) -> Result<LinkPattern, String> {
        let (origin, rest) = if let Some(after) = text
            .strip_prefix("http://")
            .or_else(|| text.strip_prefix("https://"))
        {
            let scheme_len = text.len() - after.len();
            let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
            let origin_text = &text[..scheme_len + authority_end];
            let origin = Url::parse(origin_text).map_err(|e| format!("{origin_text:?} is not a URL: {e}"))?;
            if origin.host().is_none() {
                return Err(format!("{text:?} has no host"));
            }
            (origin, &after[authority_end..])
        } else if text.starts_with('/') && !text.starts_with("//") {
            (base.clone(), text)
        } else {
            return Err(format!(
                "{text:?} is neither a path starting with `/` nor an http:// or https:// URL"
            ));
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        let mut pattern = LinkPattern {
            origin,
            path: Vec::new(),
            query: Vec::new(),
            fragment: Vec::new(),
            whole_fragment: None,
            text: text.to_owned(),
        };
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let segments = match segments.split_last() {
            Some((&"", init)) => init,
            _ => &segments[..],
        };
        for segment in segments {
            pattern.path.push(Part::parse(segment)?);
        }
        pattern.query = params(query)?;
        match fragment {
            Some(f) if f.contains('=') => pattern.fragment = params(Some(f))?,
            Some(f) if !f.is_empty() => pattern.whole_fragment = Some(Part::parse(f)?),
            _ => {}
        }
        let tokens: usize = pattern
            .parts()
            .map(|p| match p {
                Part::Token => 1,
                Part::Compound(pieces) => pieces.iter().filter(|x| **x == Part::Token).count(),
                _ => 0,
            })
            .sum();
        if tokens != 1 {
            return Err(format!(
                "{text:?} needs exactly one `{{token}}` placeholder (it has {tokens})"
            ));
        }
        Ok(pattern)
    }

    /// The pattern for a plain link target with the token in the query,
    /// the fragment or a last path segment.
    pub fn plain(target: &Url, token_in: TokenLocation) -> LinkPattern {
        let mut text = format!(
            "{}{}",
            target.origin().ascii_serialization(),
            target.path().trim_end_matches('/')
        );
        match &token_in {
            TokenLocation::Query(name) => text.push_str(&format!("?{name}={{token}}")),
            TokenLocation::Fragment(name) => text.push_str(&format!("#{name}={{token}}")),
            _ => text.push_str("/{token}"),
        }
        // Built from a parsed URL and a parameter name, so it parses.
        LinkPattern::parse(&text, target).unwrap_or_else(|_| LinkPattern {
            origin: target.clone(),
            path: vec![Part::Token],
            query: Vec::new(),
            fragment: Vec::new(),
            whole_fragment: None,
            text,
        })
    }

    fn parts(&self) -> impl Iterator<Item = &Part> {
        self.path
            .iter()
            .chain(self.query.iter().map(|(_, p)| p))
            .chain(self.fragment.iter().map(|(_, p)| p))
            .chain(self.whole_fragment.iter())
    }

    /// Where the token is.
    pub fn slot(&self) -> TokenSlot {
        if let Some(index) = self.path.iter().position(Part::has_token) {
            return TokenSlot::Path {
                index,
                last: index + 1 == self.path.len(),
            };
        }
        if let Some((name, _)) = self.query.iter().find(|(_, p)| p.has_token()) {
            return TokenSlot::Query(name.clone());
        }
        if let Some((name, _)) = self.fragment.iter().find(|(_, p)| p.has_token()) {
            return TokenSlot::Fragment(name.clone());
        }
        TokenSlot::WholeFragment
    }

    /// The origin links must have (`http://host:port`).
    pub fn origin(&self) -> &Url {
        &self.origin
    }

    /// The token if `url` has the pattern's shape (path, query, fragment),
    /// on whatever host: a reset link, perhaps a moved one.
    pub fn token(&self, url: &Url) -> Option<String> {
        self.captures(url).map(|(token, _)| token)
    }

    /// The token and the other placeholders' values (decoded) if `url` has
    /// the pattern's shape.
    pub fn captures(&self, url: &Url) -> Option<(String, Vec<(String, String)>)> {
        let mut token = None;
        let mut named = Vec::new();
        let mut take = |part: &Part, value: &str| -> Option<()> {
            let mut one = |part: &Part, value: &str| -> Option<()> {
                match part {
                    Part::Literal(text) => (decode(text) == value).then_some(()),
                    _ if value.is_empty() => None,
                    Part::Token => {
                        token = Some(value.to_owned());
                        Some(())
                    }
                    Part::Any(name) => {
                        named.push((name.clone(), value.to_owned()));
                        Some(())
                    }
                    Part::Compound(_) => None,
                }
            };
            match part {
                Part::Compound(pieces) => {
                    for (piece, text) in Part::split_compound(pieces, value)? {
                        one(piece, &text)?;
                    }
                    Some(())
                }
                _ => one(part, value),
            }
        };
        let segments: Vec<&str> = url.path().trim_start_matches('/').split('/').collect();
        let segments = match segments.split_last() {
            Some((&"", init)) => init,
            _ => &segments[..],
        };
        if segments.len() != self.path.len() {
            return None;
        }
        for (part, value) in self.path.iter().zip(segments) {
            take(part, &decode(value))?;
        }
        for (params, text) in [(&self.query, url.query()), (&self.fragment, url.fragment())] {
            let given: Vec<(String, String)> = text
                .map(|t| url::form_urlencoded::parse(t.as_bytes()).into_owned().collect())
                .unwrap_or_default();
            for (name, part) in params {
                let values: Vec<&String> = given.iter().filter(|(k, _)| k == name).map(|(_, v)| v).collect();
                let [value] = values.as_slice() else {
                    return None;
                };
                take(part, value)?;
            }
        }
        if let Some(part) = &self.whole_fragment {
            take(part, &decode(url.fragment().unwrap_or_default()))?;
        }
        token.map(|t| (t, named))
    }

    /// Whether `url` is a reset link on the target: the pattern's scheme,
    /// host and port, no user info, and its shape. The token, or why not.
    pub fn on_target(&self, url: &Url) -> Result<String, String> {
        let same_origin = url.scheme() == self.origin.scheme()
            && url.host_str() == self.origin.host_str()
            && url.port_or_known_default() == self.origin.port_or_known_default()
            && url.username().is_empty()
            && url.password().is_none();
        match self.token(url) {
            Some(token) if same_origin => Ok(token),
            Some(_) => Err(format!(
                "{url} has the link's shape but not its origin {}",
                self.origin.origin().ascii_serialization()
            )),
            None => Err(format!("{url} does not have the shape {self}")),
        }
    }

    /// What mail inspection should expect of the email carrying `link`
    /// (a link of this shape): the link's own path on the pattern's origin,
    /// with the token where this pattern puts it.
    pub fn expectation_for(&self, link: &Url) -> LinkExpectation {
        let mut target = self.origin.clone();
        match self.slot() {
            TokenSlot::Path { index, .. } => {
                let segments: Vec<&str> = link
                    .path()
                    .trim_start_matches('/')
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .collect();
                let kept: Vec<&str> = segments.iter().take(index).copied().collect();
                target.set_path(&format!("/{}", kept.join("/")));
                LinkExpectation::new(target).placement(TokenLocation::PathSegment)
            }
            TokenSlot::Query(name) => {
                target.set_path(link.path());
                LinkExpectation::new(target).placement(TokenLocation::Query(name))
            }
            TokenSlot::Fragment(name) => {
                target.set_path(link.path());
                LinkExpectation::new(target).placement(TokenLocation::Fragment(name))
            }
            TokenSlot::WholeFragment => {
                target.set_path(link.path());
                LinkExpectation::new(target).placement(TokenLocation::Fragment(String::new()))
            }
        }
    }
}

fn params(text: Option<&str>) -> Result<Vec<(String, Part)>, String> {
    let mut out = Vec::new();
    for pair in text.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` needs a value (`{pair}={{name}}`)"))?;
        out.push((decode(name), Part::parse(value)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://127.0.0.1:8000").unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn shapes_of_common_frameworks_match() {
        let cases = [
            (
                "/accounts/reset/{uidb64}/{token}/",
                "http://127.0.0.1:8000/accounts/reset/MQ/c4x8f2-0123abcd/",
                "c4x8f2-0123abcd",
            ),
            (
                "/users/password/edit?reset_password_token={token}",
                "http://127.0.0.1:8000/users/password/edit?reset_password_token=Ab_9&x=1",
                "Ab_9",
            ),
            (
                "/reset-password/{token}?email={email}",
                "http://127.0.0.1:8000/reset-password/f00d?email=a%40b.test",
                "f00d",
            ),
            (
                "/Account/ResetPassword?code={token}&email={email}",
                "http://127.0.0.1:8000/Account/ResetPassword?email=a%40b.test&code=Q2Zk%2BOQ%3D",
                "Q2Zk+OQ=",
            ),
            (
                "/reset#token={token}",
                "http://127.0.0.1:8000/reset#token=xyz",
                "xyz",
            ),
        ];
        for (pattern, link, token) in cases {
            let p = LinkPattern::parse(pattern, &base()).unwrap();
            assert_eq!(
                p.on_target(&url(link)),
                Ok(token.to_owned()),
                "{pattern} vs {link}"
            );
        }
    }

    #[test]
    fn other_shapes_and_origins_are_refused() {
        let p = LinkPattern::parse("/accounts/reset/{uidb64}/{token}/", &base()).unwrap();
        for link in [
            "http://127.0.0.1:8000/accounts/reset/MQ/",
            "http://127.0.0.1:8000/accounts/reset/MQ/t/extra/",
            "http://127.0.0.1:8000/accounts/other/MQ/t/",
        ] {
            assert_eq!(p.token(&url(link)), None, "{link}");
        }
        let moved = url("https://127.0.0.1:8000/accounts/reset/MQ/t/");
        assert!(p.token(&moved).is_some());
        assert!(p.on_target(&moved).is_err());
        let q = LinkPattern::parse("/reset?token={token}", &base()).unwrap();
        assert_eq!(q.token(&url("http://127.0.0.1:8000/reset?token=a&token=b")), None);
        assert_eq!(q.token(&url("http://127.0.0.1:8000/reset?token=")), None);
    }

    #[test]
    fn placeholders_can_share_a_segment() {
        // django-allauth: `<uidb36>-<key>`, and the key has a `-` of its own.
        let p = LinkPattern::parse("/accounts/password/reset/key/{uidb36}-{token}/", &base()).unwrap();
        let link = url("http://127.0.0.1:8000/accounts/password/reset/key/1f-c4x8f2-9a1b0c/");
        assert_eq!(
            p.captures(&link),
            Some((
                "c4x8f2-9a1b0c".to_owned(),
                vec![("uidb36".to_owned(), "1f".to_owned())]
            ))
        );
        assert_eq!(p.on_target(&link), Ok("c4x8f2-9a1b0c".to_owned()));
        assert_eq!(p.slot(), TokenSlot::Path { index: 4, last: true });
        for other in [
            "http://127.0.0.1:8000/accounts/password/reset/key/1f/",
            "http://127.0.0.1:8000/accounts/password/reset/key/-abc/",
            "http://127.0.0.1:8000/accounts/password/reset/key/1f-/",
        ] {
            assert_eq!(p.token(&url(other)), None, "{other}");
        }
        let q = LinkPattern::parse("/r?k={uid}.{token}&x=t{n}", &base()).unwrap();
        assert_eq!(
            q.captures(&url("http://127.0.0.1:8000/r?k=7.abc&x=t9")),
            Some((
                "abc".to_owned(),
                vec![
                    ("uid".to_owned(), "7".to_owned()),
                    ("n".to_owned(), "9".to_owned())
                ]
            ))
        );
    }

    #[test]
    fn other_placeholders_are_captured() {
        let p = LinkPattern::parse("/reset-password/{token}?email={email}", &base()).unwrap();
        let link = url("http://127.0.0.1:8000/reset-password/t0k?email=a%40b.test");
        assert_eq!(
            p.captures(&link),
            Some((
                "t0k".to_owned(),
                vec![("email".to_owned(), "a@b.test".to_owned())]
            ))
        );
    }

    #[test]
    fn bad_patterns_say_why() {
        for (text, why) in [
            ("/reset", "exactly one"),
            ("/reset/{token}/{token}", "exactly one"),
            ("/reset/{uid}{token}", "literal text between them"),
            ("/reset/{uid-{token}", "not a placeholder"),
            ("reset/{token}", "neither a path"),
            ("/reset?token", "needs a value"),
            ("/reset/{to ken}", "not a placeholder"),
        ] {
            let err = LinkPattern::parse(text, &base()).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn plain_targets_become_patterns() {
        let target = url("http://127.0.0.1:8000/reset");
        let q = LinkPattern::plain(&target, TokenLocation::Query("token".into()));
        assert_eq!(q.to_string(), "http://127.0.0.1:8000/reset?token={token}");
        let p = LinkPattern::plain(&target, TokenLocation::PathSegment);
        assert_eq!(
            p.on_target(&url("http://127.0.0.1:8000/reset/abc")),
            Ok("abc".into())
        );
        assert_eq!(p.slot(), TokenSlot::Path { index: 1, last: true });
    }

    #[test]
    fn inspection_expects_the_links_own_path() {
        let p = LinkPattern::parse("/accounts/reset/{uidb64}/{token}/", &base()).unwrap();
        let exp = p.expectation_for(&url("http://evil.test/accounts/reset/MQ/tok/"));
        assert_eq!(
            exp.reset_target.as_str(),
            "http://127.0.0.1:8000/accounts/reset/MQ"
        );
        assert_eq!(exp.placement, TokenLocation::PathSegment);
    }
}
