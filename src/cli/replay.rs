//! `faultline replay`: arguments, and the time and offset forms of `--from`/`--to`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;

use crate::error::{Error, Result};
use crate::load::{load_with, Overrides};
use crate::pipeline::replay::{run_replay, ProgressMode, ReplayInput, ReplayOutput, ReplayPlan};
use crate::source::{RangeEnd, RangeStart};

/// `faultline replay`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["from", "input"])))]
#[command(group(clap::ArgGroup::new("sink").required(true).args(["output", "output_prefix"])))]
pub struct ReplayArgs {
    /// Pipeline directory: holds `pipeline.toml` and the rule files it names.
    #[arg(long, env = "FAULTLINE_PIPELINE")]
    pub pipeline: PathBuf,

    /// Kafka bootstrap servers: where the input topics are read (with `--from`) and the
    /// prefixed output topics written (with `--output-prefix`).
    #[arg(long)]
    pub brokers: Option<String>,

    /// Start of the topic range: an RFC 3339 time (`2026-11-01T14:00:00Z`), a time relative
    /// to now (`-2h`, `-30m`), `earliest`, or explicit next-to-read offsets
    /// `topic:partition:offset[,...]` (partitions not named start at their oldest message).
    /// Times select by the Kafka message timestamp (`offsets_for_times`).
    #[arg(
        long,
        requires = "brokers",
        conflicts_with = "input",
        allow_hyphen_values = true
    )]
    pub from: Option<String>,

    /// End of the topic range (exclusive): an RFC 3339 or relative time. Default: the end of
    /// each partition when the replay starts.
    #[arg(long, requires = "from", allow_hyphen_values = true)]
    pub to: Option<String>,

    /// Replay recording files (JSON lines, as `run --input` reads them; a directory stands
    /// for its `.jsonl` files, recursively) instead of topics.
    #[arg(long)]
    pub input: Vec<PathBuf>,

    /// Write alerts.jsonl, incidents.jsonl, suggestions.jsonl, review.jsonl,
    /// deadletter.jsonl and late.jsonl here.
    #[arg(long)]
    pub output: Option<PathBuf>,

    /// Write to the pipeline's output topics with this prefix in front of each name (e.g.
    /// `replay.` gives `replay.faultline.alerts`). A prefix that would name a live input or
    /// output topic is refused.
    #[arg(long, requires = "brokers")]
    pub output_prefix: Option<String>,

    /// Replay with the rules of this directory (or file) instead of the pipeline's: a rule
    /// change reviewed against history before it ships.
    #[arg(long)]
    pub rules: Option<PathBuf>,

    /// With `--rules`: also run the shipped rules over the same records and print which
    /// alerts the change adds, removes or moves in time.
    #[arg(long, requires = "rules")]
    pub diff: bool,

    /// Ignore the live run's watermark journal (`kafka.outputs.watermarks`): decide
    /// idleness and lateness from the records alone, as a file replay does.
    #[arg(long, requires = "from")]
    pub ignore_journal: bool,

    /// Progress: `auto` (a bar on a terminal, a line every 5 s otherwise), `bar`, `lines`
    /// or `off`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "bar", "lines", "off"])]
    pub progress: String,
}

