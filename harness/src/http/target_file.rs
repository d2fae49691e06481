//! The target file: a small TOML description of a web app's reset flow, so
//! the harness can drive it over HTTP like a user with a browser.
//!
//! It says where the forms are and what their fields are called, where the
//! CSRF token comes from, how the emailed link is followed (a page with the
//! form, or a redirect to a set-password page that keeps the token in the
//! session), how success and failure look (status, redirect target, page
//! text), which test accounts exist, and what rate limits the app applies.
//! A step may instead be a call to a JSON (or form-encoded) API: method,
//! URL, body template with placeholders, answers recognised by status and
//! JSON values, the link's page served by the app or a separate front end
//! ([`api`]). Unknown keys are refused, and every error names the key at
//! fault.
//!
//! `harness/TARGETS.md` is the reference: every key with its default, link
//! patterns, and complete files for Django-, Devise-, Laravel- and
//! ASP.NET-Identity-shaped apps. The shipped file for the example portal
//! (`harness/targets/portal.toml`) shows every section:
//!
//! ```
//! use resetkit_harness::http::target_file::{Follow, HttpTarget};
//!
//! let text = include_str!("../../targets/portal.toml");
//! let target = HttpTarget::from_toml_str(text, "portal.toml").unwrap();
//! assert_eq!(target.forgot.identifier_field, "identifier");
//! assert_eq!(target.link.follow, Follow::Redirect);
//! assert_eq!(target.shared_email_groups().len(), 1);
//!
//! let typo = text.replace("identifier_field", "identifer_field");
//! let err = HttpTarget::from_toml_str(&typo, "portal.toml").unwrap_err().to_string();
//! assert!(err.contains("identifer_field"), "{err}");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

pub use super::link_pattern::LinkPattern;
use crate::inspect::TokenLocation;

mod accounts;
pub mod api;
mod de;
mod tuning;
mod validate;
mod version;

pub use accounts::{Limits, LookAlike, LookAlikeKind, TestAccount};
pub use api::{ApiCall, Encoding, LinkPage};
pub use tuning::{CheckSettings, ClientSettings};

/// Why a target file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetFileError {
    /// The file cannot be read.
    #[error("cannot read the target file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, a missing key or a value of the wrong
    /// type; the message gives the line, the key and what was expected.
    #[error("target file {origin}: {message}")]
    Syntax {
        /// The file (or the name the text was given).
        origin: String,
        /// The parser's explanation.
        message: String,
    },
    /// Well-formed, but a value does not make sense.
    #[error("target file {origin}: `{key}` {reason}")]
    Invalid {
        /// The file (or the name the text was given).
        origin: String,
        /// The key at fault, dotted (`set_password.page`, `accounts[2].email`).
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// The target-file format this harness writes and reads (`format = 2`).
pub const FORMAT: u32 = 2;

/// A web app's reset flow, as the harness drives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTarget {
    /// The file's format version (`format = 2`, the first key). A file
    /// without it was written for format 1: it is read when its meaning
    /// is the same in format 2 (with a note), refused otherwise.
    #[serde(default)]
    pub format: Option<u32>,
    /// A name for reports (default: the base URL).
    #[serde(default)]
    pub name: String,
    /// Where the app answers, e.g. `http://127.0.0.1:8380`; paths below are
    /// relative to it.
    #[serde(deserialize_with = "de::absolute_url")]
    pub base_url: Url,
    /// The harness's fake SMTP server, which the app must send to.
    #[serde(default)]
    pub smtp: SmtpSettings,
    /// Optionally, how to start the app for the run (the harness stops it after).
    pub app: Option<AppLaunch>,
    /// Where the CSRF token comes from (default: no CSRF token).
    #[serde(default)]
    pub csrf: CsrfSettings,
    /// The "forgot password" form.
    pub forgot: ForgotFlow,
    /// The emailed link.
    #[serde(default)]
    pub link: LinkSettings,
    /// The "choose a new password" form.
    pub set_password: SetPasswordFlow,
    /// The sign-in form, if the harness should check the new password works.
    pub login: Option<LoginFlow>,
    /// The test accounts the app has.
    #[serde(default)]
    pub accounts: Vec<TestAccount>,
    /// Case variants and Unicode look-alikes of the accounts' addresses.
    #[serde(default)]
    pub lookalikes: Vec<LookAlike>,
    /// The app's rate limits, so the harness can plan around them.
    #[serde(default)]
    pub limits: Limits,
    /// How the harness's client behaves.
    #[serde(default)]
    pub client: ClientSettings,
    /// Tuning of individual checks.
    #[serde(default)]
    pub checks: CheckSettings,
    /// The link's shape, built from `[link]` when the file is read.
    #[serde(skip)]
    link_pattern: Option<LinkPattern>,
    /// The directory of the file it was read from (relative `app.dir`
    /// and the app's working directory start there).
    #[serde(skip)]
    pub file_dir: Option<PathBuf>,
    /// What reading the file converted or assumed (printed before a run).
    #[serde(skip)]
    pub load_notes: Vec<String>,
}

