//! Server-side sessions: a random id in the `portal_session` cookie
//! (HttpOnly, SameSite=Lax, Path=/; Secure when the base URL is https), the
//! CSRF token of the session's forms, who is signed in, and the reset or
//! "this wasn't me" token a link handed over (kept here so it leaves the URL).
//!
//! Sessions live in memory (one portal instance); idle ones expire, and a
//! reset token taken from a link is dropped after [`PENDING_LINK_TTL`].
//! The store is also the service's [`SessionRevoker`]: a completed reset
//! signs the account out everywhere.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use resetkit::SessionRevoker;
use resetkit::account::AccountId;
use secrecy::SecretString;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "portal_session";

/// How long a token taken from a link stays in the session (15 minutes).
pub const PENDING_LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// Lifetimes and limits of sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionSettings {
    /// A session unused for this long is gone.
    pub idle: Duration,
    /// A session older than this is gone, used or not.
    pub absolute: Duration,
    /// At most this many sessions are kept; beyond it the least recently
    /// used are dropped.
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

/// Who is signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedIn {
    pub(crate) account: AccountId,
    pub(crate) username: String,
}

/// A token a link handed over, waiting for the form that uses it.
#[derive(Clone)]
pub(crate) struct PendingLink {
    pub(crate) token: SecretString,
    /// The account's username, when the link was checked (reset links).
    pub(crate) username: String,
    stored: Instant,
}

impl PendingLink {
    pub(crate) fn new(token: SecretString, username: String) -> Self {
        PendingLink {
            token,
            username,
            stored: Instant::now(),
        }
    }

    fn fresh(&self, now: Instant) -> bool {
        now.duration_since(self.stored) < PENDING_LINK_TTL
    }
}

struct Entry {
    csrf: String,
    user: Option<SignedIn>,
    reset: Option<PendingLink>,
    deny: Option<PendingLink>,
    created: Instant,
    seen: Instant,
}

/// A snapshot of one session, taken by a request.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) csrf: String,
    pub(crate) user: Option<SignedIn>,
    pub(crate) reset: Option<PendingLink>,
    pub(crate) deny: Option<PendingLink>,
    /// `Set-Cookie` value to send when this request created the session.
    pub(crate) set_cookie: Option<String>,
}

/// Which pending token a change concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pending {
    Reset,
    Deny,
}

/// All sessions.
pub(crate) struct SessionStore {
    settings: SessionSettings,
    entries: Mutex<HashMap<String, Entry>>,
}

