//! The Kafka driver's side of state checkpoints (see [`crate::pipeline::checkpoint`]):
//! every `[kafka.checkpoints] interval`, deliveries are awaited, each shard's snapshot is
//! written to the state topic, and once acknowledged the offsets it covers become
//! committable. A newly assigned shard is restored from its latest snapshot before any of
//! its input is ingested.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::producer::FutureProducer;
use tracing::{debug, info, warn};

use super::Driver;
use crate::broker::QuietContext;
use crate::config::KafkaConfig;
use crate::error::Result;
use crate::model::PartitionKey;
use crate::output::OutputKind;
use crate::pipeline::checkpoint::{ShardSnapshot, SNAPSHOT_VERSION};
use crate::pipeline::Emission;
use crate::sink::{ensure_state_topic, TopicWriter, MAX_SNAPSHOT_BYTES};
use crate::source::read_whole_topic;

/// Checkpointing state of the driver.
pub(super) struct Checkpoints {
    writer: TopicWriter,
    topic: String,
    brokers: String,
    group: String,
    interval: Duration,
    last: Instant,
    /// Per partition: what the latest written checkpoint covers (next offset to read).
    covered: HashMap<PartitionKey, i64>,
    /// Per restored partition: `resume..until` is replayed; below `resume` is skipped.
    replay: HashMap<PartitionKey, (i64, i64)>,
    /// Sizes of the latest snapshot per shard (bytes), for `/healthz` and the logs.
    pub sizes: BTreeMap<i32, usize>,
    /// Shards whose last snapshot was over the limit: encoding one is costly (hundreds of
    /// MB), so they are tried again after a growing number of intervals.
    oversized: HashMap<i32, Backoff>,
}

/// Intervals to skip after a failure: 1, 2, 4 … up to 64; none after a success.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Backoff {
    skip: u32,
    next: u32,
}

impl Backoff {
    /// Whether to try this interval (a skipped interval counts down).
    pub fn ready(&mut self) -> bool {
        if self.skip == 0 {
            return true;
        }
        self.skip -= 1;
        false
    }

    /// A failure: the intervals skipped before the next try.
    pub fn failed(&mut self) -> u32 {
        self.next = (self.next * 2).clamp(1, 64);
        self.skip = self.next;
        self.skip
    }
}

/// What the driver does with a message of a restored partition.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Restored {
    /// Not restored, or past the replayed range: as usual.
    Normal,
    /// Covered by the restored state: not ingested again.
    Skip,
    /// Re-read into open windows; its late and dead-letter outputs went out before.
    Replay,
}

impl Checkpoints {
    /// `None` when `[kafka.checkpoints]` is off; creates the state topic when missing.
    /// The snapshots go through `producer`, the pipeline's output producer (with
    /// exactly-once outputs, the transactional one).
    pub async fn start(
        brokers: &str,
        group: &str,
        config: &KafkaConfig,
        producer: FutureProducer<QuietContext>,
    ) -> Result<Option<Self>> {
        let c = &config.checkpoints;
        if !c.enabled() {
            return Ok(None);
        }
        ensure_state_topic(brokers, &c.topic, config).await?;
        let writer = TopicWriter::with_producer(producer, &c.topic);
        Ok(Some(Checkpoints {
            writer,
            topic: c.topic.clone(),
            brokers: brokers.to_string(),
            group: group.to_string(),
            interval: c.interval,
            last: Instant::now(),
            covered: HashMap::new(),
            replay: HashMap::new(),
            sizes: BTreeMap::new(),
            oversized: HashMap::new(),
        }))
    }

    /// Time since the latest checkpoint (or the start).
    pub fn age(&self) -> Duration {
        self.last.elapsed()
    }

    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.interval
    }

    pub fn classify(&mut self, key: &PartitionKey, offset: i64) -> Restored {
        let Some(&(resume, until)) = self.replay.get(key) else {
            return Restored::Normal;
        };
        if offset < resume {
            Restored::Skip
        } else if offset < until {
            Restored::Replay
        } else {
            self.replay.remove(key);
            Restored::Normal
        }
    }

    /// Per held partition, the next offset the latest checkpoints cover.
    pub fn covered_offsets(&self) -> Vec<(String, i32, i64)> {
        let mut out: Vec<(String, i32, i64)> = self
            .covered
            .iter()
            .map(|(p, o)| (p.topic.clone(), p.partition, *o))
            .collect();
        out.sort();
        out
    }

    pub fn forget(&mut self, key: &PartitionKey) {
        self.covered.remove(key);
        self.replay.remove(key);
    }
}

