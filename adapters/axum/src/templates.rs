//! The pages' templates (minijinja, the engine the core's emails use).
//!
//! Every page is a template extending `base.html` (blocks `title`,
//! `heading`, `content`, `nav`); values are HTML-escaped. A host replaces
//! any of them, or adds a language, with
//! [`ResetPagesBuilder::template`](crate::ResetPagesBuilder::template):
//! `"forgot.html"` replaces the default, `"fr/forgot.html"` is used when the
//! browser's `Accept-Language` prefers French (`fr`, `fr-CA` ...). A page
//! without a template in the preferred language falls back to the default.
//!
//! | template | variables (besides `lang`, `title`, `mount`, `site_name`, `nav`) |
//! | --- | --- |
//! | `forgot.html` | `csrf_token`, `identifier`, `error` |
//! | `forgot_sent.html` | `accepted_message` |
//! | `reset_form.html` | `csrf_token`, `username`, `error`, `min_password_chars` |
//! | `reset_done.html` | `sign_in_url` |
//! | `reset_invalid.html` | `invalid_message` |
//! | `deny_form.html` | `csrf_token` |
//! | `deny_done.html` | |
//! | `security.html` | `csrf_token`, `signed_in_as` |
//! | `error.html` | `message` |

use std::collections::BTreeSet;

use minijinja::Environment;

use crate::BuildError;

/// The default templates, by name.
pub const DEFAULT_TEMPLATES: [(&str, &str); 10] = [
    ("base.html", include_str!("templates/base.html")),
    ("forgot.html", include_str!("templates/forgot.html")),
    ("forgot_sent.html", include_str!("templates/forgot_sent.html")),
    ("reset_form.html", include_str!("templates/reset_form.html")),
    ("reset_done.html", include_str!("templates/reset_done.html")),
    ("reset_invalid.html", include_str!("templates/reset_invalid.html")),
    ("deny_form.html", include_str!("templates/deny_form.html")),
    ("deny_done.html", include_str!("templates/deny_done.html")),
    ("security.html", include_str!("templates/security.html")),
    ("error.html", include_str!("templates/error.html")),
];

/// The compiled templates.
pub(crate) struct Pages {
    env: Environment<'static>,
    /// Languages with at least one template (`fr`, `pt-br` ...).
    locales: BTreeSet<String>,
}

impl Pages {
    /// Compiles the defaults with `overrides` (name, source) on top.
    pub(crate) fn compile(overrides: &[(String, String)]) -> Result<Pages, BuildError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        let mut locales = BTreeSet::new();
        let defaults = DEFAULT_TEMPLATES
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()));
        for (name, source) in defaults.chain(overrides.iter().cloned()) {
            // Languages are looked up in lower case (`pt-br/forgot.html`).
            let name = match name.split_once('/') {
                Some((locale, page)) => {
                    let locale = locale.to_ascii_lowercase();
                    locales.insert(locale.clone());
                    format!("{locale}/{page}")
                }
                None => name,
            };
            env.add_template_owned(name.clone(), source)
                .map_err(|e| BuildError::Template {
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
        }
        let pages = Pages { env, locales };
        // Render every page once so that a broken override fails at start-up.
        for (name, _) in DEFAULT_TEMPLATES.iter().skip(1) {
            pages
                .render_named(name, sample_context())
                .map_err(|reason| BuildError::Template {
                    name: (*name).to_owned(),
                    reason,
                })?;
        }
        for locale in &pages.locales {
            for (name, _) in DEFAULT_TEMPLATES.iter().skip(1) {
                let localized = format!("{locale}/{name}");
                if pages.env.get_template(&localized).is_ok() {
                    pages
                        .render_named(&localized, sample_context())
                        .map_err(|reason| BuildError::Template {
                            name: localized.clone(),
                            reason,
                        })?;
                }
            }
        }
        Ok(pages)
    }

    fn render_named(&self, name: &str, context: minijinja::Value) -> Result<String, String> {
        let template = self.env.get_template(name).map_err(|e| e.to_string())?;
        template.render(context).map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                text.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            text
        })
    }

    /// The language to answer in for an `Accept-Language` value, if a
    /// template set has it.
    pub(crate) fn pick_locale(&self, accept_language: Option<&str>) -> Option<String> {
        let mut ranked: Vec<(u16, usize, String)> = accept_language
            .unwrap_or_default()
            .split(',')
            .enumerate()
            .filter_map(|(i, item)| {
                let mut parts = item.split(';');
                let tag = parts.next()?.trim().to_ascii_lowercase();
                if tag.is_empty() || tag == "*" || tag.len() > 35 {
                    return None;
                }
                let q = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1000), |q| {
                        q.trim().parse::<f32>().ok().map(|q| (q * 1000.0) as u16)
                    })?;
                (q > 0).then_some((q, i, tag))
            })
            .take(16)
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, _, tag) in ranked {
            if tag == "en" || tag.starts_with("en-") {
                return None;
            }
            if self.locales.contains(&tag) {
                return Some(tag);
            }
            if let Some((primary, _)) = tag.split_once('-')
                && self.locales.contains(primary)
            {
                return Some(primary.to_owned());
            }
        }
        None
    }

    /// Renders page `name` in `locale` when that language has it.
    pub(crate) fn render(
        &self,
        name: &str,
        locale: Option<&str>,
        context: minijinja::Value,
    ) -> Result<String, String> {
        if let Some(locale) = locale {
            let localized = format!("{locale}/{name}");
            if self.env.get_template(&localized).is_ok() {
                let context = minijinja::context! { lang => locale, ..context };
                return self.render_named(&localized, context);
            }
        }
        self.render_named(name, minijinja::context! { lang => "en", ..context })
    }
}

