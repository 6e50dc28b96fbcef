//! Exactly-once outputs: one transactional producer per instance writes the outputs and the
//! state snapshots, and commits them with the input offsets they cover in one Kafka
//! transaction (`[kafka.checkpoints] exactly_once`). The consumer group's metadata goes with
//! the offsets, so the broker fences a member that lost its partitions in a rebalance.

use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::broker::QuietContext;
use crate::config::KafkaConfig;
use crate::error::{Error, Result};

/// How long a transaction call may block before it is treated as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a failed transaction call leaves behind.
#[derive(Debug)]
pub enum TxnFailure {
    /// The transaction was aborted (or must be): its outputs and offsets are void; the
    /// instance rolls back to its last committed checkpoint and goes on.
    Aborted(Error),
    /// The producer cannot go on (fenced by a newer instance with the same transactional
    /// id, or a broker without transactions): the instance must stop.
    Fatal(Error),
}

/// The instance's transactional producer and its open transaction.
pub struct Transactions {
    producer: FutureProducer<QuietContext>,
    id: String,
}

impl Transactions {
    /// A producer with `transactional.id` `faultline-<group>-<member>` (the instance id
    /// when given, else one unique to this process), its transactions initialised (which
    /// aborts an open transaction a predecessor with the same id left) and one begun.
    pub fn start(brokers: &str, group: &str, config: &KafkaConfig) -> Result<Self> {
        let member = config.instance_id.clone().unwrap_or_else(process_member);
        let id = format!("faultline-{group}-{member}");
        let interval = config.checkpoints.interval;
        // The broker aborts a transaction left open this long (a crashed instance's).
        let timeout = (interval * 3).max(Duration::from_secs(10));
        let transactional = [
            ("transactional.id", id.clone()),
            ("transaction.timeout.ms", timeout.as_millis().to_string()),
        ];
        let producer: FutureProducer<QuietContext> =
            super::kafka::output_producer_config(brokers, config, &transactional)?
                .create_with_context(QuietContext::default())
                .map_err(|e| Error::kafka("creating the transactional producer", e))?;
        producer
            .init_transactions(CALL_TIMEOUT)
            .map_err(|e| Error::kafka(format!("initialising transactions of {id}"), e))?;
        producer
            .begin_transaction()
            .map_err(|e| Error::kafka("beginning a transaction", e))?;
        Ok(Transactions { producer, id })
    }

    /// The producer, for the sink and the state topic's writer (their messages belong to
    /// the open transaction).
    pub fn producer(&self) -> FutureProducer<QuietContext> {
        self.producer.clone()
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Commits the open transaction with `offsets` (topic, partition, next offset to read)
    /// as the group's committed offsets, then begins the next one (unless `last`).
    pub fn commit(
        &self,
        offsets: &[(String, i32, i64)],
        group: &ConsumerGroupMetadata,
        last: bool,
    ) -> std::result::Result<(), TxnFailure> {
        if !offsets.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (topic, partition, offset) in offsets {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                    .map_err(|e| TxnFailure::Fatal(Error::kafka("listing offsets", e)))?;
            }
            self.producer
                .send_offsets_to_transaction(&tpl, group, CALL_TIMEOUT)
                .map_err(|e| self.failure("adding offsets to the transaction", e))?;
        }
        self.producer
            .commit_transaction(CALL_TIMEOUT)
            .map_err(|e| self.failure("committing the transaction", e))?;
        if !last {
            self.begin()?;
        }
        Ok(())
    }

    /// Aborts the open transaction (its outputs are never read by read_committed
    /// consumers) and begins the next one.
    pub fn abort_and_begin(&self) -> std::result::Result<(), TxnFailure> {
        self.producer
            .abort_transaction(CALL_TIMEOUT)
            .map_err(|e| self.failure("aborting the transaction", e))?;
        self.begin()
    }

    fn begin(&self) -> std::result::Result<(), TxnFailure> {
        self.producer
            .begin_transaction()
            .map_err(|e| self.failure("beginning a transaction", e))
    }

    fn failure(&self, what: &str, e: KafkaError) -> TxnFailure {
        let fatal = match &e {
            KafkaError::Transaction(t) => t.is_fatal(),
            _ => false,
        };
        let error = Error::kafka(format!("{what} ({})", self.id), e);
        if fatal {
            TxnFailure::Fatal(error)
        } else {
            TxnFailure::Aborted(error)
        }
    }
}

/// A member name unique to this process: host name, process id and start time.
fn process_member() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("{host}-{}-{started}", std::process::id())
}
