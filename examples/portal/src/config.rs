//! [`PortalConfig`] (mirrors the command line) and [`PortalError`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use resetkit::policy::RateLimits;
use resetkit::secrets::{DeploymentSecrets, PAGES_KEY_VAR, SecretsError};
use secrecy::SecretString;
use url::{Host, Url};

/// Everything the portal is started with. The command line fills it; tests
/// and the harness build it directly (start from [`PortalConfig::default`]
/// or [`PortalConfig::local_test`]).
#[derive(Clone)]
pub struct PortalConfig {
    /// Address to listen on (`--listen`, default `127.0.0.1:8080`; port 0
    /// picks a free port).
    pub listen: SocketAddr,
    /// Canonical public base URL links are built on (`--base-url`; default
    /// `http://<bound address>`). `http://` is accepted only for loopback
    /// hosts; anything else must be `https://`. Never taken from a request.
    pub base_url: Option<String>,
    /// SMTP server URL (`--smtp`, e.g. `smtp://user:pass@mail.example.com:587`,
    /// `smtp://127.0.0.1:2525?tls=none`). `None` starts the harness's
    /// in-process capture server.
    pub smtp: Option<SecretString>,
    /// Serve `/dev/mail`, the captured messages with their links (`--dev-mail`;
    /// capture mode only).
    pub dev_mail: bool,
    /// Tiny argon2 parameters, for tests and harness runs only (`--fast-hash`).
    pub fast_hash: bool,
    /// PostgreSQL URL (`DATABASE_URL` / `--database-url`); `None` keeps
    /// everything in memory. The command line reads the environment; this
    /// struct never does.
    pub database_url: Option<SecretString>,
    /// Schema of resetkit's tables in PostgreSQL (`--db-schema`, default `resetkit`).
    pub db_schema: String,
    /// The From address of reset emails (`--from`; default `noreply@` the base
    /// URL's host when it is a domain name, else `noreply@portal.localhost`).
    pub from: Option<String>,
    /// Rate limits (`--rate-limits`); `None` keeps resetkit's defaults
    /// (3 emails per account and 20 requests per client address per 15 minutes).
    pub rate_limits: Option<RateLimits>,
    /// Sign-in attempts per identifier and per client address
    /// (`--sign-in-limits`, default [`SIGN_IN_LIMITS`]).
    pub sign_in_limits: RateLimits,
    /// Messages sent at once by the delivery worker (`--delivery-workers`,
    /// default 4), each over a pooled SMTP connection.
    pub delivery_workers: usize,
    /// Reset emails that may wait to be sent before new requests wait in
    /// the inbox (`--mail-backlog-limit`, default
    /// [`resetkit::flow::DEFAULT_MAIL_BACKLOG_LIMIT`]); past both, requests
    /// are answered "try again later".
    pub mail_backlog_limit: usize,
    /// How long a "try again later" answer waits before it is sent
    /// (`--shed-pace-ms`, default [`resetkit_axum::DEFAULT_SHED_PACE`]).
    pub shed_pace: std::time::Duration,
    /// Extra accounts `load0` … `load{N-1}` (`load{i}@load.test`, no
    /// password) for load tests (`--load-test-accounts`, default 0).
    pub load_test_accounts: usize,
    /// Serve the capture server's web inbox (`resetkit-harness smtp --web`)
    /// on this address (`--dev-inbox 127.0.0.1:8025`; capture mode with
    /// `--dev-mail` only; loopback addresses only).
    pub dev_inbox: Option<SocketAddr>,
    /// The deployment's secrets (`RESETKIT_PAGES_KEY`,
    /// `RESETKIT_FINGERPRINT_KEY`, `RESETKIT_PAGES_KEY_PREVIOUS`, from the
    /// environment or `--secrets-file`; see [`resetkit::secrets`]). `None`
    /// makes random keys, which only a portal listening on loopback
    /// accepts: several instances behind a load balancer must share them.
    pub secrets: Option<DeploymentSecrets>,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            base_url: None,
            smtp: None,
            dev_mail: false,
            fast_hash: false,
            database_url: None,
            db_schema: "resetkit".into(),
            from: None,
            rate_limits: None,
            sign_in_limits: SIGN_IN_LIMITS,
            delivery_workers: resetkit::delivery::DEFAULT_CONCURRENCY,
            mail_backlog_limit: resetkit::flow::DEFAULT_MAIL_BACKLOG_LIMIT,
            shed_pace: resetkit_axum::DEFAULT_SHED_PACE,
            load_test_accounts: 0,
            dev_inbox: None,
            secrets: None,
        }
    }
}

