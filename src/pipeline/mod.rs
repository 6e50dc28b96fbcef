//! The pipeline: decode → align → rules → alerts, plus the dead-letter and late paths.
//!
//! [`Pipeline`] is the core (async only because DataFusion is): it takes framed messages,
//! idleness and watermarks, and returns outputs with the input messages they release. The
//! drivers in [`run`] connect it to files or Kafka; only they read the wall clock.
//!
//! State is kept per **shard**: the partitions with the same number on every input topic
//! (co-partitioned, keyed by trace id), or all input files. Each shard has its own aligner
//! and watermark, so a shard's results depend only on its own records — not on which
//! instance of a consumer group owns it or what else that instance owns. Scaling out or
//! rebalancing therefore changes no alert.

mod logclean;
pub mod run;

pub use logclean::{load_miner, save_state, CleanStats};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tracing::{debug, warn};

use crate::alert::{Grouper, Lifecycle};
use crate::align::{AckId, AlignStats, AlignedBatch, PartitionKey, TraceAligner, WatermarkTracker};
use crate::config::PipelineConfig;
use crate::decode::{DecodeError, DecodeErrorKind, Decoder};
use crate::detect::DetectorSet;
use crate::error::Result;
use crate::model::{EventTime, Location, Record};
use crate::output::{DeadLetter, LateRecord, Output};
use crate::rules::{load_rules, RuleEngine};
use crate::source::InputMessage;

/// What one step produced: outputs to deliver, and the input messages that are fully
/// processed once those outputs are delivered.
#[derive(Debug, Default)]
pub struct Emission {
    pub outputs: Vec<Output>,
    pub released: Vec<AckId>,
}

impl Emission {
    fn append(&mut self, mut other: Emission) {
        self.outputs.append(&mut other.outputs);
        self.released.append(&mut other.released);
    }
}

/// Counters, logged at the end of a run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub messages: u64,
    pub records: u64,
    pub dead_letters: u64,
    pub late: u64,
    pub windows: u64,
    pub alerts: u64,
    pub rule_failures: u64,
    /// Windows released from the alert-state hold because `limits.max_deferred_acks` was
    /// reached: after a failover their alerts' states could not be rebuilt.
    pub alert_state_unreplayable: u64,
    pub align: AlignStats,
    pub logs: CleanStats,
}

/// The state of one shard.
struct Shard {
    aligner: TraceAligner,
    /// Log records of multi-line tracebacks still being folded.
    folder: logclean::ShardFolder,
    watermarks: WatermarkTracker,
    lifecycle: Lifecycle,
    grouper: Grouper,
    detectors: DetectorSet,
    /// Earlier batches, newest last, for rules whose `window` spans several pipeline windows.
    history: VecDeque<AlignedBatch>,
    /// Input messages of evaluated windows, held while a pending or firing alert depends on
    /// those windows: they stay uncommitted, so a restarted or new owner replays them and
    /// rebuilds the alert states (and sends the resolution the old owner could not).
    deferred: VecDeque<(EventTime, Vec<AckId>)>,
    deferred_acks: usize,
}

pub struct Pipeline {
    decoder: Decoder,
    dir: PathBuf,
    config: PipelineConfig,
    shards: BTreeMap<i32, Shard>,
    /// Counters of shards that were dropped (revoked).
    retired: AlignStats,
    engine: RuleEngine,
    /// The detectors' source queries (their rows are samples, not findings).
    sources: RuleEngine,
    /// Batches each shard keeps for longer rule windows.
    history: usize,
    max_message_bytes: usize,
    dead_letter_payload_bytes: usize,
    /// Per input message: 1 while being ingested, plus 1 per record held by the traceback
    /// folder or the aligner (a folded event is held by its first line's message).
    holds: HashMap<AckId, u32>,
    stats: Stats,
    logs: logclean::LogCleaner,
    /// Outputs produced where no emission is returned (revocation), sent with the next one.
    carry: Emission,
}

