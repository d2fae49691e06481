//! Opened reset links, kept by the browser, sealed: no server state.
//!
//! Opening a reset link (`GET /reset?token=T`, after `open_link` accepted
//! T) mints a random *link id* for this browser (added to its
//! `resetkit_link` cookie, with the ids of links it opened before) and
//! seals T with ChaCha20-Poly1305 under the deployment's pages key. The
//! associated data binds the sealed value to that link id and to its
//! expiry, so it opens only:
//!
//! - on a request that carries the link id in its `resetkit_link` cookie
//!   (the browser that opened the link), and
//! - before its expiry ([`LinkSeal::ttl`], default 15 minutes; the token's
//!   own lifetime still applies), and
//! - under the pages key of the deployment (any instance; during a key
//!   rotation, the previous key too).
//!
//! The sealed value travels in the `resetkit_opened` cookie to the clean
//! URL `/reset/new` (never in a URL), and the form shown there carries it as
//! its `csrf_token`: a POST acts on *that form's* token. A second link
//! opened in the same browser replaces the cookie, not what an already open
//! form submits. Nothing is stored on the server, so no flood can fill
//! anything and every instance behind a load balancer opens what another
//! sealed.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use resetkit::secrets::KeyRing;
//! use resetkit_axum::opened::LinkSeal;
//!
//! let seal = LinkSeal::new(&KeyRing::new(b"a pages key of at least 32 bytes!".to_vec(), None));
//! let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let sealed = seal.seal("link-id-1", "the-token", now);
//! assert!(!sealed.contains("the-token"));
//! let ids = ["link-id-1".to_owned()];
//! assert_eq!(seal.open(&ids, &sealed, now).as_deref(), Some("the-token"));
//! assert_eq!(seal.open(&["another".to_owned()], &sealed, now), None);
//! assert_eq!(seal.open(&ids, &sealed, now + Duration::from_secs(3600)), None);
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use resetkit::secrets::KeyRing;

/// Name of the cookie carrying the most recently opened link, sealed.
pub const OPENED_COOKIE: &str = "resetkit_opened";

const CONTEXT: &[u8] = b"resetkit-axum opened link v1\0";
const NONCE_BYTES: usize = 12;
/// Longest sealed value accepted (a token is 43 characters; bounded work
/// for whatever a client sends).
const MAX_SEALED: usize = 512;

/// Seals and opens reset tokens (see the module docs).
#[derive(Clone)]
pub struct LinkSeal {
    /// Sealing cipher first, then ciphers still accepted (a rotation).
    ciphers: Vec<ChaCha20Poly1305>,
    ttl: Duration,
}

impl fmt::Debug for LinkSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkSeal")
            .field("keys", &self.ciphers.len())
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn aad(link_id: &str, expires: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(CONTEXT.len() + link_id.len() + 9);
    aad.extend_from_slice(CONTEXT);
    aad.extend_from_slice(link_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&expires.to_be_bytes());
    aad
}

impl LinkSeal {
    /// Default lifetime of an opened link's form.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);

    /// Seals under the ring's current key (accepting its previous one),
    /// with the default lifetime.
    pub fn new(ring: &KeyRing) -> Self {
        LinkSeal {
            ciphers: ring
                .derive("resetkit-axum opened link")
                .iter()
                .map(|k| ChaCha20Poly1305::new(&Key::from(*k.expose())))
                .collect(),
            ttl: Self::DEFAULT_TTL,
        }
    }

