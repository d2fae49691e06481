//! The account activity trail: what happened to each reset, for operators and
//! the harness. Events never hold a raw token, a password or a mail body.
//!
//! ```
//! use std::time::SystemTime;
//! use resetkit::event::{Event, EventKind};
//! use resetkit::token::RejectReason;
//!
//! let e = Event::new(SystemTime::UNIX_EPOCH, None, EventKind::TokenRejected { reason: RejectReason::Expired });
//! assert_eq!(e.kind.name(), "token_rejected");
//! ```

use std::time::SystemTime;

use crate::account::AccountId;
use crate::mail::{EmailKind, SmtpReply};
use crate::token::{RejectReason, RevokeReason};

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When.
    pub at: SystemTime,
    /// Which account, when one is known.
    pub account: Option<AccountId>,
    /// What.
    pub kind: EventKind,
}

impl Event {
    /// Builds an event.
    pub fn new(at: SystemTime, account: Option<AccountId>, kind: EventKind) -> Self {
        Event { at, account, kind }
    }
}

/// Why a request produced no email (the public outcome is the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IgnoreReason {
    /// No account matches.
    UnknownIdentifier,
    /// The account is disabled.
    AccountDisabled,
    /// The account's email is not confirmed and the service requires it.
    EmailUnconfirmed,
    /// The account has no email address.
    NoEmailAddress,
}

impl IgnoreReason {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::UnknownIdentifier => "unknown_identifier",
            IgnoreReason::AccountDisabled => "account_disabled",
            IgnoreReason::EmailUnconfirmed => "email_unconfirmed",
            IgnoreReason::NoEmailAddress => "no_email_address",
        }
    }
}

/// [`EventKind::DeliveryFailed::class`] of an email that could not be
/// built (no usable address, a template error): nothing reached a server.
pub const NOT_PREPARED: &str = "not_prepared";

/// Every [`EventKind::DeliveryFailed::class`] value, for decoding stored
/// events (anything else decodes as `unknown`).
pub const FAILURE_CLASSES: [&str; 7] = [
    "sender_rejected",
    "recipient_rejected",
    "message_rejected",
    "transient",
    "misconfigured",
    NOT_PREPARED,
    "unknown",
];

