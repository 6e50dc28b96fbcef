//! How input is tracked through the stages.

use std::fmt;

/// Identifies the input message a record came from, so its offset can be committed once
/// everything derived from it is delivered.
pub type AckId = u64;

/// Identifies an input partition: a Kafka topic-partition, or an input file (partition 0).
///
/// The partition number is also the **shard**: partitions with one number across the
/// co-partitioned input topics share their state (all files are shard 0).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// The topic, or the file's name.
    pub topic: String,
    pub partition: i32,
}

impl PartitionKey {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        PartitionKey {
            topic: topic.into(),
            partition,
        }
    }

    /// The shard whose state the partition's records go to.
    pub fn shard(&self) -> i32 {
        self.partition
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}
