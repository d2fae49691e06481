//! `inspect`, `complete` and `deny`: everything that starts from a link.

use secrecy::{ExposeSecret as _, SecretString};

use crate::account::{Account, AccountId};
use crate::error::StoreError;
use crate::event::EventKind;
use crate::flow::{
    CompleteError, Completed, LinkError, LinkInfo, RequestContext, ResetService, run_blocking,
};
use crate::identifier::canonicalize;
use crate::mail::EmailKind;
use crate::policy::PasswordPolicy;
use crate::store::ConsumeOutcome;
use crate::template;
use crate::token::{RawToken, RejectReason, RevokeReason, TokenRecord};

/// How long after issue a "this wasn't me" link is honoured.
pub const DENY_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A token that passed every check, with its account.
struct Checked {
    token: RawToken,
    record: TokenRecord,
    account: Account,
}

impl ResetService {
    /// Read-only check for the "choose a new password" page (GET). Never
    /// consumes the token: mail scanners and link previewers fetch links.
    pub async fn inspect(&self, token: &str) -> Result<LinkInfo, LinkError> {
        let checked = self.check_token(token).await?;
        Ok(LinkInfo {
            account: checked.account.id,
            username: checked.account.username,
            expires_at: checked.record.expires_at,
        })
    }

    /// Sets a new password with a link. The confirmation must match and the
    /// policy pass (otherwise the link keeps working); the token is consumed
    /// atomically (one winner among concurrent calls); other links of the
    /// account are revoked, sessions revoked through the hook, and a
    /// "password changed" notice is sent.
    pub async fn complete(
        &self,
        token: &str,
        new_password: SecretString,
        confirmation: SecretString,
    ) -> Result<Completed, CompleteError> {
        let Checked { token, account, .. } = self.check_token(token).await?;
        if new_password.expose_secret() != confirmation.expose_secret() {
            return Err(CompleteError::ConfirmationMismatch);
        }
        let email = account.email.clone().unwrap_or_default();
        let identity = [
            ("email address", email.as_str()),
            ("username", account.username.as_str()),
        ];
        if let Err(rejection) = self
            .inner
            .password_policy
            .check(new_password.expose_secret(), &identity)
        {
            self.record(
                Some(account.id.clone()),
                EventKind::PasswordRejected {
                    reason: rejection.to_string(),
                },
            )
            .await?;
            return Err(CompleteError::PasswordRejected(rejection));
        }
        let normalized = SecretString::from(PasswordPolicy::normalize(new_password.expose_secret()));
        let hasher = self.inner.hasher.clone();
        let hash = run_blocking(move || hasher.hash(&normalized))
            .await
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(CompleteError::Internal)?;

        let now = self.inner.clock.now();
        let record = match self.inner.tokens.consume(&token.hash(), now).await? {
            ConsumeOutcome::Consumed(record) => record,
            ConsumeOutcome::Rejected(reason) => {
                self.reject(Some(account.id.clone()), reason).await?;
                return Err(CompleteError::InvalidLink);
            }
        };
        // The account may have changed while the password was being hashed
        // (email changed, disabled, password set elsewhere): check the
        // bindings again now that the token is ours. The token stays spent.
        let current = self.inner.accounts.find_by_id(&record.account).await?;
        if let Some(reason) = binding_problem(current.as_ref(), &record) {
            self.reject(Some(account.id.clone()), reason).await?;
            return Err(CompleteError::InvalidLink);
        }
        if let Err(error) = self.inner.accounts.set_password_hash(&account.id, &hash).await {
            // Give the link back so the user can retry once the store is up.
            if let Err(release_error) = self.inner.tokens.release(&token.hash()).await {
                tracing::error!(%release_error, "could not release token after failed password update");
            }
            return Err(CompleteError::Unavailable(error));
        }
        self.after_reset(&account).await;
        Ok(Completed {
            account: account.id,
            username: account.username,
        })
    }

    /// "This wasn't me": revokes every outstanding link of the link's account.
    /// Works for [`DENY_WINDOW`] after the link was issued (even once it has
    /// expired or been replaced), and only while the account still has the
    /// address the link was sent to.
    pub async fn deny(&self, token: &str) -> Result<(), LinkError> {
        let Ok(raw) = RawToken::parse(token) else {
            self.reject(None, RejectReason::Malformed).await?;
            return Err(LinkError::InvalidLink);
        };
        let Some(record) = self.inner.tokens.find(&raw.hash()).await? else {
            self.reject(None, RejectReason::Unknown).await?;
            return Err(LinkError::InvalidLink);
        };
        let now = self.inner.clock.now();
        // The denial is honoured while the link is recent and the account
        // still has the address it was sent to, whatever the link's state:
        // the user may click it after it expired or was replaced. Someone
        // holding an old mailbox cannot keep cancelling the new owner's links.
        let account = self.inner.accounts.find_by_id(&record.account).await?;
        let refusal = match &account {
            None => Some(RejectReason::AccountGone),
            Some(a) if canonicalize(a.email.as_deref().unwrap_or_default()) != record.sent_to => {
                Some(RejectReason::EmailChanged)
            }
            Some(_)
                if record
                    .issued_at
                    .checked_add(DENY_WINDOW)
                    .is_none_or(|end| now >= end) =>
            {
                Some(RejectReason::Expired)
            }
            Some(_) => None,
        };
        if let Some(reason) = refusal {
            self.reject(Some(record.account), reason).await?;
            return Err(LinkError::InvalidLink);
        }
        let count = self
            .inner
            .tokens
            .revoke_for_account(&record.account, RevokeReason::UserDenied, now)
            .await?;
        self.record(
            Some(record.account),
            EventKind::LinksRevoked {
                reason: RevokeReason::UserDenied,
                count,
            },
        )
        .await?;
        Ok(())
    }

