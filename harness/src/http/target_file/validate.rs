//! Checks of a parsed target file that serde cannot express; each error
//! names the key at fault.

use std::collections::HashSet;

use super::api::{self, RawCall};
use super::{Expect, HttpTarget, IdentifierKind, LinkPage};

impl HttpTarget {
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, reason: &str| Err((key.to_owned(), reason.to_owned()));
        self.validate_api()?;
        let forgot_form = self.forgot.url.is_none() && self.forgot.body.is_none();
        let set_form = self.set_password.url.is_none() && self.set_password.body.is_none();
        let login_form = self
            .login
            .as_ref()
            .is_some_and(|l| l.url.is_none() && l.body.is_none());
        for (key, expect) in [
            ("forgot.accepted", Some(&self.forgot.accepted)),
            ("set_password.success", Some(&self.set_password.success)),
            ("set_password.failure", self.set_password.failure.as_ref()),
            ("link.invalid", self.link.invalid.as_ref()),
            ("login.success", self.login.as_ref().map(|l| &l.success)),
        ] {
            if expect.is_some_and(Expect::is_empty) {
                return bad(key, "needs at least one of `status`, `redirect`, `text`");
            }
        }
        for (key, name) in [
            (
                "forgot.identifier_field",
                Some(&self.forgot.identifier_field).filter(|_| forgot_form),
            ),
            (
                "set_password.password_field",
                Some(&self.set_password.password_field).filter(|_| set_form),
            ),
            (
                "set_password.confirm_field",
                self.set_password.confirm_field.as_ref(),
            ),
            (
                "login.identifier_field",
                self.login
                    .as_ref()
                    .map(|l| &l.identifier_field)
                    .filter(|_| login_form),
            ),
            (
                "login.password_field",
                self.login
                    .as_ref()
                    .map(|l| &l.password_field)
                    .filter(|_| login_form),
            ),
            ("link.token_param", Some(&self.link.token_param)),
            ("client.address_header", self.client.address_header.as_ref()),
        ] {
            if name.is_some_and(|n| n.trim().is_empty()) {
                return bad(key, "is empty");
            }
        }
        for (prefix, csrf) in [
            ("csrf", Some(&self.csrf)),
            ("forgot.csrf", self.forgot.csrf.as_ref()),
            ("set_password.csrf", self.set_password.csrf.as_ref()),
            ("login.csrf", self.login.as_ref().and_then(|l| l.csrf.as_ref())),
        ] {
            if let Some(csrf) = csrf {
                check_csrf(prefix, csrf).map_err(|(k, r)| (k, r.to_owned()))?;
            }
        }
        for (key, header) in [("client.address_header", &self.client.address_header)] {
            if let Some(h) = header
                && reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err()
            {
                return bad(key, "is not a valid HTTP header name");
            }
        }
        for name in self.client.headers.keys() {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return bad(
                    &format!("client.headers.{name}"),
                    "is not a valid HTTP header name",
                );
            }
        }
        if let Some(app) = &self.app
            && app.command.first().is_none_or(|p| p.trim().is_empty())
        {
            return bad("app.command", "needs at least the program to run");
        }
        if self.client.timeout_secs == 0 {
            return bad("client.timeout_secs", "must be at least 1");
        }
        let checks = &self.checks;
        if !(0.1..=120.0).contains(&checks.mail_wait_secs) {
            return bad("checks.mail_wait_secs", "must be between 0.1 and 120");
        }
        if !(2..=64).contains(&checks.parallel_submits) {
            return bad("checks.parallel_submits", "must be between 2 and 64");
        }
        if !(5..=1000).contains(&checks.timing_samples) {
            return bad("checks.timing_samples", "must be between 5 and 1000");
        }
        if !(checks.timing_samples..=5000).contains(&checks.timing_max_samples) {
            return bad(
                "checks.timing_max_samples",
                "must be at least checks.timing_samples (and at most 5000)",
            );
        }
        if !(1.0..=3600.0).contains(&checks.timing_budget_secs) {
            return bad("checks.timing_budget_secs", "must be between 1 and 3600");
        }
        if !(1..=50).contains(&checks.race_trials) {
            return bad("checks.race_trials", "must be between 1 and 50");
        }
        if !(checks.timing_warn_ratio > 1.0 && checks.timing_warn_ratio <= 100.0) {
            return bad("checks.timing_warn_ratio", "must be above 1.0 (and at most 100)");
        }
        if !(0.0..=10_000.0).contains(&checks.timing_min_difference_ms) {
            return bad("checks.timing_min_difference_ms", "must be between 0 and 10000");
        }
        for (key, limit) in [
            ("limits.per_account", self.limits.per_account),
            ("limits.per_client", self.limits.per_client),
            ("limits.set_password", self.limits.set_password),
        ] {
            if limit == Some(0) {
                return bad(key, "must be at least 1 (leave it out when there is no limit)");
            }
        }
        if let Some(w) = self.limits.window_secs
            && !(0.1..=86_400.0).contains(&w)
        {
            return bad("limits.window_secs", "must be between 0.1 and 86400 (a day)");
        }
        if !(0.0..=3600.0).contains(&self.limits.max_wait_secs) {
            return bad("limits.max_wait_secs", "must be between 0 and 3600");
        }
        if self.limits.throttled.as_ref().is_some_and(Expect::is_empty) {
            return bad(
                "limits.throttled",
                "needs at least one of `status`, `redirect`, `text`",
            );
        }
        if self.limits.throttled.as_ref() == Some(&self.forgot.accepted) {
            return bad(
                "limits.throttled",
                "is the same as forgot.accepted: leave it out when throttled requests get the accepted answer",
            );
        }
        let mut seen = HashSet::new();
        for (i, account) in self.accounts.iter().enumerate() {
            if account.identifier.trim().is_empty() {
                return bad(&format!("accounts[{i}].identifier"), "is empty");
            }
            if account.username.as_ref().is_some_and(|u| u.trim().is_empty()) {
                return bad(&format!("accounts[{i}].username"), "is empty");
            }
            if let Some(other) = self.accounts[..i]
                .iter()
                .find(|o| o.identifier == account.identifier)
                && !other.email.eq_ignore_ascii_case(&account.email)
            {
                return bad(
                    &format!("accounts[{i}].identifier"),
                    &format!(
                        "repeats `{}` with another address (only accounts that share an address may share the identifier)",
                        account.identifier
                    ),
                );
            }
            if !seen.insert(account.key()) {
                let key = if account.username.is_some() {
                    "username"
                } else {
                    "identifier"
                };
                return bad(
                    &format!("accounts[{i}].{key}"),
                    &format!(
                        "repeats `{}`: accounts sharing an identifier need a `username` each",
                        account.key()
                    ),
                );
            }
            let is_email = account.identifier.contains('@');
            match self.forgot.identifier_kind {
                IdentifierKind::Email if !is_email => {
                    return bad(
                        &format!("accounts[{i}].identifier"),
                        "must be an email address: forgot.identifier_kind = \"email\"",
                    );
                }
                IdentifierKind::Username if is_email => {
                    return bad(
                        &format!("accounts[{i}].identifier"),
                        "must be a username: forgot.identifier_kind = \"username\"",
                    );
                }
                _ => {}
            }
            let parts: Vec<&str> = account.email.split('@').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                return bad(
                    &format!("accounts[{i}].email"),
                    &format!("is not an email address: {:?}", account.email),
                );
            }
        }
        for (i, lookalike) in self.lookalikes.iter().enumerate() {
            let Some(account) = self.account(&lookalike.account) else {
                return bad(
                    &format!("lookalikes[{i}].account"),
                    &format!("names no account in [[accounts]]: {:?}", lookalike.account),
                );
            };
            if !self.forgot.identifier_kind.takes_email() {
                return bad(
                    &format!("lookalikes[{i}]"),
                    "look-alike addresses need a form that takes email addresses (forgot.identifier_kind)",
                );
            }
            if lookalike.typed == account.email || lookalike.typed.trim().is_empty() {
                return bad(
                    &format!("lookalikes[{i}].typed"),
                    "must differ from the account's stored address",
                );
            }
        }
        Ok(())
    }
}

