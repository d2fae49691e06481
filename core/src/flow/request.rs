//! `request`: validate, rate-limit, find accounts, issue tokens, mail links.

use crate::account::{Account, AccountId};
use crate::delivery::new_message_id;
use crate::error::StoreError;
use crate::event::{EventKind, IgnoreReason, RateScope};
use crate::fingerprint::fingerprint;
use crate::flow::{RequestAccepted, RequestContext, RequestError, ResetService};
use crate::identifier::{Identifier, canonicalize, parse_identifier};
use crate::mail::{DeliveryError, EmailKind, Mailbox, OutgoingEmail};
use crate::policy::{DuplicateEmailPolicy, Limit};
use crate::sender::SenderChoice;
use crate::store::RateKey;
use crate::template::{self, AccountLinks};
use crate::token::{RawToken, RevokeReason, TokenRecord, TokenState};

/// How many senders refused at `MAIL FROM` one email may fall back past.
const MAX_SENDER_FALLBACKS: usize = 4;

impl ResetService {
    /// Asks for a reset link for `identifier` (an email or a username, per
    /// the identifier mode). Returns the same [`RequestAccepted`] for known,
    /// unknown, disabled, shared and rate-limited identifiers; only malformed
    /// input gets [`RequestError::Invalid`].
    pub async fn request(
        &self,
        identifier: &str,
        ctx: &RequestContext,
    ) -> Result<RequestAccepted, RequestError> {
        let identifier = parse_identifier(identifier, self.inner.identifier_mode)?;
        let ctx = sanitize_context(ctx);
        if self.inner.background
            && tokio::runtime::Handle::try_current().is_ok()
            && let Ok(permit) = self.inner.in_flight.clone().try_acquire_owned()
        {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(error) = this.process_request(&identifier, &ctx).await {
                    tracing::error!(%error, "password reset request could not be processed");
                }
                drop(permit);
            });
            return Ok(RequestAccepted);
        }
        // Inline: background processing is off, there is no runtime, or
        // MAX_BACKGROUND_REQUESTS are already in flight (a flood is slowed
        // down here instead of piling up tasks).
        self.process_request(&identifier, &ctx).await?;
        Ok(RequestAccepted)
    }

    async fn process_request(&self, identifier: &Identifier, ctx: &RequestContext) -> Result<(), StoreError> {
        let inner = &self.inner;
        if let (Some(limit), Some(client)) = (inner.rate_limits.per_client, &ctx.client_addr)
            && self.over_limit(&self.client_rate_key(client), limit).await?
        {
            tracing::info!(client = %client, "password reset request rate limited (client)");
            return self
                .record(
                    None,
                    EventKind::RateLimited {
                        scope: RateScope::Client,
                        client: Some(client.clone()),
                    },
                )
                .await;
        }
        let found = match identifier {
            Identifier::Email(email) => inner.accounts.find_by_email(email).await?,
            Identifier::Username(name) => inner.accounts.find_by_username(name).await?.into_iter().collect(),
        };
        if found.is_empty() {
            return self
                .ignore(None, IgnoreReason::UnknownIdentifier, identifier)
                .await;
        }
        let mut eligible = Vec::with_capacity(found.len());
        for account in found {
            self.record(
                Some(account.id.clone()),
                EventKind::ResetRequested {
                    via: identifier.kind(),
                    client: ctx.client_addr.clone(),
                },
            )
            .await?;
            match self.ineligibility(&account) {
                Some(reason) => self.ignore(Some(account.id.clone()), reason, identifier).await?,
                None => eligible.push(account),
            }
        }
        let mut allowed = Vec::with_capacity(eligible.len());
        for account in eligible {
            if let Some(limit) = inner.rate_limits.per_account
                && !self
                    .inner
                    .tokens
                    .admit(
                        &RateKey::Account(account.id.clone()),
                        self.inner.clock.now(),
                        limit.window,
                        limit.max,
                    )
                    .await?
            {
                self.record(
                    Some(account.id.clone()),
                    EventKind::RateLimited {
                        scope: RateScope::Account,
                        client: ctx.client_addr.clone(),
                    },
                )
                .await?;
                continue;
            }
            allowed.push(account);
        }
        match (allowed.len(), inner.duplicates) {
            (0, _) => Ok(()),
            (1, _) | (_, DuplicateEmailPolicy::EmailPerAccount) => {
                for account in &allowed {
                    self.send_single(account, ctx).await?;
                }
                Ok(())
            }
            (_, DuplicateEmailPolicy::CombinedEmail) => self.send_combined(&allowed, ctx).await,
            (_, DuplicateEmailPolicy::RequireUsername) => self.send_username_required(&allowed, ctx).await,
        }
    }

    fn ineligibility(&self, account: &Account) -> Option<IgnoreReason> {
        if account.disabled {
            Some(IgnoreReason::AccountDisabled)
        } else if account.email.as_deref().is_none_or(|e| e.trim().is_empty()) {
            Some(IgnoreReason::NoEmailAddress)
        } else if self.inner.require_confirmed_email && !account.email_confirmed {
            Some(IgnoreReason::EmailUnconfirmed)
        } else {
            None
        }
    }

    async fn ignore(
        &self,
        account: Option<AccountId>,
        reason: IgnoreReason,
        identifier: &Identifier,
    ) -> Result<(), StoreError> {
        tracing::info!(
            reason = reason.as_str(),
            "password reset request produced no email"
        );
        self.record(
            account,
            EventKind::RequestIgnored {
                reason,
                fingerprint: fingerprint(&self.inner.fingerprint_key, identifier.as_str()),
            },
        )
        .await
    }

    async fn over_limit(&self, key: &RateKey, limit: Limit) -> Result<bool, StoreError> {
        let hits = self
            .inner
            .tokens
            .hit(key, self.inner.clock.now(), limit.window)
            .await?;
        Ok(hits > limit.max)
    }

    /// Resolves the sender, recording why when there is none.
    async fn sender_for(&self, account: &Account) -> Result<Option<SenderChoice>, StoreError> {
        match self.inner.sender.resolve(account).await {
            Ok(choice) => Ok(Some(choice)),
            Err(error) => {
                tracing::error!(%error, "no sender for password reset email");
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

    /// Revokes older links (newest wins), issues and stores a new token.
    async fn issue_token(&self, account: &Account) -> Result<Option<AccountLinks>, StoreError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        if inner.token_policy.newest_wins {
            let count = inner
                .tokens
                .revoke_for_account(&account.id, RevokeReason::Superseded, now)
                .await?;
            if count > 0 {
                self.record(
                    Some(account.id.clone()),
                    EventKind::LinksRevoked {
                        reason: RevokeReason::Superseded,
                        count,
                    },
                )
                .await?;
            }
        }
        let token = match RawToken::generate() {
            Ok(token) => token,
            Err(error) => {
                tracing::error!(%error, "cannot issue reset token");
                return Ok(None);
            }
        };
        let Some(expires_at) = now.checked_add(inner.token_policy.lifetime) else {
            tracing::error!("the clock is too far in the future to give a reset link an expiry");
            return Ok(None);
        };
        inner
            .tokens
            .insert(TokenRecord {
                hash: token.hash(),
                account: account.id.clone(),
                sent_to: canonicalize(account.email.as_deref().unwrap_or_default()),
                password_stamp: account.password_stamp(),
                issued_at: now,
                expires_at,
                state: TokenState::Active,
            })
            .await?;
        self.record(Some(account.id.clone()), EventKind::TokenIssued { expires_at })
            .await?;
        Ok(Some(AccountLinks {
            username: account.username.clone(),
            link: inner.reset_links.link(&token),
            deny_link: inner.deny_links.link(&token),
        }))
    }

    async fn send_single(&self, account: &Account, ctx: &RequestContext) -> Result<(), StoreError> {
        let Some(sender) = self.sender_for(account).await? else {
            return Ok(());
        };
        let Some(links) = self.issue_token(account).await? else {
            return Ok(());
        };
        let minutes = self.inner.token_policy.lifetime.as_secs() / 60;
        let ctx_value = template::reset_context(&self.inner.site_name, &links, minutes);
        self.deliver(
            EmailKind::Reset,
            &ctx_value,
            ctx,
            &sender,
            std::slice::from_ref(account),
        )
        .await
    }

    async fn send_combined(&self, accounts: &[Account], ctx: &RequestContext) -> Result<(), StoreError> {
        let Some(first) = accounts.first() else {
            return Ok(());
        };
        let Some(sender) = self.sender_for(first).await? else {
            return Ok(());
        };
        let mut all_links = Vec::with_capacity(accounts.len());
        for account in accounts {
            if let Some(links) = self.issue_token(account).await? {
                all_links.push(links);
            }
        }
        let minutes = self.inner.token_policy.lifetime.as_secs() / 60;
        let ctx_value = template::combined_context(&self.inner.site_name, &all_links, minutes);
        self.deliver(EmailKind::ResetCombined, &ctx_value, ctx, &sender, accounts)
            .await
    }

    async fn send_username_required(
        &self,
        accounts: &[Account],
        ctx: &RequestContext,
    ) -> Result<(), StoreError> {
        let Some(first) = accounts.first() else {
            return Ok(());
        };
        let Some(sender) = self.sender_for(first).await? else {
            return Ok(());
        };
        let usernames: Vec<String> = accounts.iter().map(|a| a.username.clone()).collect();
        let ctx_value = template::username_required_context(&self.inner.site_name, &usernames);
        self.deliver(EmailKind::UsernameRequired, &ctx_value, ctx, &sender, accounts)
            .await
    }

    /// Renders and hands one email to delivery, addressed to the stored
    /// address of `accounts[0]` (all share it); records an event per account.
    pub(crate) async fn deliver(
        &self,
        kind: EmailKind,
        values: &minijinja::Value,
        ctx: &RequestContext,
        sender: &SenderChoice,
        accounts: &[Account],
    ) -> Result<(), StoreError> {
        let Some(first) = accounts.first() else {
            return Ok(());
        };
        let stored = first.email.as_deref().unwrap_or_default();
        let to = match Mailbox::address_only(stored) {
            Ok(to) => to,
            Err(error) => {
                return self
                    .delivery_problem(
                        accounts,
                        format!("stored address of account `{}` is unusable: {error}", first.id),
                    )
                    .await;
            }
        };
        let locale = self
            .inner
            .templates
            .resolve_locale(ctx.locale.as_deref())
            .to_owned();
        let rendered = match self.inner.templates.render(&locale, kind, values) {
            Ok(r) => r,
            Err(error) => return self.delivery_problem(accounts, error.to_string()).await,
        };
        let mut sender = sender.clone();
        let mut refused: Vec<Mailbox> = Vec::new();
        loop {
            let message_id = match new_message_id(sender.from.domain()) {
                Ok(id) => id,
                Err(error) => return self.delivery_problem(accounts, error.to_string()).await,
            };
            let email = OutgoingEmail::new(
                message_id.clone(),
                kind,
                sender.from.clone(),
                sender.reply_to.clone(),
                to.clone(),
                rendered.clone(),
            );
            for account in accounts {
                self.record(
                    Some(account.id.clone()),
                    EventKind::EmailQueued {
                        message_id: message_id.clone(),
                        email: kind,
                        from: sender.from.address().to_owned(),
                        to: email.to.address().to_owned(),
                        sender_strategy: sender.strategy.clone(),
                        sender_fallbacks: sender.fallbacks.iter().map(ToString::to_string).collect(),
                    },
                )
                .await?;
            }
            let failure = self
                .inner
                .dispatcher
                .dispatch(email, Some(first.id.clone()))
                .await?;
            // The server refused the sender at MAIL FROM: fall back to the
            // next sender the resolver allows (inline delivery only; the
            // outbox worker records the refusal as a permanent failure).
            let Some(DeliveryError::SenderRejected { reply, .. }) = failure else {
                return Ok(());
            };
            if refused.len() >= MAX_SENDER_FALLBACKS {
                return Ok(());
            }
            refused.push(sender.from.clone());
            let why = reply.map_or_else(|| "rejected at MAIL FROM".to_owned(), |r| r.to_string());
            match self.inner.sender.resolve_excluding(first, &refused, &why).await {
                Ok(next) => sender = next,
                Err(error) => {
                    tracing::error!(%error, "no fallback sender after the mail server refused the sender");
                    for account in accounts {
                        self.record(
                            Some(account.id.clone()),
                            EventKind::SenderUnavailable {
                                reason: error.to_string(),
                            },
                        )
                        .await?;
                    }
                    return Ok(());
                }
            }
        }
    }

    async fn delivery_problem(&self, accounts: &[Account], reason: String) -> Result<(), StoreError> {
        tracing::error!(%reason, "password reset email could not be prepared");
        for account in accounts {
            self.record(
                Some(account.id.clone()),
                EventKind::DeliveryFailed {
                    message_id: String::new(),
                    reason: reason.clone(),
                    permanent: true,
                    will_retry: false,
                },
            )
            .await?;
        }
        Ok(())
    }
}

/// Bounds what the host passes in so it can neither bloat the event log nor
/// inject control characters into it.
fn sanitize_context(ctx: &RequestContext) -> RequestContext {
    let clean = |s: &String, max: usize| -> Option<String> {
        let s: String = s.chars().filter(|c| !c.is_control()).take(max).collect();
        (!s.trim().is_empty()).then(|| s.trim().to_owned())
    };
    RequestContext {
        client_addr: ctx.client_addr.as_ref().and_then(|s| clean(s, 64)),
        locale: ctx.locale.as_ref().and_then(|s| clean(s, 35)),
    }
}
