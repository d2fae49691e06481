//! Sign-in sessions: a random id in the `portal_session` cookie (HttpOnly,
//! SameSite=Lax, Path=/; Secure when the base URL is https), who is signed
//! in and the CSRF token of the signed-in pages' forms.
//!
//! A session exists only once someone signs in: the anonymous forms (sign
//! in, forgot password) use `resetkit-axum`'s stateless CSRF cookie, so a
//! flood of anonymous requests stores nothing and cannot evict anyone.
//! The store is the one session hook: the service's [`SessionRevoker`] (a
//! completed reset signs the account out everywhere, and so does the
//! password-changed notice's "sign out everywhere" button) and, built on
//! it, the pages' [`HostSessions`] (who is signed in).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::request::Parts;
use resetkit::account::AccountId;
use resetkit::{SessionRevoker, async_trait};
use resetkit_axum::{HostSessions, SignedIn};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "portal_session";

/// Lifetimes and limits of sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionSettings {
    /// A session unused for this long is gone.
    pub idle: Duration,
    /// A session older than this is gone, used or not.
    pub absolute: Duration,
    /// At most this many sessions are kept; beyond it the least recently
    /// used are dropped (only sign-ins create sessions).
    pub max_sessions: usize,
    /// Add `Secure` to the cookie (the base URL is https).
    pub secure_cookie: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle: Duration::from_secs(60 * 60),
            absolute: Duration::from_secs(12 * 60 * 60),
            max_sessions: 100_000,
            secure_cookie: false,
        }
    }
}

struct Entry {
    csrf: String,
    user: SignedIn,
    created: Instant,
    seen: Instant,
}

/// A snapshot of one session, taken by a request.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) csrf: String,
    pub(crate) user: SignedIn,
    /// `Set-Cookie` value to send when this request created the session.
    pub(crate) set_cookie: Option<String>,
}

/// All sessions.
pub(crate) struct SessionStore {
    settings: SessionSettings,
    entries: Mutex<HashMap<String, Entry>>,
}

fn random_id() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The values of every `name` cookie in the request's `Cookie` headers.
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim())
        })
}

impl SessionStore {
    pub(crate) fn new(settings: SessionSettings) -> Self {
        SessionStore {
            settings,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn alive(&self, entry: &Entry, now: Instant) -> bool {
        now.duration_since(entry.seen) < self.settings.idle
            && now.duration_since(entry.created) < self.settings.absolute
    }

    /// The request's live session, if its cookie names one.
    pub(crate) fn current(&self, headers: &HeaderMap) -> Option<Session> {
        let now = Instant::now();
        let mut entries = self.lock();
        for id in cookie_values(headers, SESSION_COOKIE) {
            let Some(entry) = entries.get_mut(id) else {
                continue;
            };
            if !self.alive(entry, now) {
                entries.remove(id);
                continue;
            }
            entry.seen = now;
            return Some(Session {
                id: id.to_owned(),
                csrf: entry.csrf.clone(),
                user: entry.user.clone(),
                set_cookie: None,
            });
        }
        None
    }

    /// The session whose cookie came with the request, if the submitted
    /// CSRF token is that session's.
    pub(crate) fn check_csrf(&self, headers: &HeaderMap, submitted: Option<&str>) -> Option<Session> {
        let submitted = submitted?;
        let session = self.current(headers)?;
        constant_time_eq(session.csrf.as_bytes(), submitted.as_bytes()).then_some(session)
    }

    /// Signs in: a new session (new id, new CSRF token); any session the
    /// request carried ends, so an id planted before is worth nothing.
    pub(crate) fn sign_in(&self, headers: &HeaderMap, user: SignedIn) -> Session {
        let now = Instant::now();
        let id = random_id();
        let entry = Entry {
            csrf: random_id(),
            user: user.clone(),
            created: now,
            seen: now,
        };
        let session = Session {
            id: id.clone(),
            csrf: entry.csrf.clone(),
            user,
            set_cookie: Some(self.cookie(&id)),
        };
        let mut entries = self.lock();
        for old in cookie_values(headers, SESSION_COOKIE) {
            entries.remove(old);
        }
        if entries.len() >= self.settings.max_sessions {
            entries.retain(|_, e| self.alive(e, now));
        }
        while entries.len() >= self.settings.max_sessions {
            let oldest = entries.iter().min_by_key(|(_, e)| e.seen).map(|(k, _)| k.clone());
            match oldest {
                Some(key) => entries.remove(&key),
                None => break,
            };
        }
        entries.insert(id, entry);
        session
    }

    /// Ends a session.
    pub(crate) fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Ends every session signed in as `account`; returns how many.
    pub(crate) fn revoke_account(&self, account: &AccountId) -> usize {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|_, e| &e.user.account != account);
        before - entries.len()
    }

    /// How many sessions exist.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn secure(&self) -> &'static str {
        if self.settings.secure_cookie {
            "; Secure"
        } else {
            ""
        }
    }

