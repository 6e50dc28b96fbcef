//! `env_drift`: drift between consecutive environment snapshots.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use super::super::{Detection, Detector, Sample, SeriesMap};
use super::detection;
use crate::model::{EventTime, Window};

/// `env_drift`: the source returns one row per variable per snapshot (rows of a snapshot
/// share `sample_time`) with a `variable` label, `evidence_text` (the value, redacted by the
/// agent for secrets) and `evidence_secret` (`"true"` for a secret); the other labels identify
/// the process. Reported per variable with a `problem` label: `disappeared`, `changed`
/// (once, in the window it happened), `out_of_range`, `secret_in_plaintext` (while true).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvDriftParams {
    /// Numeric ranges, e.g. `{ APP_BATCH_SIZE = [1, 512] }`.
    #[serde(default)]
    pub ranges: BTreeMap<String, [f64; 2]>,
}

/// `env_drift`: per process, the last snapshot of its variables.
pub struct EnvDrift {
    cfg: EnvDriftParams,
    /// Variable -> (value text, secret) of the last snapshot.
    series: SeriesMap<BTreeMap<String, (String, bool)>>,
}

impl EnvDrift {
    pub fn new(cfg: EnvDriftParams, max: usize) -> Self {
        EnvDrift {
            cfg,
            series: SeriesMap::new(max),
        }
    }
}

fn evidence_text(s: &Sample, name: &str) -> String {
    match s.evidence.get(name) {
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Variable → (value, secret) of one snapshot.
type Snapshot = BTreeMap<String, (String, bool)>;
type Process = BTreeMap<String, String>;

/// Process key → snapshot time → variables.
fn snapshots(samples: &[Sample]) -> BTreeMap<Process, BTreeMap<EventTime, Snapshot>> {
    let mut processes: BTreeMap<Process, BTreeMap<EventTime, Snapshot>> = BTreeMap::new();
    for s in samples {
        let mut process = s.key.clone();
        let Some(variable) = process.remove("variable") else {
            continue;
        };
        let secret = evidence_text(s, "secret") == "true";
        processes
            .entry(process)
            .or_default()
            .entry(s.time)
            .or_default()
            .insert(variable, (evidence_text(s, "text"), secret));
    }
    processes
}

fn report(
    out: &mut Vec<Detection>,
    process: &Process,
    var: &str,
    problem: &str,
    value: f64,
    ev: Vec<(&str, serde_json::Value)>,
) {
    let mut d = detection(process, value, ev);
    d.labels.insert("variable".into(), var.to_string());
    d.labels.insert("problem".into(), problem.to_string());
    out.push(d);
}

/// Variables that disappeared or changed from `last` to `snap`.
fn drift(out: &mut Vec<Detection>, process: &Process, last: &Snapshot, snap: &Snapshot) {
    for (var, (old, _)) in last {
        match snap.get(var) {
            None => report(
                out,
                process,
                var,
                "disappeared",
                1.0,
                vec![("last_value", json!(old))],
            ),
            Some((new, _)) if new != old => report(
                out,
                process,
                var,
                "changed",
                1.0,
                vec![("old_value", json!(old)), ("new_value", json!(new))],
            ),
            Some(_) => {}
        }
    }
}

/// Problems of the latest snapshot itself: secrets in plain text, values out of `ranges`.
fn problems(
    ranges: &BTreeMap<String, [f64; 2]>,
    out: &mut Vec<Detection>,
    process: &Process,
    last: &Snapshot,
) {
    {
        for (var, (text, secret)) in last {
            if *secret {
                report(
                    out,
                    process,
                    var,
                    "secret_in_plaintext",
                    1.0,
                    vec![("value", json!(text))],
                );
            }
            let Some([lo, hi]) = ranges.get(var) else {
                continue;
            };
            match text.trim().parse::<f64>() {
                Ok(v) if v < *lo || v > *hi => report(
                    out,
                    process,
                    var,
                    "out_of_range",
                    v,
                    vec![("min", json!(lo)), ("max", json!(hi))],
                ),
                Ok(_) => {}
                Err(_) => report(
                    out,
                    process,
                    var,
                    "out_of_range",
                    0.0,
                    vec![
                        ("value", json!(text)),
                        ("min", json!(lo)),
                        ("max", json!(hi)),
                    ],
                ),
            }
        }
    }
}

impl Detector for EnvDrift {
    series_state!();

    fn observe(&mut self, samples: &[Sample], _window: Window) -> Vec<Detection> {
        let mut out = Vec::new();
        for (process, snapshots) in snapshots(samples) {
            let at = *snapshots.keys().next_back().expect("non-empty");
            let last = self.series.get(&process, at);
            for (_, snap) in snapshots {
                if !last.is_empty() {
                    drift(&mut out, &process, last, &snap);
                }
                *last = snap;
            }
            problems(&self.cfg.ranges, &mut out, &process, last);
        }
        // One detection per (process, variable, problem): a change and a disappearance in
        // one window are both kept; repeats of the same are merged.
        out.sort_by(|a, b| (&a.key, &a.labels).cmp(&(&b.key, &b.labels)));
        out.dedup_by(|a, b| a.key == b.key && a.labels == b.labels);
        out
    }
}
