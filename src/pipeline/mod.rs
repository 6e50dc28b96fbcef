//! The pipeline: decode → clean logs → align → rules and detectors → alerts, plus the
//! dead-letter and late paths, and the drivers that feed it.
//!
//! - [`Pipeline`] (this file) takes framed messages, idleness and watermarks and returns an
//!   [`Emission`] per step: outputs with the input messages they release. Async only because
//!   DataFusion is; it reads no clock and no file.
//! - [`ledger`]: which input messages are held, by what, released when (at-least-once).
//! - [`shard`]: one shard's stage chain. State is kept per **shard** — the partitions with
//!   the same number on every input topic (co-partitioned, keyed by trace id), or all input
//!   files — so a shard's results depend only on its own records, whichever consumer-group
//!   member owns it. Scaling out or rebalancing therefore changes no alert.
//! - [`files`] and [`kafka`]: the drivers, sharing one emit path ([`emit`]). Only they
//!   touch sources, sinks and the wall clock.

mod budget;
pub mod checkpoint;
pub mod emit;
pub mod files;
pub mod health;
pub mod kafka;
mod ledger;
mod logclean;
mod metrics;
pub mod otlp;
mod recording;
pub mod replay;
mod shard;

pub use budget::WallClock;
pub use ledger::Emission;
pub use logclean::CleanStats;
pub use metrics::Metrics;

use std::collections::BTreeMap;

use serde::Serialize;
use tracing::{debug, warn};

use crate::align::AlignStats;
use crate::config::PipelineConfig;
use crate::decode::{DecodeError, DecodeErrorKind, Decoder};
use crate::detect::DetectorConfig;
use crate::error::Result;
use crate::kb::feedback::{Feedback, KbState};
use crate::kb::KnowledgeBase;
use crate::load::Loaded;
use crate::logparse::MinerState;
use crate::model::{AckId, AlignedBatch, EventTime, Location, PartitionKey, Record};
use crate::output::{DeadLetter, LateRecord, Output};
use crate::rules::{EvalBudget, FailureKind, QueryEngine, Rule, RuleEngine};
use crate::source::InputMessage;
use crate::tables::ColumnSet;
use ledger::Ledger;
use logclean::{Cleaned, LogCleaner};
use shard::{Shard, Stages};

/// Counters, logged at the end of a run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub messages: u64,
    pub records: u64,
    pub dead_letters: u64,
    pub late: u64,
    pub windows: u64,
    pub alerts: u64,
    /// Suggestions written (each also counted in `review` when it needs a person).
    pub suggestions: u64,
    pub review: u64,
    /// Incident records written (opened, updated, resolved).
    pub incidents: u64,
    /// Feedback records applied (duplicates and unknown suggestions are not).
    pub feedback: u64,
    /// Rule or detector-source evaluations that failed (errors, memory limit, budget).
    pub rule_failures: u64,
    /// Of those, evaluations the Kafka driver's wall-clock budget (`evaluation.timeout`)
    /// abandoned or skipped. Always 0 in file runs.
    pub rule_timeouts: u64,
    /// Windows released from the alert-state hold because `limits.max_deferred_acks` was
    /// reached: after a failover their alerts' states could not be rebuilt.
    pub alert_state_unreplayable: u64,
    pub align: AlignStats,
    pub logs: CleanStats,
}

pub struct Pipeline {
    decoder: Decoder,
    config: PipelineConfig,
    detectors: Vec<DetectorConfig>,
    shards: BTreeMap<i32, Shard>,
    /// Counters of shards that were dropped (revoked).
    retired: AlignStats,
    rules: RuleEngine,
    sources: QueryEngine,
    /// The incident indicators' queries (`[[incidents.indicators]]`).
    indicators: QueryEngine,
    budget: Box<dyn EvalBudget>,
    kb: KnowledgeBase,
    /// Batches each shard keeps for longer rule windows.
    history: usize,
    /// The tables those batches keep: the ones longer-window rules and indicators read.
    look_back_tables: Vec<String>,
    /// The columns of the window's tables the aligners build: those the pipeline reads.
    columns: ColumnSet,
    ledger: Ledger,
    stats: Stats,
    logs: LogCleaner,
    /// Outputs produced where no emission is returned (revocation), sent with the next one.
    carry: Emission,
    /// State checkpoints keep alert states (see `checkpoint`): their input is not held.
    checkpointed: bool,
}

