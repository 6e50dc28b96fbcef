//! The feedback topic: read from its beginning at every start (the knowledge base's
//! statistics are rebuilt from it, so a restart or a new member has the same ones), then
//! followed live. No consumer group offsets: every member reads all of it.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::broker::QuietContext;
use crate::config::KafkaConfig;
use crate::error::{Error, Result};
use crate::model::Location;

/// One feedback message: its bytes and where it came from.
pub struct FeedbackMessage {
    pub payload: Vec<u8>,
    pub source: Location,
}

pub struct FeedbackSource {
    consumer: StreamConsumer<QuietContext>,
    /// End offsets at start, per partition: the history to replay before going live.
    ends: Vec<(i32, i64)>,
    topic: String,
}

impl FeedbackSource {
    /// Assigns every partition of the feedback topic from its beginning. A topic that does
    /// not exist yet has no history.
    pub fn new(brokers: &str, group: &str, config: &KafkaConfig) -> Result<Self> {
        let topic = config.outputs.feedback.clone();
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("group.id", format!("{group}.feedback"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        for (k, v) in config.consumer_settings()? {
            c.set(k, v);
        }
        let consumer: StreamConsumer<QuietContext> = c
            .create_with_context(QuietContext::default())
            .map_err(|e| Error::kafka("creating the feedback consumer", e))?;
        let timeout = Duration::from_secs(10);
        let partitions: Vec<i32> = match consumer.fetch_metadata(Some(&topic), timeout) {
            Ok(md) => md
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect(),
            Err(_) => Vec::new(),
        };
        let mut tpl = TopicPartitionList::new();
        let mut ends = Vec::new();
        for p in partitions {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .map_err(|e| Error::kafka("assigning the feedback topic", e))?;
            let (low, high) = consumer
                .fetch_watermarks(&topic, p, timeout)
                .map_err(|e| Error::kafka("reading the feedback topic's offsets", e))?;
            if high > low {
                ends.push((p, high));
            }
        }
        consumer
            .assign(&tpl)
            .map_err(|e| Error::kafka("assigning the feedback topic", e))?;
        Ok(FeedbackSource {
            consumer,
            ends,
            topic,
        })
    }

    /// Every message that was in the topic at start, in partition order per partition. Stops
    /// early when nothing arrives for 10 s (offsets taken by transaction markers or
    /// compaction never arrive as messages), so a start never hangs on it.
    pub async fn history(&mut self) -> Result<Vec<FeedbackMessage>> {
        let mut out = Vec::new();
        while !self.ends.is_empty() {
            let Ok(m) = tokio::time::timeout(Duration::from_secs(10), self.recv()).await else {
                tracing::warn!(
                    topic = %self.topic,
                    read = out.len(),
                    "Feedback history ended early: nothing more arrived."
                );
                break;
            };
            let m = m?;
            let Location::Kafka {
                partition, offset, ..
            } = m.source
            else {
                unreachable!("kafka locations")
            };
            if let Some(i) = self.ends.iter().position(|(p, _)| *p == partition) {
                if offset + 1 >= self.ends[i].1 {
                    self.ends.remove(i);
                }
            }
            out.push(m);
        }
        Ok(out)
    }

    /// The next feedback message.
    pub async fn recv(&self) -> Result<FeedbackMessage> {
        let m = self
            .consumer
            .recv()
            .await
            .map_err(|e| Error::kafka("receiving feedback", e))?;
        Ok(FeedbackMessage {
            payload: m.payload().unwrap_or_default().to_vec(),
            source: Location::Kafka {
                topic: self.topic.clone(),
                partition: m.partition(),
                offset: m.offset(),
            },
        })
    }
}
