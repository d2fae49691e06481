//! The one run loop ([`run_suite`], [`run_scenario`]) for scenarios of
//! either kind, over a [`Bench`]; and the in-process bench: one fake SMTP
//! server per run, a fresh session on it (its own mail, transcripts and
//! fault rules), clock and service per scenario.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
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
use crate::scenario::{
    Evidence, RunReport, Scenario, ScenarioCtx, ScenarioInfo, ScenarioResult, Severity, Verdict,
};
use crate::target::{BASE_URL, RESET_PATH, Target, TargetConfig, TargetFactory};

pub use crate::scenario::{BoxCheck, Check, Problem, ensure, fail};

/// How an in-process scenario prepares the target: the configuration it
/// changes and whether the target must build with it.
pub struct Prepare {
    /// Adjusts the target configuration before the service is built.
    pub configure: Box<dyn Fn(&mut TargetConfig) + Send + Sync>,
    /// Whether the target must build with that configuration, or refuse it.
    pub build: BuildExpectation,
}

impl Prepare {
    /// A configuration the target must refuse to build with (see
    /// [`BuildExpectation::Refused`]).
    pub fn refused(configure: impl Fn(&mut TargetConfig) + Send + Sync + 'static) -> Self {
        Prepare {
            configure: Box::new(configure),
            build: BuildExpectation::Refused,
        }
    }
}

impl<F: Fn(&mut TargetConfig) + Send + Sync + 'static> From<F> for Prepare {
    fn from(configure: F) -> Self {
        Prepare {
            configure: Box::new(configure),
            build: BuildExpectation::Succeeds,
        }
    }
}

impl ScenarioCtx for Ctx {
    type Setup = Prepare;
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

/// Where scenarios of one kind run: what the whole run shares (the fake
/// SMTP server, the target), how each scenario gets its context, and what
/// is kept as evidence. [`run_suite`] and [`run_scenario`] are the one run
/// loop for both kinds.
#[async_trait]
pub trait Bench: Sync {
    /// The scenarios' context.
    type Ctx: ScenarioCtx;

    /// Longest a scenario's body may run (not counting [`Bench::not_counted`]).
    const TIMEOUT: Duration;

    /// What is tested, for the report.
    fn describe(&self) -> String;

    /// This scenario's context, or its outcome and evidence when its body
    /// must not run (does not apply, the target refused to build, ...).
    async fn prepare(&self, scenario: &Scenario<Self::Ctx>) -> Result<Self::Ctx, (Check, Evidence)>;

    /// The scenario's outcome given its body's (the in-process target's
    /// build expectation).
    fn conclude(&self, _setup: &<Self::Ctx as ScenarioCtx>::Setup, outcome: Check) -> Check {
        outcome
    }

    /// Time the body spent that its time limit does not count (HTTP: waits
    /// for declared rate-limit windows).
    fn not_counted(&self, _ctx: &Self::Ctx) -> Duration {
        Duration::ZERO
    }

