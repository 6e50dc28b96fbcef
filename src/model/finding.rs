//! What rules and detectors hand to the alert stage.
//!
//! Both produce [`Finding`]s under an [`AlertSpec`] (the alert they would raise: name,
//! severity, `for`, labels, annotations…) with a [`Verdict`] they computed themselves, so the
//! alert stage never evaluates a rule's condition and a detector never pretends to be a rule.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::EventTime;

/// How urgent an alert is; becomes the `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A named rule parameter: a number, text or a boolean, bound to `$name` in the query.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Param {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl std::fmt::Display for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Param::Int(i) => write!(f, "{i}"),
            Param::Float(x) => write!(f, "{x}"),
            Param::Bool(b) => write!(f, "{b}"),
            Param::Text(s) => f.write_str(s),
        }
    }
}

/// The alert a rule or a detector raises: everything the lifecycle needs besides the rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSpec {
    /// The rule's or detector's id: the alerts' `rule_id`.
    pub id: String,
    /// The `alertname` label.
    pub alert: String,
    pub severity: Severity,
    /// The alerts' `rule_group`.
    pub group: String,
    /// How long a finding must hold (event time) before the alert fires.
    pub for_: Duration,
    /// How long a firing alert stays firing after its finding stopped holding.
    pub keep_firing_for: Duration,
    /// Labels added to every alert (row labels win on conflict).
    pub labels: BTreeMap<String, String>,
    /// Annotation templates (`{{ $labels.X }}`, `{{ $value }}`, `{{ $params.X }}`,
    /// `{{ $evidence.X }}`).
    pub annotations: BTreeMap<String, String>,
    /// Named parameters, for `{{ $params.X }}`.
    pub params: BTreeMap<String, Param>,
}

/// What the producer of a finding decided about its series for this window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The condition holds: the alert becomes (or stays) pending or firing.
    Fire,
    /// Between the fire and the clear condition (hysteresis): an alert that exists keeps its
    /// state, none is created.
    Keep,
    /// The condition is over: as if the row were missing.
    Clear,
}

/// One result row of a SQL query (a rule, or a detector's source).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryRow {
    /// Label columns of the row (string rendering of each non-special column).
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// `evidence_*` columns, prefix removed.
    pub evidence: BTreeMap<String, serde_json::Value>,
    /// The `sample_trace_ids` column.
    pub trace_ids: Vec<String>,
    /// The `sample_time` column: when a detector source's sample was taken.
    pub time: Option<EventTime>,
}

/// An alert instance before the lifecycle: a row, under the spec it raises, with its verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub spec: std::sync::Arc<AlertSpec>,
    pub verdict: Verdict,
    /// The series' labels (the spec's labels are added by the alert stage).
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub evidence: BTreeMap<String, serde_json::Value>,
    pub trace_ids: Vec<String>,
}
