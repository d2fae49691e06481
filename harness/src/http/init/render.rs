//! The draft target file: every key with a comment saying what was found
//! or what to fill in.

use std::fmt::Write as _;

use super::follow::Followed;
use super::page::ForgotForm;

/// A TOML basic string.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(super) struct Render<'a> {
    pub(super) base: &'a str,
    pub(super) page: &'a str,
    pub(super) forgot: &'a ForgotForm,
    pub(super) csrf_field: Option<String>,
    pub(super) csrf_cookie: Option<String>,
    pub(super) bound_cookie: Option<String>,
    pub(super) csrf_meta: Option<&'static str>,
    pub(super) accepted: Option<super::accepted::Drafted>,
    pub(super) followed: Option<Followed>,
    pub(super) account: Option<&'a str>,
    pub(super) smtp: Option<String>,
}

pub(super) fn render(r: Render<'_>) -> String {
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(
        w,
        "# Draft target file written by `resetkit-harness init` from {}{}.",
        r.base, r.page
    );
    let _ = writeln!(w, "# Check every key, fill in what is marked FILL IN, then run:");
    let _ = writeln!(
        w,
        "#     resetkit-harness run --target THIS_FILE --html report.html"
    );
    let _ = writeln!(
        w,
        "# Every key is described in TARGETS.md (the target-file reference).\n"
    );
    let _ = writeln!(
        w,
        "format = {}  # the target-file format this draft is written in",
        crate::http::target_file::FORMAT
    );
    let _ = writeln!(
        w,
        "name = {}  # a name for reports",
        quote(&format!("{} (draft)", r.base))
    );
    let _ = writeln!(
        w,
        "base_url = {}  # found: where the page answered",
        quote(r.base)
    );
    let _ = writeln!(w, "\n[smtp]");
    let _ = writeln!(
        w,
        "# FILL IN the app's SMTP settings: the app must send its mail to this address,\n\
         # plain SMTP without TLS or AUTH (e.g. host 127.0.0.1, port {}, encryption none).",
        r.smtp
            .as_deref()
            .and_then(|s| s.rsplit(':').next())
            .unwrap_or("2525")
    );
    let _ = writeln!(
        w,
        "listen = {}",
        quote(r.smtp.as_deref().unwrap_or("127.0.0.1:2525"))
    );
    let _ = writeln!(
        w,
        "\n# [app] (optional): how the harness starts the app for a run; without it, start\n\
         # the app yourself with its SMTP pointed at smtp.listen. See TARGETS.md.\n\
         # [app]\n# command = [\"./run-my-app\", \"--port\", \"{{port}}\", \"--smtp\", \"{{smtp}}\"]"
    );

    let _ = writeln!(w, "\n[forgot]");
    let _ = writeln!(w, "page = {}  # found: the page with the form", quote(r.page));
    if let Some(action) = r.forgot.form.action.as_deref().filter(|a| !a.is_empty()) {
        let _ = writeln!(
            w,
            "# action: the form posts to {action:?} (read from the form; no key needed)"
        );
    }
    let _ = writeln!(
        w,
        "identifier_field = {}  # found: the form's {} field",
        quote(&r.forgot.identifier),
        if r.forgot.kind == "email" {
            "address"
        } else {
            "identifier"
        }
    );
    let _ = writeln!(
        w,
        "identifier_kind = {}  # guessed from the field: \"email\", \"username\" or \"either\" (what the field accepts)",
        quote(r.forgot.kind)
    );
    let _ = writeln!(
        w,
        "shared_address = \"one_mail_per_account\"  # FILL IN: or \"one_combined_mail\" if accounts sharing an address get one email listing each"
    );
    match &r.accepted {
        Some(drafted) => {
            let _ = writeln!(w, "# accepted: {}", drafted.comment);
            let _ = writeln!(
                w,
                "accepted = {}  # what an accepted request gets (a correct app answers every request alike)",
                drafted.outcome.toml()
            );
        }
        None => {
            let _ = writeln!(
                w,
                "accepted = {{ status = 200 }}  # FILL IN: what the app answers a request (status, redirect, text)"
            );
        }
    }

    // CSRF belongs to each form: what the forgot form carries goes under
    // [forgot.csrf], so that other forms (the sign-in page, say) are not
    // required to carry the same token.
    let found_any = r.csrf_field.is_some() || r.csrf_cookie.is_some() || r.csrf_meta.is_some();
    if found_any {
        let _ = writeln!(
            w,
            "\n[forgot.csrf]  # the forgot form's own CSRF token (other forms: [set_password.csrf], [login.csrf], or [csrf] for all)"
        );
    } else {
        let _ = writeln!(
            w,
            "\n# [forgot.csrf]: no CSRF token found in the forgot form (hidden fields are sent back anyway)"
        );
    }
    if found_any {
        match &r.csrf_field {
            Some(f) => {
                let _ = writeln!(
                    w,
                    "field = {}  # found: a hidden field of the forgot form",
                    quote(f)
                );
            }
            None => {
                let _ = writeln!(
                    w,
                    "# field: none found (no hidden field named like a CSRF token in the forgot form)"
                );
            }
        }
        match (&r.csrf_cookie, &r.bound_cookie) {
            (Some(c), _) => {
                let _ = writeln!(
                    w,
                    "cookie = {}  # found: a cookie the page sets, holding the form's token",
                    quote(c)
                );
            }
            (None, Some(b)) => {
                let _ = writeln!(
                    w,
                    "# cookie: not needed: the page sets `{b}`, and the form carries its token (the harness keeps cookies)"
                );
            }
            (None, None) => {
                let _ = writeln!(w, "# cookie: none found");
            }
        }
        if let Some(m) = r.csrf_meta {
            let _ = writeln!(
                w,
                "meta = {}  # found: <meta name={m:?}> holds a token\n# header = \"X-CSRF-Token\"  # FILL IN if the app wants the meta token in a header",
                quote(m)
            );
        }
    }

    let _ = writeln!(w, "\n[link]");
    match &r.followed {
        Some(f) => {
            let _ = writeln!(
                w,
                "url = {}  # found: the emailed link, {} (token shown as a fingerprint)",
                quote(&f.link_pattern),
                f.link_example
            );
            let _ = writeln!(
                w,
                "follow = {}  # found: the link {}",
                quote(f.follow),
                if f.follow == "redirect" {
                    "redirects to the form's page"
                } else {
                    "shows the form itself"
                }
            );
            if let Some(invalid) = &f.invalid {
                let _ = writeln!(
                    w,
                    "invalid = {}  # found: opening the link again after the reset",
                    invalid.toml()
                );
            }
        }
        None => {
            let _ = writeln!(
                w,
                "# FILL IN how the emailed link looks (run `init` with --account ADDRESS to find out, or see\n\
                 # TARGETS.md for patterns such as /accounts/reset/{{uidb64}}/{{token}}/), and how a dead link looks.\n\
                 url = \"/reset?token={{token}}\"\n\
                 follow = \"form\"  # or \"redirect\": the link redirects to the form's page"
            );
        }
    }

    let _ = writeln!(w, "\n[set_password]");
    match &r.followed {
        Some(f) => {
            let _ = writeln!(
                w,
                "page = {}  # found: where the link led (informative)",
                quote(&f.set_password_page)
            );
            let _ = writeln!(w, "password_field = {}  # found", quote(&f.password_field));
            match &f.confirm_field {
                Some(c) => {
                    let _ = writeln!(w, "confirm_field = {}  # found", quote(c));
                }
                None => {
                    let _ = writeln!(w, "# confirm_field: the form has one password field");
                }
            }
            if !f.extra_fields.is_empty() {
                let fields: Vec<String> = f
                    .extra_fields
                    .iter()
                    .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
                    .collect();
                let _ = writeln!(
                    w,
                    "fields = {{ {} }}  # found: the form asks for the address again",
                    fields.join(", ")
                );
            }
            if let Some(s) = &f.success {
                let _ = writeln!(
                    w,
                    "success = {}  # found: the answer to setting a new password",
                    s.toml()
                );
            }
            if let Some(failure) = &f.failure {
                let _ = writeln!(
                    w,
                    "failure = {}  # found: what submitting with the spent link (or opening it) showed",
                    failure.toml()
                );
            }
            for note in &f.notes {
                let _ = writeln!(w, "# NOTE: {note}");
            }
        }
        None => {
            let _ = writeln!(
                w,
                "# FILL IN the set-password form's fields and how success looks (init --account finds them).\n\
                 password_field = \"password\"\n\
                 # confirm_field = \"password_confirmation\"\n\
                 success = {{ status = 302 }}"
            );
        }
    }

    let _ = writeln!(
        w,
        "\n# [login] (optional): the sign-in page, so checks can confirm the new password works\n\
         # and the old one does not. Without it they say \"Not checked: signing in\".\n\
         # [login]\n# page = \"/login\"\n# identifier_field = \"email\"\n# password_field = \"password\"\n# success = {{ status = 302 }}"
    );

    let _ = writeln!(
        w,
        "\n# FILL IN the test accounts (several: checks spread their requests over them). The app must\n\
         # have them; use accounts made for testing: checks reset their passwords.\n\
         # Also list a disabled account (disabled = true) and two accounts sharing one address\n\
         # (give each a username) so those checks run; otherwise they are skipped."
    );
    if let (Some(account), Some(f)) = (r.account, &r.followed) {
        let _ = writeln!(
            w,
            "[[accounts]]\nidentifier = {}\nemail = {}\npassword = {}  # set by init when it followed the reset",
            quote(account),
            quote(account),
            quote(&f.new_password)
        );
    } else {
        let _ = writeln!(
            w,
            "# [[accounts]]\n# identifier = \"alice@example.test\"  # what the user types in the forgot form\n\
             # email = \"alice@example.test\"       # where the app sends alice's mail\n\
             # password = \"...\"                   # her current password (for [login] checks)"
        );
    }
    let _ = writeln!(
        w,
        "\n# [limits] (FILL IN if the app limits reset emails): per_account = N, per_client = N\n\
         # [checks]: tuning of waits, races and timing; defaults in TARGETS.md."
    );
    t
}
