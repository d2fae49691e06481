//! The console's handlers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use minijinja::{Environment, Value, context};
use resetkit::account::{Account, AccountId};
use resetkit::flow::ReissueOutcome;
use resetkit::mail::EmailKind;
use resetkit::store::{EventCursor, OutboxMessage, OutboxState, OutboxStatus};
use resetkit::template::{TemplateSource, Templates};

use super::timeline::{describe, utc};
use super::{Console, Operator};
use crate::BuildError;
use crate::form::Form;
use crate::page::{PageCtx, PageError, Site, fallback};

/// The notice after a fresh link was refused for an ineligible account.
const INELIGIBLE_NOTICE: &str = "No link was sent: the account is disabled or its email is not confirmed.";

/// A console request's context: the console, the headers, the operator.
pub(super) type Ctx = PageCtx<Console>;
/// What a handler answers: a page or a redirect, or an error page.
type Answer = Result<Response, PageError>;

const TEMPLATES: [(&str, &str); 9] = [
    ("base.html", include_str!("templates/base.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("search.html", include_str!("templates/search.html")),
    ("account.html", include_str!("templates/account.html")),
    ("queue.html", include_str!("templates/queue.html")),
    ("senders.html", include_str!("templates/senders.html")),
    ("templates.html", include_str!("templates/templates.html")),
    ("template_edit.html", include_str!("templates/template_edit.html")),
    ("error.html", include_str!("templates/error.html")),
];

const KINDS: [EmailKind; 4] = [
    EmailKind::Reset,
    EmailKind::ResetCombined,
    EmailKind::UsernameRequired,
    EmailKind::PasswordChanged,
];

/// Longest search text accepted.
const MAX_QUERY: usize = 320;
/// Largest template part accepted (bytes).
const MAX_TEMPLATE_PART: usize = 32 * 1024;

pub(super) fn environment() -> Result<Environment<'static>, BuildError> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    for (name, source) in TEMPLATES {
        env.add_template(name, source).map_err(|e| BuildError::Template {
            name: format!("admin/{name}"),
            reason: e.to_string(),
        })?;
    }
    Ok(env)
}

/// The CSRF value of this operator's forms and the cookie to set, if any:
/// sealed to the browser's signed cookie and to the operator's name.
fn csrf_field(ctx: &Ctx) -> (String, Option<HeaderValue>) {
    let token = ctx.site.csrf.token(&ctx.headers);
    let field = ctx.site.csrf.seal(&token, &operator_payload(&ctx.viewer));
    (field, token.set_cookie)
}

fn operator_payload(operator: &Operator) -> String {
    format!("admin:{}", URL_SAFE_NO_PAD.encode(operator.0.as_bytes()))
}

fn csrf_ok(ctx: &Ctx, form: &Form) -> bool {
    ctx.site
        .csrf
        .open(&ctx.headers, form.single("csrf_token").ok())
        .is_some_and(|p| p == operator_payload(&ctx.viewer))
}

pub(super) struct PageOut<'a> {
    pub(super) status: StatusCode,
    pub(super) name: &'a str,
    pub(super) title: &'a str,
    pub(super) notice: Option<String>,
    pub(super) ctx: Value,
}

impl Site for Console {
    type Viewer = Operator;

    fn mount(&self) -> &str {
        &self.mount
    }

    fn viewer(parts: &Parts) -> Option<Operator> {
        parts.extensions.get::<Operator>().cloned()
    }

    fn error_page(ctx: &Ctx, error: &PageError) -> Response {
        let message = match error {
            PageError::Refused { message, .. } | PageError::Failed { message } => message.clone(),
            PageError::Unavailable { what, detail } => {
                tracing::error!(error = %detail, "operator console: {what} failed");
                format!("{what} failed: {detail}")
            }
            PageError::Busy => "Too busy: please try again in a moment.".to_owned(),
        };
        ctx.render(PageOut {
            status: error.status(),
            name: "error.html",
            title: "Request refused",
            notice: None,
            ctx: context! { message => message },
        })
    }
}

