//! Reset tokens: 256 random bits from the OS, sent URL-safe base64 without
//! padding, stored only as their SHA-256.
//!
//! ```
//! use resetkit::token::{RawToken, TokenHash};
//!
//! let token = RawToken::generate().unwrap();
//! let text = token.expose_encoded().to_owned();
//! assert_eq!(text.len(), 43);
//! let parsed = RawToken::parse(&text).unwrap();
//! assert_eq!(parsed.hash(), token.hash());
//! assert!(!format!("{token:?}").contains(&text));
//! ```

use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRng as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::account::{AccountId, PasswordStamp};

/// Random bytes per token.
pub const TOKEN_BYTES: usize = 32;
/// Length of the encoded token.
pub const TOKEN_CHARS: usize = 43;

/// The raw token; exists only in the email and in memory while sending.
#[derive(Clone)]
pub struct RawToken {
    encoded: SecretString,
    hash: TokenHash,
}

/// The OS random generator failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the operating system's random generator failed: {0}")]
pub struct EntropyError(pub String);

/// A token string that cannot be one of ours (wrong length or alphabet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed token")]
pub struct MalformedToken;

impl RawToken {
    /// 256 bits from the OS generator.
    pub fn generate() -> Result<Self, EntropyError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rngs::SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| EntropyError(e.to_string()))?;
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; TOKEN_BYTES]) -> Self {
        RawToken {
            encoded: SecretString::from(URL_SAFE_NO_PAD.encode(bytes)),
            hash: TokenHash(Sha256::digest(bytes).into()),
        }
    }

    /// Parses a token from a link. Anything but exactly 43 URL-safe base64
    /// characters decoding to 32 bytes is refused (padding, truncation,
    /// standard alphabet, whitespace).
    pub fn parse(text: &str) -> Result<Self, MalformedToken> {
        if text.len() != TOKEN_CHARS
            || !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(MalformedToken);
        }
        let decoded = URL_SAFE_NO_PAD.decode(text).map_err(|_| MalformedToken)?;
        let bytes: [u8; TOKEN_BYTES] = decoded.try_into().map_err(|_| MalformedToken)?;
        let token = Self::from_bytes(&bytes);
        // Reject non-canonical encodings (trailing bits set): one token, one text.
        if token.expose_encoded() != text {
            return Err(MalformedToken);
        }
        Ok(token)
    }

    /// The encoded token, for building the link.
    pub fn expose_encoded(&self) -> &str {
        self.encoded.expose_secret()
    }

    /// The SHA-256 under which the token is stored.
    pub fn hash(&self) -> TokenHash {
        self.hash
    }
}

impl fmt::Debug for RawToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawToken([REDACTED])")
    }
}

/// SHA-256 of a token: what the store keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TokenHash {
    /// Lower-case hex, for text columns and logs of store internals.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses lower- or upper-case hex.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
        }
        Some(TokenHash(out))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash([REDACTED])")
    }
}

/// Why a token was revoked before use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokeReason {
    /// A newer request for the account ("newest wins").
    Superseded,
    /// The account's password was reset with another link.
    PasswordReset,
    /// The owner clicked "this wasn't me".
    UserDenied,
}

impl RevokeReason {
    /// Stable text form, for storage.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Superseded => "superseded",
            RevokeReason::PasswordReset => "password_reset",
            RevokeReason::UserDenied => "user_denied",
        }
    }

    /// Parses [`RevokeReason::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "superseded" => RevokeReason::Superseded,
            "password_reset" => RevokeReason::PasswordReset,
            "user_denied" => RevokeReason::UserDenied,
            _ => return None,
        })
    }
}

/// Where a token stands.
///
/// ```text
/// Active --consume--> Spending --finish--> Used
///   |  ^                 |  |
///   |  +----release------+  |
///   +--revoke--> Revoked <--+ (revoke also kills a token being spent)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Usable until it expires.
    Active,
    /// Consumed by a `complete` whose password write is in flight. Only the
    /// caller that consumed it can finish or release it; a revocation in
    /// the meantime kills it for good.
    Spending {
        /// When it was consumed.
        at: SystemTime,
    },
    /// Spent.
    Used {
        /// When.
        at: SystemTime,
    },
    /// Revoked before use.
    Revoked {
        /// When.
        at: SystemTime,
        /// Why.
        reason: RevokeReason,
    },
}