impl Pipeline {
    /// Loads the rules of the pipeline in `dir`.
    pub async fn load(dir: &Path, config: &PipelineConfig) -> Result<Self> {
        let rules = load_rules(dir, &config.rules)?;
        check_rule_windows(&rules, config)?;
        let history = history_len(&rules, config);
        Ok(Pipeline {
            decoder: Decoder::new(config.decode.max_message_bytes),
            dir: dir.to_path_buf(),
            config: config.clone(),
            shards: BTreeMap::new(),
            retired: AlignStats::default(),
            engine: RuleEngine::new(rules, config.evaluation.limits()).await?,
            sources: RuleEngine::new(
                config
                    .detectors
                    .iter()
                    .map(|d| d.source_rule(&dir.join("pipeline.toml")))
                    .collect(),
                config.evaluation.limits(),
            )
            .await?,
            history,
            max_message_bytes: config.decode.max_message_bytes,
            dead_letter_payload_bytes: config.decode.dead_letter_payload_bytes,
            holds: HashMap::new(),
            stats: Stats::default(),
            logs: logclean::LogCleaner::load(dir, &config.logs)?,
            carry: Emission::default(),
        })
    }

    /// Persists the log template state (when `[logs] template_state` is set).
    pub fn save_templates(&self) -> Result<()> {
        self.logs.save()
    }

    /// Counters, with the aligner's summed over shards.
    pub fn stats(&self) -> Stats {
        let mut align = self.retired.clone();
        for shard in self.shards.values() {
            align.add(&shard.aligner.stats());
        }
        Stats {
            align,
            logs: self.logs.stats,
            ..self.stats.clone()
        }
    }

    fn shard(&mut self, number: i32) -> &mut Shard {
        let config = &self.config;
        self.shards.entry(number).or_insert_with(|| Shard {
            aligner: TraceAligner::new(config.align()),
            folder: logclean::ShardFolder::new(config),
            watermarks: WatermarkTracker::new(config.window.max_out_of_orderness),
            lifecycle: Lifecycle::new(
                &config.name,
                config.alerting.resend_interval,
                config.alerting.inhibit.clone(),
            ),
            detectors: DetectorSet::new(&config.detectors, &self.dir.join("pipeline.toml")),
            grouper: Grouper::new(
                config.alerting.group_by.clone(),
                config.alerting.group_wait,
                config.alerting.group_interval,
            ),
            history: VecDeque::new(),
            deferred: VecDeque::new(),
            deferred_acks: 0,
        })
    }

    /// Registers an assigned partition: it holds its shard's watermark back until it
    /// delivers a record or goes idle.
    pub fn register(&mut self, partition: &PartitionKey) {
        self.shard(partition.1).watermarks.register(partition);
    }

    /// Loads and plans the rules again. On any error the current rules keep running and the
    /// error (with `file:line`) is returned.
    pub async fn reload_rules(&mut self) -> Result<usize> {
        let rules = load_rules(&self.dir, &self.config.rules)?;
        check_rule_windows(&rules, &self.config)?;
        let history = history_len(&rules, &self.config);
        let engine = RuleEngine::new(rules, self.config.evaluation.limits()).await?;
        self.engine = engine;
        self.history = history;
        Ok(self.engine.len())
    }

    /// Where the rules live, for change detection.
    pub fn rule_paths(&self) -> (&Path, &[PathBuf]) {
        (&self.dir, &self.config.rules)
    }

    pub fn rule_count(&self) -> usize {
        self.engine.len()
    }

    /// The lowest shard watermark.
    pub fn watermark(&self) -> EventTime {
        self.shards
            .values()
            .map(|s| s.aligner.watermark())
            .min()
            .unwrap_or(EventTime::MIN)
    }

    /// Estimated bytes held by open traces and unevaluated windows, all shards.
    pub fn buffered_bytes(&self) -> usize {
        self.shards
            .values()
            .map(|s| s.aligner.buffered_bytes())
            .sum()
    }

    /// True when every input partition seen so far is idle (or none was seen).
    pub fn all_idle(&self) -> bool {
        self.shards.values().all(|s| s.watermarks.all_idle())
    }

