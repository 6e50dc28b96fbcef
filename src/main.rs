//! The `faultline` binary: parse the command line, run, report the error once, exit with a
//! status that says who must act (0 ok, 1 user, 2 environment, 3 internal).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use faultline::cli::{execute, Cli, LogFormat};
use faultline::error::ExitStatus;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than the system allocator: less CPU per record (BENCHMARKS.md, end to end).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are answers, not errors; a bad command line is the user's.
            let _ = e.print();
            return match e.use_stderr() {
                true => ExitCode::from(ExitStatus::User as u8),
                false => ExitCode::SUCCESS,
            };
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(ExitStatus::Environment as u8);
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(code) => code,
        Err(e) => {
            let (hint, status) = (e.hint(), e.exit_status());
            eprintln!("error: {}", said_once(&anyhow::Error::from(e)));
            if let Some(hint) = hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(status as u8)
        }
    }
}

/// The error and its causes, each said once: a cause whose text the message already holds
/// (an error that displays its source) is not repeated.
fn said_once(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}
