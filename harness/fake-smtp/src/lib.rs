//! A fake SMTP server on loopback, started in-process, capturing every
//! message with its envelope and an SMTP transcript, with deterministic
//! fault injection per stage.
//!
//! It is built on `mailin-embedded`, behind a small relay that owns the
//! listening socket: the relay applies connect-stage faults, cuts
//! connections for `Disconnect` faults and idle clients, and stops accepting
//! when the [`FakeSmtpServer`] handle drops.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use resetkit_fake_smtp::{FakeSmtpServer, FaultRule, Stage};
//!
//! let server = FakeSmtpServer::builder()
//!     .rule(FaultRule::reply(Stage::MailFrom, 550, Some("5.7.1"), "not authorised").sender("noreply@example.com"))
//!     .start()
//!     .unwrap();
//! assert!(server.addr().ip().is_loopback());
//! // ... point a mailer at server.addr(), send, then:
//! let waited = server.wait_for(|m| m.has_recipient("alice@example.com"), Duration::from_millis(50)).await;
//! assert!(waited.is_err()); // nothing was sent in this example
//! # });
//! ```
//!
//! Limits: AUTH is offered only after STARTTLS (mailin never offers it in
//! plain text), so [`FakeSmtpServerBuilder::auth`] requires
//! [`FakeSmtpServerBuilder::starttls`]. Implicit TLS (port 465 style) is not
//! offered. When the handle drops, the relay stops and live connections are
//! closed; mailin's own accept thread and its idle pool stay parked (they
//! never block process exit).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod handler;
mod proxy;
mod rules;
pub mod sink;
mod state;
mod tls;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use mailin_embedded::{AuthMechanism, Server, SslConfig};

pub use rules::{AddressPattern, Fault, FaultReply, FaultRule, Stage};
pub use sink::CountingSink;
pub use state::{CapturedMessage, Direction, Transcript, TranscriptEntry};