/// How many earlier batches a shard keeps: enough for the longest rule or indicator window.
fn history_len(rules: &[Rule], config: &PipelineConfig) -> usize {
    let size = config.window.size.as_nanos().max(1);
    let indicators = config.incidents.indicators.iter().filter_map(|i| i.window);
    rules
        .iter()
        .filter_map(|r| r.query.window)
        .chain(indicators)
        .map(|w| (w.as_nanos() / size) as usize)
        .max()
        .map_or(0, |k| k.saturating_sub(1))
}

/// The columns of the window's tables the pipeline reads: its queries' and those its stages
/// read from the tables directly. The others are not built (`tables::ColumnSet`).
fn read_columns(
    rules: &RuleEngine,
    sources: &QueryEngine,
    indicators: &QueryEngine,
    kb: &KnowledgeBase,
) -> ColumnSet {
    let mut columns = ColumnSet::default();
    rules.read_columns(&mut columns);
    sources.read_columns(&mut columns);
    indicators.read_columns(&mut columns);
    kb.read_columns(&mut columns);
    crate::incident::read_columns(&mut columns);
    debug!(?columns, "Columns the pipeline reads.");
    columns
}

fn look_back_tables(rules: &RuleEngine, indicators: &QueryEngine) -> Vec<String> {
    let mut names = rules.look_back_tables();
    names.extend(indicators.look_back_tables());
    names.sort();
    names.dedup();
    names
}

impl Pipeline {
    /// Plans the loaded pipeline's rules and detector sources. `budget` bounds each rule
    /// evaluation: [`crate::rules::Unbounded`] for deterministic runs.
    pub async fn new(loaded: Loaded, budget: Box<dyn EvalBudget>) -> Result<Self> {
        let Loaded {
            config,
            rules,
            sources,
            indicators,
            miner,
            entries,
            kb_state,
            ..
        } = loaded;
        let limits = config.evaluation.limits();
        let mut kb = KnowledgeBase::new(entries, config.kb.clone(), limits).await?;
        kb.restore(kb_state);
        let history = history_len(&rules, &config);
        let rules = RuleEngine::new(rules, limits).await?;
        let ranks = [crate::incident::comm::ranks_table()];
        let indicators = QueryEngine::with_extra(indicators, limits, &ranks).await?;
        let sources = QueryEngine::new(sources, limits).await?;
        Ok(Pipeline {
            decoder: Decoder::new(config.decode.max_message_bytes),
            detectors: config.detectors.clone(),
            shards: BTreeMap::new(),
            retired: AlignStats::default(),
            history,
            look_back_tables: look_back_tables(&rules, &indicators),
            columns: read_columns(&rules, &sources, &indicators, &kb),
            rules,
            sources,
            indicators,
            budget,
            kb,
            ledger: Ledger::default(),
            stats: Stats::default(),
            logs: LogCleaner::new(miner),
            carry: Emission::default(),
            checkpointed: false,
            config,
        })
    }

    /// One feedback message (`{suggestion_id, alert_fingerprint, verdict, …}`) for the
    /// knowledge base; one that is not a feedback record becomes a dead letter. Duplicates
    /// and records about no known suggestion change nothing.
    pub fn feedback(&mut self, payload: &[u8], source: &Location) -> Emission {
        let mut em = Emission::default();
        match serde_json::from_slice::<Feedback>(payload) {
            Ok(f) => {
                let applied = self.kb.apply_feedback(&f);
                self.stats.feedback += u64::from(applied);
            }
            Err(e) => {
                let error = DecodeError::new(
                    DecodeErrorKind::InvalidRecord,
                    format!("not a feedback record: {e}"),
                );
                let msg = InputMessage {
                    payload: payload.to_vec(),
                    size: payload.len(),
                    source: source.clone(),
                    context: Default::default(),
                };
                self.dead_letter(&msg, &error, &mut em);
            }
        }
        em
    }

    /// What feedback taught the knowledge base, for `[kb] state`.
    pub fn kb_state(&self) -> &KbState {
        self.kb.state()
    }

    /// The log template miner's state, for `[logs] template_state`.
    pub fn template_state(&self) -> MinerState {
        self.logs.state()
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
        let (config, detectors, columns) = (&self.config, &self.detectors, &self.columns);
        self.shards
            .entry(number)
            .or_insert_with(|| Shard::new(config, detectors, columns))
    }

