//! Which Kafka offsets may be committed: a message's offset is done only when every output
//! derived from it has been delivered, and a partition commits up to its oldest message that
//! is not done.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::model::AckId;

#[derive(Default)]
struct PartitionState {
    pending: BTreeSet<i64>,
    /// Highest offset seen.
    last_seen: Option<i64>,
    /// Offset last committed (next offset to read).
    committed: Option<i64>,
}

/// Tracks in-flight messages per topic-partition.
#[derive(Default)]
pub struct OffsetTracker {
    next_ack: AckId,
    acks: foldhash::HashMap<AckId, (String, i32, i64)>,
    partitions: BTreeMap<(String, i32), PartitionState>,
    /// With state checkpoints: per partition, the offset the latest written checkpoint
    /// covers; commits never go past it (a partition without one commits nothing). `None`:
    /// no checkpoints, commits follow deliveries.
    caps: Option<BTreeMap<(String, i32), i64>>,
}

impl OffsetTracker {
    /// Records a received message and returns the id that stands for it.
    pub fn register(&mut self, topic: &str, partition: i32, offset: i64) -> AckId {
        let ack = self.next_ack;
        self.next_ack += 1;
        let p = self
            .partitions
            .entry((topic.to_string(), partition))
            .or_default();
        p.pending.insert(offset);
        p.last_seen = Some(p.last_seen.map_or(offset, |l| l.max(offset)));
        self.acks
            .insert(ack, (topic.to_string(), partition, offset));
        ack
    }

    /// Marks a message as done: everything derived from it is delivered.
    pub fn done(&mut self, ack: AckId) {
        if let Some((topic, partition, offset)) = self.acks.remove(&ack) {
            if let Some(p) = self.partitions.get_mut(&(topic, partition)) {
                p.pending.remove(&offset);
            }
        }
    }

    /// Commits from now on follow state checkpoints ([`OffsetTracker::cap`]).
    pub fn follow_checkpoints(&mut self) {
        self.caps.get_or_insert_with(BTreeMap::new);
    }

    /// A checkpoint covering a partition up to `offset` (next to read) was written.
    pub fn cap(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(caps) = &mut self.caps {
            caps.insert((topic.to_string(), partition), offset);
        }
    }

    /// The oldest offset of a partition not done (or the one after the newest seen): what
    /// a checkpoint taken now covers.
    pub fn next_undone(&self, topic: &str, partition: i32) -> Option<i64> {
        self.next_undone_except(topic, partition, &HashSet::new())
    }

    /// Like [`OffsetTracker::next_undone`], passing over the messages at `covered` offsets
    /// (held, but only for state a checkpoint saves).
    pub fn next_undone_except(
        &self,
        topic: &str,
        partition: i32,
        covered: &HashSet<i64>,
    ) -> Option<i64> {
        let p = self.partitions.get(&(topic.to_string(), partition))?;
        match p.pending.iter().find(|o| !covered.contains(o)) {
            Some(oldest) => Some(*oldest),
            None => Some(p.last_seen? + 1),
        }
    }

    /// Offsets (next to read) that may be committed and differ from the last commit.
    pub fn committable(&self) -> Vec<(String, i32, i64)> {
        let mut out = Vec::new();
        for ((topic, partition), p) in &self.partitions {
            let next = match &self.caps {
                // The checkpoint decides: below its offset everything is delivered or in
                // the state it saved (which may hold messages not yet done here).
                Some(caps) => match (caps.get(&(topic.clone(), *partition)), p.last_seen) {
                    (Some(cap), Some(last)) => (*cap).min(last + 1),
                    _ => continue,
                },
                None => match self.next_undone(topic, *partition) {
                    Some(next) => next,
                    None => continue,
                },
            };
            if p.committed != Some(next) {
                out.push((topic.clone(), *partition, next));
            }
        }
        out
    }

    /// Records that `committable()` offsets were committed.
    pub fn mark_committed(&mut self, offsets: &[(String, i32, i64)]) {
        for (topic, partition, offset) in offsets {
            if let Some(p) = self.partitions.get_mut(&(topic.clone(), *partition)) {
                p.committed = Some(*offset);
            }
        }
    }