impl PortalConfig {
    /// For tests: a free port on 127.0.0.1, capture mail, `/dev/mail` on,
    /// fast hashing, no rate limits, in-memory stores.
    pub fn local_test() -> Self {
        PortalConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            dev_mail: true,
            fast_hash: true,
            rate_limits: Some(RateLimits::unlimited()),
            ..PortalConfig::default()
        }
    }

    /// The base URL for a portal bound to `bound`, and whether it is a
    /// loopback `http://` URL (allowed for local testing only).
    pub(crate) fn resolve_base_url(&self, bound: SocketAddr) -> Result<(Url, bool), PortalError> {
        let text = match &self.base_url {
            Some(text) => text.clone(),
            None if bound.ip().is_unspecified() => {
                return Err(PortalError::BaseUrl {
                    value: format!("http://{bound}"),
                    reason: "the portal listens on every interface: set --base-url to the public https:// URL users reach it at".into(),
                });
            }
            None => format!("http://{bound}"),
        };
        let invalid = |reason: String| PortalError::BaseUrl {
            value: text.clone(),
            reason,
        };
        let url = Url::parse(&text).map_err(|e| invalid(format!("not an absolute URL: {e}")))?;
        match url.scheme() {
            "https" => Ok((url, false)),
            "http" if url.host().as_ref().is_some_and(is_loopback) => Ok((url, true)),
            "http" => Err(invalid(
                "http:// is only allowed for loopback hosts (127.0.0.1, ::1, localhost); use https://".into(),
            )),
            other => Err(invalid(format!(
                "scheme `{other}` is not supported; use https://"
            ))),
        }
    }
}

/// The portal's default sign-in limits: 10 attempts per identifier and 100
/// per client address per 15 minutes.
pub const SIGN_IN_LIMITS: RateLimits = RateLimits {
    per_account: Some(resetkit::policy::Limit {
        max: 10,
        window: std::time::Duration::from_secs(15 * 60),
    }),
    per_client: Some(resetkit::policy::Limit {
        max: 100,
        window: std::time::Duration::from_secs(15 * 60),
    }),
};

impl PortalConfig {
    /// Refuses what would serve live reset links to the network: the dev
    /// mail pages (`--dev-mail`: `/dev/mail` shows every captured link) and
    /// plain-http links, unless the portal listens on a loopback address
    /// only. `bound` is the address the listener got; `allow_http` says
    /// whether the base URL is a loopback `http://` one.
    pub(crate) fn check_exposure(&self, bound: SocketAddr, allow_http: bool) -> Result<(), PortalError> {
        if bound.ip().is_loopback() {
            return Ok(());
        }
        if self.dev_mail {
            return Err(PortalError::Startup(format!(
                "--dev-mail serves every captured reset link at /dev/mail, but the portal listens on \
                 {bound}, which other machines can reach: use --listen 127.0.0.1:PORT (or [::1]:PORT) \
                 with --dev-mail, or drop --dev-mail and send mail with --smtp"
            )));
        }
        if allow_http {
            return Err(PortalError::Startup(format!(
                "--base-url {} is a plain-http loopback URL, but the portal listens on {bound}, which \
                 other machines can reach: listen on a loopback address, or set --base-url to the \
                 public https:// URL",
                self.base_url.as_deref().unwrap_or("(default)")
            )));
        }
        Ok(())
    }
}

impl PortalConfig {
    /// The secrets to start with: the configured ones, or random keys for a
    /// portal listening on loopback only. A portal reachable from the
    /// network is refused without them, naming the variable: instances
    /// behind one load balancer must share their keys.
    pub(crate) fn secrets_or_random(&self) -> Result<DeploymentSecrets, PortalError> {
        match &self.secrets {
            Some(secrets) => Ok(secrets.clone()),
            None if self.listen.ip().is_loopback() => Ok(DeploymentSecrets::random()),
            None => Err(PortalError::Startup(format!(
                "{}; the portal listens on {} (not loopback), so it needs the deployment's keys: \
                 set {PAGES_KEY_VAR} and {} in the environment or in --secrets-file \
                 (see the README, \"Running several instances\")",
                SecretsError::Missing {
                    variable: PAGES_KEY_VAR,
                    min_bytes: resetkit::secrets::KeyRing::MIN_BYTES,
                },
                self.listen,
                resetkit::secrets::FINGERPRINT_KEY_VAR,
            ))),
        }
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

impl fmt::Debug for PortalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortalConfig")
            .field("listen", &self.listen)
            .field("base_url", &self.base_url)
            .field("smtp", &self.smtp.as_ref().map(|_| "[REDACTED]"))
            .field("dev_mail", &self.dev_mail)
            .field("fast_hash", &self.fast_hash)
            .field("database_url", &self.database_url.as_ref().map(|_| "[REDACTED]"))
            .field("db_schema", &self.db_schema)
            .field("from", &self.from)
            .field("rate_limits", &self.rate_limits)
            .field("sign_in_limits", &self.sign_in_limits)
            .field("delivery_workers", &self.delivery_workers)
            .field("mail_backlog_limit", &self.mail_backlog_limit)
            .field("shed_pace", &self.shed_pace)
            .field("load_test_accounts", &self.load_test_accounts)
            .field("dev_inbox", &self.dev_inbox)
            .field("secrets", &self.secrets)
            .finish()
    }
}

