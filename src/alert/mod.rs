//! Alerts: rule findings through a Prometheus-style lifecycle into records compatible with
//! Alertmanager's alert model (`schemas/alert.json`), with deterministic fingerprints and ids.
//!
//! Pure: times come from the evaluated windows (event time), never the wall clock, so a replay
//! produces byte-identical alerts.

mod group;
mod lifecycle;
mod template;

use std::collections::BTreeMap;
use std::hash::Hasher;

use serde::{Deserialize, Serialize};

pub use group::Grouper;
pub use lifecycle::{AlertState, Lifecycle};

/// `firing` or `resolved`, as in Alertmanager.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    #[default]
    Firing,
    Resolved,
}

/// Why the alert fired: the value, the window, the rule's evidence columns and sample traces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Evidence {
    pub value: f64,
    pub window_start: String,
    pub window_end: String,
    /// The rule's `evidence_*` columns.
    pub values: BTreeMap<String, serde_json::Value>,
    /// Trace ids that show the problem, at most ten.
    pub trace_ids: Vec<String>,
}

/// One alert notification. Reads back what it writes (missing fields default), so recorded
/// alerts can be matched again (the knowledge base's evaluation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Alert {
    /// Deterministic: the same fingerprint, status and start give the same id, so consumers
    /// can drop duplicates (resends, redeliveries after a restart).
    pub id: String,
    pub rule_id: String,
    /// The rule's group (its directory unless set).
    pub rule_group: String,
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
    /// The notification group (`alerting.group_by` labels as `{label="value",...}`), or the
    /// fingerprint without grouping. The Kafka key of the message.
    pub group_key: String,
    pub evidence: Evidence,
}

/// Expands `{{ $labels.X }}`, `{{ $value }}` and `{{ $evidence.X }}` in `template` with an
/// alert's values (what annotations use; the knowledge base's steps too).
pub fn render_template(template: &str, alert: &Alert) -> String {
    let params = BTreeMap::new();
    let cx = template::Context {
        value: alert.evidence.value,
        params: &params,
        evidence: &alert.evidence.values,
    };
    template::render(template, &alert.labels, &cx)
}

/// 16 hex digits of the FNV-1a hash of `parts`: the deterministic ids of alerts and what
/// derives from them.
pub fn fnv_hex(parts: &[&str]) -> String {
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

/// An inhibition rule, as in Alertmanager: while an alert matching `source` fires, alerts
/// matching `target` with the same values of the `equal` labels are not notified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    /// Labels (exact values) the inhibiting alert must have, e.g.
    /// `{ alertname = "GpuOutOfMemory", severity = "critical" }`.
    pub source: BTreeMap<String, String>,
    /// Labels (exact values) the inhibited alerts have, e.g. `{ severity = "warning" }`.
    pub target: BTreeMap<String, String>,
    /// Labels whose values must be equal on both, e.g. `["host"]`.
    #[serde(default)]
    pub equal: Vec<String>,
}

impl InhibitRule {
    fn matches(want: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
        want.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    /// Whether `source` (firing) inhibits `target`.
    pub fn inhibits(
        &self,
        source: &BTreeMap<String, String>,
        target: &BTreeMap<String, String>,
    ) -> bool {
        source != target
            && Self::matches(&self.source, source)
            && Self::matches(&self.target, target)
            && self.equal.iter().all(|l| source.get(l) == target.get(l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fingerprint_depends_on_labels_not_their_insertion_order() {
        let a = labels(&[("b", "2"), ("a", "1")]);
        let b = labels(&[("a", "1"), ("b", "2")]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(
            fingerprint(&labels(&[("a", "12")])),
            fingerprint(&labels(&[("a1", "2")]))
        );
        assert_eq!(fingerprint(&a).len(), 16);
    }

    #[test]
    fn inhibition_needs_source_target_and_equal_labels() {
        let rule = InhibitRule {
            source: labels(&[("alertname", "GpuOutOfMemory"), ("severity", "critical")]),
            target: labels(&[("severity", "warning")]),
            equal: vec!["host".into()],
        };
        let oom = labels(&[
            ("alertname", "GpuOutOfMemory"),
            ("severity", "critical"),
            ("host", "h1"),
        ]);
        let slow_h1 = labels(&[
            ("alertname", "Latency"),
            ("severity", "warning"),
            ("host", "h1"),
        ]);
        let slow_h2 = labels(&[
            ("alertname", "Latency"),
            ("severity", "warning"),
            ("host", "h2"),
        ]);
        assert!(rule.inhibits(&oom, &slow_h1));
        assert!(!rule.inhibits(&oom, &slow_h2));
        assert!(!rule.inhibits(&slow_h1, &oom));
    }
}