    /// The `Set-Cookie` value for session `id`.
    fn cookie(&self, id: &str) -> String {
        format!(
            "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Lax; Path=/{}",
            self.secure()
        )
    }

    /// The `Set-Cookie` value that deletes the session cookie.
    pub(crate) fn clear_cookie(&self) -> String {
        format!(
            "{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{}",
            self.secure()
        )
    }
}

#[async_trait]
impl SessionRevoker for SessionStore {
    async fn revoke_sessions(&self, account: &AccountId) -> Result<(), String> {
        let count = self.revoke_account(account);
        tracing::info!(%account, count, "signed the account out everywhere");
        Ok(())
    }
}

#[async_trait]
impl HostSessions for SessionStore {
    async fn signed_in(&self, request: &Parts) -> Option<SignedIn> {
        self.current(&request.headers).map(|s| s.user)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use axum::http::header::COOKIE;

    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(value).unwrap());
        h
    }

    fn alice() -> SignedIn {
        SignedIn {
            account: AccountId::from("alice"),
            username: "alice".into(),
        }
    }

    #[test]
    fn sign_in_sets_a_hardened_cookie_and_the_session_is_found_again() {
        let store = SessionStore::new(SessionSettings::default());
        let s = store.sign_in(&HeaderMap::new(), alice());
        let cookie = s.set_cookie.clone().unwrap();
        assert!(cookie.starts_with("portal_session="));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"));
        let again = store
            .current(&with_cookie(&format!("other=1; {SESSION_COOKIE}={}", s.id)))
            .unwrap();
        assert_eq!(again.csrf, s.csrf);
        assert!(store.current(&with_cookie("portal_session=forged")).is_none());
        let h = with_cookie(&format!("{SESSION_COOKIE}={}", s.id));
        assert!(store.check_csrf(&h, Some(&s.csrf)).is_some());
        assert!(store.check_csrf(&h, Some("nope")).is_none());
        assert!(store.check_csrf(&h, None).is_none());
    }

    #[test]
    fn sign_in_rotates_and_revocation_signs_out_everywhere() {
        let store = SessionStore::new(SessionSettings::default());
        let a = store.sign_in(&HeaderMap::new(), alice());
        let b = store.sign_in(&with_cookie(&format!("{SESSION_COOKIE}={}", a.id)), alice());
        assert!(
            store
                .current(&with_cookie(&format!("{SESSION_COOKIE}={}", a.id)))
                .is_none()
        );
        let c = store.sign_in(&HeaderMap::new(), alice());
        assert_eq!(store.revoke_account(&AccountId::from("alice")), 2);
        for id in [b.id, c.id] {
            assert!(
                store
                    .current(&with_cookie(&format!("{SESSION_COOKIE}={id}")))
                    .is_none()
            );
        }
    }

    #[test]
    fn the_store_is_bounded() {
        let store = SessionStore::new(SessionSettings {
            max_sessions: 3,
            ..SessionSettings::default()
        });
        for _ in 0..10 {
            store.sign_in(&HeaderMap::new(), alice());
        }
        assert_eq!(store.len(), 3);
    }
}
