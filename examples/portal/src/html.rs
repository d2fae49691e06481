//! The portal's own pages (the reset pages are `resetkit-axum`'s templates): plain HTML forms that work without JavaScript, readable on a
//! phone (viewport meta, a little inline CSS). Every value is escaped.

use std::fmt::Write as _;

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

/// Escapes text for HTML content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body` (already HTML).
fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title} · resetkit portal</title><style>{STYLE}</style></head>\
         <body><main><h1>{title}</h1><div class=\"card\">{body}</div>\
         <nav><a href=\"/\">Home</a><a href=\"/login\">Sign in</a><a href=\"/forgot\">Forgot your password?</a></nav>\
         </main></body></html>\n",
        title = escape(title),
    )
}

fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">",
        escape(csrf)
    )
}

fn message(text: Option<&str>) -> String {
    text.map(|t| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(t)))
        .unwrap_or_default()
}

pub(crate) fn home(signed_in_as: Option<&str>) -> String {
    let status = match signed_in_as {
        Some(name) => format!(
            "<p>Signed in as <strong>{}</strong>. <a href=\"/account\">Your account</a></p>",
            escape(name)
        ),
        None => "<p>You are not signed in.</p>".to_owned(),
    };
    page(
        "resetkit portal",
        &format!(
            "{status}<p><a href=\"/login\">Sign in</a></p>\
             <p><a href=\"/forgot\">Forgot your password?</a></p>"
        ),
    )
}

pub(crate) fn login(csrf: &str, error: Option<&str>, identifier: &str) -> String {
    page(
        "Sign in",
        &format!(
            "{}<form method=\"post\" action=\"/login\">{}\
             <label for=\"identifier\">Username or email</label>\
             <input type=\"text\" id=\"identifier\" name=\"identifier\" value=\"{}\" autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required>\
             <label for=\"password\">Password</label>\
             <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\">Sign in</button></form>\
             <p><a href=\"/forgot\">Forgot your password?</a></p>",
            message(error),
            csrf_field(csrf),
            escape(identifier),
        ),
    )
}

pub(crate) fn account(username: &str, csrf: &str) -> String {
    page(
        "Your account",
        &format!(
            "<p class=\"ok\" id=\"signed-in\">Signed in as {}</p>\
             <form method=\"post\" action=\"/logout\">{}<button type=\"submit\">Sign out</button></form>",
            escape(username),
            csrf_field(csrf)
        ),
    )
}

/// One captured message for `/dev/mail`.
pub(crate) struct DevMail {
    pub(crate) to: String,
    pub(crate) subject: String,
    pub(crate) links: Vec<String>,
}

pub(crate) fn dev_mail(messages: &[DevMail]) -> String {
    let mut body = format!(
        "<p class=\"hint\">Development only: {} message(s) captured by the in-process SMTP server, newest first.</p>",
        messages.len()
    );
    for (i, m) in messages.iter().enumerate() {
        let _ = write!(
            body,
            "<div class=\"mail\" id=\"mail-{i}\"><div>To: <span class=\"to\">{}</span></div>\
             <div>Subject: <span class=\"subject\">{}</span></div><ul>",
            escape(&m.to),
            escape(&m.subject)
        );
        for link in &m.links {
            let _ = write!(
                body,
                "<li><a class=\"link\" href=\"{0}\">{0}</a></li>",
                escape(link)
            );
        }
        body.push_str("</ul></div>");
    }
    page("Captured mail", &body)
}

/// `/dev/faults`: the capture server's fault switches.
pub(crate) fn dev_faults(csrf: &str, senders: &[String], active: &[String]) -> String {
    let mut body = String::from(
        "<p class=\"hint\">Development only: make the in-process SMTP server refuse a sender or a recipient, \
         then watch the account's timeline in the <a href=\"/admin\">operator console</a>.</p>",
    );
    if active.is_empty() {
        body.push_str("<p id=\"faults\">No faults: every sender and recipient is accepted.</p>");
    } else {
        body.push_str("<ul id=\"faults\">");
        for fault in active {
            let _ = write!(body, "<li>{}</li>", escape(fault));
        }
        body.push_str("</ul>");
    }
    let first = senders.first().map(String::as_str).unwrap_or_default();
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/dev/faults\">{csrf}<input type=\"hidden\" name=\"action\" value=\"refuse_sender\">\
         <label for=\"sender\">Refuse this sender (MAIL FROM)</label>\
         <input type=\"email\" id=\"sender\" name=\"address\" value=\"{first}\">\
         <p class=\"hint\">The sender chain: {chain}.</p><button type=\"submit\">Refuse sender</button></form>\
         <form method=\"post\" action=\"/dev/faults\">{csrf}<input type=\"hidden\" name=\"action\" value=\"refuse_recipient\">\
         <label for=\"recipient\">Refuse this recipient (RCPT TO)</label>\
         <input type=\"email\" id=\"recipient\" name=\"address\" value=\"\">\
         <button type=\"submit\">Refuse recipient</button></form>\
         <form method=\"post\" action=\"/dev/faults\">{csrf}<input type=\"hidden\" name=\"action\" value=\"clear\">\
         <button type=\"submit\">Clear every fault</button></form>",
        csrf = csrf_field(csrf),
        first = escape(first),
        chain = escape(&senders.join(", then ")),
    );
    page("Mail server faults", &body)
}

pub(crate) fn error(title: &str, text: &str) -> String {
    page(
        title,
        &format!("<p class=\"error\" role=\"alert\">{}</p>", escape(text)),
    )
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
    fn pages_are_phone_friendly_and_carry_the_contract_texts() {
        assert!(home(None).contains("name=\"viewport\""));
        assert!(account("bob", "c").contains("Signed in as bob"));
        let form = login("c", None, "");
        for field in ["name=\"identifier\"", "name=\"password\"", "name=\"csrf_token\""] {
            assert!(form.contains(field), "{field}");
        }
    }
}
