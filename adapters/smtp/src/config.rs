//! Configuration: a typed builder and `smtp://` / `smtps://` URLs,
//! validated with errors that name the bad part. Credentials live in
//! [`SecretString`] and never appear in `Debug` or in errors.

use std::fmt;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use secrecy::SecretString;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsMode {
    /// Plain text only (local relays and tests).
    None,
    /// STARTTLS, and fail if the server does not offer it (default).
    StartTlsRequired,
    /// STARTTLS when offered, plain text otherwise.
    StartTlsOpportunistic,
    /// TLS from the first byte (`smtps`, usually port 465).
    Implicit,
}

/// An AUTH mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMechanism {
    /// `AUTH PLAIN`.
    Plain,
    /// `AUTH LOGIN`.
    Login,
}

/// Keeping connections open between sends (on by default).
///
/// Up to `max_idle` idle connections are kept per mailer (and shared by its
/// clones), so concurrent senders each find one. A connection whose last
/// transaction completed is used as is (the server has already reset its
/// state, RFC 5321 §3.3); after a transaction that failed part-way it gets
/// `RSET` first, or is closed. A kept connection is closed with `QUIT` once
/// it has idled for `idle_timeout`, so a server with few session threads is
/// never held by an idle client for long. If the server closed a kept
/// connection meanwhile, the message is sent again once on a new
/// connection (nothing was delivered on the old one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionReuse {
    /// Close an idle connection after this long (default 5 s).
    pub idle_timeout: Duration,
    /// Open a new connection after this many messages (default 100).
    pub max_messages: u32,
    /// Keep at most this many idle connections (default 8).
    pub max_idle: usize,
}

impl Default for ConnectionReuse {
    fn default() -> Self {
        ConnectionReuse {
            idle_timeout: Duration::from_secs(5),
            max_messages: 100,
            max_idle: 8,
        }
    }
}

/// A setting is invalid; the variant names which one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL does not parse.
    #[error("SMTP URL is not valid: {reason}")]
    InvalidUrl {
        /// Why (never includes the URL, which may hold a password).
        reason: String,
    },
    /// The URL scheme is not `smtp` or `smtps`.
    #[error("SMTP URL scheme `{scheme}` is not supported: use smtp:// or smtps://")]
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
    },
    /// No host.
    #[error("SMTP host is missing")]
    MissingHost,
    /// The host is not a plausible host name.
    #[error("SMTP host `{host}` is not valid")]
    InvalidHost {
        /// The host given.
        host: String,
    },
    /// Port 0.
    #[error("SMTP port must be between 1 and 65535")]
    InvalidPort,
    /// A URL query parameter is not known.
    #[error(
        "SMTP URL parameter `{name}` is not known (known: tls, auth, connect_timeout_ms, command_timeout_ms, hello, reuse, pool, probe)"
    )]
    UnknownParameter {
        /// The parameter.
        name: String,
    },
    /// A setting has a bad value.
    #[error("SMTP setting `{name}` has invalid value `{value}`: expected {expected}")]
    InvalidValue {
        /// The setting.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// A user name without password or the other way round.
    #[error("SMTP credentials are incomplete: {missing} is missing")]
    IncompleteCredentials {
        /// `username` or `password`.
        missing: &'static str,
    },
    /// Credentials would travel in plain text.
    #[error("SMTP credentials need TLS: set tls to starttls or implicit (or allow insecure auth for tests)")]
    CredentialsWithoutTls,
    /// A root certificate does not parse.
    #[error("SMTP root certificate is not valid PEM: {reason}")]
    InvalidCertificate {
        /// Why.
        reason: String,
    },
}

/// Validated settings for [`SmtpMailer`](crate::SmtpMailer).
#[derive(Clone)]
pub struct SmtpConfig {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: TlsMode,
    pub(crate) tls_server_name: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<SecretString>,
    pub(crate) mechanisms: Vec<AuthMechanism>,
    pub(crate) allow_insecure_auth: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) hello_name: String,
    pub(crate) reuse: Option<ConnectionReuse>,
    pub(crate) root_certificates: Vec<Vec<u8>>,
    pub(crate) accept_invalid_certs: bool,
    pub(crate) probe_recipient: Option<String>,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("mechanisms", &self.mechanisms)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("hello_name", &self.hello_name)
            .field("reuse", &self.reuse)
            .field("root_certificates", &self.root_certificates.len())
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .field("probe_recipient", &self.probe_recipient)
            .finish_non_exhaustive()
    }
}

