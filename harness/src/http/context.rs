//! What an HTTP scenario works with: [`HttpCtx`] (virtual users, the fake
//! SMTP server's mail, requests for reset links, the accounts and their
//! budgets under the declared rate limits) and the [`RunState`] shared by
//! the scenarios of one run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use url::Url;

use super::driver::{Driver, DriverError, Submission, User};
use super::exchange::{Exchange, ExchangeLog, Visit};
use super::target_file::{FormStep, HttpTarget, TestAccount};
use crate::fake_smtp::{CapturedMessage, FakeSmtpServer};
use crate::runner::Problem;
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

mod mail;

pub use mail::{THROTTLE_FIX, THROTTLING, first_link, is_reset_mail, reset_links};

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
    figures: Mutex<Vec<crate::scenario::Figure>>,
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
            figures: Mutex::new(Vec::new()),
        }
    }

    /// Adds a note to the evidence (measured figures, what was tried).
    pub fn note(&self, text: impl Into<String>) {
        lock(&self.notes).push(text.into());
    }

    /// Keeps a measurement for the HTML report to draw.
    pub fn figure(&self, figure: crate::scenario::Figure) {
        lock(&self.figures).push(figure);
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
            .map_err(|e| driver_error("loading the forgot-password form", e))?
            .for_step(FormStep::Forgot);
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
            figures: lock(&self.figures).clone(),
            secrets: crate::report::TokenRedactor::secrets_of(mails.iter().map(|m| m.data.as_slice())),
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
