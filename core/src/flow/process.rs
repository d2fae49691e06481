//! Processing a recorded request, off the request path: the accounts
//! it names, their eligibility and rate limit, a token per account, the
//! sender, the email, and delivery (inline or to the outbox); the
//! events it leaves ([`Trail`]). The request itself is in `request.rs`;
//! who runs this (in-process tasks, [`RequestWorker`](crate::flow::RequestWorker))
//! is in `workers.rs`.

use crate::account::{Account, AccountId};
use crate::delivery::{message_id_on, new_message_id};
use crate::error::StoreError;
use crate::event::{Event, EventKind, IgnoreReason, RateScope};
use crate::fingerprint::fingerprint;
use crate::flow::throttle::{Refusal, to_events};
use crate::flow::{RequestContext, ResetService};
use crate::identifier::{Identifier, canonicalize};
use crate::mail::{DeliveryError, EmailKind, Mailbox, OutgoingEmail};
use crate::policy::DuplicateEmailPolicy;
use crate::sender::SenderChoice;
use crate::store::{InboxRequest, IssueOutcome, RateKey, TokenIssue};
use crate::template::{self, AccountLinks};
use crate::token::{RawToken, RevokeReason, TokenHash, TokenRecord, TokenState};
use tracing::Instrument as _;

/// How many senders refused at `MAIL FROM` one email may fall back past.
const MAX_SENDER_FALLBACKS: usize = 4;

impl ResetService {
    /// Renders a reset email carrying `links`, checked against a twin
    /// rendering with fresh tokens (the token goes nowhere but its links).
    fn render_confined(
        &self,
        templates: &template::CompiledTemplates,
        locale: &str,
        kind: EmailKind,
        links: &[AccountLinks],
    ) -> Result<crate::mail::MailContent, template::RenderError> {
        let inner = &self.inner;
        let mut twin = Vec::with_capacity(links.len());
        for account in links {
            let token = RawToken::generate().map_err(|e| template::RenderError {
                template: format!("{locale}/{}", kind.as_str()),
                reason: e.to_string(),
            })?;
            twin.push(AccountLinks {
                username: account.username.clone(),
                link: inner.reset_links.link(&token),
                deny_link: inner.deny_links.link(&token),
            });
        }
        let link_page = template::link_page(&inner.reset_links);
        let site = template::SiteValues {
            site_name: &inner.site_name,
            expires_minutes: inner.token_policy.lifetime.as_secs() / 60,
            link_page: &link_page,
        };
        templates.render_confined(locale, kind, links, &twin, &site)
    }

    /// Notes the per-account limit's refusal of `account` in `trail`: the
    /// first of its window, or the count of the previous window (see
    /// `throttle`), or, while the window is open, nothing (and the
    /// request's own "reset requested" is dropped: the count stands for it).
    fn note_account_throttled(
        &self,
        account: &Account,
        ctx: &RequestContext,
        limit: Option<crate::policy::Limit>,
        trail: &mut Trail,
    ) {
        let window = limit.map_or(std::time::Duration::from_secs(15 * 60), |l| l.window);
        let found = self.throttle_events(&Refusal {
            scope: RateScope::Account,
            key: &account.id.0,
            account: Some(&account.id),
            client: ctx.client_addr.as_deref(),
            window,
        });
        if found.is_empty() {
            // Counted, not recorded: its "reset requested" goes too, so a
            // flood aimed at one account does not fill its history.
            if let Some(i) = trail.events.iter().rposition(|e| {
                e.account.as_ref() == Some(&account.id) && matches!(e.kind, EventKind::ResetRequested { .. })
            }) {
                trail.events.remove(i);
            }
            return;
        }
        let now = self.inner.clock.now();
        trail.events.extend(to_events(found, now));
    }

