//! Callback links, built only from configuration: base URL + path + token.
//!
//! There is no code path from a request (Host header, form field) to a link:
//! the builder takes the canonical public base URL at build time, and the
//! only per-request input is the token, which is URL-safe by construction.
//!
//! ```
//! use resetkit::link::{LinkBuilder, TokenPlacement};
//! use resetkit::token::RawToken;
//!
//! let links = LinkBuilder::new("https://app.example.com/portal/", "reset", TokenPlacement::Query, false).unwrap();
//! let token = RawToken::generate().unwrap();
//! let url = links.link(&token);
//! assert!(url.starts_with("https://app.example.com/portal/reset?token="));
//! assert!(LinkBuilder::new("http://app.example.com", "/reset", TokenPlacement::Query, false).is_err());
//! ```

use url::Url;

use crate::error::BuildError;
use crate::token::RawToken;

/// Where the token travels in the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenPlacement {
    /// `?token=...` (the server sees it on GET).
    #[default]
    Query,
    /// `#token=...` (never sent to the server or in Referer; the page's script
    /// reads it).
    Fragment,
}

/// Builds links under one canonical base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkBuilder {
    target: Url,
    placement: TokenPlacement,
}

/// Name of the token parameter in links.
pub const TOKEN_PARAM: &str = "token";

impl LinkBuilder {
    /// Validates `base` (absolute, https unless `allow_http`, no query,
    /// fragment or credentials) and joins `path` under it.
    pub fn new(
        base: &str,
        path: &str,
        placement: TokenPlacement,
        allow_http: bool,
    ) -> Result<Self, BuildError> {
        let base = parse_base_url(base, allow_http)?;
        Self::under(&base, path, placement, "reset_path")
    }

    /// Joins `path` under an already validated base URL; errors name `setting`.
    pub fn under(
        base: &Url,
        path: &str,
        placement: TokenPlacement,
        setting: &'static str,
    ) -> Result<Self, BuildError> {
        Ok(LinkBuilder {
            target: join_path(base, path, setting)?,
            placement,
        })
    }

    /// The link carrying `token`.
    pub fn link(&self, token: &RawToken) -> String {
        let mut url = self.target.clone();
        let pair = format!("{TOKEN_PARAM}={}", token.expose_encoded());
        match self.placement {
            TokenPlacement::Query => url.set_query(Some(&pair)),
            TokenPlacement::Fragment => url.set_fragment(Some(&pair)),
        }
        url.into()
    }

    /// The link's target without a token.
    pub fn target(&self) -> &Url {
        &self.target
    }

    /// How the token is carried.
    pub fn placement(&self) -> TokenPlacement {
        self.placement
    }
}

/// Validates a public base URL.
pub fn parse_base_url(base: &str, allow_http: bool) -> Result<Url, BuildError> {
    let invalid = |reason: String| BuildError::invalid("base_url", reason);
    let url = Url::parse(base).map_err(|e| invalid(format!("`{base}` is not an absolute URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(invalid(format!(
                "`{base}` uses http://; reset links must use https:// (call allow_insecure_http_for_local_testing() only for local tests)"
            )));
        }
        other => return Err(invalid(format!("`{base}` has scheme `{other}`; use https://"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("`{base}` has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(format!(
            "`{}` must not contain credentials",
            url.origin().ascii_serialization()
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(format!("`{base}` must not have a query or fragment")));
    }
    Ok(url)
}

/// Joins a configured path under the base URL's path.
pub fn join_path(base: &Url, path: &str, setting: &'static str) -> Result<Url, BuildError> {
    if path.contains(['?', '#', '\\']) || path.contains("..") || path.chars().any(char::is_control) {
        return Err(BuildError::invalid(
            setting,
            format!("`{path}` must be a plain path (no `?`, `#`, `..`, backslashes or control characters)"),
        ));
    }
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fragment_placement_keeps_token_out_of_the_query() {
        let b = LinkBuilder::new("https://a.example", "/reset", TokenPlacement::Fragment, false).unwrap();
        let t = RawToken::generate().unwrap();
        let link = Url::parse(&b.link(&t)).unwrap();
        assert_eq!(link.query(), None);
        let expected = format!("token={}", t.expose_encoded());
        assert_eq!(link.fragment(), Some(expected.as_str()));
    }

    #[test]
    fn bad_bases_name_the_setting() {
        for base in [
            "",
            "app.example.com",
            "ftp://a.example",
            "https://u:p@a.example",
            "https://a.example/?x=1",
            "http://a.example",
        ] {
            let err = LinkBuilder::new(base, "/reset", TokenPlacement::Query, false).unwrap_err();
            assert!(err.to_string().contains("base_url"), "{base}: {err}");
        }
        let err =
            LinkBuilder::new("https://a.example", "/reset?x=1", TokenPlacement::Query, false).unwrap_err();
        assert!(err.to_string().contains("reset_path"));
        assert!(LinkBuilder::new("http://localhost:8080", "/reset", TokenPlacement::Query, true).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn links_contain_only_configuration_and_the_token(
            host in "[a-z]{1,12}(\\.[a-z]{2,6}){1,2}",
            base_path in "(/[a-zA-Z0-9_-]{1,8}){0,3}/?",
            path in "/?([a-zA-Z0-9_-]{1,8}/){0,2}[a-zA-Z0-9_-]{1,8}",
            fragment in any::<bool>(),
        ) {
            let base = format!("https://{host}{base_path}");
            let placement = if fragment { TokenPlacement::Fragment } else { TokenPlacement::Query };
            let builder = LinkBuilder::new(&base, &path, placement, false).unwrap();
            let token = RawToken::generate().unwrap();
            let link = Url::parse(&builder.link(&token)).unwrap();
            prop_assert_eq!(link.scheme(), "https");
            prop_assert_eq!(link.host_str(), Some(host.as_str()));
            prop_assert!(link.path().ends_with(path.trim_start_matches('/')));
            prop_assert!(link.path().starts_with(base_path.trim_end_matches('/')));
            let carried = if fragment { link.fragment() } else { link.query() };
            let expected = format!("token={}", token.expose_encoded());
            prop_assert_eq!(carried, Some(expected.as_str()));
        }
    }
}
