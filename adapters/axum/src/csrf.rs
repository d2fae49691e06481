//! Stateless CSRF protection for forms shown to anonymous visitors: a signed
//! double-submit cookie.
//!
//! The token is `NONCE.MAC` (MAC = HMAC-SHA256 of the nonce under a server
//! key); it travels both in an `HttpOnly`, `SameSite=Lax` cookie and in the
//! form's hidden `csrf_token` field. A POST is accepted when the field equals
//! one of the request's cookies *and* the MAC verifies; the server keeps
//! nothing: showing the forgot form to a million visitors stores nothing.
//!
//! A signed token is not secret (anyone gets one by loading a form), so the
//! scheme relies on the cookie being the site's own: with `secure` (https)
//! the cookie is named `__Host-resetkit_csrf`, which browsers accept only
//! from the exact host over https, without `Domain`, so a sibling subdomain
//! or a plain-http response cannot plant one. Without `secure` (local
//! development over http) a cookie planted that way would be accepted:
//! serve production over https, with HSTS.
//!
//! Hosts can protect their own anonymous forms (a sign-in form) with the same
//! helper:
//!
//! ```
//! use axum::http::HeaderMap;
//! use resetkit_axum::StatelessCsrf;
//!
//! let csrf = StatelessCsrf::new([7u8; 32], false);
//! let issued = csrf.token(&HeaderMap::new());
//! assert!(issued.set_cookie.is_some(), "a first visit gets the cookie");
//! let mut headers = HeaderMap::new();
//! let cookie = issued.set_cookie.unwrap();
//! let pair = cookie.to_str().unwrap().split(';').next().unwrap().to_owned();
//! headers.insert(axum::http::header::COOKIE, pair.parse().unwrap());
//! assert!(csrf.verify(&headers, Some(&issued.value)));
//! assert!(!csrf.verify(&headers, Some("forged")));
//! assert!(!csrf.verify(&HeaderMap::new(), Some(&issued.value)));
//! ```

use std::fmt;

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Name of the CSRF cookie.
pub const CSRF_COOKIE: &str = "resetkit_csrf";
/// The CSRF cookie's name on https sites (`secure`): the `__Host-` prefix
/// keeps sibling subdomains and plain-http responses from planting it.
pub const SECURE_CSRF_COOKIE: &str = "__Host-resetkit_csrf";

const CONTEXT: &[u8] = b"resetkit-axum csrf v1\0";

/// A token for one form, and the cookie to set when the request had none.
#[derive(Clone)]
pub struct CsrfToken {
    /// The value of the hidden `csrf_token` field.
    pub value: String,
    /// `Set-Cookie` to send with the page (`None`: the browser already holds it).
    pub set_cookie: Option<HeaderValue>,
}

impl fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrfToken")
            .field("value", &"[REDACTED]")
            .field("sets_cookie", &self.set_cookie.is_some())
            .finish()
    }
}

/// The signed double-submit scheme (see the module docs).
#[derive(Clone)]
pub struct StatelessCsrf {
    /// Signing key first, then keys still accepted (a rotation).
    keys: Vec<[u8; 32]>,
    secure: bool,
}

impl fmt::Debug for StatelessCsrf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatelessCsrf")
            .field("key", &"[REDACTED]")
            .field("secure", &self.secure)
            .finish()
    }
}

