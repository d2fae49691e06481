//! Runs scenarios against a target: one fake SMTP server per run, a fresh
//! session on it (its own mail, transcripts and fault rules), clock and
//! service per scenario; collects verdicts and evidence.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mail_parser::MessageParser;
use resetkit::account::{Account, AccountId};
use resetkit::event::{Event, EventKind};
use resetkit::token::RejectReason;
use resetkit::{
    CompleteError, Completed, LinkError, LinkInfo, RequestAccepted, RequestContext, ResetService,
};
use secrecy::SecretString;

use crate::fake_smtp::{CapturedMessage, FakeSmtpServer};
use crate::report::Progress;
use crate::scenario::{Evidence, RunReport, ScenarioInfo, ScenarioResult, Severity, Verdict};
use crate::target::{BASE_URL, RESET_PATH, Target, TargetConfig, TargetFactory};

/// Why a scenario did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The requirement is broken.
    Fail {
        /// What the requirement expects.
        expected: String,
        /// What happened.
        actual: String,
    },
    /// Something doubtful that does not break a MUST.
    Warn {
        /// What was expected.
        expected: String,
        /// What happened.
        actual: String,
    },
    /// Not applicable.
    Skip(String),
    /// The harness or environment failed.
    Error(String),
}

/// A scenario body's result.
pub type Check = Result<(), Problem>;

/// A failure.
pub fn fail(expected: impl Into<String>, actual: impl Into<String>) -> Problem {
    Problem::Fail {
        expected: expected.into(),
        actual: actual.into(),
    }
}

/// Fails with `expected` / `actual()` unless `cond` holds.
pub fn ensure(cond: bool, expected: impl Into<String>, actual: impl FnOnce() -> String) -> Check {
    if cond {
        Ok(())
    } else {
        Err(fail(expected, actual()))
    }
}

/// A boxed scenario body.
pub type BoxCheck<'a> = Pin<Box<dyn Future<Output = Check> + Send + 'a>>;

/// One scenario: its description, how it configures the target, its body.
pub struct Scenario {
    /// The description.
    pub info: ScenarioInfo,
    /// Adjusts the target configuration before the service is built.
    pub configure: fn(&mut TargetConfig),
    /// Whether the target must build with that configuration, or refuse it.
    pub build: BuildExpectation,
    /// The checks.
    pub run: for<'a> fn(&'a Ctx) -> BoxCheck<'a>,
}

/// What building the target with the scenario's configuration must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildExpectation {
    /// The target builds and the body runs; a build failure is a harness error.
    Succeeds,
    /// The configuration is unsafe (e.g. a template that hides the link):
    /// the target must refuse to build. If it builds anyway, the scenario
    /// fails and the body runs to collect what the flow then does.
    Refused,
}

/// How long to wait for an email the flow should have sent.
pub const MAIL_WAIT: Duration = Duration::from_secs(3);

/// A password every scenario may use as a valid new password.
pub const GOOD_PASSWORD: &str = "a lantern above the quiet harbour";

/// What a scenario body works with.
pub struct Ctx {
    /// The configuration the service was built with.
    pub config: TargetConfig,
    /// The fake SMTP server the service sends to (shared by the run; this
    /// scenario's session of it).
    pub server: Arc<FakeSmtpServer>,
    /// The service and its stores.
    pub target: Target,
}

/// A captured reset email with the token found in it.
#[derive(Debug, Clone)]
pub struct ResetMail {
    /// The captured message.
    pub message: CapturedMessage,
    /// The token of the (first) reset link in the text part.
    pub token: String,
}

impl Ctx {
    /// The service under test.
    pub fn service(&self) -> &ResetService {
        &self.target.service
    }

    /// Inserts or replaces an account.
    pub async fn seed(&self, account: Account) -> Check {
        self.target
            .accounts
            .upsert(&account)
            .await
            .map_err(|e| Problem::Error(format!("seeding account {}: {e}", account.id)))
    }

    /// Seeds `alice` (`alice@example.test`) and returns her.
    pub async fn alice(&self) -> Result<Account, Problem> {
        let alice = Account::new("acct-alice", "alice", "alice@example.test");
        self.seed(alice.clone()).await?;
        Ok(alice)
    }

