//! The command line. Doc comments here are the `--help` text.

mod alerts;
mod health;
mod human;
mod replay;
mod run;
mod templates;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::error::{Error, Result};

pub use human::{Format, Renderer};
pub use run::RunArgs;

/// `faultline --version`: the package version and the git revision it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("FAULTLINE_GIT_REV"),
    ")"
);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Streaming diagnostics for AI/ML services: OTLP logs, metrics and traces in, SQL rules,
/// Alertmanager-compatible alerts out.
#[derive(Debug, Parser)]
#[command(
    name = "faultline",
    version = VERSION,
    after_help = "Exit status: 0 ok; 1 the user must act (command line, pipeline, rule, input \
                  path or input); 2 the environment must (Kafka, disk, driver); 3 a bug in \
                  faultline."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log filter for stderr (tracing `EnvFilter` syntax, e.g. `info`, `faultline=debug`).
    #[arg(long, global = true, env = "FAULTLINE_LOG", default_value = "info")]
    pub log: String,

    /// Log lines on stderr: `text` (for people) or `json` (one object per line, with the
    /// event's fields, for log shippers).
    #[arg(long, global = true, env = "FAULTLINE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline: on JSON-lines files (`--input`), or as a Kafka consumer-group member
    /// (`--brokers`).
    Run(RunArgs),
    /// Validate a pipeline without running it: pipeline.toml and every rule (parse, plan
    /// against the table schemas, sandbox policy). Prints `file:line: message` per problem
    /// and exits 1 if there is any: usable as a pre-commit hook or CI gate.
    Check(CheckArgs),
    /// Replay a range of the input topics (`--from`, `--to`) or recording files (`--input`)
    /// through a pipeline at full speed in event time, sandboxed: its own consumer, no group
    /// commits, outputs to files or to prefixed topics, never the live ones. Prints a
    /// summary; with `--rules DIR --diff`, what a rule change would have changed. See README
    /// "Test and replay".
    Replay(replay::ReplayArgs),
    /// Unit-test rules, in the spirit of `promtool test rules` and in its notation where it
    /// applies: YAML files with input series, logs and spans, and the alerts, alert counts
    /// and suggestions expected. Prints each failure as expected/got; exits 1 if any test
    /// fails. See README "Test and replay".
    Test(TestArgs),
    /// Ask a running instance (`run --health-addr`) whether it is ready (GET URL,
    /// default `http://127.0.0.1:8080/readyz`): prints its report, exits 0 when it answered
    /// 200, else 1. For container health checks.
    Health(health::HealthArgs),
    /// Print alert notifications for a person — from alert files, a `run --output`
    /// directory, stdin or the alerts topic — filtered by alertname, severity, label, status
    /// and time. Resends are marked.
    Alerts(alerts::AlertsArgs),
    /// Collect telemetry beside a workload and produce it for a pipeline.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Mine log templates from lines (stdin to stdout by default): one JSON object or TSV row
    /// per line (`template` with `<*>` for parameters, `template_id`, `params`), or the
    /// templates by count. `--raw` takes whole log lines and moves their headers into
    /// `fields`. The same miner the pipeline runs on log records; see README "The templates
    /// command".
    Templates(templates::TemplatesArgs),
    /// Print a shell completion script (e.g. `faultline completions bash >
    /// /etc/bash_completion.d/faultline`).
    Completions(CompletionsArgs),
    /// Print the manual page (roff), e.g. `faultline man > faultline.1`.
    Man,
}

/// `faultline completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `faultline agent`.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Sample NVIDIA GPUs through NVML (memory used/total, utilization, temperature, power,
    /// ECC errors, per-process memory) and write OTLP metrics with `host.name`, GPU index and
    /// UUID. Needs an NVIDIA driver; without one it exits with a one-line error.
    Gpu(GpuAgentArgs),
    /// Snapshot the environment variables of a process (this one, or `--pid`) as OTLP logs,
    /// one record per variable; secret-looking names and credential-looking values are sent
    /// only as a keyed hash. The `env_drift` detector compares consecutive snapshots.
    Env(EnvAgentArgs),
}

/// `faultline agent env`.
#[derive(Debug, Args)]
pub struct EnvAgentArgs {
    /// The process to watch (reads /proc/PID/environ); default: the agent itself.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Only variables whose name starts with this, e.g. `APP_`.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Kafka bootstrap servers: produce OTLP protobuf to `--topic`.
    #[arg(long, required_unless_present = "output", conflicts_with = "output")]
    pub brokers: Option<String>,
    /// Topic for `--brokers`.
    #[arg(long, default_value = "otlp_logs")]
    pub topic: String,
    /// Append OTLP/JSON lines to this file instead.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Time between snapshots, e.g. `10s`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Stop after this many snapshots (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub count: Option<u64>,
}

