//! The real pipeline under random interleavings of ingest (good, bad and late records on two
//! partitions of one shard), idleness, wall-clock watermark steps, revocation and the end of
//! input: every message is released exactly once — or, revoked, never — and never before
//! the outputs derived from it (its dead letter or late record, its window's evaluation).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::decode::MessageContext;
use crate::output::OutputKind;
use crate::rules::Unbounded;

const S: i64 = 1_000_000_000;
/// The pipeline's tumbling window, in seconds.
const WINDOW: i64 = 10;

fn pipeline() -> Pipeline {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pipeline.toml"),
        "name = \"p\"\n[window]\nsize = \"10s\"\nmax_out_of_orderness = \"0s\"\n\
         [traces]\ngap = \"0s\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    // Fires for every service with logs in a window: alert states hold input back.
    std::fs::write(
        dir.path().join("rules/logs.sql"),
        "-- severity = \"info\"\nSELECT service, count(*) AS value FROM logs GROUP BY service\n",
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let loaded = crate::load::load(dir.path()).await.unwrap();
        Pipeline::new(loaded, Box::new(Unbounded)).await.unwrap()
    })
}

#[derive(Debug, Clone)]
enum Op {
    /// A message on partition `p` with one log record at second `at` (or undecodable).
    Ingest {
        p: usize,
        at: i64,
        bad: bool,
    },
    Idle {
        p: usize,
    },
    Revoke {
        p: usize,
    },
    /// Every input quiet: the watermark follows the "wall clock" to second `at`.
    Advance {
        at: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, 0..120i64, proptest::bool::weighted(0.1))
            .prop_map(|(p, at, bad)| Op::Ingest { p, at, bad }),
        1 => (0..2usize).prop_map(|p| Op::Idle { p }),
        1 => (0..2usize).prop_map(|p| Op::Revoke { p }),
        1 => (0..150i64).prop_map(|at| Op::Advance { at }),
    ]
}

const PARTITIONS: [&str; 2] = ["a", "b"];

#[derive(Default)]
struct Check {
    /// Per message: its partition and record time (`None`: undecodable).
    messages: BTreeMap<AckId, (usize, Option<i64>)>,
    /// Messages with a dead letter or late record already emitted.
    reported: BTreeSet<AckId>,
    released: BTreeSet<AckId>,
    revoked: BTreeSet<AckId>,
}

impl Check {
    /// One emission: outputs first (they are sent with it), then its releases.
    fn emission(&mut self, em: &Emission, watermark: EventTime, finished: bool) {
        for out in &em.outputs {
            if matches!(out.kind, OutputKind::DeadLetter | OutputKind::Late) {
                let v: serde_json::Value = serde_json::from_str(&out.json).unwrap();
                self.reported.insert(v["source"]["line"].as_u64().unwrap());
            }
        }
        for &ack in &em.released {
            assert!(self.released.insert(ack), "message {ack} released twice");
            assert!(
                !self.revoked.contains(&ack),
                "revoked message {ack} released"
            );
            let (_, at) = self.messages[&ack];
            let window_end = at.map(|t| (t.div_euclid(WINDOW) + 1) * WINDOW * S);
            let evaluated = finished || window_end.is_some_and(|end| watermark.0 >= end);
            assert!(
                self.reported.contains(&ack) || evaluated,
                "message {ack} (at {at:?} s) released before its window was evaluated \
                 (watermark {watermark})"
            );
        }
    }
}

fn message(p: usize, ack: AckId, at: i64, bad: bool) -> InputMessage {
    let payload = if bad {
        b"{not json".to_vec()
    } else {
        serde_json::json!({"signal": "log", "time_unix_nano": at * S, "service": "svc",
            "body": format!("request {ack} done")})
        .to_string()
        .into_bytes()
    };
    InputMessage {
        size: payload.len(),
        payload,
        source: Location::File {
            path: PARTITIONS[p].into(),
            line: ack,
        },
        context: MessageContext::default(),
    }
}

async fn run(ops: Vec<Op>, mut p: Pipeline) -> Check {
    let keys: Vec<PartitionKey> = PARTITIONS
        .iter()
        .map(|t| PartitionKey::new(*t, 0))
        .collect();
    let mut c = Check::default();
    let mut registered = [false; 2];
    let mut next: AckId = 0;
    for op in ops {
        let em = match op {
            Op::Ingest { p: i, at, bad } => {
                if !registered[i] {
                    p.register(&keys[i]);
                    registered[i] = true;
                }
                next += 1;
                c.messages.insert(next, (i, (!bad).then_some(at)));
                p.ingest(&message(i, next, at, bad), next, &keys[i]).await
            }
            Op::Idle { p: i } => p.set_idle(&keys[i]).await,
            Op::Advance { at } => p.advance_watermark(EventTime(at * S)).await,
            Op::Revoke { p: i } => {
                let of = |ack: AckId| c.messages.get(&ack).map(|m| m.0) == Some(i);
                p.revoke(&keys[i], of);
                registered[i] = false;
                for (&ack, &(part, _)) in &c.messages {
                    if part == i && !c.released.contains(&ack) {
                        c.revoked.insert(ack);
                    }
                }
                Emission::default()
            }
        };
        c.emission(&em, p.watermark(), false);
    }
    let em = p.finish().await;
    c.emission(&em, p.watermark(), true);
    assert_eq!(p.held_messages(), 0, "holds left after the end of input");
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn every_message_is_released_once_and_never_before_its_outputs(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let c = rt.block_on(run(ops, pipeline()));
        for ack in c.messages.keys() {
            prop_assert!(
                c.released.contains(ack) != c.revoked.contains(ack),
                "message {} must be released xor revoked", ack
            );
        }
    }
}