impl SmtpConfig {
    /// A builder for `host` (port 587, STARTTLS required, 10 s connect and
    /// 30 s command timeouts, connections reused as [`ConnectionReuse::default`]).
    pub fn builder(host: impl Into<String>) -> SmtpConfigBuilder {
        SmtpConfigBuilder {
            config: SmtpConfig {
                host: host.into(),
                port: 587,
                tls: TlsMode::StartTlsRequired,
                tls_server_name: None,
                username: None,
                password: None,
                mechanisms: vec![AuthMechanism::Plain, AuthMechanism::Login],
                allow_insecure_auth: false,
                connect_timeout: Duration::from_secs(10),
                command_timeout: Duration::from_secs(30),
                hello_name: "localhost".into(),
                reuse: Some(ConnectionReuse::default()),
                root_certificates: Vec::new(),
                accept_invalid_certs: false,
                probe_recipient: None,
            },
        }
    }

    /// Parses `smtp://[user:pass@]host[:port][?parameters]` (`smtp`
    /// defaults to port 587 with STARTTLS required, `smtps` to 465 with
    /// implicit TLS). User and password are percent-decoded.
    ///
    /// Parameters:
    /// - `tls`: `none`, `starttls` (or `required`), `opportunistic`, `implicit` (or `smtps`)
    /// - `auth`: `plain`, `login` or both, comma-separated, in order of preference
    /// - `connect_timeout_ms`, `command_timeout_ms`: whole milliseconds
    /// - `hello`: the name sent with EHLO
    /// - `reuse`: `true` (default) keeps idle connections for later sends, `false` opens one per message
    /// - `pool`: how many idle connections to keep (default 8; not with `reuse=false`)
    /// - `probe`: the `RCPT TO` address of the sender preflight
    ///
    /// ```
    /// use resetkit_smtp::{SmtpConfig, TlsMode};
    /// let c = SmtpConfig::from_url("smtp://mailer:p%40ss@mail.example.com:2525?tls=opportunistic").unwrap();
    /// assert_eq!(c.port(), 2525);
    /// assert_eq!(c.tls(), TlsMode::StartTlsOpportunistic);
    /// assert!(!format!("{c:?}").contains("p@ss"));
    /// assert_eq!(c.reuse().map(|r| r.max_idle), Some(8));
    /// let c = SmtpConfig::from_url("smtp://mail.example.com?reuse=false").unwrap();
    /// assert_eq!(c.reuse(), None);
    /// let c = SmtpConfig::from_url("smtp://mail.example.com?pool=2").unwrap();
    /// assert_eq!(c.reuse().map(|r| r.max_idle), Some(2));
    /// let err = SmtpConfig::from_url("smtp://mail.example.com?tls=maybe").unwrap_err();
    /// assert!(err.to_string().contains("`tls`"));
    /// ```
    pub fn from_url(url: &str) -> Result<SmtpConfig, ConfigError> {
        SmtpConfigBuilder::from_url(url)?.build()
    }

    /// The host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS mode.
    pub fn tls(&self) -> TlsMode {
        self.tls
    }

    /// The per-command timeout.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// The connect timeout (TCP, greeting and EHLO).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Connection reuse, unless turned off.
    pub fn reuse(&self) -> Option<ConnectionReuse> {
        self.reuse
    }
}

/// Builds an [`SmtpConfig`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
pub struct SmtpConfigBuilder {
    config: SmtpConfig,
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::InvalidValue {
            name,
            value: value.to_owned(),
            expected: "true or false",
        }),
    }
}

fn parse_ms(name: &'static str, value: &str) -> Result<Duration, ConfigError> {
    value
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| ConfigError::InvalidValue {
            name,
            value: value.to_owned(),
            expected: "a whole number of milliseconds",
        })
}

fn decode(part: &str) -> String {
    percent_decode_str(part).decode_utf8_lossy().into_owned()
}

