//! What an HTTP scenario works with: [`HttpCtx`] (virtual users, the fake
//! SMTP server's mail, requests for reset links, the accounts and their
//! budgets under the declared rate limits) and the [`RunState`] shared by
//! the scenarios of one run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use url::Url;

use super::api::IdentifierShape;
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
    /// When each request was sent, per account key, for declared windows.
    account_times: Mutex<HashMap<String, Vec<Instant>>>,
    /// When each forgot request of the shared client address was sent.
    client_times: Mutex<Vec<Instant>>,
    /// When each set-password submit was sent.
    submit_times: Mutex<Vec<Instant>>,
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
            account_times: Mutex::new(HashMap::new()),
            client_times: Mutex::new(Vec::new()),
            submit_times: Mutex::new(Vec::new()),
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
    waited: Mutex<Duration>,
}

impl HttpCtx {
    /// A context for one scenario.
    pub fn new(target: Arc<HttpTarget>, server: Arc<FakeSmtpServer>, state: Arc<RunState>) -> Self {
        let mail_mark = server.messages().len();
        let ctx = HttpCtx {
            driver: Driver::new(target.clone(), ExchangeLog::default()),
            target,
            server,
            state,
            mail_mark,
            notes: Mutex::new(Vec::new()),
            figures: Mutex::new(Vec::new()),
            waited: Mutex::new(Duration::ZERO),
        };
        if ctx.target.is_api() {
            ctx.note(ctx.variant());
        }
        ctx
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
    /// (with `extra` changes); counts the request against the limits, and
    /// first waits for the declared per-client window to have room.
    pub async fn forgot(&self, user: &User, identifier: &str, extra: Submission) -> Result<Visit, Problem> {
        self.client_room(1).await?;
        self.forgot_unplanned(user, identifier, extra).await
    }

    /// [`forgot`](Self::forgot) without waiting for the per-client window:
    /// for requests whose answer is valid throttled or not (timing samples).
    pub async fn forgot_unplanned(
        &self,
        user: &User,
        identifier: &str,
        extra: Submission,
    ) -> Result<Visit, Problem> {
        if self.target.forgot_api().is_some() {
            self.count_request(identifier);
            return self
                .forgot_shaped(user, identifier, IdentifierShape::Single, None, extra.headers())
                .await;
        }
        let submission = Submission::new()
            .set(self.target.forgot.identifier_field.clone(), identifier)
            .merge(extra);
        self.count_request(identifier);
        self.forgot_raw(user, &submission).await
    }

    /// Sends the forgot step's API call as `user` with `identifier` shaped
    /// by `shape` (`second`: the other value of a repeated or list-valued
    /// identifier) and `headers` (nothing is counted). A form target
    /// sends the form with the identifier field set, repeated, or as a
    /// `field[]` list.
    pub async fn forgot_shaped(
        &self,
        user: &User,
        identifier: &str,
        shape: IdentifierShape,
        second: Option<&str>,
        headers: &[(String, String)],
    ) -> Result<Visit, Problem> {
        let Some(call) = self.target.forgot_api() else {
            let field = self.target.forgot.identifier_field.clone();
            let other = second.unwrap_or_default();
            let submission = match shape {
                IdentifierShape::Single => Submission::new().set(field, identifier),
                IdentifierShape::Repeated => {
                    Submission::new().set(field.clone(), identifier).set(field, other)
                }
                IdentifierShape::List => Submission::new()
                    .remove(field.clone())
                    .set(format!("{field}[]"), identifier)
                    .set(format!("{field}[]"), other),
            };
            let submission = headers
                .iter()
                .fold(submission, |s, (n, v)| s.header(n.clone(), v.clone()));
            return self.forgot_raw(user, &submission).await;
        };
        let vars = [("identifier".to_owned(), identifier.to_owned())];
        user.call(&call, FormStep::Forgot, &vars, shape, second, headers)
            .await
            .map_err(|e| {
                driver_error(
                    &format!("calling the forgot API ({} {})", call.method, call.url),
                    e,
                )
            })
    }

    /// A line for evidence saying what kind of target this is: forms, or
    /// which API calls (and where the link's page is served).
    pub fn variant(&self) -> String {
        let t = &self.target;
        let step = |name: &str, call: Option<crate::http::target_file::ApiCall>| match call {
            Some(c) => format!("{name}: {} {} ({:?} body)", c.method, c.url, c.encoding),
            None => format!("{name}: HTML form"),
        };
        let mut parts = vec![
            step("forgot", t.forgot_api()),
            step("set-password", t.set_password_api()),
        ];
        if t.login.is_some() {
            parts.push(step("sign-in", t.login_api()));
        }
        let page = match (t.link.page, &t.link.front_end_url) {
            (crate::http::target_file::LinkPage::App, _) => "the link's page is served by the app".to_owned(),
            (_, Some(url)) => format!("the link's page is served by a separate front end, loaded from {url}"),
            (_, None) => {
                "the link's page is served by a separate front end the harness does not load".to_owned()
            }
        };
        format!("Variant: {}; {page}.", parts.join("; "))
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

    /// Reset requests the harness sent for `account` that still count
    /// against its limit: in the declared window (`limits.window_secs`),
    /// else in the whole run.
    pub fn requests_for(&self, account: &TestAccount) -> u32 {
        match self.target.limits.window() {
            Some(window) => in_window(
                lock(&self.state.account_times)
                    .get(account.key())
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                window,
            ),
            None => lock(&self.state.account_requests)
                .get(account.key())
                .copied()
                .unwrap_or(0),
        }
    }

    /// [`requests_for`](Self::requests_for) the account(s) `typed` names
    /// (the most used of them).
    pub fn requests_for_identifier(&self, typed: &str) -> u32 {
        self.target
            .accounts
            .iter()
            .filter(|a| a.identifier == typed || a.email.eq_ignore_ascii_case(typed))
            .map(|a| self.requests_for(a))
            .max()
            .unwrap_or(0)
    }

    /// Forgot requests from the shared client address that still count
    /// against `limits.per_client` (in the window, else in the run).
    pub fn client_requests(&self) -> u32 {
        match self.target.limits.window() {
            Some(window) => in_window(&lock(&self.state.client_times), window),
            None => self.state.client_requests.load(Ordering::Relaxed),
        }
    }

    /// Counts a reset request for the limits (by identifier or address).
    pub fn count_request(&self, identifier: &str) {
        let now = Instant::now();
        if self.target.client.address_header.is_none() {
            self.state.client_requests.fetch_add(1, Ordering::Relaxed);
            lock(&self.state.client_times).push(now);
        }
        let mut sent = lock(&self.state.account_requests);
        let mut times = lock(&self.state.account_times);
        for account in self
            .target
            .accounts
            .iter()
            .filter(|a| a.identifier == identifier || a.email.eq_ignore_ascii_case(identifier))
        {
            *sent.entry(account.key().to_owned()).or_insert(0) += 1;
            times.entry(account.key().to_owned()).or_default().push(now);
        }
    }

    /// Time this scenario spent waiting for declared windows to pass (the
    /// scenario's time limit is extended by it).
    pub fn waited(&self) -> Duration {
        *lock(&self.waited)
    }

    /// How long until `need` more requests fit under `limit`, given the
    /// times of the requests sent so far in the declared window; `None`
    /// when they fit now.
    fn room_in(&self, times: &[Instant], limit: u32, need: u32) -> Option<Duration> {
        let window = self.target.limits.window()?;
        let now = Instant::now();
        let mut live: Vec<Instant> = times
            .iter()
            .copied()
            .filter(|t| now.duration_since(*t) < window + WINDOW_MARGIN)
            .collect();
        live.sort();
        let used = u32::try_from(live.len()).unwrap_or(u32::MAX);
        if used + need <= limit {
            return None;
        }
        // The oldest `used + need - limit` requests must leave the window.
        let must_expire = usize::try_from(used + need - limit).unwrap_or(usize::MAX);
        let last = live.get(must_expire.saturating_sub(1)).copied().unwrap_or(now);
        Some((last + window + WINDOW_MARGIN).saturating_duration_since(now))
    }

    /// Waits `wait` for a declared window to pass, saying so (a note in the
    /// evidence, a progress line on standard error), or a harness error
    /// when that is longer than `limits.max_wait_secs`.
    pub async fn wait_for_window(&self, wait: Duration, why: &str) -> Result<(), Problem> {
        let limits = &self.target.limits;
        if wait < Duration::from_millis(20) {
            tokio::time::sleep(wait).await;
            return Ok(());
        }
        if wait > limits.max_wait() {
            return Err(Problem::Error(format!(
                "{why}: the window (limits.window_secs = {}) has room again in {:.1} s, longer than \
                 limits.max_wait_secs = {}; list more [[accounts]], raise max_wait_secs, or start the app with \
                 higher limits",
                limits.window_secs.unwrap_or_default(),
                wait.as_secs_f64(),
                limits.max_wait_secs
            )));
        }
        let line = format!(
            "waiting {:.1} s for the rate-limit window to pass ({why}; limits.window_secs = {})",
            wait.as_secs_f64(),
            limits.window_secs.unwrap_or_default()
        );
        self.note(format!("Waited: {line}."));
        progress_wait(&line, wait).await;
        *lock(&self.waited) += wait;
        Ok(())
    }

    /// Waits, when `limits.per_client` and a window are declared, until
    /// `need` more forgot requests from this client fit in the window.
    pub async fn client_room(&self, need: u32) -> Result<(), Problem> {
        let (Some(limit), None) = (self.target.limits.per_client, &self.target.client.address_header) else {
            return Ok(());
        };
        if need > limit {
            return Ok(());
        }
        let wait = {
            let times = lock(&self.state.client_times);
            self.room_in(&times, limit, need)
        };
        match wait {
            Some(wait) => {
                let why =
                    format!("{need} more request(s) from this client would pass limits.per_client = {limit}");
                self.wait_for_window(wait, &why).await
            }
            None => Ok(()),
        }
    }

    /// Waits, when `limits.set_password` and a window are declared, until
    /// `need` more set-password submits fit, and counts them.
    pub async fn submit_room(&self, need: u32) -> Result<(), Problem> {
        if let Some(limit) = self.target.limits.set_password
            && need <= limit
        {
            let wait = {
                let times = lock(&self.state.submit_times);
                self.room_in(&times, limit, need)
            };
            if let Some(wait) = wait {
                let why =
                    format!("{need} more set-password submit(s) would pass limits.set_password = {limit}");
                self.wait_for_window(wait, &why).await?;
            }
        }
        let now = Instant::now();
        lock(&self.state.submit_times).extend((0..need).map(|_| now));
        Ok(())
    }

    /// The exchanges of opening a fresh reset link up to the set-password
    /// page, recorded once per run (requesting a link if none was yet).
    pub async fn reset_page_chain(&self) -> Result<Vec<Exchange>, Problem> {
        if let Some(chain) = lock(&self.state.reset_chain).clone() {
            self.note("The exchanges below were recorded when an earlier scenario opened a fresh link:");
            self.note(exchange_notes(&chain).join("\n"));
            return Ok(chain);
        }
        let account = self.plain_account(1).await?;
        let mail = self.request_link(&account).await?;
        let user = self.user("opens-link")?;
        let page = self.target.link_page_url(&mail.link).map_err(Problem::Skip)?;
        if page != mail.link {
            self.note(format!(
                "The link's page is served by the front end: {} is loaded from {page} (link.front_end_url).",
                mail.link
            ));
        }
        let visit = user
            .open(&page)
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

/// Added to a declared window before a request is taken to have left it:
/// the app records a request a little after the harness sent it.
const WINDOW_MARGIN: Duration = Duration::from_millis(300);

/// How many of `times` fall in the last `window` (with the margin).
fn in_window(times: &[Instant], window: Duration) -> u32 {
    let now = Instant::now();
    let n = times
        .iter()
        .filter(|t| now.duration_since(**t) < window + WINDOW_MARGIN)
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Sleeps `wait`, showing `line` on standard error: a countdown on a
/// terminal, the line once otherwise.
async fn progress_wait(line: &str, wait: Duration) {
    use std::io::{IsTerminal as _, Write as _};
    let mut err = std::io::stderr();
    if !err.is_terminal() {
        let _ = writeln!(err, "resetkit-harness: {line}");
        tokio::time::sleep(wait).await;
        return;
    }
    let end = Instant::now() + wait;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let _ = write!(err, "\r\x1b[2K  {line}: {:.0} s left", left.as_secs_f64().ceil());
        let _ = err.flush();
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
    }
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}
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
