//! [`SmtpMailer`]: the core [`Mailer`] over SMTP, with optional reuse of
//! one idle connection.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use async_trait::async_trait;
use lettre::Address;
use lettre::transport::smtp::client::TlsParameters;
use lettre::transport::smtp::response::Response;
use resetkit::mail::{DeliveryError, Mailbox, Mailer, OutgoingEmail, SenderCheck, SentReceipt};

use crate::classify::{StepError, classify};
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
    idle: Mutex<Option<(Session, u64)>>,
    generation: AtomicU64,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn take_slot(inner: &Inner) -> Option<(Session, u64)> {
    inner.idle.lock().unwrap_or_else(PoisonError::into_inner).take()
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

impl SmtpMailer {
    /// A mailer for validated settings.
    pub fn new(config: SmtpConfig) -> Result<SmtpMailer, ConfigError> {
        let tls = crate::session::tls_parameters(&config)?;
        Ok(SmtpMailer {
            inner: Arc::new(Inner {
                config,
                tls,
                idle: Mutex::new(None),
                generation: AtomicU64::new(0),
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

    /// Closes the idle connection, if one is kept.
    pub async fn close(&self) {
        if let Some((s, _)) = take_slot(&self.inner) {
            let _ = s.quit(self.inner.config.command_timeout).await;
        }
    }

    async fn checkout(&self) -> Result<Session, StepError> {
        let c = &self.inner.config;
        if let Some(reuse) = c.reuse
            && let Some((mut s, _)) = take_slot(&self.inner)
        {
            if s.idle_since.elapsed() < reuse.idle_timeout && s.sent < reuse.max_messages {
                if s.rset(c.command_timeout).await.is_ok() {
                    return Ok(s);
                }
            } else {
                let _ = s.quit(c.command_timeout).await;
            }
        }
        Session::open(c, self.inner.tls.as_ref(), &mut Vec::new()).await
    }

    async fn checkin(&self, mut s: Session) {
        let c = &self.inner.config;
        let keep = match c.reuse {
            Some(r) => s.sent < r.max_messages && tokio::runtime::Handle::try_current().is_ok(),
            None => false,
        };
        let Some(reuse) = c.reuse.filter(|_| keep) else {
            let _ = s.quit(c.command_timeout).await;
            return;
        };
        s.idle_since = Instant::now();
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let displaced = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace((s, generation));
        if let Some((old, _)) = displaced {
            let _ = old.quit(c.command_timeout).await;
        }
        // Close the connection once it has idled for `idle_timeout`, so it
        // never holds one of the server's session threads for long.
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            tokio::time::sleep(reuse.idle_timeout).await;
            let Some(inner) = weak.upgrade() else { return };
            let expired = {
                let mut slot = inner.idle.lock().unwrap_or_else(PoisonError::into_inner);
                if slot.as_ref().is_some_and(|(_, g)| *g == generation) {
                    slot.take()
                } else {
                    None
                }
            };
            if let Some((s, _)) = expired {
                let _ = s.quit(inner.config.command_timeout).await;
            }
        });
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
        let mut session = self.checkout().await.map_err(|e| fail(&e))?;
        match self.transaction(&mut session, &from, &to, &bytes).await {
            Ok(response) => {
                session.sent += 1;
                self.checkin(session).await;
                tracing::debug!(message_id = %email.message_id, "SMTP delivery accepted");
                Ok(SentReceipt {
                    message_id: email.message_id.clone(),
                    server_reply: Some(reply_line(&response)),
                })
            }
            Err(e) => {
                if e.connection_usable() {
                    let _ = session.quit(self.inner.config.command_timeout).await;
                }
                Err(fail(&e))
            }
        }
    }

    async fn check_sender(&self, from: &Mailbox) -> SenderCheck {
        self.preflight(from).await.sender_check()
    }
}