fn random_id() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The values of every `name` cookie in the request's `Cookie` headers.
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
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

    fn snapshot(id: &str, entry: &Entry, set_cookie: Option<String>) -> Session {
        Session {
            id: id.to_owned(),
            csrf: entry.csrf.clone(),
            user: entry.user.clone(),
            reset: entry.reset.clone(),
            deny: entry.deny.clone(),
            set_cookie,
        }
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
            for pending in [&mut entry.reset, &mut entry.deny] {
                if pending.as_ref().is_some_and(|p| !p.fresh(now)) {
                    *pending = None;
                }
            }
            return Some(Self::snapshot(id, entry, None));
        }
        None
    }

    /// The request's session, or a new one (with its `Set-Cookie`).
    pub(crate) fn current_or_new(&self, headers: &HeaderMap) -> Session {
        self.current(headers).unwrap_or_else(|| self.create(None))
    }

    fn create(&self, user: Option<SignedIn>) -> Session {
        let now = Instant::now();
        let id = random_id();
        let entry = Entry {
            csrf: random_id(),
            user,
            reset: None,
            deny: None,
            created: now,
            seen: now,
        };
        let session = Self::snapshot(&id, &entry, Some(self.cookie(&id)));
        let mut entries = self.lock();
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

    /// The session whose cookie came with the request, if the submitted
    /// CSRF token is that session's.
    pub(crate) fn check_csrf(&self, headers: &HeaderMap, submitted: Option<&str>) -> Option<Session> {
        let submitted = submitted?;
        let session = self.current(headers)?;
        constant_time_eq(session.csrf.as_bytes(), submitted.as_bytes()).then_some(session)
    }

    /// Stores (or clears) the session's pending reset or deny token.
    pub(crate) fn set_pending(&self, id: &str, which: Pending, link: Option<PendingLink>) {
        if let Some(entry) = self.lock().get_mut(id) {
            match which {
                Pending::Reset => entry.reset = link,
                Pending::Deny => entry.deny = link,
            }
        }
    }

    /// Signs in: the old session ends and a new one (new id, new CSRF token)
    /// starts, so an id planted before sign-in is worth nothing after.
    pub(crate) fn sign_in(&self, old_id: &str, user: SignedIn) -> Session {
        self.lock().remove(old_id);
        self.create(Some(user))
    }

    /// Ends a session.
    pub(crate) fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Ends every session signed in as `account`; returns how many.
    pub(crate) fn revoke_account(&self, account: &AccountId) -> usize {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|_, e| e.user.as_ref().is_none_or(|u| &u.account != account));
        before - entries.len()
    }

    /// The `Set-Cookie` value for session `id`.
    fn cookie(&self, id: &str) -> String {
        let secure = if self.settings.secure_cookie {
            "; Secure"
        } else {
            ""
        };
        format!("{SESSION_COOKIE}={id}; HttpOnly; SameSite=Lax; Path=/{secure}")
    }

    /// The `Set-Cookie` value that deletes the session cookie.
    pub(crate) fn clear_cookie(&self) -> String {
        let secure = if self.settings.secure_cookie {
            "; Secure"
        } else {
            ""
        };
        format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}")
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[async_trait]
impl SessionRevoker for SessionStore {
    async fn revoke_sessions(&self, account: &AccountId) -> Result<(), String> {
        let count = self.revoke_account(account);
        tracing::info!(%account, count, "signed the account out everywhere after a password reset");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn new_sessions_set_a_hardened_cookie_and_are_found_again() {
        let store = SessionStore::new(SessionSettings::default());
        let s = store.current_or_new(&HeaderMap::new());
        let cookie = s.set_cookie.clone().unwrap();
        assert!(cookie.starts_with("portal_session="));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"));
        assert!(!cookie.contains("Secure"));
        let again = store
            .current(&with_cookie(&format!("other=1; {SESSION_COOKIE}={}", s.id)))
            .unwrap();
        assert_eq!(again.csrf, s.csrf);
        assert!(again.set_cookie.is_none());
        assert!(store.current(&with_cookie("portal_session=forged")).is_none());
    }

    #[test]
    fn csrf_must_match_the_session() {
        let store = SessionStore::new(SessionSettings::default());
        let s = store.current_or_new(&HeaderMap::new());
        let h = with_cookie(&format!("{SESSION_COOKIE}={}", s.id));
        assert!(store.check_csrf(&h, Some(&s.csrf)).is_some());
        assert!(store.check_csrf(&h, Some("nope")).is_none());
        assert!(store.check_csrf(&h, None).is_none());
        assert!(store.check_csrf(&HeaderMap::new(), Some(&s.csrf)).is_none());
    }

    #[test]
    fn sign_in_rotates_and_revocation_signs_out_everywhere() {
        let store = SessionStore::new(SessionSettings::default());
        let anon = store.current_or_new(&HeaderMap::new());
        let user = SignedIn {
            account: AccountId::from("alice"),
            username: "alice".into(),
        };
        let a = store.sign_in(&anon.id, user.clone());
        let b = store.sign_in("unknown", user);
        assert_ne!(a.id, anon.id);
        assert!(
            store
                .current(&with_cookie(&format!("{SESSION_COOKIE}={}", anon.id)))
                .is_none()
        );
        assert_eq!(store.revoke_account(&AccountId::from("alice")), 2);
        assert!(
            store
                .current(&with_cookie(&format!("{SESSION_COOKIE}={}", b.id)))
                .is_none()
        );
    }

    #[test]
    fn the_store_is_bounded() {
        let store = SessionStore::new(SessionSettings {
            max_sessions: 3,
            ..SessionSettings::default()
        });
        for _ in 0..10 {
            store.current_or_new(&HeaderMap::new());
        }
        assert_eq!(store.len(), 3);
    }
}
