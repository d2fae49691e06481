//! What an HTTP scenario works with: [`HttpCtx`] (virtual users, the fake
//! SMTP server's mail, requests for reset links, the accounts and their
//! budgets under the declared rate limits) and the [`RunState`] shared by
//! the scenarios of one run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use url::Url;

use super::driver::{Driver, DriverError, Submission, User};
use super::exchange::{Exchange, ExchangeLog, Visit};
use super::target_file::{HttpTarget, TestAccount};
use crate::fake_smtp::{CapturedMessage, FakeSmtpServer};
use crate::inspect::{ParsedMail, html_links, text_links};
use crate::runner::{Problem, fail};
use crate::scenario::Evidence;

/// What the whole run remembers across scenarios.
#[derive(Debug)]
pub struct RunState {
    nonce: String,
    counter: AtomicUsize,
    client_requests: AtomicU32,
    account_requests: Mutex<HashMap<String, u32>>,
    passwords: Mutex<HashMap<String, String>>,
    sample_mail: Mutex<Option<(CapturedMessage, String)>>,
    reset_chain: Mutex<Option<Vec<Exchange>>>,
    tokens: Mutex<Vec<String>>,
    link_mails: Mutex<HashMap<String, u32>>,
    exhausted: Mutex<Vec<String>>,
}

