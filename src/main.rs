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

/// mimalloc's `mi_option_purge_delay`: its index in mimalloc v3's `mi_option_e`
/// (`libmimalloc-sys` names only the options whose index is the same in every version; a
/// test checks this one by its default, 1000 ms in mimalloc v3's `options.c`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the OS after this long unused, not mimalloc's 1 s: every
/// window frees and re-allocates hundreds of MB (tables, the aligner's buffers), which
/// otherwise the kernel unmaps and zeroes again each time (a third of the CPU in the
/// end-to-end bench).
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

fn tune_allocator() {
    // SAFETY: `mi_option_set` is not thread safe; this runs first in `main`, before any
    // other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

fn main() -> ExitCode {
    tune_allocator();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_mimalloc_documents() {
        // Untouched, an option reads its default: 1000 ms for the purge delay.
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            1000
        );
        tune_allocator();
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            PURGE_DELAY_MS
        );
    }
}
