//! Sender preflight: everything up to `RCPT TO`, then `RSET` and `QUIT`,
//! so nothing is delivered. A report line per step.

use std::fmt;

use lettre::transport::smtp::client::TlsParameters;
use lettre::transport::smtp::response::Response;
use resetkit::mail::{DeliveryError, Mailbox, SenderCheck, SmtpReply};

use crate::classify::{Stage, StepError, classify, parse_reply};
use crate::config::SmtpConfig;
use crate::session::{Session, address};

/// Outcome of one preflight step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightStep {
    /// `connect`, `starttls`, `auth`, `mail_from`, `rcpt_to`, `rset` or `quit`.
    pub name: &'static str,
    /// Whether it succeeded.
    pub ok: bool,
    /// The server's reply, when the step had one.
    pub reply: Option<SmtpReply>,
    /// What happened, in words (never a credential).
    pub detail: String,
}

/// The steps of a preflight and their classified failure, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightReport {
    /// The sender checked.
    pub sender: String,
    /// The address used for `RCPT TO`.
    pub probe_recipient: String,
    /// The steps run, in order; the first failed step is the last one that
    /// matters (only `rset` / `quit` may follow it).
    pub steps: Vec<PreflightStep>,
    /// The classified failure of the first failed step before `rset`.
    pub error: Option<DeliveryError>,
}

impl PreflightReport {
    /// Whether every step up to and including `RCPT TO` succeeded.
    pub fn passed(&self) -> bool {
        self.error.is_none()
    }

    /// The report as the core's [`SenderCheck`].
    pub fn sender_check(&self) -> SenderCheck {
        match &self.error {
            None => SenderCheck::Accepted,
            Some(e) => SenderCheck::Rejected(e.clone()),
        }
    }

    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&PreflightStep> {
        self.steps.iter().find(|s| s.name == name)
    }
}

impl fmt::Display for PreflightReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "SMTP preflight for sender <{}> (probe <{}>)",
            self.sender, self.probe_recipient
        )?;
        for s in &self.steps {
            write!(
                f,
                "  [{}] {:<11} {}",
                if s.ok { " ok " } else { "FAIL" },
                s.name,
                s.detail
            )?;
            if let Some(r) = &s.reply {
                write!(f, " ({r})")?;
            }
            writeln!(f)?;
        }
        match &self.error {
            None => writeln!(f, "  result: sender accepted"),
            Some(e) => writeln!(f, "  result: {e}"),
        }
    }
}

fn ok_step(stage: Stage, r: &Response) -> PreflightStep {
    let text = r.message().collect::<Vec<_>>().join(" ");
    PreflightStep {
        name: stage.as_str(),
        ok: true,
        reply: Some(parse_reply(u16::from(r.code()), &text)),
        detail: "accepted".into(),
    }
}

fn failed_step(e: &StepError) -> PreflightStep {
    PreflightStep {
        name: e.stage().as_str(),
        ok: false,
        reply: e.reply(),
        detail: e.describe(),
    }
}

pub(crate) async fn run(config: &SmtpConfig, tls: Option<&TlsParameters>, from: &Mailbox) -> PreflightReport {
    let probe = config
        .probe_recipient
        .clone()
        .unwrap_or_else(|| format!("postmaster@{}", from.domain()));
    let mut report = PreflightReport {
        sender: from.address().to_owned(),
        probe_recipient: probe.clone(),
        steps: Vec::new(),
        error: None,
    };
    let mut opened = Vec::new();
    let session = Session::open(config, tls, &mut opened).await;
    report.steps.extend(opened.into_iter().map(|s| PreflightStep {
        name: s.stage.as_str(),
        ok: true,
        reply: None,
        detail: s.detail,
    }));
    let mut session = match session {
        Ok(s) => s,
        Err(e) => {
            report.steps.push(failed_step(&e));
            report.error = Some(classify(&e, from.address(), &probe));
            return report;
        }
    };
    let bound = config.command_timeout;
    let (Some(from_addr), Some(probe_addr)) = (address(from.address()), address(&probe)) else {
        report.error = Some(DeliveryError::Misconfigured {
            reason: "sender or probe address cannot be used in SMTP".into(),
            reply: None,
        });
        let _ = session.quit(bound).await;
        return report;
    };
    let mut failure = None;
    match session.mail_from(&from_addr, bound, false).await {
        Ok(r) => {
            report.steps.push(ok_step(Stage::MailFrom, &r));
            match session.rcpt_to(&probe_addr, bound).await {
                Ok(r) => report.steps.push(ok_step(Stage::RcptTo, &r)),
                Err(e) => failure = Some(e),
            }
        }
        Err(e) => failure = Some(e),
    }
    let usable = failure.as_ref().is_none_or(StepError::connection_usable);
    if let Some(e) = failure {
        report.steps.push(failed_step(&e));
        report.error = Some(classify(&e, from.address(), &probe));
    }
    if usable {
        match session.rset(bound).await {
            Ok(r) => report.steps.push(ok_step(Stage::Rset, &r)),
            Err(e) => report.steps.push(failed_step(&e)),
        }
        match session.quit(bound).await {
            Ok(r) => report.steps.push(ok_step(Stage::Quit, &r)),
            Err(e) => report.steps.push(failed_step(&e)),
        }
    }
    report
}

impl From<PreflightReport> for resetkit::mail::ProbeReport {
    fn from(report: PreflightReport) -> Self {
        resetkit::mail::ProbeReport {
            sender: report.sender,
            probe_recipient: report.probe_recipient,
            steps: report
                .steps
                .into_iter()
                .map(|s| resetkit::mail::ProbeStep {
                    name: s.name.to_owned(),
                    ok: s.ok,
                    reply: s.reply,
                    detail: s.detail,
                })
                .collect(),
            error: report.error,
        }
    }
}
