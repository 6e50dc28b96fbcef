//! The Kafka driver: the pipeline as a member of a consumer group. Only this file reads the
//! wall clock: partition idleness, the watermark following the wall clock when every input
//! is quiet, the rule-evaluation budget, the commit interval and rule-file polling.
//!
//! One loop, one step per event: a signal, a delivery, a message, or a tick. Offsets are
//! committed only for messages whose outputs are all acknowledged (see `ledger`); records
//! still in open windows are re-read after a restart.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::CommitMode;
use tracing::{debug, error, info, warn};

mod checkpoint;
mod exactly_once;
mod observe;

use checkpoint::{without_repeats, Checkpoints, Restored};
use observe::own_telemetry;

use super::emit::Emitter;
use super::health::{Health, Status};
use super::{Emission, Metrics, Pipeline, Stats, WallClock};
use crate::broker::{wait_for_brokers, Chatter};
use crate::config::PipelineConfig;
use crate::error::Result;
use crate::load::{reload_rules, rules_stamp, save_states, Loaded, RulesStamp};
use crate::model::{AckId, EventTime, Location, PartitionKey};
use crate::output::{JournalPartition, JournalPosition, WatermarkDecision};
use crate::sink::{output_producer, KafkaSink, TopicWriter, Transactions};
use crate::source::{FeedbackMessage, FeedbackSource, InputMessage, KafkaSource, OffsetTracker};

/// How the Kafka driver is run, besides the pipeline.
#[derive(Debug, Clone, Default)]
pub struct KafkaOptions {
    /// Give up when no broker answered within this time.
    pub connect_timeout: Option<Duration>,
    /// Serve `/healthz` and `/readyz` here.
    pub health_addr: Option<String>,
    /// Serve the pipeline's own metrics (`GET /metrics`) here.
    pub metrics_addr: Option<String>,
    /// Export the same metrics, and a span per rule evaluation, to this OTLP/HTTP receiver.
    pub otlp_endpoint: Option<String>,
    /// How often the OTLP export runs.
    pub otlp_interval: Duration,
}

/// How often rule files are polled for changes.
const RULES_POLL: Duration = Duration::from_secs(2);
/// How often delivered offsets are committed.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs as a member of consumer group `group` until `shutdown` resolves, then waits for
/// pending deliveries, commits and returns.
///
/// It first waits for the brokers (`connect_timeout` bounds the wait): wrong credentials or
/// certificates end the run with one error; a signal while waiting stops it cleanly.
pub async fn run_kafka(
    loaded: Loaded,
    brokers: &str,
    group: &str,
    options: &KafkaOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<Stats> {
    tokio::pin!(shutdown);
    let begun = Instant::now();
    let health = Health::default();
    if let Some(addr) = &options.health_addr {
        health.serve(addr)?;
    }
    let instance = loaded.config.kafka.instance_id.clone();
    let instance = instance.unwrap_or_else(|| format!("{group}/{}", std::process::id()));
    let (metrics, _export) = own_telemetry(options, &instance)?;
    let connect_timeout = options.connect_timeout;
    let kafka = loaded.config.kafka.clone();
    let started = async {
        wait_for_brokers(brokers, &kafka, connect_timeout).await?;
        Driver::start(loaded, brokers, group, metrics).await
    };
    let mut d = tokio::select! {
        d = started => d?,
        _ = &mut shutdown => {
            info!("Stopped before consuming.");
            return Ok(Stats::default());
        }
    };
    d.started = Some(begun);
    d.health = health;
    d.health.set(Status::Ok, None);
    let mut tick = tokio::time::interval(d.tick_interval());
    let mut hangup = hangup_signal();
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = hangup.recv() => d.reload("SIGHUP received; reloading rules.").await,
            acks = d.emitter.delivered() => d.delivered(acks?),
            fb = d.feedback.recv() => d.on_feedback(fb)?,
            msg = d.source.recv(), if !d.paused => d.on_message(msg).await?,
            _ = tick.tick() => d.on_tick().await?,
        }
        d.backpressure()?;
    }
    d.stop().await
}

