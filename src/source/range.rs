//! A fixed range of the input topics, read for a replay: its own consumer with a throw-away
//! group id, partitions assigned (never subscribed, so no group is joined) and no commits,
//! so a replay can never move a live consumer group's offsets.
//!
//! Each partition has its own queue (`split_partition_queue`): the replay driver asks for
//! the next message of the partition it chooses, so the order in which partitions are
//! interleaved is the driver's (by event time) and not the network's, and two replays of
//! one range see the same sequence.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, warn};

use super::kafka::input_message;
use super::InputMessage;
use crate::broker::QuietContext;
use crate::config::{KafkaConfig, KafkaInput};
use crate::error::{Error, Result};
use crate::model::PartitionKey;

/// Where a range starts.
#[derive(Debug, Clone, PartialEq)]
pub enum RangeStart {
    /// Every partition from its oldest retained message.
    Earliest,
    /// The first message whose Kafka timestamp is at or after this time (ms since the epoch).
    Time(i64),
    /// Explicit next-to-read offsets; partitions not named start at their oldest message.
    Offsets(BTreeMap<(String, i32), i64>),
}

/// Where a range ends (exclusive), fixed when the range is opened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangeEnd {
    /// The end of each partition when the range was opened.
    Latest,
    /// The first message whose Kafka timestamp is at or after this time (ms since the epoch).
    Time(i64),
}

/// One partition of the range: `[start, end)` and how far it has been read.
struct RangePartition {
    key: PartitionKey,
    queue: StreamPartitionQueue<QuietContext>,
    start: i64,
    end: i64,
    next: i64,
    done: bool,
}

/// The input topics between two positions, partition by partition.
pub struct KafkaRange {
    consumer: Arc<StreamConsumer<QuietContext>>,
    parts: Vec<RangePartition>,
    inputs: HashMap<String, KafkaInput>,
    /// Serves the consumer's main queue (errors, statistics) while partition queues are
    /// read; aborted on drop.
    events: tokio::task::JoinHandle<()>,
}

impl Drop for KafkaRange {
    fn drop(&mut self) {
        self.events.abort();
    }
}

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