    /// What was seen during the scenario.
    async fn evidence(&self, ctx: &Self::Ctx) -> Evidence;
}

/// Runs `scenarios` on `bench` one after another, telling `progress`.
pub async fn run_suite<B: Bench>(
    bench: &B,
    scenarios: &[Scenario<B::Ctx>],
    strict: bool,
    progress: &mut dyn Progress,
) -> RunReport {
    let started = Instant::now();
    let mut results = Vec::with_capacity(scenarios.len());
    for (index, scenario) in scenarios.iter().enumerate() {
        progress.started(index, scenarios.len(), &scenario.info);
        let result = run_scenario(bench, scenario).await;
        progress.finished(&result);
        results.push(result);
    }
    RunReport {
        target: bench.describe(),
        results,
        duration: started.elapsed(),
        strict,
    }
}

/// Runs one scenario on `bench`: prepares its context, runs its body under
/// the time limit, concludes, collects the evidence.
pub async fn run_scenario<B: Bench>(bench: &B, scenario: &Scenario<B::Ctx>) -> ScenarioResult {
    let started = Instant::now();
    let ctx = match bench.prepare(scenario).await {
        Ok(ctx) => ctx,
        Err((outcome, evidence)) => return scenario_result(&scenario.info, outcome, evidence, started),
    };
    let body_started = Instant::now();
    let run = (scenario.run)(&ctx);
    tokio::pin!(run);
    let outcome = loop {
        let not_counted = bench.not_counted(&ctx);
        let left = (B::TIMEOUT + not_counted).saturating_sub(body_started.elapsed());
        if left.is_zero() {
            let besides = if not_counted.is_zero() {
                String::new()
            } else {
                format!(
                    " (besides {:.1} s waiting for rate-limit windows)",
                    not_counted.as_secs_f64()
                )
            };
            break Err(Problem::Error(format!(
                "the scenario did not finish within {} s{besides}",
                B::TIMEOUT.as_secs()
            )));
        }
        tokio::select! {
            outcome = &mut run => break outcome,
            () = tokio::time::sleep(left) => {}
        }
    };
    let outcome = bench.conclude(&scenario.setup, outcome);
    let evidence = bench.evidence(&ctx).await;
    scenario_result(&scenario.info, outcome, evidence, started)
}

/// Runs `scenarios` against `factory` one after another on one fake SMTP
/// server (a session of it per scenario), telling `progress`.
pub async fn run(
    factory: &dyn TargetFactory,
    scenarios: &[Scenario<Ctx>],
    strict: bool,
    progress: &mut dyn Progress,
) -> RunReport {
    run_suite(&InProcess::new(factory), scenarios, strict, progress).await
}

/// The in-process bench: a target factory and one fake SMTP server, a
/// session of it per scenario.
pub struct InProcess<'a> {
    factory: &'a dyn TargetFactory,
    server: Result<Arc<FakeSmtpServer>, String>,
}

impl<'a> InProcess<'a> {
    /// Starts the fake SMTP server the scenarios' services send to (a
    /// failure to start is each scenario's harness error).
    pub fn new(factory: &'a dyn TargetFactory) -> Self {
        InProcess {
            factory,
            server: start_server(),
        }
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

#[async_trait]
impl Bench for InProcess<'_> {
    type Ctx = Ctx;

    const TIMEOUT: Duration = Duration::from_secs(30);

    fn describe(&self) -> String {
        self.factory.describe()
    }

    async fn prepare(&self, scenario: &Scenario<Ctx>) -> Result<Ctx, (Check, Evidence)> {
        let server = match &self.server {
            Ok(server) => Arc::clone(server),
            Err(e) => return Err((Err(Problem::Error(e.clone())), Evidence::default())),
        };
        let session = format!("{}{SESSION_FAMILY}", scenario.info.id.to_ascii_lowercase());
        server.begin_session(&session, SESSION_FAMILY);
        let mut config = TargetConfig::new(server.addr());
        config.smtp_hello = Some(session);
        (scenario.setup.configure)(&mut config);
        match (
            self.factory.build(scenario.info.id, &config).await,
            scenario.setup.build,
        ) {
            (Ok(target), _) => Ok(Ctx {
                config,
                server,
                target,
            }),
            (Err(e), BuildExpectation::Refused) => Err((
                Ok(()),
                Evidence {
                    notes: vec![format!("the target refused to build: {e}")],
                    ..Evidence::default()
                },
            )),
            (Err(e), BuildExpectation::Succeeds) => Err((
                Err(Problem::Error(format!("building the target: {e}"))),
                Evidence::default(),
            )),
        }
    }

    fn conclude(&self, setup: &Prepare, outcome: Check) -> Check {
        match (setup.build, outcome) {
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
        }
    }

    async fn evidence(&self, ctx: &Ctx) -> Evidence {
        evidence(ctx).await
    }
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

/// Turns a scenario body's outcome into its result.
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