impl SmtpConfigBuilder {
    /// Starts from a URL (see [`SmtpConfig::from_url`]); further builder calls override it.
    pub fn from_url(url: &str) -> Result<SmtpConfigBuilder, ConfigError> {
        let parsed = url::Url::parse(url).map_err(|e| ConfigError::InvalidUrl {
            reason: e.to_string(),
        })?;
        let (port, tls) = match parsed.scheme() {
            "smtp" => (587, TlsMode::StartTlsRequired),
            "smtps" => (465, TlsMode::Implicit),
            other => {
                return Err(ConfigError::UnsupportedScheme {
                    scheme: other.to_owned(),
                });
            }
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(ConfigError::MissingHost)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let mut b = SmtpConfig::builder(host)
            .port(parsed.port().unwrap_or(port))
            .tls(tls);
        if !parsed.username().is_empty() {
            b.config.username = Some(decode(parsed.username()));
        }
        if let Some(p) = parsed.password() {
            b.config.password = Some(SecretString::from(decode(p)));
        }
        let mut reuse = true;
        let mut pool = None;
        for (name, value) in parsed.query_pairs() {
            let value = value.as_ref();
            b = match name.as_ref() {
                "tls" => b.tls(match value {
                    "none" | "off" => TlsMode::None,
                    "starttls" | "required" => TlsMode::StartTlsRequired,
                    "opportunistic" => TlsMode::StartTlsOpportunistic,
                    "implicit" | "smtps" => TlsMode::Implicit,
                    _ => {
                        return Err(ConfigError::InvalidValue {
                            name: "tls",
                            value: value.to_owned(),
                            expected: "none, starttls, opportunistic or implicit",
                        });
                    }
                }),
                "auth" => {
                    let mut mechanisms = Vec::new();
                    for m in value.split(',') {
                        mechanisms.push(match m.trim().to_ascii_lowercase().as_str() {
                            "plain" => AuthMechanism::Plain,
                            "login" => AuthMechanism::Login,
                            _ => {
                                return Err(ConfigError::InvalidValue {
                                    name: "auth",
                                    value: value.to_owned(),
                                    expected: "plain, login or plain,login",
                                });
                            }
                        });
                    }
                    b.auth_mechanisms(mechanisms)
                }
                "connect_timeout_ms" => b.connect_timeout(parse_ms("connect_timeout_ms", value)?),
                "command_timeout_ms" => b.command_timeout(parse_ms("command_timeout_ms", value)?),
                "hello" => b.hello_name(value),
                "reuse" => {
                    reuse = parse_bool("reuse", value)?;
                    b
                }
                "pool" => {
                    pool = Some(match value.parse::<usize>() {
                        Ok(n) if n > 0 => n,
                        _ => {
                            return Err(ConfigError::InvalidValue {
                                name: "pool",
                                value: value.to_owned(),
                                expected: "a whole number of idle connections, at least 1",
                            });
                        }
                    });
                    b
                }
                "probe" => b.probe_recipient(value),
                other => {
                    return Err(ConfigError::UnknownParameter {
                        name: other.to_owned(),
                    });
                }
            };
        }
        b = match (reuse, pool) {
            (true, None) => b.reuse_connections(ConnectionReuse::default()),
            (true, Some(max_idle)) => b.reuse_connections(ConnectionReuse {
                max_idle,
                ..ConnectionReuse::default()
            }),
            (false, None) => b.no_connection_reuse(),
            (false, Some(n)) => {
                return Err(ConfigError::InvalidValue {
                    name: "pool",
                    value: n.to_string(),
                    expected: "no pool size together with reuse=false",
                });
            }
        };
        Ok(b)
    }

    /// The port.
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self
    }

    /// The TLS mode.
    pub fn tls(mut self, tls: TlsMode) -> Self {
        self.config.tls = tls;
        self
    }