    pub fn is_idle(&self, partition: &PartitionKey) -> bool {
        self.shards
            .get(&partition.1)
            .is_some_and(|s| s.watermarks.is_idle(partition))
    }

    /// Decodes one message, places its records, and evaluates the windows that the new
    /// watermark (or a memory cap) releases. The message's partition is its source's.
    pub async fn ingest(&mut self, msg: &InputMessage, ack: AckId) -> Emission {
        let partition = msg.source.partition_key();
        self.ingest_from(msg, ack, &partition).await
    }

    /// Newest event time seen on a partition.
    pub fn newest(&self, partition: &PartitionKey) -> EventTime {
        self.shards
            .get(&partition.1)
            .and_then(|s| s.watermarks.newest(partition))
            .unwrap_or(EventTime::MIN)
    }

    /// [`Pipeline::ingest`] for a message of partition `partition`.
    pub async fn ingest_from(
        &mut self,
        msg: &InputMessage,
        ack: AckId,
        partition: &PartitionKey,
    ) -> Emission {
        let mut em = std::mem::take(&mut self.carry);
        self.stats.messages += 1;
        self.holds.insert(ack, 1);
        let decoded = if msg.size > self.max_message_bytes {
            Err(DecodeError::new(
                DecodeErrorKind::Oversized,
                format!(
                    "message of {} bytes exceeds decode.max_message_bytes ({})",
                    msg.size, self.max_message_bytes
                ),
            ))
        } else {
            self.decoder.decode(&msg.payload, msg.context)
        };
        match decoded {
            Err(error) => {
                self.stats.dead_letters += 1;
                warn!(source = %msg.source, kind = %error.kind, reason = %error.message,
                    "Failed to decode input; sent to dead letter.");
                let dl = DeadLetter::new(
                    &error,
                    msg.source.clone(),
                    msg.context.signal,
                    &msg.payload,
                    msg.size,
                    self.dead_letter_payload_bytes,
                );
                em.outputs.push(Output::dead_letter(&dl));
            }
            Ok(records) => {
                let shard = partition.1;
                self.stats.records += records.len() as u64;
                *self.holds.get_mut(&ack).expect("held") += records.len() as u32;
                let mut folded = Vec::new();
                let mut others = Vec::new();
                let s = self.shard(shard);
                for record in records {
                    s.watermarks.observe(partition, record.event_time());
                    match record {
                        Record::Log(log) => folded.extend(s.folder.push(log, ack, &msg.source)),
                        other => others.push(other),
                    }
                }
                for record in others {
                    self.insert(shard, record, ack, &msg.source, &mut em);
                }
                let cleaned = self.logs.finish(folded);
                self.place(shard, cleaned, &mut em);
                let early = self.shard(shard).aligner.enforce_byte_cap();
                self.evaluate(shard, early, &mut em).await;
                em.append(self.advance(shard).await);
            }
        }
        self.release(ack, &mut em);
        em
    }

    /// Marks a partition idle (or a file finished): it stops holding the watermark back.
    pub async fn set_idle(&mut self, partition: &PartitionKey) -> Emission {
        self.shard(partition.1).watermarks.set_idle(partition);
        self.advance(partition.1).await
    }

    async fn advance(&mut self, shard: i32) -> Emission {
        let mut em = Emission::default();
        if let Some(wm) = self.shard(shard).watermarks.watermark() {
            self.advance_shard(shard, wm, &mut em).await;
        }
        em
    }

    /// Moves one shard to `watermark`: finished folds go to the aligner first, so a fold is
    /// placed before its window can close.
    async fn advance_shard(&mut self, shard: i32, watermark: EventTime, em: &mut Emission) {
        let items = self.shard(shard).folder.flush_older_than(watermark);
        let cleaned = self.logs.finish(items);
        self.place(shard, cleaned, em);
        let closed = self.shard(shard).aligner.advance(watermark);
        self.evaluate(shard, closed, em).await;
    }