/// Runs a replay and prints its summary (and diff) on stdout.
pub async fn run(args: ReplayArgs) -> Result<()> {
    let rules = args
        .rules
        .as_ref()
        .map(|r| std::path::absolute(r).unwrap_or_else(|_| r.clone()));
    let overrides = Overrides {
        rules: rules.map(|r| vec![r]),
        ..Overrides::default()
    };
    let loaded = load_with(&args.pipeline, &overrides).await?;
    let shipped = match args.diff {
        true => Some(crate::load::load(&args.pipeline).await?),
        false => None,
    };
    let now_ms = now_ms();
    let input = match (&args.from, &args.brokers) {
        (Some(from), Some(brokers)) => ReplayInput::Kafka {
            brokers: brokers.clone(),
            start: parse_start(from, now_ms)?,
            end: match &args.to {
                Some(to) => RangeEnd::Time(parse_time(to, now_ms, "--to")?),
                None => RangeEnd::Latest,
            },
            journal: !args.ignore_journal,
        },
        _ => ReplayInput::Files(args.input.clone()),
    };
    let output = match (&args.output, &args.output_prefix, &args.brokers) {
        (Some(dir), _, _) => ReplayOutput::Dir(dir.clone()),
        (None, Some(prefix), Some(brokers)) => ReplayOutput::Topics {
            brokers: brokers.clone(),
            prefix: prefix.clone(),
        },
        _ => unreachable!("clap requires --output or --output-prefix with --brokers"),
    };
    let progress = match args.progress.as_str() {
        "bar" => ProgressMode::Bar,
        "lines" => ProgressMode::Lines,
        "off" => ProgressMode::Off,
        _ if std::io::stderr().is_terminal() => ProgressMode::Bar,
        _ => ProgressMode::Lines,
    };
    let report = run_replay(ReplayPlan {
        loaded,
        shipped,
        input,
        output,
        progress,
    })
    .await?;
    print!("{}", report.render());
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `--from`: `earliest`, a time, or `topic:partition:offset[,...]`.
pub fn parse_start(text: &str, now_ms: i64) -> Result<RangeStart> {
    if text == "earliest" {
        return Ok(RangeStart::Earliest);
    }
    if let Ok(ms) = parse_time(text, now_ms, "--from") {
        return Ok(RangeStart::Time(ms));
    }
    let mut offsets = BTreeMap::new();
    for part in text.split(',') {
        let fields: Vec<&str> = part.trim().rsplitn(3, ':').collect();
        let parsed = match fields.as_slice() {
            [offset, partition, topic] if !topic.is_empty() => offset
                .parse::<i64>()
                .ok()
                .zip(partition.parse::<i32>().ok()),
            _ => None,
        };
        let Some((offset, partition)) = parsed else {
            return Err(arg_error(
                "--from",
                format!(
                    "{text:?} is neither `earliest`, an RFC 3339 time, a relative time like \
                     -2h, nor topic:partition:offset"
                ),
            ));
        };
        offsets.insert((fields[2].to_string(), partition), offset);
    }
    Ok(RangeStart::Offsets(offsets))
}

/// An RFC 3339 time or `-DURATION` before `now_ms`, in milliseconds since the epoch.
pub fn parse_time(text: &str, now_ms: i64, arg: &str) -> Result<i64> {
    if let Some(ago) = text.strip_prefix('-') {
        let d =
            humantime::parse_duration(ago).map_err(|e| arg_error(arg, format!("{text:?}: {e}")))?;
        return Ok(now_ms - d.as_millis() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| arg_error(arg, format!("{text:?} is not an RFC 3339 time: {e}")))
}

fn arg_error(arg: &str, message: String) -> Error {
    Error::Config {
        location: arg.into(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_accepts_times_relative_times_earliest_and_offsets() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_start("earliest", now).unwrap(), RangeStart::Earliest);
        assert_eq!(
            parse_start("-2h", now).unwrap(),
            RangeStart::Time(now - 7_200_000)
        );
        assert_eq!(
            parse_start("2026-11-01T14:00:00Z", now).unwrap(),
            RangeStart::Time(1_793_541_600_000)
        );
        let RangeStart::Offsets(o) = parse_start("otlp_spans:0:42, otlp_logs:3:7", now).unwrap()
        else {
            panic!("offsets expected")
        };
        assert_eq!(o[&("otlp_spans".to_string(), 0)], 42);
        assert_eq!(o[&("otlp_logs".to_string(), 3)], 7);
        for bad in ["yesterday", "otlp_spans:x:1", ":0:1", "-2 parsecs"] {
            let e = parse_start(bad, now).unwrap_err().to_string();
            assert!(e.starts_with("--from: "), "{e}");
        }
        assert!(parse_time("2026-13-01", now, "--to").is_err());
    }
}