    /// Requests a reset; an error is a failure (the input is well-formed).
    pub async fn request(&self, identifier: &str) -> Result<RequestAccepted, Problem> {
        self.request_from(identifier, "192.0.2.10").await
    }

    /// Requests a reset from a client address.
    pub async fn request_from(&self, identifier: &str, client: &str) -> Result<RequestAccepted, Problem> {
        self.service()
            .request(identifier, &RequestContext::from_client(client))
            .await
            .map_err(|e| {
                fail(
                    format!("request({identifier:?}) is accepted"),
                    format!("error: {e}"),
                )
            })
    }

    /// Captured messages whose envelope includes `address`.
    pub fn mails_to(&self, address: &str) -> Vec<CapturedMessage> {
        self.server
            .messages()
            .into_iter()
            .filter(|m| m.has_recipient(address))
            .collect()
    }

    /// Runs the delivery worker once, if the service has one.
    pub async fn deliver_outbox(&self) -> Result<(), Problem> {
        if let Some(worker) = self.service().delivery_worker() {
            worker
                .run_once()
                .await
                .map_err(|e| Problem::Error(format!("delivery worker: {e}")))?;
        }
        Ok(())
    }

    /// The `n`-th (0-based) email to `address`, waiting for it to arrive.
    pub async fn nth_mail_to(&self, address: &str, n: usize) -> Result<CapturedMessage, Problem> {
        self.deliver_outbox().await?;
        let deadline = Instant::now() + MAIL_WAIT;
        loop {
            let mails = self.mails_to(address);
            if let Some(m) = mails.get(n) {
                return Ok(m.clone());
            }
            if Instant::now() >= deadline {
                return Err(fail(
                    format!("email #{} to {address} arrives at the SMTP server", n + 1),
                    format!("{} email(s) to {address} after {MAIL_WAIT:?}", mails.len()),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The newest reset email to `address` and its token.
    pub async fn reset_mail_to(&self, address: &str) -> Result<ResetMail, Problem> {
        self.deliver_outbox().await?;
        let count = self.mails_to(address).len();
        let message = self.nth_mail_to(address, count.saturating_sub(1)).await?;
        let tokens = tokens_in(&message);
        let token = tokens.into_iter().next().ok_or_else(|| {
            fail(
                format!("the email to {address} carries a reset link under {BASE_URL}{RESET_PATH}"),
                "no reset link with a token in the text part",
            )
        })?;
        Ok(ResetMail { message, token })
    }

    /// Completes a reset with the same password twice.
    pub async fn complete(&self, token: &str, password: &str) -> Result<Completed, CompleteError> {
        let pw = SecretString::from(password.to_owned());
        self.service().complete(token, pw.clone(), pw).await
    }

    /// Inspects a link.
    pub async fn inspect(&self, token: &str) -> Result<LinkInfo, LinkError> {
        self.service().inspect(token).await
    }

    /// Whether `password` now signs `account` in.
    pub async fn signs_in(&self, account: &AccountId, password: &str) -> Result<bool, Problem> {
        self.service()
            .verify_password(account, &SecretString::from(password.to_owned()))
            .await
            .map_err(|e| Problem::Error(format!("verify_password: {e}")))
    }

    /// Every event the flow recorded, oldest first.
    pub async fn events(&self) -> Result<Vec<Event>, Problem> {
        self.target
            .events
            .recent(10_000)
            .await
            .map_err(|e| Problem::Error(format!("reading events: {e}")))
    }

    /// The reasons of every `TokenRejected` event, oldest first.
    pub async fn reject_reasons(&self) -> Result<Vec<RejectReason>, Problem> {
        Ok(self
            .events()
            .await?
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::TokenRejected { reason } => Some(reason),
                _ => None,
            })
            .collect())
    }

    /// Expects `complete` to refuse `token` with the public "invalid link"
    /// error and to record `reason`.
    pub async fn expect_rejected(&self, token: &str, reason: RejectReason, what: &str) -> Check {
        let before = self.reject_reasons().await?.len();
        match self.complete(token, GOOD_PASSWORD).await {
            Err(CompleteError::InvalidLink) => {}
            Ok(done) => {
                return Err(fail(
                    format!("{what}: the link is refused"),
                    format!("the password of {} was reset", done.account),
                ));
            }
            Err(other) => {
                return Err(fail(
                    format!("{what}: the public \"invalid or expired link\" error"),
                    format!("error: {other}"),
                ));
            }
        }
        let reasons = self.reject_reasons().await?;
        ensure(
            reasons.get(before) == Some(&reason),
            format!("{what}: a TokenRejected event with reason `{}`", reason.as_str()),
            || {
                format!(
                    "recorded reasons: {:?}",
                    reasons.get(before..).unwrap_or_default()
                )
            },
        )
    }
}

/// Tokens of reset links (the configured reset page) in the text part, in
/// order of appearance.
pub fn tokens_in(message: &CapturedMessage) -> Vec<String> {
    link_tokens(message, RESET_PATH)
}

/// Tokens of links to `path` under [`BASE_URL`] in the text part.
pub fn link_tokens(message: &CapturedMessage, path: &str) -> Vec<String> {
    let Some(parsed) = MessageParser::default().parse(&message.data) else {
        return Vec::new();
    };
    let Some(text) = parsed.body_text(0) else {
        return Vec::new();
    };
    let Ok(base) = url::Url::parse(BASE_URL) else {
        return Vec::new();
    };
    text.split_whitespace()
        .filter_map(|word| url::Url::parse(word).ok())
        .filter(|u| u.origin() == base.origin() && u.path() == path)
        .filter_map(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned())
        })
        .collect()
}

/// Runs `scenarios` against `factory` one after another, telling `progress`.
pub async fn run(
    factory: &dyn TargetFactory,
    scenarios: &[Scenario],
    strict: bool,
    progress: &mut dyn Progress,
) -> RunReport {
    let started = Instant::now();
    let server = start_server();
    let mut results = Vec::with_capacity(scenarios.len());
    for (index, scenario) in scenarios.iter().enumerate() {
        progress.started(index, scenarios.len(), &scenario.info);
        let result = match &server {
            Ok(server) => run_on(factory, scenario, server).await,
            Err(e) => result(
                scenario,
                Err(Problem::Error(e.clone())),
                Evidence::default(),
                Instant::now(),
            ),
        };
        progress.finished(&result);
        results.push(result);
    }
    RunReport {
        target: factory.describe(),
        results,
        duration: started.elapsed(),
        strict,
    }
}

/// The greeting names of scenario sessions end with this.
const SESSION_FAMILY: &str = ".scenario.resetkit-harness.test";

fn start_server() -> Result<Arc<FakeSmtpServer>, String> {
    FakeSmtpServer::builder()
        .name("resetkit-harness")
        .start()
        .map(Arc::new)
        .map_err(|e| format!("starting the fake SMTP server: {e}"))
}

/// Runs one scenario on a fake SMTP server of its own.
pub async fn run_one(factory: &dyn TargetFactory, scenario: &Scenario) -> ScenarioResult {
    match start_server() {
        Ok(server) => run_on(factory, scenario, &server).await,
        Err(e) => result(
            scenario,
            Err(Problem::Error(e)),
            Evidence::default(),
            Instant::now(),
        ),
    }
}

/// Runs one scenario in a new session of a shared fake SMTP server.
pub async fn run_on(
    factory: &dyn TargetFactory,
    scenario: &Scenario,
    server: &Arc<FakeSmtpServer>,
) -> ScenarioResult {
    let started = Instant::now();
    let session = format!("{}{SESSION_FAMILY}", scenario.info.id.to_ascii_lowercase());
    server.begin_session(&session, SESSION_FAMILY);
    let server = Arc::clone(server);
    let mut config = TargetConfig::new(server.addr());
    config.smtp_hello = Some(session);
    (scenario.configure)(&mut config);
    let target = match (factory.build(scenario.info.id, &config).await, scenario.build) {
        (Ok(target), _) => target,
        (Err(e), BuildExpectation::Refused) => {
            let evidence = Evidence {
                notes: vec![format!("the target refused to build: {e}")],
                ..Evidence::default()
            };
            return result(scenario, Ok(()), evidence, started);
        }
        (Err(e), BuildExpectation::Succeeds) => {
            return result(
                scenario,
                Err(Problem::Error(format!("building the target: {e}"))),
                Evidence::default(),
                started,
            );
        }
    };
    let ctx = Ctx {
        config,
        server,
        target,
    };
    let outcome = tokio::time::timeout(Duration::from_secs(30), (scenario.run)(&ctx))
        .await
        .unwrap_or_else(|_| Err(Problem::Error("the scenario did not finish within 30 s".into())));
    let outcome = match (scenario.build, outcome) {
        (BuildExpectation::Succeeds, outcome) => outcome,
        (BuildExpectation::Refused, Err(Problem::Fail { expected, actual })) => Err(fail(
            format!("the target refuses to build with this configuration; {expected}"),
            format!("it was built, and {actual}"),
        )),
        (BuildExpectation::Refused, Ok(())) => Err(fail(
            "the target refuses to build with this configuration",
            "it was built and accepted the configuration",
        )),
        (BuildExpectation::Refused, other) => other,
    };
    let evidence = evidence(&ctx).await;
    result(scenario, outcome, evidence, started)
}

const MAX_EMAILS_IN_EVIDENCE: usize = 6;
const MAX_TRANSCRIPT_CHARS: usize = 20_000;

async fn evidence(ctx: &Ctx) -> Evidence {
    let messages = ctx.server.messages();
    let mut emails: Vec<String> = messages
        .iter()
        .rev()
        .take(MAX_EMAILS_IN_EVIDENCE)
        .map(CapturedMessage::data_text)
        .collect();
    emails.reverse();
    let mut notes = Vec::new();
    if messages.len() > MAX_EMAILS_IN_EVIDENCE {
        notes.push(format!(
            "{} emails captured; the last {MAX_EMAILS_IN_EVIDENCE} are kept",
            messages.len()
        ));
    }
    let mut transcript = ctx.server.transcript_text();
    if transcript.len() > MAX_TRANSCRIPT_CHARS {
        let cut = (0..=MAX_TRANSCRIPT_CHARS)
            .rev()
            .find(|&i| transcript.is_char_boundary(i))
            .unwrap_or(0);
        transcript.truncate(cut);
        transcript.push_str("\n[transcript truncated]");
    }
    let events = match ctx.target.events.recent(500).await {
        Ok(events) => events.iter().map(crate::event_text::line).collect(),
        Err(e) => vec![format!("(events unavailable: {e})")],
    };
    Evidence {
        emails,
        transcript: (!transcript.is_empty()).then_some(transcript),
        events,
        notes,
        figures: Vec::new(),
        secrets: crate::report::TokenRedactor::secrets_of(messages.iter().map(|m| m.data.as_slice())),
    }
}

fn result(scenario: &Scenario, outcome: Check, evidence: Evidence, started: Instant) -> ScenarioResult {
    scenario_result(&scenario.info, outcome, evidence, started)
}

/// Turns a scenario body's outcome into its result (shared by the
/// in-process and HTTP runners).
pub fn scenario_result(
    info: &ScenarioInfo,
    outcome: Check,
    evidence: Evidence,
    started: Instant,
) -> ScenarioResult {
    let (verdict, expected, actual) = match outcome {
        Ok(()) => (Verdict::Pass, None, None),
        // A broken SHOULD or INFO requirement is a warning, not a failure.
        Err(Problem::Fail { expected, actual }) if info.severity != Severity::Must => {
            (Verdict::Warn, Some(expected), Some(actual))
        }
        Err(Problem::Fail { expected, actual }) => (Verdict::Fail, Some(expected), Some(actual)),
        Err(Problem::Warn { expected, actual }) => (Verdict::Warn, Some(expected), Some(actual)),
        Err(Problem::Skip(reason)) => (Verdict::Skipped(reason), None, None),
        Err(Problem::Error(reason)) => (Verdict::Error(reason), None, None),
    };
    ScenarioResult {
        group: info.group(),
        info: info.clone(),
        verdict,
        expected,
        actual,
        evidence,
        duration: started.elapsed(),
    }
}

/// Wraps an `async fn(&Ctx) -> Check` as a scenario body.
#[macro_export]
macro_rules! body {
    ($f:path) => {{
        fn boxed(ctx: &$crate::runner::Ctx) -> $crate::runner::BoxCheck<'_> {
            Box::pin($f(ctx))
        }
        boxed
    }};
}
