//! Per-partition watermarks: each input partition (or file) has its own bounded
//! out-of-orderness watermark; the pipeline's is the minimum over the active ones, so one
//! fast partition cannot make another's records late. Partitions the driver marks idle stop
//! holding it back. Pure: the driver decides idleness (it owns the wall clock).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::{EventTime, PartitionKey};

#[derive(Debug, Clone, Copy)]
struct PartitionMark {
    newest: EventTime,
    idle: bool,
}

/// The pipeline watermark from per-partition progress.
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    out_of_orderness: Duration,
    partitions: BTreeMap<PartitionKey, PartitionMark>,
}

impl WatermarkTracker {
    pub fn new(out_of_orderness: Duration) -> Self {
        WatermarkTracker {
            out_of_orderness,
            partitions: BTreeMap::new(),
        }
    }

    /// Records that `partition` delivered a record with event time `t`; it is active again.
    pub fn observe(&mut self, partition: &PartitionKey, t: EventTime) {
        match self.partitions.get_mut(partition) {
            Some(m) => {
                m.newest = m.newest.max(t);
                m.idle = false;
            }
            None => {
                self.partitions.insert(
                    partition.clone(),
                    PartitionMark {
                        newest: t,
                        idle: false,
                    },
                );
            }
        }
    }

    /// Registers an assigned partition that has delivered nothing yet: it holds the
    /// watermark back (at the beginning of time) until it delivers or goes idle.
    pub fn register(&mut self, partition: &PartitionKey) {
        self.partitions
            .entry(partition.clone())
            .or_insert(PartitionMark {
                newest: EventTime::MIN,
                idle: false,
            });
    }

    /// Whether any partition is known.
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// Marks a partition idle (no input for the idle timeout) or finished (end of a file):
    /// it no longer holds the watermark back.
    pub fn set_idle(&mut self, partition: &PartitionKey) {
        if let Some(m) = self.partitions.get_mut(partition) {
            m.idle = true;
        }
    }

    /// Forgets a partition (revoked in a rebalance).
    pub fn remove(&mut self, partition: &PartitionKey) {
        self.partitions.remove(partition);
    }

    /// Newest event time seen on a partition.
    pub fn newest(&self, partition: &PartitionKey) -> Option<EventTime> {
        self.partitions.get(partition).map(|m| m.newest)
    }

    pub fn is_idle(&self, partition: &PartitionKey) -> bool {
        self.partitions.get(partition).is_some_and(|m| m.idle)
    }

    /// True when every known partition is idle (or none is known).
    pub fn all_idle(&self) -> bool {
        self.partitions.values().all(|m| m.idle)
    }

    /// Minimum over active partitions; when all are idle, the most advanced one (everything
    /// known so far is in). `None` before any record.
    pub fn watermark(&self) -> Option<EventTime> {
        let active = self
            .partitions
            .values()
            .filter(|m| !m.idle)
            .map(|m| m.newest)
            .min();
        let newest = active.or_else(|| self.partitions.values().map(|m| m.newest).max())?;
        Some(newest.saturating_sub(self.out_of_orderness))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> PartitionKey {
        PartitionKey::new("t", n)
    }

    #[test]
    fn slowest_active_partition_sets_the_watermark() {
        let mut w = WatermarkTracker::new(Duration::from_secs(5));
        assert_eq!(w.watermark(), None);
        w.observe(&p(0), EventTime(100_000_000_000));
        w.observe(&p(1), EventTime(20_000_000_000));
        assert_eq!(w.watermark(), Some(EventTime(15_000_000_000)));
        w.observe(&p(1), EventTime(10_000_000_000)); // out of order: newest stays
        assert_eq!(w.watermark(), Some(EventTime(15_000_000_000)));
    }

    #[test]
    fn an_assigned_partition_holds_the_watermark_until_it_delivers_or_idles() {
        let mut w = WatermarkTracker::new(Duration::ZERO);
        w.register(&p(1));
        w.observe(&p(0), EventTime(100));
        assert_eq!(w.watermark(), Some(EventTime::MIN));
        w.set_idle(&p(1));
        assert_eq!(w.watermark(), Some(EventTime(100)));
        w.register(&p(0)); // registering again keeps what was seen
        assert_eq!(w.newest(&p(0)), Some(EventTime(100)));
    }

    #[test]
    fn an_idle_partition_stops_holding_the_watermark_back() {
        let mut w = WatermarkTracker::new(Duration::ZERO);
        w.observe(&p(0), EventTime(100));
        w.observe(&p(1), EventTime(10));
        w.set_idle(&p(1));
        assert_eq!(w.watermark(), Some(EventTime(100)));
        assert!(!w.all_idle());
        w.set_idle(&p(0));
        assert!(w.all_idle());
        assert_eq!(
            w.watermark(),
            Some(EventTime(100)),
            "all idle: everything known is in"
        );
        w.observe(&p(1), EventTime(20));
        assert_eq!(w.watermark(), Some(EventTime(20)), "active again");
        w.remove(&p(1));
        assert_eq!(w.watermark(), Some(EventTime(100)));
    }
}
