//! The ledger alone (unit cases) and under random interleavings of ingest, window release,
//! alert-state holds and revocation (a model of the pipeline's protocol; `pipeline/tests.rs`
//! checks the real pipeline the same way).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

#[test]
fn a_message_is_released_when_its_last_hold_goes() {
    let mut l = Ledger::default();
    let mut em = Emission::default();
    l.open(1);
    l.hold(1, 2);
    l.release(1, &mut em);
    l.release(1, &mut em);
    assert!(em.released.is_empty());
    l.release(1, &mut em);
    assert_eq!(em.released, vec![1]);
    l.release(1, &mut em);
    assert_eq!(em.released, vec![1], "released once only");
    assert_eq!(l.held(), 0);
}

#[test]
fn a_forgotten_message_is_never_released() {
    let mut l = Ledger::default();
    let mut em = Emission::default();
    l.open(7);
    l.hold(7, 1);
    l.release(7, &mut em);
    l.forget(7);
    l.release(7, &mut em);
    assert!(em.released.is_empty());
}

#[test]
fn alert_state_hold_keeps_windows_an_alert_needs_up_to_its_cap() {
    let mut h = AlertStateHold::default();
    h.defer(EventTime(0), vec![1, 2]);
    h.defer(EventTime(60), vec![3]);
    h.defer(EventTime(120), vec![4]);
    // An alert pending since 60: the window at 0 can go.
    assert_eq!(h.release_unneeded(Some(EventTime(60)), 10), (vec![1, 2], 0));
    assert_eq!(h.release_unneeded(Some(EventTime(60)), 10), (vec![], 0));
    // Over the cap, the oldest needed window goes anyway, counted.
    assert_eq!(h.release_unneeded(Some(EventTime(60)), 1), (vec![3], 1));
    assert_eq!(h.release_unneeded(None, 10), (vec![4], 0));
    assert!(h.drain().is_empty());
}

/// One step of the model.
#[derive(Debug, Clone)]
enum Op {
    /// A message of `partition` with `records` records, of which the first `late` are late.
    Ingest {
        partition: u8,
        records: u8,
        late: u8,
    },
    /// The oldest open window of `partition` closes; alerts then need windows from
    /// `needed_back` windows ago (None: no alert state).
    Close {
        partition: u8,
        needed_back: Option<u8>,
    },
    /// The partition is revoked: its open records and held windows are forgotten.
    Revoke { partition: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2u8, 0..4u8, 0..2u8).prop_map(|(partition, records, late)| Op::Ingest {
            partition,
            records,
            late: late.min(records),
        }),
        (0..2u8, proptest::option::of(0..3u8)).prop_map(|(partition, needed_back)| Op::Close {
            partition,
            needed_back
        }),
        (0..2u8).prop_map(|partition| Op::Revoke { partition }),
    ]
}

/// A partition (its own shard here): open windows of record holds, and its alert hold.
#[derive(Default)]
struct Part {
    open: Vec<Vec<AckId>>,
    hold: AlertStateHold,
    windows: i64,
}

/// What the check needs: outputs derived from each message, in emission order.
#[derive(Default)]
struct World {
    ledger: Ledger,
    parts: BTreeMap<u8, Part>,
    next_ack: AckId,
    /// Per message: outputs derived from it not yet emitted.
    owed: BTreeMap<AckId, u32>,
    released: BTreeSet<AckId>,
    revoked: BTreeSet<AckId>,
    partition_of: BTreeMap<AckId, u8>,
}

impl World {
    /// Applies one emission: every output it carries is emitted before its releases count.
    fn emit(&mut self, em: Emission, derived: Vec<AckId>) {
        for ack in derived {
            *self.owed.get_mut(&ack).expect("owed") -= 1;
        }
        for ack in em.released {
            assert!(self.released.insert(ack), "message {ack} released twice");
            assert!(
                !self.revoked.contains(&ack),
                "revoked message {ack} released"
            );
            assert_eq!(
                self.owed[&ack], 0,
                "message {ack} released before its outputs"
            );
        }
    }

    fn step(&mut self, op: Op) {
        let mut em = Emission::default();
        let mut derived = Vec::new();
        match op {
            Op::Ingest {
                partition,
                records,
                late,
            } => {
                self.next_ack += 1;
                let ack = self.next_ack;
                self.partition_of.insert(ack, partition);
                self.ledger.open(ack);
                self.ledger.hold(ack, u32::from(records));
                // Late records: an output each, their hold released with it.
                self.owed.insert(ack, u32::from(records));
                for _ in 0..late {
                    derived.push(ack);
                    self.ledger.release(ack, &mut em);
                }
                let part = self.parts.entry(partition).or_default();
                if part.open.is_empty() {
                    part.open.push(Vec::new());
                }
                for _ in late..records {
                    part.open.last_mut().expect("a window").push(ack);
                }
                self.ledger.release(ack, &mut em);
            }
            Op::Close {
                partition,
                needed_back,
            } => {
                let Some(part) = self.parts.get_mut(&partition) else {
                    return;
                };
                if part.open.is_empty() {
                    return;
                }
                let acks = part.open.remove(0);
                // The window's output is derived from every record in it.
                derived.extend(acks.iter().copied());
                part.windows += 1;
                let start = EventTime(part.windows);
                part.hold.defer(start, acks);
                let needed = needed_back.map(|b| EventTime(part.windows - i64::from(b)));
                let (release, _) = part.hold.release_unneeded(needed, 6);
                for ack in release {
                    self.ledger.release(ack, &mut em);
                }
            }
            Op::Revoke { partition } => {
                let Some(mut part) = self.parts.remove(&partition) else {
                    return;
                };
                let acks: Vec<AckId> = part
                    .open
                    .drain(..)
                    .flatten()
                    .chain(part.hold.drain())
                    .collect();
                for ack in acks {
                    self.ledger.forget(ack);
                }
                // Every unreleased message of the partition stays uncommitted.
                for (ack, p) in &self.partition_of {
                    if *p == partition && !self.released.contains(ack) {
                        self.revoked.insert(*ack);
                    }
                }
            }
        }
        self.emit(em, derived);
    }

    /// End of input: every window closes, every hold goes.
    fn finish(&mut self) {
        let partitions: Vec<u8> = self.parts.keys().copied().collect();
        for p in partitions {
            while !self.parts[&p].open.is_empty() {
                self.step(Op::Close {
                    partition: p,
                    needed_back: Some(0),
                });
            }
            let mut em = Emission::default();
            for ack in self.parts.get_mut(&p).expect("part").hold.drain() {
                self.ledger.release(ack, &mut em);
            }
            self.emit(em, Vec::new());
        }
    }
}

proptest! {
    #[test]
    fn every_message_is_released_exactly_once_never_before_its_outputs(
        ops in proptest::collection::vec(op(), 0..60)
    ) {
        let mut w = World::default();
        for op in ops {
            w.step(op);
        }
        w.finish();
        for ack in 1..=w.next_ack {
            prop_assert!(
                w.released.contains(&ack) != w.revoked.contains(&ack),
                "message {} must be released xor revoked", ack
            );
        }
        prop_assert_eq!(w.ledger.held(), 0);
    }
}
