//! The portal's own pages (the reset pages are `resetkit-axum`'s templates): plain HTML forms that work without JavaScript, readable on a
//! phone (viewport meta, a little inline CSS). Every page is a minijinja
//! template (`src/templates/`); values are escaped by the engine.

use std::sync::LazyLock;

use minijinja::{Environment, Value, context};

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330;line-height:1.5}\
main{max-width:28rem;margin:0 auto;padding:1.5rem 1rem}\
h1{font-size:1.5rem;margin:0 0 1rem}\
.card{background:#fff;border-radius:.5rem;padding:1.25rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}\
.card>:first-child{margin-top:0}\
label{display:block;font-weight:600;margin:.75rem 0 .25rem}\
input[type=text],input[type=password],input[type=email]{box-sizing:border-box;width:100%;font-size:1rem;padding:.6rem;border:1px solid #b8bfcc;border-radius:.35rem}\
button{margin-top:1rem;width:100%;font-size:1rem;padding:.7rem;border:0;border-radius:.35rem;background:#2456c8;color:#fff;cursor:pointer}\
.error{background:#fde8e8;color:#8a1c1c;border-radius:.35rem;padding:.6rem .75rem}\
.ok{background:#e6f4ea;color:#1e5b2c;border-radius:.35rem;padding:.6rem .75rem}\
.hint{color:#5a6272;font-size:.9rem}\
nav{margin-top:1rem;font-size:.95rem}nav a{margin-right:1rem}\
.mail{border-top:1px solid #dde1e8;padding:.75rem 0;word-break:break-all}\
";

/// The portal's templates (minijinja, HTML auto-escaping: the engine of
/// the reset pages and the emails).
const TEMPLATES: [(&str, &str); 8] = [
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("home.html", include_str!("templates/home.html")),
    ("login.html", include_str!("templates/login.html")),
    ("account.html", include_str!("templates/account.html")),
    ("dev_mail.html", include_str!("templates/dev_mail.html")),
    ("dev_faults.html", include_str!("templates/dev_faults.html")),
    ("error.html", include_str!("templates/error.html")),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    for (name, source) in TEMPLATES {
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, template = name, "a portal template does not compile");
        }
    }
    env
});

/// Page `name` with `title` and `ctx` (a failure is a bug: logged, and a
/// short error page instead).
fn page(name: &str, title: &str, ctx: Value) -> String {
    let ctx = context! { title, style => Value::from_safe_string(STYLE.to_owned()), ..ctx };
    ENV.get_template(name)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|error| {
            tracing::error!(%error, template = name, "rendering a portal page failed");
            "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
        })
}

pub(crate) fn home(signed_in_as: Option<&str>) -> String {
    page("home.html", "resetkit portal", context! { signed_in_as })
}

pub(crate) fn login(csrf: &str, error: Option<&str>, identifier: &str) -> String {
    page("login.html", "Sign in", context! { csrf, error, identifier })
}

pub(crate) fn account(username: &str, csrf: &str) -> String {
    page("account.html", "Your account", context! { username, csrf })
}

/// One captured message for `/dev/mail`.
#[derive(serde::Serialize)]
pub(crate) struct DevMail {
    pub(crate) to: String,
    pub(crate) subject: String,
    pub(crate) links: Vec<String>,
}

pub(crate) fn dev_mail(messages: &[DevMail]) -> String {
    page("dev_mail.html", "Captured mail", context! { messages })
}

/// `/dev/faults`: the capture server's fault switches.
pub(crate) fn dev_faults(csrf: &str, senders: &[String], active: &[String]) -> String {
    let first = senders.first().map(String::as_str).unwrap_or_default();
    page(
        "dev_faults.html",
        "Mail server faults",
        context! { csrf, active, first, chain => senders.join(", then ") },
    )
}

pub(crate) fn error(title: &str, text: &str) -> String {
    page("error.html", title, context! { text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let html = login("t\"><x>", Some("<script>"), "\"><img src=x>");
        assert!(!html.contains("<script>") && !html.contains("<img") && !html.contains("<x>"));
        assert!(html.contains("&lt;script&gt;"));
    }

    #[test]
    fn every_template_renders() {
        for (name, _) in TEMPLATES {
            assert!(ENV.get_template(name).is_ok(), "{name}");
        }
        let mail = DevMail {
            to: "a@example.test".into(),
            subject: "S".into(),
            links: vec!["https://x.example/reset?token=a&b=\"c\"".into()],
        };
        let html = dev_mail(&[mail]);
        assert!(
            html.contains("id=\"mail-0\"") && !html.contains("\"c\""),
            "{html}"
        );
        let faults = dev_faults("t", &["noreply@x.example".into()], &["refuse <x>".into()]);
        assert!(faults.contains("refuse &lt;x&gt;") && faults.contains("noreply@x.example"));
        assert!(error("Not found", "There is no such page.").contains("There is no such page."));
    }

    #[test]
    fn pages_are_phone_friendly_and_carry_the_contract_texts() {
        assert!(home(None).contains("name=\"viewport\""));
        assert!(account("bob", "c").contains("Signed in as bob"));
        let form = login("c", None, "");
        for field in ["name=\"identifier\"", "name=\"password\"", "name=\"csrf_token\""] {
            assert!(form.contains(field), "{field}");
        }
    }
}
