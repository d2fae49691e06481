//! The `resetkit-harness` command line: `run`, `smtp`, `doctor`, `fingerprint`, `init`.
//!
//! Exit codes: 0 every MUST passed (or the command succeeded), 1 a MUST
//! failed (or `doctor` found a refused step), 2 the harness itself failed
//! (bad arguments, a port in use, a scenario that could not run).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The web inbox closes a connection that sends no complete request head
/// within this time, as the portal does (idle or trickling clients).
const INBOX_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

use clap::{Args, Parser, Subcommand};
use resetkit::mail::Mailbox;
use resetkit_smtp::{SmtpConfigBuilder, SmtpMailer};

use crate::fake_smtp::FakeSmtpServer;
use crate::inspect;
use crate::report::{self, ConsoleReporter};
use crate::runner;
use crate::scenario as runner_report;
use crate::scenarios;
use crate::target::ReferenceTarget;

/// Conformance harness for password-reset flows.
#[derive(Debug, Parser)]
#[command(name = "resetkit-harness", version, about)]
pub struct Cli {
    /// What to do (default: `run`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the scenario suite against the reference flow (in-memory stores
    /// and the SMTP mailer sending to the harness's fake server), or with
    /// `--target FILE` against a running web app over HTTP.
    Run(RunArgs),
    /// Run the capture SMTP server standalone and print each message's
    /// links as it arrives (point an app's SMTP settings at it); `--web`
    /// adds a browser inbox.
    #[command(after_help = SMTP_HELP)]
    Smtp(SmtpArgs),
    /// Check a real SMTP server accepts a sender: connect, TLS, AUTH,
    /// MAIL FROM, RCPT TO, then RSET — nothing is delivered.
    #[command(after_help = SMTP_URL_HELP)]
    Doctor(DoctorArgs),
    /// Print the fingerprint of identifiers under the deployment key, to
    /// find requests for them among the `request_ignored` events.
    Fingerprint(FingerprintArgs),
    /// Write a draft target file from a web app's forgot-password page:
    /// the form, its identifier field and CSRF token, what "accepted"
    /// looks like; with --account, also the emailed link and the
    /// set-password form.
    Init(InitArgs),
}

/// `init` options.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The app's forgot-password page, e.g. http://127.0.0.1:8000/accounts/password_reset/.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Where to write the draft (default: print it).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// A test account's address: init asks for a reset for it, reads the
    /// email from its fake SMTP server (point the app's SMTP there), follows
    /// the link and sets a new random password (written into the draft).
    #[arg(long, value_name = "ADDRESS")]
    pub account: Option<String>,
    /// Where the fake SMTP server listens with --account.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2525")]
    pub smtp_listen: SocketAddr,
    /// Do not submit the forgot form (with an address no account has) to
    /// learn what "accepted" looks like.
    #[arg(long)]
    pub no_probe: bool,
    /// Draft a JSON-API target: --url is the forgot endpoint; give one
    /// example request with --body, or let init read the app's OpenAPI
    /// document (--openapi, else the usual places).
    #[arg(long)]
    pub api: bool,
    /// With --api: one example request body, e.g. '{"email": "alice@example.test"}'.
    #[arg(long, value_name = "JSON", requires = "api")]
    pub body: Option<String>,
    /// With --api: the app's OpenAPI document (JSON).
    #[arg(long, value_name = "URL", requires = "api")]
    pub openapi: Option<String>,
}

