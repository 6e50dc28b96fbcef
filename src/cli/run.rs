//! `faultline run`: its arguments, the choice of output (files, JSON lines, or lines for a
//! person with a summary), and the end-of-input checks.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::human::{self, Format, HumanSink};
use super::shutdown_signal;
use crate::error::{Error, Result};
use crate::pipeline::files::run_files;
use crate::pipeline::kafka::run_kafka;
use crate::sink::{FileSink, Sink, StdoutSink};

/// `faultline run`.
#[derive(Debug, Args)]
#[command(after_help = INPUT_ORDER)]
pub struct RunArgs {
    /// Pipeline directory: holds `pipeline.toml` and the rule files it names.
    #[arg(long, env = "FAULTLINE_PIPELINE")]
    pub pipeline: PathBuf,

    /// Input: a file, a directory, or `-` for stdin; repeatable. Each line is an OTLP/JSON
    /// export request or a flat record; `*.gz` files are decompressed. A directory stands for
    /// its `*.jsonl`, `*.json` and `*.gz` files (not its subdirectories, unless
    /// `--recursive`). At the end of the input every open window is evaluated.
    #[arg(long, conflicts_with = "brokers")]
    pub input: Vec<PathBuf>,

    /// With `--input`: also read the subdirectories of input directories.
    #[arg(long, requires = "input")]
    pub recursive: bool,

    /// With `--input`: write alerts.jsonl, incidents.jsonl, suggestions.jsonl, review.jsonl,
    /// deadletter.jsonl and late.jsonl here. Without it, alerts and suggestions go to stdout.
    #[arg(long, requires = "input")]
    pub output: Option<PathBuf>,

    /// With `--input`: how stdout shows the run. `json`: alerts and suggestions as JSON
    /// lines (`schemas/alert.json`, `schemas/suggestion.json`); `human`: a line per
    /// notification (resends marked), the best suggestion under it and a summary table at
    /// the end. Default: `human` when stdout is a terminal, else `json`.
    #[arg(long, value_enum, requires = "input")]
    pub format: Option<Format>,

    /// With `--input`: end with exit status 0 even when every input message was a dead
    /// letter (by default that is an error: the input is not what the pipeline reads).
    #[arg(long, requires = "input")]
    pub allow_bad_input: bool,

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

    /// With `--brokers`: also push those metrics, and a span per rule evaluation, to an
    /// OpenTelemetry collector's OTLP/HTTP receiver at this base URL (protobuf to
    /// `/v1/metrics` and `/v1/traces`), e.g. `http://otel-collector:4318`. Default: off.
    #[arg(long, requires = "brokers", env = "FAULTLINE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// How often the OTLP export runs (and once more at shutdown).
    #[arg(long, requires = "otlp_endpoint", default_value = "10s", value_parser = humantime::parse_duration)]
    pub otlp_interval: std::time::Duration,

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

/// How inputs are ordered, for `run --help`.
const INPUT_ORDER: &str = "\
Input order: each input file (and stdin) is a partition with its own watermark, as a Kafka
partition is; the files are read interleaved, always the line of the file that is furthest
behind in event time (ties: the earlier file on the command line), so a log file and a trace
file of the same period line up. A directory's files come in name order. Within a file, lines
are read in order. The same input always gives the same output.

Exit status: 0 ok; 1 the user must act (command line, pipeline, rule, input path, input that
is all dead letters); 2 the environment must (Kafka, disk, driver); 3 a bug in faultline.";

fn kafka_options(args: &RunArgs) -> crate::pipeline::kafka::KafkaOptions {
    crate::pipeline::kafka::KafkaOptions {
        connect_timeout: args.connect_timeout,
        health_addr: args.health_addr.clone(),
        metrics_addr: args.metrics_addr.clone(),
        otlp_endpoint: args.otlp_endpoint.clone(),
        otlp_interval: args.otlp_interval,
    }
}

pub async fn run(args: RunArgs) -> Result<()> {
    if args.input.is_empty() && args.brokers.is_none() {
        return Err(Error::Usage(
            "no input: give --input FILE|DIR|- (recorded JSON lines) or --brokers HOST:PORT \
             (a Kafka cluster)"
                .into(),
        ));
    }
    let mut loaded = crate::load::load(&args.pipeline).await?;
    if let Some(id) = &args.instance_id {
        loaded.config.kafka.instance_id = Some(id.clone());
    }
    if let Some(brokers) = &args.brokers {
        let group = args
            .group
            .clone()
            .unwrap_or_else(|| loaded.config.kafka.group_id.clone());
        let options = kafka_options(&args);
        run_kafka(loaded, brokers, &group, &options, shutdown_signal()).await?;
        return Ok(());
    }
    let format = args
        .format
        .unwrap_or(match std::io::stdout().is_terminal() {
            true => Format::Human,
            false => Format::Json,
        });
    let (sink, tally): (Box<dyn Sink>, _) = match (&args.output, format) {
        (Some(dir), _) => (Box::new(FileSink::create(dir)?), None),
        (None, Format::Json) => (Box::new(StdoutSink::new()), None),
        (None, Format::Human) => {
            let (sink, tally) =
                HumanSink::new(Box::new(std::io::stdout()), super::color_for_stdout());
            (Box::new(sink), Some(tally))
        }
    };
    let started = Instant::now();
    let stats = run_files(
        loaded,
        &args.input,
        args.recursive,
        sink,
        args.feedback.as_deref(),
    )
    .await?;
    if format == Format::Human {
        let tally = match (tally, &args.output) {
            (Some(t), _) => t.lock().expect("tally lock").clone(),
            (None, Some(dir)) => human::Tally::of_file(&dir.join("alerts.jsonl")),
            (None, None) => human::Tally::default(),
        };
        print!(
            "{}",
            human::summary(&tally, &stats, started.elapsed().as_secs_f64())
        );
    }
    if stats.records == 0 && stats.dead_letters > 0 && !args.allow_bad_input {
        let hint = match &args.output {
            Some(dir) => format!(
                "their reasons are in {}",
                dir.join("deadletter.jsonl").display()
            ),
            None => {
                "their reasons are in the log above; --output DIR keeps them in deadletter.jsonl"
                    .into()
            }
        };
        return Err(Error::BadInput(format!(
            "no input record could be decoded: all {} messages were dead letters ({hint}); \
             --allow-bad-input accepts such a run",
            stats.dead_letters
        )));
    }
    Ok(())
}