    /// Processes one request taken from the inbox and, when it returns
    /// `Ok`, has marked it done (with its last writes, in one store call
    /// where the stores allow: see [`crate::store::steps`]).
    pub(crate) async fn process_request(&self, job: &InboxRequest) -> Result<(), StoreError> {
        let inner = &self.inner;
        let identifier = &job.identifier;
        let ctx = RequestContext {
            client_addr: job.client.clone(),
            locale: job.locale.clone(),
        };
        let ctx = &ctx;
        let mut trail = Trail::for_request(self, job);
        // Looked up, and settled in the same step when nothing matches.
        let unknown = vec![Event::new(
            inner.clock.now(),
            None,
            EventKind::RequestIgnored {
                reason: IgnoreReason::UnknownIdentifier,
                fingerprint: fingerprint(&inner.fingerprint_key, identifier.as_str()),
            },
        )];
        let counted = inner.metrics.is_some().then(|| unknown.clone());
        let found = inner
            .accounts
            .find_or_settle(identifier, unknown, &*inner.step_log, trail.settle_target(job))
            .await?;
        if found.is_empty() {
            tracing::info!(
                reason = IgnoreReason::UnknownIdentifier.as_str(),
                "password reset request produced no email"
            );
            if let Some(events) = counted {
                self.count_step_events(&events);
            }
            return Ok(());
        }
        // The step's events are written together (one call to the log)
        // before anything is handed to delivery.
        let mut eligible = Vec::with_capacity(found.len());
        for account in found {
            trail.note(
                &account.id,
                EventKind::ResetRequested {
                    via: identifier.kind(),
                    client: ctx.client_addr.clone(),
                },
            );
            match self.ineligibility(&account) {
                Some(reason) => trail.note(&account.id, self.ignored(reason, identifier)),
                None => eligible.push(account),
            }
        }
        match (eligible.len(), inner.duplicates) {
            (0, _) => {}
            (1, _) | (_, DuplicateEmailPolicy::EmailPerAccount) => {
                let last = eligible.len().saturating_sub(1);
                for (i, account) in eligible.iter().enumerate() {
                    let span = self.account_span(&account.id);
                    let settle = (i == last).then_some(job);
                    self.send_single_settling(account, ctx, &mut trail, settle)
                        .instrument(span)
                        .await?;
                }
            }
            (_, DuplicateEmailPolicy::CombinedEmail) => {
                self.send_combined(&eligible, ctx, &mut trail).await?;
            }
            (_, DuplicateEmailPolicy::RequireUsername) => {
                self.send_username_required(&eligible, ctx, &mut trail).await?;
            }
        }
        trail.settle().await
    }

    /// The span of one account's step: its keyed fingerprint, never its
    /// address or id.
    pub(crate) fn account_span(&self, account: &AccountId) -> tracing::Span {
        tracing::info_span!(
            "resetkit.issue_and_queue",
            account = %crate::fingerprint::account_fingerprint(&self.inner.fingerprint_key, account),
        )
    }