/// Why the portal could not start. Each variant names the setting or the
/// part that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortalError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} (`--listen`): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The base URL is unusable.
    #[error("`--base-url` {value:?} is invalid: {reason}")]
    BaseUrl {
        /// The value (never contains credentials: URLs with them are refused).
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The From address is unusable.
    #[error("`--from` {value:?} is invalid: {reason}")]
    From {
        /// The value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The SMTP URL is unusable.
    #[error("`--smtp` is invalid: {0}")]
    Smtp(#[from] resetkit_smtp::ConfigError),
    /// The in-process capture SMTP server did not start.
    #[error("the capture SMTP server did not start: {0}")]
    CaptureServer(#[from] resetkit_harness::fake_smtp::FakeSmtpError),
    /// PostgreSQL could not be reached or prepared.
    #[error("PostgreSQL (`DATABASE_URL`): {step} failed: {reason}")]
    Database {
        /// What was being done (connect, migrate, seed ...).
        step: &'static str,
        /// The error (without the URL's password).
        reason: String,
    },
    /// The reset service refused its settings.
    #[error("the reset service refused its configuration: {0}")]
    Service(#[from] resetkit::error::BuildError),
    /// The deployment's secrets are missing or unusable (the message names
    /// the variable).
    #[error("deployment secrets: {0}")]
    Secrets(#[from] SecretsError),
    /// Hashing the demo passwords or another start-up step failed.
    #[error("start-up failed: {0}")]
    Startup(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(base: Option<&str>, bound: &str) -> Result<(Url, bool), PortalError> {
        let config = PortalConfig {
            base_url: base.map(str::to_owned),
            ..PortalConfig::default()
        };
        config.resolve_base_url(bound.parse().unwrap())
    }

    #[test]
    fn default_base_url_is_the_bound_address_and_loopback_http_is_allowed() {
        let (url, insecure) = resolve(None, "127.0.0.1:4321").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:4321/");
        assert!(insecure);
        assert!(resolve(Some("http://localhost:8080"), "127.0.0.1:1").unwrap().1);
        assert!(resolve(Some("http://[::1]:8080"), "127.0.0.1:1").unwrap().1);
        assert!(!resolve(Some("https://app.example.com"), "0.0.0.0:1").unwrap().1);
    }

    #[test]
    fn public_http_and_unspecified_listen_need_an_https_base_url() {
        for (base, bound) in [
            (Some("http://app.example.com"), "127.0.0.1:1"),
            (Some("http://localhost.example.com"), "127.0.0.1:1"),
            (Some("ftp://app.example.com"), "127.0.0.1:1"),
            (Some("app.example.com"), "127.0.0.1:1"),
            (None, "0.0.0.0:8080"),
        ] {
            let err = resolve(base, bound).unwrap_err();
            assert!(err.to_string().contains("--base-url"), "{base:?}: {err}");
        }
    }

    #[test]
    fn a_listener_other_machines_reach_serves_no_dev_mail_and_no_http_links() {
        let check = |listen: &str, base: Option<&str>, dev_mail: bool| {
            let config = PortalConfig {
                base_url: base.map(str::to_owned),
                dev_mail,
                ..PortalConfig::default()
            };
            let bound: SocketAddr = listen.parse().unwrap();
            let (_, allow_http) = config.resolve_base_url(bound)?;
            config.check_exposure(bound, allow_http)
        };
        for (listen, base, dev_mail, names) in [
            (
                "0.0.0.0:18092",
                Some("https://portal.example"),
                true,
                "--dev-mail",
            ),
            ("[::]:18090", Some("http://[::1]:18090"), false, "--base-url"),
            (
                "192.168.1.20:18090",
                Some("http://127.0.0.1:18090"),
                false,
                "--base-url",
            ),
            (
                "10.0.0.5:8080",
                Some("https://portal.example"),
                true,
                "--dev-mail",
            ),
        ] {
            let err = check(listen, base, dev_mail).unwrap_err().to_string();
            assert!(
                err.contains(names) && err.contains("other machines"),
                "{listen}: {err}"
            );
        }
        check("0.0.0.0:8080", Some("https://portal.example"), false).unwrap();
        check("127.0.0.1:8080", None, true).unwrap();
        check("[::1]:8080", Some("http://localhost:8080"), true).unwrap();
    }

    #[test]
    fn a_portal_off_loopback_needs_the_deployment_keys() {
        let public = PortalConfig {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..PortalConfig::default()
        };
        let err = public.secrets_or_random().unwrap_err().to_string();
        assert!(err.contains("RESETKIT_PAGES_KEY is not set"), "{err}");
        assert!(err.contains("RESETKIT_FINGERPRINT_KEY"), "{err}");
        assert!(
            PortalConfig::default().secrets_or_random().is_ok(),
            "loopback: random keys"
        );
        let configured = PortalConfig {
            secrets: Some(DeploymentSecrets::random()),
            ..public
        };
        assert!(configured.secrets_or_random().is_ok());
    }

    #[test]
    fn debug_hides_credentials() {
        let config = PortalConfig {
            smtp: Some(SecretString::from("smtp://u:hunter2@mail.example.com")),
            database_url: Some(SecretString::from("postgres://u:hunter3@db/app")),
            ..PortalConfig::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2") && !text.contains("hunter3"), "{text}");
    }
}