/// Drops what a replayed message produced before: its late records and dead letters.
pub(super) fn without_repeats(mut em: Emission) -> Emission {
    em.outputs
        .retain(|o| !matches!(o.kind, OutputKind::Late | OutputKind::DeadLetter));
    em
}

impl Driver {
    /// Restores the shards of newly assigned partitions that this instance does not hold,
    /// from their latest snapshots. An unreadable snapshot or state topic is reported; the
    /// shard then starts empty from the committed offsets (as without checkpoints).
    pub(super) fn restore_shards(&mut self, assigned: &[PartitionKey]) {
        let Some(cp) = &mut self.checkpoints else {
            return;
        };
        let mut wanted: Vec<i32> = assigned.iter().map(|p| p.shard()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        wanted.retain(|n| !self.pipeline.has_shard(*n));
        if wanted.is_empty() {
            return;
        }
        let payloads = match read_whole_topic(&cp.brokers, &self.config.kafka, &cp.topic) {
            Ok(p) => p,
            Err(error) => {
                warn!(%error, topic = %cp.topic, "State topic not readable; the shards re-read from the committed offsets.");
                return;
            }
        };
        let mut latest: BTreeMap<i32, (usize, ShardSnapshot)> = BTreeMap::new();
        for bytes in &payloads {
            match ShardSnapshot::decode(bytes) {
                Ok(s) if s.group == cp.group && s.pipeline == self.config.name => {
                    if wanted.contains(&s.shard) {
                        latest.insert(s.shard, (bytes.len(), s));
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    warn!(%error, topic = %cp.topic, "Unreadable snapshot on the state topic; skipped.");
                }
            }
        }
        for shard in &wanted {
            if !latest.contains_key(shard) {
                info!(
                    shard,
                    "No checkpoint of the shard; it starts from the committed offsets."
                );
            }
        }
        for (shard, (bytes, snapshot)) in latest {
            if let Some(templates) = &snapshot.templates {
                match self.pipeline.restore_templates(templates) {
                    Ok(true) => info!(
                        shard,
                        templates = templates.shapes.len(),
                        "Log templates restored from a checkpoint."
                    ),
                    Ok(false) => {}
                    Err(error) => {
                        warn!(shard, %error, "Log templates of a checkpoint not usable; learning afresh.")
                    }
                }
            }
            let (resume, until) = (snapshot.resume, snapshot.until);
            match self.pipeline.restore_shard(shard, snapshot.state) {
                Ok(()) => {
                    for (topic, offset) in &resume {
                        let key = PartitionKey::new(topic.as_str(), shard);
                        let end = until.get(topic).copied().unwrap_or(*offset);
                        cp.replay.insert(key.clone(), (*offset, end));
                        cp.covered.insert(key, *offset);
                    }
                    cp.sizes.insert(shard, bytes);
                    info!(shard, bytes, ?resume, "Shard restored from its checkpoint.");
                }
                Err(error) => {
                    warn!(shard, %error, "Checkpoint not usable; the shard re-reads from the committed offsets.");
                }
            }
        }
    }

    /// Writes a checkpoint of every shard held here when one is due (`force`: now, at a
    /// graceful stop). Deliveries are awaited first, so a covered message's outputs are out.
    pub(super) async fn checkpoint(&mut self, force: bool) -> Result<()> {
        match &self.checkpoints {
            Some(cp) if force || cp.due() => {}
            _ => return Ok(()),
        }
        let acks = self.emitter.settle_all().await?;
        self.delivered(acks);
        if let Some(cp) = self.checkpoints.as_mut() {
            cp.last = Instant::now();
        }
        let numbers = self.pipeline.shard_numbers();
        for &shard in &numbers {
            let cp = self.checkpoints.as_mut().expect("checked above");
            if let Some(backoff) = cp.oversized.get_mut(&shard) {
                if !backoff.ready() {
                    continue;
                }
            }
            let with_templates = Some(&shard) == numbers.first();
            let Some((snapshot, bytes)) = self.encoded_snapshot(shard, with_templates) else {
                continue;
            };
            let cp = self.checkpoints.as_mut().expect("checked above");
            if bytes.len() > MAX_SNAPSHOT_BYTES {
                let skipped = cp.oversized.entry(shard).or_default().failed();
                warn!(shard, bytes = bytes.len(), skipped_intervals = skipped, "Snapshot over the state topic's limit; not written (offsets stay at the previous checkpoint; tried again after the skipped intervals).");
                continue;
            }
            cp.oversized.remove(&shard);
            if let Err(error) = cp.writer.send(&snapshot.key(), &bytes).await {
                if self.chatter.fresh(&error.to_string()) {
                    warn!(%error, shard, "Checkpoint not written; offsets stay at the previous one (repeats are not logged for a minute).");
                }
                continue;
            }
            let mut tracker = self.tracker.lock().expect("tracker lock");
            for (topic, offset) in &snapshot.resume {
                tracker.cap(topic, shard, *offset);
                cp.covered
                    .insert(PartitionKey::new(topic.as_str(), shard), *offset);
            }
            cp.sizes.insert(shard, bytes.len());
            debug!(shard, bytes = bytes.len(), resume = ?snapshot.resume, "Checkpoint written.");
        }
        if let Some(cp) = &self.checkpoints {
            self.health.checkpointed(&cp.sizes);
        }
        self.commit_transaction(force).await
    }

    /// A shard's snapshot, encoded: with its look-back when that is small enough and fits,
    /// else without (the look-back is then re-read).
    fn encoded_snapshot(
        &self,
        shard: i32,
        with_templates: bool,
    ) -> Option<(ShardSnapshot, Vec<u8>)> {
        let budget = self.config.kafka.checkpoints.max_history_bytes;
        if self.pipeline.history_bytes(shard) <= budget {
            let snapshot = self.snapshot(shard, with_templates, true)?;
            let bytes = snapshot.encode();
            if bytes.len() <= MAX_SNAPSHOT_BYTES {
                return Some((snapshot, bytes));
            }
        }
        let snapshot = self.snapshot(shard, with_templates, false)?;
        let bytes = snapshot.encode();
        Some((snapshot, bytes))
    }

    /// A shard's snapshot now: its state, and per partition the oldest message not done
    /// (passing over those held only for a look-back it saves), or what the previous
    /// checkpoint covered, for a partition read nothing since.
    fn snapshot(
        &self,
        shard: i32,
        with_templates: bool,
        with_history: bool,
    ) -> Option<ShardSnapshot> {
        let cp = self.checkpoints.as_ref()?;
        let state = self.pipeline.save_shard(shard, with_history)?;
        let mut partitions: Vec<&PartitionKey> = self
            .positions
            .keys()
            .chain(cp.covered.keys())
            .filter(|p| p.shard() == shard)
            .collect();
        partitions.sort();
        partitions.dedup();
        let tracker = self.tracker.lock().expect("tracker lock");
        let mut saved: HashMap<(&str, i32), HashSet<i64>> = HashMap::new();
        if with_history {
            for ack in self.pipeline.held_for_history_only(shard) {
                if let Some((topic, partition, offset)) = tracker.location_of(ack) {
                    saved.entry((topic, partition)).or_default().insert(offset);
                }
            }
        }
        let none = HashSet::new();
        let mut resume = BTreeMap::new();
        let mut until = BTreeMap::new();
        for p in partitions {
            let skip = saved.get(&(p.topic.as_str(), p.partition)).unwrap_or(&none);
            let next = tracker.next_undone_except(&p.topic, p.partition, skip);
            let Some(r) = next.or_else(|| cp.covered.get(p).copied()) else {
                continue;
            };
            resume.insert(p.topic.clone(), r);
            until.insert(p.topic.clone(), self.positions.get(p).copied().unwrap_or(r));
        }
        Some(ShardSnapshot {
            version: SNAPSHOT_VERSION,
            group: cp.group.clone(),
            pipeline: self.config.name.clone(),
            shard,
            resume,
            until,
            state,
            templates: with_templates.then(|| self.pipeline.template_state()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Backoff;

    #[test]
    fn an_oversized_shard_is_tried_again_after_doubling_intervals() {
        let mut b = Backoff::default();
        assert!(b.ready());
        assert_eq!(b.failed(), 1);
        assert!(!b.ready());
        assert!(b.ready());
        assert_eq!(b.failed(), 2);
        assert!(!b.ready() && !b.ready());
        assert!(b.ready());
        for _ in 0..10 {
            b.failed();
        }
        assert_eq!(b.failed(), 64, "capped");
    }
}