/// `[smtp]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// The address the fake SMTP server listens on when `--smtp-listen` is
    /// not given (default `127.0.0.1:2525`).
    pub listen: Option<SocketAddr>,
}

/// `[app]`: start the app for the run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppLaunch {
    /// Program and arguments. Placeholders: `{smtp}` (the fake server's
    /// `host:port`, e.g. `127.0.0.1:2525`), `{smtp_host}`, `{smtp_port}`,
    /// `{base_url}` (without a trailing `/`), `{listen}` (the base URL's
    /// `host:port`) and `{port}` (its port).
    pub command: Vec<String>,
    /// Extra environment variables; values take the same placeholders.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory, relative to the target file (default: the
    /// file's directory, so the file works from any current directory).
    pub dir: Option<PathBuf>,
    /// Environment variables the app must not inherit from the harness
    /// (e.g. `DATABASE_URL`, which would switch the portal to PostgreSQL).
    #[serde(default)]
    pub env_remove: Vec<String>,
    /// How long to wait for the app to answer (default 180 s: a first
    /// `cargo run` may compile).
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_secs: u64,
}

fn default_ready_timeout() -> u64 {
    180
}

/// `[csrf]`: where a form's anti-CSRF token comes from and how it is sent back.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfSettings {
    /// The hidden form field carrying the token (`csrf_token`,
    /// `csrfmiddlewaretoken`, `authenticity_token`). Hidden fields are always
    /// sent back; naming this one makes a missing token an error.
    pub field: Option<String>,
    /// A cookie holding the token (double-submit style, e.g. `csrftoken`).
    pub cookie: Option<String>,
    /// A `<meta name=...>` holding the token (e.g. `csrf-token`).
    pub meta: Option<String>,
    /// A request header to send the cookie's or meta tag's token in (e.g.
    /// `X-CSRFToken`); without it, the token is sent as `field`.
    pub header: Option<String>,
    /// API steps: an endpoint to `GET` first, which sets the `cookie` or
    /// answers the token in its JSON body (`pointer`).
    #[serde(default, deserialize_with = "de::opt_location")]
    pub fetch: Option<String>,
    /// API steps: where the token is in `fetch`'s JSON answer (a JSON
    /// pointer `/csrfToken`, or a top-level field name).
    pub pointer: Option<String>,
}

impl CsrfSettings {
    /// True when any token source is named.
    pub fn is_used(&self) -> bool {
        self.field.is_some() || self.cookie.is_some() || self.meta.is_some() || self.pointer.is_some()
    }
}

/// How a response is recognised. Every condition given must hold; at least
/// one must be given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The status of the first response (`303`, or a list `[302, 303]`).
    #[serde(default, deserialize_with = "de::status_set")]
    pub status: Option<Vec<u16>>,
    /// The first response redirects here: a path (`/forgot/sent`; query
    /// compared only when given) or an absolute URL.
    pub redirect: Option<String>,
    /// The final page (after following redirects) contains this text.
    pub text: Option<String>,
    /// The answer is JSON with these values: a JSON pointer (`/detail`,
    /// `/errors/0`) or a top-level field name, and the value it must have
    /// (`{ detail = "Password reset e-mail has been sent." }`).
    #[serde(default)]
    pub json: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// The answer is JSON that has these pointers or fields, whatever their
    /// values (`["/access_token"]`).
    #[serde(default)]
    pub json_has: Option<Vec<String>>,
}

