//! What an operator console needs from the service: the link-opened record,
//! account lookup, a fresh link in place of an undelivered email, the
//! senders to check, and the email templates (preview, lint, replacement
//! while running).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use resetkit::prelude::*;
//! use resetkit::template::TemplateSource;
//!
//! let service = ResetService::builder()
//!     .base_url("https://app.example.com")
//!     .accounts(Arc::new(InMemoryAccounts::default()))
//!     .tokens(Arc::new(InMemoryTokenStore::default()))
//!     .events(Arc::new(InMemoryEventLog::default()))
//!     .mailer(Arc::new(CapturingMailer::default()))
//!     .sender(Arc::new(FixedSender::new(Mailbox::address_only("noreply@example.com").unwrap())))
//!     .build()
//!     .unwrap();
//! let mut edited = service.templates();
//! edited.locale_mut("en").reset.text = "Hello {{ username }}, no link".into();
//! // The same lint as the builder: refused, naming what is missing, and
//! // the service keeps its previous templates.
//! let err = service.replace_templates(edited).unwrap_err();
//! assert!(err.to_string().contains("reset.text"), "{err}");
//! assert!(service.templates().locale("en").unwrap().reset.text.contains("{{ link }}"));
//! # });
//! ```

use std::sync::{Arc, PoisonError, RwLock};

use minijinja::Value;

use crate::account::{Account, AccountId};
use crate::error::{BuildError, StoreError};
use crate::event::{EventKind, IgnoreReason};
use crate::flow::process::Trail;
use crate::flow::{RequestContext, ResetService};
use crate::identifier::canonicalize;
use crate::mail::{EmailKind, MailContent};
use crate::store::{OutboxListing, RateLimitAdmin, Timeline};
use crate::template::{self, AccountLinks, CompiledTemplates, Templates};

/// The templates a running service renders, replaceable while it runs.
pub(crate) struct ActiveTemplates {
    compiled: RwLock<Arc<CompiledTemplates>>,
    sources: RwLock<Templates>,
}

impl ActiveTemplates {
    pub(crate) fn new(compiled: CompiledTemplates, sources: Templates) -> Self {
        ActiveTemplates {
            compiled: RwLock::new(Arc::new(compiled)),
            sources: RwLock::new(sources),
        }
    }

