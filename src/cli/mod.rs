//! The command line. Doc comments here are the `--help` text.

mod health;
mod replay;
mod templates;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::Result;
use crate::pipeline::files::run_files;
use crate::pipeline::kafka::run_kafka;

/// Streaming diagnostics for AI/ML services: OTLP logs, metrics and traces in, SQL rules,
/// Alertmanager-compatible alerts out.
#[derive(Debug, Parser)]
#[command(name = "faultline", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log filter for stderr (tracing `EnvFilter` syntax, e.g. `info`, `faultline=debug`).
    #[arg(long, global = true, env = "FAULTLINE_LOG", default_value = "info")]
    pub log: String,
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
    /// "Replay and rule tests".
    Replay(replay::ReplayArgs),
    /// Unit-test rules, in the spirit of `promtool test rules` and in its notation where it
    /// applies: YAML files with input series, logs and spans, and the alerts, alert counts
    /// and suggestions expected. Prints each failure as expected/got; exits 1 if any test
    /// fails. See README "Replay and rule tests".
    Test(TestArgs),
    /// Ask a running `faultline run --health-addr` instance whether it is ready (GET URL,
    /// default `http://127.0.0.1:8080/readyz`): prints its report, exits 0 when it answered
    /// 200, else 1. For container health checks.
    Health(health::HealthArgs),
    /// Collect telemetry beside a workload and produce it for a pipeline.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Mine log templates from lines (stdin to stdout by default): one JSON object or TSV row
    /// per line (`template` with `<*>` for parameters, `template_id`, `params`), or the
    /// templates by count. `--raw` takes whole log lines and moves their headers into
    /// `fields`. The same miner the pipeline runs on log records; see README "The templates
    /// command".
    Templates(templates::TemplatesArgs),
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

/// `faultline run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline directory: holds `pipeline.toml` and the rule files it names.
    #[arg(long, env = "FAULTLINE_PIPELINE")]
    pub pipeline: PathBuf,

    /// Input file, or directory of `.jsonl` files; repeatable. Each line is an OTLP/JSON
    /// export request or a flat record. At end of input all windows are evaluated.
    #[arg(long, required_unless_present = "brokers", conflicts_with = "brokers")]
    pub input: Vec<PathBuf>,

    /// With `--input`: write alerts.jsonl, incidents.jsonl, suggestions.jsonl, review.jsonl,
    /// deadletter.jsonl and late.jsonl here. Without it, alerts and suggestions go to stdout.
    #[arg(long, requires = "input")]
    pub output: Option<PathBuf>,

    /// Kafka bootstrap servers (HOST:PORT[,HOST:PORT]); consumes the input topics of
    /// `pipeline.toml` and produces to its output topics until SIGINT/SIGTERM.
    #[arg(long)]
    pub brokers: Option<String>,

    /// With `--brokers`: give up when no broker has answered within this time (e.g. `2m`).
    /// Default: keep retrying (with backoff and a reminder every 30 s); wrong credentials or
    /// an untrusted certificate end the run at once either way.
    #[arg(long, requires = "brokers", value_parser = humantime::parse_duration)]
    pub connect_timeout: Option<std::time::Duration>,

    /// With `--brokers`: serve `GET /healthz` (liveness: 200 while running) and `GET
    /// /readyz` (readiness: 200 while connected and consuming, 503 while connecting or while
    /// the brokers report errors) on this address, e.g. `0.0.0.0:8080`.
    #[arg(long, requires = "brokers", env = "FAULTLINE_HEALTH_ADDR")]
    pub health_addr: Option<String>,

    /// With `--brokers`: serve the pipeline's own metrics for Prometheus (`GET /metrics`,
    /// OpenMetrics text: records and bytes per topic, outputs per kind, dead letters, late
    /// records, windows, rule evaluation times, consumer lag per partition, watermark lag per
    /// shard, open traces, buffered bytes, alerts by state, checkpoint size and age, build
    /// info) on this address, e.g. `0.0.0.0:9464`. Default: off.
    #[arg(long, requires = "brokers", env = "FAULTLINE_METRICS_ADDR")]
    pub metrics_addr: Option<String>,

    /// Static group membership: this instance's stable name (e.g. the pod name), so that a
    /// restart gets its partitions back at once [default: `kafka.instance_id`].
    #[arg(long, requires = "brokers", env = "FAULTLINE_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Consumer group id [default: `kafka.group_id` of pipeline.toml, else `faultline`].
    #[arg(long, requires = "brokers")]
    pub group: Option<String>,

    /// With `--input`: feedback on earlier suggestions (JSON lines of `{suggestion_id,
    /// alert_fingerprint, verdict: fixed|not_fixed|wrong, action?, by?, at}`), applied to the
    /// knowledge base before the input. With Kafka, feedback comes from the
    /// `kafka.outputs.feedback` topic instead.
    #[arg(long, requires = "input")]
    pub feedback: Option<PathBuf>,
}

/// Runs a parsed command line; the exit code on success.
pub async fn execute(cli: Cli) -> Result<std::process::ExitCode> {
    match cli.command {
        Command::Run(args) => run(args).await.map(|()| std::process::ExitCode::SUCCESS),
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
                .map_err(|e| crate::Error::Config {
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
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> Result<()> {
    let mut loaded = crate::load::load(&args.pipeline).await?;
    if let Some(id) = &args.instance_id {
        loaded.config.kafka.instance_id = Some(id.clone());
    }
    match &args.brokers {
        Some(brokers) => {
            let group = args
                .group
                .clone()
                .unwrap_or_else(|| loaded.config.kafka.group_id.clone());
            let options = crate::pipeline::kafka::KafkaOptions {
                connect_timeout: args.connect_timeout,
                health_addr: args.health_addr.clone(),
                metrics_addr: args.metrics_addr.clone(),
            };
            run_kafka(loaded, brokers, &group, &options, shutdown_signal()).await?;
        }
        None => {
            run_files(
                loaded,
                &args.input,
                args.output.as_deref(),
                args.feedback.as_deref(),
            )
            .await?;
        }
    }
    Ok(())
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
