//! API steps: a flow step the target file describes as a JSON (or
//! form-encoded) call instead of an HTML form. The body template's
//! placeholders are filled in, the CSRF token is fetched and sent as the
//! step says (none, a cookie echoed in a header, a token answered by an
//! endpoint), and the call is recorded like any exchange.
//!
//! The identifier probes of RST-HTTP-005 change only where the
//! `{identifier}` value sits: [`IdentifierShape::Repeated`] sends its key
//! twice (`{"email": "a", "email": "b"}`, or `email=a&email=b`),
//! [`IdentifierShape::List`] a list (`{"email": ["a", "b"]}`, or
//! `email[]=a&email[]=b`).
//!
//! ```
//! use resetkit_harness::http::api::{IdentifierShape, render};
//! use resetkit_harness::http::target_file::{ApiCall, Encoding};
//!
//! let call = ApiCall {
//!     method: reqwest::Method::POST,
//!     url: "/api/password/reset/".into(),
//!     encoding: Encoding::Json,
//!     body: serde_json::json!({ "email": "{identifier}" }),
//! };
//! let vars = [("identifier".to_owned(), "a@example.test".to_owned())];
//! let single = render(&call, &vars, IdentifierShape::Single, None, &[]);
//! assert_eq!(single.text, r#"{"email":"a@example.test"}"#);
//! let twice = render(&call, &vars, IdentifierShape::Repeated, Some("b@x.test"), &[]);
//! assert_eq!(twice.text, r#"{"email":"a@example.test","email":"b@x.test"}"#);
//! let list = render(&call, &vars, IdentifierShape::List, Some("b@x.test"), &[]);
//! assert_eq!(list.text, r#"{"email":["a@example.test","b@x.test"]}"#);
//! ```

use serde_json::Value;
use url::Url;

use super::driver::{DriverError, Prepared, RawBody, User};
use super::exchange::Visit;
use super::html;
use super::target_file::api::{pointer, slot_of};
use super::target_file::{ApiCall, Encoding, FormStep, HttpTarget};

/// How the `{identifier}` value is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierShape {
    /// Once, as a string (every request but the probes).
    Single,
    /// Its key twice, the victim's then the second value.
    Repeated,
    /// A list of the victim's and the second value.
    List,
}

impl IdentifierShape {
    /// What the probe sends, for notes and verdicts (`key` is the
    /// identifier's key).
    pub fn describe(self, encoding: Encoding, key: &str) -> String {
        match (self, encoding) {
            (IdentifierShape::Single, _) => format!("`{key}` once"),
            (IdentifierShape::Repeated, Encoding::Json) => {
                format!("the key `{key}` twice in one JSON object (the victim's, then the attacker's)")
            }
            (IdentifierShape::Repeated, Encoding::Form) => {
                format!("the form field `{key}` twice (the victim's, then the attacker's)")
            }
            (IdentifierShape::List, Encoding::Json) => {
                format!("a JSON array in `{key}`: [the victim's, the attacker's]")
            }
            (IdentifierShape::List, Encoding::Form) => {
                format!("a form array `{key}[]` of the victim's and the attacker's")
            }
        }
    }
}

