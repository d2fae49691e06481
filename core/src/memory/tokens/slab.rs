//! Where the slots live: fixed-size pages of slots, numbered by `u32`.
//!
//! A page, once allocated, never moves or grows: the slab grows a page at
//! a time, without copying what it holds and without leaving the freed
//! buffer of a doubled vector behind in the allocator. Freed slots are
//! reused before a new page is taken.

use super::slot::Slot;
use crate::error::StoreError;

/// Slots per page (about 34 KiB of them).
const PAGE: usize = 256;

#[derive(Default)]
pub(super) struct Slab {
    pages: Vec<Box<[Option<Slot>]>>,
    /// Slot numbers handed out so far (the next new one).
    used: u32,
    /// Freed slot numbers, reused first.
    free: Vec<u32>,
}

impl Slab {
    pub(super) fn get(&self, i: u32) -> Option<&Slot> {
        let i = i as usize;
        self.pages.get(i / PAGE)?.get(i % PAGE)?.as_ref()
    }

    pub(super) fn get_mut(&mut self, i: u32) -> Option<&mut Slot> {
        let i = i as usize;
        self.pages.get_mut(i / PAGE)?.get_mut(i % PAGE)?.as_mut()
    }

    /// Stores `slot` and returns its number.
    pub(super) fn insert(&mut self, slot: Slot) -> Result<u32, StoreError> {
        let i = match self.free.pop() {
            Some(i) => i,
            // The last number, u32::MAX, is kept for "no slot".
            None if self.used < u32::MAX => {
                self.used += 1;
                self.used - 1
            }
            None => {
                return Err(StoreError::Full {
                    operation: "tokens.issue",
                    what: "the in-memory token store",
                    capacity: u32::MAX as usize,
                });
            }
        };
        let (page, within) = (i as usize / PAGE, i as usize % PAGE);
        if page == self.pages.len() {
            self.pages.push((0..PAGE).map(|_| None).collect());
        }
        if let Some(place) = self.pages.get_mut(page).and_then(|p| p.get_mut(within)) {
            *place = Some(slot);
        }
        Ok(i)
    }

    /// Empties slot `i` for reuse.
    pub(super) fn remove(&mut self, i: u32) {
        let i_usize = i as usize;
        let place = self
            .pages
            .get_mut(i_usize / PAGE)
            .and_then(|p| p.get_mut(i_usize % PAGE));
        if let Some(place) = place
            && place.take().is_some()
        {
            self.free.push(i);
        }
    }

    /// Number of slots holding a token.
    pub(super) fn len(&self) -> usize {
        self.used as usize - self.free.len()
    }

    /// Whether every slot number is either holding a token or free (once).
    #[cfg(test)]
    pub(super) fn check(&self) {
        let mut seen = std::collections::HashSet::new();
        for &i in &self.free {
            assert!(self.get(i).is_none(), "slot {i} is free but holds a token");
            assert!(seen.insert(i), "slot {i} is free twice");
        }
        for i in 0..self.used {
            assert!(self.get(i).is_some() || seen.contains(&i), "slot {i} is lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::account::{AccountId, PasswordStamp};
    use crate::token::{TokenHash, TokenRecord, TokenState};

    fn slot(n: u32) -> Slot {
        let mut hash = [0u8; 32];
        hash[..4].copy_from_slice(&n.to_le_bytes());
        Slot::new(&TokenRecord {
            hash: TokenHash(hash),
            account: AccountId::from(format!("u{n}")),
            sent_to: format!("user{n}@example.com"),
            password_stamp: PasswordStamp::of(None),
            issued_at: SystemTime::UNIX_EPOCH,
            expires_at: SystemTime::UNIX_EPOCH,
            state: TokenState::Active,
            deny_hash: None,
        })
    }

    fn number(slot: &Slot) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&slot.hash[..4]);
        u32::from_le_bytes(b)
    }

    #[test]
    fn slots_across_pages_keep_their_tokens_and_freed_ones_are_reused() {
        let mut slab = Slab::default();
        let n = (PAGE * 3 + 17) as u32;
        for k in 0..n {
            assert_eq!(slab.insert(slot(k)).unwrap(), k);
        }
        assert_eq!(slab.pages.len(), 4);
        for k in (0..n).step_by(3) {
            slab.remove(k);
        }
        slab.remove(0); // already empty: nothing to free
        slab.check();
        assert_eq!(slab.len(), (n - n.div_ceil(3)) as usize);
        for k in 0..n {
            assert_eq!(slab.get(k).map(number), (k % 3 != 0).then_some(k));
        }
        assert!(slab.get(n).is_none());
        assert!(slab.get(u32::MAX).is_none());
        // New tokens take the freed numbers before a new one.
        for k in n..n + n.div_ceil(3) {
            let i = slab.insert(slot(k)).unwrap();
            assert!(i < n && i % 3 == 0);
            assert_eq!(slab.get(i).map(number), Some(k));
        }
        assert_eq!(slab.insert(slot(0)).unwrap(), n);
        assert_eq!(slab.pages.len(), 4);
        slab.check();
    }
}
