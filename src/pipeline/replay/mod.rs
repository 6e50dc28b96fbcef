//! `faultline replay`: the pipeline over a recorded range — a time or offset range of the
//! input topics, or recording files — at full speed in event time, sandboxed.
//!
//! Sandboxed: the topic range is read by its own consumer with assigned partitions and no
//! commits (see `source::KafkaRange`), outputs go to files or to topics under a prefix that
//! may not name a live topic, nothing is posted to the Alertmanager and no state file
//! (templates, knowledge-base statistics) is written. Deterministic: rules run without the
//! wall-clock budget and partitions are interleaved by event time, so two replays of one
//! range are byte-identical.

mod diff;
mod progress;
mod summary;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use diff::{diff, AlertDiff, Episode};
pub use progress::ProgressMode;
pub use summary::{InputCounts, Tally};

use super::emit::Emitter;
use super::recording::{drive, Lane, Recording};
use super::{Pipeline, Stats};
use crate::config::KafkaConfig;
use crate::error::{Error, Result};
use crate::load::Loaded;
use crate::model::{EventTime, Location};
use crate::output::WatermarkDecision;
use crate::rules::Unbounded;
use crate::sink::{FileSink, KafkaSink, Sink};
use crate::source::{expand_inputs, read_whole_topic, KafkaRange, RangeEnd, RangeStart};
use progress::Progress;
use summary::TallySink;
use tracing::{info, warn};

/// What to replay.
#[derive(Debug, Clone)]
pub enum ReplayInput {
    /// Recording files (JSON lines), as `run --input` reads them.
    Files(Vec<PathBuf>),
    /// A range of the pipeline's input topics.
    Kafka {
        brokers: String,
        start: RangeStart,
        end: RangeEnd,
        /// Repeat the live run's wall-clock decisions from the watermark journal
        /// (`kafka.outputs.watermarks`).
        journal: bool,
    },
}

/// Where a replay's outputs go; never the live output topics.
#[derive(Debug, Clone)]
pub enum ReplayOutput {
    /// One JSON-lines file per output kind, as `run --output`.
    Dir(PathBuf),
    /// The pipeline's output topics with `prefix` in front of each name.
    Topics { brokers: String, prefix: String },
}

/// A replay: the pipeline (with the rules under review), optionally the shipped pipeline to
/// compare against (`--diff`), the range and the destination.
pub struct ReplayPlan {
    pub loaded: Loaded,
    pub shipped: Option<Loaded>,
    pub input: ReplayInput,
    pub output: ReplayOutput,
    pub progress: ProgressMode,
}

/// What a replay did.
pub struct ReplayReport {
    pub stats: Stats,
    pub tally: Tally,
    pub inputs: InputCounts,
    /// Against the shipped rules, with `--diff`.
    pub diff: Option<AlertDiff>,
    pub elapsed: Duration,
    pub records_per_s: f64,
    /// The event time the replay had reached before the end closed every window.
    pub reached: EventTime,
}

impl ReplayReport {
    /// The summary table (and the diff) as printed at the end of `faultline replay`.
    pub fn render(&self) -> String {
        let at = match self.reached {
            EventTime::MIN => "-".to_string(),
            t => t.to_rfc3339(),
        };
        let mut out = format!(
            "Replayed {} messages, {} records in {:.1} s ({:.0} records/s), up to event time {at}.\n\n",
            self.stats.messages,
            self.stats.records,
            self.elapsed.as_secs_f64(),
            self.records_per_s,
        );
        out.push_str(&summary::render(&self.tally, &self.inputs, &self.stats));
        if let Some(d) = &self.diff {
            out.push_str("\nAgainst the shipped rules:\n");
            out.push_str(&diff::render(d));
        }
        out
    }
}

/// The pipeline's Kafka settings with `prefix` in front of every output topic. Refuses an
/// empty prefix and one that would make an output topic a live input or output topic.
pub fn prefixed_outputs(config: &KafkaConfig, prefix: &str) -> Result<KafkaConfig> {
    let refuse = |message: String| Error::Config {
        location: "--output-prefix".into(),
        message,
    };
    if prefix.is_empty() {
        return Err(refuse(
            "an empty prefix would write to the live output topics".into(),
        ));
    }
    let o = &config.outputs;
    let live: Vec<&String> = [
        &o.alerts,
        &o.suggestions,
        &o.review,
        &o.deadletter,
        &o.late,
        &o.incidents,
        &o.feedback,
        &o.watermarks,
    ]
    .into_iter()
    .chain(config.inputs.iter().map(|i| &i.topic))
    .collect();
    let mut prefixed = config.clone();
    let p = &mut prefixed.outputs;
    for topic in [
        &mut p.alerts,
        &mut p.suggestions,
        &mut p.review,
        &mut p.deadletter,
        &mut p.late,
        &mut p.incidents,
        &mut p.feedback,
        &mut p.watermarks,
    ] {
        let name = format!("{prefix}{topic}");
        if live.contains(&&name) {
            return Err(refuse(format!(
                "prefix {prefix:?} makes {topic} write to the live topic {name}"
            )));
        }
        *topic = name;
    }
    Ok(prefixed)
}

