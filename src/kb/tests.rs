//! The knowledge base on small hand-made entries: ranking with hints, rendered steps,
//! preconditions, review and abstention.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::alert::Evidence;
use crate::model::{EventTime, Window};
use crate::rules::Unbounded;

const OOM: &str = r#"
id = "oom_batch"
title = "Lower the batch size"
meaning = "The training step needs more GPU memory than the card has: CUDA out of memory."
keywords = ["cuda", "out of memory", "batch size", "显存不足"]
steps = ["{{ $evidence.requested_gib }} GiB requested on {{ $labels.host }}: halve the batch size."]
runbook_url = "https://runbooks.example.com/oom_batch"
[match]
alerts = ["CudaOutOfMemory"]
evidence = ["requested_gib"]
[[preconditions]]
name = "the request does not fit in the free memory"
sql = "SELECT CAST(evidence['requested_gib'] AS DOUBLE) > CAST(evidence['free_gib'] AS DOUBLE) AS value FROM alert"
"#;

const LEVEL: &str = r#"
id = "gpu_shed"
title = "Shed load: stop admitting work"
meaning = "GPU memory pressure at the shed level."
steps = ["Stop admitting new work on {{ $labels.host }}."]
runbook_url = "https://runbooks.example.com/gpu_shed"
[match]
alerts = ["GpuMemoryPressure"]
labels = { level = "shed" }
"#;

const DISK: &str = r#"
id = "nccl_timeout"
title = "Raise the collective timeout"
meaning = "An NCCL collective timed out in distributed training while every rank is alive."
keywords = ["nccl", "watchdog", "timeout", "allreduce"]
steps = ["Raise the process group timeout."]
runbook_url = "https://runbooks.example.com/nccl_timeout"
[match]
alerts = ["NcclCollectiveFailure"]
[[preconditions]]
name = "the error is a timeout"
sql = "SELECT labels['error'] = 'timeout' AS value FROM alert"
on_fail = "remove"
"#;

async fn kb(config: KbConfig) -> KnowledgeBase {
    let entries = [
        ("oom_batch", OOM),
        ("gpu_shed", LEVEL),
        ("nccl_timeout", DISK),
    ]
    .iter()
    .map(|(id, text)| entry::parse_entry(Path::new(&format!("kb/{id}.toml")), text).unwrap())
    .collect();
    KnowledgeBase::new(entries, config, EvalLimits::default())
        .await
        .unwrap()
}

fn alert(labels: &[(&str, &str)], summary: &str, evidence: &[(&str, f64)]) -> Alert {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Alert {
        id: "a1".into(),
        fingerprint: crate::alert::fingerprint(&labels),
        labels,
        annotations: BTreeMap::from([("summary".to_string(), summary.to_string())]),
        evidence: Evidence {
            value: 3.0,
            values: evidence
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                .collect(),
            ..Evidence::default()
        },
        ..Alert::default()
    }
}

fn window() -> AlignedBatch {
    crate::tables::empty_batch(Window {
        start: EventTime(0),
        end: EventTime(60_000_000_000),
    })
}

fn oom(requested: f64, free: f64) -> Alert {
    alert(
        &[
            ("alertname", "CudaOutOfMemory"),
            ("severity", "critical"),
            ("host", "h1"),
        ],
        "CUDA out of memory on h1",
        &[("requested_gib", requested), ("free_gib", free)],
    )
}

#[tokio::test]
async fn steps_carry_the_alerts_values_and_preconditions_say_why() {
    let kb = kb(KbConfig::default()).await;
    let fits = kb.suggest(&oom(2.5, 0.5), &window(), &Unbounded).await;
    assert_eq!(fits[0].remediation_id.as_deref(), Some("oom_batch"));
    assert_eq!(
        fits[0].steps,
        ["2.5 GiB requested on h1: halve the batch size."]
    );
    assert_eq!(fits[0].validation[0].result, suggestion::Check::Passed);
    assert!(fits[0]
        .matched_on
        .as_ref()
        .unwrap()
        .hints
        .contains(&"alertname".to_string()));
    // The same alert where the request would have fit: the precondition fails, says so,
    // and the confidence drops.
    let small = kb.suggest(&oom(0.1, 0.5), &window(), &Unbounded).await;
    let s = small
        .iter()
        .find(|s| s.remediation_id.as_deref() == Some("oom_batch"))
        .expect("still suggested, lower");
    assert_eq!(s.validation[0].result, suggestion::Check::Failed);
    assert_eq!(s.validation[0].reason, "does not hold");
    assert!(
        s.confidence < fits[0].confidence,
        "{} vs {}",
        s.confidence,
        fits[0].confidence
    );
}

