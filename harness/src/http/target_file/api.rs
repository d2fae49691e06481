//! The keys that describe a JSON (or form-encoded) API step instead of an
//! HTML form: `method`, `url`, `encoding`, `body` in `[forgot]`,
//! `[set_password]` and `[login]`; where the link's page is served
//! (`[link] page`, `front_end_url`); and what a JSON answer must hold
//! (`json`, `json_has` in an outcome).
//!
//! A body is a TOML table written as the JSON (or form) body the app
//! expects, with placeholders in its string values: `{identifier}`,
//! `{token}`, `{password}`, and every other `{name}` the link pattern
//! captures (`{uid}`, `{email}`).

use serde::Deserialize;
use serde_json::Value;

/// How an API step's body is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// `application/json` (the default).
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, the body table's keys as fields.
    Form,
}

/// Who serves the page the emailed link opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkPage {
    /// The app itself: the harness opens the link and checks its pages.
    #[default]
    App,
    /// A separate front end (a single-page app): its page posts to the
    /// API. The harness loads it from `link.front_end_url` when given;
    /// without it the checks about the link's page skip, saying so.
    FrontEnd,
}

/// One API call of a flow step, as the target file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// `POST`, `PUT` or `PATCH`.
    pub method: reqwest::Method,
    /// Where it goes (a path or an absolute URL).
    pub url: String,
    /// How the body is encoded.
    pub encoding: Encoding,
    /// The body template (an object).
    pub body: Value,
}

/// The raw API keys of a step, as read.
pub(super) struct RawCall<'a> {
    pub method: Option<&'a str>,
    pub url: Option<&'a str>,
    pub encoding: Option<Encoding>,
    pub body: Option<&'a Value>,
}

impl RawCall<'_> {
    /// Whether any API key is given (the step is then an API call).
    pub fn is_api(&self) -> bool {
        self.url.is_some() || self.body.is_some() || self.method.is_some() || self.encoding.is_some()
    }

    /// The call, checked; errors name the key (relative to the step).
    pub fn build(&self) -> Result<ApiCall, (&'static str, String)> {
        let url = self
            .url
            .ok_or(("url", "is required for an API step (with `body`)".to_owned()))?;
        let method = match self.method.unwrap_or("POST").to_ascii_uppercase().as_str() {
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "PATCH" => reqwest::Method::PATCH,
            other => {
                return Err((
                    "method",
                    format!("is {other:?}: an API step sends a body with POST, PUT or PATCH"),
                ));
            }
        };
        let body = self.body.ok_or((
            "body",
            "is required for an API step: the request body, with placeholders".to_owned(),
        ))?;
        if !body.is_object() {
            return Err((
                "body",
                "must be a table (the JSON object or form fields sent)".to_owned(),
            ));
        }
        let encoding = self.encoding.unwrap_or_default();
        if encoding == Encoding::Form
            && let Some(obj) = body.as_object()
            && obj.values().any(|v| !v.is_string())
        {
            return Err((
                "body",
                "with encoding = \"form\", every value must be a string (a form field)".to_owned(),
            ));
        }
        Ok(ApiCall {
            method,
            url: url.to_owned(),
            encoding,
            body: body.clone(),
        })
    }
}

/// Every `{name}` placeholder in the body's strings.
pub fn placeholders(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut strings = Vec::new();
    collect_strings(body, &mut strings);
    for text in strings {
        let mut rest = text.as_str();
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else { break };
            let name = &rest[start + 1..start + len];
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.push(name.to_owned());
            }
            rest = &rest[start + len + 1..];
        }
    }
    out
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                collect_strings(v, out);
            }
        }
        _ => {}
    }
}

/// The key path (object keys, outermost first) of the one string value
/// that is exactly `{name}`: where the identifier sits, for the probes that
/// repeat it or make it a list.
pub fn slot_of(body: &Value, name: &str) -> Option<Vec<String>> {
    let whole = format!("{{{name}}}");
    match body {
        Value::String(s) if *s == whole => Some(Vec::new()),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let mut path = slot_of(v, name)?;
            path.insert(0, k.clone());
            Some(path)
        }),
        _ => None,
    }
}

/// A JSON pointer for `key`: a pointer as given (`/detail`,
/// `/errors/0/code`), a plain name as a top-level field (`detail`).
pub fn pointer(key: &str) -> String {
    if key.starts_with('/') || key.is_empty() {
        key.to_owned()
    } else {
        format!("/{}", key.replace('~', "~0").replace('/', "~1"))
    }
}
