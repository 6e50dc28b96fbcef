//! State checkpoints (the Kafka Streams changelog pattern). A shard's state — alert states
//! and queued notifications, the suggestions firing alerts carry, detector series,
//! incidents and their baselines, the batches longer rule windows look back on, and where
//! event time stands — is saved with the input offsets it covers. A new owner of the shard
//! (a restart, a rebalance) restores it and re-reads only from those offsets, so offsets are
//! committed up to the checkpoint however long an alert fires.
//!
//! Open windows are not saved: a checkpoint covers each partition up to its oldest message
//! still in an open window or fold, and the new owner re-reads from there. Messages between
//! that offset and the newest one ingested when the checkpoint was taken are *replayed*:
//! their records in windows already evaluated (and so already in the state) come out as
//! late, and the driver drops those late and dead-letter outputs, which went out before.
//!
//! The look-back is saved while it is small. A large one (a busy shard's minutes of spans
//! and logs: hundreds of MB) is left out: the checkpoint then covers each partition only up
//! to the oldest message of a look-back window, and the new owner rebuilds those windows
//! from the re-read input without evaluating them again ([`ShardState::rebuild_from`]).
//!
//! Snapshots are CBOR, versioned ([`SNAPSHOT_VERSION`]); one that cannot be read is
//! reported and the shard starts empty from the committed offsets. Pure: no I/O, no clock.

use std::collections::BTreeMap;
use std::io::Cursor;

use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::shard::Shard;
use super::Pipeline;
use crate::logparse::{MinerState, TemplateMiner};
use crate::model::saved::Saved;
use crate::model::{AckId, AlignedBatch, EventTime, Window};

/// The snapshot layout this build writes and reads. 3: the incidents' state holds the
/// training jobs' NCCL topology (`incident::comm`). 4: the look-back's Arrow IPC tables are
/// CBOR byte strings (they were arrays of one integer item per byte: millions of items to
/// encode per snapshot of a look-back near `max_history_bytes`).
pub const SNAPSHOT_VERSION: u32 = 4;

/// One shard's checkpoint, as written to the state topic (key `group/pipeline/shard`).
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardSnapshot {
    pub version: u32,
    /// Consumer group and pipeline: one state topic may serve several.
    pub group: String,
    pub pipeline: String,
    pub shard: i32,
    /// Per input partition (`topic` → offset) of the shard: the first message the state does
    /// not cover; a new owner reads from here.
    pub resume: BTreeMap<String, i64>,
    /// Per input partition: the offset after the newest message ingested when the snapshot
    /// was taken. Messages in `resume..until` are replayed (see the module docs).
    pub until: BTreeMap<String, i64>,
    pub state: ShardState,
    /// The log template miner of the instance that wrote it (carried by the snapshot of its
    /// lowest shard): a restarted instance starts with the templates it had learned.
    pub templates: Option<MinerState>,
}

/// What of a shard is state (its configuration comes from the files at start).
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardState {
    watermark: EventTime,
    next_start: Option<EventTime>,
    lifecycle: Saved,
    grouper: Saved,
    detectors: Vec<(String, Saved)>,
    incidents: Saved,
    suggested: BTreeMap<String, BTreeMap<String, String>>,
    history: Vec<SavedBatch>,
    /// Set when the look-back was left out: the start of its oldest window. Windows from
    /// here to `next_start` are rebuilt from re-read input, not evaluated again.
    rebuild_from: Option<EventTime>,
}

/// A batch of the look-back history: its window and tables in Arrow IPC stream format,
/// each a CBOR byte string (`ByteBuf`; serde writes a `Vec<u8>` as a list of numbers).
#[derive(Debug, Serialize, Deserialize)]
struct SavedBatch {
    window: Window,
    tables: [ByteBuf; 4],
}

/// Why a snapshot was not used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a faultline state snapshot: {0}")]
    Unreadable(String),
    #[error("snapshot version {found}; this build reads version {SNAPSHOT_VERSION}")]
    Version { found: u32 },
    #[error("snapshot does not fit this pipeline: {0}")]
    Mismatch(String),
}

impl ShardSnapshot {
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.group, self.pipeline, self.shard)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("writing CBOR to memory cannot fail");
        out
    }

    /// Reads a snapshot; the version is checked before the rest is trusted.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        #[derive(Deserialize)]
        struct Header {
            version: u32,
        }
        let header: Header =
            ciborium::from_reader(bytes).map_err(|e| SnapshotError::Unreadable(e.to_string()))?;
        if header.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version {
                found: header.version,
            });
        }
        ciborium::from_reader(bytes).map_err(|e| SnapshotError::Unreadable(e.to_string()))
    }
}

impl Pipeline {
    /// From now on alert states live in checkpoints: the input of windows they depend on is
    /// no longer held.
    pub fn use_checkpoints(&mut self) {
        self.checkpointed = true;
    }

    /// Takes learned log templates from a checkpoint, unless this instance parsed logs
    /// already (its own templates are newer). True when they were taken.
    pub fn restore_templates(&mut self, state: &MinerState) -> Result<bool, SnapshotError> {
        if self.logs.stats.parsed > 0 {
            return Ok(false);
        }
        let miner = TemplateMiner::from_state(self.config.logs.miner, state)
            .map_err(SnapshotError::Mismatch)?;
        self.logs = super::LogCleaner::new(miner);
        Ok(true)
    }