/// The options of an `smtp://` URL, shown by `doctor --help`.
pub const SMTP_URL_HELP: &str =
    "SMTP URL: smtp://[user:pass@]host[:port][?option=value&...]  (smtps:// = implicit TLS, port 465)
  tls=starttls|required      STARTTLS, required (default for smtp://, port 587)
  tls=opportunistic          STARTTLS when the server offers it
  tls=none|off               plain SMTP, no TLS (local capture servers, e.g. `resetkit-harness smtp`)
  tls=implicit|smtps         TLS from the first byte (port 465)
  auth=plain|login|plain,login   AUTH mechanisms to offer
  connect_timeout_ms=N, command_timeout_ms=N, hello=NAME, reuse=true, probe=ADDR
User and password are percent-decoded (p%40ss = p@ss); quote the URL in the shell.";

/// What `smtp --help` adds: how an app sends to the capture server.
pub const SMTP_HELP: &str = "Point the app at the capture server with plain SMTP, no TLS and no AUTH, e.g.
  smtp://127.0.0.1:2525?tls=none     (resetkit-smtp / resetkit-harness doctor URL syntax)
  host 127.0.0.1, port 2525, encryption none   (most frameworks' settings)
With --web 127.0.0.1:8025, open http://127.0.0.1:8025/ for the inbox; scripts read
http://127.0.0.1:8025/api/messages (JSON, newest first) and clear it with
  curl -X POST -H 'X-Inbox-Clear: 1' http://127.0.0.1:8025/api/messages/clear";

/// `fingerprint` options.
#[derive(Args)]
pub struct FingerprintArgs {
    /// The deployment key (as configured with `fingerprint_key`), from the
    /// environment only, so it stays out of shell history.
    #[arg(
        long = "key-from-env",
        env = "RESETKIT_FINGERPRINT_KEY",
        hide_env_values = true,
        hide = true
    )]
    pub key: String,
    /// Identifiers (email addresses or usernames) as a user would type them.
    #[arg(required = true, value_name = "IDENTIFIER")]
    pub identifiers: Vec<String>,
}

impl std::fmt::Debug for FingerprintArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FingerprintArgs")
            .field("key", &"[REDACTED]")
            .field("identifiers", &self.identifiers)
            .finish()
    }
}

/// `run` options.
#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// Only scenarios whose ID starts with this, or matches this glob
    /// (`*`, `?`); repeatable.
    #[arg(long, value_name = "ID|GLOB")]
    pub filter: Vec<String>,
    /// List the selected scenarios instead of running them.
    #[arg(long)]
    pub list: bool,
    /// Warnings (broken SHOULDs) fail the run too.
    #[arg(long)]
    pub strict: bool,
    /// Write a JSON report (one record per scenario, with evidence).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write a JUnit XML report (one testsuite per scenario group).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report (no network, no scripts): open it
    /// in a browser, e.g. from a CI artifact.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Show reset tokens in full in every report (default: a fingerprint
    /// such as `tok#3f9a1c2e…`, so reports hold no live reset link).
    #[arg(long)]
    pub reveal_tokens: bool,
    /// Show evidence (emails, transcripts) of failures in full.
    #[arg(long, short)]
    pub verbose: bool,
    /// Drive a web app over HTTP as this target file describes (its forms,
    /// CSRF, link, accounts); the app's SMTP must point at `--smtp-listen`.
    /// In-process scenarios are then reported as skipped.
    #[arg(long, value_name = "FILE")]
    pub target: Option<PathBuf>,
    /// Where the fake SMTP server listens for the app's mail with
    /// `--target` (default: the file's `smtp.listen`, else 127.0.0.1:2525).
    #[arg(long, value_name = "ADDR", requires = "target")]
    pub smtp_listen: Option<SocketAddr>,
}

/// `smtp` options.
#[derive(Debug, Args)]
pub struct SmtpArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:2525")]
    pub listen: SocketAddr,
    /// Exit after this many messages (default: run until interrupted).
    #[arg(long)]
    pub count: Option<usize>,
    /// Also serve a web inbox on this address (e.g. 127.0.0.1:8025):
    /// messages, their text / HTML / raw / headers, links and findings,
    /// JSON at /api/messages.
    /// The inbox must listen on a loopback address (it shows live reset
    /// links); a non-loopback `--web` is refused unless `--web-public` says
    /// other machines may read it.
    #[arg(long, value_name = "ADDR")]
    pub web: Option<SocketAddr>,
    /// Allow a non-loopback `--web` address (a test network whose other
    /// machines read the inbox on purpose); Host headers may then name an
    /// IP address.
    #[arg(long, requires = "web")]
    pub web_public: bool,
}

/// `doctor` options.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The server, e.g. `smtp://user:pass@mail.example.com:587?tls=starttls`.
    #[arg(long, env = "RESETKIT_SMTP_URL", value_name = "URL")]
    pub smtp: String,
    /// A sender to check (the From of reset emails); repeat it for every
    /// sender a resolver strategy may pick (fixed, owner, queue).
    #[arg(long, value_name = "ADDR", required = true)]
    pub from: Vec<String>,
    /// The recipient used for `RCPT TO` (nothing is delivered to it).
    #[arg(long, value_name = "ADDR")]
    pub probe_rcpt: String,
    /// The service's public base URL: checked to answer over HTTPS.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
}