impl KafkaRange {
    /// Resolves `start` and `end` to offsets for every partition of the input topics and
    /// assigns them. Fails when an input topic does not exist.
    pub fn open(
        brokers: &str,
        config: &KafkaConfig,
        start: &RangeStart,
        end: RangeEnd,
    ) -> Result<Self> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            // Required by librdkafka for a consumer; never joined (assign, no subscribe)
            // and never committed to.
            .set(
                "group.id",
                format!("faultline-replay-{}", std::process::id()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("fetch.message.max.bytes", "16777216")
            .set("receive.message.max.bytes", "100000000");
        for (k, v) in config.consumer_settings()? {
            c.set(k, v);
        }
        let consumer: Arc<StreamConsumer<QuietContext>> = Arc::new(
            c.create_with_context(QuietContext::default())
                .map_err(|e| Error::kafka("creating replay consumer", e))?,
        );
        let bounds = resolve(&consumer, config, start, end)?;
        // Each partition's queue is split off *before* the assignment: librdkafka then
        // keeps the application's choice when fetching starts, so no message can reach the
        // main queue. Split after `assign`, the first fetch could land on the main queue
        // (and be lost to this range) before the split took effect.
        let mut parts = Vec::new();
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), (from, to)) in bounds {
            let queue = consumer
                .split_partition_queue(&topic, partition)
                .ok_or_else(|| Error::KafkaSetup(format!("no queue for {topic}/{partition}")))?;
            tpl.add_partition_offset(&topic, partition, Offset::Offset(from))
                .map_err(|e| Error::kafka("building assignment", e))?;
            parts.push(RangePartition {
                key: PartitionKey::new(topic, partition),
                queue,
                start: from,
                end: to,
                next: from,
                done: from >= to,
            });
        }
        consumer
            .assign(&tpl)
            .map_err(|e| Error::kafka("assigning the replay range", e))?;
        let main = consumer.clone();
        let events = tokio::spawn(async move {
            loop {
                match main.recv().await {
                    Ok(m) => warn!(topic = m.topic(), "Message on the main queue; ignored."),
                    Err(error) => warn!(%error, "Kafka consumer error during replay."),
                }
            }
        });
        Ok(KafkaRange {
            consumer,
            parts,
            inputs: config
                .inputs
                .iter()
                .map(|i| (i.topic.clone(), i.clone()))
                .collect(),
            events,
        })
    }

    /// The partitions of the range, in a fixed order (topic, partition).
    pub fn partitions(&self) -> Vec<PartitionKey> {
        self.parts.iter().map(|p| p.key.clone()).collect()
    }

    /// `(start, end)` offsets of each partition, in [`KafkaRange::partitions`] order.
    pub fn bounds(&self) -> Vec<(i64, i64)> {
        self.parts.iter().map(|p| (p.start, p.end)).collect()
    }

    /// Offsets in the range, and how many of them have been read.
    pub fn progress(&self) -> (u64, u64) {
        self.parts.iter().fold((0, 0), |(done, total), p| {
            let size = (p.end - p.start).max(0) as u64;
            let read = if p.done {
                size
            } else {
                (p.next - p.start).clamp(0, p.end - p.start) as u64
            };
            (done + read, total + size)
        })
    }

    /// The next message of partition `i`, or `None` once its range is read. Offsets a
    /// transaction marker or compaction left empty are skipped; the partition's end of
    /// log also ends it (its end offset was at most the log's end when the range opened).
    pub async fn next(&mut self, i: usize) -> Result<Option<InputMessage>> {
        let p = &mut self.parts[i];
        while !p.done {
            match p.queue.recv().await {
                Ok(m) if m.offset() < p.next => continue,
                Ok(m) if m.offset() >= p.end => p.done = true,
                Ok(m) => {
                    p.next = m.offset() + 1;
                    p.done = p.next >= p.end;
                    return Ok(Some(input_message(&m, &self.inputs)));
                }
                // The end of the log: done if the consumer's position has passed the range
                // (offsets left empty by transaction markers); an early end-of-partition
                // event with records still to come is not the end.
                Err(KafkaError::PartitionEOF(_)) => {
                    let position = self.consumer.position().ok().and_then(|tpl| {
                        tpl.find_partition(&p.key.topic, p.key.partition)
                            .and_then(|e| e.offset().to_raw())
                    });
                    if position.is_some_and(|at| at >= p.end) {
                        p.done = true;
                    }
                }
                Err(e) => {
                    let context = format!("reading {}/{}", p.key.topic, p.key.partition);
                    return Err(Error::kafka(context, e));
                }
            }
        }
        if let Err(error) = self.pause(i) {
            debug!(%error, "Pausing a finished partition failed.");
        }
        Ok(None)
    }

    /// Stops fetching a finished partition (messages after the range end are not wanted).
    fn pause(&self, i: usize) -> Result<()> {
        let p = &self.parts[i];
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&p.key.topic, p.key.partition);
        self.consumer
            .pause(&tpl)
            .map_err(|e| Error::kafka("pausing", e))
    }
}

