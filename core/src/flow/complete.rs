//! `inspect`, `complete` and `deny`: everything that starts from a link.

use secrecy::{ExposeSecret as _, SecretString};
use tracing::Instrument as _;

use crate::account::{Account, AccountId};
use crate::delivery::{DeliveryMode, new_message_id};
use crate::error::StoreError;
use crate::event::Event;
use crate::event::EventKind;
use crate::flow::process::{Mail, Trail, not_prepared};
use crate::flow::{
    CompleteError, Completed, LinkError, LinkInfo, RequestContext, ResetService, run_blocking,
};
use crate::identifier::canonicalize;
use crate::mail::EmailKind;
use crate::mail::{Mailbox, OutgoingEmail};
use crate::policy::PasswordPolicy;
use crate::sender::SenderChoice;
use crate::store::{ConsumeOutcome, DenyOutcome, FinishOutcome};
use crate::store::{OutboxEntry, PasswordWrite, QueuedMail, ResetWrites};
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

    /// [`inspect`](Self::inspect) for the link's landing page, recording
    /// that the link was opened ([`EventKind::LinkOpened`]; best effort: a
    /// failed write is logged, the page still works). Read-only otherwise.
    pub async fn open_link(&self, token: &str) -> Result<LinkInfo, LinkError> {
        let span = tracing::info_span!("resetkit.open_link", account = tracing::field::Empty);
        let this = span.clone();
        async move {
            let info = self.inspect(token).await?;
            this.record(
                "account",
                crate::fingerprint::account_fingerprint(&self.inner.fingerprint_key, &info.account),
            );
            let opened = EventKind::LinkOpened {
                expires_at: info.expires_at,
            };
            if let Err(error) = self.record(Some(info.account.clone()), opened).await {
                tracing::warn!(%error, "recording that a reset link was opened failed");
            }
            Ok(info)
        }
        .instrument(span)
        .await
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
        let span = tracing::info_span!("resetkit.complete", account = tracing::field::Empty);
        self.complete_step(token, new_password, confirmation, &span)
            .instrument(span.clone())
            .await
    }

    async fn complete_step(
        &self,
        token: &str,
        new_password: SecretString,
        confirmation: SecretString,
        span: &tracing::Span,
    ) -> Result<Completed, CompleteError> {
        let Checked { token, account, .. } = self.check_token(token).await?;
        span.record(
            "account",
            crate::fingerprint::account_fingerprint(&self.inner.fingerprint_key, &account.id),
        );
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
        // Consumed with the account re-read in one store call (a failed
        // read gives the token back: nothing stays consumed on an error).
        let (outcome, current) = self
            .inner
            .tokens
            .consume_with_account(&token.hash(), now, &*self.inner.accounts)
            .await?;
        let record = match outcome {
            ConsumeOutcome::Consumed(record) => record,
            ConsumeOutcome::Rejected(reason) => {
                self.reject(Some(account.id.clone()), reason).await?;
                return Err(CompleteError::InvalidLink);
            }
        };
        // The token is now being spent: a deny or a newer request in the
        // meantime kills it for good, and only this call can finish or
        // release it. The account may have changed while the password was
        // being hashed (email changed, disabled, password set elsewhere):
        // its bindings are checked again, as read now that the token is ours.
        if let Some(reason) = binding_problem(current.as_ref(), &record) {
            // The token stays `Spending`: dead, like every link the change
            // it detected has already killed.
            self.reject(Some(account.id.clone()), reason).await?;
            return Err(CompleteError::InvalidLink);
        }
        self.store_reset(&token, &account, &hash).await?;
        Ok(Completed {
            account: account.id,
            username: account.username,
        })
    }

    /// Stores the new password and finishes the token. With outbox
    /// delivery that is one store call with the reset's events and its
    /// notice ([`TokenStore::finish_reset`](crate::store::TokenStore::finish_reset));
    /// sessions are revoked after it. Inline delivery sends the notice
    /// after the password is stored ([`after_reset`](Self::after_reset)).
    /// An error: the password was not stored and the link is given back.
    async fn store_reset(
        &self,
        token: &RawToken,
        account: &Account,
        hash: &crate::hasher::PasswordHash,
    ) -> Result<(), CompleteError> {
        let inner = &self.inner;
        let dispatcher = &inner.dispatcher;
        let (DeliveryMode::Outbox, Some(outbox)) = (dispatcher.mode, &dispatcher.outbox) else {
            if let Err(error) = inner.accounts.set_password_hash(&account.id, hash).await {
                return Err(self.give_back(token, error).await);
            }
            let finished = inner.tokens.finish(&token.hash(), inner.clock.now()).await;
            self.after_reset(account, finished).await;
            return Ok(());
        };
        let now = inner.clock.now();
        let event = |kind| Event::new(now, Some(account.id.clone()), kind);
        // The count of revoked links is known only to the store: a
        // placeholder it fills in or leaves out.
        let mut events = vec![
            event(EventKind::ResetCompleted),
            event(EventKind::LinksRevoked {
                reason: RevokeReason::PasswordReset,
                count: 0,
            }),
        ];
        let mail = match self.prepare_notice(account).await {
            Ok((email, sender)) => {
                events.push(event(EventKind::EmailQueued {
                    message_id: email.message_id.clone(),
                    email: EmailKind::PasswordChanged,
                    from: sender.from.address().to_owned(),
                    to: email.to.address().to_owned(),
                    sender_strategy: sender.strategy.clone(),
                    sender_fallbacks: sender.fallbacks.iter().map(ToString::to_string).collect(),
                }));
                Some(QueuedMail {
                    entry: OutboxEntry {
                        email,
                        account: Some(account.id.clone()),
                        attempts: 0,
                        next_attempt_at: now,
                        tokens: Vec::new(),
                        requested_at: None,
                    },
                    outbox: &**outbox,
                })
            }
            Err(problem) => {
                events.push(event(problem));
                None
            }
        };
        let queued = mail.is_some();
        let counted = inner.metrics.is_some().then(|| events.clone());
        let done = inner
            .tokens
            .finish_reset(
                &token.hash(),
                now,
                PasswordWrite {
                    accounts: &*inner.accounts,
                    account: &account.id,
                    hash,
                },
                ResetWrites {
                    events,
                    revoked_at: Some(1),
                    log: &*inner.step_log,
                    mail,
                },
            )
            .await;
        let done = match done {
            Ok(done) => done,
            Err(error) => return Err(self.give_back(token, error).await),
        };
        if !done.recorded {
            // Revoked meanwhile, or `finish` failed: recorded step by step.
            self.after_reset(account, done.finish).await;
            return Ok(());
        }
        if let Some(events) = counted {
            let revoked = match done.finish {
                Ok(FinishOutcome::Finished { revoked }) => revoked,
                _ => 0,
            };
            self.count_step_events(&crate::store::steps::with_revoked(events, Some(1), revoked));
        }
        if queued {
            dispatcher.ready.notify_one();
        }
        self.revoke_sessions(account).await;
        Ok(())
    }

    /// The "password changed" notice for the outbox, or the event that
    /// says why there is none (no sender, an unusable address, a template
    /// that fails).
    async fn prepare_notice(&self, account: &Account) -> Result<(OutgoingEmail, SenderChoice), EventKind> {
        let sender = match self.inner.sender.resolve(account).await {
            Ok(sender) => sender,
            Err(error) => {
                tracing::error!(%error, "password-changed notice not sent: no sender");
                return Err(EventKind::SenderUnavailable {
                    reason: error.to_string(),
                });
            }
        };
        let stored = account.email.as_deref().unwrap_or_default();
        let to = Mailbox::address_only(stored).map_err(|error| {
            not_prepared(format!(
                "stored address of account `{}` is unusable: {error}",
                account.id
            ))
        })?;
        let values = template::password_changed_context(
            &self.inner.site_name,
            &account.username,
            &self.inner.security_link,
        );
        let templates = self.inner.templates.current();
        let locale = templates.resolve_locale(None).to_owned();
        let rendered = templates
            .render(&locale, EmailKind::PasswordChanged, &values)
            .map_err(|error| {
                tracing::error!(%error, "a reset email was not sent: its template failed at send time");
                not_prepared(error.to_string())
            })?;
        let message_id = new_message_id(sender.from.domain()).map_err(|e| not_prepared(e.to_string()))?;
        let email = OutgoingEmail::new(
            message_id,
            EmailKind::PasswordChanged,
            sender.from.clone(),
            sender.reply_to.clone(),
            to,
            rendered,
        );
        Ok((email, sender))
    }

    /// Revokes the account's sessions through the host's hook; a failure
    /// is logged and recorded (best effort: the reset stands).
    async fn revoke_sessions(&self, account: &Account) {
        if let Some(hook) = &self.inner.sessions
            && let Err(reason) = hook.revoke_sessions(&account.id).await
        {
            tracing::error!(%reason, "session revocation after password reset failed");
            self.best_effort(
                self.record(
                    Some(account.id.clone()),
                    EventKind::SessionRevocationFailed { reason },
                )
                .await,
            );
        }
    }

    /// The password could not be stored: give the link back (only if
    /// nothing revoked it meanwhile) so the user can retry once the store is
    /// up.
    async fn give_back(&self, token: &RawToken, error: StoreError) -> CompleteError {
        match self.inner.tokens.release(&token.hash()).await {
            Ok(true) => {}
            Ok(false) => tracing::info!("reset link revoked while it was being spent; it stays dead"),
            Err(release_error) => {
                tracing::error!(%release_error, "could not release token after failed password update");
            }
        }
        CompleteError::Unavailable(error)
    }

    /// "This wasn't me": revokes every outstanding link of the link's
    /// account. The deny link carries a secret of its own (it cannot
    /// complete a reset) and dies with its reset link: it works while that
    /// link is live (unused, not revoked), for at most [`DENY_WINDOW`], and
    /// only while the account still has the address the link was sent to.
    pub async fn deny(&self, token: &str) -> Result<(), LinkError> {
        let Ok(raw) = RawToken::parse(token) else {
            self.reject(None, RejectReason::Malformed).await?;
            return Err(LinkError::InvalidLink);
        };
        let Some(record) = self.inner.tokens.find_by_deny(&raw.hash()).await? else {
            self.reject(None, RejectReason::Unknown).await?;
            return Err(LinkError::InvalidLink);
        };
        let now = self.inner.clock.now();
        // Someone holding an old mailbox cannot cancel the new owner's links.
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
        match self.inner.tokens.deny(&raw.hash(), now).await? {
            DenyOutcome::Revoked { count } => {
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
            DenyOutcome::Rejected(reason) => {
                self.reject(Some(record.account), reason).await?;
                Err(LinkError::InvalidLink)
            }
        }
    }

    /// Everything that follows a reset, best effort: the password is
    /// already changed, so a failing step is logged and recorded where
    /// possible, and the remaining steps still run. Sessions go first.
    async fn after_reset(&self, account: &Account, finished: Result<FinishOutcome, StoreError>) {
        self.revoke_sessions(account).await;
        let mut events = vec![EventKind::ResetCompleted];
        match finished {
            Ok(FinishOutcome::Finished { revoked: 0 }) => {}
            Ok(FinishOutcome::Finished { revoked }) => events.push(EventKind::LinksRevoked {
                reason: RevokeReason::PasswordReset,
                count: revoked,
            }),
            Ok(FinishOutcome::RevokedMeanwhile(reason)) => {
                // The link was presented before the revocation; the password
                // is written. Say so in the trail: the owner who denied sees
                // that the change went through (and gets the notice below).
                tracing::warn!(
                    reason = reason.as_str(),
                    "reset link revoked while its password change was being stored"
                );
                events.push(EventKind::RevokedDuringReset { reason });
            }
            Err(error) => {
                // Revoke the account's links, this one (still spending)
                // included: the reset stands and no link may outlive it.
                tracing::error!(%error, "could not mark the reset link used");
                let now = self.inner.clock.now();
                match self
                    .inner
                    .tokens
                    .revoke_for_account(&account.id, RevokeReason::PasswordReset, now)
                    .await
                {
                    Ok(0) => {}
                    Ok(count) => events.push(EventKind::LinksRevoked {
                        reason: RevokeReason::PasswordReset,
                        count,
                    }),
                    Err(error) => self.best_effort(Err(error)),
                }
            }
        }
        // Written with the notice's own events; a failing event log must not
        // hold back the "password changed" notice.
        let mut trail = Trail::best_effort(self);
        for kind in events {
            trail.note(&account.id, kind);
        }
        match self.inner.sender.resolve(account).await {
            Ok(sender) => {
                let values = template::password_changed_context(
                    &self.inner.site_name,
                    &account.username,
                    &self.inner.security_link,
                );
                let mail = Mail {
                    kind: EmailKind::PasswordChanged,
                    values: &values,
                    links: &[],
                    tokens: Vec::new(),
                    key: None,
                };
                let sent = self
                    .deliver(
                        mail,
                        &RequestContext::default(),
                        &sender,
                        std::slice::from_ref(account),
                        &mut trail,
                    )
                    .await;
                self.best_effort(sent);
            }
            Err(error) => {
                tracing::error!(%error, "password-changed notice not sent: no sender");
                trail.note(
                    &account.id,
                    EventKind::SenderUnavailable {
                        reason: error.to_string(),
                    },
                );
            }
        }
        self.best_effort(trail.flush().await);
    }

    fn best_effort(&self, result: Result<(), StoreError>) {
        if let Err(error) = result {
            tracing::error!(%error, "step after a completed password reset failed; the reset stands");
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
        // The token and its account, in one store call.
        let Some((record, account)) = self
            .inner
            .tokens
            .find_with_account(&token.hash(), &*self.inner.accounts)
            .await?
        else {
            self.reject(None, RejectReason::Unknown).await?;
            return Err(LinkError::InvalidLink);
        };
        let now = self.inner.clock.now();
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