impl Expect {
    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.redirect.is_none()
            && self.text.is_none()
            && self.json.as_ref().is_none_or(|j| j.is_empty())
            && self.json_has.as_ref().is_none_or(|j| j.is_empty())
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(status) = &self.status {
            let codes: Vec<String> = status.iter().map(u16::to_string).collect();
            parts.push(format!("status {}", codes.join(" or ")));
        }
        if let Some(redirect) = &self.redirect {
            parts.push(format!("a redirect to {redirect}"));
        }
        if let Some(text) = &self.text {
            parts.push(format!("a page containing {text:?}"));
        }
        for (key, value) in self.json.iter().flatten() {
            parts.push(format!("JSON {} = {value}", api::pointer(key)));
        }
        for key in self.json_has.iter().flatten() {
            parts.push(format!("JSON with {}", api::pointer(key)));
        }
        f.write_str(&parts.join(", "))
    }
}

/// `[forgot]`: the "forgot password" form.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgotFlow {
    /// The page with the form (GET); empty for an API step.
    #[serde(default, deserialize_with = "de::location")]
    pub page: String,
    /// Where the form posts (default: the form's `action`, else the page).
    #[serde(default, deserialize_with = "de::opt_location")]
    pub action: Option<String>,
    /// The field for the email address or username (form steps).
    #[serde(default)]
    pub identifier_field: String,
    /// API step: the method (default `POST`).
    pub method: Option<String>,
    /// API step: the endpoint (a path or an absolute URL). Giving it makes
    /// the step an API call instead of a form.
    #[serde(default, deserialize_with = "de::opt_location")]
    pub url: Option<String>,
    /// API step: `json` (default) or `form`.
    pub encoding: Option<Encoding>,
    /// API step: the body, with `{identifier}` where the address or
    /// username goes (`{ email = "{identifier}" }`).
    pub body: Option<serde_json::Value>,
    /// What the field accepts (default `either`): probes for unknown
    /// identifiers, look-alikes and timing classes use only these kinds.
    #[serde(default)]
    pub identifier_kind: IdentifierKind,
    /// What the app does when several accounts share the typed address
    /// (default `one_mail_per_account`).
    #[serde(default)]
    pub shared_address: SharedAddress,
    /// How "request accepted" looks (the same for every identifier).
    pub accepted: Expect,
    /// This form's CSRF token (`[forgot.csrf]`), when it differs from
    /// the file's `[csrf]`.
    pub csrf: Option<CsrfSettings>,
}

/// What the forgot form's identifier field accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentifierKind {
    /// Only an email address (an email-only form).
    Email,
    /// Only a username.
    Username,
    /// Either.
    #[default]
    Either,
}

impl IdentifierKind {
    /// Whether the form takes email addresses.
    pub fn takes_email(self) -> bool {
        matches!(self, IdentifierKind::Email | IdentifierKind::Either)
    }

    /// Whether the form takes usernames.
    pub fn takes_username(self) -> bool {
        matches!(self, IdentifierKind::Username | IdentifierKind::Either)
    }
}

/// The declared policy for an address several accounts share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedAddress {
    /// Each account gets its own email with its own link.
    #[default]
    OneMailPerAccount,
    /// One email listing each account with its own link.
    OneCombinedMail,
}

/// Where the token travels in the link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenIn {
    /// A query parameter (`?token=...`).
    #[default]
    Query,
    /// A fragment parameter (`#token=...`).
    Fragment,
    /// The last path segment (`/reset/<token>`).
    Path,
}

/// How the emailed link leads to the set-password form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Follow {
    /// The link's page is the form (the token travels with the form).
    #[default]
    Form,
    /// The link redirects to `set_password.page`, keeping the token in the
    /// session (cookie).
    Redirect,
}

