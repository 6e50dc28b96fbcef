//! A checkpoint taken in the middle of the example incident (alerts pending and firing,
//! detectors and incidents warm), restored into a fresh pipeline that re-reads from the
//! oldest message the checkpoint does not cover: everything it produces from there on is
//! what an uninterrupted run produces — with the look-back saved in the snapshot, and with
//! it left out and rebuilt from the re-read input.

use super::*;
use crate::decode::MessageContext;
use crate::model::{AckId, Location, PartitionKey};
use crate::output::{Output, OutputKind};
use crate::rules::Unbounded;
use crate::source::InputMessage;

/// A rule over the last three windows whose label is its row count: every window's
/// look-back shows in the alerts (a new alert when the count changes).
const LOOK_BACK_RULE: &str = r#"-- id = "look_back_rows"
-- severity = "info"
-- window = "3m"
SELECT service, CAST(count(*) AS VARCHAR) AS rows_in_look_back, 1 AS value
FROM logs WHERE service IS NOT NULL GROUP BY service
"#;

fn pipeline(rt: &tokio::runtime::Runtime, extra_rules: &std::path::Path) -> Pipeline {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/inference"));
    rt.block_on(async {
        let mut loaded = crate::load::load(dir).await.unwrap();
        loaded.config.rules.push(extra_rules.to_path_buf());
        loaded.rules = crate::load::reload_rules(dir, &loaded.config)
            .await
            .unwrap();
        let mut p = Pipeline::new(loaded, Box::new(Unbounded)).await.unwrap();
        p.use_checkpoints();
        p
    })
}

/// The example incident's lines as messages of partition `in`/0, offset = line index.
pub(in crate::pipeline) fn messages() -> Vec<InputMessage> {
    let text = include_str!("../../../examples/incident.jsonl");
    text.lines()
        .enumerate()
        .map(|(i, line)| InputMessage {
            payload: line.as_bytes().to_vec(),
            size: line.len(),
            source: Location::Kafka {
                topic: "in".into(),
                partition: 0,
                offset: i as i64,
            },
            context: MessageContext::default(),
        })
        .collect()
}

/// What a reader of the alert, suggestion and incident topics sees.
fn visible(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter(|o| {
            matches!(
                o.kind,
                OutputKind::Alerts | OutputKind::Suggestions | OutputKind::Incidents
            )
        })
        .map(|o| format!("{:?} {} {}", o.kind, o.key, o.json))
        .collect()
}

#[test]
fn a_restored_checkpoint_with_its_look_back_continues_exactly_like_an_uninterrupted_run() {
    restored_run_matches_uninterrupted(true);
}

#[test]
fn a_checkpoint_without_its_look_back_rebuilds_it_from_re_read_input() {
    restored_run_matches_uninterrupted(false);
}

fn restored_run_matches_uninterrupted(with_history: bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("look_back_rows.sql"), LOOK_BACK_RULE).unwrap();
    let msgs = messages();
    let key = PartitionKey::new("in", 0);
    let mut whole = pipeline(&rt, rules.path());
    assert_eq!(
        whole.history, 4,
        "the 5-minute indicator keeps four earlier windows"
    );
    whole.register(&key);
    let mut after = Vec::new();
    let mut cut = None;
    for (i, m) in msgs.iter().enumerate() {
        let em = rt.block_on(whole.ingest(m, i as AckId, &key));
        if cut.is_some() {
            after.extend(visible(&em.outputs));
        } else if i >= msgs.len() / 2 && whole.shards[&0].lifecycle.earliest_since().is_some() {
            // Mid-incident: an alert is pending or firing. Checkpoint here.
            let look_back = whole.shards[&0].history.len();
            assert!(
                look_back >= 3,
                "a look-back the rule reads ({look_back} windows)"
            );
            let state = whole.save_shard(0, with_history).unwrap();
            let resume = resume_offset(&whole, with_history).unwrap_or(i as AckId + 1);
            let bytes = ShardSnapshot {
                version: SNAPSHOT_VERSION,
                group: "g".into(),
                pipeline: "inference".into(),
                shard: 0,
                resume: BTreeMap::from([("in".into(), resume as i64)]),
                until: BTreeMap::from([("in".into(), i as i64 + 1)]),
                state,
                templates: Some(whole.template_state()),
            }
            .encode();
            cut = Some((i, bytes));
        }
    }
    after.extend(visible(&rt.block_on(whole.finish()).outputs));
    let (cut, bytes) = cut.expect("the incident fires an alert in its second half");
    assert!(
        after.iter().any(|a| a.contains("look_back_rows")),
        "the look-back rule goes on alerting after the checkpoint"
    );

    let snapshot = ShardSnapshot::decode(&bytes).unwrap();
    assert_eq!(snapshot.state.rebuild_from.is_some(), !with_history);
    let mut restored = pipeline(&rt, rules.path());
    assert!(restored
        .restore_templates(snapshot.templates.as_ref().unwrap())
        .unwrap());
    restored.restore_shard(0, snapshot.state).unwrap();
    let kept = restored.shards[&0].history.len();
    assert_eq!(
        kept > 0,
        with_history,
        "{kept} windows of look-back restored"
    );
    restored.register(&key);
    let mut seen = Vec::new();
    let resume = snapshot.resume["in"] as usize;
    assert!(resume <= cut, "open windows are re-read");
    for (i, m) in msgs.iter().enumerate().skip(resume) {
        let em = rt.block_on(restored.ingest(m, i as AckId, &key));
        let replayed = i <= cut;
        assert!(
            !replayed || visible(&em.outputs).is_empty(),
            "re-reading input the state covers repeats no alert"
        );
        seen.extend(visible(&em.outputs));
    }
    seen.extend(visible(&rt.block_on(restored.finish()).outputs));
    let first_difference = seen.iter().zip(&after).position(|(a, b)| a != b).map(|i| {
        let (a, b) = (&seen[i], &after[i]);
        let at = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
        let around = |t: &str| {
            t.chars()
                .skip(at.saturating_sub(200))
                .take(400)
                .collect::<String>()
        };
        (i, around(a), around(b))
    });
    assert_eq!(
        (seen.len(), first_difference),
        (after.len(), None),
        "restored ({}) vs uninterrupted ({})",
        seen.len(),
        after.len()
    );
}

