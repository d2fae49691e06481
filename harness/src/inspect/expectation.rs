//! What the reset link and the whole message are expected to look like.

use std::fmt;

use resetkit::link::{TOKEN_PARAM, TokenPlacement};
use url::Url;

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
    /// [`Check::LinkMatchesBase`](super::Check::LinkMatchesBase). A trailing `/` is ignored here.
    pub(super) fn is_reset_link(&self, url: &Url) -> bool {
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
    pub(super) fn tokens_in(&self, url: &Url) -> Vec<String> {
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