/// Parses the process arguments and runs; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("resetkit-harness: cannot start the async runtime: {e}");
            return 2;
        }
    };
    runtime.block_on(execute(cli.command.unwrap_or(Command::Run(RunArgs::default()))))
}

/// Runs one command; returns the exit code.
pub async fn execute(command: Command) -> i32 {
    match command {
        Command::Run(args) => run(args).await,
        Command::Smtp(args) => smtp(args).await,
        Command::Doctor(args) => doctor(args).await,
        Command::Fingerprint(args) => fingerprint(args),
        Command::Init(args) => init(args).await,
    }
}

async fn init(args: InitArgs) -> i32 {
    if let Some(out) = &args.out
        && out.exists()
        && !args.force
    {
        eprintln!(
            "resetkit-harness init: {} exists; pass --force to overwrite it",
            out.display()
        );
        return 2;
    }
    if args.api {
        let options = crate::http::init::api::ApiInitOptions {
            url: args.url.clone(),
            body: args.body.clone(),
            openapi: args.openapi.clone(),
            probe: !args.no_probe,
        };
        return match crate::http::init::api::draft_api(&options).await {
            Ok(draft) => write_draft(&args, &draft),
            Err(e) => {
                eprintln!("resetkit-harness init: {e}");
                2
            }
        };
    }
    let server = match &args.account {
        Some(_) => match FakeSmtpServer::builder()
            .name("resetkit-harness")
            .listen(args.smtp_listen)
            .start()
        {
            Ok(server) => {
                eprintln!(
                    "fake SMTP server on {} (plain SMTP, no TLS): the app's mail must go there",
                    server.addr()
                );
                Some(std::sync::Arc::new(server))
            }
            Err(e) => {
                eprintln!(
                    "resetkit-harness init: cannot listen on {} (--smtp-listen): {e}",
                    args.smtp_listen
                );
                return 2;
            }
        },
        None => None,
    };
    let mut options = crate::http::init::InitOptions::new(args.url.clone());
    options.probe = !args.no_probe;
    options.account = args.account.clone();
    let draft = match crate::http::init::draft(&options, server).await {
        Ok(draft) => draft,
        Err(e) => {
            eprintln!("resetkit-harness init: {e}");
            return 2;
        }
    };
    write_draft(&args, &draft)
}

/// Writes `draft` to `--out`, or prints it.
fn write_draft(args: &InitArgs, draft: &str) -> i32 {
    match &args.out {
        Some(out) => match std::fs::write(out, draft) {
            Ok(()) => {
                eprintln!(
                    "wrote {}: fill in what is marked FILL IN, then run `resetkit-harness run --target {}`",
                    out.display(),
                    out.display()
                );
                0
            }
            Err(e) => {
                eprintln!("resetkit-harness init: writing {}: {e}", out.display());
                2
            }
        },
        None => {
            print!("{draft}");
            0
        }
    }
}

fn fingerprint(args: FingerprintArgs) -> i32 {
    let key = match resetkit::fingerprint::FingerprintKey::new(args.key.into_bytes()) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("resetkit-harness fingerprint: RESETKIT_FINGERPRINT_KEY: {e}");
            return 2;
        }
    };
    for identifier in &args.identifiers {
        println!(
            "{}  {identifier}",
            resetkit::fingerprint::fingerprint(&key, identifier)
        );
    }
    0
}

async fn run(args: RunArgs) -> i32 {
    if args.target.is_some() {
        return crate::http::command::run(args).await;
    }
    let selected = crate::scenario::select(scenarios::all(), &args.filter);
    let http = crate::scenario::select(crate::http::scenarios::all(), &args.filter);
    if !args.filter.is_empty() && !http.is_empty() {
        let ids: Vec<&str> = http.iter().map(|s| s.info.id).collect();
        eprintln!(
            "resetkit-harness: HTTP checks need a target file: {} run against a web app described by --target FILE \
             (e.g. --target harness/targets/portal.toml); without --target only the in-process scenarios run",
            ids.join(", ")
        );
        if selected.is_empty() {
            return 2;
        }
    }
    if selected.is_empty() {
        eprintln!("resetkit-harness: no scenario matches {:?}", args.filter);
        return 2;
    }
    if args.list {
        for s in &selected {
            println!(
                "{:<14} {:<6} {}",
                s.info.id,
                s.info.severity.as_str(),
                s.info.title
            );
        }
        return 0;
    }
    let target = ReferenceTarget;
    let mut console = ConsoleReporter::stdout(args.verbose).reveal_tokens(args.reveal_tokens);
    if let Err(e) = console.start(&crate::target::TargetFactory::describe(&target), selected.len()) {
        eprintln!("resetkit-harness: cannot write to stdout: {e}");
        return 2;
    }
    let report = runner::run(&target, &selected, args.strict, &mut console).await;
    let _ = console.finish(&report);
    write_reports(report, &args, &[])
}