    /// Registers an assigned partition: it holds its shard's watermark back until it
    /// delivers a record or goes idle.
    pub fn register(&mut self, partition: &PartitionKey) {
        self.shard(partition.shard()).watermarks.register(partition);
    }

    /// Replaces the rules (hot reload; the loader has read and checked them).
    pub async fn replace_rules(&mut self, rules: Vec<Rule>) -> Result<usize> {
        let history = history_len(&rules, &self.config);
        self.rules = RuleEngine::new(rules, self.config.evaluation.limits()).await?;
        self.history = history;
        self.look_back_tables = look_back_tables(&self.rules, &self.indicators);
        // Windows released from now on hold what the new rules read; the look-back keeps
        // the columns it was built with (as it keeps only the tables the old rules read).
        let columns = read_columns(&self.rules, &self.sources, &self.indicators, &self.kb);
        if !self.columns.covers(&columns) && self.history > 0 {
            warn!(
                ?columns,
                "The reloaded rules read columns no rule read before: windows already in the \
                 look-back hold placeholders there (nulls or empty values) until they age out."
            );
        }
        self.columns = columns;
        for shard in self.shards.values_mut() {
            shard.aligner.build_columns(self.columns.clone());
        }
        Ok(self.rules.len())
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
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
            .get(&partition.shard())
            .is_some_and(|s| s.watermarks.is_idle(partition))
    }

    /// Records decoded so far.
    pub fn records(&self) -> u64 {
        self.stats.records
    }

    /// Newest event time seen on a partition.
    pub fn newest(&self, partition: &PartitionKey) -> EventTime {
        self.shards
            .get(&partition.shard())
            .and_then(|s| s.watermarks.newest(partition))
            .unwrap_or(EventTime::MIN)
    }

    /// Input messages still held (in open windows, folds or alert-state holds).
    pub fn held_messages(&self) -> usize {
        self.ledger.held()
    }