/// `[link]`: the emailed reset link.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSettings {
    /// Where links must point (default: `base_url` + `/reset`): a URL or
    /// a path, optionally a pattern with `{token}` (a whole path segment,
    /// query value or fragment value) and other `{name}` placeholders
    /// (one segment or value each), e.g. `/accounts/reset/{uidb64}/{token}/`
    /// or `/reset-password/{token}?email={email}`. Without `{token}`, the
    /// token travels as `token_in` and `token_param` say. Scheme, host,
    /// port and shape are checked ([`LinkPattern`]).
    pub url: Option<String>,
    /// The token's parameter name (default `token`; ignored for a pattern).
    #[serde(default = "default_token_param")]
    pub token_param: String,
    /// Where the token travels (default `query`; ignored for a pattern).
    #[serde(default)]
    pub token_in: TokenIn,
    /// How the link reaches the form (default `form`).
    #[serde(default)]
    pub follow: Follow,
    /// How opening a dead link looks (optional but recommended).
    pub invalid: Option<Expect>,
    /// Who serves the link's page: `app` (default; its headers are
    /// checked) or `front_end` (a separate single-page app).
    #[serde(default)]
    pub page: LinkPage,
    /// With `page = "front_end"`: where the harness can load the front
    /// end (`http://127.0.0.1:5173`); the link's path, query and fragment
    /// are opened there. Without it, the checks of the link's page skip.
    #[serde(default, deserialize_with = "de::opt_absolute_url")]
    pub front_end_url: Option<Url>,
}

impl Default for LinkSettings {
    fn default() -> Self {
        LinkSettings {
            url: None,
            token_param: default_token_param(),
            token_in: TokenIn::Query,
            follow: Follow::Form,
            invalid: None,
            page: LinkPage::App,
            front_end_url: None,
        }
    }
}

fn default_token_param() -> String {
    "token".into()
}

/// `[set_password]`: the "choose a new password" form.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPasswordFlow {
    /// The page with the form (informative: the harness follows the
    /// link's redirects and finds the form wherever it is, e.g. on a
    /// per-user page).
    #[serde(default, deserialize_with = "de::opt_location")]
    pub page: Option<String>,
    /// The new password's field (form steps).
    #[serde(default)]
    pub password_field: String,
    /// API step: the method (default `POST`).
    pub method: Option<String>,
    /// API step: the endpoint the front end's page posts to. Giving it
    /// makes the step an API call instead of a form.
    #[serde(default, deserialize_with = "de::opt_location")]
    pub url: Option<String>,
    /// API step: `json` (default) or `form`.
    pub encoding: Option<Encoding>,
    /// API step: the body, with `{token}`, `{password}` and the link
    /// pattern's other placeholders (`{uid}`).
    pub body: Option<serde_json::Value>,
    /// The confirmation's field, if the form has one.
    pub confirm_field: Option<String>,
    /// Other fields to fill in (e.g. an email the form asks again);
    /// `{name}` in a value is what the link pattern's `{name}` matched.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// How a completed reset looks.
    pub success: Expect,
    /// How a refused link looks on submit (optional; anything that is not
    /// `success` counts as not completed).
    pub failure: Option<Expect>,
    /// This form's CSRF token (`[set_password.csrf]`), when it differs
    /// from the file's `[csrf]`.
    pub csrf: Option<CsrfSettings>,
}

/// `[login]`: the sign-in form.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginFlow {
    /// The page with the form; empty for an API step.
    #[serde(default, deserialize_with = "de::location")]
    pub page: String,
    /// Where the form posts (default: the form's `action`, else the page).
    #[serde(default, deserialize_with = "de::opt_location")]
    pub action: Option<String>,
    /// The username / email field (form steps).
    #[serde(default)]
    pub identifier_field: String,
    /// The password field (form steps).
    #[serde(default)]
    pub password_field: String,
    /// API step: the method (default `POST`).
    pub method: Option<String>,
    /// API step: the sign-in endpoint. Giving it makes the step an API call.
    #[serde(default, deserialize_with = "de::opt_location")]
    pub url: Option<String>,
    /// API step: `json` (default) or `form`.
    pub encoding: Option<Encoding>,
    /// API step: the body, with `{identifier}` and `{password}`.
    pub body: Option<serde_json::Value>,
    /// How a successful sign-in looks.
    pub success: Expect,
    /// This form's CSRF token (`[login.csrf]`), when it differs from the
    /// file's `[csrf]`.
    pub csrf: Option<CsrfSettings>,
}

/// Which of the flow's forms a page holds (each may have its own CSRF
/// settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormStep {
    /// The "forgot password" form.
    Forgot,
    /// The "choose a new password" form.
    SetPassword,
    /// The sign-in form.
    Login,
}