/// Writes the JSON, JUnit and HTML reports `args` asks for, tokens shown as
/// fingerprints unless `--reveal-tokens` (`captured`: every message of the
/// run, whose tokens are redacted too); returns the run's exit code, or 2
/// when a report could not be written.
pub(crate) fn write_reports(
    mut report: runner_report::RunReport,
    args: &RunArgs,
    captured: &[crate::fake_smtp::CapturedMessage],
) -> i32 {
    let mut code = report.exit_code();
    if !args.reveal_tokens {
        report = report::redacted(report, captured.iter().map(|m| m.data.as_slice()));
    }
    type Write = fn(&runner_report::RunReport, &std::path::Path) -> std::io::Result<()>;
    let writes: [(&Option<PathBuf>, Write); 3] = [
        (&args.json, report::write_json),
        (&args.junit, report::write_junit),
        (&args.html, report::write_html),
    ];
    for (path, write) in writes {
        if let Some(path) = path
            && let Err(e) = write(&report, path)
        {
            eprintln!("resetkit-harness: {e}");
            code = 2;
        }
    }
    code
}

async fn smtp(args: SmtpArgs) -> i32 {
    let server = match FakeSmtpServer::builder().listen(args.listen).start() {
        Ok(server) => std::sync::Arc::new(server),
        Err(e) => {
            eprintln!("resetkit-harness: cannot listen on {}: {e}", args.listen);
            return 2;
        }
    };
    println!(
        "capturing SMTP on {} (plain SMTP, no TLS: smtp://{}?tls=none); Ctrl-C to stop",
        server.addr(),
        server.addr()
    );
    if let Some(web) = args.web {
        if !web.ip().is_loopback() && !args.web_public {
            eprintln!(
                "resetkit-harness: --web {web} is reachable from other machines and the inbox shows live \
                 reset links: listen on a loopback address (127.0.0.1, [::1]), or add --web-public if \
                 other machines must read it"
            );
            return 2;
        }
        let listener = match tokio::net::TcpListener::bind(web).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("resetkit-harness: cannot listen on {web} (--web): {e}");
                return 2;
            }
        };
        let shown = listener.local_addr().unwrap_or(web);
        if !shown.ip().is_loopback() {
            println!(
                "note: the web inbox on {shown} is reachable from other machines and shows live reset links"
            );
        }
        println!("web inbox on http://{shown}/ (JSON: http://{shown}/api/messages)");
        let access = if args.web_public {
            crate::inbox::InboxAccess::Network
        } else {
            crate::inbox::InboxAccess::Loopback
        };
        let inbox = server.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::inbox::serve(listener, inbox, access, INBOX_HEADER_TIMEOUT).await {
                eprintln!("resetkit-harness: the web inbox stopped: {e}");
            }
        });
    }
    let mut last_id = 0;
    let mut shown = 0;
    loop {
        let arrived = tokio::select! {
            _ = tokio::signal::ctrl_c() => return 0,
            arrived = server.next_after(last_id) => arrived,
        };
        for message in arrived {
            last_id = message.id;
            shown += 1;
            print_message(&message);
            if args.count.is_some_and(|n| shown >= n) {
                // Let the client read its `250` and quit before the server goes.
                server
                    .wait_closed(message.connection, Duration::from_secs(2))
                    .await;
                return 0;
            }
        }
    }
}

