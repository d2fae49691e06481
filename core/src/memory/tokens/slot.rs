//! One stored token, packed: 136 bytes in the slab plus one heap string
//! (the account id and the address, typically under 48 bytes with the
//! allocator's header).

use std::time::{Duration, SystemTime};

use crate::account::{AccountId, PasswordStamp};
use crate::token::{RevokeReason, TokenHash, TokenRecord, TokenState};

/// A time as nanoseconds since the Unix epoch: 8 bytes instead of the 16
/// of a `SystemTime`, exact to the nanosecond. Times before 1970 are stored
/// as 1970 and times after 2554 (where `u64` nanoseconds end) as 2554.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Nanos(u64);

impl Nanos {
    pub(super) fn of(t: SystemTime) -> Nanos {
        let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        Nanos(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }

    pub(super) fn get(self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.0)
    }
}

/// A token's state without its time, in one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Active,
    Spending,
    Used,
    Superseded,
    PasswordReset,
    UserDenied,
}

impl Phase {
    fn of(state: TokenState) -> (Phase, SystemTime) {
        match state {
            TokenState::Active => (Phase::Active, SystemTime::UNIX_EPOCH),
            TokenState::Spending { at } => (Phase::Spending, at),
            TokenState::Used { at } => (Phase::Used, at),
            TokenState::Revoked { at, reason } => match reason {
                RevokeReason::Superseded => (Phase::Superseded, at),
                RevokeReason::PasswordReset => (Phase::PasswordReset, at),
                RevokeReason::UserDenied => (Phase::UserDenied, at),
            },
        }
    }

    fn with(self, at: SystemTime) -> TokenState {
        let revoked = |reason| TokenState::Revoked { at, reason };
        match self {
            Phase::Active => TokenState::Active,
            Phase::Spending => TokenState::Spending { at },
            Phase::Used => TokenState::Used { at },
            Phase::Superseded => revoked(RevokeReason::Superseded),
            Phase::PasswordReset => revoked(RevokeReason::PasswordReset),
            Phase::UserDenied => revoked(RevokeReason::UserDenied),
        }
    }

    /// Active or being spent: the token is on its account's live chain.
    pub(super) fn is_live(self) -> bool {
        matches!(self, Phase::Active | Phase::Spending)
    }
}

/// One stored token. Its hashes are kept whole (the indexes hold only slot
/// numbers and compare against them); `names` holds the account id, then
/// the address the link went to, then the password stamp when it is not
/// the usual 32 lower-case hex digits (those are kept as 16 bytes in
/// `stamp`). No `Debug`: it holds an address and the hashes.
pub(super) struct Slot {
    pub(super) hash: [u8; 32],
    pub(super) deny: Option<[u8; 32]>,
    names: Box<str>,
    account_len: u32,
    sent_to_len: u32,
    stamp: Option<[u8; 16]>,
    issued: Nanos,
    pub(super) expires: Nanos,
    phase: Phase,
    /// When the phase began (unused while active).
    phase_at: Nanos,
    /// The next live token of the same account, or [`super::NONE`].
    pub(super) next_live: u32,
}

impl Slot {
    pub(super) fn new(record: &TokenRecord) -> Slot {
        let stamp = hex16(record.password_stamp.as_str());
        let odd_stamp = if stamp.is_some() {
            ""
        } else {
            record.password_stamp.as_str()
        };
        let names = [record.account.0.as_str(), &record.sent_to, odd_stamp].concat();
        let (phase, at) = Phase::of(record.state);
        Slot {
            hash: record.hash.0,
            deny: record.deny_hash.map(|d| d.0),
            names: names.into_boxed_str(),
            account_len: u32::try_from(record.account.0.len()).unwrap_or(u32::MAX),
            sent_to_len: u32::try_from(record.sent_to.len()).unwrap_or(u32::MAX),
            stamp,
            issued: Nanos::of(record.issued_at),
            expires: Nanos::of(record.expires_at),
            phase,
            phase_at: Nanos::of(at),
            next_live: super::NONE,
        }
    }

    /// Where the address ends and the odd stamp (if any) begins.
    fn sent_to_end(&self) -> usize {
        self.account_len as usize + self.sent_to_len as usize
    }

    pub(super) fn account(&self) -> &str {
        self.names.get(..self.account_len as usize).unwrap_or_default()
    }

    fn sent_to(&self) -> &str {
        self.names
            .get(self.account_len as usize..self.sent_to_end())
            .unwrap_or_default()
    }

