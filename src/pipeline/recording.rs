//! Recorded input read at full speed in event time: JSON-lines files or a range of the
//! input topics. One merge loop serves `run --input` and `replay`, so a replay of a topic
//! range and a run over the same records as files make the same decisions.
//!
//! Each file or topic partition is a partition of the pipeline. The loop always reads the
//! partition that is furthest behind in event time (ties: the first), so a log file and a
//! trace file of the same period line up as they would live, and the order — hence the
//! output — is the same on every run, whatever order the network delivers messages in.

use std::path::PathBuf;

use super::emit::Emitter;
use super::Pipeline;
use crate::error::Result;
use crate::model::{AckId, EventTime, Location, PartitionKey};
use crate::output::WatermarkDecision;
use crate::source::{FileSource, InputMessage, KafkaRange};

/// Where recorded messages come from.
pub enum Recording {
    /// JSON-lines files, each its own partition of shard 0.
    Files {
        sources: Vec<FileSource>,
        keys: Vec<PartitionKey>,
        /// Total bytes of the files.
        total: u64,
    },
    /// A fixed range of the input topics.
    Kafka(KafkaRange),
}

impl Recording {
    /// Opens `files` (already expanded) for reading.
    pub fn files(files: &[PathBuf], max_line: usize) -> Result<Self> {
        let mut sources = Vec::new();
        let mut keys = Vec::new();
        let mut total = 0;
        for (i, path) in files.iter().enumerate() {
            // All files are one shard (0), each its own partition within it.
            keys.push(PartitionKey::new(format!("{}#{i}", path.display()), 0));
            total += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            sources.push(FileSource::open(path, max_line)?);
        }
        Ok(Recording::Files {
            sources,
            keys,
            total,
        })
    }

    /// The partitions, in the order ties are broken.
    pub fn partitions(&self) -> Vec<PartitionKey> {
        match self {
            Recording::Files { keys, .. } => keys.clone(),
            Recording::Kafka(range) => range.partitions(),
        }
    }

    /// The next message of partition `i`; `None` once it is exhausted.
    pub async fn next(&mut self, i: usize) -> Result<Option<InputMessage>> {
        match self {
            Recording::Files { sources, .. } => sources[i].next_message(),
            Recording::Kafka(range) => range.next(i).await,
        }
    }

    /// The first offset of each partition's range (`None` for files).
    pub fn start_offsets(&self) -> Vec<Option<i64>> {
        match self {
            Recording::Files { keys, .. } => vec![None; keys.len()],
            Recording::Kafka(range) => range.bounds().into_iter().map(|(s, _)| Some(s)).collect(),
        }
    }

    /// How much has been read of how much: bytes for files, offsets for topics.
    pub fn progress(&self) -> (u64, u64) {
        match self {
            Recording::Files { sources, total, .. } => {
                (sources.iter().map(FileSource::consumed).sum(), *total)
            }
            Recording::Kafka(range) => range.progress(),
        }
    }
}

/// One pipeline fed from a recording, and where its outputs go. A replay with `--diff` runs
/// two lanes over the same messages: the rules under review and the shipped ones.
pub struct Lane {
    pub pipeline: Pipeline,
    pub emitter: Emitter,
    /// Outputs in flight above which the loop waits for deliveries (Kafka sinks).
    pub max_in_flight: usize,
}

impl Lane {
    async fn emit(&mut self, em: super::Emission) -> Result<()> {
        self.emitter.emit(em)?;
        self.emitter.ready()?;
        while self.emitter.in_flight_outputs() > self.max_in_flight {
            self.emitter.delivered().await?;
        }
        Ok(())
    }
}

