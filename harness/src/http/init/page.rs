//! Reading the app's pages for `init`: a cookie-keeping client that does not follow
//! redirects by itself, the forgot form, and what an answer looks like.

use std::time::Duration;

use url::Url;

use super::render::quote;
use crate::http::html::Form;

/// What an answer looked like (the first response, redirects not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Outcome {
    pub(super) status: u16,
    pub(super) redirect: Option<String>,
    pub(super) text: Option<String>,
}

impl Outcome {
    pub(super) fn toml(&self) -> String {
        let mut parts = vec![format!("status = {}", self.status)];
        if let Some(r) = &self.redirect {
            parts.push(format!("redirect = {}", quote(r)));
        }
        if let Some(t) = &self.text {
            parts.push(format!("text = {}", quote(t)));
        }
        format!("{{ {} }}", parts.join(", "))
    }
}

/// The found forgot form.
#[derive(Debug, Clone)]
pub(super) struct ForgotForm {
    pub(super) form: Form,
    pub(super) identifier: String,
    pub(super) kind: &'static str,
}

pub(super) fn identifier_score(name: &str, kind: &str) -> Option<(u8, &'static str)> {
    let n = name.to_ascii_lowercase();
    if kind == "email" || n.contains("email") || n.contains("mail") {
        return Some((3, "email"));
    }
    if ["identifier", "login", "username", "user", "account", "name"]
        .iter()
        .any(|w| n.contains(w))
        && matches!(kind, "text" | "")
    {
        // A username or login field often takes an address too: "either".
        return Some((2, "either"));
    }
    None
}

pub(super) fn find_forgot_form(forms: &[Form]) -> Option<ForgotForm> {
    let mut best: Option<(u8, ForgotForm)> = None;
    for form in forms {
        if form.fields.iter().any(|f| f.kind == "password") {
            continue;
        }
        for field in &form.fields {
            if let Some((score, kind)) = identifier_score(&field.name, &field.kind) {
                let score = score + u8::from(form.method == "post");
                if best.as_ref().is_none_or(|(s, _)| score > *s) {
                    best = Some((
                        score,
                        ForgotForm {
                            form: form.clone(),
                            identifier: field.name.clone(),
                            kind,
                        },
                    ));
                }
            }
        }
    }
    best.map(|(_, f)| f)
}

pub(super) fn csrf_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "csrf",
        "xsrf",
        "authenticity",
        "_token",
        "requestverificationtoken",
        "nonce",
    ]
    .iter()
    .any(|w| n.contains(w))
}

