//! Rules: one `.sql` file each, a TOML header in its leading `--` comment lines and a
//! `SELECT` over the window's tables. This module loads and validates rule files; the
//! [`RuleEngine`] evaluates them. Pure: given the same batch, the same findings.
//!
//! ```sql
//! -- id = "request_latency_p95"
//! -- severity = "critical"
//! -- [annotations]
//! -- summary = "p95 latency of {{ $labels.service }} is {{ $value }} ms"
//! SELECT service, percentile_cont(duration_ms, 0.95) AS value
//! FROM spans WHERE is_root GROUP BY service
//! HAVING percentile_cont(duration_ms, 0.95) > 500
//! ```

mod engine;
mod load;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use engine::{Finding, RuleEngine};
pub use load::{load_rules, parse_rule};

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

/// The header of a rule file: the TOML in its leading `-- ` comment lines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleHeader {
    /// Stable identifier; defaults to the file name without `.sql`.
    pub id: Option<String>,
    /// The `alertname` label; defaults to the id.
    pub alert: Option<String>,
    /// `info`, `warning` or `critical`.
    pub severity: Severity,
    /// Labels added to every alert of the rule (row columns win on conflict).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations, templated with `{{ $labels.NAME }}` and `{{ $value }}`; `summary` and
    /// `description` are what Alertmanager receivers show.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A loaded, validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub alert: String,
    pub severity: Severity,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
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
}

#[cfg(test)]
mod tests;
