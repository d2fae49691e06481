//! [`SmtpMailer`]: the core [`Mailer`] over SMTP, with a small pool of
//! idle connections shared by its clones.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lettre::Address;
use lettre::transport::smtp::client::TlsParameters;
use lettre::transport::smtp::response::Response;
use resetkit::mail::{DeliveryError, Mailbox, Mailer, OutgoingEmail, SenderCheck, SentReceipt};
use tokio::task::JoinHandle;

use crate::classify::{Stage, StepError, classify};
use crate::config::{ConfigError, SmtpConfig};
use crate::message;
use crate::preflight::{self, PreflightReport};
use crate::session::{Session, address};

/// Sends resetkit emails over SMTP.
///
/// Every session is driven command by command (`MAIL`, `RCPT`, `DATA`), so a
/// refusal is classified by the stage it happened at: sender rejected,
/// recipient rejected, message rejected, transient (4xx, network, timeout)
/// or misconfigured (TLS, AUTH). Each step is bounded by the configured
/// timeouts. `Debug` never shows the password.
///
/// Unless reuse is turned off, idle connections are kept for later sends
/// (see [`ConnectionReuse`](crate::ConnectionReuse)); clones share them, so
/// one mailer serves concurrent senders. Kept connections are closed with
/// `QUIT` after their idle timeout by a timer task that runs only while
/// connections are kept, at once by [`close`](Self::close), and when the
/// last clone is dropped inside a tokio runtime (outside one they are just
/// dropped). A kept connection the server has closed meanwhile is noticed at
/// `MAIL FROM` (no reply, or 421) and the message is sent once more on a new
/// connection; a kept connection that stops answering is not retried (the
/// send fails as transient after the command timeout).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use resetkit_smtp::SmtpMailer;
/// let mailer = SmtpMailer::from_url("smtp://mailer:secret@mail.example.com:587?tls=starttls")?;
/// let from = resetkit::mail::Mailbox::address_only("noreply@example.com")?;
/// let report = mailer.preflight(&from).await;
/// println!("{report}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SmtpMailer {
    inner: Arc<Inner>,
}

struct Inner {
    config: SmtpConfig,
    tls: Option<TlsParameters>,
    pool: Mutex<Pool>,
}

/// Idle connections, the most recently used last, and the task closing
/// those that idle too long (running only while there are any).
#[derive(Default)]
struct Pool {
    idle: Vec<Session>,
    reaper: Option<(u64, JoinHandle<()>)>,
    reapers_started: u64,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl resetkit::mail::SenderProbe for SmtpMailer {
    async fn probe(&self, from: &Mailbox) -> resetkit::mail::ProbeReport {
        self.probe_report(from).await
    }
}

fn reply_line(r: &Response) -> String {
    format!(
        "{} {}",
        u16::from(r.code()),
        r.message().collect::<Vec<_>>().join(" ")
    )
}

/// Closes the connections that have idled for `idle_timeout`, then sleeps
/// until the next one would; ends when none is left or the mailer is gone.
async fn reap(weak: Weak<Inner>, id: u64, idle_timeout: Duration) {
    let mut wait = idle_timeout;
    loop {
        tokio::time::sleep(wait).await;
        let Some(inner) = weak.upgrade() else { return };
        let (expired, next) = {
            let mut pool = inner.pool();
            let (expired, kept): (Vec<Session>, Vec<Session>) = std::mem::take(&mut pool.idle)
                .into_iter()
                .partition(|s| s.idle_since.elapsed() >= idle_timeout);
            pool.idle = kept;
            let next = pool
                .idle
                .iter()
                .map(|s| idle_timeout.saturating_sub(s.idle_since.elapsed()))
                .min();
            if next.is_none() && pool.reaper.as_ref().is_some_and(|(i, _)| *i == id) {
                pool.reaper = None;
            }
            (expired, next)
        };
        for s in expired {
            let _ = s.quit(inner.config.command_timeout).await;
        }
        match next {
            Some(d) => wait = d.max(Duration::from_millis(1)),
            None => return,
        }
    }
}

/// Closes `sessions` with `QUIT` on a task of the current runtime (without
/// one, they are just dropped, which closes the TCP connections).
fn close_in_background(sessions: Vec<Session>, bound: Duration) {
    if sessions.is_empty() {
        return;
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            for s in sessions {
                let _ = s.quit(bound).await;
            }
        });
    }
}