impl Ctx {
    /// Page `out` for this operator, with the CSRF field of its forms.
    pub(super) fn render(&self, out: PageOut<'_>) -> Response {
        let console = &self.site;
        let (csrf_token, cookie) = csrf_field(self);
        let ctx = context! {
            title => out.title,
            // Checked at build: `/`, letters, digits, `-`, `_` only.
            mount => Value::from_safe_string(console.mount.clone()),
            site_name => console.site_name,
            operator => self.viewer.0,
            has_overview => console.overview.is_some(),
            notice => out.notice,
            csrf_token => csrf_token,
            ..out.ctx
        };
        let html = console.env.get_template(out.name).and_then(|t| t.render(ctx));
        let mut response = match html {
            Ok(html) => (out.status, Html(html)).into_response(),
            Err(error) => {
                tracing::error!(%error, template = out.name, "rendering an operator page failed");
                fallback()
            }
        };
        if let Some(cookie) = cookie {
            response.headers_mut().append(SET_COOKIE, cookie);
        }
        response
    }

    /// The operator's name.
    fn operator(&self) -> &str {
        &self.viewer.0
    }
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn query(raw: Option<&str>) -> Form {
    Form::from_encoded(raw.unwrap_or_default().as_bytes())
}

/// A POST's form, checked for CSRF.
fn post_form(ctx: &Ctx, body: &[u8]) -> Result<Form, PageError> {
    let form = crate::routes::parse_form(&ctx.headers, body)?;
    if !csrf_ok(ctx, &form) {
        return Err(PageError::csrf());
    }
    Ok(form)
}

/// The account (`id`) a console POST acts on, after the form's checks.
fn posted_account(ctx: &Ctx, body: &[u8]) -> Result<AccountId, PageError> {
    let form = post_form(ctx, body)?;
    let id = field(&form, "id")?;
    Ok(AccountId(id.to_owned()))
}

/// One field sent exactly once, else a 400 naming it.
fn field<'f>(form: &'f Form, name: &str) -> Result<&'f str, PageError> {
    form.single(name).map_err(|_| {
        PageError::refused(
            StatusCode::BAD_REQUEST,
            format!("Send exactly one `{name}` field"),
        )
    })
}

fn account_value(a: &Account) -> Value {
    context! {
        id => a.id.0,
        id_q => encode(&a.id.0),
        username => a.username,
        email => a.email,
        disabled => a.disabled,
        confirmed => a.email_confirmed,
    }
}

pub(super) async fn not_found(ctx: Ctx) -> Response {
    Console::error_page(
        &ctx,
        &PageError::refused(StatusCode::NOT_FOUND, "There is no such page."),
    )
}

/// `GET /?q=`: find accounts by email (all sharing it) or username.
pub(super) async fn search(ctx: Ctx, RawQuery(raw): RawQuery) -> Answer {
    search_page(ctx, raw, true).await
}

/// `GET /search[?q=]`: the search, also when the overview is the landing page.
pub(super) async fn search_only(ctx: Ctx, RawQuery(raw): RawQuery) -> Answer {
    search_page(ctx, raw, false).await
}

async fn search_page(ctx: Ctx, raw: Option<String>, landing: bool) -> Answer {
    let params = query(raw.as_deref());
    if landing && params.get("q").is_none() && ctx.site.overview.is_some() {
        // The landing page: the overview, with a search box.
        return super::overview::page(&ctx).await;
    }
    let q = params.get("q").unwrap_or_default().trim().to_owned();
    let mut values = context! { query => q, searched => false, accounts => Vec::<Value>::new() };
    let mut status = StatusCode::OK;
    if q.chars().count() > MAX_QUERY || q.chars().any(char::is_control) {
        status = StatusCode::BAD_REQUEST;
        values = context! { error => format!("Type an email address or a username (at most {MAX_QUERY} characters, no control characters)."), ..values };
    } else if !q.is_empty() {
        let found = ctx
            .site
            .operator
            .find_accounts(&q)
            .await
            .map_err(|e| PageError::unavailable("Looking up accounts", &e))?;
        let accounts: Vec<Value> = found.iter().map(account_value).collect();
        values = context! { searched => true, accounts => accounts, ..values };
    }
    Ok(ctx.render(PageOut {
        status,
        name: "search.html",
        title: "Accounts",
        notice: None,
        ctx: values,
    }))
}

