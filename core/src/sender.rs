//! Who an email is from: fixed address, the account's owner, a shared queue
//! mailbox, or a chain that falls back from one to the next.
//!
//! A sender that cannot send is a named error listing every strategy tried
//! and why it failed, never a silent failure.
//!
//! ```
//! # tokio_test_block(async {
//! use std::sync::Arc;
//! use resetkit::account::Account;
//! use resetkit::mail::Mailbox;
//! use resetkit::sender::{OwnerMailbox, OwnerSender, QueueSender, SenderChain, SenderResolver};
//!
//! let owners = OwnerSender::new([("system".to_string(), OwnerMailbox::no_mailbox())]);
//! let queue = QueueSender::new(Mailbox::address_only("support@example.com").unwrap());
//! let chain = SenderChain::new(vec![Arc::new(owners), Arc::new(queue)]);
//! let account = Account::new("1", "alice", "alice@example.com").with_owner("system");
//! let choice = chain.resolve(&account).await.unwrap();
//! assert_eq!(choice.from.address(), "support@example.com");
//! assert_eq!(choice.strategy, "queue");
//! assert!(choice.fallbacks[0].reason.contains("no mailbox"));
//! # });
//! # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::account::{Account, AccountId};
use crate::mail::Mailbox;

/// The sender chosen for one email, and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderChoice {
    /// From.
    pub from: Mailbox,
    /// Reply-To, if any.
    pub reply_to: Option<Mailbox>,
    /// The strategy that produced it (`fixed`, `owner`, `queue`, ...).
    pub strategy: String,
    /// Strategies tried before this one and why they did not apply.
    pub fallbacks: Vec<SenderAttempt>,
}

/// One strategy that could not give a sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderAttempt {
    /// The strategy.
    pub strategy: String,
    /// Why it gave no usable sender.
    pub reason: String,
}

impl fmt::Display for SenderAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.strategy, self.reason)
    }
}

/// No sender that may send could be found for an account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no sender may send for account `{account}`: {}", join_attempts(.attempts))]
pub struct SenderError {
    /// The account.
    pub account: AccountId,
    /// Every strategy tried, with its reason.
    pub attempts: Vec<SenderAttempt>,
}

fn join_attempts(attempts: &[SenderAttempt]) -> String {
    if attempts.is_empty() {
        return "no strategy configured".into();
    }
    attempts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl SenderError {
    fn single(account: &Account, strategy: &str, reason: impl Into<String>) -> Self {
        SenderError {
            account: account.id.clone(),
            attempts: vec![SenderAttempt {
                strategy: strategy.to_owned(),
                reason: reason.into(),
            }],
        }
    }
}

/// Decides From / Reply-To for an account's email.
#[async_trait]
pub trait SenderResolver: Send + Sync {
    /// The sender for `account`, or why there is none.
    async fn resolve(&self, account: &Account) -> Result<SenderChoice, SenderError>;

    /// Every sender this resolver could pick, so they can be checked ahead of
    /// time (e.g. with [`crate::mail::Mailer::check_sender`]).
    fn candidate_senders(&self) -> Vec<Mailbox>;

    /// Like [`resolve`](Self::resolve), but never picks a sender in
    /// `refused` (the mail server rejected it at `MAIL FROM`; `why` is the
    /// server's answer). Chains override this to fall back to the next
    /// strategy; a single strategy fails with a reason naming the refusal.
    async fn resolve_excluding(
        &self,
        account: &Account,
        refused: &[Mailbox],
        why: &str,
    ) -> Result<SenderChoice, SenderError> {
        let choice = self.resolve(account).await?;
        if refused
            .iter()
            .any(|r| r.address().eq_ignore_ascii_case(choice.from.address()))
        {
            return Err(SenderError::single(
                account,
                &choice.strategy,
                refusal(&choice.from, why),
            ));
        }
        Ok(choice)
    }
}

fn refusal(from: &Mailbox, why: &str) -> String {
    format!("the mail server refused sender <{}>: {why}", from.address())
}

/// Always the same From (e.g. `noreply@`), with an optional Reply-To.
#[derive(Debug, Clone)]
pub struct FixedSender {
    from: Mailbox,
    reply_to: Option<Mailbox>,
}

impl FixedSender {
    /// A fixed sender.
    pub fn new(from: Mailbox) -> Self {
        FixedSender { from, reply_to: None }
    }

    /// Adds a Reply-To.
    pub fn with_reply_to(mut self, reply_to: Mailbox) -> Self {
        self.reply_to = Some(reply_to);
        self
    }
}

#[async_trait]
impl SenderResolver for FixedSender {
    async fn resolve(&self, _account: &Account) -> Result<SenderChoice, SenderError> {
        Ok(SenderChoice {
            from: self.from.clone(),
            reply_to: self.reply_to.clone(),
            strategy: "fixed".into(),
            fallbacks: Vec::new(),
        })
    }

    fn candidate_senders(&self) -> Vec<Mailbox> {
        vec![self.from.clone()]
    }
}

/// A shared support/queue mailbox that both sends and receives replies.
#[derive(Debug, Clone)]
pub struct QueueSender {
    mailbox: Mailbox,
}

impl QueueSender {
    /// The queue's mailbox (used as From and Reply-To).
    pub fn new(mailbox: Mailbox) -> Self {
        QueueSender { mailbox }
    }
}

#[async_trait]
impl SenderResolver for QueueSender {
    async fn resolve(&self, _account: &Account) -> Result<SenderChoice, SenderError> {
        Ok(SenderChoice {
            from: self.mailbox.clone(),
            reply_to: Some(self.mailbox.clone()),
            strategy: "queue".into(),
            fallbacks: Vec::new(),
        })
    }

    fn candidate_senders(&self) -> Vec<Mailbox> {
        vec![self.mailbox.clone()]
    }
}

/// An owner's mailbox and whether it is allowed to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerMailbox {
    mailbox: Option<Mailbox>,
    may_send: bool,
}

