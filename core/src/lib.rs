//! # resetkit
//!
//! A "forgot password" flow that is correct by default: tokens hashed at
//! rest, single use and expiring; links built only from configuration;
//! uniform responses; templates that cannot drop the link; senders that are
//! checked; duplicate emails handled; everything recorded as events.
//!
//! The flow ([`ResetService`]) works against small traits —
//! [`AccountDirectory`](account::AccountDirectory),
//! [`TokenStore`](store::TokenStore), [`RateLimiter`](store::RateLimiter),
//! [`EventLog`](store::EventLog), [`Outbox`](store::Outbox), [`Mailer`](mail::Mailer),
//! [`SenderResolver`](sender::SenderResolver), [`Clock`](clock::Clock),
//! [`PasswordHasher`](hasher::PasswordHasher) — with in-memory
//! implementations in [`memory`]. `resetkit-postgres` and `resetkit-smtp`
//! provide production adapters.
//!
//! Optional capabilities (the operator console's reads, retention) are
//! traits built on those ([`store::capability`]), and the store conformance
//! suite is a library (`conformance`, feature `conformance`). See
//! [`flow`] for a complete example and where each role's code lives.
//!
//! ## Debug builds
//!
//! The default hasher is argon2id with OWASP parameters: ~20 ms per hash
//! optimised, ~0.65 s unoptimised. So that a debug build of an application
//! using resetkit does not take that long per reset or sign-in, add to the
//! application's `Cargo.toml`:
//!
//! ```toml
//! [profile.dev.package.argon2]
//! opt-level = 3
//! [profile.dev.package.blake2]
//! opt-level = 3
//! ```
//!
//! Hashes a previous framework stored ([`legacy_hash`]) are verified at
//! sign-in, and PBKDF2 (Django's `pbkdf2_sha256$…`) is generic code that
//! is compiled into this crate: for a debug build that signs in fast with
//! them, add `resetkit`, `sha2`, `blowfish` (bcrypt) and `salsa20` (scrypt)
//! the same way (`cargo run -p resetkit --example legacy_hash_cost` prints
//! what one sign-in costs in a build).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod account;
pub mod activity;
pub mod client;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod delivery;
pub mod error;
pub mod event;
pub mod fingerprint;
pub mod flow;
pub mod hasher;
pub mod identifier;
pub mod legacy_hash;
pub mod link;
pub mod mail;
pub mod memory;
pub mod metrics;
pub mod policy;
pub mod secrets;
pub mod sender;
pub mod store;
pub mod template;
pub mod token;

/// The `#[async_trait]` attribute the plug-point traits use: implement
/// [`SessionRevoker`] (or any other trait here) with `async fn` without
/// adding the `async-trait` crate yourself.
pub use async_trait::async_trait;

/// The `secrecy` types the API takes and returns (`check_password`,
/// `complete`, `rehash_password` take a [`SecretString`]), re-exported so
/// that an application needs no `secrecy` dependency of its own.
pub use secrecy::{self, ExposeSecret, SecretString};

pub use flow::{
    CompleteError, Completed, LinkError, LinkInfo, PasswordCheck, RequestAccepted, RequestContext,
    RequestError, ResetService, ResetServiceBuilder, SessionRevoker,
};

/// The names most programs need.
pub mod prelude {
    pub use crate::account::{Account, AccountDirectory, AccountId};
    pub use crate::clock::{Clock, ManualClock, SystemClock};
    pub use crate::delivery::{DeliveryMode, DeliveryWorker, RetryPolicy};
    pub use crate::error::{BuildError, StoreError, ValidationError};
    pub use crate::event::{Event, EventKind};
    pub use crate::flow::{
        CompleteError, Completed, ConsoleStores, LinkError, LinkInfo, OperatorView, PasswordCheck,
        RequestAccepted, RequestContext, RequestError, RequestProcessing, ResetService, Retention,
        RetentionStores, SessionRevoker,
    };
    pub use crate::hasher::PasswordHash;
    pub use crate::hasher::{Argon2Hasher, PasswordHasher};
    pub use crate::identifier::IdentifierMode;
    pub use crate::link::TokenPlacement;
    pub use crate::mail::{DeliveryError, EmailKind, Mailbox, Mailer, OutgoingEmail};
    pub use crate::memory::{
        CapturingMailer, InMemoryAccounts, InMemoryEventLog, InMemoryInbox, InMemoryOutbox,
        InMemoryTokenStore,
    };
    pub use crate::policy::{DuplicateEmailPolicy, PasswordPolicy, RateLimits, TokenPolicy};
    pub use crate::sender::{
        FixedSender, OwnerMailbox, OwnerSender, QueueSender, SenderChain, SenderResolver,
    };
    pub use crate::store::{EventLog, Outbox, RateLimiter, RequestInbox, Timeline, TokenStore};
}