fn sample_context() -> minijinja::Value {
    minijinja::context! {
        lang => "en",
        title => "Sample",
        mount => "",
        site_name => "Sample site",
        nav => Vec::<minijinja::Value>::new(),
        csrf_token => "sample-csrf",
        identifier => "someone@example.test",
        error => "Sample error.",
        username => "someone",
        min_password_chars => 15,
        accepted_message => resetkit::RequestAccepted::MESSAGE,
        invalid_message => resetkit::flow::INVALID_LINK_MESSAGE,
        sign_in_url => "/login",
        signed_in_as => "someone",
        message => "Sample message.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_an_available_locale_by_quality() {
        let pages = Pages::compile(&[(
            "fr/forgot.html".into(),
            "{% extends \"base.html\" %}{% block content %}Mot de passe oublié{% endblock %}".into(),
        )])
        .unwrap();
        assert_eq!(
            pages.pick_locale(Some("fr-CA,fr;q=0.9,en;q=0.8")).as_deref(),
            Some("fr")
        );
        assert_eq!(
            pages.pick_locale(Some("de, en;q=0.5, fr;q=0.4")),
            None,
            "English ranks first"
        );
        assert_eq!(pages.pick_locale(Some("de, fr;q=0.4")).as_deref(), Some("fr"));
        assert_eq!(pages.pick_locale(Some("fr;q=0")), None);
        assert_eq!(pages.pick_locale(None), None);
        let html = pages.render("forgot.html", Some("fr"), sample_context()).unwrap();
        assert!(
            html.contains("Mot de passe oublié") && html.contains("lang=\"fr\""),
            "{html}"
        );
        // A page without a French template falls back to English.
        let sent = pages
            .render("forgot_sent.html", Some("fr"), sample_context())
            .unwrap();
        assert!(sent.contains("lang=\"en\""));
    }

    #[test]
    fn a_broken_override_fails_at_build_naming_the_template() {
        let Err(error) = Pages::compile(&[("forgot.html".into(), "{% if %}".into())]) else {
            panic!("a broken template compiled");
        };
        assert!(error.to_string().contains("forgot.html"), "{error}");
    }

    #[test]
    fn values_are_escaped() {
        let pages = Pages::compile(&[]).unwrap();
        let html = pages
            .render(
                "forgot.html",
                None,
                minijinja::context! { identifier => "\"><script>x</script>", error => "<b>", ..sample_context() },
            )
            .unwrap();
        assert!(!html.contains("<script>x") && !html.contains("<b>"), "{html}");
    }
}