impl OwnerMailbox {
    /// An owner that may send from `mailbox`.
    pub fn sending(mailbox: Mailbox) -> Self {
        OwnerMailbox {
            mailbox: Some(mailbox),
            may_send: true,
        }
    }

    /// An owner with a mailbox the mail server will not accept as sender.
    pub fn not_permitted(mailbox: Mailbox) -> Self {
        OwnerMailbox {
            mailbox: Some(mailbox),
            may_send: false,
        }
    }

    /// An owner without a mailbox (e.g. a system user).
    pub fn no_mailbox() -> Self {
        OwnerMailbox {
            mailbox: None,
            may_send: false,
        }
    }
}

/// Sends as the account's owner, when the owner has a mailbox allowed to send.
#[derive(Debug, Clone, Default)]
pub struct OwnerSender {
    owners: HashMap<String, OwnerMailbox>,
}

impl OwnerSender {
    /// Owners by id.
    pub fn new(owners: impl IntoIterator<Item = (String, OwnerMailbox)>) -> Self {
        OwnerSender {
            owners: owners.into_iter().collect(),
        }
    }
}

#[async_trait]
impl SenderResolver for OwnerSender {
    async fn resolve(&self, account: &Account) -> Result<SenderChoice, SenderError> {
        let Some(owner) = &account.owner else {
            return Err(SenderError::single(account, "owner", "the account has no owner"));
        };
        let Some(entry) = self.owners.get(owner) else {
            return Err(SenderError::single(
                account,
                "owner",
                format!("owner `{owner}` is not known to the sender resolver"),
            ));
        };
        match (&entry.mailbox, entry.may_send) {
            (None, _) => Err(SenderError::single(
                account,
                "owner",
                format!("owner `{owner}` has no mailbox"),
            )),
            (Some(mailbox), false) => Err(SenderError::single(
                account,
                "owner",
                format!("owner `{owner}` ({}) is not permitted to send", mailbox.address()),
            )),
            (Some(mailbox), true) => Ok(SenderChoice {
                from: mailbox.clone(),
                reply_to: None,
                strategy: "owner".into(),
                fallbacks: Vec::new(),
            }),
        }
    }

    fn candidate_senders(&self) -> Vec<Mailbox> {
        let mut senders: Vec<Mailbox> = self
            .owners
            .values()
            .filter(|o| o.may_send)
            .filter_map(|o| o.mailbox.clone())
            .collect();
        senders.sort_by(|a, b| a.address().cmp(b.address()));
        senders.dedup();
        senders
    }
}