    /// Hands cleaned log records to the aligner; the messages of lines merged into a fold
    /// are done (their content lives on in the fold's record, held by its first message).
    /// One emitter's lines come from one partition, in order, so the first line's message is
    /// the oldest of the fold and its hold keeps every later offset uncommitted.
    fn place(&mut self, shard: i32, cleaned: Vec<logclean::Cleaned>, em: &mut Emission) {
        for c in cleaned {
            for merged in c.merged {
                self.release(merged, em);
            }
            self.insert(shard, Record::Log(c.log), c.ack, &c.source, em);
        }
    }

    /// Places one record; a record too late for its window is reported and its hold released.
    fn insert(
        &mut self,
        shard: i32,
        record: Record,
        ack: AckId,
        source: &Location,
        em: &mut Emission,
    ) {
        if let Err(late) = self.shard(shard).aligner.insert(record, ack) {
            self.stats.late += 1;
            em.outputs
                .push(Output::late(&LateRecord::new(&late, source.clone())));
            self.release(ack, em);
        }
    }

    /// Moves every shard's watermark to `watermark` regardless of the partitions (every
    /// input is quiet and the driver lets event time follow the wall clock).
    pub async fn advance_watermark(&mut self, watermark: EventTime) -> Emission {
        let mut em = std::mem::take(&mut self.carry);
        let numbers: Vec<i32> = self.shards.keys().copied().collect();
        for n in numbers {
            self.advance_shard(n, watermark, &mut em).await;
        }
        em
    }

    /// A partition was revoked: forgets its watermark and drops the records it contributed
    /// to open state, without releasing them — they were not committed, so the partition's
    /// new owner reads them again. `is_revoked` tells which input messages came from it.
    pub fn revoke(&mut self, partition: &PartitionKey, mut is_revoked: impl FnMut(AckId) -> bool) {
        let Some(shard) = self.shards.get_mut(&partition.1) else {
            return;
        };
        // Pending folds: the revoked partition's lines are dropped like its aligned rows;
        // other partitions' go on to the aligner.
        let items = shard.folder.flush_all();
        let mut carry = std::mem::take(&mut self.carry);
        for c in self.logs.finish(items) {
            if is_revoked(c.ack) {
                for ack in std::iter::once(c.ack).chain(c.merged) {
                    self.forget(ack);
                }
            } else {
                self.place(partition.1, vec![c], &mut carry);
            }
        }
        self.carry = carry;
        let shard = self.shards.get_mut(&partition.1).expect("present");
        shard.watermarks.remove(partition);
        for ack in shard.aligner.remove_acks(is_revoked) {
            self.forget(ack);
        }
        let shard = self.shards.get_mut(&partition.1).expect("present");
        if shard.watermarks.is_empty() {
            // Its held messages were not committed: the new owner replays them.
            let shard = self.shards.remove(&partition.1).expect("present");
            for ack in shard.deferred.into_iter().flat_map(|(_, acks)| acks) {
                self.forget(ack);
            }
            self.retired.add(&shard.aligner.stats());
        }
    }

    /// Drops one hold without releasing the message: it stays uncommitted (revocation).
    fn forget(&mut self, ack: AckId) {
        if let Some(n) = self.holds.get_mut(&ack) {
            *n -= 1;
            if *n == 0 {
                self.holds.remove(&ack);
            }
        }
    }

    /// End of input: evaluates every open window and releases every held message.
    pub async fn finish(&mut self) -> Emission {
        let mut em = std::mem::take(&mut self.carry);
        let numbers: Vec<i32> = self.shards.keys().copied().collect();
        for n in numbers {
            let items = self.shard(n).folder.flush_all();
            let cleaned = self.logs.finish(items);
            self.place(n, cleaned, &mut em);
            let closed = self.shard(n).aligner.flush();
            self.evaluate(n, closed, &mut em).await;
            let deferred = std::mem::take(&mut self.shard(n).deferred);
            for ack in deferred.into_iter().flat_map(|(_, acks)| acks) {
                self.release(ack, &mut em);
            }
        }
        em
    }