    /// The compiled templates for the next email.
    pub(crate) fn current(&self) -> Arc<CompiledTemplates> {
        self.compiled
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What [`OperatorView::reissue_link`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReissueOutcome {
    /// A fresh link was issued (superseding the account's older links) and
    /// its email handed to delivery; the account's timeline shows how it went.
    Sent,
    /// The account may not get a link; nothing was issued.
    Ineligible(IgnoreReason),
}

/// [`ResetService::reload_templates_from`] failed; the service keeps its templates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateReloadError {
    /// The template store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored template fails the lint.
    #[error(transparent)]
    Template(#[from] BuildError),
}

/// The link lint's verdict on a set of templates.
#[derive(Debug)]
pub struct TemplateCheck(pub Result<(), BuildError>);

/// The placeholder standing where a token goes in previews: clearly not a
/// token (tokens are 43 URL-safe characters).
pub const SAMPLE_TOKEN: &str = "SAMPLE-TOKEN-FOR-PREVIEW";

impl ResetService {
    /// The templates the service renders now (sources).
    pub fn templates(&self) -> Templates {
        self.inner
            .templates
            .sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn compile(&self, templates: &Templates) -> Result<CompiledTemplates, BuildError> {
        let inner = &self.inner;
        templates.compile_for_site(
            &inner.reset_links,
            &inner.deny_links,
            &inner.security_link,
            &inner.site_name,
            inner.token_policy.lifetime.as_secs() / 60,
        )
    }

    /// Runs the builder's lint (every body keeps its links, for this
    /// site's links and the sample accounts) on `templates`.
    pub fn check_templates(&self, templates: &Templates) -> TemplateCheck {
        TemplateCheck(self.compile(templates).map(|_| ()))
    }

    /// Replaces the templates for every email from now on, after the same
    /// lint as the builder; on an error (which names the template, locale
    /// and what is missing) the service keeps its templates. This is the
    /// reload hook: a host that stores templates (e.g. a
    /// `TemplateStore`) calls it at start and whenever they change.
    pub fn replace_templates(&self, templates: Templates) -> Result<(), BuildError> {
        let compiled = self.compile(&templates)?;
        let slot = &self.inner.templates;
        let mut sources = slot.sources.write().unwrap_or_else(PoisonError::into_inner);
        *slot.compiled.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(compiled);
        *sources = templates;
        Ok(())
    }

    /// Renders one email of `templates` for a sample account (`username`,
    /// sharing its address with `other`), without the lint, with
    /// [`SAMPLE_TOKEN`] where tokens go: a preview never holds a live link.
    pub fn preview_email(
        &self,
        templates: &Templates,
        locale: &str,
        kind: EmailKind,
    ) -> Result<MailContent, template::RenderError> {
        let values = self.sample_values(kind);
        templates.render_unchecked(locale, kind, &values)
    }

    /// Applies the active versions in `store` over the service's current
    /// templates (after the lint; see [`replace_templates`](Self::replace_templates));
    /// returns how many stored templates are active. The reload hook for
    /// operator-edited templates: call it at start and after each change.
    pub async fn reload_templates_from(
        &self,
        store: &dyn template::TemplateStore,
    ) -> Result<usize, TemplateReloadError> {
        let active = store.active().await?;
        let merged = template::apply_stored(self.templates(), &active);
        self.replace_templates(merged)?;
        Ok(active.len())
    }

    fn sample_values(&self, kind: EmailKind) -> Value {
        let inner = &self.inner;
        let minutes = inner.token_policy.lifetime.as_secs() / 60;
        let sample = |username: &str| AccountLinks {
            username: username.to_owned(),
            link: sample_link(inner.reset_links.target(), inner.reset_links.placement()),
            deny_link: sample_link(inner.deny_links.target(), crate::link::TokenPlacement::Query),
        };
        match kind {
            EmailKind::ResetCombined => template::combined_context(
                &inner.site_name,
                &[sample("sample-user"), sample("sample-user-2")],
                minutes,
            ),
            EmailKind::UsernameRequired => template::username_required_context(
                &inner.site_name,
                &["sample-user".to_owned(), "sample-user-2".to_owned()],
            ),
            EmailKind::PasswordChanged => {
                template::password_changed_context(&inner.site_name, "sample-user", &inner.security_link)
            }
            _ => template::reset_context(&inner.site_name, &sample("sample-user"), minutes),
        }
    }
}

/// What the operator console reads beyond the flow's stores: the
/// timeline, the rate-limit admin and (with outbox delivery) the outbox's
/// listing. Each is a capability trait, so a backend without one cannot be
/// given here: a compile error, not an `Unsupported` page at run time.
///
/// ```
/// use std::sync::Arc;
/// use resetkit::flow::ConsoleStores;
/// use resetkit::memory::{InMemoryEventLog, InMemoryOutbox, InMemoryTokenStore};
///
/// let stores = ConsoleStores::new(
///     Arc::new(InMemoryEventLog::default()),
///     Arc::new(InMemoryTokenStore::default()),
/// )
/// .with_outbox(Arc::new(InMemoryOutbox::default()));
/// # let _ = stores;
/// ```
#[derive(Clone)]
pub struct ConsoleStores {
    timeline: Arc<dyn Timeline>,
    rate_limits: Arc<dyn RateLimitAdmin>,
    outbox: Option<Arc<dyn OutboxListing>>,
}

impl ConsoleStores {
    /// The timeline read from `timeline` (the service's event log), the
    /// rate limits from `rate_limits` (the service's token store).
    pub fn new(timeline: Arc<dyn Timeline>, rate_limits: Arc<dyn RateLimitAdmin>) -> Self {
        ConsoleStores {
            timeline,
            rate_limits,
            outbox: None,
        }
    }

    /// The delivery queue read from `outbox` (the service's outbox).
    pub fn with_outbox(mut self, outbox: Arc<dyn OutboxListing>) -> Self {
        self.outbox = Some(outbox);
        self
    }
}

impl std::fmt::Debug for ConsoleStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleStores")
            .field("outbox", &self.outbox.is_some())
            .finish_non_exhaustive()
    }
}

/// The operator's view of a [`ResetService`]: account lookup, the
/// timeline, the delivery queue, the rate limits and a fresh link in place
/// of an undelivered email. Made by [`ResetService::operator_view`]; the
/// operator console (`resetkit-axum`'s admin) is built on it.
#[derive(Clone)]
pub struct OperatorView {
    service: ResetService,
    stores: ConsoleStores,
}

impl std::fmt::Debug for OperatorView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorView")
            .field("service", &self.service)
            .field("stores", &self.stores)
            .finish()
    }
}

impl ResetService {
    /// The operator's view of this service, reading the console's
    /// capabilities from `stores`.
    pub fn operator_view(&self, stores: ConsoleStores) -> OperatorView {
        OperatorView {
            service: self.clone(),
            stores,
        }
    }
}

impl OperatorView {
    /// The service this view looks at.
    pub fn service(&self) -> &ResetService {
        &self.service
    }

    /// The event log's timeline (the console's account pages).
    pub fn timeline(&self) -> &Arc<dyn Timeline> {
        &self.stores.timeline
    }