fn print_message(message: &crate::fake_smtp::CapturedMessage) {
    println!(
        "--- message {}: MAIL FROM <{}> RCPT TO {}",
        message.id,
        message.mail_from,
        message
            .rcpt_to
            .iter()
            .map(|r| format!("<{r}>"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    match inspect::ParsedMail::parse(&message.data) {
        Ok(mail) => {
            println!("    Subject: {}", mail.subject);
            let mut links = mail.text.as_deref().map(inspect::text_links).unwrap_or_default();
            for link in mail.html.as_deref().map(inspect::html_links).unwrap_or_default() {
                if !links.contains(&link) {
                    links.push(link);
                }
            }
            if links.is_empty() {
                println!("    (no links)");
            }
            for link in links {
                println!("    link: {link}");
            }
        }
        Err(e) => println!("    (cannot parse the message: {e})"),
    }
}

async fn doctor(args: DoctorArgs) -> i32 {
    let mut senders = Vec::with_capacity(args.from.len());
    for from in &args.from {
        match Mailbox::address_only(from) {
            Ok(mailbox) => senders.push(mailbox),
            Err(e) => {
                eprintln!("resetkit-harness doctor: --from {from:?}: {e}");
                return 2;
            }
        }
    }
    let config = SmtpConfigBuilder::from_url(&args.smtp).map(|b| b.probe_recipient(args.probe_rcpt.clone()));
    let config = match config.and_then(|b| b.build()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("resetkit-harness doctor: --smtp: {e}");
            return 2;
        }
    };
    let mailer = match SmtpMailer::new(config) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("resetkit-harness doctor: {e}");
            return 2;
        }
    };
    let mut failures = Vec::new();
    let mut hinted = false;
    for from in &senders {
        let report = mailer.preflight(from).await;
        print!("{report}");
        if let Some(error) = &report.error {
            failures.push(format!("<{}>: {error}", from.address()));
            if !hinted && let Some(hint) = starttls_hint(&args.smtp, &report) {
                println!("  hint: {hint}");
                hinted = true;
            }
        }
    }
    if let Some(base) = &args.base_url {
        match check_base_url(base).await {
            Ok(line) => println!("base URL {base}: {line}"),
            Err(reason) => {
                println!("base URL {base}: FAIL ({reason})");
                failures.push(format!("base URL {base}: {reason}"));
            }
        }
    }
    if failures.is_empty() {
        let list: Vec<&str> = senders.iter().map(Mailbox::address).collect();
        println!(
            "verdict: PASS — the server accepts {} as sender(s) (nothing was delivered)",
            list.join(", ")
        );
        0
    } else {
        println!("verdict: FAIL — {}", failures.join("; "));
        1
    }
}

/// A suggestion when STARTTLS failed: `?tls=none` for a server on this
/// machine or a capture server that offers no TLS, `?tls=opportunistic`
/// otherwise (and never silently for a remote server).
fn starttls_hint(url: &str, report: &resetkit_smtp::PreflightReport) -> Option<String> {
    let failed = report.steps.iter().find(|s| !s.ok)?;
    if failed.name != "starttls" {
        return None;
    }
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str().unwrap_or_default();
    let local = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let mut fixed = parsed.clone();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "tls")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    fixed
        .query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("tls", "none");
    if parsed.password().is_some() {
        let _ = fixed.set_password(Some("***"));
    }
    let what = if failed.detail.contains("does not offer") {
        "offers no STARTTLS"
    } else {
        "failed the TLS handshake"
    };
    Some(if local {
        format!(
            "this server on {host} {what}; a local capture server (e.g. `resetkit-harness smtp`) speaks plain SMTP: use {fixed}"
        )
    } else {
        format!(
            "the server {what}; if it only takes TLS from the first byte use smtps:// (port 465); \
             plain SMTP ({fixed}) sends credentials and mail unencrypted, only for a server on a trusted network"
        )
    })
}

/// Whether the public base URL is https and answers (2xx or 3xx); an
/// `http://` loopback URL is accepted with a note (local testing).
async fn check_base_url(base: &str) -> Result<String, String> {
    let url = url::Url::parse(base).map_err(|e| format!("not a URL: {e}"))?;
    let loopback = url.host_str().is_some_and(|h| {
        h == "localhost"
            || h.trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    let note = match url.scheme() {
        "https" => "",
        "http" if loopback => {
            "; note: http:// is accepted for a loopback address only (local testing): a deployment's reset links must use https"
        }
        scheme => return Err(format!("scheme is {scheme}, reset links must use https")),
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| format!("no answer over {}: {e}", url.scheme().to_ascii_uppercase()))?;
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        Ok(format!("ok (HTTP {status}){note}"))
    } else {
        Err(format!("answered HTTP {status}"))
    }
}