/// `GET /account?id=ID[&before=N]`: the account's timeline, newest first.
pub(super) async fn account(ctx: Ctx, RawQuery(raw): RawQuery) -> Answer {
    let params = query(raw.as_deref());
    let Some(id) = params.get("id").filter(|id| !id.is_empty()) else {
        return Err(PageError::refused(
            StatusCode::BAD_REQUEST,
            "Which account? The `id` parameter is missing.",
        ));
    };
    let before = match params.get("before").map(str::parse::<u64>) {
        None => None,
        Some(Ok(n)) => Some(EventCursor(n)),
        Some(Err(_)) => {
            return Err(PageError::refused(
                StatusCode::BAD_REQUEST,
                "`before` must be a whole number (from an \"Older events\" link).",
            ));
        }
    };
    let id = AccountId(id.to_owned());
    let console = &ctx.site;
    let account = console
        .operator
        .account(&id)
        .await
        .map_err(|e| PageError::unavailable("Reading the account", &e))?
        .ok_or_else(|| PageError::refused(StatusCode::NOT_FOUND, "No account has this id."))?;
    let page = console
        .operator
        .timeline()
        .account_page(&id, before, console.page_size)
        .await
        .map_err(|e| PageError::unavailable("Reading the account's events", &e))?;
    let items: Vec<Value> = page
        .events
        .iter()
        .map(|(_, event)| {
            let row = describe(&event.kind);
            context! { at => utc(event.at), label => row.label, detail => row.detail, tone => row.tone }
        })
        .collect();
    let notice = match params.get("done") {
        Some("reissued") => {
            Some("A fresh link was issued and its email queued; its delivery shows here.".to_owned())
        }
        Some("ineligible") => Some(INELIGIBLE_NOTICE.to_owned()),
        Some("limit_cleared") => Some(
            "The account's rate limit was cleared: its next reset request sends an email again.".to_owned(),
        ),
        _ => None,
    };
    // The per-account limit: used / allowed in the window, so "no email
    // arrived" can be told from "the limit was spent" (and cleared here).
    let limit = match console.operator.account_rate_limit(&id).await {
        Ok(Some(l)) => context! {
            used => l.used,
            max => l.max,
            window => human_window(l.window),
            spent => l.is_spent(),
        },
        Ok(None) => context! { none => true },
        Err(e) => context! { error => format!("the token store cannot count it: {e}") },
    };
    Ok(ctx.render(PageOut {
        status: StatusCode::OK,
        name: "account.html",
        title: &format!("Account {}", account.username),
        notice,
        ctx: context! {
            account => account_value(&account),
            items => items,
            next => page.next.map(|c| c.0),
            limit => limit,
        },
    }))
}

/// `POST /account/reissue` (`id`): a fresh link for the account.
pub(super) async fn reissue(ctx: Ctx, body: Bytes) -> Answer {
    let id = posted_account(&ctx, &body)?;
    match ctx.site.operator.reissue_link(&id, ctx.operator(), None).await {
        Ok(ReissueOutcome::Sent) => {
            Ok(ctx.see_other(&format!("/account?id={}&done=reissued", encode(&id.0))))
        }
        Ok(_) => Ok(ctx.see_other(&format!("/account?id={}&done=ineligible", encode(&id.0)))),
        Err(resetkit::error::StoreError::NotFound { .. }) => Err(PageError::refused(
            StatusCode::NOT_FOUND,
            "No account has this id.",
        )),
        Err(e) => Err(PageError::unavailable("Sending a fresh link", &e)),
    }
}

