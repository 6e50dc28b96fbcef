//! Alerts: turns rule findings into records compatible with Alertmanager's alert model
//! (`schemas/alert.json`), with deterministic fingerprints and ids.
//!
//! Pure: times come from the evaluated window, never the wall clock, so a replay produces
//! byte-identical alerts.

mod template;

use std::collections::BTreeMap;
use std::hash::Hasher;

use serde::Serialize;

use crate::align::Window;
use crate::rules::Finding;

/// `firing` or `resolved`, as in Alertmanager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// Why the alert fired: the value, the window, the rule's evidence columns and sample traces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub value: f64,
    pub window_start: String,
    pub window_end: String,
    /// The rule's `evidence_*` columns.
    pub values: BTreeMap<String, serde_json::Value>,
    /// Trace ids that show the problem, at most ten.
    pub trace_ids: Vec<String>,
}

/// One alert notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Deterministic: the same fingerprint, status and start give the same id, so consumers
    /// can drop duplicates after a redelivery.
    pub id: String,
    pub rule_id: String,
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
    pub evidence: Evidence,
}

fn fnv_hex(parts: &[&str]) -> String {
    let mut h = fnv::FnvHasher::default();
    for p in parts {
        h.write(p.as_bytes());
        h.write_u8(0xff); // separator, so ("ab","c") and ("a","bc") differ
    }
    format!("{:016x}", h.finish())
}

/// Identifies an alert by its label set, like Alertmanager's fingerprint.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<&str> = labels
        .iter()
        .flat_map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    fnv_hex(&parts)
}

/// Builds alerts from findings. For now every finding of a window fires for that window; the
/// pending/firing/resolved lifecycle builds on this.
pub struct AlertBuilder {
    pipeline: String,
}

impl AlertBuilder {
    pub fn new(pipeline: impl Into<String>) -> Self {
        AlertBuilder {
            pipeline: pipeline.into(),
        }
    }

    /// A firing alert for a finding of `window`. `startsAt` is the window start; `endsAt` is
    /// the end of the following window, the time until which the alert holds unless a later
    /// window fires it again (as Prometheus sends a future `endsAt` with firing alerts).
    pub fn firing(&self, finding: &Finding, window: Window) -> Alert {
        let rule = &finding.rule;
        let mut labels = rule.labels.clone();
        labels.extend(finding.labels.clone());
        labels.insert("alertname".into(), rule.alert.clone());
        labels.insert("severity".into(), rule.severity.as_str().into());
        let annotations = rule
            .annotations
            .iter()
            .map(|(k, t)| (k.clone(), template::render(t, &labels, finding.value)))
            .collect();
        let fingerprint = fingerprint(&labels);
        let starts_at = window.start.to_rfc3339();
        let valid_until = window.end.0.saturating_add(window.end.0 - window.start.0);
        let status = AlertStatus::Firing;
        Alert {
            id: fnv_hex(&[&fingerprint, "firing", &starts_at]),
            rule_id: rule.id.clone(),
            status,
            labels,
            annotations,
            starts_at,
            ends_at: crate::model::EventTime(valid_until).to_rfc3339(),
            generator_url: format!("faultline://{}/rules/{}", self.pipeline, rule.id),
            fingerprint,
            evidence: Evidence {
                value: finding.value,
                window_start: window.start.to_rfc3339(),
                window_end: window.end.to_rfc3339(),
                values: finding.evidence.clone(),
                trace_ids: finding.trace_ids.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_depends_on_labels_not_their_insertion_order() {
        let a: BTreeMap<_, _> = [("b", "2"), ("a", "1")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let b: BTreeMap<_, _> = [("a", "1"), ("b", "2")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        let c: BTreeMap<_, _> = [("a", "12")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let d: BTreeMap<_, _> = [("a1", "2")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert_ne!(fingerprint(&c), fingerprint(&d));
        assert_eq!(fingerprint(&a).len(), 16);
    }
}