    /// Everything that follows a reset, best effort: the password is
    /// already changed, so a failing step is logged and recorded where
    /// possible, and the remaining steps still run. Sessions go first.
    async fn after_reset(&self, account: &Account) {
        let id = || Some(account.id.clone());
        if let Some(hook) = &self.inner.sessions
            && let Err(reason) = hook.revoke_sessions(&account.id).await
        {
            tracing::error!(%reason, "session revocation after password reset failed");
            self.best_effort(
                self.record(id(), EventKind::SessionRevocationFailed { reason })
                    .await,
            );
        }
        let now = self.inner.clock.now();
        let revoked = self
            .inner
            .tokens
            .revoke_for_account(&account.id, RevokeReason::PasswordReset, now)
            .await;
        self.best_effort(self.record(id(), EventKind::ResetCompleted).await);
        match revoked {
            Ok(0) => {}
            Ok(count) => {
                let kind = EventKind::LinksRevoked {
                    reason: RevokeReason::PasswordReset,
                    count,
                };
                self.best_effort(self.record(id(), kind).await);
            }
            Err(error) => self.best_effort(Err(error)),
        }
        match self.sender_for_notice(account).await {
            Ok(Some(sender)) => {
                let values = template::password_changed_context(
                    &self.inner.site_name,
                    &account.username,
                    &self.inner.security_link,
                );
                let sent = self
                    .deliver(
                        EmailKind::PasswordChanged,
                        &values,
                        &RequestContext::default(),
                        &sender,
                        std::slice::from_ref(account),
                    )
                    .await;
                self.best_effort(sent);
            }
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "password-changed notice not sent"),
        }
    }

    fn best_effort(&self, result: Result<(), StoreError>) {
        if let Err(error) = result {
            tracing::error!(%error, "step after a completed password reset failed; the reset stands");
        }
    }

    async fn sender_for_notice(
        &self,
        account: &Account,
    ) -> Result<Option<crate::sender::SenderChoice>, CompleteError> {
        match self.inner.sender.resolve(account).await {
            Ok(choice) => Ok(Some(choice)),
            Err(error) => {
                self.record(
                    Some(account.id.clone()),
                    EventKind::SenderUnavailable {
                        reason: error.to_string(),
                    },
                )
                .await?;
                Ok(None)
            }
        }
    }

    async fn reject(
        &self,
        account: Option<AccountId>,
        reason: RejectReason,
    ) -> Result<(), crate::error::StoreError> {
        tracing::info!(reason = reason.as_str(), "password reset link refused");
        self.record(account, EventKind::TokenRejected { reason }).await
    }

    /// Parses the token and checks it against its record and its account's
    /// current state; records the reason when refusing.
    async fn check_token(&self, text: &str) -> Result<Checked, LinkError> {
        let Ok(token) = RawToken::parse(text) else {
            self.reject(None, RejectReason::Malformed).await?;
            return Err(LinkError::InvalidLink);
        };
        let Some(record) = self.inner.tokens.find(&token.hash()).await? else {
            self.reject(None, RejectReason::Unknown).await?;
            return Err(LinkError::InvalidLink);
        };
        let now = self.inner.clock.now();
        let account = self.inner.accounts.find_by_id(&record.account).await?;
        let verdict = match record.unusable_reason(now) {
            Some(reason) => Err(reason),
            None => binding_problem(account.as_ref(), &record).map_or(Ok(()), Err),
        };
        match (verdict, account) {
            (Ok(()), Some(account)) => Ok(Checked {
                token,
                record,
                account,
            }),
            (Err(reason), _) => {
                self.reject(Some(record.account), reason).await?;
                Err(LinkError::InvalidLink)
            }
            (Ok(()), None) => Err(LinkError::InvalidLink),
        }
    }
}

/// Why the account no longer matches what the token was issued for.
fn binding_problem(account: Option<&Account>, record: &TokenRecord) -> Option<RejectReason> {
    match account {
        None => Some(RejectReason::AccountGone),
        Some(a) if a.disabled => Some(RejectReason::AccountDisabled),
        Some(a) if canonicalize(a.email.as_deref().unwrap_or_default()) != record.sent_to => {
            Some(RejectReason::EmailChanged)
        }
        Some(a) if a.password_stamp() != record.password_stamp => Some(RejectReason::PasswordChanged),
        Some(_) => None,
    }
}
