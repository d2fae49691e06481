//! Deserializers for values the target file checks as it reads them, so
//! TOML's error names the key and line.

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use url::Url;

pub(super) fn absolute_url<'de, D: Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
    let text = String::deserialize(d)?;
    parse_absolute(&text).map_err(serde::de::Error::custom)
}

pub(super) fn parse_absolute(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{text:?} is not an http:// or https:// URL with a host"));
    }
    Ok(url)
}

pub(super) fn location<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if text.starts_with('/') && !text.starts_with("//") {
        Ok(text)
    } else {
        parse_absolute(&text)
            .map(|_| text)
            .map_err(|e| serde::de::Error::custom(format!("expected a path starting with `/` or {e}")))
    }
}

pub(super) fn opt_location<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    location(d).map(Some)
}

pub(super) fn opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    String::deserialize(d).map(|s| Some(SecretString::from(s)))
}

pub(super) fn status_set<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u16>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a status code (303) or a list of them ([302, 303])")]
    enum OneOrMany {
        One(u16),
        Many(Vec<u16>),
    }
    let codes = match OneOrMany::deserialize(d)? {
        OneOrMany::One(code) => vec![code],
        OneOrMany::Many(codes) => codes,
    };
    if codes.is_empty() {
        return Err(serde::de::Error::custom("the list of status codes is empty"));
    }
    if let Some(bad) = codes.iter().find(|c| !(100..=599).contains(*c)) {
        return Err(serde::de::Error::custom(format!(
            "{bad} is not an HTTP status code"
        )));
    }
    Ok(Some(codes))
}

pub(super) fn opt_absolute_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    absolute_url(d).map(Some)
}