/// The checks of one CSRF table (`csrf`, `forgot.csrf`, ...).
fn check_csrf(prefix: &str, csrf: &super::CsrfSettings) -> Result<(), (String, &'static str)> {
    let key = |k: &str| format!("{prefix}.{k}");
    for (name, value) in [
        ("field", &csrf.field),
        ("cookie", &csrf.cookie),
        ("meta", &csrf.meta),
        ("header", &csrf.header),
    ] {
        if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
            return Err((key(name), "is empty"));
        }
    }
    if csrf.pointer.as_ref().is_some_and(|v| v.trim().is_empty()) {
        return Err((key("pointer"), "is empty"));
    }
    if csrf.pointer.is_some() && csrf.fetch.is_none() {
        return Err((
            key("pointer"),
            "needs `fetch`: the endpoint whose JSON answer holds the token",
        ));
    }
    let from_elsewhere = csrf.cookie.is_some() || csrf.meta.is_some() || csrf.pointer.is_some();
    if from_elsewhere && csrf.header.is_none() && csrf.field.is_none() {
        return Err((
            prefix.to_owned(),
            "takes the token from a cookie, a <meta> or a fetched JSON answer: name `header` or `field` to send it in",
        ));
    }
    if csrf.header.is_some() && !from_elsewhere {
        return Err((
            key("header"),
            "needs `cookie`, `meta` or `pointer` to take the token from",
        ));
    }
    if let Some(h) = &csrf.header
        && reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err()
    {
        return Err((key("header"), "is not a valid HTTP header name"));
    }
    Ok(())
}