    /// Committable offset of one partition, if it differs from the last commit.
    pub fn committable_for(&self, topic: &str, partition: i32) -> Option<i64> {
        self.committable()
            .into_iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .map(|(_, _, o)| o)
    }

    /// Where a message not yet done came from: topic, partition, offset.
    pub fn location_of(&self, ack: AckId) -> Option<(&str, i32, i64)> {
        self.acks.get(&ack).map(|(t, p, o)| (t.as_str(), *p, *o))
    }

    /// The topic-partition a message came from.
    pub fn partition_of(&self, ack: AckId) -> Option<(&str, i32)> {
        self.location_of(ack).map(|(t, p, _)| (t, p))
    }

    /// Forgets a revoked partition and its pending messages.
    pub fn forget(&mut self, topic: &str, partition: i32) {
        self.partitions.remove(&(topic.to_string(), partition));
        if let Some(caps) = &mut self.caps {
            caps.remove(&(topic.to_string(), partition));
        }
        self.acks
            .retain(|_, (t, p, _)| !(t == topic && *p == partition));
    }

    /// Messages registered and not yet done.
    pub fn in_flight(&self) -> usize {
        self.acks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_stop_at_the_oldest_pending_message() {
        let mut t = OffsetTracker::default();
        let a = t.register("t", 0, 10);
        let b = t.register("t", 0, 11);
        let c = t.register("t", 0, 12);
        t.done(b);
        t.done(c);
        assert_eq!(t.committable(), vec![("t".into(), 0, 10)]);
        t.mark_committed(&t.committable());
        assert!(t.committable().is_empty(), "nothing new to commit");
        t.done(a);
        assert_eq!(t.committable(), vec![("t".into(), 0, 13)]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn a_forgotten_partition_is_neither_committed_nor_pending() {
        let mut t = OffsetTracker::default();
        let a = t.register("t", 0, 5);
        let _b = t.register("t", 1, 9);
        assert_eq!(t.partition_of(a), Some(("t", 0)));
        t.forget("t", 0);
        assert_eq!(t.partition_of(a), None);
        assert_eq!(t.committable(), vec![("t".into(), 1, 9)]);
        assert_eq!(t.committable_for("t", 1), Some(9));
        assert_eq!(t.in_flight(), 1);
        t.done(a); // a late delivery of a forgotten message is harmless
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::default();
        let _held = t.register("t", 0, 5);
        let d = t.register("t", 1, 7);
        t.done(d);
        let mut c = t.committable();
        c.sort();
        assert_eq!(c, vec![("t".into(), 0, 5), ("t".into(), 1, 8)]);
    }

    #[test]
    fn with_checkpoints_commits_stop_at_the_checkpoint() {
        let mut t = OffsetTracker::default();
        t.follow_checkpoints();
        let acks: Vec<_> = (0..5).map(|o| t.register("t", 0, o)).collect();
        acks.iter().for_each(|&a| t.done(a));
        assert!(t.committable().is_empty(), "no checkpoint yet: nothing");
        assert_eq!(t.next_undone("t", 0), Some(5));
        t.cap("t", 0, 3);
        assert_eq!(t.committable(), vec![("t".into(), 0, 3)]);
        t.cap("t", 0, 9);
        assert_eq!(
            t.committable(),
            vec![("t".into(), 0, 5)],
            "never past what was read"
        );
        let held = t.register("t", 0, 5);
        t.register("t", 0, 6);
        let covered = HashSet::from([5]);
        assert_eq!(t.next_undone_except("t", 0, &covered), Some(6));
        t.cap("t", 0, 6);
        assert_eq!(
            t.committable(),
            vec![("t".into(), 0, 6)],
            "a message held only for state the checkpoint saved is committed past"
        );
        t.done(held);
        t.forget("t", 0);
        t.register("t", 0, 5);
        assert!(
            t.committable().is_empty(),
            "a forgotten partition's cap goes too"
        );
    }
}