use handler::FakeHandler;
use state::Shared;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FakeSmtpError {
    /// Binding or configuring a loopback socket failed.
    #[error("fake SMTP server: cannot open a loopback socket: {0}")]
    Io(#[from] std::io::Error),
    /// Generating or loading the test certificate failed.
    #[error("fake SMTP server: TLS setup failed: {0}")]
    Tls(String),
    /// The options do not fit together.
    #[error("fake SMTP server: invalid option `{option}`: {reason}")]
    InvalidOption {
        /// The builder method.
        option: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// No captured message matched within the timeout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no captured message matched within {timeout:?} ({captured} message(s) captured)")]
pub struct WaitTimeout {
    /// How long was waited.
    pub timeout: Duration,
    /// How many messages had been captured by then.
    pub captured: usize,
}

/// Options for [`FakeSmtpServer`]; start it with [`FakeSmtpServerBuilder::start`].
#[derive(Debug, Clone)]
pub struct FakeSmtpServerBuilder {
    name: String,
    threads: u32,
    idle_timeout: Duration,
    starttls: bool,
    credentials: Option<(String, String)>,
    mechanisms: Vec<AuthMechanism>,
    rules: Vec<FaultRule>,
    listen: SocketAddr,
}

impl Default for FakeSmtpServerBuilder {
    fn default() -> Self {
        FakeSmtpServerBuilder {
            name: "fake-smtp.localhost".into(),
            threads: 16,
            idle_timeout: Duration::from_secs(10),
            starttls: false,
            credentials: None,
            mechanisms: Vec::new(),
            rules: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

impl FakeSmtpServerBuilder {
    /// The name the server gives in its greeting.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How many SMTP sessions run at once (mailin's fixed pool; default 16).
    /// Further connections wait for a free session thread.
    pub fn threads(mut self, threads: u32) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Close a client connection that sends nothing for this long (default
    /// 10 s), so idle pooled client connections cannot hold session threads forever.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Offer STARTTLS with a certificate for `localhost` / `127.0.0.1` issued
    /// by a CA generated at start (see [`FakeSmtpServer::ca_certificate_pem`]).
    pub fn starttls(mut self, enabled: bool) -> Self {
        self.starttls = enabled;
        self
    }

    /// Require AUTH (PLAIN and LOGIN) with these credentials; others get
    /// `535`. Needs [`starttls`](Self::starttls).
    pub fn auth(mut self, username: &str, password: &str) -> Self {
        self.credentials = Some((username.to_owned(), password.to_owned()));
        self.mechanisms = vec![AuthMechanism::Plain, AuthMechanism::Login];
        self
    }

    /// Add a fault rule (rules are tried in the order added).
    pub fn rule(mut self, rule: FaultRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// The address clients connect to (default `127.0.0.1:0`, a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Binds the listen address and starts serving.
    pub fn start(self) -> Result<FakeSmtpServer, FakeSmtpError> {
        if self.credentials.is_some() && !self.starttls {
            return Err(FakeSmtpError::InvalidOption {
                option: "auth",
                reason: "AUTH is only offered after STARTTLS: also call starttls(true)",
            });
        }
        let shared = Arc::new(Shared::with_credentials(self.credentials.clone()));
        for rule in self.rules {
            shared.add_rule(rule);
        }
        let backend_listener = TcpListener::bind("127.0.0.1:0")?;
        let backend = backend_listener.local_addr()?;
        let mut server = Server::new(FakeHandler::prototype(Arc::clone(&shared)));
        server
            .with_name(self.name)
            .with_num_threads(self.threads)
            .with_tcp_listener(backend_listener);
        for m in self.mechanisms {
            server.with_auth(m);
        }
        let mut tempdir = None;
        let mut ca_pem = None;
        if self.starttls {
            let dir = tempfile::tempdir()?;
            let pki = tls::write_pki(dir.path()).map_err(FakeSmtpError::Tls)?;
            let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
            server
                .with_ssl(SslConfig::Trusted {
                    cert_path: path(&pki.cert_path),
                    key_path: path(&pki.key_path),
                    chain_path: path(&pki.chain_path),
                })
                .map_err(|e| FakeSmtpError::Tls(e.to_string()))?;
            ca_pem = Some(pki.ca_pem);
            tempdir = Some(dir);
        }
        std::thread::Builder::new()
            .name("fake-smtp-mailin".into())
            .spawn(move || {
                if let Err(e) = server.serve() {
                    eprintln!("fake SMTP server (mailin) stopped: {e}");
                }
            })?;
        let listener = TcpListener::bind(self.listen)?;
        let addr = listener.local_addr()?;
        let acceptor = proxy::spawn_acceptor(listener, backend, Arc::clone(&shared), self.idle_timeout)?;
        Ok(FakeSmtpServer {
            addr,
            shared,
            acceptor: Some(acceptor),
            ca_pem,
            _tempdir: tempdir,
        })
    }
}

/// A running fake SMTP server; stops when dropped.
pub struct FakeSmtpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    ca_pem: Option<Vec<u8>>,
    _tempdir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for FakeSmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSmtpServer")
            .field("addr", &self.addr)
            .field("starttls", &self.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl FakeSmtpServer {
    /// Options.
    pub fn builder() -> FakeSmtpServerBuilder {
        FakeSmtpServerBuilder::default()
    }

    /// Starts a server with default options (plain SMTP, no faults).
    pub fn start() -> Result<FakeSmtpServer, FakeSmtpError> {
        Self::builder().start()
    }

    /// The loopback address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The PEM of the CA that issued the STARTTLS certificate (for
    /// `localhost` and `127.0.0.1`); clients add it as a trusted root.
    pub fn ca_certificate_pem(&self) -> Option<&[u8]> {
        self.ca_pem.as_deref()
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<CapturedMessage> {
        self.shared.messages()
    }

    /// Messages that arrived after the one numbered `id` (0: every
    /// message still kept), in arrival order.
    pub fn messages_after(&self, id: u64) -> Vec<CapturedMessage> {
        self.shared.messages_after(id)
    }

    /// The message numbered `id` ([`CapturedMessage::id`]), if still kept.
    pub fn message(&self, id: u64) -> Option<CapturedMessage> {
        self.shared.message_by_id(id)
    }

    /// How many messages are kept.
    pub fn message_count(&self) -> usize {
        self.shared.message_count()
    }

    /// Waits until a message newer than `id` arrives (or [`clear`](Self::clear)
    /// is called), without polling; returns the newer messages (empty after
    /// a clear). Use it to print mail on arrival.
    pub async fn next_after(&self, id: u64) -> Vec<CapturedMessage> {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let newer = self.shared.messages_after(id);
            if !newer.is_empty() {
                return newer;
            }
            notified.await;
            let newer = self.shared.messages_after(id);
            if !newer.is_empty() || self.shared.message_count() == 0 {
                return newer;
            }
        }
    }

    /// Waits until connection `connection` has closed (the client quit or
    /// was cut off), up to `timeout`; returns whether it did. Use it before
    /// stopping the server right after a message arrived, so the client
    /// still gets its `250` for the message.
    pub async fn wait_closed(&self, connection: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let closed = self.shared.transcripts().iter().any(|t| {
                t.connection == connection
                    && t.entries
                        .iter()
                        .any(|e| e.direction == Direction::Note && e.line == "connection closed")
            });
            if closed {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every connection's transcript so far, by connection number.
    pub fn transcripts(&self) -> Vec<Transcript> {
        self.shared.transcripts()
    }

    /// All transcripts as text (for evidence in failure reports).
    pub fn transcript_text(&self) -> String {
        self.transcripts().iter().map(ToString::to_string).collect()
    }

    /// Adds a fault rule to the running server (after those given before).
    pub fn add_rule(&self, rule: FaultRule) {
        self.shared.add_rule(rule);
    }

    /// Removes every fault rule.
    pub fn clear_rules(&self) {
        self.shared.clear_rules();
    }

    /// Starts a new session on a server shared by several tests run one
    /// after another (one server, not one per test): forgets captured mail,
    /// transcripts and fault rules, and from now on accepts but does not
    /// keep mail from clients that greet (EHLO) with a name ending in
    /// `family` other than `name` — late mail of an earlier session.
    /// Clients greeting with other names are kept as always.
    ///
    /// ```
    /// let server = resetkit_fake_smtp::FakeSmtpServer::start().unwrap();
    /// server.begin_session("t2.session.example", ".session.example");
    /// assert_eq!(server.message_count(), 0);
    /// ```
    pub fn begin_session(&self, name: &str, family: &str) {
        self.shared.begin_session(name, family);
    }

    /// Forgets captured messages and transcripts.
    pub fn clear(&self) {
        self.shared.clear();
    }

    /// Waits until a captured message satisfies `predicate` (messages already
    /// captured count), or `timeout` passes.
    pub async fn wait_for<F>(&self, predicate: F, timeout: Duration) -> Result<CapturedMessage, WaitTimeout>
    where
        F: Fn(&CapturedMessage) -> bool,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(m) = self.shared.find_message(&predicate) {
                return Ok(m);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(WaitTimeout {
                    timeout,
                    captured: self.shared.messages().len(),
                });
            }
        }
    }
}

impl Drop for FakeSmtpServer {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the relay sees the flag and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.shared.kill_all();
    }
}