/// Runs a replay to its end and reports what it did.
pub async fn run_replay(plan: ReplayPlan) -> Result<ReplayReport> {
    let mut loaded = plan.loaded;
    // Sandboxed: a replay never notifies anyone.
    loaded.config.alertmanager = None;
    let config = loaded.config.clone();
    let (sink, max_in_flight): (Box<dyn Sink>, usize) = match &plan.output {
        ReplayOutput::Dir(dir) => (Box::new(FileSink::create(dir)?), usize::MAX),
        ReplayOutput::Topics { brokers, prefix } => {
            let kafka = prefixed_outputs(&config.kafka, prefix)?;
            let max = config.limits.max_in_flight_outputs.max(1);
            (Box::new(KafkaSink::new(brokers, &kafka)?), max)
        }
    };
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut lanes = vec![lane(loaded, Some(sink), &tally, max_in_flight).await?];
    let shipped_tally = Arc::new(Mutex::new(Tally::default()));
    if let Some(mut shipped) = plan.shipped {
        shipped.config.alertmanager = None;
        lanes.push(lane(shipped, None, &shipped_tally, usize::MAX).await?);
    }
    let (mut recording, journal) = open_recording(&plan.input, &config)?;
    let unit = match recording {
        Recording::Files { .. } => "bytes",
        Recording::Kafka(_) => "offsets",
    };
    let mut progress = Progress::new(plan.progress, recording.progress().1, unit);
    let mut inputs = InputCounts::default();
    let (mut records, mut reached, mut messages) = (0, EventTime::MIN, 0u64);
    drive(
        &mut recording,
        &mut lanes,
        &journal,
        |msg, _, pipeline, rec| {
            let now = pipeline.records();
            inputs.add(&input_name(&msg.source), now - records);
            records = now;
            reached = pipeline.watermark();
            messages += 1;
            if messages % 256 == 1 {
                let (done, total) = rec.progress();
                progress.update(done, total, records, reached);
            }
        },
    )
    .await?;
    let (elapsed, records_per_s) = progress.finish();
    let stats = lanes[0].pipeline.stats();
    let tally = tally.lock().expect("tally lock").clone();
    let diff = (lanes.len() > 1).then(|| {
        let shipped = shipped_tally.lock().expect("tally lock");
        diff::diff(&shipped.alerts, &tally.alerts)
    });
    Ok(ReplayReport {
        stats,
        tally,
        inputs,
        diff,
        elapsed,
        records_per_s,
        reached,
    })
}

async fn lane(
    loaded: Loaded,
    sink: Option<Box<dyn Sink>>,
    tally: &Arc<Mutex<Tally>>,
    max_in_flight: usize,
) -> Result<Lane> {
    let emitter = Emitter::new(
        Box::new(TallySink::new(sink, tally.clone())),
        &loaded.config,
    );
    Ok(Lane {
        pipeline: Pipeline::new(loaded, Box::new(Unbounded)).await?,
        emitter,
        max_in_flight,
    })
}

/// The recorded input, and the live runs' decisions to repeat in it.
fn open_recording(
    input: &ReplayInput,
    config: &crate::config::PipelineConfig,
) -> Result<(Recording, Vec<WatermarkDecision>)> {
    Ok(match input {
        ReplayInput::Files(files) => {
            let files = expand_inputs(files, false)?;
            (
                Recording::files(&files, config.decode.max_message_bytes)?,
                Vec::new(),
            )
        }
        ReplayInput::Kafka {
            brokers,
            start,
            end,
            journal,
        } => {
            let decisions = match journal {
                true => read_journal(brokers, &config.kafka)?,
                false => Vec::new(),
            };
            let range = KafkaRange::open(brokers, &config.kafka, start, *end)?;
            (Recording::Kafka(range), decisions)
        }
    })
}

/// The live runs' wall-clock decisions, in the order they were made.
fn read_journal(brokers: &str, kafka: &KafkaConfig) -> Result<Vec<WatermarkDecision>> {
    let topic = &kafka.outputs.watermarks;
    let mut decisions = Vec::new();
    for payload in read_whole_topic(brokers, kafka, topic)? {
        match serde_json::from_slice(&payload) {
            Ok(d) => decisions.push(d),
            Err(error) => warn!(%error, topic, "Unreadable watermark journal record; skipped."),
        }
    }
    info!(
        topic,
        decisions = decisions.len(),
        "Watermark journal read."
    );
    Ok(decisions)
}

/// The topic, or the file, a message came from.
fn input_name(source: &Location) -> String {
    match source {
        Location::Kafka { topic, .. } => topic.clone(),
        Location::File { path, .. } => path.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_that_names_a_live_topic_is_refused() {
        let mut live = KafkaConfig::default();
        live.inputs[0].topic = "replay.faultline.alerts".into();
        let e = prefixed_outputs(&live, "replay.").unwrap_err().to_string();
        assert_eq!(
            e,
            "--output-prefix: prefix \"replay.\" makes faultline.alerts write to the live topic \
             replay.faultline.alerts"
        );
        let e = prefixed_outputs(&live, "").unwrap_err().to_string();
        assert!(e.contains("an empty prefix"), "{e}");
        let ok = prefixed_outputs(&KafkaConfig::default(), "replay.").unwrap();
        assert_eq!(ok.outputs.alerts, "replay.faultline.alerts");
        assert_eq!(ok.outputs.watermarks, "replay.faultline.watermarks");
        assert_eq!(ok.inputs[0].topic, "otlp_logs");
    }
}
