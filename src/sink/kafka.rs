//! Kafka output topics, through an idempotent producer.

use std::time::Duration;

use futures::FutureExt;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::{Delivery, Sink};
use crate::broker::QuietContext;
use crate::config::KafkaConfig;
use crate::error::{Error, Result};
use crate::output::{Output, OutputKind};

pub struct KafkaSink {
    producer: FutureProducer<QuietContext>,
    topics: [String; 6],
}

fn index(kind: OutputKind) -> usize {
    match kind {
        OutputKind::Alerts => 0,
        OutputKind::Suggestions => 1,
        OutputKind::DeadLetter => 2,
        OutputKind::Late => 3,
        OutputKind::Review => 4,
        OutputKind::Incidents => 5,
    }
}

/// The producer a pipeline writes everything through — its outputs, checkpoints and
/// watermark journal — when its outputs are not transactional: durable and ordered per
/// partition (librdkafka retries transient failures itself), messages up to a state
/// snapshot's size, lz4 unless the pipeline's producer settings say otherwise. One producer
/// rather than one per destination: each has a polling thread, and rdkafka's spins through
/// the last millisecond of every 100 ms poll (three of them took 14 % of the CPU of a
/// backlog run).
pub fn output_producer(
    brokers: &str,
    config: &KafkaConfig,
) -> Result<FutureProducer<QuietContext>> {
    output_producer_config(brokers, config, &[])?
        .create_with_context(QuietContext::default())
        .map_err(|e| Error::kafka("creating producer", e))
}

/// The settings of [`output_producer`], with `extra` ones (the transactional producer's)
/// before the pipeline's own producer settings, which have the last word.
pub(super) fn output_producer_config(
    brokers: &str,
    config: &KafkaConfig,
    extra: &[(&str, String)],
) -> Result<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set(
            "message.max.bytes",
            (super::state::MAX_SNAPSHOT_BYTES + (1 << 20)).to_string(),
        )
        .set("compression.type", "lz4");
    for (k, v) in extra {
        c.set(*k, v);
    }
    for (k, v) in config.producer_settings()? {
        c.set(k, v);
    }
    Ok(c)
}

impl KafkaSink {
    pub fn new(brokers: &str, config: &KafkaConfig) -> Result<Self> {
        Ok(Self::with_producer(
            output_producer(brokers, config)?,
            config,
        ))
    }

    /// Outputs through `producer` (the transactional one, for exactly-once outputs).
    pub fn with_producer(producer: FutureProducer<QuietContext>, config: &KafkaConfig) -> Self {
        let o = &config.outputs;
        KafkaSink {
            producer,
            topics: [
                o.alerts.clone(),
                o.suggestions.clone(),
                o.deadletter.clone(),
                o.late.clone(),
                o.review.clone(),
                o.incidents.clone(),
            ],
        }
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, output: &Output) -> Result<Delivery> {
        let topic = self.topics[index(output.kind)].clone();
        let mut record = FutureRecord::to(&topic)
            .key(output.key.as_bytes())
            .payload(output.json.as_bytes());
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    let topic = topic.clone();
                    return Ok(async move {
                        match delivery.await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err((e, _))) => {
                                Err(Error::kafka(format!("delivering to {topic}"), e))
                            }
                            Err(_) => Err(Error::KafkaSetup(format!(
                                "producer dropped a message for {topic}"
                            ))),
                        }
                    }
                    .boxed());
                }
                // Back-pressure: give librdkafka time to drain its queue, then retry.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    self.producer.poll(Duration::from_millis(50));
                    record = r;
                }
                Err((e, _)) => return Err(Error::kafka(format!("producing to {topic}"), e)),
            }
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.producer
            .flush(Timeout::After(Duration::from_secs(30)))
            .map_err(|e| Error::kafka("flushing producer", e))
    }
}

/// Writes payloads to one topic and waits for each to be acknowledged (for the agents).
pub struct TopicWriter {
    producer: FutureProducer<QuietContext>,
    topic: String,
}

impl TopicWriter {
    pub fn new(brokers: &str, topic: &str) -> Result<Self> {
        Self::with_settings(brokers, topic, Vec::new())
    }

    /// A writer through `producer` (the pipeline's [`output_producer`], or the transactional
    /// one: its writes then belong to the open transaction and are acknowledged before it
    /// commits).
    pub fn with_producer(producer: FutureProducer<QuietContext>, topic: &str) -> Self {
        TopicWriter {
            producer,
            topic: topic.to_string(),
        }
    }

    /// A writer with the pipeline's client and producer settings (TLS, SASL, ...).
    pub fn for_pipeline(brokers: &str, topic: &str, config: &KafkaConfig) -> Result<Self> {
        Self::with_settings(brokers, topic, config.producer_settings()?)
    }

    fn with_settings(brokers: &str, topic: &str, settings: Vec<(String, String)>) -> Result<Self> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers).set("acks", "all");
        for (k, v) in settings {
            c.set(k, v);
        }
        let producer: FutureProducer<QuietContext> = c
            .create_with_context(QuietContext::default())
            .map_err(|e| Error::kafka("creating producer", e))?;
        Ok(TopicWriter {
            producer,
            topic: topic.to_string(),
        })
    }

    pub async fn send(&self, key: &str, payload: &[u8]) -> Result<()> {
        self.producer
            .send(
                FutureRecord::to(&self.topic).key(key).payload(payload),
                Timeout::After(Duration::from_secs(30)),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| Error::kafka(format!("producing to {}", self.topic), e))
    }
}