/// Fills `call`'s body: `{name}` in string values from `vars`; the
/// `{identifier}` value shaped by `shape` (with `second` as the other
/// value); `secret` names are shown as `[REDACTED]` in evidence.
pub fn render(
    call: &ApiCall,
    vars: &[(String, String)],
    shape: IdentifierShape,
    second: Option<&str>,
    secret: &[&str],
) -> RawBody {
    let slot = slot_of(&call.body, "identifier");
    let shown_vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| {
            let v = if secret.contains(&k.as_str()) {
                "[REDACTED]".to_owned()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    let text_of = |vars: &[(String, String)]| -> String {
        let shaped = Shaped {
            slot: slot.as_deref(),
            shape,
            second: second.unwrap_or_default(),
            vars,
        };
        match call.encoding {
            Encoding::Json => {
                let mut out = String::new();
                shaped.json(&call.body, slot.as_deref(), &mut out);
                out
            }
            Encoding::Form => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (key, value) in call.body.as_object().into_iter().flatten() {
                    let value = fill(value.as_str().unwrap_or_default(), vars);
                    let at_slot = slot.as_deref().is_some_and(|s| s.len() == 1 && s[0] == *key);
                    match shape {
                        _ if !at_slot => {
                            form.append_pair(key, &value);
                        }
                        IdentifierShape::Single => {
                            form.append_pair(key, &value);
                        }
                        IdentifierShape::Repeated => {
                            form.append_pair(key, &value);
                            form.append_pair(key, second.unwrap_or_default());
                        }
                        IdentifierShape::List => {
                            let list = format!("{key}[]");
                            form.append_pair(&list, &value);
                            form.append_pair(&list, second.unwrap_or_default());
                        }
                    }
                }
                form.finish()
            }
        }
    };
    RawBody {
        content_type: match call.encoding {
            Encoding::Json => "application/json".into(),
            Encoding::Form => "application/x-www-form-urlencoded".into(),
        },
        text: text_of(vars),
        shown: text_of(&shown_vars),
    }
}

/// `{name}` in `text` replaced by its value in `vars`.
fn fill(text: &str, vars: &[(String, String)]) -> String {
    vars.iter()
        .fold(text.to_owned(), |t, (k, v)| t.replace(&format!("{{{k}}}"), v))
}

struct Shaped<'a> {
    slot: Option<&'a [String]>,
    shape: IdentifierShape,
    second: &'a str,
    vars: &'a [(String, String)],
}

