//! One SMTP session driven command by command, so every failure is known
//! to belong to a stage; every step is bounded by a tokio timeout.

use std::future::Future;
use std::time::{Duration, Instant};

use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Quit, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use secrecy::ExposeSecret;
use tokio::net::TcpStream;

use crate::classify::{Stage, StepError};
use crate::config::{AuthMechanism, ConfigError, SmtpConfig, TlsMode};

/// Runs `fut` for at most `bound`.
pub(crate) async fn bounded<T>(
    stage: Stage,
    bound: Duration,
    fut: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, StepError> {
    match tokio::time::timeout(bound, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StepError::Smtp(stage, e)),
        Err(_) => Err(StepError::Timeout(stage, bound)),
    }
}

/// TLS parameters, built once from the configuration.
pub(crate) fn tls_parameters(config: &SmtpConfig) -> Result<Option<TlsParameters>, ConfigError> {
    if config.tls == TlsMode::None {
        return Ok(None);
    }
    let domain = config
        .tls_server_name
        .clone()
        .unwrap_or_else(|| config.host.clone());
    let mut b = TlsParameters::builder(domain).dangerous_accept_invalid_certs(config.accept_invalid_certs);
    for pem in &config.root_certificates {
        let cert = Certificate::from_pem(pem).map_err(|e| ConfigError::InvalidCertificate {
            reason: e.to_string(),
        })?;
        b = b.add_root_certificate(cert);
    }
    b.build().map(Some).map_err(|e| ConfigError::InvalidCertificate {
        reason: e.to_string(),
    })
}

/// TCP connect (each resolved address in turn, each bounded by the connect
/// timeout) with `TCP_NODELAY`, then greeting and EHLO. Without
/// `TCP_NODELAY` a command written right after another one waits for the
/// server's delayed ACK.
async fn connect_plain(config: &SmtpConfig, hello: &ClientId) -> Result<AsyncSmtpConnection, StepError> {
    let stream = tcp_connect(&config.host, config.port, config.connect_timeout)
        .await
        .map_err(|e| StepError::Network(Stage::Connect, e))?;
    AsyncSmtpConnection::connect_with_transport(Box::new(stream), hello)
        .await
        .map_err(|e| StepError::Smtp(Stage::Connect, e))
}

async fn tcp_connect(host: &str, port: u16, bound: Duration) -> std::io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match tokio::time::timeout(bound, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!("cannot set TCP_NODELAY on the SMTP connection: {e}");
                }
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("TCP connect to {addr} timed out"),
                ));
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} resolves to no address"),
        )
    }))
}

/// What a step of opening a session did (for the preflight report).
#[derive(Debug)]
pub(crate) struct OpenStep {
    pub(crate) stage: Stage,
    pub(crate) detail: String,
}

/// An open, ready (TLS and AUTH done) session.
pub(crate) struct Session {
    conn: AsyncSmtpConnection,
    pub(crate) sent: u32,
    pub(crate) idle_since: Instant,
}

fn credentials(config: &SmtpConfig) -> Option<Credentials> {
    let user = config.username.as_ref()?;
    let pass = config.password.as_ref()?;
    Some(Credentials::new(user.clone(), pass.expose_secret().to_owned()))
}

