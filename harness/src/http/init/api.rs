//! `resetkit-harness init --api --url ENDPOINT`: a draft target file for a
//! JSON API, from the forgot endpoint and one example request body
//! (`--body '{"email": "alice@example.test"}'`), or from the OpenAPI
//! document the app serves (`--openapi URL`, else tried at the usual
//! places: `/openapi.json`, `/swagger.json`, `/api/schema/?format=json`,
//! `/v3/api-docs`).
//!
//! The example body becomes the template (the address or username in it
//! becomes `{identifier}`); it is sent once with an address no account can
//! have (`…@example.invalid`) to learn what "accepted" looks like. From an
//! OpenAPI document the draft also takes the set-password and sign-in
//! calls (paths and request schemas) when it finds them.

use std::fmt::Write as _;

use serde_json::{Map, Value};
use url::Url;

use super::InitError;

/// What `init --api` needs.
#[derive(Debug, Clone, Default)]
pub struct ApiInitOptions {
    /// The forgot-password endpoint (absolute URL).
    pub url: String,
    /// One example request body (JSON).
    pub body: Option<String>,
    /// Where the OpenAPI document is (absolute URL).
    pub openapi: Option<String>,
    /// Send the example once with an unknown address (default true).
    pub probe: bool,
}

/// One call the draft describes.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    body: Value,
    /// Where it came from, for the comment.
    found: String,
}

/// Writes the draft for `options`.
pub async fn draft_api(options: &ApiInitOptions) -> Result<String, InitError> {
    let url = Url::parse(&options.url).map_err(|e| InitError::BadUrl {
        url: options.url.clone(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(InitError::BadUrl {
            url: options.url.clone(),
            reason: "an http:// or https:// URL of the app's forgot-password endpoint is expected".into(),
        });
    }
    let base = url.origin().ascii_serialization();
    let http = |reason: String| InitError::Http {
        url: url.to_string(),
        reason,
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| http(e.to_string()))?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let (document, document_note) = openapi(&client, &url, options.openapi.as_deref()).await;
    let mut notes = Vec::new();
    notes.extend(document_note);
    let forgot = match &options.body {
        Some(text) => {
            let example: Value = serde_json::from_str(text).map_err(|e| InitError::BadUrl {
                url: text.clone(),
                reason: format!("--body is not JSON: {e}"),
            })?;
            let body = templated(&example, Role::Forgot);
            if api_slot(&body).is_none() {
                return Err(InitError::BadUrl {
                    url: text.clone(),
                    reason: "--body has no string value that looks like an address or a username \
                             (a key such as email, username or login)"
                        .into(),
                });
            }
            Call {
                method: "POST".into(),
                path: path.clone(),
                body,
                found: "from --body (the example's identifier became {identifier})".into(),
            }
        }
        None => document
            .as_ref()
            .and_then(|d| find_call(d, &[&path], Role::Forgot))
            .ok_or_else(|| {
                http(
                    "no --body given and no OpenAPI document describes this endpoint's request body; \
                      pass one example request with --body '{\"email\": \"alice@example.test\"}'"
                        .into(),
                )
            })?,
    };
    let confirm = document.as_ref().and_then(|d| find_call(d, &[], Role::Confirm));
    let login = document.as_ref().and_then(|d| find_call(d, &[], Role::Login));
    let accepted = if options.probe {
        Some(probe(&client, &base, &forgot).await)
    } else {
        None
    };
    Ok(render(
        &base,
        &forgot,
        confirm.as_ref(),
        login.as_ref(),
        accepted,
        &notes,
    ))
}

/// What a value in a body stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Forgot,
    Confirm,
    Login,
}

/// The placeholder a body key gets in `role`'s body, by its name.
fn placeholder(key: &str, role: Role) -> Option<&'static str> {
    let k = key.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| k == *w || k.ends_with(&format!("_{w}")));
    match role {
        Role::Forgot | Role::Login if any(&["email", "username", "login", "identifier", "user_name"]) => {
            Some("{identifier}")
        }
        Role::Login if k.contains("password") => Some("{password}"),
        Role::Confirm if k.contains("password") => Some("{password}"),
        Role::Confirm if any(&["token", "key", "code", "otp"]) || k.ends_with("token") => Some("{token}"),
        Role::Confirm if any(&["uid", "uidb64", "user_id", "uidb36"]) => Some("{uid}"),
        Role::Confirm if any(&["email"]) => Some("{email}"),
        _ => None,
    }
}