impl Shaped<'_> {
    /// Writes `value` as JSON; `path` is what is left of the slot's path
    /// below `value` (`None`: the slot is not below it).
    fn json(&self, value: &Value, path: Option<&[String]>, out: &mut String) {
        let quote = |s: &str| Value::String(s.to_owned()).to_string();
        match value {
            Value::String(s) => out.push_str(&quote(&fill(s, self.vars))),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.json(item, None, out);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (key, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let below = path
                        .and_then(|p| p.split_first())
                        .filter(|(first, _)| *first == key)
                        .map(|(_, rest)| rest);
                    let at_slot = below.is_some_and(<[String]>::is_empty) && self.slot.is_some();
                    let filled = item.as_str().map(|s| fill(s, self.vars)).unwrap_or_default();
                    match self.shape {
                        IdentifierShape::Repeated if at_slot => {
                            out.push_str(&format!(
                                "{}:{},{}:{}",
                                quote(key),
                                quote(&filled),
                                quote(key),
                                quote(self.second)
                            ));
                        }
                        IdentifierShape::List if at_slot => {
                            out.push_str(&format!(
                                "{}:[{},{}]",
                                quote(key),
                                quote(&filled),
                                quote(self.second)
                            ));
                        }
                        _ => {
                            out.push_str(&quote(key));
                            out.push(':');
                            self.json(item, below, out);
                        }
                    }
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
}

impl User {
    /// Prepares `call` (step `step`): fetches the CSRF token the step
    /// needs, fills the body from `vars` (shaped by `shape`), adds
    /// `headers`. Nothing of the call itself is sent yet.
    pub async fn prepare_call(
        &self,
        call: &ApiCall,
        step: FormStep,
        vars: &[(String, String)],
        shape: IdentifierShape,
        second: Option<&str>,
        headers: &[(String, String)],
    ) -> Result<Prepared, DriverError> {
        let target = self.target.clone();
        let url = target.url(&call.url);
        let mut call = call.clone();
        let mut sent_headers = Vec::new();
        if let Some((name, token, in_header)) = self.api_csrf(&target, step, &url).await? {
            if in_header {
                sent_headers.push((name, token));
            } else if let Some(body) = call.body.as_object_mut() {
                body.insert(name, Value::String(token));
            }
        }
        sent_headers.extend(headers.iter().cloned());
        let body = render(&call, vars, shape, second, &["password"]);
        Ok(Prepared {
            method: call.method.clone(),
            url,
            headers: sent_headers,
            fields: Vec::new(),
            body: Some(body),
        })
    }

    /// Prepares and sends `call`, following redirects as a browser's
    /// `fetch` would.
    pub async fn call(
        &self,
        call: &ApiCall,
        step: FormStep,
        vars: &[(String, String)],
        shape: IdentifierShape,
        second: Option<&str>,
        headers: &[(String, String)],
    ) -> Result<Visit, DriverError> {
        let prepared = self
            .prepare_call(call, step, vars, shape, second, headers)
            .await?;
        let first = self
            .send_raw(
                prepared.method.clone(),
                &prepared.url,
                &prepared.headers,
                prepared.body.as_ref(),
            )
            .await?;
        self.follow(first).await
    }

    /// The CSRF token an API step sends: `(header or field name, token,
    /// whether it goes in a header)`, or `None` when the step has none.
    async fn api_csrf(
        &self,
        target: &HttpTarget,
        step: FormStep,
        url: &Url,
    ) -> Result<Option<(String, String, bool)>, DriverError> {
        let csrf = target.csrf_for(Some(step)).clone();
        let table = target.csrf_table(Some(step));
        if !csrf.is_used() {
            return Ok(None);
        }
        let fetched = match &csrf.fetch {
            Some(fetch) => Some(self.get(&target.url(fetch)).await?),
            None => None,
        };
        let token = if let (Some(p), Some(answer)) = (&csrf.pointer, &fetched) {
            let p = pointer(p);
            let found = serde_json::from_str::<Value>(&answer.body)
                .ok()
                .and_then(|v| v.pointer(&p).and_then(Value::as_str).map(str::to_owned));
            Some(found.ok_or_else(|| DriverError::CsrfJson {
                url: answer.url.to_string(),
                pointer: p.clone(),
                table,
                got: format!("{} {}", answer.status, answer.body_excerpt()),
            })?)
        } else if let Some(cookie) = &csrf.cookie {
            Some(self.cookie(cookie, url).ok_or_else(|| DriverError::CsrfCookie {
                table,
                url: fetched.as_ref().map_or_else(
                    || format!("{url} (no csrf.fetch endpoint was loaded)"),
                    |f| f.url.to_string(),
                ),
                cookie: cookie.clone(),
            })?)
        } else if let (Some(name), Some(answer)) = (&csrf.meta, &fetched) {
            Some(
                html::meta_content(&answer.body, name).ok_or_else(|| DriverError::CsrfMeta {
                    table,
                    url: answer.url.to_string(),
                    name: name.clone(),
                })?,
            )
        } else {
            None
        };
        Ok(match (token, &csrf.header, &csrf.field) {
            (Some(token), Some(header), _) => Some((header.clone(), token, true)),
            (Some(token), None, Some(field)) => Some((field.clone(), token, false)),
            _ => None,
        })
    }
}

/// The preflight of API steps: each CSRF endpoint (`csrf.fetch`) gives
/// its token, and each endpoint answers at all. Nothing is posted (a
/// request would send mail). Adds what was checked or found wrong.
pub async fn preflight(
    target: &std::sync::Arc<HttpTarget>,
    driver: &super::driver::Driver,
    checked: &mut Vec<String>,
    problems: &mut Vec<String>,
) {
    let steps = [
        ("forgot", FormStep::Forgot, target.forgot_api()),
        ("set_password", FormStep::SetPassword, target.set_password_api()),
        ("login", FormStep::Login, target.login_api()),
    ];
    for (name, step, call) in steps {
        let Some(call) = call else { continue };
        let user = match driver.user("preflight") {
            Ok(user) => user,
            Err(e) => {
                problems.push(e.to_string());
                return;
            }
        };
        let url = target.url(&call.url);
        match user.api_csrf(target, step, &url).await {
            Ok(csrf) => {
                let csrf = match csrf {
                    Some((name, _, true)) => format!(", its CSRF token (sent in the `{name}` header)"),
                    Some((name, _, false)) => format!(", its CSRF token (sent as `{name}`)"),
                    None => String::new(),
                };
                match user.head(&url).await {
                    Ok(answer) if answer.status == 404 => {
                        problems.push(format!("{name}.url {url}: the endpoint answers 404 (not found)"))
                    }
                    Ok(_) | Err(_) => checked.push(format!(
                        "{name}.url {url}: an API call ({} {:?} body){csrf}; not sent before the run",
                        call.method, call.encoding
                    )),
                }
            }
            Err(e) => problems.push(format!("{name}.url {url}: {e}")),
        }
    }
}
