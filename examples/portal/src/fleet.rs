//! Several portal processes on one PostgreSQL behind a round-robin proxy:
//! what an operator runs behind a load balancer, for the fleet tests and
//! the harness (`harness/targets/portal-fleet.toml`, through the
//! `resetkit-portal-fleet` command).
//!
//! The proxy sends **each request** (not each connection) to the next
//! instance, so no two requests of one visitor are guaranteed the same
//! instance: everything the flow needs must be shared (PostgreSQL) or
//! carried by the browser under the deployment's keys. The instances get
//! the same `RESETKIT_PAGES_KEY` / `RESETKIT_FINGERPRINT_KEY`, the same
//! `--base-url` (the proxy's) and the same `--db-schema`.
//!
//! Requests to an instance that is down are answered 502 by the proxy (the
//! client asks again, as behind a real load balancer without retries).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::process::{Child, Command};

/// What the fleet is started with.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// The `resetkit-portal` executable.
    pub portal: PathBuf,
    /// Where the proxy listens (port 0: a free port).
    pub listen: SocketAddr,
    /// How many portal processes.
    pub instances: usize,
    /// PostgreSQL URL (passed as `DATABASE_URL`).
    pub database_url: String,
    /// Schema of the fleet's tables (`--db-schema`).
    pub db_schema: String,
    /// Further arguments for every instance (`--smtp ...`, `--fast-hash` ...).
    pub args: Vec<String>,
    /// The deployment's secrets, as environment variables for every instance.
    pub secrets: Vec<(String, String)>,
    /// How long an instance may take to answer its first request.
    pub ready_timeout: Duration,
}

/// A random schema name (`fleet_` and 12 hex digits).
pub fn random_schema() -> String {
    let mut bytes = [0u8; 6];
    rand::fill(&mut bytes[..]);
    format!(
        "fleet_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Random deployment keys (shared by the fleet's instances).
pub fn random_secrets() -> Vec<(String, String)> {
    let key = || {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes[..]);
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    vec![
        (resetkit::secrets::PAGES_KEY_VAR.to_owned(), key()),
        (resetkit::secrets::FINGERPRINT_KEY_VAR.to_owned(), key()),
    ]
}

struct Instance {
    addr: SocketAddr,
    child: Option<Child>,
}

/// The running fleet: its instances and the proxy in front of them.
/// Dropping it kills the instances.
pub struct Fleet {
    options: FleetOptions,
    base_url: String,
    proxy_addr: SocketAddr,
    instances: Vec<Instance>,
    proxy: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("proxy", &self.proxy_addr)
            .field(
                "instances",
                &self.instances.iter().map(|i| i.addr).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A free port on 127.0.0.1.
fn free_addr() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

impl Fleet {
    /// Starts the instances (one after another, each answering before the
    /// next starts), then the proxy.
    pub async fn start(options: FleetOptions) -> std::io::Result<Fleet> {
        let listener = tokio::net::TcpListener::bind(options.listen).await?;
        let proxy_addr = listener.local_addr()?;
        let base_url = format!("http://{proxy_addr}");
        let mut fleet = Fleet {
            base_url,
            proxy_addr,
            instances: Vec::new(),
            proxy: tokio::spawn(async {}),
            options,
        };
        for _ in 0..fleet.options.instances.max(1) {
            let addr = free_addr()?;
            fleet.instances.push(Instance { addr, child: None });
        }
        for i in 0..fleet.instances.len() {
            fleet.restart(i).await?;
        }
        let backends: Arc<Vec<SocketAddr>> = Arc::new(fleet.instances.iter().map(|i| i.addr).collect());
        let state = Arc::new(Proxy {
            backends,
            next: AtomicUsize::new(0),
        });
        let app = axum::Router::new().fallback(forward).with_state(state);
        fleet.proxy = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "fleet proxy stopped");
            }
        });
        Ok(fleet)
    }

    /// `http://PROXY`: the fleet's base URL (every instance builds links on it).
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// `http://ADDR` of instance `i` (bypassing the proxy).
    pub fn instance_url(&self, i: usize) -> String {
        format!("http://{}", self.instances[i].addr)
    }

    /// How many instances.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// Whether the fleet has no instance (never: at least one is started).
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// `kill -9` instance `i` (no shutdown, no cleanup: a crash).
    pub async fn kill(&mut self, i: usize) -> std::io::Result<()> {
        if let Some(mut child) = self.instances[i].child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Starts instance `i` (again) on its address; returns once it answers.
    pub async fn restart(&mut self, i: usize) -> std::io::Result<()> {
        self.kill(i).await?;
        let addr = self.instances[i].addr;
        let o = &self.options;
        let mut command = Command::new(&o.portal);
        command
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--base-url")
            .arg(&self.base_url)
            .arg("--db-schema")
            .arg(&o.db_schema)
            .args(&o.args)
            .env("DATABASE_URL", &o.database_url)
            .envs(o.secrets.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("PORTAL_SMTP_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let deadline = Instant::now() + o.ready_timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "fleet instance {i} ({addr}) exited before answering: {status}"
                )));
            }
            if get_status(addr, "/forgot").await == Some(StatusCode::OK) {
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.start_kill();
                return Err(std::io::Error::other(format!(
                    "fleet instance {i} ({addr}) did not answer within {:?}",
                    o.ready_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.instances[i].child = Some(child);
        Ok(())
    }

    /// Stops every instance and the proxy.
    pub async fn stop(mut self) {
        for i in 0..self.instances.len() {
            if let Some(child) = &self.instances[i].child
                && let Some(pid) = child.id()
            {
                // A clean shutdown (SIGTERM) first.
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
        }
        for i in 0..self.instances.len() {
            if let Some(mut child) = self.instances[i].child.take() {
                let exited = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                if exited.is_err() {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
            }
        }
        self.proxy.abort();
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.proxy.abort();
        for instance in &mut self.instances {
            if let Some(child) = &mut instance.child {
                let _ = child.start_kill();
            }
        }
    }
}

/// The status of `GET path` on `addr`, or `None` when it does not answer.
async fn get_status(addr: SocketAddr, path: &str) -> Option<StatusCode> {
    let request = axum::http::Request::get(path)
        .header("host", addr.to_string())
        .body(Body::empty())
        .ok()?;
    let response = tokio::time::timeout(Duration::from_secs(2), send(addr, request))
        .await
        .ok()?
        .ok()?;
    Some(response.status())
}

/// Sends one request to `addr` on a new connection.
async fn send(addr: SocketAddr, request: Request) -> Result<Response, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    Ok(response.map(Body::new))
}

struct Proxy {
    backends: Arc<Vec<SocketAddr>>,
    next: AtomicUsize,
}

/// Sends the request, unchanged (`Host` included), to the next instance.
async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let n = proxy.next.fetch_add(1, Ordering::Relaxed);
    let addr = proxy.backends[n % proxy.backends.len()];
    match send(addr, request).await {
        Ok(response) => response,
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            format!("fleet proxy: instance {addr} did not answer: {error}"),
        )
            .into_response(),
    }
}
