//! How the harness recognises an outcome the target file describes
//! ([`Expect`]): the first response's status and redirect target, and the
//! final page's text.

use url::Url;

use super::exchange::Visit;
use super::html;
use super::target_file::Expect;
use super::target_file::api::pointer;

impl Expect {
    /// Whether `visit` looks like this; the error says what differed.
    pub fn check(&self, visit: &Visit) -> Result<(), String> {
        let first = visit.first();
        let mut misses = Vec::new();
        if let Some(codes) = &self.status
            && !codes.contains(&first.status)
        {
            misses.push(format!("status {} (expected {codes:?})", first.status));
        }
        if let Some(expected) = &self.redirect {
            match first.location() {
                Some(got) if redirect_matches(expected, &got) => {}
                Some(got) => misses.push(format!("redirect to {got} (expected {expected})")),
                None => misses.push(format!("no redirect (expected one to {expected})")),
            }
        }
        if let Some(text) = &self.text {
            let body = &visit.last().body;
            if !body.contains(text.as_str()) && !html::unescape(body).contains(text.as_str()) {
                misses.push(format!(
                    "the final page ({}) lacks {text:?}",
                    visit.last().url.path()
                ));
            }
        }
        if self.json.is_some() || self.json_has.is_some() {
            json_misses(self, &visit.last().body, &mut misses);
        }
        if misses.is_empty() {
            Ok(())
        } else {
            Err(misses.join("; "))
        }
    }
}

/// What `expect.json` and `expect.json_has` find missing in `body`.
fn json_misses(expect: &Expect, body: &str, misses: &mut Vec<String>) {
    let parsed: serde_json::Value = match serde_json::from_str(body) {
        Ok(value) => value,
        Err(_) => {
            let shown: String = body.chars().take(80).collect();
            misses.push(format!("the answer is not JSON ({shown:?})"));
            return;
        }
    };
    for (key, want) in expect.json.iter().flatten() {
        let pointer = pointer(key);
        match parsed.pointer(&pointer) {
            Some(got) if got == want => {}
            Some(got) => misses.push(format!("JSON {pointer} is {got} (expected {want})")),
            None => misses.push(format!("no JSON {pointer} (expected {want})")),
        }
    }
    for key in expect.json_has.iter().flatten() {
        let pointer = pointer(key);
        if parsed.pointer(&pointer).is_none() {
            misses.push(format!("no JSON {pointer} in {}", compact(&parsed)));
        }
    }
}

fn compact(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(120).collect::<String>())
    } else {
        text
    }
}

/// Whether a resolved `Location` is the expected target: a path compares
/// path (and query when the expectation has one); a URL compares origin too.
fn redirect_matches(expected: &str, got: &Url) -> bool {
    let same_path = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    let (path, query) = match expected.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (expected, None),
    };
    if path.starts_with('/') {
        same_path(path, got.path()) && query.is_none_or(|q| got.query() == Some(q))
    } else {
        match Url::parse(expected) {
            Ok(url) => {
                url.origin() == got.origin()
                    && same_path(url.path(), got.path())
                    && (url.query().is_none() || url.query() == got.query())
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn redirects_match_by_path_or_url() {
        let got = url("http://127.0.0.1:8080/forgot/sent?x=1");
        assert!(redirect_matches("/forgot/sent", &got));
        assert!(redirect_matches("/forgot/sent/", &got));
        assert!(redirect_matches("/forgot/sent?x=1", &got));
        assert!(!redirect_matches("/forgot/sent?x=2", &got));
        assert!(!redirect_matches("/forgot", &got));
        assert!(redirect_matches("http://127.0.0.1:8080/forgot/sent", &got));
        assert!(!redirect_matches("http://evil.test/forgot/sent", &got));
        assert!(!redirect_matches("not a url", &got));
    }
}