    /// The outbox's listing, when the service delivers through an outbox
    /// (`None` with inline delivery: there is no queue).
    pub fn outbox(&self) -> Option<&Arc<dyn OutboxListing>> {
        self.service.inner.dispatcher.outbox.as_ref()?;
        self.stores.outbox.as_ref()
    }

    /// Accounts matching `query` as an email address (every account that
    /// has it) or as a username, matched the way `request` matches.
    pub async fn find_accounts(&self, query: &str) -> Result<Vec<Account>, StoreError> {
        let canonical = canonicalize(query);
        if canonical.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = if canonical.contains('@') {
            self.service.inner.accounts.find_by_email(&canonical).await?
        } else {
            Vec::new()
        };
        if let Some(account) = self.service.inner.accounts.find_by_username(&canonical).await?
            && !found.iter().any(|a| a.id == account.id)
        {
            found.push(account);
        }
        Ok(found)
    }

    /// One account by id.
    pub async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.service.inner.accounts.find_by_id(id).await
    }

    /// An operator's "send a fresh link": issues a new token for the account
    /// through the normal issue step (per-account limit, newest wins: the
    /// old link dies) and hands its email to delivery, recording
    /// [`EventKind::LinkReissued`] first. `replaces` names the undelivered
    /// email it stands in for. A disabled or unconfirmed account gets nothing.
    pub async fn reissue_link(
        &self,
        account: &AccountId,
        operator: &str,
        replaces: Option<&str>,
    ) -> Result<ReissueOutcome, StoreError> {
        let Some(account) = self.service.inner.accounts.find_by_id(account).await? else {
            return Err(StoreError::NotFound {
                operation: "reissue_link",
                what: format!("account `{account}`"),
            });
        };
        if let Some(reason) = self.service.ineligibility(&account) {
            return Ok(ReissueOutcome::Ineligible(reason));
        }
        let mut trail = Trail::new(&self.service);
        trail.note(
            &account.id,
            EventKind::LinkReissued {
                replaces: replaces.map(str::to_owned),
                operator: operator.to_owned(),
            },
        );
        self.service
            .send_single(&account, &RequestContext::default(), &mut trail)
            .await?;
        trail.flush().await?;
        Ok(ReissueOutcome::Sent)
    }

    /// The account's per-account rate limit as the rate limiter counts it
    /// now (read-only), or `None` when no per-account limit is configured.
    pub async fn account_rate_limit(
        &self,
        account: &AccountId,
    ) -> Result<Option<AccountRateLimit>, StoreError> {
        let Some(limit) = self.service.inner.rate_limits.per_account else {
            return Ok(None);
        };
        let used = self
            .stores
            .rate_limits
            .rate_count(
                &crate::store::RateKey::Account(account.clone()),
                self.service.inner.clock.now(),
                limit.window,
            )
            .await?;
        Ok(Some(AccountRateLimit {
            used,
            max: limit.max,
            window: limit.window,
        }))
    }

    /// Clears the account's per-account rate limit (its recorded requests
    /// are forgotten, so it gets reset emails again at once) and records
    /// [`EventKind::RateLimitCleared`] naming `operator`; returns how many
    /// requests were forgotten. For test deployments and support: the
    /// limit exists to stop mail floods, so say why in your own records.
    pub async fn clear_account_rate_limit(
        &self,
        account: &AccountId,
        operator: &str,
    ) -> Result<usize, StoreError> {
        if self.service.inner.accounts.find_by_id(account).await?.is_none() {
            return Err(StoreError::NotFound {
                operation: "clear_account_rate_limit",
                what: format!("account `{account}`"),
            });
        }
        let removed = self
            .stores
            .rate_limits
            .rate_clear(&crate::store::RateKey::Account(account.clone()))
            .await?;
        self.service
            .record(
                Some(account.clone()),
                EventKind::RateLimitCleared {
                    removed: u32::try_from(removed).unwrap_or(u32::MAX),
                    operator: operator.to_owned(),
                },
            )
            .await?;
        Ok(removed)
    }
}

fn sample_link(target: &url::Url, placement: crate::link::TokenPlacement) -> String {
    match placement {
        crate::link::TokenPlacement::Fragment => format!("{target}#token={SAMPLE_TOKEN}"),
        _ => format!("{target}?token={SAMPLE_TOKEN}"),
    }
}

/// An account's per-account rate limit: what
/// [`OperatorView::account_rate_limit`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountRateLimit {
    /// Reset emails counted in the current window.
    pub used: u32,
    /// The most the window allows.
    pub max: u32,
    /// The window.
    pub window: std::time::Duration,
}

impl AccountRateLimit {
    /// Whether the account gets no further reset email in this window.
    pub fn is_spent(&self) -> bool {
        self.used >= self.max
    }
}
