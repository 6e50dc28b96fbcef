//! Kafka input: a member of a consumer group on the pipeline's input topics.
//!
//! Offsets are never auto-stored: the pipeline commits, through [`KafkaSource::commit`], only
//! offsets the [`super::OffsetTracker`] allows.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::InputMessage;
use crate::config::{KafkaConfig, KafkaInput};
use crate::decode::MessageContext;
use crate::error::{Error, Result};
use crate::model::{EventTime, Location};

pub struct KafkaSource {
    consumer: StreamConsumer,
    inputs: HashMap<String, KafkaInput>,
}

impl KafkaSource {
    /// Joins `group` and subscribes to the input topics.
    pub fn new(brokers: &str, group: &str, config: &KafkaConfig) -> Result<Self> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // Large enough for any message we accept; bigger ones become dead letters.
            .set("fetch.message.max.bytes", "16777216")
            .set("receive.message.max.bytes", "100000000");
        for (k, v) in config.client.iter().chain(&config.consumer) {
            c.set(k, v);
        }
        let consumer: StreamConsumer = c
            .create()
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
        let payload = m.payload().unwrap_or_default().to_vec();
        let input = self.inputs.get(m.topic());
        Ok(InputMessage {
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
        })
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

    /// Names input topics that do not exist yet, so the operator hears about it at start.
    pub fn missing_topics(&self, timeout: Duration) -> Result<Vec<String>> {
        let md = self
            .consumer
            .fetch_metadata(None, timeout)
            .map_err(|e| Error::kafka("fetching metadata", e))?;
        let mut missing: Vec<String> = self
            .inputs
            .keys()
            .filter(|t| {
                !md.topics()
                    .iter()
                    .any(|m| m.name() == t.as_str() && m.error().is_none())
            })
            .cloned()
            .collect();
        missing.sort();
        Ok(missing)
    }
}
