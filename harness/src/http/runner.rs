//! The HTTP bench ([`HttpBench`], run by [`crate::runner::run_suite`]):
//! scenarios against a running app whose SMTP points at the harness's fake
//! server, one [`HttpCtx`] per scenario (its own exchange
//! log and mail mark), one [`RunState`] for the whole run (what the app has
//! been asked so far, the passwords the harness set).
//!
//! The app keeps its state between scenarios, so scenarios spread their
//! requests over the listed accounts and keep count against the rate limits
//! the target file declares; an email that does not arrive once a declared
//! limit is spent is a harness error naming the limit, not a failure.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::context::{HttpCtx, RunState};
use super::target_file::HttpTarget;
use crate::fake_smtp::FakeSmtpServer;
use crate::report::Progress;
use crate::runner::{Bench, Check, Problem, run_suite};
use crate::scenario::{Evidence, RunReport, Scenario, ScenarioCtx, ScenarioInfo, ScenarioResult, Verdict};

/// An HTTP scenario.
pub type HttpScenario = Scenario<HttpCtx>;

/// When an HTTP scenario applies to a target: `None` when it does, else
/// why not (the scenario is skipped with that reason).
pub struct Applies(Box<AppliesFn>);

type AppliesFn = dyn Fn(&HttpTarget) -> Option<String> + Send + Sync;

impl Applies {
    /// Why the scenario cannot run against `target` (`None`: it can).
    pub fn reason(&self, target: &HttpTarget) -> Option<String> {
        (self.0)(target)
    }
}

impl<F: Fn(&HttpTarget) -> Option<String> + Send + Sync + 'static> From<F> for Applies {
    fn from(applies: F) -> Self {
        Applies(Box::new(applies))
    }
}

impl ScenarioCtx for HttpCtx {
    type Setup = Applies;
}

/// The HTTP bench: the target, the fake SMTP server it mails, and what the
/// run remembers across scenarios.
pub struct HttpBench {
    target: Arc<HttpTarget>,
    server: Arc<FakeSmtpServer>,
    state: Arc<RunState>,
}

impl HttpBench {
    /// A bench for one run against `target`.
    pub fn new(target: Arc<HttpTarget>, server: Arc<FakeSmtpServer>) -> Self {
        HttpBench {
            target,
            server,
            state: Arc::new(RunState::default()),
        }
    }
}

#[async_trait]
impl Bench for HttpBench {
    type Ctx = HttpCtx;

    const TIMEOUT: Duration = SCENARIO_TIMEOUT;

    fn describe(&self) -> String {
        format!("HTTP target {} ({})", self.target.name, self.target.base_url)
    }

    async fn prepare(&self, scenario: &HttpScenario) -> Result<HttpCtx, (Check, Evidence)> {
        if let Some(reason) = scenario.setup.reason(&self.target) {
            return Err((Err(Problem::Skip(reason)), Evidence::default()));
        }
        Ok(HttpCtx::new(
            self.target.clone(),
            self.server.clone(),
            self.state.clone(),
        ))
    }

    // The time limit does not count waiting for declared rate-limit
    // windows to pass (each wait is bounded by limits.max_wait_secs).
    fn not_counted(&self, ctx: &HttpCtx) -> Duration {
        ctx.waited()
    }

    async fn evidence(&self, ctx: &HttpCtx) -> Evidence {
        ctx.evidence()
    }
}

/// Every scenario result for a run with `--target`: the HTTP scenarios that
/// apply, those that do not (skipped with the reason), and `in_process`
/// scenarios skipped because they need the in-process target.
pub async fn run(
    target: Arc<HttpTarget>,
    server: Arc<FakeSmtpServer>,
    scenarios: &[HttpScenario],
    in_process: &[ScenarioInfo],
    strict: bool,
    progress: &mut dyn Progress,
) -> RunReport {
    let mut report = run_suite(&HttpBench::new(target, server), scenarios, strict, progress).await;
    // In-process scenarios are listed in the report but not shown one by
    // one: the caller prints one summary line (or each, when verbose).
    report
        .results
        .extend(in_process.iter().map(|info| skipped(info, NEEDS_IN_PROCESS)));
    report
}

/// Checks, before any scenario runs, that every page the target file names
/// has the form it says (forgot form with the identifier field and the
/// CSRF token, sign-in form): one clear error up front instead of one per
/// check. Returns what was checked.
pub async fn preflight(target: &Arc<HttpTarget>) -> Result<Vec<String>, String> {
    use super::driver::{Driver, Submission};
    use super::exchange::ExchangeLog;
    use super::target_file::FormStep;
    let driver = Driver::new(target.clone(), ExchangeLog::default());
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    // One entry per page (each form is checked once, with its own CSRF
    // settings): the fields it must have.
    let mut pages: Vec<(&str, &str, Vec<&str>, FormStep)> = Vec::new();
    super::api::preflight(target, &driver, &mut checked, &mut problems).await;
    if target.forgot_api().is_none() {
        pages.push((
            "forgot.page",
            &target.forgot.page,
            vec![&target.forgot.identifier_field],
            FormStep::Forgot,
        ));
    }
    if let Some(login) = target.login.as_ref().filter(|_| target.login_api().is_none()) {
        pages.push((
            "login.page",
            &login.page,
            vec![&login.identifier_field, &login.password_field],
            FormStep::Login,
        ));
    }
    for (key, page, fields, step) in pages {
        let user = driver.user("preflight").map_err(|e| e.to_string())?;
        let url = target.url(page);
        match user.load_form(&url, fields[0]).await {
            Ok(form) => {
                let missing: Vec<&str> = fields
                    .iter()
                    .copied()
                    .filter(|f| !form.form.has_field(f))
                    .collect();
                if !missing.is_empty() {
                    problems.push(format!(
                        "{key} {url}: the form with `{}` has no `{}` field",
                        fields[0],
                        missing.join("`, `")
                    ));
                    continue;
                }
                let form = form.for_step(step);
                match user.prepare(&form, None, &Submission::new()) {
                    Ok(_) => checked.push(format!(
                        "{key} {url}: a form with `{}`{}",
                        fields.join("`, `"),
                        match target.csrf_for(Some(step)).field.as_deref() {
                            Some(f) if form.form.has_field(f) => format!(" and its CSRF field `{f}`"),
                            _ => String::new(),
                        }
                    )),
                    Err(e) => problems.push(format!("{key} {url}: {e}")),
                }
            }
            Err(e) => problems.push(format!("{key} ({url}): {e}")),
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(format!(
            "the target file does not describe the app's pages (no check was run):\n  {}",
            problems.join("\n  ")
        ))
    }
}

/// Why in-process scenarios are skipped in an HTTP run.
pub const NEEDS_IN_PROCESS: &str =
    "needs the in-process target (it controls the clock, stores or mailer); run without --target";

/// A skipped result.
pub fn skipped(info: &ScenarioInfo, reason: &str) -> ScenarioResult {
    ScenarioResult {
        group: info.group(),
        info: info.clone(),
        verdict: Verdict::Skipped(reason.to_owned()),
        expected: None,
        actual: None,
        evidence: Evidence::default(),
        duration: Duration::ZERO,
    }
}

/// Longest a scenario may take.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