    pub(crate) fn ineligibility(&self, account: &Account) -> Option<IgnoreReason> {
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

    /// Logs that the request produced no email and why, and returns the
    /// event that records it (with the identifier's keyed fingerprint).
    fn ignored(&self, reason: IgnoreReason, identifier: &Identifier) -> EventKind {
        tracing::info!(
            reason = reason.as_str(),
            "password reset request produced no email"
        );
        EventKind::RequestIgnored {
            reason,
            fingerprint: fingerprint(&self.inner.fingerprint_key, identifier.as_str()),
        }
    }

    /// Whether an earlier attempt at this inbox request already queued the
    /// mail for `account` (the worker died before deleting the request):
    /// then it is not issued and queued again. Only a retried request is
    /// checked, and only the outbox can tell (inline delivery cannot).
    async fn already_queued(&self, account: &Account, trail: &Trail<'_>) -> Result<bool, StoreError> {
        let Some(outbox) = &self.inner.dispatcher.outbox else {
            return Ok(false);
        };
        let Some(message_id) = trail
            .job
            .as_ref()
            .filter(|job| job.attempts > 1)
            .and_then(|_| trail.message_id_for(&account.id))
        else {
            return Ok(false);
        };
        let queued = outbox.status(&message_id).await?.is_some();
        if queued {
            tracing::info!(%message_id, "inbox request retried after an interrupted attempt: its mail was already queued");
        }
        Ok(queued)
    }

    /// Resolves the sender, noting why when there is none.
    async fn sender_for(&self, account: &Account, trail: &mut Trail<'_>) -> Option<SenderChoice> {
        match self.inner.sender.resolve(account).await {
            Ok(choice) => Some(choice),
            Err(error) => {
                tracing::error!(%error, "no sender for password reset email");
                trail.note(
                    &account.id,
                    EventKind::SenderUnavailable {
                        reason: error.to_string(),
                    },
                );
                None
            }
        }
    }

    /// Issues a token in one atomic store step: admit under the
    /// per-account limit, revoke older links (newest wins), insert. The
    /// "this wasn't me" link gets a secret of its own.
    async fn issue_token(
        &self,
        account: &Account,
        ctx: &RequestContext,
        trail: &mut Trail<'_>,
    ) -> Result<Option<IssuedLinks>, StoreError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let (token, deny) = match (RawToken::generate(), RawToken::generate()) {
            (Ok(token), Ok(deny)) => (token, deny),
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "cannot issue reset token");
                return Ok(None);
            }
        };
        let Some(expires_at) = now.checked_add(inner.token_policy.lifetime) else {
            tracing::error!("the clock is too far in the future to give a reset link an expiry");
            return Ok(None);
        };
        let outcome = inner
            .tokens
            .issue(TokenIssue {
                record: TokenRecord {
                    hash: token.hash(),
                    account: account.id.clone(),
                    sent_to: canonicalize(account.email.as_deref().unwrap_or_default()),
                    password_stamp: account.password_stamp(),
                    issued_at: now,
                    expires_at,
                    state: TokenState::Active,
                    deny_hash: Some(deny.hash()),
                },
                limit: inner.rate_limits.per_account,
                supersede: inner.token_policy.newest_wins,
            })
            .await?;
        match outcome {
            IssueOutcome::RateLimited => {
                self.note_account_throttled(account, ctx, inner.rate_limits.per_account, trail);
                Ok(None)
            }
            IssueOutcome::Issued { superseded } => {
                if superseded > 0 {
                    trail.note(
                        &account.id,
                        EventKind::LinksRevoked {
                            reason: RevokeReason::Superseded,
                            count: superseded,
                        },
                    );
                }
                trail.note(&account.id, EventKind::TokenIssued { expires_at });
                Ok(Some(IssuedLinks {
                    links: AccountLinks {
                        username: account.username.clone(),
                        link: inner.reset_links.link(&token),
                        deny_link: inner.deny_links.link(&deny),
                    },
                    hash: token.hash(),
                }))
            }
        }
    }

    pub(crate) async fn send_single(
        &self,
        account: &Account,
        ctx: &RequestContext,
        trail: &mut Trail<'_>,
    ) -> Result<(), StoreError> {
        self.send_single_settling(account, ctx, trail, None).await
    }

    /// [`send_single`](Self::send_single), settling `settle` (the inbox
    /// request being processed) in the same store call when the mail goes
    /// to the outbox.
    async fn send_single_settling(
        &self,
        account: &Account,
        ctx: &RequestContext,
        trail: &mut Trail<'_>,
        settle: Option<&InboxRequest>,
    ) -> Result<(), StoreError> {
        let Some(sender) = self.sender_for(account, trail).await else {
            return Ok(());
        };
        if self.already_queued(account, trail).await? {
            return Ok(());
        }
        if self.issue_and_queue(account, ctx, &sender, trail, settle).await? {
            return Ok(());
        }
        let Some(issued) = self.issue_token(account, ctx, trail).await? else {
            return Ok(());
        };
        let minutes = self.inner.token_policy.lifetime.as_secs() / 60;
        let ctx_value = template::reset_context(&self.inner.site_name, &issued.links, minutes);
        let mail = Mail {
            kind: EmailKind::Reset,
            values: &ctx_value,
            links: std::slice::from_ref(&issued.links),
            tokens: vec![issued.hash],
            key: Some(&account.id),
        };
        self.deliver(mail, ctx, &sender, std::slice::from_ref(account), trail)
            .await
    }

    /// Outbox delivery of one account's reset mail in one store call
    /// ([`TokenStore::issue_and_record`](crate::store::TokenStore::issue_and_record)):
    /// the mail is prepared with fresh tokens first, then the token is
    /// issued with the step's events, the mail queued and, with `settle`,
    /// the inbox request done. Returns `false` (nothing done) when the mail
    /// goes inline or cannot be prepared: the caller takes the step by step
    /// path, which reports why.
    async fn issue_and_queue(
        &self,
        account: &Account,
        ctx: &RequestContext,
        sender: &SenderChoice,
        trail: &mut Trail<'_>,
        settle: Option<&InboxRequest>,
    ) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let dispatcher = &inner.dispatcher;
        let (crate::delivery::DeliveryMode::Outbox, Some(outbox)) = (dispatcher.mode, &dispatcher.outbox)
        else {
            return Ok(false);
        };
        let now = inner.clock.now();
        let (Ok(token), Ok(deny)) = (RawToken::generate(), RawToken::generate()) else {
            return Ok(false);
        };
        let Some(expires_at) = now.checked_add(inner.token_policy.lifetime) else {
            return Ok(false);
        };
        let Ok(to) = Mailbox::address_only(account.email.as_deref().unwrap_or_default()) else {
            return Ok(false);
        };
        let links = AccountLinks {
            username: account.username.clone(),
            link: inner.reset_links.link(&token),
            deny_link: inner.deny_links.link(&deny),
        };
        let templates = inner.templates.current();
        let locale = templates.resolve_locale(ctx.locale.as_deref()).to_owned();
        let Ok(rendered) = self.render_confined(
            &templates,
            &locale,
            EmailKind::Reset,
            std::slice::from_ref(&links),
        ) else {
            return Ok(false);
        };
        let Some(Ok(message_id)) = trail
            .message_id_for(&account.id)
            .map(Ok)
            .or_else(|| Some(new_message_id(sender.from.domain())))
        else {
            return Ok(false);
        };
        let email = OutgoingEmail::new(
            message_id.clone(),
            EmailKind::Reset,
            sender.from.clone(),
            sender.reply_to.clone(),
            to,
            rendered,
        );
        let before = trail.events.clone();
        let mut events = std::mem::take(&mut trail.events);
        let superseded_at = inner.token_policy.newest_wins.then(|| {
            events.push(Event::new(
                now,
                Some(account.id.clone()),
                EventKind::LinksRevoked {
                    reason: RevokeReason::Superseded,
                    count: 0,
                },
            ));
            events.len() - 1
        });
        trail.note_into(&mut events, &account.id, EventKind::TokenIssued { expires_at });
        trail.note_into(
            &mut events,
            &account.id,
            EventKind::EmailQueued {
                message_id,
                email: EmailKind::Reset,
                from: sender.from.address().to_owned(),
                to: email.to.address().to_owned(),
                sender_strategy: sender.strategy.clone(),
                sender_fallbacks: sender.fallbacks.iter().map(ToString::to_string).collect(),
            },
        );
        let counted = inner.metrics.is_some().then(|| events.clone());
        let entry = crate::store::OutboxEntry {
            email,
            account: Some(account.id.clone()),
            attempts: 0,
            next_attempt_at: now,
            tokens: vec![token.hash()],
            requested_at: trail.job.as_ref().map(|j| j.received_at),
        };
        let outcome = inner
            .tokens
            .issue_and_record(
                TokenIssue {
                    record: TokenRecord {
                        hash: token.hash(),
                        account: account.id.clone(),
                        sent_to: canonicalize(account.email.as_deref().unwrap_or_default()),
                        password_stamp: account.password_stamp(),
                        issued_at: now,
                        expires_at,
                        state: TokenState::Active,
                        deny_hash: Some(deny.hash()),
                    },
                    limit: inner.rate_limits.per_account,
                    supersede: inner.token_policy.newest_wins,
                },
                crate::store::IssueWrites {
                    events,
                    superseded_at,
                    log: &*inner.step_log,
                    mail: Some(crate::store::QueuedMail {
                        entry,
                        outbox: &**outbox,
                    }),
                    settle: settle.map(|job| trail.settle_target(job)),
                },
            )
            .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                trail.events = before;
                return Err(error);
            }
        };
        match outcome {
            IssueOutcome::RateLimited => {
                // Nothing was written: the events wait for the step's end.
                trail.events = before;
                self.note_account_throttled(account, ctx, inner.rate_limits.per_account, trail);
            }
            IssueOutcome::Issued { superseded } => {
                if let Some(events) = counted {
                    self.count_step_events(&crate::store::steps::with_superseded(
                        events,
                        superseded_at,
                        superseded,
                    ));
                }
                if settle.is_some() {
                    trail.settled = true;
                }
                dispatcher.ready.notify_one();
            }
        }
        Ok(true)
    }

    async fn send_combined(
        &self,
        accounts: &[Account],
        ctx: &RequestContext,
        trail: &mut Trail<'_>,
    ) -> Result<(), StoreError> {
        let Some(first) = accounts.first() else {
            return Ok(());
        };
        let Some(sender) = self.sender_for(first, trail).await else {
            return Ok(());
        };
        if self.already_queued(first, trail).await? {
            return Ok(());
        }
        let mut issued = Vec::with_capacity(accounts.len());
        let mut linked = Vec::with_capacity(accounts.len());
        for account in accounts {
            if let Some(links) = self.issue_token(account, ctx, trail).await? {
                issued.push(links);
                linked.push(account.clone());
            }
        }
        let minutes = self.inner.token_policy.lifetime.as_secs() / 60;
        let tokens = issued.iter().map(|i| i.hash).collect();
        let all_links: Vec<AccountLinks> = issued.into_iter().map(|i| i.links).collect();
        let (kind, ctx_value) = match all_links.as_slice() {
            [] => return Ok(()),
            [one] => (
                EmailKind::Reset,
                template::reset_context(&self.inner.site_name, one, minutes),
            ),
            many => (
                EmailKind::ResetCombined,
                template::combined_context(&self.inner.site_name, many, minutes),
            ),
        };
        let mail = Mail {
            kind,
            values: &ctx_value,
            links: &all_links,
            tokens,
            key: Some(&first.id),
        };
        self.deliver(mail, ctx, &sender, &linked, trail).await
    }

    async fn send_username_required(
        &self,
        accounts: &[Account],
        ctx: &RequestContext,
        trail: &mut Trail<'_>,
    ) -> Result<(), StoreError> {
        let Some(first) = accounts.first() else {
            return Ok(());
        };
        let Some(sender) = self.sender_for(first, trail).await else {
            return Ok(());
        };
        if self.already_queued(first, trail).await? {
            return Ok(());
        }
        let mut allowed = Vec::with_capacity(accounts.len());
        for account in accounts {
            if let Some(limit) = self.inner.rate_limits.per_account
                && !self
                    .inner
                    .limiter
                    .admit(
                        &RateKey::Account(account.id.clone()),
                        self.inner.clock.now(),
                        limit.window,
                        limit.max,
                    )
                    .await?
            {
                self.note_account_throttled(account, ctx, Some(limit), trail);
                continue;
            }
            allowed.push(account.clone());
        }
        if allowed.is_empty() {
            return Ok(());
        }
        let usernames: Vec<String> = accounts.iter().map(|a| a.username.clone()).collect();
        let ctx_value = template::username_required_context(&self.inner.site_name, &usernames);
        let mail = Mail {
            kind: EmailKind::UsernameRequired,
            values: &ctx_value,
            links: &[],
            tokens: Vec::new(),
            key: Some(&first.id),
        };
        self.deliver(mail, ctx, &sender, &allowed, trail).await
    }

    /// Renders and hands one email to delivery, addressed to the stored
    /// address of `accounts[0]` (all share it). Notes an event per account
    /// in the step's trail, and writes the trail before handing over.
    pub(crate) async fn deliver(
        &self,
        mail: Mail<'_>,
        ctx: &RequestContext,
        sender: &SenderChoice,
        accounts: &[Account],
        trail: &mut Trail<'_>,
    ) -> Result<(), StoreError> {
        let Mail {
            kind,
            values,
            links,
            tokens,
            key,
        } = mail;
        let Some(first) = accounts.first() else {
            return Ok(());
        };
        let stored = first.email.as_deref().unwrap_or_default();
        let to = match Mailbox::address_only(stored) {
            Ok(to) => to,
            Err(error) => {
                let reason = format!("stored address of account `{}` is unusable: {error}", first.id);
                delivery_problem(accounts, reason, trail);
                return Ok(());
            }
        };
        let templates = self.inner.templates.current();
        let locale = templates.resolve_locale(ctx.locale.as_deref()).to_owned();
        let rendered = if links.is_empty() {
            templates.render(&locale, kind, values)
        } else {
            self.render_confined(&templates, &locale, kind, links)
        };
        let rendered = match rendered {
            Ok(r) => r,
            Err(error) => {
                tracing::error!(%error, "a reset email was not sent: its template failed at send time");
                delivery_problem(accounts, error.to_string(), trail);
                return Ok(());
            }
        };
        let mut sender = sender.clone();
        let mut refused: Vec<Mailbox> = Vec::new();
        loop {
            let derived = match key {
                Some(key) if refused.is_empty() => trail.message_id_for(key),
                _ => None,
            };
            let message_id = match derived.map_or_else(|| new_message_id(sender.from.domain()), Ok) {
                Ok(id) => id,
                Err(error) => {
                    delivery_problem(accounts, error.to_string(), trail);
                    return Ok(());
                }
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
                trail.note(
                    &account.id,
                    EventKind::EmailQueued {
                        message_id: message_id.clone(),
                        email: kind,
                        from: sender.from.address().to_owned(),
                        to: email.to.address().to_owned(),
                        sender_strategy: sender.strategy.clone(),
                        sender_fallbacks: sender.fallbacks.iter().map(ToString::to_string).collect(),
                    },
                );
            }
            // The step's events, written before the mail leaves (inline
            // delivery records `email_sent` after them).
            trail.flush().await?;
            let failure = self
                .inner
                .dispatcher
                .dispatch(
                    email,
                    Some(first.id.clone()),
                    tokens.clone(),
                    trail.job.as_ref().map(|j| j.received_at),
                )
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
                        trail.note(
                            &account.id,
                            EventKind::SenderUnavailable {
                                reason: error.to_string(),
                            },
                        );
                    }
                    return Ok(());
                }
            }
        }
    }
}

