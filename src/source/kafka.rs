//! Kafka input: a member of a consumer group on the pipeline's input topics.
//!
//! Offsets are never auto-stored or auto-committed: the pipeline commits, through
//! [`KafkaSource::commit`], only offsets the [`OffsetTracker`] allows. When partitions are
//! revoked in a rebalance, their committable offsets are committed synchronously before the
//! partitions are released, and the driver then drops their uncommitted state (the new owner
//! reads those records again).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
    StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::{InputMessage, OffsetTracker};
use crate::broker::Chatter;
use crate::config::{KafkaConfig, KafkaInput};
use crate::decode::MessageContext;
use crate::error::{Error, Result};
use crate::model::{EventTime, Location, PartitionKey};

/// Rebalance hooks: commit what may be committed before a partition goes away, and tell the
/// driver which partitions went.
pub struct RebalanceContext {
    chatter: Arc<Chatter>,
    tracker: Arc<Mutex<OffsetTracker>>,
    revoked: Arc<Mutex<Vec<PartitionKey>>>,
    assigned: Arc<Mutex<Vec<PartitionKey>>>,
    /// Off with exactly-once outputs: offsets are committed only in a transaction, with
    /// the outputs and state they cover.
    commit_on_revoke: bool,
}

impl ClientContext for RebalanceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.chatter.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.chatter.error(error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.chatter.stats(&statistics);
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        if !self.commit_on_revoke {
            info!(partitions = ?partition_names(tpl), "Partitions revoked; what was not committed in a transaction is re-read by the new owner.");
            self.revoked_now(tpl);
            return;
        }
        let tracker = self.tracker.lock().expect("tracker lock");
        let mut commit = TopicPartitionList::new();
        for e in tpl.elements() {
            if let Some(offset) = tracker.committable_for(e.topic(), e.partition()) {
                let _ =
                    commit.add_partition_offset(e.topic(), e.partition(), Offset::Offset(offset));
            }
        }
        drop(tracker);
        if commit.count() > 0 {
            if let Err(error) = consumer.commit(&commit, CommitMode::Sync) {
                warn!(%error, "Commit before revocation failed; the new owner re-reads more.");
            }
        }
        info!(partitions = ?partition_names(tpl), "Partitions revoked; committed what was delivered.");
        self.revoked_now(tpl);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            info!(partitions = ?partition_names(tpl), "Partitions assigned.");
            let mut assigned = self.assigned.lock().expect("assigned lock");
            assigned.extend(
                tpl.elements()
                    .iter()
                    .map(|e| PartitionKey::new(e.topic(), e.partition())),
            );
        }
    }
}

impl RebalanceContext {
    fn revoked_now(&self, tpl: &TopicPartitionList) {
        let mut revoked = self.revoked.lock().expect("revoked lock");
        revoked.extend(
            tpl.elements()
                .iter()
                .map(|e| PartitionKey::new(e.topic(), e.partition())),
        );
    }
}

/// A consumed message as the pipeline's input, decoded as its topic's `[[kafka.inputs]]` says.
pub(super) fn input_message(
    m: &impl Message,
    inputs: &HashMap<String, KafkaInput>,
) -> InputMessage {
    let payload = m.payload().unwrap_or_default().to_vec();
    let input = inputs.get(m.topic());
    InputMessage {
        size: payload.len(),
        payload,
        source: Location::Kafka {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
        },
        context: MessageContext {
            signal: input.and_then(|i| i.signal),
            encoding: input.map(|i| i.encoding).unwrap_or_default(),
            fallback_time: m
                .timestamp()
                .to_millis()
                .map(|ms| EventTime(ms.saturating_mul(1_000_000))),
        },
    }
}

fn partition_names(tpl: &TopicPartitionList) -> Vec<String> {
    tpl.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect()
}

pub struct KafkaSource {
    consumer: StreamConsumer<RebalanceContext>,
    inputs: HashMap<String, KafkaInput>,
    revoked: Arc<Mutex<Vec<PartitionKey>>>,
    assigned: Arc<Mutex<Vec<PartitionKey>>>,
}

