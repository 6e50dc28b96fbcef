//! The state topic of checkpoints: created compacted when missing, written with each
//! snapshot acknowledged before the offsets it covers are committed.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use crate::broker::QuietContext;
use crate::config::KafkaConfig;
use crate::error::{Error, Result};

/// Largest snapshot the topic and the writer accept (a shard's look-back history counts).
pub const MAX_SNAPSHOT_BYTES: usize = 64 << 20;

/// Creates `topic` compacted (only each key's latest snapshot is kept), with segments rolled
/// every 10 minutes so compaction keeps up, when it does not exist yet. An existing topic is
/// left as it is.
pub async fn ensure_state_topic(brokers: &str, topic: &str, config: &KafkaConfig) -> Result<()> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in config.producer_settings()? {
        c.set(k, v);
    }
    let admin: AdminClient<QuietContext> = c
        .create_with_context(QuietContext::default())
        .map_err(|e| Error::kafka("creating admin client", e))?;
    let max = MAX_SNAPSHOT_BYTES.to_string();
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "600000")
        .set("min.cleanable.dirty.ratio", "0.1")
        .set("max.message.bytes", &max);
    let results = admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .map_err(|e| Error::kafka(format!("creating state topic {topic}"), e))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(Error::KafkaSetup(format!(
                    "cannot create state topic {name}: {code}; create it compacted, or set \
                     [kafka.checkpoints] interval = \"0s\""
                )))
            }
        }
    }
    Ok(())
}