pub(super) fn describe_forms(forms: &[Form]) -> String {
    if forms.is_empty() {
        return "the page has no <form>".into();
    }
    forms
        .iter()
        .map(|f| {
            let fields: Vec<String> = f
                .fields
                .iter()
                .map(|x| format!("{} ({})", x.name, x.kind))
                .collect();
            format!(
                "{} form to {:?} with {}",
                f.method,
                f.action.as_deref().unwrap_or("(this page)"),
                fields.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One browser: a cookie jar, redirects not followed automatically.
pub(super) struct Browser {
    pub(super) client: reqwest::Client,
}

#[derive(Debug, Clone)]
pub(super) struct Page {
    pub(super) url: Url,
    pub(super) status: u16,
    pub(super) location: Option<String>,
    pub(super) set_cookies: Vec<(String, String)>,
    pub(super) body: String,
}

impl Browser {
    pub(super) fn new() -> Result<Browser, String> {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .user_agent("resetkit-harness init")
            .build()
            .map(|client| Browser { client })
            .map_err(|e| e.to_string())
    }

    pub(super) async fn send(&self, request: reqwest::RequestBuilder, url: &Url) -> Result<Page, String> {
        let response = request.send().await.map_err(|e| full_error(&e))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let set_cookies = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .filter_map(|c| c.split_once('='))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let body = response.text().await.unwrap_or_default();
        Ok(Page {
            url: url.clone(),
            status,
            location,
            set_cookies,
            body,
        })
    }

    pub(super) async fn get(&self, url: &Url) -> Result<Page, String> {
        self.send(self.client.get(url.clone()), url).await
    }

    /// GET, following up to 10 redirects; returns every page in order.
    pub(super) async fn get_following(&self, url: &Url) -> Result<Vec<Page>, String> {
        let mut pages = Vec::new();
        let mut at = url.clone();
        for _ in 0..10 {
            let page = self.get(&at).await?;
            let next = page.location.as_deref().and_then(|l| at.join(l).ok());
            let redirect = (300..400).contains(&page.status);
            pages.push(page);
            match next {
                Some(next) if redirect => at = next,
                _ => return Ok(pages),
            }
        }
        Err(format!("more than 10 redirects from {url}"))
    }

    pub(super) async fn submit(
        &self,
        page: &Url,
        form: &Form,
        values: &[(String, String)],
    ) -> Result<Page, String> {
        let action = match form.action.as_deref().filter(|a| !a.trim().is_empty()) {
            Some(a) => page.join(a).map_err(|e| format!("form action {a:?}: {e}"))?,
            None => page.clone(),
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(values)
            .finish();
        let request = if form.method == "get" {
            let mut target = action.clone();
            target.set_query(Some(&body));
            self.client.get(target)
        } else {
            self.client
                .post(action.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(reqwest::header::ORIGIN, page.origin().ascii_serialization())
                .header(reqwest::header::REFERER, page.as_str())
                .body(body)
        };
        self.send(request, &action).await
    }
}

pub(super) fn full_error(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// The path (and query) of `location` when it is on `base`'s origin, else the whole URL.
pub(super) fn relative_to(base: &Url, at: &Url, location: &str) -> String {
    match at.join(location) {
        Ok(u) if u.origin() == base.origin() => {
            let mut s = u.path().to_owned();
            if let Some(q) = u.query() {
                s.push('?');
                s.push_str(q);
            }
            s
        }
        Ok(u) => u.to_string(),
        Err(_) => location.to_owned(),
    }
}

pub(super) fn outcome_of(base: &Url, page: &Page, hint_words: &[&str]) -> Outcome {
    let mut outcome = raw_outcome(base, page, hint_words);
    // A redirect back to the link's own page carries the token: keep such
    // secrets out of the file (the status alone is then the description).
    if outcome
        .redirect
        .as_deref()
        .is_some_and(|r| r.split('/').any(crate::report::redact::looks_like_token))
    {
        outcome.redirect = None;
        outcome.text = sentence_with(&page.body, hint_words);
    }
    outcome
}

pub(super) fn raw_outcome(base: &Url, page: &Page, hint_words: &[&str]) -> Outcome {
    let redirect = page
        .location
        .as_deref()
        .filter(|_| (300..400).contains(&page.status))
        .map(|l| {
            let r = relative_to(base, &page.url, l);
            // A redirect's query often carries per-request values.
            r.split('?').next().unwrap_or(&r).to_owned()
        });
    let text = if redirect.is_none() {
        sentence_with(&page.body, hint_words)
    } else {
        None
    };
    Outcome {
        status: page.status,
        redirect,
        text,
    }
}

/// The first text of the page (tags removed) with one of `words`, trimmed
/// to a sentence of at most 80 characters.
pub(super) fn sentence_with(html: &str, words: &[&str]) -> Option<String> {
    if words.is_empty() {
        return None;
    }
    page_lines(html)
        .into_iter()
        .find(|l| {
            let ll = l.to_ascii_lowercase();
            words.iter().any(|w| ll.contains(w))
        })
        .map(|l| short_sentence(&l))
        .filter(|l| !l.is_empty())
}

/// Every non-empty line of the page's text (tags, scripts and styles
/// removed, whitespace collapsed), each cut to its first sentence of at
/// most 80 characters.
/// A line with `cut_before` in it (an echoed address) is cut before it.
pub(super) fn text_lines(html: &str, cut_before: &str) -> Vec<String> {
    let needle = cut_before.to_ascii_lowercase();
    page_lines(html)
        .iter()
        .map(|l| {
            match l
                .to_ascii_lowercase()
                .find(&needle)
                .filter(|_| !needle.is_empty())
            {
                Some(at) => short_sentence(l[..at].trim_end()),
                None => short_sentence(l),
            }
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// The page's text, one line per run of text between tags.
fn page_lines(html: &str) -> Vec<String> {
    let mut text = String::new();
    let mut in_tag = false;
    let mut skip_until: Option<&str> = None;
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    while i < html.len() {
        if let Some(end) = skip_until {
            match lower[i..].find(end) {
                Some(k) => {
                    i += k + end.len();
                    skip_until = None;
                    continue;
                }
                None => break,
            }
        }
        let c = html[i..].chars().next().unwrap_or(' ');
        if c == '<' {
            if lower[i..].starts_with("<script") {
                skip_until = Some("</script>");
            } else if lower[i..].starts_with("<style") {
                skip_until = Some("</style>");
            }
            in_tag = true;
            text.push('\n');
        } else if c == '>' {
            in_tag = false;
        } else if !in_tag {
            text.push(c);
        }
        i += c.len_utf8();
    }
    text.split('\n')
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

fn short_sentence(line: &str) -> String {
    let l = line.split(['.', '!']).next().unwrap_or(line).trim().to_owned();
    l.chars()
        .take(80)
        .collect::<String>()
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