    /// Decodes one message of `partition`, places its records, and evaluates the windows
    /// that the new watermark (or a memory cap) releases.
    pub async fn ingest(
        &mut self,
        msg: &InputMessage,
        ack: AckId,
        partition: &PartitionKey,
    ) -> Emission {
        let mut em = std::mem::take(&mut self.carry);
        self.stats.messages += 1;
        self.ledger.open(ack);
        match self.decode(msg) {
            Err(error) => self.dead_letter(msg, &error, &mut em),
            Ok(records) => {
                let shard = partition.shard();
                self.stats.records += records.len() as u64;
                self.ledger.hold(ack, records.len() as u32);
                let mut folded = Vec::new();
                let mut others = Vec::new();
                let s = self.shard(shard);
                // Once per message: the watermark only needs its newest record.
                if let Some(newest) = records.iter().map(Record::event_time).max() {
                    s.watermarks.observe(partition, newest);
                }
                for record in records {
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
        self.ledger.release(ack, &mut em);
        em
    }

    fn decode(&self, msg: &InputMessage) -> std::result::Result<Vec<Record>, DecodeError> {
        let max = self.config.decode.max_message_bytes;
        if msg.size > max {
            return Err(DecodeError::new(
                DecodeErrorKind::Oversized,
                format!(
                    "message of {} bytes exceeds decode.max_message_bytes ({max})",
                    msg.size
                ),
            ));
        }
        self.decoder.decode(&msg.payload, msg.context)
    }

    fn dead_letter(&mut self, msg: &InputMessage, error: &DecodeError, em: &mut Emission) {
        self.stats.dead_letters += 1;
        warn!(source = %msg.source, kind = %error.kind, reason = %error.message,
            "Failed to decode input; sent to dead letter.");
        let dl = DeadLetter::new(
            error,
            msg.source.clone(),
            msg.context.signal,
            &msg.payload,
            msg.size,
            self.config.decode.dead_letter_payload_bytes,
        );
        em.outputs.push(Output::dead_letter(&dl));
    }

    /// Marks a partition idle (or a file finished): it stops holding the watermark back.
    pub async fn set_idle(&mut self, partition: &PartitionKey) -> Emission {
        self.shard(partition.shard()).watermarks.set_idle(partition);
        self.advance(partition.shard()).await
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
    fn place(&mut self, shard: i32, cleaned: Vec<Cleaned>, em: &mut Emission) {
        for c in cleaned {
            for merged in c.merged {
                self.ledger.release(merged, em);
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
            self.ledger.release(ack, em);
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

    /// Moves the given shards to `watermark` (a replay repeating a journaled wall-clock
    /// decision of the member that owned them).
    pub async fn advance_shards(&mut self, shards: &[i32], watermark: EventTime) -> Emission {
        let mut em = std::mem::take(&mut self.carry);
        for n in shards {
            if self.shards.contains_key(n) {
                self.advance_shard(*n, watermark, &mut em).await;
            }
        }
        em
    }

    /// A partition was revoked: forgets its watermark and drops the records it contributed
    /// to open state, without releasing them — they were not committed, so the partition's
    /// new owner reads them again. `is_revoked` tells which input messages came from it.
    pub fn revoke(&mut self, partition: &PartitionKey, mut is_revoked: impl FnMut(AckId) -> bool) {
        let number = partition.shard();
        let Some(shard) = self.shards.get_mut(&number) else {
            return;
        };
        // Pending folds: the revoked partition's lines are dropped like its aligned rows;
        // other partitions' go on to the aligner.
        let items = shard.folder.flush_all();
        let mut carry = std::mem::take(&mut self.carry);
        for c in self.logs.finish(items) {
            if is_revoked(c.ack) {
                for ack in std::iter::once(c.ack).chain(c.merged) {
                    self.ledger.forget(ack);
                }
            } else {
                self.place(number, vec![c], &mut carry);
            }
        }
        self.carry = carry;
        let shard = self.shards.get_mut(&number).expect("present");
        shard.watermarks.remove(partition);
        let removed = shard.aligner.remove_acks(&mut is_revoked);
        let deferred = shard.alert_hold.remove_revoked(&mut is_revoked);
        for ack in removed.into_iter().chain(deferred) {
            self.ledger.forget(ack);
        }
        if self.shards[&number].watermarks.is_empty() {
            // Its held messages were not committed: the new owner replays them.
            let mut shard = self.shards.remove(&number).expect("present");
            for ack in shard.alert_hold.drain() {
                self.ledger.forget(ack);
            }
            self.retired.add(&shard.aligner.stats());
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
            for ack in self.shard(n).alert_hold.drain() {
                self.ledger.release(ack, &mut em);
            }
        }
        em
    }

    /// Evaluates released windows in order; their alerts go out, and the input no alert
    /// state needs is released.
    async fn evaluate(&mut self, shard: i32, batches: Vec<AlignedBatch>, em: &mut Emission) {
        for batch in batches {
            self.stats.windows += 1;
            if batch.early {
                warn!(window_start = %batch.window.start, buffered_bytes = self.buffered_bytes(),
                    "Memory cap reached; evaluating the oldest window early.");
            }
            let stages = Stages {
                rules: &self.rules,
                sources: &self.sources,
                indicators: &self.indicators,
                budget: self.budget.as_ref(),
                kb: &self.kb,
                history: self.history,
                look_back_tables: &self.look_back_tables,
                max_deferred_acks: self.config.limits.max_deferred_acks,
                checkpointed: self.checkpointed,
            };
            let s = self
                .shards
                .get_mut(&shard)
                .expect("windows come from a shard's own aligner");
            em.windows.push((batch.window.end, em.outputs.len()));
            let done = s.evaluate(batch, &stages).await;
            self.stats.rule_failures += done.failures.len() as u64;
            self.stats.rule_timeouts += done
                .failures
                .iter()
                .filter(|f| f.kind != FailureKind::Error)
                .count() as u64;
            self.stats.alert_state_unreplayable += done.unreplayable;
            self.stats.alerts += done.alerts.len() as u64;
            em.outputs.extend(done.alerts.iter().map(Output::alert));
            self.stats.incidents += done.incidents.len() as u64;
            em.outputs
                .extend(done.incidents.iter().map(Output::incident));
            for s in &done.suggestions {
                self.stats.suggestions += 1;
                em.outputs.push(Output::suggestion(s));
                // A person reviews the alert's best suggestion when it needs it (and every
                // "no known remediation"); alternatives stay on the suggestions output.
                if s.needs_review && s.rank == 1 {
                    self.stats.review += 1;
                    em.outputs.push(Output::review(s));
                }
            }
            for ack in done.release {
                self.ledger.release(ack, em);
            }
        }
    }
}

#[cfg(test)]
mod columns_tests;
#[cfg(test)]
mod tests;