/// `example` with its recognised values replaced by placeholders.
fn templated(example: &Value, role: Role) -> Value {
    match example {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (v, placeholder(k, role)) {
                        (Value::Object(_), _) => templated(v, role),
                        (_, Some(p)) => Value::String(p.to_owned()),
                        _ => v.clone(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn api_slot(body: &Value) -> Option<Vec<String>> {
    crate::http::target_file::api::slot_of(body, "identifier")
}

/// The OpenAPI document: from `--openapi`, else from the usual places.
async fn openapi(
    client: &reqwest::Client,
    url: &Url,
    given: Option<&str>,
) -> (Option<Value>, Option<String>) {
    let candidates: Vec<String> = match given {
        Some(g) => vec![g.to_owned()],
        None => [
            "/openapi.json",
            "/swagger.json",
            "/api/schema/?format=json",
            "/v3/api-docs",
        ]
        .iter()
        .filter_map(|p| url.join(p).ok().map(|u| u.to_string()))
        .collect(),
    };
    for candidate in &candidates {
        let Ok(response) = client.get(candidate).send().await else {
            continue;
        };
        if !response.status().is_success() {
            continue;
        }
        let text = response.text().await.unwrap_or_default();
        if let Ok(doc) = serde_json::from_str::<Value>(&text)
            && doc.get("paths").is_some_and(Value::is_object)
        {
            return (
                Some(doc),
                Some(format!("read the OpenAPI document at {candidate}")),
            );
        }
    }
    let note = given.map(|g| format!("no OpenAPI document at {g} (--openapi)"));
    (None, note)
}

/// The operation for `role`: at one of `paths` when given, else the
/// first whose path says what it does; its JSON request body as a
/// template.
fn find_call(doc: &Value, paths: &[&str], role: Role) -> Option<Call> {
    let all = doc.get("paths")?.as_object()?;
    let looks = |p: &str| {
        let p = p.to_ascii_lowercase();
        match role {
            Role::Forgot => {
                (p.contains("reset")
                    || p.contains("forgot")
                    || p.contains("recover")
                    || p.ends_with("/password"))
                    && !p.contains("confirm")
                    && !p.contains("verify")
            }
            Role::Confirm => p.contains("confirm") || p.contains("verify") || p.ends_with("/password"),
            Role::Login => {
                p.contains("login") || p.contains("sign_in") || p.contains("signin") || p.ends_with("/token")
            }
        }
    };
    let methods: &[&str] = match role {
        Role::Confirm => &["post", "put", "patch"],
        _ => &["post"],
    };
    for (path, item) in all {
        let wanted = if paths.is_empty() {
            looks(path)
        } else {
            paths.iter().any(|p| p.split('?').next() == Some(path.as_str()))
        };
        if !wanted {
            continue;
        }
        for method in methods {
            let Some(op) = item.get(*method) else { continue };
            let Some(schema) = op
                .pointer("/requestBody/content/application~1json/schema")
                .map(|s| resolve(doc, s))
            else {
                continue;
            };
            let body = body_of(doc, &schema, role, 0);
            let ok = match role {
                Role::Forgot => api_slot(&body).is_some(),
                Role::Confirm => {
                    let text = body.to_string();
                    text.contains("{token}") && text.contains("{password}")
                }
                Role::Login => {
                    let text = body.to_string();
                    text.contains("{identifier}") && text.contains("{password}")
                }
            };
            if ok {
                return Some(Call {
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                    body,
                    found: format!(
                        "from the OpenAPI document: {} {path}",
                        method.to_ascii_uppercase()
                    ),
                });
            }
        }
    }
    None
}

fn resolve(doc: &Value, schema: &Value) -> Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .cloned()
            .unwrap_or(Value::Null),
        None => schema.clone(),
    }
}

/// A body template from a request schema: each property gets its
/// placeholder, a nested object its own template; other properties are
/// left out.
fn body_of(doc: &Value, schema: &Value, role: Role, depth: usize) -> Value {
    let mut out = Map::new();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Value::Object(out);
    };
    for (key, prop) in props {
        let prop = resolve(doc, prop);
        if prop.get("properties").is_some() && depth < 3 {
            let inner = body_of(doc, &prop, role, depth + 1);
            if inner.as_object().is_some_and(|m| !m.is_empty()) {
                out.insert(key.clone(), inner);
            }
        } else if let Some(p) = placeholder(key, role) {
            out.insert(key.clone(), Value::String(p.to_owned()));
        }
    }
    Value::Object(out)
}

/// The answer to the forgot call with an address no account has.
async fn probe(client: &reqwest::Client, base: &str, forgot: &Call) -> Result<(u16, String), String> {
    let body = crate::http::api::render(
        &crate::http::target_file::ApiCall {
            method: reqwest::Method::POST,
            url: forgot.path.clone(),
            encoding: crate::http::target_file::Encoding::Json,
            body: forgot.body.clone(),
        },
        &[(
            "identifier".to_owned(),
            "resetkit-init-probe@example.invalid".to_owned(),
        )],
        crate::http::api::IdentifierShape::Single,
        None,
        &[],
    );
    let method = reqwest::Method::from_bytes(forgot.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let response = client
        .request(method, format!("{base}{}", forgot.path))
        .header("content-type", "application/json")
        .body(body.text)
        .send()
        .await
        .map_err(|e| crate::http::driver::error_chain(&e))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    Ok((status, text))
}

fn toml_value(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_value(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        Value::String(s) => quote(s),
        Value::Null => quote(""),
        other => other.to_string(),
    }
}

fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        quote(key)
    }
}

