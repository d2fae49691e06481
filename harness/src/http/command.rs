//! `resetkit-harness run --target FILE`: load the target file, start the
//! fake SMTP server (and the app, if `[app]` says how), run the HTTP
//! scenarios, report the in-process ones as skipped.

use std::net::SocketAddr;
use std::sync::Arc;

use super::launch::RunningApp;
use super::runner;
use super::scenarios as http_scenarios;
use super::target_file::HttpTarget;
use crate::cli::RunArgs;
use crate::fake_smtp::FakeSmtpServer;
use crate::report::ConsoleReporter;
use crate::scenario::ScenarioInfo;
use crate::scenarios;

/// Default address of the fake SMTP server for HTTP runs.
const DEFAULT_SMTP: &str = "127.0.0.1:2525";

/// Runs `args` (which has a target file); returns the exit code.
pub(crate) async fn run(args: RunArgs) -> i32 {
    let Some(path) = &args.target else {
        return 2;
    };
    let target = match HttpTarget::load(path) {
        Ok(target) => {
            for note in &target.load_notes {
                println!("note: {note}");
            }
            Arc::new(target)
        }
        Err(e) => {
            eprintln!("resetkit-harness: {e}");
            return 2;
        }
    };
    let http = crate::scenario::select(http_scenarios::all(), &args.filter);
    let in_process: Vec<ScenarioInfo> = crate::scenario::select(scenarios::all(), &args.filter)
        .into_iter()
        .map(|s| s.info)
        .collect();
    if http.is_empty() && in_process.is_empty() {
        eprintln!("resetkit-harness: no scenario matches {:?}", args.filter);
        return 2;
    }
    if args.list {
        for s in &http {
            let skip = s
                .setup
                .reason(&target)
                .map(|r| format!("  [skipped: {r}]"))
                .unwrap_or_default();
            println!(
                "{:<14} {:<6} {}{skip}",
                s.info.id,
                s.info.severity.as_str(),
                s.info.title
            );
        }
        if args.verbose {
            for info in &in_process {
                println!(
                    "{:<14} {:<6} {}  [skipped: needs the in-process target]",
                    info.id,
                    info.severity.as_str(),
                    info.title
                );
            }
        } else if !in_process.is_empty() {
            println!("{}", in_process_summary(in_process.len()));
        }
        return 0;
    }
    let listen = args
        .smtp_listen
        .or(target.smtp.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 2525)));
    let server = match FakeSmtpServer::builder()
        .name("resetkit-harness")
        .listen(listen)
        .start()
    {
        Ok(server) => Arc::new(server),
        Err(e) => {
            eprintln!(
                "resetkit-harness: cannot start the fake SMTP server on {listen} (--smtp-listen, default {DEFAULT_SMTP}): {e}"
            );
            return 2;
        }
    };
    println!(
        "fake SMTP server on {} (plain SMTP, no TLS): the app's mail must go there",
        server.addr()
    );
    let _app = match &target.app {
        Some(app) => {
            println!(
                "starting the app: {}",
                super::launch::command_line(app, &target, server.addr()).join(" ")
            );
            match RunningApp::start(app, &target, server.addr()).await {
                Ok(app) => Some(app),
                Err(e) => {
                    eprintln!("resetkit-harness: {e}");
                    return 2;
                }
            }
        }
        None => None,
    };
    if let Err(e) = reachable(&target).await {
        eprintln!(
            "resetkit-harness: the app does not answer at {}: {e}\n\
             Start it with its SMTP pointed at smtp://{} (no TLS), or describe [app] in {}.",
            target.entry_url(),
            server.addr(),
            path.display()
        );
        return 2;
    }
    if !http.is_empty() {
        match runner::preflight(&target).await {
            Ok(checked) => {
                for line in checked {
                    println!("preflight: {line}");
                }
            }
            Err(e) => {
                eprintln!(
                    "resetkit-harness: {e}\nFix {} (forgot / login sections) and run again.",
                    path.display()
                );
                return 2;
            }
        }
    }
    let mut console = ConsoleReporter::stdout(args.verbose).reveal_tokens(args.reveal_tokens);
    let description = format!("HTTP target {} ({})", target.name, target.base_url);
    if let Err(e) = console.start(&description, http.len()) {
        eprintln!("resetkit-harness: cannot write to stdout: {e}");
        return 2;
    }
    let captured = server.clone();
    let report = runner::run(
        target.clone(),
        server,
        &http,
        &in_process,
        args.strict,
        &mut console,
    )
    .await;
    let in_process_results = report.results.iter().skip(http.len());
    if args.verbose {
        for result in in_process_results {
            let _ = console.scenario_finished(result);
        }
    } else if !in_process.is_empty() {
        println!("{}", in_process_summary(in_process.len()));
    }
    let _ = console.finish(&report);
    if let Some(timing) = report.results.iter().find(|r| r.info.id == "RST-HTTP-016") {
        for figures in timing
            .evidence
            .notes
            .iter()
            .filter(|n| n.contains("vs unknown: ratio of medians"))
        {
            println!("Timing (RST-HTTP-016, {}): {figures}", timing.verdict.as_str());
        }
    }
    crate::cli::write_reports(report, &args, &captured.messages())
}

fn in_process_summary(n: usize) -> String {
    format!("{n} in-process scenarios not applicable over HTTP (skipped; -v lists them)")
}

/// Whether the forgot page gets any HTTP answer.
async fn reachable(target: &HttpTarget) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    client
        .get(target.entry_url())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        })
}