    /// The shards this instance holds.
    pub fn shard_numbers(&self) -> Vec<i32> {
        self.shards.keys().copied().collect()
    }

    /// Whether a shard has state here.
    pub fn has_shard(&self, number: i32) -> bool {
        self.shards.contains_key(&number)
    }

    /// A shard's state for a checkpoint (`None`: the shard is not held here), with its
    /// look-back or, without, where to rebuild the look-back from.
    pub fn save_shard(&self, number: i32, with_history: bool) -> Option<ShardState> {
        let s = self.shards.get(&number)?;
        let (watermark, next_start) = s.aligner.progress();
        let (history, rebuild_from) = match with_history {
            true => (s.history.iter().map(save_batch).collect(), None),
            false => (Vec::new(), s.history.front().map(|b| b.window.start)),
        };
        Some(ShardState {
            watermark,
            next_start,
            lifecycle: s.lifecycle.save(),
            grouper: s.grouper.save(),
            detectors: s.detectors.save(),
            incidents: s.incidents.save(),
            suggested: s.suggested.clone(),
            history,
            rebuild_from,
        })
    }

    /// The in-memory size of a shard's look-back (what saving it would roughly cost).
    pub fn history_bytes(&self, number: i32) -> usize {
        let Some(s) = self.shards.get(&number) else {
            return 0;
        };
        s.history
            .iter()
            .flat_map(|b| [&b.logs, &b.metrics, &b.spans, &b.traces])
            .map(|t| t.get_array_memory_size())
            .sum()
    }

    /// The input messages a shard holds only for its look-back: a checkpoint that saves the
    /// look-back covers them.
    pub fn held_for_history_only(&self, number: i32) -> Vec<AckId> {
        let Some(s) = self.shards.get(&number) else {
            return Vec::new();
        };
        s.alert_hold
            .counts()
            .into_iter()
            .filter(|(ack, n)| self.ledger.holds(*ack) == *n)
            .map(|(ack, _)| ack)
            .collect()
    }

    /// Restores a shard from a checkpoint before any of its input is read. On an error the
    /// shard starts empty (as without a checkpoint) and the error says why.
    pub fn restore_shard(&mut self, number: i32, state: ShardState) -> Result<(), SnapshotError> {
        let restored = self.restored(state);
        let (config, detectors, columns) = (&self.config, &self.detectors, &self.columns);
        let shard = self
            .shards
            .entry(number)
            .or_insert_with(|| Shard::new(config, detectors, columns));
        match restored {
            Ok(mut s) => {
                // Partitions registered before the restore keep holding the watermark back.
                s.watermarks = shard.watermarks.clone();
                *shard = s;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn restored(&self, state: ShardState) -> Result<Shard, SnapshotError> {
        let mismatch = SnapshotError::Mismatch;
        let mut s = Shard::new(&self.config, &self.detectors, &self.columns);
        match state.rebuild_from {
            // Event time restarts with the re-read input, so traces close and windows are
            // released as they were; records before the look-back are late.
            Some(from) => {
                s.aligner.resume((EventTime::MIN, Some(from)));
                s.rebuild_until = state.next_start;
            }
            None => s.aligner.resume((state.watermark, state.next_start)),
        }
        s.lifecycle.restore(state.lifecycle).map_err(mismatch)?;
        s.grouper.restore(state.grouper).map_err(mismatch)?;
        s.detectors.restore(state.detectors).map_err(mismatch)?;
        s.incidents.restore(state.incidents).map_err(mismatch)?;
        s.suggested = state.suggested;
        for saved in state.history.into_iter().rev().take(self.history).rev() {
            s.history.push_back(load_batch(saved).map_err(mismatch)?);
        }
        Ok(s)
    }
}

fn save_batch(batch: &AlignedBatch) -> SavedBatch {
    let tables = [&batch.logs, &batch.metrics, &batch.spans, &batch.traces];
    SavedBatch {
        window: batch.window,
        tables: tables.map(ipc_bytes),
    }
}

fn ipc_bytes(table: &RecordBatch) -> ByteBuf {
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, &table.schema())
        .expect("our own schemas are valid IPC schemas");
    w.write(table).expect("writing IPC to memory cannot fail");
    w.finish().expect("writing IPC to memory cannot fail");
    drop(w);
    ByteBuf::from(out)
}

fn load_batch(saved: SavedBatch) -> Result<AlignedBatch, String> {
    let [logs, metrics, spans, traces] = saved.tables.map(|bytes| ipc_table(&bytes));
    Ok(AlignedBatch {
        window: saved.window,
        logs: logs?,
        metrics: metrics?,
        spans: spans?,
        traces: traces?,
        acks: Vec::new(),
        early: false,
    })
}

fn ipc_table(bytes: &[u8]) -> Result<RecordBatch, String> {
    let mut reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    match reader.next() {
        Some(batch) => batch.map_err(|e| e.to_string()),
        None => Err("an empty table stream".into()),
    }
}

#[cfg(test)]
pub(super) mod tests;