fn quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// What the probe's answer says "accepted" looks like, and a comment.
fn accepted_outcome(answer: &Result<(u16, String), String>) -> (String, String) {
    match answer {
        Ok((status, text)) => {
            let parsed: Option<Value> = serde_json::from_str(text).ok();
            let outcome = match &parsed {
                Some(Value::Object(map)) if map.is_empty() => {
                    format!("{{ status = {status}, text = \"{{}}\" }}")
                }
                Some(Value::Object(map)) => {
                    let strings: Vec<String> = map
                        .iter()
                        .filter(|(_, v)| v.is_string())
                        .take(2)
                        .map(|(k, v)| format!("{} = {}", toml_key(k), toml_value(v)))
                        .collect();
                    if strings.is_empty() {
                        format!("{{ status = {status} }}")
                    } else {
                        format!("{{ status = {status}, json = {{ {} }} }}", strings.join(", "))
                    }
                }
                _ => format!("{{ status = {status} }}"),
            };
            let shown: String = text.chars().take(120).collect();
            let mut comment = format!(
                "found: an address no account has (…@example.invalid) got {status} {shown:?}; a correct app answers \
                 every address alike"
            );
            if *status == 403 && text.to_ascii_lowercase().contains("csrf") {
                comment.push_str(
                    ". The app wants a CSRF token: describe it in [csrf] (fetch, cookie, header), then FILL IN what an \
                     accepted request gets",
                );
                return ("{ status = 200 }".into(), comment);
            }
            if *status >= 400 {
                comment.push_str(
                    ". FILL IN: a 4xx for an unknown address may be the app telling addresses apart",
                );
            }
            (outcome, comment)
        }
        Err(e) => (
            "{ status = 200 }".into(),
            format!("FILL IN: the probe request failed ({e}); what the app answers a request"),
        ),
    }
}