/// Notes why an email could not be prepared, for each account it concerns.
fn delivery_problem(accounts: &[Account], reason: String, trail: &mut Trail<'_>) {
    tracing::error!(%reason, "password reset email could not be prepared");
    for account in accounts {
        trail.note(&account.id, not_prepared(reason.clone()));
    }
}

/// The event of an email that could not be prepared, and why.
pub(crate) fn not_prepared(reason: String) -> EventKind {
    EventKind::DeliveryFailed {
        message_id: String::new(),
        reason,
        permanent: true,
        will_retry: false,
        from: String::new(),
        class: crate::event::NOT_PREPARED,
    }
}

/// One email to render and deliver.
pub(crate) struct Mail<'a> {
    pub(crate) kind: EmailKind,
    pub(crate) values: &'a minijinja::Value,
    /// The reset links it carries (checked at send time: see
    /// `CompiledTemplates::render_confined`); empty for other emails.
    pub(crate) links: &'a [AccountLinks],
    /// The reset tokens whose links it carries.
    pub(crate) tokens: Vec<TokenHash>,
    /// The account whose request mail this is (the first of a shared
    /// address), from which an inbox request's Message-ID is derived.
    pub(crate) key: Option<&'a AccountId>,
}

/// A token just issued and the links that carry it.
struct IssuedLinks {
    links: AccountLinks,
    hash: TokenHash,
}