/// A stored token. Holds only the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// SHA-256 of the raw token.
    pub hash: TokenHash,
    /// The account it resets.
    pub account: AccountId,
    /// Canonical form of the address the link was mailed to.
    pub sent_to: String,
    /// The account's password state when issued.
    pub password_stamp: PasswordStamp,
    /// Issue time.
    pub issued_at: SystemTime,
    /// Expiry time (exclusive: at `expires_at` the token is dead).
    pub expires_at: SystemTime,
    /// Current state.
    pub state: TokenState,
    /// SHA-256 of the secret in the email's "this wasn't me" link: a secret
    /// of its own, so that link can never complete a reset. `None` for
    /// tokens issued before deny secrets existed (their deny links are dead).
    pub deny_hash: Option<TokenHash>,
}

impl TokenRecord {
    /// Whether the token is past its lifetime at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires_at
    }

    /// Whether the token can still be used or is being used (not spent,
    /// not revoked; expiry aside).
    pub fn is_live(&self) -> bool {
        matches!(self.state, TokenState::Active | TokenState::Spending { .. })
    }

    /// The reason this token cannot be used at `now` judged from the record
    /// alone (state and expiry), if any.
    pub fn unusable_reason(&self, now: SystemTime) -> Option<RejectReason> {
        match self.state {
            TokenState::Used { .. } | TokenState::Spending { .. } => Some(RejectReason::AlreadyUsed),
            TokenState::Revoked { reason, .. } => Some(RejectReason::Revoked(reason)),
            TokenState::Active if self.is_expired(now) => Some(RejectReason::Expired),
            TokenState::Active => None,
        }
    }
}

/// Why a token was refused. Recorded in events; the user only ever sees one
/// "invalid or expired link" message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// Not a well-formed token.
    Malformed,
    /// No such token.
    Unknown,
    /// Past its lifetime.
    Expired,
    /// Already spent.
    AlreadyUsed,
    /// Revoked (newer request, reset done, user denied).
    Revoked(RevokeReason),
    /// The account's email changed since the link was sent.
    EmailChanged,
    /// The account's password changed since the link was sent.
    PasswordChanged,
    /// The account is disabled.
    AccountDisabled,
    /// The account no longer exists.
    AccountGone,
}

impl RejectReason {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::Unknown => "unknown",
            RejectReason::Expired => "expired",
            RejectReason::AlreadyUsed => "already_used",
            RejectReason::Revoked(RevokeReason::Superseded) => "superseded",
            RejectReason::Revoked(RevokeReason::PasswordReset) => "revoked_after_reset",
            RejectReason::Revoked(RevokeReason::UserDenied) => "revoked_by_user",
            RejectReason::EmailChanged => "email_changed",
            RejectReason::PasswordChanged => "password_changed",
            RejectReason::AccountDisabled => "account_disabled",
            RejectReason::AccountGone => "account_gone",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tampered_padded_and_truncated_tokens_are_malformed() {
        let token = RawToken::generate().unwrap();
        let text = token.expose_encoded().to_owned();
        assert!(RawToken::parse(&format!("{text}=")).is_err());
        assert!(RawToken::parse(&text[..42]).is_err());
        assert!(RawToken::parse(&format!(" {}", &text[1..])).is_err());
        assert!(RawToken::parse(&format!("+{}", &text[1..])).is_err());
        assert!(RawToken::parse(&format!("{}/", &text[..42])).is_err());
        assert!(RawToken::parse("").is_err());
    }

    #[test]
    fn tokens_are_unique_and_hash_round_trips_through_hex() {
        let a = RawToken::generate().unwrap();
        let b = RawToken::generate().unwrap();
        assert_ne!(a.hash(), b.hash());
        assert_eq!(TokenHash::from_hex(&a.hash().to_hex()), Some(a.hash()));
        assert_eq!(TokenHash::from_hex("zz"), None);
    }

    #[test]
    fn debug_hides_token_and_hash() {
        let t = RawToken::generate().unwrap();
        let hex = t.hash().to_hex();
        let printed = format!("{t:?} {:?}", t.hash());
        assert!(!printed.contains(t.expose_encoded()));
        assert!(!printed.contains(&hex));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn encode_decode_round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            let token = RawToken::from_bytes(&bytes);
            let parsed = RawToken::parse(token.expose_encoded()).unwrap();
            prop_assert_eq!(parsed.hash(), token.hash());
            prop_assert_eq!(parsed.expose_encoded(), token.expose_encoded());
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = RawToken::parse(&s);
        }
    }
}