/// `POST /account/clear-limit` (`id`): forget the account's recorded
/// requests, so that its per-account rate limit starts afresh.
pub(super) async fn clear_limit(ctx: Ctx, body: Bytes) -> Answer {
    let id = posted_account(&ctx, &body)?;
    match ctx
        .site
        .operator
        .clear_account_rate_limit(&id, ctx.operator())
        .await
    {
        Ok(_) => Ok(ctx.see_other(&format!("/account?id={}&done=limit_cleared", encode(&id.0)))),
        Err(resetkit::error::StoreError::NotFound { .. }) => Err(PageError::refused(
            StatusCode::NOT_FOUND,
            "No account has this id.",
        )),
        Err(e) => Err(PageError::unavailable("Clearing the rate limit", &e)),
    }
}

/// `15 min`, `1 h`, `90 s`.
fn human_window(window: std::time::Duration) -> String {
    let secs = window.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

fn status_text(status: &OutboxStatus) -> String {
    match status {
        OutboxStatus::Pending => "pending".into(),
        OutboxStatus::Claimed => "being sent".into(),
        OutboxStatus::Sent => "sent".into(),
        OutboxStatus::Failed { .. } => "failed".into(),
        OutboxStatus::Dropped { reason } => format!("not sent: {reason}"),
        _ => "unknown".into(),
    }
}

fn retryable(kind: EmailKind) -> bool {
    matches!(kind, EmailKind::Reset | EmailKind::ResetCombined)
}

fn message_value(m: &OutboxMessage) -> Value {
    let account = m.account.as_ref().map(|a| a.0.clone());
    context! {
        message_id => m.message_id,
        account_q => account.as_deref().map(encode),
        account => account,
        kind => m.kind.as_str(),
        from => m.from,
        to => m.to,
        attempts => m.attempts,
        status => status_text(&m.status),
        last_error => m.last_error,
        next_attempt => utc(m.next_attempt_at),
        retryable => retryable(m.kind) && m.account.is_some(),
    }
}

/// `GET /queue?state=`: waiting, failed or dropped messages.
pub(super) async fn queue(ctx: Ctx, RawQuery(raw): RawQuery) -> Answer {
    let params = query(raw.as_deref());
    let state = match params.get("state") {
        None => OutboxState::Waiting,
        Some(text) => OutboxState::parse(text).ok_or_else(|| {
            PageError::refused(
                StatusCode::BAD_REQUEST,
                "`state` must be waiting, failed or dropped.",
            )
        })?,
    };
    let states: Vec<Value> = [
        (OutboxState::Waiting, "Pending and retrying"),
        (OutboxState::Failed, "Failed"),
        (OutboxState::Dropped, "Not sent"),
    ]
    .iter()
    .map(|(s, label)| context! { name => s.as_str(), label => label, current => *s == state })
    .collect();
    let (messages, err): (Vec<Value>, Option<String>) = match ctx.site.operator.outbox() {
        None => (Vec::new(), Some("This service delivers inline: there is no queue. Each account's timeline shows its deliveries.".into())),
        Some(outbox) => {
            let list = outbox
                .list_by_state(state, 200)
                .await
                .map_err(|e| PageError::unavailable("Reading the delivery queue", &e))?;
            (list.iter().map(message_value).collect(), None)
        }
    };
    let notice = match params.get("done") {
        Some("retried") => {
            Some("A fresh link was issued in place of the failed email; the new email is queued.".to_owned())
        }
        Some("ineligible") => Some(INELIGIBLE_NOTICE.to_owned()),
        _ => None,
    };
    Ok(ctx.render(PageOut {
        status: StatusCode::OK,
        name: "queue.html",
        title: "Delivery queue",
        notice,
        ctx: context! { state => state.as_str(), states => states, messages => messages, error => err },
    }))
}

/// `POST /queue/retry` (`message_id`): a failed reset email is not resent
/// (its link may be dead or stale); a fresh link is issued in its place.
pub(super) async fn retry(ctx: Ctx, body: Bytes) -> Answer {
    let form = post_form(&ctx, &body)?;
    let message_id = field(&form, "message_id")?.to_owned();
    let Some(outbox) = ctx.site.operator.outbox() else {
        return Err(PageError::refused(
            StatusCode::NOT_FOUND,
            "This service has no delivery queue.",
        ));
    };
    let message = outbox
        .message(&message_id)
        .await
        .map_err(|e| PageError::unavailable("Reading the message", &e))?
        .ok_or_else(|| PageError::refused(StatusCode::NOT_FOUND, "No queued email has this Message-ID."))?;
    let (OutboxStatus::Failed { .. }, Some(account)) = (&message.status, &message.account) else {
        return Err(PageError::refused(
            StatusCode::CONFLICT,
            "Only a failed email of an account can be retried (this one is not failed, or belongs to no account).",
        ));
    };
    if !retryable(message.kind) {
        return Err(PageError::refused(
            StatusCode::CONFLICT,
            "Only reset emails are retried with a fresh link.",
        ));
    }
    match ctx
        .site
        .operator
        .reissue_link(account, ctx.operator(), Some(&message_id))
        .await
    {
        Ok(ReissueOutcome::Sent) => {
            let reason = format!("retried by operator {} with a fresh link", ctx.operator());
            outbox
                .retire_failed(&message_id, &reason)
                .await
                .map_err(|e| PageError::unavailable("Retiring the failed email", &e))?;
            Ok(ctx.see_other("/queue?state=failed&done=retried"))
        }
        Ok(_) => Ok(ctx.see_other("/queue?state=failed&done=ineligible")),
        Err(e) => Err(PageError::unavailable("Sending a fresh link", &e)),
    }
}

fn sender_list(console: &Console) -> Vec<String> {
    console
        .service
        .candidate_senders()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// `GET /senders`: the chain's senders and the check button.
pub(super) async fn senders(ctx: Ctx) -> Response {
    let console = &ctx.site;
    ctx.render(PageOut {
        status: StatusCode::OK,
        name: "senders.html",
        title: "Sender check",
        notice: None,
        ctx: context! { senders => sender_list(console), probe => console.probe.is_some(), reports => Vec::<Value>::new() },
    })
}

/// `POST /senders/check`: probes every sender, one after the other.
pub(super) async fn senders_check(ctx: Ctx, body: Bytes) -> Answer {
    post_form(&ctx, &body)?;
    let console = &ctx.site;
    let Some(probe) = console.probe.clone() else {
        return Err(PageError::refused(
            StatusCode::NOT_FOUND,
            "No sender probe is configured.",
        ));
    };
    let mut reports = Vec::new();
    for sender in console.service.candidate_senders() {
        let report = probe.probe(&sender).await;
        let steps: Vec<Value> = report
            .steps
            .iter()
            .map(|s| {
                context! {
                    name => s.name,
                    ok => s.ok,
                    reply => s.reply.as_ref().map(ToString::to_string),
                    detail => s.detail,
                }
            })
            .collect();
        reports.push(context! {
            sender => sender.to_string(),
            probe_recipient => report.probe_recipient,
            passed => report.passed(),
            steps => steps,
            error => report.error.as_ref().map(ToString::to_string),
        });
    }
    Ok(ctx.render(PageOut {
        status: StatusCode::OK,
        name: "senders.html",
        title: "Sender check",
        notice: None,
        ctx: context! { senders => sender_list(console), probe => true, reports => reports },
    }))
}

/// `GET /templates`: every (locale, email) and the lint's verdict.
pub(super) async fn templates(ctx: Ctx) -> Response {
    let console = &ctx.site;
    let current = console.service.templates();
    let verdict = console.service.check_templates(&current).0;
    let list: Vec<Value> = current
        .locales()
        .iter()
        .flat_map(|locale| {
            KINDS
                .iter()
                .map(move |k| context! { locale => locale, locale_q => encode(locale), kind => k.as_str() })
        })
        .collect();
    ctx.render(PageOut {
        status: StatusCode::OK,
        name: "templates.html",
        title: "Email templates",
        notice: None,
        ctx: context! {
            templates => list,
            verdict_ok => verdict.is_ok(),
            verdict => verdict.err().map_or_else(|| "every email carries its links".to_owned(), |e| e.to_string()),
            editable => console.template_store.is_some(),
        },
    })
}

fn parse_kind(text: Option<&str>) -> Option<EmailKind> {
    text.and_then(EmailKind::parse)
}

fn variables(kind: EmailKind) -> &'static str {
    match kind {
        EmailKind::ResetCombined => "site_name, accounts (each: username, link, deny_link), expires_minutes",
        EmailKind::UsernameRequired => "site_name, usernames",
        EmailKind::PasswordChanged => "site_name, username, security_link",
        _ => "site_name, username, link, deny_link, expires_minutes",
    }
}

struct EditView<'a> {
    templates: &'a Templates,
    locale: &'a str,
    kind: EmailKind,
    error: Option<String>,
    notice: Option<String>,
    status: StatusCode,
}