/// The events of one flow step, written in one call to the event log.
pub(crate) struct Trail<'a> {
    service: &'a ResetService,
    events: Vec<Event>,
    best_effort: bool,
    /// The inbox request is done (a combined step settled it).
    settled: bool,
    /// The inbox request being processed, if any.
    job: Option<JobRef>,
}

/// What a trail knows of the inbox request it processes.
struct JobRef {
    id: String,
    attempts: u32,
    received_at: std::time::SystemTime,
}

impl<'a> Trail<'a> {
    pub(crate) fn new(service: &'a ResetService) -> Self {
        Trail {
            service,
            events: Vec::new(),
            best_effort: false,
            settled: false,
            job: None,
        }
    }

    /// The trail of processing one inbox request.
    pub(crate) fn for_request(service: &'a ResetService, job: &InboxRequest) -> Self {
        Trail {
            job: Some(JobRef {
                id: job.id.clone(),
                attempts: job.attempts,
                received_at: job.received_at,
            }),
            ..Trail::new(service)
        }
    }

    /// The Message-ID of the mail this request sends for `account` (the
    /// first account of a shared address): derived from the request id and
    /// on the site's own domain, so a retried request finds what an
    /// interrupted attempt queued whatever sender it picks this time.
    fn message_id_for(&self, account: &AccountId) -> Option<String> {
        let job = self.job.as_ref()?;
        let domain = self
            .service
            .inner
            .reset_links
            .target()
            .host_str()
            .unwrap_or_default();
        Some(derived_message_id(&job.id, &account.to_string(), domain))
    }