impl Drop for Inner {
    /// The last clone of a mailer is gone: its idle connections are closed
    /// with `QUIT` when a runtime is at hand.
    fn drop(&mut self) {
        let pool = self.pool.get_mut().unwrap_or_else(PoisonError::into_inner);
        close_in_background(std::mem::take(&mut pool.idle), self.config.command_timeout);
    }
}

impl SmtpMailer {
    /// A mailer for validated settings.
    pub fn new(config: SmtpConfig) -> Result<SmtpMailer, ConfigError> {
        let tls = crate::session::tls_parameters(&config)?;
        Ok(SmtpMailer {
            inner: Arc::new(Inner {
                config,
                tls,
                pool: Mutex::new(Pool::default()),
            }),
        })
    }

    /// A mailer from an `smtp://` / `smtps://` URL (see [`SmtpConfig::from_url`]).
    pub fn from_url(url: &str) -> Result<SmtpMailer, ConfigError> {
        Self::new(SmtpConfig::from_url(url)?)
    }

    /// The settings.
    pub fn config(&self) -> &SmtpConfig {
        &self.inner.config
    }

    /// Checks, on a fresh connection and without delivering anything, that
    /// the server accepts `from`: connect, TLS, AUTH, `MAIL FROM`, `RCPT TO`
    /// the probe address, `RSET`, `QUIT`; one report line per step.
    pub async fn preflight(&self, from: &Mailbox) -> PreflightReport {
        preflight::run(&self.inner.config, self.inner.tls.as_ref(), from).await
    }

    /// The preflight as the core's [`resetkit::mail::SenderProbe`] sees it
    /// (what the operator console's sender check shows).
    pub async fn probe_report(&self, from: &Mailbox) -> resetkit::mail::ProbeReport {
        self.preflight(from).await.into()
    }

    /// Closes the idle connections (with `QUIT`). Later sends open new ones.
    pub async fn close(&self) {
        let idle = std::mem::take(&mut self.inner.pool().idle);
        for s in idle {
            let _ = s.quit(self.inner.config.command_timeout).await;
        }
    }

    /// An idle connection that has not idled too long (`true`), or a new one.
    async fn checkout(&self) -> Result<(Session, bool), StepError> {
        let c = &self.inner.config;
        if let Some(reuse) = c.reuse {
            let (kept, expired) = {
                let mut pool = self.inner.pool();
                // The most recently used comes last; if it idled too long,
                // so did all the others (the timer has not got to them yet).
                match pool.idle.pop() {
                    Some(s) if s.idle_since.elapsed() < reuse.idle_timeout => (Some(s), Vec::new()),
                    Some(s) => {
                        let mut expired = std::mem::take(&mut pool.idle);
                        expired.push(s);
                        (None, expired)
                    }
                    None => (None, Vec::new()),
                }
            };
            close_in_background(expired, c.command_timeout);
            if let Some(s) = kept {
                return Ok((s, true));
            }
        }
        Session::open(c, self.inner.tls.as_ref(), &mut Vec::new())
            .await
            .map(|s| (s, false))
    }

