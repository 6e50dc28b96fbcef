//! The Kafka driver's side of exactly-once outputs (`[kafka.checkpoints] exactly_once`):
//! a checkpoint commits the open transaction (outputs, snapshots, and the offsets they
//! cover); a rebalance or a failed commit aborts it and rolls the instance back to its last
//! committed checkpoint, which is what a read_committed consumer has seen.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::Driver;
use crate::error::{Error, Result};
use crate::model::{AckId, PartitionKey};
use crate::sink::TxnFailure;
use crate::source::OffsetTracker;

/// Attempts to abort a transaction while the brokers are unreachable, one a second.
const ABORT_ATTEMPTS: u32 = 300;

impl Driver {
    /// Commits the open transaction with every held partition's checkpointed offset, and
    /// begins the next (unless `last`). An aborted commit rolls back.
    pub(super) async fn commit_transaction(&mut self, last: bool) -> Result<()> {
        let (Some(txn), Some(cp)) = (&self.txn, &self.checkpoints) else {
            return Ok(());
        };
        let offsets = cp.covered_offsets();
        let Some(group) = self.source.group_metadata() else {
            return Err(Error::KafkaSetup(
                "no consumer group metadata for the transaction".into(),
            ));
        };
        match txn.commit(&offsets, &group, last) {
            Ok(()) => {
                self.tracker
                    .lock()
                    .expect("tracker lock")
                    .mark_committed(&offsets);
                Ok(())
            }
            Err(TxnFailure::Fatal(e)) => Err(e),
            Err(TxnFailure::Aborted(error)) => {
                warn!(%error, "Transaction not committed; rolling back to the last checkpoint.");
                self.roll_back().await
            }
        }
    }

    /// Applies assignments and revocations the consumer reported: assigned partitions hold
    /// their shard's watermark until they deliver or idle; revoked ones lose their
    /// uncommitted state, which the new owner re-reads. Under exactly-once the open
    /// transaction holds outputs of the revoked partitions, which their new owner produces
    /// again: it is aborted, and the partitions kept roll back to the last checkpoint.
    pub(super) async fn rebalanced(&mut self) -> Result<()> {
        let revoked = self.source.take_revoked();
        if !revoked.is_empty() && self.txn.is_some() {
            info!("Partitions revoked: the open transaction is aborted; the partitions kept roll back to the last checkpoint.");
            self.abort_transaction().await?;
        }
        for p in &revoked {
            self.drop_partition(p, |t, ack| {
                t.partition_of(ack) == Some((p.topic.as_str(), p.partition))
            });
        }
        if !revoked.is_empty() && self.txn.is_some() {
            let kept: Vec<PartitionKey> = self.last_seen.keys().cloned().collect();
            self.rewind(&kept)?;
        }
        let assigned = self.source.take_assigned();
        self.restore_shards(&assigned);
        for p in assigned {
            self.pipeline.register(&p);
            self.last_seen.insert(p, Instant::now());
        }
        Ok(())
    }

    /// Forgets a partition's state (the messages `is_own` picks) and position.
    fn drop_partition(
        &mut self,
        p: &PartitionKey,
        mut is_own: impl FnMut(&OffsetTracker, AckId) -> bool,
    ) {
        let mut t = self.tracker.lock().expect("tracker lock");
        self.pipeline.revoke(p, |ack| is_own(&t, ack));
        t.forget(&p.topic, p.partition);
        drop(t);
        self.last_seen.remove(p);
        self.positions.remove(p);
        if let Some(cp) = &mut self.checkpoints {
            cp.forget(p);
        }
    }

    /// Aborts the open transaction and begins the next (retried while the brokers are
    /// away); the deliveries in flight are forgotten.
    async fn abort_transaction(&mut self) -> Result<()> {
        let Some(txn) = &self.txn else {
            return Ok(());
        };
        let mut attempt = 0;
        loop {
            match txn.abort_and_begin() {
                Ok(()) => break,
                Err(TxnFailure::Fatal(e)) => return Err(e),
                Err(TxnFailure::Aborted(error)) => {
                    attempt += 1;
                    if attempt >= ABORT_ATTEMPTS {
                        return Err(error);
                    }
                    if self.chatter.fresh(&error.to_string()) {
                        warn!(%error, "Transaction abort failed; retrying every second (repeats are not logged for a minute).");
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        self.emitter.discard();
        Ok(())
    }

    /// Aborts the open transaction and rolls every held partition back to its last
    /// checkpoint.
    async fn roll_back(&mut self) -> Result<()> {
        self.abort_transaction().await?;
        let held: Vec<PartitionKey> = self.last_seen.keys().cloned().collect();
        self.rewind(&held)?;
        info!(
            partitions = held.len(),
            "Rolled back to the last checkpoint."
        );
        Ok(())
    }

    /// Drops the state of `partitions`, restores their shards from the last checkpoint and
    /// goes back to the committed offsets (which that checkpoint's transaction committed).
    fn rewind(&mut self, partitions: &[PartitionKey]) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        for p in partitions {
            self.drop_partition(p, |_, _| true);
        }
        self.restore_shards(partitions);
        for p in partitions {
            self.pipeline.register(p);
            self.last_seen.insert(p.clone(), Instant::now());
        }
        self.source.rewind(partitions)
    }
}