/// Tries each resolver in order; the first that yields a sender wins, and
/// the choice records why the earlier ones did not.
#[derive(Clone)]
pub struct SenderChain {
    links: Vec<Arc<dyn SenderResolver>>,
}

impl SenderChain {
    /// A chain of resolvers, tried in order.
    pub fn new(links: Vec<Arc<dyn SenderResolver>>) -> Self {
        SenderChain { links }
    }
}

impl fmt::Debug for SenderChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderChain")
            .field("links", &self.links.len())
            .finish()
    }
}

#[async_trait]
impl SenderResolver for SenderChain {
    async fn resolve(&self, account: &Account) -> Result<SenderChoice, SenderError> {
        self.resolve_excluding(account, &[], "").await
    }

    async fn resolve_excluding(
        &self,
        account: &Account,
        refused: &[Mailbox],
        why: &str,
    ) -> Result<SenderChoice, SenderError> {
        let mut attempts = Vec::new();
        for link in &self.links {
            match link.resolve_excluding(account, refused, why).await {
                Ok(mut choice) => {
                    attempts.append(&mut choice.fallbacks);
                    choice.fallbacks = attempts;
                    return Ok(choice);
                }
                Err(mut e) => attempts.append(&mut e.attempts),
            }
        }
        Err(SenderError {
            account: account.id.clone(),
            attempts,
        })
    }

    fn candidate_senders(&self) -> Vec<Mailbox> {
        self.links.iter().flat_map(|l| l.candidate_senders()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(a: &str) -> Mailbox {
        Mailbox::address_only(a).unwrap()
    }

    #[tokio::test]
    async fn refused_sender_falls_back_along_the_chain_and_names_the_refusal() {
        let chain = SenderChain::new(vec![
            Arc::new(FixedSender::new(mb("noreply@example.com"))),
            Arc::new(QueueSender::new(mb("support@example.com"))),
        ]);
        let account = Account::new("acct-9", "bob", "bob@example.com");
        let why = "550 5.7.1 not allowed";
        let choice = chain
            .resolve_excluding(&account, &[mb("noreply@example.com")], why)
            .await
            .unwrap();
        assert_eq!(choice.from.address(), "support@example.com");
        assert_eq!(choice.strategy, "queue");
        assert!(
            choice.fallbacks[0]
                .to_string()
                .contains("refused sender <noreply@example.com>: 550 5.7.1")
        );
        let all = [mb("noreply@example.com"), mb("support@example.com")];
        let err = chain.resolve_excluding(&account, &all, why).await.unwrap_err();
        assert_eq!(err.attempts.len(), 2);
        assert!(err.to_string().contains("acct-9"), "{err}");
        let alone = FixedSender::new(mb("noreply@example.com"));
        let err = alone
            .resolve_excluding(&account, &all[..1], why)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("fixed: the mail server refused sender"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn owner_without_mailbox_and_no_fallback_names_account_and_reason() {
        let owners = OwnerSender::new([("sys".to_string(), OwnerMailbox::no_mailbox())]);
        let chain = SenderChain::new(vec![Arc::new(owners)]);
        let account = Account::new("acct-7", "alice", "alice@example.com").with_owner("sys");
        let err = chain.resolve(&account).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("acct-7"), "{text}");
        assert!(text.contains("owner `sys` has no mailbox"), "{text}");
    }

    #[tokio::test]
    async fn owner_that_may_send_is_used() {
        let owners = OwnerSender::new([
            ("bob".to_string(), OwnerMailbox::sending(mb("bob@example.com"))),
            (
                "eve".to_string(),
                OwnerMailbox::not_permitted(mb("eve@example.com")),
            ),
        ]);
        let a = Account::new("1", "a", "a@example.com").with_owner("bob");
        assert_eq!(owners.resolve(&a).await.unwrap().from, mb("bob@example.com"));
        let b = Account::new("2", "b", "b@example.com").with_owner("eve");
        assert!(
            owners
                .resolve(&b)
                .await
                .unwrap_err()
                .to_string()
                .contains("not permitted")
        );
        assert_eq!(owners.candidate_senders(), vec![mb("bob@example.com")]);
    }
}