/// Feeds every message of `recording` to every lane in event-time order, marks exhausted
/// partitions idle, then closes every window. `journal` holds the live run's wall-clock
/// decisions in order: each is made once every partition it names has been read up to the
/// position the live run had reached, and no such partition is read further before it.
/// `seen` is called after each message with the first lane's pipeline.
pub async fn drive(
    recording: &mut Recording,
    lanes: &mut [Lane],
    journal: &[WatermarkDecision],
    mut seen: impl FnMut(&InputMessage, &PartitionKey, &Pipeline, &Recording),
) -> Result<()> {
    let keys = recording.partitions();
    for lane in lanes.iter_mut() {
        keys.iter().for_each(|k| lane.pipeline.register(k));
    }
    let mut open = vec![true; keys.len()];
    let mut next = recording.start_offsets();
    let mut due = journal
        .iter()
        .filter(|d| {
            d.positions
                .iter()
                .any(|p| index(&keys, &p.topic, p.partition).is_some())
        })
        .peekable();
    let mut ack: AckId = 0;
    loop {
        let limits = due.peek().map(|d| limits(d, &keys));
        let blocked = |i: usize| match limits.as_ref().and_then(|l| l[i]) {
            Some(None) => true,
            Some(Some(at)) => next[i].is_some_and(|n| n >= at),
            None => false,
        };
        if let Some(l) = &limits {
            let ready = (0..keys.len()).all(|i| l[i].is_none() || !open[i] || blocked(i));
            if ready && open.iter().any(|o| *o) {
                let decision = due.next().expect("peeked");
                for lane in lanes.iter_mut() {
                    apply(decision, &keys, lane).await?;
                }
                continue;
            }
        }
        let Some(i) = (0..keys.len())
            .filter(|&i| open[i] && !blocked(i))
            .min_by_key(|&i| (lanes[0].pipeline.newest(&keys[i]), i))
        else {
            break;
        };
        let Some(msg) = recording.next(i).await? else {
            open[i] = false;
            for lane in lanes.iter_mut() {
                let em = lane.pipeline.set_idle(&keys[i]).await;
                lane.emit(em).await?;
            }
            continue;
        };
        if let Location::Kafka { offset, .. } = &msg.source {
            next[i] = Some(offset + 1);
        }
        ack += 1;
        for lane in lanes.iter_mut() {
            let em = lane.pipeline.ingest(&msg, ack, &keys[i]).await;
            lane.emit(em).await?;
        }
        seen(&msg, &keys[i], &lanes[0].pipeline, recording);
    }
    for lane in lanes.iter_mut() {
        let em = lane.pipeline.finish().await;
        lane.emit(em).await?;
        lane.emitter.close().await?;
    }
    Ok(())
}

fn index(keys: &[PartitionKey], topic: &str, partition: i32) -> Option<usize> {
    keys.iter()
        .position(|k| k.topic == topic && k.partition == partition)
}

/// Per partition: `None` when the decision does not name it, else the offset it must not
/// pass before the decision is made (`Some(None)`: not even the first).
fn limits(decision: &WatermarkDecision, keys: &[PartitionKey]) -> Vec<Option<Option<i64>>> {
    let mut out = vec![None; keys.len()];
    for p in &decision.positions {
        if let Some(i) = index(keys, &p.topic, p.partition) {
            out[i] = Some(p.offset);
        }
    }
    out
}

/// Repeats a journaled decision in one lane: the idle partitions, then the watermark of the
/// shards the member owned.
async fn apply(decision: &WatermarkDecision, keys: &[PartitionKey], lane: &mut Lane) -> Result<()> {
    for p in &decision.idle {
        if let Some(i) = index(keys, &p.topic, p.partition) {
            let em = lane.pipeline.set_idle(&keys[i]).await;
            lane.emit(em).await?;
        }
    }
    if let Some(wm) = decision.watermark_unix_nano {
        let mut shards: Vec<i32> = decision.positions.iter().map(|p| p.partition).collect();
        shards.sort_unstable();
        shards.dedup();
        let em = lane.pipeline.advance_shards(&shards, EventTime(wm)).await;
        lane.emit(em).await?;
    }
    Ok(())
}