impl HttpTarget {
    /// The API keys of `[forgot]`, `[set_password]` and `[login]`, and
    /// `[link] page`: each step is either a form or an API call.
    fn validate_api(&self) -> Result<(), (String, String)> {
        let f = &self.forgot;
        let s = &self.set_password;
        let mut steps = vec![
            (
                "forgot",
                RawCall {
                    method: f.method.as_deref(),
                    url: f.url.as_deref(),
                    encoding: f.encoding,
                    body: f.body.as_ref(),
                },
                vec![
                    ("page", f.page.is_empty()),
                    ("identifier_field", f.identifier_field.is_empty()),
                ],
                vec!["identifier"],
            ),
            (
                "set_password",
                RawCall {
                    method: s.method.as_deref(),
                    url: s.url.as_deref(),
                    encoding: s.encoding,
                    body: s.body.as_ref(),
                },
                vec![("password_field", s.password_field.is_empty())],
                vec!["token", "password"],
            ),
        ];
        if let Some(l) = &self.login {
            steps.push((
                "login",
                RawCall {
                    method: l.method.as_deref(),
                    url: l.url.as_deref(),
                    encoding: l.encoding,
                    body: l.body.as_ref(),
                },
                vec![
                    ("page", l.page.is_empty()),
                    ("identifier_field", l.identifier_field.is_empty()),
                    ("password_field", l.password_field.is_empty()),
                ],
                vec!["identifier", "password"],
            ));
        }
        let link_names = self.link_placeholder_names();
        for (step, raw, form_keys, needed) in steps {
            let key = |k: &str| format!("{step}.{k}");
            if !raw.is_api() {
                if let Some((missing, _)) = form_keys.iter().find(|(_, empty)| *empty) {
                    return Err((
                        key(missing),
                        format!(
                            "is required for a form step (or describe an API call with `{step}.url` and `{step}.body`)"
                        ),
                    ));
                }
                continue;
            }
            let call = raw.build().map_err(|(k, why)| (key(k), why))?;
            if let Some((form_key, _)) = form_keys.iter().find(|(_, empty)| !*empty) {
                return Err((
                    key(form_key),
                    format!("is a form key, but `{step}` is an API call (`{step}.url`): leave it out"),
                ));
            }
            let found = api::placeholders(&call.body);
            for name in &needed {
                if !found.iter().any(|p| p == name) {
                    return Err((
                        key("body"),
                        format!("needs the placeholder `{{{name}}}` in one of its values"),
                    ));
                }
            }
            for name in &found {
                let known =
                    needed.contains(&name.as_str()) || (step == "set_password" && link_names.contains(name));
                if !known {
                    let allowed = if step == "set_password" {
                        let mut all: Vec<String> = needed.iter().map(|n| format!("{{{n}}}")).collect();
                        all.extend(link_names.iter().map(|n| format!("{{{n}}}")));
                        all.join(", ")
                    } else {
                        needed
                            .iter()
                            .map(|n| format!("{{{n}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    return Err((
                        key("body"),
                        format!(
                            "has the placeholder `{{{name}}}`, which nothing fills (this step has {allowed})"
                        ),
                    ));
                }
            }
            if step == "forgot" && api::slot_of(&call.body, "identifier").is_none() {
                return Err((
                    key("body"),
                    "needs a value that is exactly \"{identifier}\" (the probes repeat that key and make it a list)"
                        .to_owned(),
                ));
            }
        }
        if self.link.front_end_url.is_some() && self.link.page != LinkPage::FrontEnd {
            return Err((
                "link.front_end_url".into(),
                "is only for link.page = \"front_end\"".into(),
            ));
        }
        if self.link.page == LinkPage::FrontEnd && self.set_password.url.is_none() {
            return Err((
                "link.page".into(),
                "= \"front_end\" needs the API call the front end makes: set_password.url and set_password.body"
                    .into(),
            ));
        }
        for (key, expect) in [
            ("forgot.accepted", Some(&self.forgot.accepted)),
            ("set_password.success", Some(&self.set_password.success)),
            ("set_password.failure", self.set_password.failure.as_ref()),
            ("link.invalid", self.link.invalid.as_ref()),
            ("login.success", self.login.as_ref().map(|l| &l.success)),
            ("limits.throttled", self.limits.throttled.as_ref()),
        ] {
            let Some(expect) = expect else { continue };
            let pointers = expect
                .json
                .iter()
                .flat_map(|j| j.keys())
                .chain(expect.json_has.iter().flatten());
            for pointer in pointers {
                let p = api::pointer(pointer);
                if p.is_empty() || p.contains("//") {
                    return Err((
                        format!("{key}.json"),
                        format!("{pointer:?} is not a JSON pointer (`/detail`) or a field name"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The names of the link pattern's placeholders other than `{token}`.
    fn link_placeholder_names(&self) -> Vec<String> {
        let text = self.link.url.as_deref().unwrap_or_default();
        let mut names = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else { break };
            let name = &rest[start + 1..start + len];
            if name != "token" && !name.is_empty() {
                names.push(name.to_owned());
            }
            rest = &rest[start + len + 1..];
        }
        names
    }
}