impl HttpTarget {
    /// Reads and validates a target file.
    pub fn load(path: &Path) -> Result<HttpTarget, TargetFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TargetFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut target = Self::from_toml_str(&text, &path.display().to_string())?;
        target.file_dir = Some(match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        });
        Ok(target)
    }

    /// Parses and validates target-file text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<HttpTarget, TargetFileError> {
        let syntax = |e: toml::de::Error| TargetFileError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        };
        let table: toml::Table = toml::from_str(text).map_err(syntax)?;
        let notes = version::check(&table).map_err(|(key, reason)| TargetFileError::Invalid {
            origin: origin.to_owned(),
            key,
            reason,
        })?;
        let mut target: HttpTarget = toml::from_str(text).map_err(syntax)?;
        target.load_notes = notes;
        target
            .validate()
            .map_err(|(key, reason)| TargetFileError::Invalid {
                origin: origin.to_owned(),
                key,
                reason,
            })?;
        if target.name.is_empty() {
            target.name = target.base_url.to_string();
        }
        let pattern = target
            .build_link_pattern()
            .map_err(|reason| TargetFileError::Invalid {
                origin: origin.to_owned(),
                key: "link.url".into(),
                reason,
            })?;
        target.link_pattern = Some(pattern);
        Ok(target)
    }

    /// A URL of the app: `location` is a path (joined to the base URL) or
    /// an absolute URL.
    pub fn url(&self, location: &str) -> Url {
        // Locations are validated at load time, so joining cannot fail; the
        // base URL is a safe fallback all the same.
        self.base_url
            .join(location)
            .unwrap_or_else(|_| self.base_url.clone())
    }

    fn build_link_pattern(&self) -> Result<LinkPattern, String> {
        let text = self.link.url.as_deref().unwrap_or("/reset");
        if text.contains('{') {
            return LinkPattern::parse(text, &self.base_url);
        }
        let target = if text.starts_with('/') && !text.starts_with("//") {
            self.url(text)
        } else {
            de::parse_absolute(text)?
        };
        let name = self.link.token_param.clone();
        Ok(LinkPattern::plain(
            &target,
            match self.link.token_in {
                TokenIn::Query => TokenLocation::Query(name),
                TokenIn::Fragment => TokenLocation::Fragment(name),
                TokenIn::Path => TokenLocation::PathSegment,
            },
        ))
    }

    /// The reset link's shape: the one place that decides whether a link
    /// is a reset link, and whether it is on the target.
    pub fn link_pattern(&self) -> LinkPattern {
        self.link_pattern
            .clone()
            .or_else(|| self.build_link_pattern().ok())
            .unwrap_or_else(|| LinkPattern::plain(&self.url("/reset"), TokenLocation::Query("token".into())))
    }

    /// Where reset links must point, for messages (the pattern's text).
    pub fn link_target(&self) -> String {
        self.link_pattern().to_string()
    }

    /// Enabled accounts whose address no other listed account shares: the
    /// ones most checks use.
    pub fn plain_accounts(&self) -> Vec<&TestAccount> {
        self.accounts
            .iter()
            .filter(|a| !a.disabled)
            .filter(|a| {
                self.accounts
                    .iter()
                    .filter(|b| b.email.eq_ignore_ascii_case(&a.email))
                    .count()
                    == 1
            })
            .collect()
    }

    /// Groups of two or more enabled accounts sharing one address.
    pub fn shared_email_groups(&self) -> Vec<Vec<&TestAccount>> {
        let mut groups: Vec<Vec<&TestAccount>> = Vec::new();
        for account in self.accounts.iter().filter(|a| !a.disabled) {
            match groups
                .iter_mut()
                .find(|g| g[0].email.eq_ignore_ascii_case(&account.email))
            {
                Some(group) => group.push(account),
                None => groups.push(vec![account]),
            }
        }
        groups.retain(|g| g.len() > 1);
        groups
    }

    /// The account listed with this name (`username`, else `identifier`).
    pub fn account(&self, key: &str) -> Option<&TestAccount> {
        self.accounts
            .iter()
            .find(|a| a.key() == key)
            .or_else(|| self.accounts.iter().find(|a| a.identifier == key))
    }

    /// The CSRF settings of `step`'s form: its own (`[forgot.csrf]`,
    /// `[set_password.csrf]`, `[login.csrf]`) when given, else the file's
    /// `[csrf]` (which every form without its own shares).
    pub fn csrf_for(&self, step: Option<FormStep>) -> &CsrfSettings {
        let own = match step {
            Some(FormStep::Forgot) => self.forgot.csrf.as_ref(),
            Some(FormStep::SetPassword) => self.set_password.csrf.as_ref(),
            Some(FormStep::Login) => self.login.as_ref().and_then(|l| l.csrf.as_ref()),
            None => None,
        };
        own.unwrap_or(&self.csrf)
    }

    /// The table [`csrf_for`](Self::csrf_for) reads for `step`, for messages.
    pub fn csrf_table(&self, step: Option<FormStep>) -> &'static str {
        match step {
            Some(FormStep::Forgot) if self.forgot.csrf.is_some() => "forgot.csrf",
            Some(FormStep::SetPassword) if self.set_password.csrf.is_some() => "set_password.csrf",
            Some(FormStep::Login) if self.login.as_ref().is_some_and(|l| l.csrf.is_some()) => "login.csrf",
            _ => "csrf",
        }
    }

    /// The forgot step's API call, when it is one (`forgot.url`).
    pub fn forgot_api(&self) -> Option<ApiCall> {
        let f = &self.forgot;
        raw_call(&f.method, &f.url, f.encoding, &f.body)
    }

    /// The set-password step's API call, when it is one (`set_password.url`).
    pub fn set_password_api(&self) -> Option<ApiCall> {
        let f = &self.set_password;
        raw_call(&f.method, &f.url, f.encoding, &f.body)
    }

    /// The sign-in step's API call, when it is one (`login.url`).
    pub fn login_api(&self) -> Option<ApiCall> {
        let f = self.login.as_ref()?;
        raw_call(&f.method, &f.url, f.encoding, &f.body)
    }

    /// Whether any step is an API call (a JSON-API target).
    pub fn is_api(&self) -> bool {
        self.forgot_api().is_some() || self.set_password_api().is_some() || self.login_api().is_some()
    }

    /// Where the flow starts: the forgot page, or the forgot API endpoint
    /// (any HTTP answer to a `GET` of it shows the app is up).
    pub fn entry_url(&self) -> Url {
        match &self.forgot.url {
            Some(url) => self.url(url),
            None => self.url(&self.forgot.page),
        }
    }

    /// Where the harness loads the page an emailed `link` opens: the link
    /// itself when the app serves it, the link's path, query and fragment
    /// on `link.front_end_url` for a separate front end; or why it cannot.
    pub fn link_page_url(&self, link: &Url) -> Result<Url, String> {
        match (self.link.page, &self.link.front_end_url) {
            (LinkPage::App, _) => Ok(link.clone()),
            (LinkPage::FrontEnd, Some(front)) => {
                let mut url = front.clone();
                let prefix = front.path().trim_end_matches('/');
                url.set_path(&format!("{prefix}{}", link.path()));
                url.set_query(link.query());
                url.set_fragment(link.fragment());
                Ok(url)
            }
            (LinkPage::FrontEnd, None) => Err(FRONT_END_NOT_LOADED.to_owned()),
        }
    }

    /// Names of form fields whose values never appear in evidence.
    pub fn secret_fields(&self) -> Vec<String> {
        let mut fields = vec![self.set_password.password_field.clone()];
        fields.extend(self.set_password.confirm_field.clone());
        fields.extend(self.login.as_ref().map(|l| l.password_field.clone()));
        fields
    }
}

/// Why the checks of the link's page skip for a front end the harness
/// cannot load.
pub const FRONT_END_NOT_LOADED: &str = "the link opens a page of a separate front end (link.page = \"front_end\"), \
     not served by the app, and no link.front_end_url says where the harness can load it: its headers and \
     what opening it does are not checked";

fn raw_call(
    method: &Option<String>,
    url: &Option<String>,
    encoding: Option<Encoding>,
    body: &Option<serde_json::Value>,
) -> Option<ApiCall> {
    let raw = api::RawCall {
        method: method.as_deref(),
        url: url.as_deref(),
        encoding,
        body: body.as_ref(),
    };
    if raw.is_api() { raw.build().ok() } else { None }
}

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod tests;