/// The values of every `name` cookie in the request's `Cookie` headers.
pub(crate) fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim())
        })
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 256 random bits, URL-safe base64.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl StatelessCsrf {
    /// A scheme signing with `key` (share it between the instances of one
    /// site); `secure` adds `Secure` to the cookie (https sites).
    pub fn new(key: [u8; 32], secure: bool) -> Self {
        StatelessCsrf {
            keys: vec![key],
            secure,
        }
    }

    /// A scheme on the deployment's pages key ring
    /// ([`resetkit::secrets::KeyRing`]): signs with the current key and
    /// accepts cookies and sealed fields made with the previous one (a
    /// rotation in progress).
    pub fn from_ring(ring: &resetkit::secrets::KeyRing, secure: bool) -> Self {
        StatelessCsrf {
            keys: ring
                .derive("resetkit-axum csrf")
                .iter()
                .map(|k| *k.expose())
                .collect(),
            secure,
        }
    }

    fn mac_with(key: &[u8; 32], nonce: &str) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
        mac.update(CONTEXT);
        mac.update(nonce.as_bytes());
        Some(mac)
    }

    fn sign(&self, nonce: &str) -> Option<String> {
        let tag = Self::mac_with(self.keys.first()?, nonce)?.finalize().into_bytes();
        Some(format!("{nonce}.{}", URL_SAFE_NO_PAD.encode(tag)))
    }

    fn well_signed(&self, token: &str) -> bool {
        let Some((nonce, tag)) = token.split_once('.') else {
            return false;
        };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        self.keys
            .iter()
            .any(|key| Self::mac_with(key, nonce).is_some_and(|mac| mac.verify_slice(&tag).is_ok()))
    }

    /// The cookie's name: `__Host-` prefixed on https sites, so that only
    /// this host, over https, can set it.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure {
            SECURE_CSRF_COOKIE
        } else {
            CSRF_COOKIE
        }
    }

    /// The token for a form on this request: the browser's own when its
    /// cookie is well signed, else a new one with its `Set-Cookie`.
    pub fn token(&self, headers: &HeaderMap) -> CsrfToken {
        if let Some(value) = cookie_values(headers, self.cookie_name()).find(|v| self.well_signed(v)) {
            return CsrfToken {
                value: value.to_owned(),
                set_cookie: None,
            };
        }
        let value = self.sign(&random_id()).unwrap_or_default();
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{}={value}; HttpOnly; SameSite=Lax; Path=/{secure}",
            self.cookie_name()
        );
        CsrfToken {
            set_cookie: HeaderValue::from_str(&cookie).ok(),
            value,
        }
    }

    fn seal_mac(key: &[u8; 32], cookie: &str, payload: &str) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
        mac.update(b"resetkit-axum sealed form v1\0");
        mac.update(cookie.as_bytes());
        mac.update(b"\0");
        mac.update(payload.as_bytes());
        Some(mac)
    }

    /// A form field carrying `payload` (no `.` in it) that only a POST with
    /// the browser's CSRF cookie `token` can open: CSRF protection and the
    /// form's own data in one stateless value.
    pub(crate) fn seal(&self, token: &CsrfToken, payload: &str) -> String {
        let tag = self
            .keys
            .first()
            .and_then(|key| Self::seal_mac(key, &token.value, payload))
            .map(|m| URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
            .unwrap_or_default();
        format!("{payload}.{tag}")
    }

    /// The payload of a field made by [`seal`](Self::seal) for one of the
    /// request's well-signed CSRF cookies.
    pub(crate) fn open(&self, headers: &HeaderMap, field: Option<&str>) -> Option<String> {
        let (payload, tag) = field?.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        cookie_values(headers, self.cookie_name())
            .filter(|c| self.well_signed(c))
            .any(|c| {
                self.keys
                    .iter()
                    .any(|key| Self::seal_mac(key, c, payload).is_some_and(|m| m.verify_slice(&tag).is_ok()))
            })
            .then(|| payload.to_owned())
    }

    /// Whether `submitted` (the form's `csrf_token`, `None` when absent or
    /// repeated) matches a well-signed cookie of the request.
    pub fn verify(&self, headers: &HeaderMap, submitted: Option<&str>) -> bool {
        let Some(submitted) = submitted else {
            return false;
        };
        cookie_values(headers, self.cookie_name())
            .any(|c| constant_time_eq(c.as_bytes(), submitted.as_bytes()) && self.well_signed(c))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cookie_headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn a_cookie_signed_with_another_key_is_not_accepted() {
        let ours = StatelessCsrf::new([1; 32], true);
        let theirs = StatelessCsrf::new([2; 32], true);
        let planted = theirs.token(&HeaderMap::new()).value;
        let headers = cookie_headers(&format!("{CSRF_COOKIE}={planted}"));
        assert!(!ours.verify(&headers, Some(&planted)));
        // ... and the form gets a fresh, correctly signed token instead.
        let issued = ours.token(&headers);
        assert_ne!(issued.value, planted);
        let cookie = issued.set_cookie.unwrap();
        let cookie = cookie.to_str().unwrap();
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
    }

    #[test]
    fn sealed_fields_open_only_with_their_browsers_cookie() {
        let csrf = StatelessCsrf::new([4; 32], false);
        let mine = csrf.token(&HeaderMap::new());
        let field = csrf.seal(&mine, "payload-1");
        let headers = cookie_headers(&format!("{CSRF_COOKIE}={}", mine.value));
        assert_eq!(csrf.open(&headers, Some(&field)).as_deref(), Some("payload-1"));
        let other = csrf.token(&HeaderMap::new());
        let elsewhere = cookie_headers(&format!("{CSRF_COOKIE}={}", other.value));
        assert_eq!(csrf.open(&elsewhere, Some(&field)), None);
        assert_eq!(csrf.open(&HeaderMap::new(), Some(&field)), None);
        let tampered = field.replacen("payload-1", "payload-2", 1);
        assert_eq!(csrf.open(&headers, Some(&tampered)), None);
        assert_eq!(
            csrf.open(&headers, Some(&mine.value)),
            None,
            "a plain CSRF token is not a sealed field"
        );
    }

    #[test]
    fn a_rotated_ring_accepts_the_previous_keys_cookies_and_fields() {
        use resetkit::secrets::KeyRing;
        let old_key = b"the old pages key, 32 bytes or more".to_vec();
        let new_key = b"the new pages key, 32 bytes or more".to_vec();
        let before = StatelessCsrf::from_ring(&KeyRing::new(old_key.clone(), None), false);
        let issued = before.token(&HeaderMap::new());
        let field = before.seal(&issued, "payload");
        let headers = cookie_headers(&format!("{CSRF_COOKIE}={}", issued.value));
        let during = StatelessCsrf::from_ring(&KeyRing::new(new_key.clone(), Some(old_key)), false);
        assert!(during.verify(&headers, Some(&issued.value)));
        assert_eq!(during.open(&headers, Some(&field)).as_deref(), Some("payload"));
        assert!(
            during.token(&headers).set_cookie.is_none(),
            "the old cookie is kept"
        );
        let after = StatelessCsrf::from_ring(&KeyRing::new(new_key, None), false);
        assert!(!after.verify(&headers, Some(&issued.value)));
        assert_eq!(after.open(&headers, Some(&field)), None);
    }

    #[test]
    fn a_valid_cookie_is_reused_and_must_match_the_field() {
        let csrf = StatelessCsrf::new([3; 32], false);
        let first = csrf.token(&HeaderMap::new()).value;
        let headers = cookie_headers(&format!("other=1; {CSRF_COOKIE}={first}"));
        let again = csrf.token(&headers);
        assert_eq!(again.value, first);
        assert!(again.set_cookie.is_none());
        assert!(csrf.verify(&headers, Some(&first)));
        assert!(!csrf.verify(&headers, None));
        let other = csrf.token(&HeaderMap::new()).value;
        assert!(!csrf.verify(&headers, Some(&other)), "another browser's token");
        assert!(!format!("{again:?}").contains(&first));
    }
}