    /// The name the certificate must carry, when it differs from the host
    /// (e.g. connecting to `127.0.0.1` with a certificate for `localhost`).
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.config.tls_server_name = Some(name.into());
        self
    }

    /// Authenticate with these credentials.
    pub fn credentials(mut self, username: impl Into<String>, password: SecretString) -> Self {
        self.config.username = Some(username.into());
        self.config.password = Some(password);
        self
    }

    /// Mechanisms to try, in order of preference (default PLAIN, LOGIN).
    pub fn auth_mechanisms(mut self, mechanisms: Vec<AuthMechanism>) -> Self {
        self.config.mechanisms = mechanisms;
        self
    }

    /// Allow credentials over a connection without TLS. Only for local tests.
    pub fn dangerous_allow_insecure_auth(mut self, allow: bool) -> Self {
        self.config.allow_insecure_auth = allow;
        self
    }

    /// Bound on TCP connect, greeting and EHLO together (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Bound on each later step: STARTTLS, AUTH, MAIL, RCPT, DATA, the message (default 30 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.config.command_timeout = timeout;
        self
    }

    /// The name sent with EHLO (default `localhost`).
    pub fn hello_name(mut self, name: impl Into<String>) -> Self {
        self.config.hello_name = name.into();
        self
    }

    /// Keep idle connections open between sends (the default is
    /// [`ConnectionReuse::default`]).
    pub fn reuse_connections(mut self, reuse: ConnectionReuse) -> Self {
        self.config.reuse = Some(reuse);
        self
    }

    /// Open a new connection for every message and close it afterwards.
    pub fn no_connection_reuse(mut self) -> Self {
        self.config.reuse = None;
        self
    }

    /// Trust this PEM root certificate in addition to the system's.
    pub fn add_root_certificate_pem(mut self, pem: &[u8]) -> Self {
        self.config.root_certificates.push(pem.to_vec());
        self
    }

    /// Accept any certificate. Only for tests.
    pub fn dangerous_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.config.accept_invalid_certs = accept;
        self
    }

    /// The address used for `RCPT TO` by the sender preflight (default
    /// `postmaster@` the sender's domain).
    pub fn probe_recipient(mut self, address: impl Into<String>) -> Self {
        self.config.probe_recipient = Some(address.into());
        self
    }

    /// Validates.
    pub fn build(self) -> Result<SmtpConfig, ConfigError> {
        let c = self.config;
        if c.host.trim().is_empty() {
            return Err(ConfigError::MissingHost);
        }
        if c.host
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control() || "/@?#".contains(ch))
        {
            return Err(ConfigError::InvalidHost { host: c.host });
        }
        if c.port == 0 {
            return Err(ConfigError::InvalidPort);
        }
        for (name, t) in [
            ("connect_timeout", c.connect_timeout),
            ("command_timeout", c.command_timeout),
        ] {
            if t.is_zero() {
                return Err(ConfigError::InvalidValue {
                    name,
                    value: "0".into(),
                    expected: "a duration above zero",
                });
            }
        }
        if c.hello_name.trim().is_empty()
            || c.hello_name
                .chars()
                .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            return Err(ConfigError::InvalidValue {
                name: "hello",
                value: c.hello_name,
                expected: "a host name without spaces",
            });
        }
        if c.mechanisms.is_empty() {
            return Err(ConfigError::InvalidValue {
                name: "auth",
                value: String::new(),
                expected: "at least one mechanism",
            });
        }
        match (&c.username, &c.password) {
            (Some(_), None) => return Err(ConfigError::IncompleteCredentials { missing: "password" }),
            (None, Some(_)) => return Err(ConfigError::IncompleteCredentials { missing: "username" }),
            (Some(_), Some(_)) if c.tls == TlsMode::None && !c.allow_insecure_auth => {
                return Err(ConfigError::CredentialsWithoutTls);
            }
            _ => {}
        }
        if let Some(probe) = &c.probe_recipient
            && resetkit::mail::Mailbox::address_only(probe).is_err()
        {
            return Err(ConfigError::InvalidValue {
                name: "probe",
                value: probe.clone(),
                expected: "an email address",
            });
        }
        if let Some(r) = c.reuse
            && (r.idle_timeout.is_zero() || r.max_messages == 0 || r.max_idle == 0)
        {
            return Err(ConfigError::InvalidValue {
                name: "reuse",
                value: format!("{r:?}"),
                expected: "an idle timeout above zero, max_messages and max_idle of at least 1",
            });
        }
        Ok(c)
    }
}