/// The co-partitioning check needs metadata: waits for it rather than skip it.
async fn check_topics(source: &KafkaSource, config: &PipelineConfig) -> Result<()> {
    let mut waited = false;
    loop {
        match source.check_topics(&config.kafka, Duration::from_secs(10)) {
            Ok(missing) if !missing.is_empty() => warn!(
                ?missing,
                "Input topics do not exist yet; waiting for them to be created."
            ),
            Ok(_) => {}
            Err(e @ crate::Error::KafkaSetup(_)) => return Err(e),
            Err(error) => {
                if !waited {
                    warn!(%error, "Cluster metadata not available yet; waiting for it.");
                    waited = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        return Ok(());
    }
}

/// The driver's state between steps.
struct Driver {
    pipeline: Pipeline,
    source: KafkaSource,
    feedback: FeedbackSource,
    tracker: Arc<Mutex<OffsetTracker>>,
    emitter: Emitter,
    dir: PathBuf,
    config: PipelineConfig,
    paused: bool,
    last_input: Instant,
    last_seen: HashMap<PartitionKey, Instant>,
    last_commit: Instant,
    rules_stamp: RulesStamp,
    last_rules_check: Instant,
    /// The watermark journal (`kafka.outputs.watermarks`).
    journal: TopicWriter,
    /// Per partition, the offset of the next message to ingest.
    positions: HashMap<PartitionKey, i64>,
    /// Wall-clock decisions since the last input message, journaled before the next one.
    pending: WatermarkDecision,
    /// Repeated consumer errors are logged once a minute.
    chatter: Chatter,
    /// What `/healthz` and `/readyz` report.
    health: Health,
    /// When the process began to start, until the first input message is logged (the
    /// time a restart takes to get back to work).
    started: Option<Instant>,
    /// State checkpoints (`[kafka.checkpoints]`), when on.
    checkpoints: Option<Checkpoints>,
    /// The transactional producer, with `[kafka.checkpoints] exactly_once`.
    txn: Option<Transactions>,
    /// The pipeline's own metrics (`--metrics-addr`) and what is counted for them between
    /// updates: messages and bytes per topic.
    metrics: Option<Arc<Metrics>>,
    received: HashMap<String, (u64, u64)>,
    last_metrics: Instant,
}

impl Driver {
    async fn start(
        loaded: Loaded,
        brokers: &str,
        group: &str,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Self> {
        let (dir, config) = (loaded.dir.clone(), loaded.config.clone());
        let budget = WallClock::new(
            config.evaluation.timeout,
            config.evaluation.parallelism(),
            metrics.clone(),
        );
        let mut pipeline = Pipeline::new(loaded, Box::new(budget)).await?;
        let tracker = Arc::new(Mutex::new(OffsetTracker::default()));
        let txn = match config.kafka.checkpoints.exactly_once {
            true => Some(Transactions::start(brokers, group, &config.kafka)?),
            false => None,
        };
        // One producer for the outputs, the checkpoints and (without transactions) the
        // journal: see `output_producer`.
        let producer = match &txn {
            Some(t) => t.producer(),
            None => output_producer(brokers, &config.kafka)?,
        };
        let checkpoints =
            Checkpoints::start(brokers, group, &config.kafka, producer.clone()).await?;
        if checkpoints.is_some() {
            pipeline.use_checkpoints();
            tracker.lock().expect("tracker lock").follow_checkpoints();
        }
        let source = KafkaSource::new(brokers, group, &config.kafka, tracker.clone())?;
        let mut feedback = FeedbackSource::new(brokers, group, &config.kafka)?;
        let sink = KafkaSink::with_producer(producer.clone(), &config.kafka);
        let mut emitter = Emitter::new(Box::new(sink), &config);
        for m in feedback.history().await? {
            emitter.emit(pipeline.feedback(&m.payload, &m.source))?;
        }
        info!(feedback = pipeline.stats().feedback, "Feedback replayed.");
        check_topics(&source, &config).await?;
        // The journal is written outside transactions: a transactional producer cannot.
        let journal_topic = &config.kafka.outputs.watermarks;
        let journal = match &txn {
            Some(_) => TopicWriter::for_pipeline(brokers, journal_topic, &config.kafka)?,
            None => TopicWriter::with_producer(producer, journal_topic),
        };
        info!(brokers, group, rules = pipeline.rule_count(), "Consuming.");
        Ok(Driver {
            pipeline,
            source,
            feedback,
            tracker,
            emitter,
            rules_stamp: rules_stamp(&dir, &config.rules),
            dir,
            config,
            paused: false,
            last_input: Instant::now(),
            last_seen: HashMap::new(),
            last_commit: Instant::now(),
            last_rules_check: Instant::now(),
            journal,
            positions: HashMap::new(),
            pending: WatermarkDecision {
                positions: Vec::new(),
                idle: Vec::new(),
                watermark_unix_nano: None,
            },
            chatter: Chatter::default(),
            started: Some(Instant::now()),
            health: Health::default(),
            checkpoints,
            txn,
            metrics,
            received: HashMap::new(),
            last_metrics: Instant::now(),
        })
    }

    fn tick_interval(&self) -> Duration {
        let window = self.config.window.idle_timeout;
        let idle = (self.config.kafka.inputs.iter())
            .filter_map(|i| i.idle_timeout)
            .fold(window, Duration::min);
        Duration::from_millis(100).min(idle.max(Duration::from_millis(10)))
    }

    fn emit(&mut self, em: Emission) -> Result<()> {
        self.emitter.emit(em)
    }

    /// An emission was delivered: its released messages may be committed.
    fn delivered(&mut self, acks: Vec<AckId>) {
        let mut t = self.tracker.lock().expect("tracker lock");
        for ack in acks {
            t.done(ack);
        }
    }

    /// One input message: register its offset, run it through the pipeline, send.
    async fn on_message(&mut self, msg: Result<InputMessage>) -> Result<()> {
        let msg = match msg {
            Ok(m) => m,
            Err(error) => {
                if self.chatter.fresh(&error.to_string()) {
                    warn!(%error, "Kafka consumer error; retrying (repeats are not logged for a minute).");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Ok(());
            }
        };
        self.rebalanced().await?;
        self.last_input = Instant::now();
        if let Some(started) = self.started.take() {
            info!(
                after_ms = started.elapsed().as_millis() as u64,
                "First input message."
            );
        }
        let Location::Kafka {
            topic,
            partition,
            offset,
        } = &msg.source
        else {
            unreachable!("kafka source yields kafka locations")
        };
        if self.metrics.is_some() {
            // No topic name copied per message: only a topic's first message since the
            // last metrics update inserts one.
            match self.received.get_mut(topic.as_str()) {
                Some(counts) => *counts = (counts.0 + 1, counts.1 + msg.size as u64),
                None => {
                    self.received.insert(topic.clone(), (1, msg.size as u64));
                }
            }
        }
        let ack = self
            .tracker
            .lock()
            .expect("tracker lock")
            .register(topic, *partition, *offset);
        let key = PartitionKey::new(topic.as_str(), *partition);
        let restored = match &mut self.checkpoints {
            Some(cp) => cp.classify(&key, *offset),
            None => Restored::Normal,
        };
        if restored == Restored::Skip {
            self.tracker.lock().expect("tracker lock").done(ack);
            self.positions.insert(key, offset + 1);
            return Ok(());
        }
        self.last_seen.insert(key.clone(), self.last_input);
        self.positions.insert(key.clone(), *offset);
        self.journal_decisions().await;
        self.positions.insert(key.clone(), offset + 1);
        let em = self.pipeline.ingest(&msg, ack, &key).await;
        match restored {
            Restored::Replay => self.emit(without_repeats(em)),
            _ => self.emit(em),
        }
    }

    /// Writes the wall-clock decisions made since the last message to the journal, with the
    /// position every assigned partition had reached, before the next message goes in: a
    /// replay then makes them between the same records. Best effort: a failed write is
    /// logged (the replay of that stretch may then differ, as without a journal).
    async fn journal_decisions(&mut self) {
        if self.pending.idle.is_empty() && self.pending.watermark_unix_nano.is_none() {
            return;
        }
        let mut decision = std::mem::replace(
            &mut self.pending,
            WatermarkDecision {
                positions: Vec::new(),
                idle: Vec::new(),
                watermark_unix_nano: None,
            },
        );
        let mut assigned: Vec<&PartitionKey> = self.last_seen.keys().collect();
        assigned.sort();
        decision.positions = assigned
            .into_iter()
            .map(|k| JournalPosition {
                topic: k.topic.clone(),
                partition: k.partition,
                offset: self.positions.get(k).copied(),
            })
            .collect();
        let payload = serde_json::to_vec(&decision).expect("decisions serialize");
        if let Err(error) = self.journal.send("", &payload).await {
            warn!(%error, "Watermark journal not written; a replay may differ from this run here.");
        }
    }

    /// A feedback record: the knowledge base learns from it at once.
    fn on_feedback(&mut self, msg: Result<FeedbackMessage>) -> Result<()> {
        match msg {
            Ok(m) => {
                let em = self.pipeline.feedback(&m.payload, &m.source);
                self.emit(em)
            }
            Err(error) => {
                if self.chatter.fresh(&error.to_string()) {
                    warn!(%error, "Feedback consumer error; retrying (repeats are not logged for a minute).");
                }
                Ok(())
            }
        }
    }

    /// Periodic work: rebalances, idle partitions, the wall-clock watermark, rule files,
    /// commits.
    async fn on_tick(&mut self) -> Result<()> {
        self.rebalanced().await?;
        self.check_health();
        self.record_metrics();
        self.idle_partitions().await?;
        self.follow_wall_clock().await?;
        if self.last_rules_check.elapsed() >= RULES_POLL {
            self.last_rules_check = Instant::now();
            let stamp = rules_stamp(&self.dir, &self.config.rules);
            if stamp != self.rules_stamp {
                self.reload("Rule files changed; reloading rules.").await;
            }
        }
        self.checkpoint(false).await?;
        if self.last_commit.elapsed() >= COMMIT_INTERVAL {
            self.commit(CommitMode::Async);
            self.last_commit = Instant::now();
        }
        Ok(())
    }

    /// Partitions quiet for the idle timeout stop holding the watermark back. Not while the
    /// consumer is paused, nor a partition with messages waiting in Kafka (a loaded machine
    /// reading slowly): treating them as quiet would close windows without their records
    /// (and make their series look silent).
    async fn idle_partitions(&mut self) -> Result<()> {
        if self.paused {
            return Ok(());
        }
        let window = self.config.window.idle_timeout;
        let kafka = &self.config.kafka;
        let quiet: Vec<PartitionKey> = self
            .last_seen
            .iter()
            .filter(|(p, at)| {
                at.elapsed() >= kafka.idle_timeout(&p.topic, window)
                    && !self.pipeline.is_idle(p)
                    && !self.source.lagging(p)
            })
            .map(|(p, _)| p.clone())
            .collect();
        for p in quiet {
            debug!(topic = %p.topic, partition = p.partition, "Partition idle.");
            let em = self.pipeline.set_idle(&p).await;
            self.emit(em)?;
            self.pending.idle.push(JournalPartition {
                topic: p.topic.clone(),
                partition: p.partition,
            });
        }
        Ok(())
    }

    /// When every input is quiet, event time catches up with the wall clock so open windows
    /// close (replays of old data close at once).
    async fn follow_wall_clock(&mut self) -> Result<()> {
        if self.paused
            || self.last_input.elapsed() < self.config.window.idle_timeout
            || !self.pipeline.all_idle()
        {
            return Ok(());
        }
        let wm = wall_clock().saturating_sub(self.config.window.max_out_of_orderness);
        if wm > self.pipeline.watermark() {
            let em = self.pipeline.advance_watermark(wm).await;
            self.emit(em)?;
            self.pending.watermark_unix_nano = Some(wm.0);
        }
        Ok(())
    }

    /// Reloads the rules through the loader; a bad rule set is reported and the running one
    /// kept.
    async fn reload(&mut self, why: &str) {
        info!("{why}");
        self.rules_stamp = rules_stamp(&self.dir, &self.config.rules);
        let replaced = match reload_rules(&self.dir, &self.config).await {
            Ok(rules) => self.pipeline.replace_rules(rules).await,
            Err(e) => Err(e),
        };
        match replaced {
            Ok(n) => info!(rules = n, "Rules reloaded."),
            Err(error) => error!(%error, rules = self.pipeline.rule_count(),
                "Rule reload failed; the previous rules keep running."),
        }
    }

    /// Commits the oldest undelivered offset per partition. A failed commit is not fatal:
    /// the offsets stay committable and are tried again at the next interval; if the
    /// partitions move first (the membership was lost while the coordinator was away), the
    /// new owner re-reads from the last commit, so outputs may repeat but none are lost.
    fn commit(&mut self, mode: CommitMode) {
        if self.txn.is_some() {
            return; // offsets go with the transaction at each checkpoint
        }
        let offsets = self.tracker.lock().expect("tracker lock").committable();
        if offsets.is_empty() {
            return;
        }
        match self.source.commit(&offsets, mode) {
            Ok(()) => self
                .tracker
                .lock()
                .expect("tracker lock")
                .mark_committed(&offsets),
            Err(error) => {
                self.health.commit_failed();
                if self.chatter.fresh(&error.to_string()) {
                    warn!(%error, "Commit failed; retried at the next interval, re-read from the last commit if the partitions move (repeats are not logged for a minute).");
                }
            }
        }
    }

    /// Stops fetching while too many outputs await acknowledgement; resumes once half of
    /// them are acknowledged.
    fn backpressure(&mut self) -> Result<()> {
        let max = self.config.limits.max_in_flight_outputs.max(1);
        let in_flight = self.emitter.in_flight_outputs();
        let want_pause = if self.paused {
            in_flight > max / 2
        } else {
            in_flight > max
        };
        if want_pause != self.paused {
            self.source.set_paused(want_pause)?;
            self.paused = want_pause;
            if !want_pause {
                // A pause is not quiet: idleness counts from the resume.
                let now = Instant::now();
                self.last_input = now;
                self.last_seen.values_mut().for_each(|t| *t = now);
            }
            info!(
                paused = want_pause,
                in_flight_outputs = in_flight,
                "Backpressure."
            );
        }
        Ok(())
    }

    /// Graceful stop: every delivery awaited, a synchronous commit, the template state
    /// saved.
    async fn stop(mut self) -> Result<Stats> {
        self.health.set(Status::Stopping, None);
        info!("Shutting down: waiting for deliveries, then committing.");
        let acks = self.emitter.close().await?;
        self.delivered(acks);
        self.checkpoint(true).await?;
        self.commit(CommitMode::Sync);
        let uncommitted = self.tracker.lock().expect("tracker lock").in_flight();
        save_states(
            &self.dir,
            &self.config,
            &self.pipeline.template_state(),
            self.pipeline.kb_state(),
        )?;
        let stats = self.pipeline.stats();
        info!(
            messages = stats.messages,
            dead_letters = stats.dead_letters,
            late = stats.late,
            alerts = stats.alerts,
            suggestions = stats.suggestions,
            feedback = stats.feedback,
            rule_timeouts = stats.rule_timeouts,
            uncommitted,
            commit_failures = self.health.report().commit_failures,
            "Stopped."
        );
        Ok(stats)
    }
}

fn wall_clock() -> EventTime {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    EventTime(i64::try_from(nanos).unwrap_or(i64::MAX))
}

/// SIGHUP, where there is such a thing.
struct Hangup(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangup {
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.0 {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    }
}

fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        Hangup(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok())
    }
    #[cfg(not(unix))]
    {
        Hangup()
    }
}