/// What the driver's checkpoint covers (acks are offsets here): the oldest message held,
/// passing over those held only for a look-back the snapshot saves.
fn resume_offset(p: &Pipeline, with_history: bool) -> Option<AckId> {
    let saved = match with_history {
        true => p.held_for_history_only(0),
        false => Vec::new(),
    };
    p.ledger
        .held_acks()
        .into_iter()
        .find(|a| !saved.contains(a))
}

#[test]
fn snapshots_of_another_version_or_shape_are_refused() {
    assert!(matches!(
        ShardSnapshot::decode(b"not cbor at all"),
        Err(SnapshotError::Unreadable(_))
    ));
    let mut v1 = Vec::new();
    ciborium::into_writer(&serde_json::json!({"version": 1}), &mut v1).unwrap();
    assert!(matches!(
        ShardSnapshot::decode(&v1),
        Err(SnapshotError::Version { found: 1 })
    ));
}

/// The look-back's Arrow IPC tables are CBOR byte strings, which encode as a copy (an array
/// of one integer item per byte took millions of items per snapshot), and read back.
#[test]
fn the_look_back_tables_are_byte_strings() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("look_back_rows.sql"), LOOK_BACK_RULE).unwrap();
    let mut p = pipeline(&rt, rules.path());
    let key = PartitionKey::new("in", 0);
    p.register(&key);
    for (i, m) in messages().iter().enumerate() {
        rt.block_on(p.ingest(m, i as AckId, &key));
    }
    let state = p.save_shard(0, true).unwrap();
    let ipc_bytes: usize = state
        .history
        .iter()
        .flat_map(|b| b.tables.iter().map(|t| t.len()))
        .sum();
    assert!(ipc_bytes > 10_000, "{ipc_bytes} bytes of look-back");
    let snapshot = ShardSnapshot {
        version: SNAPSHOT_VERSION,
        group: "g".into(),
        pipeline: "inference".into(),
        shard: 0,
        resume: BTreeMap::new(),
        until: BTreeMap::new(),
        state,
        templates: None,
    };
    let bytes = snapshot.encode();
    assert!(bytes.len() > ipc_bytes, "{} bytes", bytes.len());
    let value: ciborium::value::Value = ciborium::from_reader(&bytes[..]).unwrap();
    let field = |v: &ciborium::value::Value, name: &str| {
        let map = v.as_map().unwrap();
        let (_, found) = map.iter().find(|(k, _)| k.as_text() == Some(name)).unwrap();
        found.clone()
    };
    let history = field(&field(&value, "state"), "history");
    let batches = history.as_array().unwrap();
    assert!(!batches.is_empty());
    for batch in batches {
        for table in field(batch, "tables").as_array().unwrap() {
            assert!(table.is_bytes(), "{table:?}");
        }
    }
    let restored = ShardSnapshot::decode(&bytes).unwrap();
    assert_eq!(restored.state.history.len(), batches.len());
}