impl Default for RunState {
    fn default() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        RunState {
            nonce: format!("{:x}", (nanos as u64) & 0xff_ffff_ffff),
            counter: AtomicUsize::new(0),
            client_requests: AtomicU32::new(0),
            account_requests: Mutex::new(HashMap::new()),
            passwords: Mutex::new(HashMap::new()),
            sample_mail: Mutex::new(None),
            reset_chain: Mutex::new(None),
            tokens: Mutex::new(Vec::new()),
            link_mails: Mutex::new(HashMap::new()),
            exhausted: Mutex::new(Vec::new()),
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How an attempt to set a new password through a link ended.
#[derive(Debug, Clone)]
pub enum Completion {
    /// The target's `set_password.success` was recognised.
    Completed(Box<Visit>),
    /// The link was refused: `link.invalid` or `set_password.failure` recognised.
    Refused(String),
    /// Neither success nor a recognised refusal (e.g. no form behind the link).
    Unrecognised(String),
}

impl Completion {
    /// Whether the password was set.
    pub fn is_completed(&self) -> bool {
        matches!(self, Completion::Completed(_))
    }

    /// A short description for reports.
    pub fn describe(&self) -> String {
        match self {
            Completion::Completed(visit) => format!("completed: {}", visit.summary()),
            Completion::Refused(why) => format!("refused: {why}"),
            Completion::Unrecognised(why) => format!("not completed (unrecognised answer): {why}"),
        }
    }
}

/// A reset email and the link found in it.
#[derive(Debug, Clone)]
pub struct LinkMail {
    /// The message.
    pub message: CapturedMessage,
    /// The first reset link with a token.
    pub link: Url,
}

/// What a scenario body works with.
pub struct HttpCtx {
    /// The target.
    pub target: Arc<HttpTarget>,
    /// The fake SMTP server the app sends to.
    pub server: Arc<FakeSmtpServer>,
    /// Virtual users for this scenario.
    pub driver: Driver,
    state: Arc<RunState>,
    mail_mark: usize,
    notes: Mutex<Vec<String>>,
}

impl HttpCtx {
    /// A context for one scenario.
    pub fn new(target: Arc<HttpTarget>, server: Arc<FakeSmtpServer>, state: Arc<RunState>) -> Self {
        let mail_mark = server.messages().len();
        HttpCtx {
            driver: Driver::new(target.clone(), ExchangeLog::default()),
            target,
            server,
            state,
            mail_mark,
            notes: Mutex::new(Vec::new()),
        }
    }

    /// Adds a note to the evidence (measured figures, what was tried).
    pub fn note(&self, text: impl Into<String>) {
        lock(&self.notes).push(text.into());
    }

    /// Notes, visibly even when the check passes, that signing in was not
    /// checked because the target file describes no sign-in page.
    pub fn not_checked(&self, what: &str) {
        self.note(format!(
            "{} {what}: no sign-in page described ([login] in the target file)",
            crate::report::NOT_CHECKED
        ));
    }

    /// A new virtual user.
    pub fn user(&self, label: &str) -> Result<User, Problem> {
        self.driver.user(label).map_err(|e| Problem::Error(e.to_string()))
    }

    /// A fresh password the app's policy should accept (long, no words of
    /// the account, different each time).
    pub fn new_password(&self) -> String {
        let n = self.state.counter.fetch_add(1, Ordering::Relaxed);
        format!("quiet lantern harbour {} {n}", self.state.nonce)
    }

    /// A string unique in this run (`<run nonce>-<counter>`).
    pub fn unique(&self) -> String {
        let n = self.state.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.state.nonce)
    }

    /// A username no account has (different each call).
    pub fn unknown_username(&self) -> String {
        format!("nobody{}", self.unique().replace('-', ""))
    }

    /// Something no account answers to, of a kind the form takes: an
    /// address when it takes addresses, else a username.
    pub fn unknown_identifier(&self) -> String {
        if self.target.forgot.identifier_kind.takes_email() {
            self.unknown_email()
        } else {
            self.unknown_username()
        }
    }

    /// What to type in the forgot form for `account`: its identifier.
    pub fn typed(&self, account: &TestAccount) -> String {
        account.identifier.clone()
    }

    /// The reset tokens seen in this run's emails, oldest first.
    pub fn tokens_seen(&self) -> Vec<String> {
        lock(&self.state.tokens).clone()
    }

    /// An email address no account has (different each call).
    pub fn unknown_email(&self) -> String {
        let n = self.state.counter.fetch_add(1, Ordering::Relaxed);
        let domain = self
            .target
            .accounts
            .first()
            .and_then(|a| a.email.rsplit_once('@'))
            .map_or("example.test", |(_, d)| d);
        format!("nobody-{}-{n}@{domain}", self.state.nonce)
    }

    /// The password the harness last set for `identifier` in this run, or
    /// the one the target file lists.
    pub fn current_password(&self, account: &TestAccount) -> Option<String> {
        use secrecy::ExposeSecret as _;
        lock(&self.state.passwords)
            .get(account.key())
            .cloned()
            .or_else(|| account.password.as_ref().map(|p| p.expose_secret().to_owned()))
    }

    /// Remembers the password the harness set.
    pub fn remember_password(&self, account: &TestAccount, password: &str) {
        lock(&self.state.passwords).insert(account.key().to_owned(), password.to_owned());
    }

    /// A reset email captured earlier in the run, and the stored address
    /// it was requested for.
    pub fn sample_mail(&self) -> Option<(CapturedMessage, String)> {
        lock(&self.state.sample_mail).clone()
    }

    /// Keeps a reset email (requested for `address`) for later scenarios.
    pub fn keep_sample_mail(&self, message: &CapturedMessage, address: &str) {
        lock(&self.state.sample_mail).get_or_insert_with(|| (message.clone(), address.to_owned()));
    }

    /// The enabled, unshared account asked least so far that can still get
    /// `mails` emails within the declared per-account limit.
    pub fn plain_account(&self, mails: u32) -> Result<TestAccount, Problem> {
        let all = self.target.plain_accounts();
        if all.is_empty() {
            return Err(Problem::Skip(
                "the target file lists no enabled account with an address of its own ([[accounts]])".into(),
            ));
        }
        let exhausted = lock(&self.state.exhausted).clone();
        let accounts: Vec<&TestAccount> = all
            .iter()
            .copied()
            .filter(|a| !exhausted.iter().any(|e| e == a.key()))
            .collect();
        let sent = lock(&self.state.account_requests);
        let least = accounts
            .iter()
            .min_by_key(|a| sent.get(a.key()).copied().unwrap_or(0))
            .ok_or_else(|| {
                Problem::Error(format!(
                    "every listed account stopped getting reset emails in this run ({}): the app is \
                     probably throttling. {THROTTLE_FIX}",
                    exhausted.join(", ")
                ))
            })?;
        let used = sent.get(least.key()).copied().unwrap_or(0);
        if let Some(limit) = self.target.limits.per_account
            && used + mails > limit
        {
            return Err(Problem::Error(format!(
                "every listed account has used its reset emails for this window ({used} of limits.per_account = {limit}); \
                 list more [[accounts]] or start the app with higher limits"
            )));
        }
        Ok((*least).clone())
    }

    /// Messages captured since this scenario started.
    pub fn mails_since_start(&self) -> Vec<CapturedMessage> {
        self.mails_since(self.mail_mark)
    }

    /// Messages captured after the first `mark` ones.
    pub fn mails_since(&self, mark: usize) -> Vec<CapturedMessage> {
        self.server.messages().into_iter().skip(mark).collect()
    }

    /// How many messages have been captured (a mark for [`mails_since`](Self::mails_since)).
    pub fn mail_mark(&self) -> usize {
        self.server.messages().len()
    }

    /// Opens the forgot-password form as `user` and submits `identifier`
    /// (with `extra` changes); counts the request against the limits.
    pub async fn forgot(&self, user: &User, identifier: &str, extra: Submission) -> Result<Visit, Problem> {
        let submission = Submission::new()
            .set(self.target.forgot.identifier_field.clone(), identifier)
            .merge(extra);
        self.count_request(identifier);
        self.forgot_raw(user, &submission).await
    }

    /// Opens the forgot-password form as `user` and submits it with exactly
    /// the changes of `submission` (nothing is counted).
    pub async fn forgot_raw(&self, user: &User, submission: &Submission) -> Result<Visit, Problem> {
        let forgot = &self.target.forgot;
        let page = user
            .load_form(&self.target.url(&forgot.page), &forgot.identifier_field)
            .await
            .map_err(|e| driver_error("loading the forgot-password form", e))?;
        user.submit(&page, forgot.action.as_deref(), submission)
            .await
            .map_err(|e| driver_error("submitting the forgot-password form", e))
    }

    /// Reset requests the harness sent for `account` in this run.
    pub fn requests_for(&self, account: &TestAccount) -> u32 {
        lock(&self.state.account_requests)
            .get(account.key())
            .copied()
            .unwrap_or(0)
    }

    /// Counts a reset request for the limits (by identifier or address).
    pub fn count_request(&self, identifier: &str) {
        if self.target.client.address_header.is_none() {
            self.state.client_requests.fetch_add(1, Ordering::Relaxed);
        }
        let mut sent = lock(&self.state.account_requests);
        for account in self
            .target
            .accounts
            .iter()
            .filter(|a| a.identifier == identifier || a.email.eq_ignore_ascii_case(identifier))
        {
            *sent.entry(account.key().to_owned()).or_insert(0) += 1;
        }
    }

    /// Marks the accounts at `address` as no longer getting mail in this
    /// run (the app throttles them), so later checks use others.
    pub fn mark_exhausted(&self, address: &str) {
        let mut exhausted = lock(&self.state.exhausted);
        for account in self
            .target
            .accounts
            .iter()
            .filter(|a| a.email.eq_ignore_ascii_case(address))
        {
            if !exhausted.iter().any(|e| e == account.key()) {
                exhausted.push(account.key().to_owned());
            }
        }
    }

    /// Requests a fresh link for the least-used account, moving on to the
    /// next account when the app stopped mailing one (throttling).
    pub async fn fresh_link(&self, mails: u32) -> Result<(TestAccount, LinkMail), Problem> {
        let mut tried = Vec::new();
        loop {
            let account = match self.plain_account(mails) {
                Ok(account) => account,
                Err(e) if tried.is_empty() => return Err(e),
                Err(_) => {
                    return Err(Problem::Error(format!("cannot check: {}", tried.join("; "))));
                }
            };
            match self.request_link(&account).await {
                Ok(mail) => {
                    if !tried.is_empty() {
                        self.note(format!("Moved on to `{}`: {}", account.key(), tried.join("; ")));
                    }
                    return Ok((account, mail));
                }
                Err(Problem::Error(why)) if why.contains(THROTTLING) => {
                    self.mark_exhausted(&account.email);
                    tried.push(why);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Requests a reset for `account` as a new user, checks the answer is
    /// "accepted", and waits for the email to its stored address.
    pub async fn request_link(&self, account: &TestAccount) -> Result<LinkMail, Problem> {
        let user = self.user(&format!("{}-requests", account.key()))?;
        let mark = self.mail_mark();
        let visit = self
            .forgot(&user, &self.typed(account), Submission::new())
            .await?;
        self.target.forgot.accepted.check(&visit).map_err(|why| {
            fail(
                format!("the forgot-password form answers {}", self.target.forgot.accepted),
                format!("{why} ({})", visit.summary()),
            )
        })?;
        self.link_mail(mark, &account.email, false).await
    }

    /// Waits for a new email (after `mark`) to `address` with a reset
    /// link: `Ok(None)` when no email to it arrived at all, a failure when
    /// emails arrived without such a link.
    pub async fn wait_link_mail(&self, mark: usize, address: &str) -> Result<Option<LinkMail>, Problem> {
        let wait = self.target.checks.mail_wait();
        let found = self
            .wait_mail_for(mark, wait, |m| {
                m.has_recipient(address) && first_link(&self.target, m).is_some()
            })
            .await;
        if let Some(message) = found {
            let link =
                first_link(&self.target, &message).ok_or_else(|| Problem::Error("link vanished".into()))?;
            if let Some(token) = self.target.link_pattern().token(&link) {
                lock(&self.state.tokens).push(token);
            }
            *lock(&self.state.link_mails)
                .entry(address.to_ascii_lowercase())
                .or_insert(0) += 1;
            return Ok(Some(LinkMail { message, link }));
        }
        let others = self
            .mails_since(mark)
            .into_iter()
            .filter(|m| m.has_recipient(address))
            .count();
        if others > 0 {
            return Err(fail(
                format!(
                    "the email to {address} carries a reset link like {}",
                    self.target.link_target()
                ),
                format!("{others} email(s) to {address} arrived, none with such a link"),
            ));
        }
        Ok(None)
    }

    /// Waits for a new email (after `mark`) to `address` and returns its
    /// first reset link. When none arrives: a failure if `missing_fails`
    /// and no email at all arrived earlier in the run; else a harness
    /// error that says why (a declared limit is spent, or the app stopped
    /// mailing after some requests: it is probably throttling).
    pub async fn link_mail(
        &self,
        mark: usize,
        address: &str,
        missing_fails: bool,
    ) -> Result<LinkMail, Problem> {
        if let Some(mail) = self.wait_link_mail(mark, address).await? {
            return Ok(mail);
        }
        let wait = self.target.checks.mail_wait();
        let hint = self.limit_hint(address);
        if !hint.is_empty() {
            return Err(Problem::Error(format!(
                "cannot check: no email to {address} within {wait:?}{hint}"
            )));
        }
        if let Some(why) = self.throttling(address) {
            self.mark_exhausted(address);
            return Err(Problem::Error(why));
        }
        let why = format!("no email to {address} within {wait:?}");
        Err(if missing_fails {
            fail(
                format!("a reset email to {address} arrives at the fake SMTP server"),
                why,
            )
        } else {
            Problem::Error(format!("cannot check: {why}"))
        })
    }

    /// Why missing mail to `address` looks like the app's own rate limit:
    /// reset emails arrived earlier in this run (to it or to others), and
    /// now none does. `None` when nothing arrived yet in the run.
    pub fn throttling(&self, address: &str) -> Option<String> {
        let mails = lock(&self.state.link_mails);
        let here = mails.get(&address.to_ascii_lowercase()).copied().unwrap_or(0);
        let total: u32 = mails.values().sum();
        drop(mails);
        if total == 0 {
            return None;
        }
        let requests: u32 = self
            .target
            .accounts
            .iter()
            .filter(|a| a.email.eq_ignore_ascii_case(address))
            .map(|a| self.requests_for(a))
            .sum();
        let client = self.state.client_requests.load(Ordering::Relaxed);
        Some(format!(
            "no reset email to {address} within {:?}, although {here} arrived for it and {total} in all \
             earlier in this run ({requests} requests for it, {client} from this client so far): {THROTTLING}. \
             {THROTTLE_FIX}",
            self.target.checks.mail_wait()
        ))
    }

    /// Waits for the first message after `mark` with `address` among its
    /// recipients (ASCII case ignored).
    pub async fn wait_mail(&self, mark: usize, address: &str) -> Option<CapturedMessage> {
        self.wait_mail_for(mark, self.target.checks.mail_wait(), |m| m.has_recipient(address))
            .await
    }

    /// Waits up to `wait` for the first message after `mark` matching `pred`.
    pub async fn wait_mail_for(
        &self,
        mark: usize,
        wait: Duration,
        pred: impl Fn(&CapturedMessage) -> bool,
    ) -> Option<CapturedMessage> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(m) = self.mails_since(mark).into_iter().find(|m| pred(m)) {
                return Some(m);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Why mail to `address` may be missing because of a declared limit
    /// (empty when no limit is spent).
    pub fn limit_hint(&self, address: &str) -> String {
        let mut hints = Vec::new();
        let sent = lock(&self.state.account_requests);
        if let Some(limit) = self.target.limits.per_account {
            for account in self
                .target
                .accounts
                .iter()
                .filter(|a| a.email.eq_ignore_ascii_case(address))
            {
                let n = sent.get(account.key()).copied().unwrap_or(0);
                if n > limit {
                    hints.push(format!(
                        "{n} requests for `{}` this run, over limits.per_account = {limit}",
                        account.key()
                    ));
                }
            }
        }
        let client = self.state.client_requests.load(Ordering::Relaxed);
        if let Some(limit) = self.target.limits.per_client
            && client > limit
        {
            hints.push(format!(
                "{client} reset requests from one client address this run, over limits.per_client = {limit} \
                 (set client.address_header if the app trusts a proxy header, or raise the app's limit)"
            ));
        }
        if hints.is_empty() {
            String::new()
        } else {
            format!(" — likely rate limited: {}", hints.join("; "))
        }
    }

    /// The exchanges of opening a fresh reset link up to the set-password
    /// page, recorded once per run (requesting a link if none was yet).
    pub async fn reset_page_chain(&self) -> Result<Vec<Exchange>, Problem> {
        if let Some(chain) = lock(&self.state.reset_chain).clone() {
            self.note("The exchanges below were recorded when an earlier scenario opened a fresh link:");
            self.note(exchange_notes(&chain).join("\n"));
            return Ok(chain);
        }
        let account = self.plain_account(1)?;
        let mail = self.request_link(&account).await?;
        let user = self.user("opens-link")?;
        let visit = user
            .open(&mail.link)
            .await
            .map_err(|e| driver_error("opening the reset link", e))?;
        let chain: Vec<Exchange> = visit.exchanges().cloned().collect();
        *lock(&self.state.reset_chain) = Some(chain.clone());
        Ok(chain)
    }

    /// What the scenario saw: notes, HTTP exchanges, emails and the SMTP
    /// transcript since it started.
    pub(crate) fn evidence(&self) -> Evidence {
        let mut notes = lock(&self.notes).clone();
        let exchanges = self.driver.log().snapshot();
        notes.extend(exchange_notes(&exchanges));
        let mails = self.mails_since_start();
        let mut emails: Vec<String> = mails
            .iter()
            .rev()
            .take(MAX_EMAILS)
            .map(CapturedMessage::data_text)
            .collect();
        emails.reverse();
        if mails.len() > MAX_EMAILS {
            notes.push(format!(
                "{} emails captured; the last {MAX_EMAILS} are kept",
                mails.len()
            ));
        }
        let first_connection = mails.first().map(|m| m.connection);
        let transcript: String = match first_connection {
            Some(first) => self
                .server
                .transcripts()
                .iter()
                .filter(|t| t.connection >= first)
                .map(ToString::to_string)
                .collect(),
            None => String::new(),
        };
        Evidence {
            emails,
            transcript: (!transcript.is_empty()).then(|| truncate(transcript, MAX_TRANSCRIPT)),
            events: Vec::new(),
            notes,
        }
    }
}

const MAX_EMAILS: usize = 6;
const MAX_TRANSCRIPT: usize = 20_000;
const EXCHANGES_HEAD: usize = 12;
const EXCHANGES_TAIL: usize = 28;

fn exchange_notes(exchanges: &[Exchange]) -> Vec<String> {
    let mut notes = Vec::new();
    if exchanges.len() <= EXCHANGES_HEAD + EXCHANGES_TAIL {
        notes.extend(exchanges.iter().map(|e| format!("HTTP {e}")));
    } else {
        notes.extend(exchanges[..EXCHANGES_HEAD].iter().map(|e| format!("HTTP {e}")));
        notes.push(format!(
            "HTTP ... {} exchanges omitted ...",
            exchanges.len() - EXCHANGES_HEAD - EXCHANGES_TAIL
        ));
        notes.extend(
            exchanges[exchanges.len() - EXCHANGES_TAIL..]
                .iter()
                .map(|e| format!("HTTP {e}")),
        );
    }
    notes
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let cut = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        text.truncate(cut);
        text.push_str("\n[transcript truncated]");
    }
    text
}

/// A driver error while doing `what`, as a harness error.
pub fn driver_error(what: &str, e: DriverError) -> Problem {
    Problem::Error(format!("{what}: {e}"))
}

/// Words every "probably throttling" message carries.
pub const THROTTLING: &str =
    "the app is probably throttling (its own rate limit), not breaking a requirement";

/// How to change the target file when the app throttles.
pub const THROTTLE_FIX: &str = "Fix the target file: list more [[accounts]] so the checks spread their \
     requests, and declare the app's [limits] (per_account, per_client) so the harness plans around \
     them; or restart the app so a previous run's requests no longer count.";

/// Whether `message` carries a reset link (the target's shape, on any
/// host): a reset email, not a notice.
pub fn is_reset_mail(target: &HttpTarget, message: &CapturedMessage) -> bool {
    !reset_links(target, message).is_empty()
}

/// The first reset link in `message` (text part first).
pub fn first_link(target: &HttpTarget, message: &CapturedMessage) -> Option<Url> {
    reset_links(target, message).into_iter().next()
}

/// The distinct absolute reset links of `message` (the target's shape, on
/// any host), text part first.
pub fn reset_links(target: &HttpTarget, message: &CapturedMessage) -> Vec<Url> {
    let Ok(parsed) = ParsedMail::parse(&message.data) else {
        return Vec::new();
    };
    let pattern = target.link_pattern();
    let mut written = parsed.text.as_deref().map(text_links).unwrap_or_default();
    written.extend(parsed.html.as_deref().map(html_links).unwrap_or_default());
    let mut links: Vec<Url> = Vec::new();
    for url in written.iter().filter_map(|l| Url::parse(l).ok()) {
        if pattern.token(&url).is_some() && !links.contains(&url) {
            links.push(url);
        }
    }
    links
}
