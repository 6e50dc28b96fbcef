//! Rules: one `.sql` file each, a TOML header in its leading `--` comment lines and a
//! `SELECT` over the window's tables. This module loads, checks and plans rule files (once,
//! at load); the [`RuleEngine`] evaluates the plans on each window. Pure: given the same
//! batch, the same findings.
//!
//! ```sql
//! -- id = "request_latency_p95"
//! -- severity = "critical"
//! -- for = "5m"
//! -- [annotations]
//! -- summary = "p95 latency of {{ $labels.service }} is {{ $value }} ms"
//! SELECT service, percentile_cont(duration_ms, 0.95) AS value
//! FROM spans WHERE is_root GROUP BY service
//! HAVING percentile_cont(duration_ms, 0.95) > $latency_p95_ms
//! ```
//!
//! A directory may hold `_defaults.toml` ([`RuleDefaults`]): severity, labels, annotations,
//! `for`, `keep_firing_for` and named parameters for every rule below it; nearer directories
//! and the rule's own header override.

mod condition;
mod engine;
mod load;
mod sandbox;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use condition::Condition;
pub use engine::{plan_rule, EvalLimits, Finding, RuleEngine, RuleFailure};
pub use load::{check_rules, load_rules, parse_rule, rules_stamp};

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

/// `_defaults.toml` of a rule directory: what its rules (and those of its subdirectories)
/// inherit unless they say otherwise.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDefaults {
    /// Default severity.
    pub severity: Option<Severity>,
    /// Default pending duration (`for`).
    #[serde(rename = "for", with = "humantime_serde::option", default)]
    pub for_: Option<Duration>,
    /// Default `keep_firing_for`.
    #[serde(with = "humantime_serde::option", default)]
    pub keep_firing_for: Option<Duration>,
    /// Labels merged into each rule's labels (the rule wins on conflict).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations merged into each rule's annotations (the rule wins on conflict).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Named parameters (`$name` in queries and conditions, `{{ $params.name }}` in
    /// annotations), e.g. thresholds a team overrides without copying the rule.
    #[serde(default)]
    pub params: BTreeMap<String, Param>,
}

/// The header of a rule file: the TOML in its leading `-- ` comment lines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleHeader {
    /// Stable identifier; defaults to the file name without `.sql`.
    pub id: Option<String>,
    /// The `alertname` label; defaults to the id.
    pub alert: Option<String>,
    /// `info`, `warning` or `critical` (here or in a `_defaults.toml`).
    pub severity: Option<Severity>,
    /// Rule group; defaults to the directory the rule is in (e.g. `inference`, `gpu`).
    pub group: Option<String>,
    /// How long the condition must hold (in event time) before the alert fires; `"0s"` fires
    /// at once. Default `"0s"`.
    #[serde(rename = "for", with = "humantime_serde::option", default)]
    pub for_: Option<Duration>,
    /// How long a firing alert stays firing after its condition stopped holding.
    /// Default `"0s"`.
    #[serde(with = "humantime_serde::option", default)]
    pub keep_firing_for: Option<Duration>,
    /// Fire condition on each row, e.g. `"value > 95"` or `"value > $high"`. Without it,
    /// every returned row is active.
    pub fire: Option<String>,
    /// Clear condition for hysteresis, e.g. `"value < 85"`: between `fire` and `clear` an
    /// alert keeps its state. Needs `fire`.
    pub clear: Option<String>,
    /// The span of event time the query sees, a whole multiple of the pipeline's
    /// `window.size` (e.g. `"5m"` over 1-minute windows: the last five windows, evaluated at
    /// the end of each). Default: the pipeline window.
    #[serde(with = "humantime_serde::option", default)]
    pub window: Option<Duration>,
    /// Labels added to every alert of the rule (row columns win on conflict).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations, templated with `{{ $labels.NAME }}`, `{{ $value }}` and
    /// `{{ $params.NAME }}`; `summary` and `description` are what receivers show.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Named parameters, overriding the directory defaults.
    #[serde(default)]
    pub params: BTreeMap<String, Param>,
}

/// A loaded, checked and planned rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub alert: String,
    pub severity: Severity,
    pub group: String,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    pub fire: Option<Condition>,
    pub clear: Option<Condition>,
    /// Event time the query sees; `None`: the pipeline window.
    pub window: Option<Duration>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub params: BTreeMap<String, Param>,
    /// The query, without the header.
    pub sql: String,
    pub path: PathBuf,
    /// 1-based line of the file where the query starts.
    pub sql_line: usize,
}

/// Result columns with a meaning of their own; every other column is a label.
pub mod columns {
    /// The alert's value (numeric, required).
    pub const VALUE: &str = "value";
    /// Trace ids that show the problem (a list of strings, or one string).
    pub const SAMPLE_TRACE_IDS: &str = "sample_trace_ids";
    /// Columns with this prefix go to `evidence.values` without the prefix.
    pub const EVIDENCE_PREFIX: &str = "evidence_";
    /// When a detector source's sample was taken (a timestamp).
    pub const SAMPLE_TIME: &str = "sample_time";
}

#[cfg(test)]
mod tests;
