//! In-memory implementations: the embedded default and the reference for tests.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use resetkit::account::{Account, AccountDirectory};
//! use resetkit::memory::InMemoryAccounts;
//!
//! let accounts = InMemoryAccounts::default();
//! accounts.insert(Account::new("1", "alice", "Alice@Example.com"));
//! let found = accounts.find_by_email("alice@example.com").await.unwrap();
//! assert_eq!(found[0].email.as_deref(), Some("Alice@Example.com"));
//! # });
//! ```

mod accounts;
mod events;
mod inbox;
mod mailer;
mod outbox;
mod tokens;

pub use accounts::InMemoryAccounts;
pub use events::{DEFAULT_EVENT_CAPACITY, InMemoryEventLog};
pub use inbox::{DEFAULT_INBOX_CAPACITY, InMemoryInbox};
pub use mailer::CapturingMailer;
pub use outbox::{DEFAULT_OUTBOX_CAPACITY, InMemoryOutbox};
pub use tokens::InMemoryTokenStore;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex, recovering from poisoning (the data are plain records).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