#[tokio::test]
async fn a_contradicting_label_excludes_an_entry_and_a_matching_one_counts() {
    let kb = kb(KbConfig::default()).await;
    let shed = alert(
        &[
            ("alertname", "GpuMemoryPressure"),
            ("level", "shed"),
            ("severity", "critical"),
        ],
        "GPU memory at 99%",
        &[],
    );
    assert_eq!(
        kb.rank(&shed, 5)[0].hints.held,
        ["alertname", "label:level"]
    );
    let warn = alert(
        &[
            ("alertname", "GpuMemoryPressure"),
            ("level", "warning"),
            ("severity", "warning"),
        ],
        "GPU memory at 91%",
        &[],
    );
    assert!(kb
        .rank(&warn, 5)
        .iter()
        .all(|c| kb.entries()[c.entry].id() != "gpu_shed"));
}

#[tokio::test]
async fn a_failed_remove_precondition_drops_the_suggestion() {
    let kb = kb(KbConfig::default()).await;
    let crashed = alert(
        &[
            ("alertname", "NcclCollectiveFailure"),
            ("error", "remote_process_exited"),
        ],
        "NCCL watchdog: remote process exited",
        &[],
    );
    let out = kb.suggest(&crashed, &window(), &Unbounded).await;
    assert!(
        out.iter()
            .all(|s| s.remediation_id.as_deref() != Some("nccl_timeout")),
        "{out:?}"
    );
}

#[tokio::test]
async fn nothing_fitting_says_so_with_the_closest_entries() {
    let kb = kb(KbConfig::default()).await;
    let disk = alert(
        &[("alertname", "DiskAlmostFull"), ("severity", "warning")],
        "Filesystem /var is 97% full on db-3",
        &[],
    );
    let out = kb.suggest(&disk, &window(), &Unbounded).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].remediation_id, None);
    assert!(out[0].needs_review);
    assert!(!out[0].closest.is_empty());
}

#[tokio::test]
async fn below_the_threshold_a_suggestion_is_a_question_for_review() {
    let config = KbConfig {
        review_below: ReviewThresholds {
            critical: 1.0,
            warning: 1.0,
            info: 1.0,
        },
        ..KbConfig::default()
    };
    let kb = kb(config).await;
    let out = kb.suggest(&oom(2.5, 0.5), &window(), &Unbounded).await;
    assert!(out[0].needs_review);
    assert!(out[0]
        .question
        .as_deref()
        .unwrap()
        .starts_with("Could this be it: Lower"));
    // Deterministic.
    assert_eq!(out, kb.suggest(&oom(2.5, 0.5), &window(), &Unbounded).await);
}

#[tokio::test]
async fn feedback_changes_the_ranking() {
    let mut kb = kb(KbConfig::default()).await;
    let a = oom(2.5, 0.5);
    let before = kb.suggest(&a, &window(), &Unbounded).await;
    let id = &before[0].id;
    for i in 0..8 {
        let f = feedback::Feedback {
            suggestion_id: id.clone(),
            alert_fingerprint: a.fingerprint.clone(),
            verdict: feedback::Verdict::Wrong,
            action: None,
            by: Some("sre".into()),
            at: format!("2026-11-01T12:0{i}:00Z"),
        };
        assert!(kb.apply_feedback(&f));
        assert!(!kb.apply_feedback(&f), "a duplicate is ignored");
    }
    let after = kb.suggest(&a, &window(), &Unbounded).await;
    let c = |v: &[Suggestion]| {
        v.iter()
            .find(|s| s.remediation_id.as_deref() == Some("oom_batch"))
            .map_or(0.0, |s| s.confidence)
    };
    assert!(c(&after) < c(&before), "{} vs {}", c(&after), c(&before));
}