    /// Keeps `s` for a later send when reuse allows it (a tokio runtime
    /// runs the idle timer, the connection has room for more messages and
    /// the pool for one more connection); closes it otherwise.
    async fn checkin(&self, mut s: Session) {
        let c = &self.inner.config;
        let runtime = tokio::runtime::Handle::try_current().ok();
        let (Some(reuse), Some(runtime)) = (c.reuse, runtime) else {
            let _ = s.quit(c.command_timeout).await;
            return;
        };
        if s.sent >= reuse.max_messages {
            let _ = s.quit(c.command_timeout).await;
            return;
        }
        s.idle_since = Instant::now();
        let refused = {
            let mut pool = self.inner.pool();
            if pool.idle.len() >= reuse.max_idle {
                Some(s)
            } else {
                pool.idle.push(s);
                // One timer task per mailer, started when the first
                // connection is kept and ending when none is left (or when
                // its runtime shuts down).
                if pool.reaper.as_ref().is_none_or(|(_, task)| task.is_finished()) {
                    pool.reapers_started += 1;
                    let id = pool.reapers_started;
                    let task = runtime.spawn(reap(Arc::downgrade(&self.inner), id, reuse.idle_timeout));
                    pool.reaper = Some((id, task));
                }
                None
            }
        };
        if let Some(s) = refused {
            let _ = s.quit(c.command_timeout).await;
        }
    }

    /// After a failed transaction: a connection the server still answers
    /// on is reset with `RSET` and kept (when reuse is on), otherwise closed.
    async fn after_failure(&self, mut s: Session, e: &StepError) {
        let c = &self.inner.config;
        if !e.connection_usable() {
            return; // dropped: the connection is broken or in an unknown state
        }
        if c.reuse.is_some() {
            if s.rset(c.command_timeout).await.is_ok() {
                self.checkin(s).await;
            }
        } else {
            let _ = s.quit(c.command_timeout).await;
        }
    }

    async fn transaction(
        &self,
        s: &mut Session,
        from: &Address,
        to: &Address,
        bytes: &[u8],
    ) -> Result<Response, StepError> {
        let bound = self.inner.config.command_timeout;
        s.mail_from(from, bound, !bytes.is_ascii()).await?;
        s.rcpt_to(to, bound).await?;
        s.data(bytes, bound).await
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<SentReceipt, DeliveryError> {
        let bytes = message::format(email)?;
        let sender = email.from.address();
        let recipient = email.to.address();
        let from = address(sender).ok_or_else(|| DeliveryError::Misconfigured {
            reason: format!("sender address <{sender}> cannot be used in SMTP"),
            reply: None,
        })?;
        let to = address(recipient).ok_or_else(|| DeliveryError::RecipientRejected {
            recipient: recipient.to_owned(),
            reply: None,
        })?;
        let fail = |e: &StepError| {
            let err = classify(e, sender, recipient);
            tracing::warn!(message_id = %email.message_id, class = err.class(), "SMTP delivery failed: {err}");
            err
        };
        let (mut session, mut reused) = self.checkout().await.map_err(|e| fail(&e))?;
        loop {
            match self.transaction(&mut session, &from, &to, &bytes).await {
                Ok(response) => {
                    session.sent += 1;
                    self.checkin(session).await;
                    tracing::debug!(message_id = %email.message_id, "SMTP delivery accepted");
                    return Ok(SentReceipt {
                        message_id: email.message_id.clone(),
                        server_reply: Some(reply_line(&response)),
                    });
                }
                // A kept connection the server closed while it idled:
                // nothing was sent yet, so send once more on a new one.
                Err(e) if reused && e.stage() == Stage::MailFrom && e.connection_lost() => {
                    tracing::debug!(
                        message_id = %email.message_id,
                        "kept SMTP connection is gone ({}); sending on a new connection",
                        e.describe()
                    );
                    drop(session);
                    session = Session::open(&self.inner.config, self.inner.tls.as_ref(), &mut Vec::new())
                        .await
                        .map_err(|e| fail(&e))?;
                    reused = false;
                }
                Err(e) => {
                    self.after_failure(session, &e).await;
                    return Err(fail(&e));
                }
            }
        }
    }

    async fn check_sender(&self, from: &Mailbox) -> SenderCheck {
        self.preflight(from).await.sender_check()
    }
}