    /// Sets how long an opened link stays usable from its form.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long an opened link stays usable from its form.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// `token`, sealed to `link_id` until `now` + the lifetime:
    /// `EXPIRY.BASE64(nonce ‖ ciphertext ‖ tag)`.
    pub fn seal(&self, link_id: &str, token: &str, now: SystemTime) -> String {
        let expires = unix(now).saturating_add(self.ttl.as_secs());
        let mut nonce = [0u8; NONCE_BYTES];
        rand::fill(&mut nonce[..]);
        let aad = aad(link_id, expires);
        let sealed = self.ciphers.first().and_then(|cipher| {
            cipher
                .encrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: token.as_bytes(),
                        aad: &aad,
                    },
                )
                .ok()
        });
        let Some(sealed) = sealed else {
            // Encryption of a short message cannot fail; an empty value
            // opens nowhere.
            return String::new();
        };
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{expires}.{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The token sealed in `sealed`, if it was sealed to one of `link_ids`
    /// (the ids the request's link cookie carries), under one of the ring's
    /// keys, and has not expired at `now`.
    pub fn open(&self, link_ids: &[String], sealed: &str, now: SystemTime) -> Option<String> {
        if sealed.len() > MAX_SEALED {
            return None;
        }
        let (expires, blob) = sealed.split_once('.')?;
        let expires: u64 = expires.parse().ok()?;
        let now = unix(now);
        if expires <= now || expires > now.saturating_add(self.ttl.as_secs()) {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(blob).ok()?;
        if bytes.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce = Nonce::try_from(nonce).ok()?;
        link_ids.iter().find_map(|id| {
            let aad = aad(id, expires);
            self.ciphers.iter().find_map(|cipher| {
                let plain = cipher
                    .decrypt(
                        &nonce,
                        Payload {
                            msg: ciphertext,
                            aad: &aad,
                        },
                    )
                    .ok()?;
                String::from_utf8(plain).ok()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ring(key: &str, previous: Option<&str>) -> KeyRing {
        KeyRing::new(key.as_bytes().to_vec(), previous.map(|p| p.as_bytes().to_vec()))
    }

    const A: &str = "pages key A, at least thirty-two bytes";
    const B: &str = "pages key B, at least thirty-two bytes";

    #[test]
    fn sealed_links_open_only_for_their_link_id_key_and_lifetime() {
        let seal = LinkSeal::new(&ring(A, None));
        let now = SystemTime::now();
        let ids = vec!["id-1".to_owned(), "id-2".to_owned()];
        let sealed = seal.seal("id-2", "token-xyz", now);
        assert!(!sealed.contains("token-xyz") && !sealed.contains("id-2"));
        assert_eq!(seal.open(&ids, &sealed, now).as_deref(), Some("token-xyz"));
        // Another instance with the same key opens it.
        assert_eq!(
            LinkSeal::new(&ring(A, None)).open(&ids, &sealed, now).as_deref(),
            Some("token-xyz")
        );
        assert_eq!(seal.open(&["id-1".to_owned()], &sealed, now), None);
        assert_eq!(LinkSeal::new(&ring(B, None)).open(&ids, &sealed, now), None);
        assert_eq!(seal.open(&ids, &sealed, now + seal.ttl()), None);
        // The expiry in clear is bound: moving it breaks the seal.
        let (expires, blob) = sealed.split_once('.').unwrap();
        let later = format!("{}.{blob}", expires.parse::<u64>().unwrap() - 1);
        assert_eq!(seal.open(&ids, &later, now), None);
        // Garbage of any shape opens nothing.
        for junk in ["", ".", "1.", "x.y", &"9".repeat(600), &format!("{expires}.AAAA")] {
            assert_eq!(seal.open(&ids, junk, now), None, "{junk}");
        }
    }

    #[test]
    fn a_rotation_accepts_links_sealed_under_the_previous_key() {
        let now = SystemTime::now();
        let ids = vec!["id".to_owned()];
        let old = LinkSeal::new(&ring(A, None)).seal("id", "tok", now);
        let rotating = LinkSeal::new(&ring(B, Some(A)));
        assert_eq!(rotating.open(&ids, &old, now).as_deref(), Some("tok"));
        let new = rotating.seal("id", "tok2", now);
        assert_eq!(
            LinkSeal::new(&ring(B, None)).open(&ids, &new, now).as_deref(),
            Some("tok2")
        );
        assert_eq!(LinkSeal::new(&ring(B, None)).open(&ids, &old, now), None);
    }
}