/// `faultline agent gpu`.
#[derive(Debug, Args)]
pub struct GpuAgentArgs {
    /// Kafka bootstrap servers: produce OTLP protobuf to `--topic`.
    #[arg(long, required_unless_present = "output", conflicts_with = "output")]
    pub brokers: Option<String>,
    /// Topic for `--brokers`.
    #[arg(long, default_value = "otlp_metrics")]
    pub topic: String,
    /// Append OTLP/JSON lines to this file instead (what `faultline run --input` reads).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Time between samples, e.g. `1s`.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Stop after this many samples (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub count: Option<u64>,
}

/// `faultline test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Test files (YAML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Only tests whose name matches this regular expression.
    #[arg(long)]
    pub run: Option<String>,
    /// Also write a JUnit XML report here (Apache Ant's schema, read by CI systems).
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

/// `faultline check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Pipeline directory: holds `pipeline.toml` and the rule files it names.
    pub pipeline: PathBuf,
}

/// Runs a parsed command line; the exit code on success.
pub async fn execute(cli: Cli) -> Result<std::process::ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args)
            .await
            .map(|()| std::process::ExitCode::SUCCESS),
        Command::Alerts(args) => alerts::run(&args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Completions(args) => {
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "faultline",
                &mut std::io::stdout(),
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|source| Error::Io {
                    path: "<stdout>".into(),
                    source,
                })?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Check(args) => Ok(check(&args.pipeline).await),
        Command::Health(args) => Ok(match health::check(&args)? {
            true => std::process::ExitCode::SUCCESS,
            false => std::process::ExitCode::FAILURE,
        }),
        Command::Replay(args) => replay::run(args)
            .await
            .map(|()| std::process::ExitCode::SUCCESS),
        Command::Test(args) => {
            let filter = args
                .run
                .as_deref()
                .map(regex::Regex::new)
                .transpose()
                .map_err(|e| Error::Config {
                    location: "--run".into(),
                    message: e.to_string(),
                })?;
            let ok =
                crate::ruletest::run(&args.files, filter.as_ref(), args.junit.as_deref()).await?;
            Ok(match ok {
                true => std::process::ExitCode::SUCCESS,
                false => std::process::ExitCode::FAILURE,
            })
        }
        Command::Templates(args) => templates::run(&args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Agent(AgentCommand::Env(args)) => {
            let mut dest = destination(&args.output, &args.brokers, &args.topic)?;
            tokio::select! {
                r = crate::agent::env::run(
                    &mut dest,
                    args.pid,
                    args.prefix.as_deref(),
                    args.interval,
                    args.count,
                ) => r?,
                _ = shutdown_signal() => {}
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Agent(AgentCommand::Gpu(args)) => {
            let mut dest = destination(&args.output, &args.brokers, &args.topic)?;
            tokio::select! {
                r = crate::agent::gpu::run(&mut dest, args.interval, args.count) => r?,
                _ = shutdown_signal() => {}
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

fn destination(
    output: &Option<PathBuf>,
    brokers: &Option<String>,
    topic: &str,
) -> Result<crate::agent::Destination> {
    use crate::agent::Destination;
    Ok(match (output, brokers) {
        (Some(path), _) => Destination::File(path.clone()),
        (None, Some(brokers)) => Destination::Kafka(crate::sink::TopicWriter::new(brokers, topic)?),
        (None, None) => unreachable!("clap requires one"),
    })
}

/// Runs the loader's validation — the same `run` does — and prints every error.
async fn check(dir: &std::path::Path) -> std::process::ExitCode {
    match crate::load::check(dir).await {
        Ok(loaded) => {
            println!(
                "{}: ok ({} rules, {} detectors, {} incident indicators, {} remediations)",
                loaded.pipeline_toml().display(),
                loaded.rules.len(),
                loaded.sources.len(),
                loaded.indicators.len(),
                loaded.entries.len()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            // Problems with the pipeline are the user's (1); one the environment causes (a
            // file it cannot read) says so (2).
            let worst = errors.iter().map(|e| e.exit_status() as u8).max();
            std::process::ExitCode::from(worst.unwrap_or(1))
        }
    }
}

/// Colour on stdout: only on a terminal, and never with `NO_COLOR` set (no-color.org).
fn color_for_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("Signal received; stopping gracefully.");
}
