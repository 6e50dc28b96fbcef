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
use crate::model::{AckId, PartitionKey};
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
/// partitions idle, then closes every window. `seen` is called after each message with the
/// first lane's pipeline.
pub async fn drive(
    recording: &mut Recording,
    lanes: &mut [Lane],
    mut seen: impl FnMut(&InputMessage, &PartitionKey, &Pipeline, &Recording),
) -> Result<()> {
    let keys = recording.partitions();
    for lane in lanes.iter_mut() {
        keys.iter().for_each(|k| lane.pipeline.register(k));
    }
    let mut open: Vec<usize> = (0..keys.len()).collect();
    let mut ack: AckId = 0;
    while let Some(pos) =
        (0..open.len()).min_by_key(|&p| (lanes[0].pipeline.newest(&keys[open[p]]), p))
    {
        let i = open[pos];
        let Some(msg) = recording.next(i).await? else {
            open.remove(pos);
            for lane in lanes.iter_mut() {
                let em = lane.pipeline.set_idle(&keys[i]).await;
                lane.emit(em).await?;
            }
            continue;
        };
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