    /// A trail whose write failures are logged and dropped instead of
    /// failing the step (after a reset, which already stands).
    pub(crate) fn best_effort(service: &'a ResetService) -> Self {
        Trail {
            best_effort: true,
            ..Trail::new(service)
        }
    }

    pub(crate) fn note(&mut self, account: &AccountId, kind: EventKind) {
        let now = self.service.inner.clock.now();
        self.events.push(Event::new(now, Some(account.clone()), kind));
    }

    /// Notes an event into `events` (a step's list taken from the trail).
    fn note_into(&self, events: &mut Vec<Event>, account: &AccountId, kind: EventKind) {
        let now = self.service.inner.clock.now();
        events.push(Event::new(now, Some(account.clone()), kind));
    }

    /// Where a combined step marks `job` done.
    fn settle_target<'j>(&self, job: &'j InboxRequest) -> crate::store::Settle<'j>
    where
        'a: 'j,
    {
        crate::store::Settle {
            inbox: &*self.service.inner.inbox,
            id: &job.id,
            attempt: job.attempts,
        }
    }

    /// Ends the processing of the trail's inbox request: its remaining
    /// events written and the request done, in one store call
    /// ([`RequestInbox::settle`](crate::store::RequestInbox::settle)),
    /// unless a combined step already settled it. A trail without an inbox
    /// request is flushed.
    pub(crate) async fn settle(&mut self) -> Result<(), StoreError> {
        let Some(job) = &self.job else {
            return self.flush().await;
        };
        if self.settled {
            return self.flush().await;
        }
        let events = std::mem::take(&mut self.events);
        let inner = &self.service.inner;
        let counted = inner.metrics.is_some().then(|| events.clone());
        inner
            .inbox
            .settle(&job.id, job.attempts, events, &*inner.step_log)
            .await?;
        self.settled = true;
        if let Some(events) = counted {
            self.service.count_step_events(&events);
        }
        Ok(())
    }

    pub(crate) async fn flush(&mut self) -> Result<(), StoreError> {
        if self.events.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.events);
        match self.service.inner.events.record_all(events).await {
            Err(error) if self.best_effort => {
                tracing::error!(%error, "events after a completed password reset were not recorded; the reset stands");
                Ok(())
            }
            other => other,
        }
    }
}

/// `<hex.resetkit@domain>` from SHA-256 of the request id and account id.
fn derived_message_id(request_id: &str, account: &str, domain: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    h.update(request_id.as_bytes());
    h.update([0u8]);
    h.update(account.as_bytes());
    message_id_on(&crate::token::hex(&h.finalize()[..16]), domain)
}