impl Session {
    /// Connects, greets, upgrades to TLS and authenticates as configured,
    /// noting each step done in `steps`.
    pub(crate) async fn open(
        config: &SmtpConfig,
        tls: Option<&TlsParameters>,
        steps: &mut Vec<OpenStep>,
    ) -> Result<Session, StepError> {
        let hello = ClientId::Domain(config.hello_name.clone());
        let mut conn = match config.tls {
            // lettre's own connect for implicit TLS (its TLS setup is not
            // public); it does not set TCP_NODELAY.
            TlsMode::Implicit => {
                let params = tls.cloned().ok_or_else(|| {
                    StepError::Refused(Stage::Connect, "no TLS parameters configured".into())
                })?;
                bounded(
                    Stage::Connect,
                    config.connect_timeout,
                    AsyncSmtpConnection::connect_tokio1(
                        (config.host.as_str(), config.port),
                        Some(config.connect_timeout),
                        &hello,
                        Some(params),
                        None,
                    ),
                )
                .await?
            }
            TlsMode::None | TlsMode::StartTlsRequired | TlsMode::StartTlsOpportunistic => {
                match tokio::time::timeout(config.connect_timeout, connect_plain(config, &hello)).await {
                    Ok(conn) => conn?,
                    Err(_) => return Err(StepError::Timeout(Stage::Connect, config.connect_timeout)),
                }
            }
        };
        steps.push(OpenStep {
            stage: Stage::Connect,
            detail: format!(
                "connected to {}:{} (name in the EHLO reply: {}){}",
                config.host,
                config.port,
                conn.server_info().name(),
                if conn.is_encrypted() {
                    " (implicit TLS)"
                } else {
                    ""
                }
            ),
        });
        let want_starttls = match config.tls {
            TlsMode::StartTlsRequired => true,
            TlsMode::StartTlsOpportunistic => conn.can_starttls(),
            TlsMode::None | TlsMode::Implicit => false,
        };
        if want_starttls {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(StepError::Refused(
                    Stage::StartTls,
                    "the server does not offer STARTTLS, which the configuration requires".into(),
                ));
            }
            let params = tls
                .cloned()
                .ok_or_else(|| StepError::Refused(Stage::StartTls, "no TLS parameters configured".into()))?;
            bounded(
                Stage::StartTls,
                config.command_timeout,
                conn.starttls(params, &hello),
            )
            .await?;
            steps.push(OpenStep {
                stage: Stage::StartTls,
                detail: "STARTTLS done, certificate verified".into(),
            });
        }
        if let Some(creds) = credentials(config) {
            if !conn.is_encrypted() && !config.allow_insecure_auth {
                conn.abort().await;
                return Err(StepError::Refused(
                    Stage::Auth,
                    "refusing to send credentials over a connection without TLS".into(),
                ));
            }
            let mechanisms: Vec<Mechanism> = config
                .mechanisms
                .iter()
                .map(|m| match m {
                    AuthMechanism::Plain => Mechanism::Plain,
                    AuthMechanism::Login => Mechanism::Login,
                })
                .collect();
            bounded(
                Stage::Auth,
                config.command_timeout,
                conn.auth(&mechanisms, &creds),
            )
            .await?;
            steps.push(OpenStep {
                stage: Stage::Auth,
                detail: format!("authenticated as {}", config.username.as_deref().unwrap_or("")),
            });
        }
        Ok(Session {
            conn,
            sent: 0,
            idle_since: Instant::now(),
        })
    }

    /// `MAIL FROM`.
    pub(crate) async fn mail_from(
        &mut self,
        from: &Address,
        bound: Duration,
        eight_bit: bool,
    ) -> Result<Response, StepError> {
        let params = if eight_bit {
            vec![MailParameter::Body(MailBodyParameter::EightBitMime)]
        } else {
            Vec::new()
        };
        bounded(
            Stage::MailFrom,
            bound,
            self.conn.command(Mail::new(Some(from.clone()), params)),
        )
        .await
    }

    /// `RCPT TO`.
    pub(crate) async fn rcpt_to(&mut self, to: &Address, bound: Duration) -> Result<Response, StepError> {
        bounded(
            Stage::RcptTo,
            bound,
            self.conn.command(Rcpt::new(to.clone(), Vec::new())),
        )
        .await
    }

    /// `DATA`, then the message and the final `.`.
    pub(crate) async fn data(&mut self, message: &[u8], bound: Duration) -> Result<Response, StepError> {
        bounded(Stage::Data, bound, self.conn.command(Data)).await?;
        match DataPayload::new(message) {
            // One write for body and terminator: lettre writes the final
            // `.` separately, which Nagle's algorithm and delayed ACKs turn
            // into a ~40 ms stall per message.
            Some(payload) => bounded(Stage::Message, bound, self.conn.command(payload)).await,
            None => bounded(Stage::Message, bound, self.conn.message(message)).await,
        }
    }

    /// `RSET`.
    pub(crate) async fn rset(&mut self, bound: Duration) -> Result<Response, StepError> {
        bounded(Stage::Rset, bound, self.conn.command(Rset)).await
    }

    /// `QUIT`, then close.
    pub(crate) async fn quit(mut self, bound: Duration) -> Result<Response, StepError> {
        bounded(Stage::Quit, bound, self.conn.command(Quit)).await
    }
}

/// A dot-stuffed message followed by `.`, written in one go.
struct DataPayload(String);

impl DataPayload {
    /// `None` when the message is not UTF-8 (then lettre's own encoder is used).
    fn new(message: &[u8]) -> Option<DataPayload> {
        let text = std::str::from_utf8(message).ok()?;
        let mut out = String::with_capacity(text.len() + 16);
        for line in text.split_inclusive('\n') {
            if line.starts_with('.') {
                out.push('.');
            }
            out.push_str(line);
        }
        if !out.is_empty() && !out.ends_with("\r\n") {
            out.push_str("\r\n");
        }
        out.push_str(".\r\n");
        Some(DataPayload(out))
    }
}

impl std::fmt::Display for DataPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Converts a core mailbox address to a lettre address.
pub(crate) fn address(addr: &str) -> Option<Address> {
    addr.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::DataPayload;

    #[test]
    fn payload_is_dot_stuffed_and_terminated() {
        let p = DataPayload::new(b"Subject: x\r\n\r\n.hidden\r\nend").unwrap();
        assert_eq!(p.0, "Subject: x\r\n\r\n..hidden\r\nend\r\n.\r\n");
        assert_eq!(DataPayload::new(b"a\r\n").unwrap().0, "a\r\n.\r\n");
        assert!(DataPayload::new(&[0xff, 0xfe]).is_none());
    }
}
