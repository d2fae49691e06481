//! Starting the app a target file describes under `[app]`, waiting until it
//! answers, and stopping it (with everything it started) after the run.

use std::fs::File;
use std::io::Read as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::target_file::{AppLaunch, HttpTarget};

/// Why the app could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The program could not be run.
    #[error("cannot start `{program}` (app.command): {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// It exited before answering.
    #[error("the app exited ({status}) before answering at {url}; its output ends with:\n{output}")]
    Exited {
        /// The exit status.
        status: String,
        /// The URL polled.
        url: String,
        /// The end of its output.
        output: String,
    },
    /// It did not answer in time.
    #[error(
        "the app did not answer at {url} within {secs} s (app.ready_timeout_secs); its output ends with:\n{output}"
    )]
    NotReady {
        /// The URL polled.
        url: String,
        /// The timeout.
        secs: u64,
        /// The end of its output.
        output: String,
    },
    /// Creating the output file failed.
    #[error("cannot create a file for the app's output: {0}")]
    Io(#[from] std::io::Error),
}

/// The app, running; stopped when dropped.
#[derive(Debug)]
pub struct RunningApp {
    child: Child,
    output: tempfile::NamedTempFile,
}

/// `text` with the placeholders filled in: `{smtp}`, `{smtp_host}`,
/// `{smtp_port}`, `{base_url}`, `{listen}` and `{port}`.
pub fn fill(text: &str, target: &HttpTarget, smtp: SocketAddr) -> String {
    let base = target.base_url.as_str().trim_end_matches('/').to_owned();
    let port = target.base_url.port_or_known_default().unwrap_or(80);
    let listen = format!("{}:{port}", target.base_url.host_str().unwrap_or("127.0.0.1"));
    text.replace("{smtp_host}", &smtp.ip().to_string())
        .replace("{smtp_port}", &smtp.port().to_string())
        .replace("{smtp}", &smtp.to_string())
        .replace("{base_url}", &base)
        .replace("{listen}", &listen)
        .replace("{port}", &port.to_string())
}

/// `command` with its placeholders filled in ([`fill`]).
pub fn command_line(app: &AppLaunch, target: &HttpTarget, smtp: SocketAddr) -> Vec<String> {
    app.command.iter().map(|part| fill(part, target, smtp)).collect()
}

/// `env` with its placeholders filled in ([`fill`]).
pub fn environment(app: &AppLaunch, target: &HttpTarget, smtp: SocketAddr) -> Vec<(String, String)> {
    app.env
        .iter()
        .map(|(k, v)| (k.clone(), fill(v, target, smtp)))
        .collect()
}

/// Where the app runs: `app.dir` relative to the target file's directory,
/// else that directory (else the current one).
pub fn working_dir(app: &AppLaunch, target: &HttpTarget) -> Option<std::path::PathBuf> {
    match (&target.file_dir, &app.dir) {
        (Some(base), Some(dir)) => Some(base.join(dir)),
        (None, Some(dir)) => Some(dir.clone()),
        (Some(base), None) => Some(base.clone()),
        (None, None) => None,
    }
}

impl RunningApp {
    /// Starts `[app]` with its output going to a temporary file, then waits
    /// until `GET forgot.page` gets any HTTP answer.
    pub async fn start(
        app: &AppLaunch,
        target: &HttpTarget,
        smtp: SocketAddr,
    ) -> Result<RunningApp, LaunchError> {
        let argv = command_line(app, target, smtp);
        let output = tempfile::NamedTempFile::new()?;
        let (program, args) = argv.split_first().map_or(("", &[][..]), |(p, a)| (p.as_str(), a));
        let mut command = Command::new(program);
        for name in &app.env_remove {
            command.env_remove(name);
        }
        if let Some(dir) = working_dir(app, target) {
            command.current_dir(dir);
        }
        command
            .args(args)
            .envs(environment(app, target, smtp))
            .stdin(Stdio::null())
            .stdout(output.reopen()?)
            .stderr(output.reopen()?);
        #[cfg(unix)]
        {
            // Its own process group, so stopping it also stops what it
            // started (`cargo run` starts the app as a child).
            use std::os::unix::process::CommandExt as _;
            command.process_group(0);
        }
        let child = command.spawn().map_err(|source| LaunchError::Spawn {
            program: program.to_owned(),
            source,
        })?;
        let mut running = RunningApp { child, output };
        running
            .wait_ready(target, Duration::from_secs(app.ready_timeout_secs))
            .await?;
        Ok(running)
    }

    async fn wait_ready(&mut self, target: &HttpTarget, timeout: Duration) -> Result<(), LaunchError> {
        let url = target.entry_url();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| LaunchError::Io(std::io::Error::other(e)))?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(LaunchError::Exited {
                    status: status.to_string(),
                    url: url.to_string(),
                    output: self.output_tail(30),
                });
            }
            if client.get(url.clone()).send().await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::NotReady {
                    url: url.to_string(),
                    secs: timeout.as_secs(),
                    output: self.output_tail(30),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last `lines` lines the app printed.
    pub fn output_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(self.output.path()) {
            let _ = file.read_to_string(&mut text);
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops the app (and its process group): TERM, then KILL after 3 s.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        #[cfg(unix)]
        {
            let group = format!("-{}", self.child.id());
            let signal = |name: &str| {
                let _ = Command::new("kill")
                    .args([name, "--", &group])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            };
            signal("-TERM");
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            signal("-KILL");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_in() {
        let toml = r#"
            base_url = "http://127.0.0.1:18380/"
            [app]
            command = ["portal", "--listen", "{listen}", "--smtp", "smtp://{smtp}?tls=none", "--base-url", "{base_url}", "--port={port}"]
            env = { SMTP_HOST = "{smtp_host}", SMTP_PORT = "{smtp_port}", URL = "{base_url}/x" }
            [forgot]
            page = "/forgot"
            identifier_field = "identifier"
            accepted = { status = 303 }
            [set_password]
            password_field = "password"
            success = { status = 303 }
        "#;
        let target = HttpTarget::from_toml_str(toml, "t.toml").unwrap();
        let app = target.app.as_ref().unwrap();
        let smtp: SocketAddr = "127.0.0.1:12525".parse().unwrap();
        assert_eq!(
            command_line(app, &target, smtp),
            [
                "portal",
                "--listen",
                "127.0.0.1:18380",
                "--smtp",
                "smtp://127.0.0.1:12525?tls=none",
                "--base-url",
                "http://127.0.0.1:18380",
                "--port=18380"
            ]
        );
        assert_eq!(
            environment(app, &target, smtp),
            [
                ("SMTP_HOST".to_owned(), "127.0.0.1".to_owned()),
                ("SMTP_PORT".to_owned(), "12525".to_owned()),
                ("URL".to_owned(), "http://127.0.0.1:18380/x".to_owned()),
            ]
        );
        assert_eq!(app.ready_timeout_secs, 180);
    }
}