    pub(super) fn phase(&self) -> Phase {
        self.phase
    }

    pub(super) fn set_state(&mut self, state: TokenState) {
        let (phase, at) = Phase::of(state);
        self.phase = phase;
        self.phase_at = Nanos::of(at);
    }

    pub(super) fn stamp(&self) -> PasswordStamp {
        match self.stamp {
            Some(bytes) => PasswordStamp::from_stored(crate::token::hex(&bytes)),
            None => PasswordStamp::from_stored(self.names.get(self.sent_to_end()..).unwrap_or_default()),
        }
    }

    pub(super) fn set_stamp(&mut self, to: &PasswordStamp) {
        self.stamp = hex16(to.as_str());
        let odd_stamp = if self.stamp.is_some() { "" } else { to.as_str() };
        let head = self.names.get(..self.sent_to_end()).unwrap_or_default();
        self.names = [head, odd_stamp].concat().into_boxed_str();
    }

    pub(super) fn record(&self) -> TokenRecord {
        TokenRecord {
            hash: TokenHash(self.hash),
            account: AccountId(self.account().to_owned()),
            sent_to: self.sent_to().to_owned(),
            password_stamp: self.stamp(),
            issued_at: self.issued.get(),
            expires_at: self.expires.get(),
            state: self.phase.with(self.phase_at.get()),
            deny_hash: self.deny.map(TokenHash),
        }
    }
}

/// The 16 bytes of 32 lower-case hex digits (the form of
/// [`PasswordStamp::of`]); `None` for any other text.
fn hex16(text: &str) -> Option<[u8; 16]> {
    let bytes = text.as_bytes();
    if bytes.len() != 32 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(account: &str, stamp: PasswordStamp, state: TokenState) -> TokenRecord {
        let now = SystemTime::UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_789);
        TokenRecord {
            hash: TokenHash([7; 32]),
            account: AccountId::from(account),
            sent_to: "ünïcode@example.com".into(),
            password_stamp: stamp,
            issued_at: now,
            expires_at: now + Duration::from_secs(1800),
            state,
            deny_hash: Some(TokenHash([9; 32])),
        }
    }

    #[test]
    fn a_packed_slot_gives_back_the_record_it_was_made_of() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_800_000_100, 5);
        let states = [
            TokenState::Active,
            TokenState::Spending { at },
            TokenState::Used { at },
            TokenState::Revoked {
                at,
                reason: RevokeReason::Superseded,
            },
            TokenState::Revoked {
                at,
                reason: RevokeReason::PasswordReset,
            },
            TokenState::Revoked {
                at,
                reason: RevokeReason::UserDenied,
            },
        ];
        let stamps = [
            PasswordStamp::of(None),
            PasswordStamp::from_stored("not hex: an older or foreign stamp"),
            PasswordStamp::from_stored("ABCDEF0123456789ABCDEF0123456789"),
            PasswordStamp::from_stored(""),
        ];
        for state in states {
            for stamp in &stamps {
                let original = record("acct-ß", stamp.clone(), state);
                assert_eq!(Slot::new(&original).record(), original);
            }
        }
        let mut without_deny = record("a", PasswordStamp::of(None), TokenState::Active);
        without_deny.deny_hash = None;
        assert_eq!(Slot::new(&without_deny).record(), without_deny);
    }

    #[test]
    fn times_keep_their_nanoseconds_and_clamp_outside_the_stored_range() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(4_000_000_000, 999_999_999);
        assert_eq!(Nanos::of(t).get(), t);
        let before_1970 = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(Nanos::of(before_1970).get(), SystemTime::UNIX_EPOCH);
        let last = SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::MAX);
        assert_eq!(Nanos::of(last + Duration::from_secs(1)).get(), last);
    }

    #[test]
    fn a_slot_stays_packed() {
        // The figure in the module doc; an empty slab place costs the same.
        assert!(std::mem::size_of::<Option<Slot>>() <= 136);
    }

    #[test]
    fn restamping_a_slot_keeps_its_names() {
        let original = record(
            "acct",
            PasswordStamp::from_stored("odd stamp"),
            TokenState::Active,
        );
        let mut slot = Slot::new(&original);
        for to in [
            PasswordStamp::of(None),
            PasswordStamp::from_stored("other odd stamp"),
        ] {
            slot.set_stamp(&to);
            let back = slot.record();
            assert_eq!(back.password_stamp, to);
            assert_eq!(back.account, original.account);
            assert_eq!(back.sent_to, original.sent_to);
        }
    }
}