async fn edit_page(ctx: &Ctx, view: EditView<'_>) -> Answer {
    let console = &ctx.site;
    let Some(set) = view.templates.locale(view.locale) else {
        return Err(PageError::refused(
            StatusCode::NOT_FOUND,
            "No templates for this locale.",
        ));
    };
    let source = set.get(view.kind).clone();
    let lint = console.service.check_templates(view.templates).0;
    let (preview, render_error) = match console
        .service
        .preview_email(view.templates, view.locale, view.kind)
    {
        Ok(mail) => (
            Some(context! { subject => mail.subject, text => mail.text, html => mail.html }),
            None,
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    let versions: Vec<Value> = match &console.template_store {
        Some(store) => store
            .versions(view.locale, view.kind)
            .await
            .map_err(|e| PageError::unavailable("Reading the template's versions", &e))?
            .iter()
            .map(|v| {
                context! { version => v.version, saved_at => utc(v.saved_at), saved_by => v.saved_by, active => v.active }
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(ctx.render(PageOut {
        status: view.status,
        name: "template_edit.html",
        title: &format!("Template {} ({})", view.kind.as_str(), view.locale),
        notice: view.notice,
        ctx: context! {
            locale => view.locale,
            kind => view.kind.as_str(),
            source => context! { subject => source.subject, text => source.text, html => source.html },
            lint_ok => lint.is_ok(),
            lint => lint.err().map_or_else(|| "every email carries its links".to_owned(), |e| e.to_string()),
            preview => preview,
            render_error => render_error,
            editable => console.template_store.is_some(),
            versions => versions,
            variables => variables(view.kind),
            error => view.error,
        },
    }))
}

/// `GET /templates/edit?locale=&kind=`: preview, lint verdict, editor.
pub(super) async fn template_edit(ctx: Ctx, RawQuery(raw): RawQuery) -> Answer {
    let params = query(raw.as_deref());
    let (Some(locale), Some(kind)) = (params.get("locale"), parse_kind(params.get("kind"))) else {
        return Err(PageError::refused(
            StatusCode::BAD_REQUEST,
            "Name a `locale` and a `kind` (reset, reset_combined, username_required, password_changed).",
        ));
    };
    let notice = params
        .get("saved")
        .map(|v| format!("Saved as version {v}; the next emails use it."))
        .or_else(|| {
            params
                .get("restored")
                .map(|v| format!("Version {v} restored; the next emails use it."))
        });
    let templates = ctx.site.service.templates();
    let view = EditView {
        templates: &templates,
        locale,
        kind,
        error: None,
        notice,
        status: StatusCode::OK,
    };
    edit_page(&ctx, view).await
}

/// A template POST's locale and email, and the store to write to.
type Target<'f> = (&'f str, EmailKind, Arc<dyn resetkit::template::TemplateStore>);

/// The locale and kind of a template POST, and the store.
fn template_target<'f>(console: &Console, form: &'f Form) -> Result<Target<'f>, PageError> {
    let Some(store) = console.template_store.clone() else {
        return Err(PageError::refused(
            StatusCode::NOT_FOUND,
            "Template editing is not enabled (no template store).",
        ));
    };
    let locale = field(form, "locale")?;
    let kind = parse_kind(form.get("kind")).ok_or_else(|| {
        PageError::refused(
            StatusCode::BAD_REQUEST,
            "`kind` must be reset, reset_combined, username_required or password_changed.",
        )
    })?;
    if console.service.templates().locale(locale).is_none() {
        return Err(PageError::refused(
            StatusCode::NOT_FOUND,
            "No templates for this locale.",
        ));
    }
    Ok((locale, kind, store))
}

/// `POST /templates/save`: lint, then store as a new version and use it.
pub(super) async fn template_save(ctx: Ctx, body: Bytes) -> Answer {
    let form = post_form(&ctx, &body)?;
    let console = &ctx.site;
    let (locale, kind, store) = template_target(console, &form)?;
    let mut parts = Vec::with_capacity(3);
    for name in ["subject", "text", "html"] {
        let value = field(&form, name)?;
        if value.len() > MAX_TEMPLATE_PART {
            return Err(PageError::refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The {name} is longer than {MAX_TEMPLATE_PART} bytes."),
            ));
        }
        // Browsers send CRLF line ends from a textarea.
        parts.push(value.replace("\r\n", "\n"));
    }
    let source = TemplateSource::new(parts[0].clone(), parts[1].clone(), parts[2].clone());
    let mut edited = console.service.templates();
    edited.locale_mut(locale).set(kind, source.clone());
    if let Err(lint) = console.service.check_templates(&edited).0 {
        // Refused: nothing stored, the service keeps its templates; the
        // operator's text stays in the form with the reason.
        let view = EditView {
            templates: &edited,
            locale,
            kind,
            error: Some(lint.to_string()),
            notice: None,
            status: StatusCode::UNPROCESSABLE_ENTITY,
        };
        return edit_page(&ctx, view).await;
    }
    let now = std::time::SystemTime::now();
    let version = store
        .save(locale, kind, &source, ctx.operator(), now)
        .await
        .map_err(|e| PageError::unavailable("Saving the template", &e))?;
    console
        .service
        .replace_templates(edited)
        .map_err(|e| PageError::refused(StatusCode::CONFLICT, e.to_string()))?;
    Ok(ctx.see_other(&format!(
        "/templates/edit?locale={}&kind={}&saved={version}",
        encode(locale),
        kind.as_str()
    )))
}

/// `POST /templates/restore` (`version`): lint, then make it active.
pub(super) async fn template_restore(ctx: Ctx, body: Bytes) -> Answer {
    let form = post_form(&ctx, &body)?;
    let console = &ctx.site;
    let (locale, kind, store) = template_target(console, &form)?;
    let Some(version) = form.get("version").and_then(|v| v.parse::<u32>().ok()) else {
        return Err(PageError::refused(
            StatusCode::BAD_REQUEST,
            "`version` must be a version number.",
        ));
    };
    let found = store
        .versions(locale, kind)
        .await
        .map_err(|e| PageError::unavailable("Reading the template's versions", &e))?
        .into_iter()
        .find(|v| v.version == version)
        .ok_or_else(|| PageError::refused(StatusCode::NOT_FOUND, "No such version."))?;
    let mut edited = console.service.templates();
    edited.locale_mut(locale).set(kind, found.source);
    if let Err(lint) = console.service.check_templates(&edited).0 {
        let view = EditView {
            templates: &console.service.templates(),
            locale,
            kind,
            error: Some(format!("version {version} fails the link lint: {lint}")),
            notice: None,
            status: StatusCode::UNPROCESSABLE_ENTITY,
        };
        return edit_page(&ctx, view).await;
    }
    let activated = store
        .activate(locale, kind, version)
        .await
        .map_err(|e| PageError::unavailable("Restoring the template", &e))?;
    if !activated {
        return Err(PageError::refused(StatusCode::NOT_FOUND, "No such version."));
    }
    console
        .service
        .replace_templates(edited)
        .map_err(|e| PageError::refused(StatusCode::CONFLICT, e.to_string()))?;
    Ok(ctx.see_other(&format!(
        "/templates/edit?locale={}&kind={}&restored={version}",
        encode(locale),
        kind.as_str()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_templates_compile() {
        let env = environment().unwrap();
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }
}