impl KafkaSource {
    /// Joins `group` and subscribes to the input topics. The range assignor gives a member
    /// the same partition numbers of every topic, which keeps co-partitioned traces together.
    pub fn new(
        brokers: &str,
        group: &str,
        config: &KafkaConfig,
        tracker: Arc<Mutex<OffsetTracker>>,
    ) -> Result<Self> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("partition.assignment.strategy", "range")
            // Large enough for any message we accept; bigger ones become dead letters.
            .set("fetch.message.max.bytes", "16777216")
            .set("receive.message.max.bytes", "100000000")
            // Broker connection states for the health endpoint.
            .set("statistics.interval.ms", "2000");
        if let Some(id) = &config.instance_id {
            c.set("group.instance.id", id);
        }
        for (k, v) in config.consumer_settings()? {
            c.set(k, v);
        }
        let revoked = Arc::new(Mutex::new(Vec::new()));
        let assigned = Arc::new(Mutex::new(Vec::new()));
        let context = RebalanceContext {
            chatter: Arc::default(),
            tracker,
            revoked: revoked.clone(),
            assigned: assigned.clone(),
            commit_on_revoke: !config.checkpoints.exactly_once,
        };
        let consumer: StreamConsumer<RebalanceContext> = c
            .create_with_context(context)
            .map_err(|e| Error::kafka("creating consumer", e))?;
        let topics: Vec<&str> = config.inputs.iter().map(|i| i.topic.as_str()).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| Error::kafka(format!("subscribing to {topics:?}"), e))?;
        Ok(KafkaSource {
            consumer,
            inputs: config
                .inputs
                .iter()
                .map(|i| (i.topic.clone(), i.clone()))
                .collect(),
            revoked,
            assigned,
        })
    }

    /// Waits for the next message. Transient client errors are returned for the caller to log;
    /// the consumer keeps going.
    pub async fn recv(&self) -> Result<InputMessage> {
        let m = self
            .consumer
            .recv()
            .await
            .map_err(|e| Error::kafka("receiving", e))?;
        Ok(input_message(&m, &self.inputs))
    }

    /// Whether a broker connection was up at the consumer's last statistics report.
    pub fn brokers_up(&self) -> Option<bool> {
        self.consumer.context().chatter.brokers_up()
    }

    /// Messages behind the end of the assigned partitions (librdkafka statistics, every 2 s).
    pub fn consumer_lag(&self) -> Option<i64> {
        self.consumer.context().chatter.consumer_lag()
    }

    /// Consumer lag per assigned partition (librdkafka statistics, every 2 s).
    pub fn partition_lags(&self) -> Vec<(String, i32, i64)> {
        self.consumer.context().chatter.partition_lags()
    }

    /// Whether a partition had messages waiting in Kafka at the last statistics report (a
    /// slow consumer is not a quiet input).
    pub fn lagging(&self, partition: &PartitionKey) -> bool {
        self.consumer
            .context()
            .chatter
            .lagging(&partition.topic, partition.partition)
    }

    /// The consumer's last error event (a broker down, a failed connection): when, and what.
    pub fn last_error(&self) -> Option<(std::time::Instant, String)> {
        self.consumer.context().chatter.last_error()
    }

    /// How many partitions are assigned to this member now.
    pub fn assigned_partitions(&self) -> usize {
        self.consumer.assignment().map_or(0, |a| a.count())
    }

    /// Partitions assigned since the last call.
    pub fn take_assigned(&self) -> Vec<PartitionKey> {
        std::mem::take(&mut *self.assigned.lock().expect("assigned lock"))
    }

    /// Partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<PartitionKey> {
        std::mem::take(&mut *self.revoked.lock().expect("revoked lock"))
    }

    /// Commits next-to-read offsets.
    pub fn commit(&self, offsets: &[(String, i32, i64)], mode: CommitMode) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, offset) in offsets {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(|e| Error::kafka("building commit", e))?;
        }
        self.consumer
            .commit(&tpl, mode)
            .map_err(|e| Error::kafka("committing offsets", e))
    }

    /// The group's generation and member, which a transaction's offsets carry (the broker
    /// refuses them from a member that lost its partitions).
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.consumer.group_metadata()
    }

    /// Goes back to the committed offsets of `partitions` (the beginning where none is
    /// committed): after an aborted transaction, what it covered is read again.
    pub fn rewind(&self, partitions: &[PartitionKey]) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(&p.topic, p.partition);
        }
        let committed = self
            .consumer
            .committed_offsets(tpl, Duration::from_secs(30))
            .map_err(|e| Error::kafka("reading committed offsets", e))?;
        for e in committed.elements() {
            let offset = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            self.consumer
                .seek(e.topic(), e.partition(), offset, Duration::from_secs(10))
                .map_err(|err| {
                    Error::kafka(format!("seeking {}/{}", e.topic(), e.partition()), err)
                })?;
        }
        Ok(())
    }

    /// Stops (`true`) or resumes fetching on every assigned partition: backpressure.
    pub fn set_paused(&self, paused: bool) -> Result<()> {
        let assignment = self
            .consumer
            .assignment()
            .map_err(|e| Error::kafka("reading assignment", e))?;
        let result = if paused {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        result.map_err(|e| Error::kafka("pausing or resuming", e))
    }

    /// Checks the input topics: names those that do not exist yet, and fails when the
    /// existing ones have different partition counts and `require_copartitioned` is set
    /// (records of one trace on different topics would land on different members).
    pub fn check_topics(&self, config: &KafkaConfig, timeout: Duration) -> Result<Vec<String>> {
        let md = self
            .consumer
            .fetch_metadata(None, timeout)
            .map_err(|e| Error::kafka("fetching metadata", e))?;
        let mut counts = BTreeMap::new();
        let mut missing = Vec::new();
        for input in &config.inputs {
            match md
                .topics()
                .iter()
                .find(|t| t.name() == input.topic && t.error().is_none())
            {
                Some(t) => {
                    counts.insert(input.topic.clone(), t.partitions().len());
                }
                None => missing.push(input.topic.clone()),
            }
        }
        let distinct: std::collections::BTreeSet<_> = counts.values().collect();
        if distinct.len() > 1 {
            let message = format!(
                "input topics are not co-partitioned: partition counts {counts:?}; logs, metrics \
                 and spans of one trace must be keyed by trace id on topics with equal partition \
                 counts (set kafka.require_copartitioned = false to run anyway)"
            );
            if config.require_copartitioned {
                return Err(Error::KafkaSetup(message));
            }
            warn!("{message}");
        }
        Ok(missing)
    }
}