    fn release(&mut self, ack: AckId, em: &mut Emission) {
        if let Some(n) = self.holds.get_mut(&ack) {
            *n -= 1;
            if *n == 0 {
                self.holds.remove(&ack);
                em.released.push(ack);
            }
        }
    }

    async fn evaluate(&mut self, shard: i32, batches: Vec<AlignedBatch>, em: &mut Emission) {
        for batch in batches {
            self.stats.windows += 1;
            if batch.early {
                warn!(window_start = %batch.window.start, buffered_bytes = self.buffered_bytes(),
                    "Memory cap reached; evaluating the oldest window early.");
            }
            let history = self.shard(shard).history.make_contiguous().to_vec();
            let (mut findings, mut failures) = self.engine.evaluate(&batch, &history).await;
            if !self.sources.is_empty() {
                let (rows, mut source_failures) = self.sources.evaluate(&batch, &[]).await;
                failures.append(&mut source_failures);
                findings.extend(self.shard(shard).detectors.observe(&rows, batch.window));
            }
            debug!(window_start = %batch.window.start, spans = batch.spans.num_rows(),
                logs = batch.logs.num_rows(), traces = batch.traces.num_rows(),
                findings = findings.len(), "Window evaluated.");
            for f in failures {
                self.stats.rule_failures += 1;
                warn!(rule = %f.rule_id, window_start = %batch.window.start, error = %f.message,
                    "Rule failed on a window; other rules still ran.");
            }
            let max_deferred = self.config.limits.max_deferred_acks;
            let keep = self.history;
            let s = self.shard(shard);
            if keep > 0 {
                s.history.push_back(AlignedBatch {
                    acks: Vec::new(),
                    ..batch.clone()
                });
                while s.history.len() > keep {
                    s.history.pop_front();
                }
            }
            let notifications = s.lifecycle.observe(batch.window, findings);
            let alerts = s
                .grouper
                .push(batch.window.start, batch.window.end, notifications);
            s.deferred_acks += batch.acks.len();
            s.deferred.push_back((batch.window.start, batch.acks));
            let hold = match (s.lifecycle.earliest_since(), s.grouper.earliest_queued()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let mut released = Vec::new();
            let mut unreplayable = 0;
            while let Some((start, _)) = s.deferred.front() {
                let needed = hold.is_some_and(|h| *start >= h);
                if needed && s.deferred_acks <= max_deferred {
                    break;
                }
                if needed {
                    unreplayable += 1;
                }
                let (_, acks) = s.deferred.pop_front().expect("front exists");
                s.deferred_acks -= acks.len();
                released.extend(acks);
            }
            self.stats.alert_state_unreplayable += unreplayable;
            for alert in &alerts {
                self.stats.alerts += 1;
                em.outputs.push(Output::alert(alert));
            }
            for ack in released {
                self.release(ack, em);
            }
        }
    }
}

/// A rule's `window` must be a whole multiple of the pipeline's tumbling window.
fn check_rule_windows(rules: &[crate::rules::Rule], config: &PipelineConfig) -> Result<()> {
    let size = config.window.size;
    for r in rules {
        let Some(w) = r.window else { continue };
        if config.window.slide() != size || w.as_nanos() % size.as_nanos() != 0 {
            return Err(crate::error::Error::Rule {
                location: format!("{}:1", r.path.display()),
                message: format!(
                    "window {} must be a whole multiple of the pipeline's tumbling window.size ({})",
                    humantime::format_duration(w),
                    humantime::format_duration(size)
                ),
            });
        }
    }
    Ok(())
}

/// How many earlier batches a shard keeps: enough for the longest rule window.
fn history_len(rules: &[crate::rules::Rule], config: &PipelineConfig) -> usize {
    let size = config.window.size.as_nanos().max(1);
    rules
        .iter()
        .filter_map(|r| r.window)
        .map(|w| (w.as_nanos() / size) as usize)
        .max()
        .map_or(0, |k| k.saturating_sub(1))
}