/// Every message of `topic` as it was when called, partition by partition (oldest first):
/// how a replay reads the watermark journal. Empty when the topic does not exist.
pub fn read_whole_topic(brokers: &str, config: &KafkaConfig, topic: &str) -> Result<Vec<Vec<u8>>> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("faultline-replay-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        // Transactional writes end in control records and may be open: the end of what is
        // committed is where the broker says the partition ends, not the high watermark.
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed");
    for (k, v) in config.consumer_settings()? {
        c.set(k, v);
    }
    let consumer: BaseConsumer<QuietContext> = c
        .create_with_context(QuietContext::default())
        .map_err(|e| Error::kafka("creating journal reader", e))?;
    let md = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| Error::kafka(format!("metadata of {topic}"), e))?;
    let Some(t) = md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for p in t.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), METADATA_TIMEOUT)
            .map_err(|e| Error::kafka(format!("watermarks of {topic}"), e))?;
        if low >= high {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))
            .map_err(|e| Error::kafka("building assignment", e))?;
        consumer
            .assign(&tpl)
            .map_err(|e| Error::kafka(format!("assigning {topic}"), e))?;
        let mut next = low;
        while next < high {
            match consumer.poll(METADATA_TIMEOUT) {
                Some(Ok(m)) => {
                    next = m.offset() + 1;
                    out.push(m.payload().unwrap_or_default().to_vec());
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(Error::kafka(format!("reading {topic}"), e)),
                None => {
                    return Err(Error::KafkaSetup(format!(
                        "{topic}/{} did not deliver offsets {next}..{high} within {}s",
                        p.id(),
                        METADATA_TIMEOUT.as_secs()
                    )))
                }
            }
        }
    }
    Ok(out)
}

/// `[start, end)` offsets per input partition, sorted by topic and partition.
fn resolve(
    consumer: &StreamConsumer<QuietContext>,
    config: &KafkaConfig,
    start: &RangeStart,
    end: RangeEnd,
) -> Result<BTreeMap<(String, i32), (i64, i64)>> {
    let md = consumer
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| Error::kafka("fetching metadata", e))?;
    let mut bounds = BTreeMap::new();
    for input in &config.inputs {
        let topic = md
            .topics()
            .iter()
            .find(|t| t.name() == input.topic && t.error().is_none())
            .ok_or_else(|| {
                Error::KafkaSetup(format!("input topic {} does not exist", input.topic))
            })?;
        for p in topic.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(&input.topic, p.id(), METADATA_TIMEOUT)
                .map_err(|e| Error::kafka(format!("watermarks of {}", input.topic), e))?;
            bounds.insert((input.topic.clone(), p.id()), (low, high, low, high));
        }
    }
    if let RangeStart::Offsets(named) = start {
        for (key, offset) in named {
            let Some(b) = bounds.get_mut(key) else {
                return Err(Error::Config {
                    location: "--from".into(),
                    message: format!("{}:{} is not a partition of an input topic", key.0, key.1),
                });
            };
            if *offset < b.0 {
                warn!(topic = %key.0, partition = key.1, offset, oldest = b.0,
                    "Offset no longer retained; starting at the oldest message.");
            }
            b.2 = (*offset).clamp(b.0, b.1);
        }
    }
    if let RangeStart::Time(ms) = start {
        for (key, at) in offsets_for_time(consumer, &bounds, *ms)? {
            bounds.get_mut(&key).expect("known partition").2 = at;
        }
    }
    if let RangeEnd::Time(ms) = end {
        for (key, at) in offsets_for_time(consumer, &bounds, ms)? {
            bounds.get_mut(&key).expect("known partition").3 = at;
        }
    }
    Ok(bounds
        .into_iter()
        .map(|(k, (_, _, from, to))| (k, (from, to.max(from))))
        .collect())
}

/// The first offset at or after `ms` in each partition (its end when there is none).
fn offsets_for_time(
    consumer: &StreamConsumer<QuietContext>,
    bounds: &BTreeMap<(String, i32), (i64, i64, i64, i64)>,
    ms: i64,
) -> Result<Vec<((String, i32), i64)>> {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in bounds.keys() {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(ms))
            .map_err(|e| Error::kafka("building offsets query", e))?;
    }
    let found = consumer
        .offsets_for_times(tpl, METADATA_TIMEOUT)
        .map_err(|e| Error::kafka("looking up offsets for a time", e))?;
    Ok(found
        .elements()
        .iter()
        .map(|e| {
            let key = (e.topic().to_string(), e.partition());
            let high = bounds.get(&key).map_or(0, |b| b.1);
            let at = match e.offset() {
                Offset::Offset(o) => o.min(high),
                _ => high,
            };
            (key, at)
        })
        .collect())
}
