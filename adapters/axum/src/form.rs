//! Strict form parsing: `application/x-www-form-urlencoded` only, and every
//! field a page reads must be sent exactly once. A repeated field
//! (`identifier=a&identifier=b`) or list syntax (`identifier[]=a`,
//! `identifier[0]=a`) is refused, so one request can never name two
//! accounts (GitLab CVE-2023-7028 class); JSON bodies are refused outright.

use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;

/// Why a body is not a form the pages accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    /// Another content type (JSON, multipart, none).
    #[error("Send the form as application/x-www-form-urlencoded")]
    UnsupportedType,
}

/// Why a field cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldError {
    /// Absent.
    Missing,
    /// Sent more than once, or with list syntax.
    Repeated,
}

/// A parsed form body.
#[derive(Debug, Clone, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Parses a request body, refusing anything but a URL-encoded form.
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Form, FormError> {
        let is_form = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(FormError::UnsupportedType);
        }
        Ok(Form::from_encoded(body))
    }

    /// Parses URL-encoded pairs (a form body or a query string).
    pub fn from_encoded(encoded: &[u8]) -> Form {
        Form {
            pairs: url::form_urlencoded::parse(encoded)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// The one value of `name`: absent, repeated or list-valued is an error.
    pub fn single(&self, name: &str) -> Result<&str, FieldError> {
        let mut found = None;
        for (key, value) in &self.pairs {
            let listed = key.strip_prefix(name).is_some_and(|rest| rest.starts_with('['));
            if listed || (key == name && found.is_some()) {
                return Err(FieldError::Repeated);
            }
            if key == name {
                found = Some(value.as_str());
            }
        }
        found.ok_or(FieldError::Missing)
    }

    /// The value of `name` if it was sent exactly once.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.single(name).ok()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn form_headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn one_value_is_taken_and_decoded() {
        let f = Form::from_encoded(b"identifier=Alice%40Example.test&csrf_token=x+y");
        assert_eq!(f.single("identifier"), Ok("Alice@Example.test"));
        assert_eq!(f.single("csrf_token"), Ok("x y"));
        assert_eq!(f.single("password"), Err(FieldError::Missing));
    }

    #[test]
    fn repeated_and_list_valued_fields_are_refused() {
        for body in [
            "identifier=a&identifier=b",
            "identifier[]=a",
            "identifier%5B%5D=a&identifier%5B%5D=b",
            "identifier=a&identifier[0]=b",
            "identifier[0]=a",
            "identifier=a&identifier=",
        ] {
            let f = Form::from_encoded(body.as_bytes());
            assert_eq!(f.single("identifier"), Err(FieldError::Repeated), "{body}");
        }
        // A different field that merely starts with the name is not a list.
        let f = Form::from_encoded(b"identifier=a&identifiers=b");
        assert_eq!(f.single("identifier"), Ok("a"));
    }

    #[test]
    fn only_url_encoded_forms_are_accepted() {
        let ok = form_headers("application/x-www-form-urlencoded; charset=UTF-8");
        assert!(Form::parse(&ok, b"a=b").is_ok());
        for t in [
            "application/json",
            "multipart/form-data; boundary=x",
            "text/plain",
        ] {
            assert_eq!(
                Form::parse(&form_headers(t), b"a=b").unwrap_err(),
                FormError::UnsupportedType
            );
        }
        assert!(Form::parse(&HeaderMap::new(), b"a=b").is_err());
    }
}
