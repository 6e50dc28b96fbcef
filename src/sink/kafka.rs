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

impl KafkaSink {
    pub fn new(brokers: &str, config: &KafkaConfig) -> Result<Self> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers);
        // Durable and ordered per partition; librdkafka retries transient failures itself.
        c.set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.max.bytes", "10000000");
        for (k, v) in config.producer_settings()? {
            c.set(k, v);
        }
        let producer: FutureProducer<QuietContext> = c
            .create_with_context(QuietContext::default())
            .map_err(|e| Error::kafka("creating producer", e))?;
        Ok(Self::with_producer(producer, config))
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

    /// The state topic's writer: the pipeline's settings, messages up to the snapshot limit.
    pub fn for_state(brokers: &str, topic: &str, config: &KafkaConfig) -> Result<Self> {
        let mut settings = config.producer_settings()?;
        let max = super::state::MAX_SNAPSHOT_BYTES + (1 << 20);
        settings.push(("message.max.bytes".into(), max.to_string()));
        settings.push(("compression.type".into(), "lz4".into()));
        Self::with_settings(brokers, topic, settings)
    }

    /// A writer through `producer` (the transactional one: its writes belong to the open
    /// transaction and are acknowledged before it commits).
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