/// Which rate limit applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateScope {
    /// Per account.
    Account,
    /// Per client address.
    Client,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A reset was requested for this account.
    ResetRequested {
        /// `email` or `username`.
        via: &'static str,
        /// Client address, if the host passed one.
        client: Option<String>,
    },
    /// A request produced no email.
    RequestIgnored {
        /// Why.
        reason: IgnoreReason,
        /// The keyed fingerprint of the identifier as typed (see
        /// [`crate::fingerprint`]), never the text: people type passwords
        /// into the identifier field. An operator holding the key computes
        /// [`crate::fingerprint::fingerprint`] to look an identifier up.
        fingerprint: String,
    },
    /// A rate limit stopped requests (silently): the first refusal of a
    /// window (`count: 1`), or, when the window has passed, how many it
    /// refused after the first (see [`crate::flow::throttle`]).
    RateLimited {
        /// Which limit.
        scope: RateScope,
        /// Client address, if known.
        client: Option<String>,
        /// How many refused requests this event stands for.
        count: u64,
    },
    /// A token was issued.
    TokenIssued {
        /// Expiry.
        expires_at: SystemTime,
    },
    /// An email was handed to delivery.
    EmailQueued {
        /// Message-ID.
        message_id: String,
        /// What kind of email.
        email: EmailKind,
        /// From.
        from: String,
        /// To (the stored address).
        to: String,
        /// Sender strategy used.
        sender_strategy: String,
        /// Strategies that were skipped, with reasons (fallbacks).
        sender_fallbacks: Vec<String>,
    },
    /// The mail server accepted the email.
    EmailSent {
        /// Message-ID.
        message_id: String,
        /// From.
        from: String,
        /// To.
        to: String,
    },
    /// Delivery failed.
    DeliveryFailed {
        /// Message-ID.
        message_id: String,
        /// Classified reason, with the server's reply.
        reason: String,
        /// Retrying cannot help.
        permanent: bool,
        /// A retry is scheduled.
        will_retry: bool,
        /// The From address of the attempt (empty when the email could not
        /// be prepared, or for events recorded before this field existed).
        from: String,
        /// The failure's class: a [`DeliveryError::class`](crate::mail::DeliveryError::class)
        /// name (`sender_rejected`, `recipient_rejected`, `message_rejected`,
        /// `transient`, `misconfigured`), or [`NOT_PREPARED`] when the email
        /// could not be built (no usable address, a template error), or
        /// `unknown` for events recorded before this field existed.
        class: &'static str,
    },
    /// No sender may send for this account.
    SenderUnavailable {
        /// Every strategy tried and why it failed.
        reason: String,
    },
    /// A token was refused.
    TokenRejected {
        /// Why.
        reason: RejectReason,
    },
    /// A new password was refused by policy (the reason was shown).
    PasswordRejected {
        /// Why.
        reason: String,
    },
    /// The password was reset.
    ResetCompleted,
    /// Outstanding links were revoked.
    LinksRevoked {
        /// Why.
        reason: RevokeReason,
        /// How many.
        count: usize,
    },
    /// The session-revocation hook failed after a reset.
    SessionRevocationFailed {
        /// What the hook said.
        reason: String,
    },
    /// A password change went through with a link that was revoked (e.g.
    /// "this wasn't me") while the change was being stored: the link was
    /// presented before the revocation.
    RevokedDuringReset {
        /// Why the link was revoked.
        reason: RevokeReason,
    },
    /// A queued email was not sent because its link died while it waited
    /// in the outbox (e.g. a newer request superseded it during a retry).
    EmailDropped {
        /// Message-ID.
        message_id: String,
        /// Why the link is dead.
        reason: RejectReason,
    },
    /// A reset link was opened (its page was loaded: by the user, or by a
    /// mail scanner fetching links). Read-only: the link still works.
    LinkOpened {
        /// When the link stops working.
        expires_at: SystemTime,
    },
    /// What the mail server answered to one delivery attempt (the final
    /// reply on acceptance, the refusing stage's reply on failure).
    ServerReplied {
        /// Message-ID.
        message_id: String,
        /// Whether the server accepted the message.
        accepted: bool,
        /// The server's reply.
        reply: SmtpReply,
    },
    /// An operator sent the account a fresh link in place of an email that
    /// was not delivered (the new link supersedes the old one).
    LinkReissued {
        /// The Message-ID of the email given up on, when there was one.
        replaces: Option<String>,
        /// Who did it, as the host's guard named them.
        operator: String,
    },
    /// An operator cleared the account's per-account rate limit (e.g. on a
    /// test deployment, after manual tries spent it).
    RateLimitCleared {
        /// How many recorded requests were forgotten.
        removed: u32,
        /// Who did it, as the host's guard named them.
        operator: String,
    },
}

impl EventKind {
    /// Stable snake-case name.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::ResetRequested { .. } => "reset_requested",
            EventKind::RequestIgnored { .. } => "request_ignored",
            EventKind::RateLimited { .. } => "rate_limited",
            EventKind::TokenIssued { .. } => "token_issued",
            EventKind::EmailQueued { .. } => "email_queued",
            EventKind::EmailSent { .. } => "email_sent",
            EventKind::DeliveryFailed { .. } => "delivery_failed",
            EventKind::SenderUnavailable { .. } => "sender_unavailable",
            EventKind::TokenRejected { .. } => "token_rejected",
            EventKind::PasswordRejected { .. } => "password_rejected",
            EventKind::ResetCompleted => "reset_completed",
            EventKind::LinksRevoked { .. } => "links_revoked",
            EventKind::SessionRevocationFailed { .. } => "session_revocation_failed",
            EventKind::EmailDropped { .. } => "email_dropped",
            EventKind::RevokedDuringReset { .. } => "revoked_during_reset",
            EventKind::LinkOpened { .. } => "link_opened",
            EventKind::ServerReplied { .. } => "server_replied",
            EventKind::LinkReissued { .. } => "link_reissued",
            EventKind::RateLimitCleared { .. } => "rate_limit_cleared",
        }
    }
}