fn render(
    base: &str,
    forgot: &Call,
    confirm: Option<&Call>,
    login: Option<&Call>,
    accepted: Option<Result<(u16, String), String>>,
    notes: &[String],
) -> String {
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(
        w,
        "# Draft target file written by `resetkit-harness init --api` from {base}{}.",
        forgot.path
    );
    let _ = writeln!(w, "# Check every key, fill in what is marked FILL IN, then run:");
    let _ = writeln!(
        w,
        "#     resetkit-harness run --target THIS_FILE --html report.html"
    );
    let _ = writeln!(
        w,
        "# Every key is described in TARGETS.md (JSON APIs: the API keys and complete files)."
    );
    for note in notes {
        let _ = writeln!(w, "# {note}.");
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "format = {}  # the target-file format this draft is written in",
        crate::http::target_file::FORMAT
    );
    let _ = writeln!(
        w,
        "name = {}  # a name for reports",
        quote(&format!("{base} (draft)"))
    );
    let _ = writeln!(w, "base_url = {}  # found: where the API answered", quote(base));
    let _ = writeln!(w, "\n[smtp]");
    let _ = writeln!(
        w,
        "# FILL IN the app's SMTP settings: it must send its mail here, plain SMTP without TLS or AUTH."
    );
    let _ = writeln!(w, "listen = \"127.0.0.1:2525\"");
    let _ = writeln!(
        w,
        "\n# [csrf] (optional): how the API's CSRF works. None: leave it out. A cookie echoed in a header:\n\
         # fetch = \"/api/csrf/\", cookie = \"csrftoken\", header = \"X-CSRFToken\". A token an endpoint answers:\n\
         # fetch = \"/api/auth/csrf\", pointer = \"/csrfToken\", header = \"X-CSRF-Token\"."
    );
    let _ = writeln!(w, "\n[forgot]");
    let _ = writeln!(w, "method = {}  # found: {}", quote(&forgot.method), forgot.found);
    let _ = writeln!(w, "url = {}", quote(&forgot.path));
    let _ = writeln!(w, "encoding = \"json\"");
    let _ = writeln!(
        w,
        "body = {}  # {{identifier}}: the address or username typed",
        toml_value(&forgot.body)
    );
    let _ = writeln!(
        w,
        "identifier_kind = \"either\"  # FILL IN: \"email\", \"username\" or \"either\" (what the endpoint accepts)"
    );
    match accepted.as_ref().map(accepted_outcome) {
        Some((outcome, comment)) => {
            let _ = writeln!(w, "# accepted: {comment}");
            let _ = writeln!(w, "accepted = {outcome}");
        }
        None => {
            let _ = writeln!(
                w,
                "accepted = {{ status = 200 }}  # FILL IN: what the API answers a request (status, json, text)"
            );
        }
    }
    let _ = writeln!(w, "\n[link]");
    let _ = writeln!(
        w,
        "# FILL IN from a real reset email: the link's shape, with {{token}} and the other values the set-password\n\
         # call needs ({{uid}}), e.g. \"https://app.example.com/password-reset/confirm/{{uid}}/{{token}}/\"."
    );
    let link = if confirm.is_some_and(|c| c.body.to_string().contains("{uid}")) {
        "/password-reset/confirm/{uid}/{token}/"
    } else {
        "/reset-password?token={token}"
    };
    let _ = writeln!(w, "url = {}", quote(link));
    let _ = writeln!(
        w,
        "page = \"front_end\"  # FILL IN: \"front_end\" when a separate single-page app serves the link's page (then\n\
         # front_end_url = where the harness can load it, or its checks skip), \"app\" when the API's own server does"
    );
    let _ = writeln!(w, "\n[set_password]");
    match confirm {
        Some(call) => {
            let _ = writeln!(w, "method = {}  # found: {}", quote(&call.method), call.found);
            let _ = writeln!(w, "url = {}", quote(&call.path));
            let _ = writeln!(w, "body = {}", toml_value(&call.body));
        }
        None => {
            let _ = writeln!(
                w,
                "# FILL IN: the call the link's page makes to set the new password."
            );
            let _ = writeln!(w, "url = \"/FILL-IN/password/reset/confirm/\"");
            let _ = writeln!(
                w,
                "body = {{ token = \"{{token}}\", password = \"{{password}}\" }}"
            );
        }
    }
    let _ = writeln!(
        w,
        "success = {{ status = 200 }}  # FILL IN: how a completed reset looks (status, json, json_has)"
    );
    let _ = writeln!(w, "# failure = {{ status = 400 }}  # how a dead link is refused");
    match login {
        Some(call) => {
            let _ = writeln!(w, "\n[login]");
            let _ = writeln!(w, "method = {}  # found: {}", quote(&call.method), call.found);
            let _ = writeln!(w, "url = {}", quote(&call.path));
            let _ = writeln!(w, "body = {}", toml_value(&call.body));
            let _ = writeln!(
                w,
                "success = {{ status = 200 }}  # FILL IN: how a successful sign-in looks"
            );
        }
        None => {
            let _ = writeln!(
                w,
                "\n# [login] (optional): the sign-in call, so the checks can sign in with the new password:\n\
                 # url = \"/api/auth/login/\", body = {{ email = \"{{identifier}}\", password = \"{{password}}\" }}, success = {{ status = 200 }}"
            );
        }
    }
    let _ = writeln!(
        w,
        "\n# FILL IN the test accounts the app has (several: the checks spread their requests).\n\
         [[accounts]]\nidentifier = \"alice@example.test\"\nemail = \"alice@example.test\""
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_become_templates() {
        let example = serde_json::json!({ "user": { "email": "alice@example.test" }, "locale": "en" });
        let body = templated(&example, Role::Forgot);
        assert_eq!(
            body,
            serde_json::json!({ "user": { "email": "{identifier}" }, "locale": "en" })
        );
        let confirm =
            serde_json::json!({ "uid": "MQ", "token": "x", "new_password1": "a", "new_password2": "a" });
        assert_eq!(
            templated(&confirm, Role::Confirm),
            serde_json::json!({ "uid": "{uid}", "token": "{token}", "new_password1": "{password}", "new_password2": "{password}" })
        );
    }
}
