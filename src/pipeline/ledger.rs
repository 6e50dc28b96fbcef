//! The at-least-once ledger: which input messages are held, by what, and when they are
//! released. A message is *released* — its offset may be committed once the outputs of the
//! emission that released it are delivered — exactly once, when its last hold goes:
//!
//! - 1 while it is being ingested;
//! - 1 per record of it in the traceback folder or the aligner (a folded event is held by
//!   its first line's message; the other lines' holds are released when they merge);
//! - after its window is evaluated, by the shard's [`AlertStateHold`] while a pending or
//!   firing alert, or a queued notification, depends on that window.
//!
//! A revoked partition's holds are *forgotten*, never released: those messages stay
//! uncommitted and the partition's new owner reads them again.

use std::collections::{HashMap, VecDeque};

use crate::model::{AckId, EventTime};
use crate::output::Output;

/// What one step produced: outputs to deliver, and the input messages that are fully
/// processed once those outputs are delivered.
#[derive(Debug, Default)]
pub struct Emission {
    pub outputs: Vec<Output>,
    pub released: Vec<AckId>,
    /// The windows evaluated in this step, in order: each window's end and the index in
    /// `outputs` where its outputs begin (what `faultline test` needs to know when an alert
    /// changed state).
    pub windows: Vec<(EventTime, usize)>,
}

impl Emission {
    pub fn append(&mut self, mut other: Emission) {
        let base = self.outputs.len();
        self.windows
            .extend(other.windows.iter().map(|(end, i)| (*end, base + i)));
        self.outputs.append(&mut other.outputs);
        self.released.append(&mut other.released);
    }
}

/// Holds per input message.
#[derive(Debug, Default)]
pub struct Ledger {
    holds: foldhash::HashMap<AckId, u32>,
}

impl Ledger {
    /// A message starts being ingested: one hold, released at the end of its ingestion.
    pub fn open(&mut self, ack: AckId) {
        self.holds.insert(ack, 1);
    }

    /// `n` more holds on a message being ingested (its records, placed in open state).
    pub fn hold(&mut self, ack: AckId, n: u32) {
        *self.holds.get_mut(&ack).expect("held while ingested") += n;
    }

    /// Drops one hold; the message is released into `em` when it was the last.
    pub fn release(&mut self, ack: AckId, em: &mut Emission) {
        if self.drop_hold(ack) {
            em.released.push(ack);
        }
    }

    /// Drops one hold without releasing the message: it stays uncommitted (revocation).
    pub fn forget(&mut self, ack: AckId) {
        self.drop_hold(ack);
    }

    /// True when the last hold went.
    fn drop_hold(&mut self, ack: AckId) -> bool {
        let Some(n) = self.holds.get_mut(&ack) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            self.holds.remove(&ack);
            return true;
        }
        false
    }

    /// How many holds a message has (0: released or never seen).
    pub fn holds(&self, ack: AckId) -> u32 {
        self.holds.get(&ack).copied().unwrap_or(0)
    }

    /// Messages with at least one hold.
    pub fn held(&self) -> usize {
        self.holds.len()
    }

    /// Every message held, oldest first.
    #[cfg(test)]
    pub fn held_acks(&self) -> Vec<AckId> {
        let mut acks: Vec<AckId> = self.holds.keys().copied().collect();
        acks.sort_unstable();
        acks
    }
}

/// Per shard: the input messages of evaluated windows, held while an alert state depends
/// on those windows, so that a restarted or new owner replays them and rebuilds the states
/// (and sends the resolution the old owner could not).
#[derive(Debug, Default)]
pub struct AlertStateHold {
    deferred: VecDeque<(EventTime, Vec<AckId>)>,
    acks: usize,
}

impl AlertStateHold {
    /// The messages of the window starting at `start`, just evaluated.
    pub fn defer(&mut self, start: EventTime, acks: Vec<AckId>) {
        self.acks += acks.len();
        self.deferred.push_back((start, acks));
    }

    /// Takes the windows no state needs any more: those starting before `needed_from` (the
    /// oldest window an alert state depends on; `None`: none). Beyond `max_acks` held
    /// messages the oldest windows go anyway; the second value counts those (their states
    /// could not be rebuilt after a failover).
    pub fn release_unneeded(
        &mut self,
        needed_from: Option<EventTime>,
        max_acks: usize,
    ) -> (Vec<AckId>, u64) {
        let mut released = Vec::new();
        let mut unreplayable = 0;
        while let Some((start, _)) = self.deferred.front() {
            let needed = needed_from.is_some_and(|h| *start >= h);
            if needed && self.acks <= max_acks {
                break;
            }
            if needed {
                unreplayable += 1;
            }
            let (_, acks) = self.deferred.pop_front().expect("front exists");
            self.acks -= acks.len();
            released.extend(acks);
        }
        (released, unreplayable)
    }

    /// Takes the deferred messages `revoked` says came from a revoked partition: they are
    /// forgotten, not released, so the partition's new owner reads them again.
    pub fn remove_revoked(&mut self, mut revoked: impl FnMut(AckId) -> bool) -> Vec<AckId> {
        let mut removed = Vec::new();
        for (_, acks) in &mut self.deferred {
            acks.retain(|&a| {
                let gone = revoked(a);
                if gone {
                    removed.push(a);
                }
                !gone
            });
        }
        self.acks -= removed.len();
        removed
    }

    /// Per deferred message, how many holds the deferral has on it.
    pub fn counts(&self) -> HashMap<AckId, u32> {
        let mut counts = HashMap::new();
        for ack in self.deferred.iter().flat_map(|(_, acks)| acks) {
            *counts.entry(*ack).or_insert(0) += 1;
        }
        counts
    }

    /// Every deferred message (end of input, or the shard is dropped).
    pub fn drain(&mut self) -> Vec<AckId> {
        self.acks = 0;
        self.deferred.drain(..).flat_map(|(_, acks)| acks).collect()
    }
}

#[cfg(test)]
mod tests;
