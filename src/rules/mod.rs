//! Rules: one `.sql` file each, a TOML header in its leading `--` comment lines and a
//! `SELECT` over the window's tables. This module parses rule files from their text (the
//! loader, `crate::load`, reads them), plans every query once, and the [`RuleEngine`]
//! evaluates the plans on each window, giving each row its rule's `AlertSpec` and its
//! `Verdict` (the rule's `fire`/`clear` conditions). Pure: no I/O, no clock; given the same
//! batch, the same findings. The [`QueryEngine`] also runs the detectors' source queries.
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

mod bound;
mod condition;
mod empty;
mod lean;
mod parse;
mod plans;
mod position;
mod query;
mod rows;
mod sandbox;
mod scan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Result;
use crate::model::Query;
use crate::model::{AlertSpec, AlignedBatch, Finding, Verdict};
use crate::model::{Param, Severity};
pub use condition::Condition;
pub use parse::{bare_query, parse_defaults, parse_rule, parse_rules, rule_error, RuleText};
pub use query::{
    plan_query, plan_unbound, EvalBudget, EvalLimits, Evaluation, ExtraTable, FailureKind,
    QueryEngine, RuleFailure, Unbounded, MAX_SAMPLE_TRACE_IDS,
};

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

/// A parsed and checked rule: the alert it raises, its conditions and its query.
#[derive(Debug, Clone)]
pub struct Rule {
    pub spec: Arc<AlertSpec>,
    pub fire: Option<Condition>,
    pub clear: Option<Condition>,
    pub query: Query,
}

impl Rule {
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// The verdict on one result row's value: `fire` holds → fire; else `clear` holds (or,
    /// without `clear`, `fire` does not) → clear; else (between the two) keep. Without
    /// conditions every row fires.
    pub fn verdict(&self, value: f64) -> Verdict {
        let fires = self.fire.is_none_or(|c| c.holds(value));
        let clears = match (&self.fire, &self.clear) {
            (_, Some(c)) => c.holds(value),
            (Some(_), None) => !fires,
            (None, None) => false,
        };
        if fires {
            Verdict::Fire
        } else if clears {
            Verdict::Clear
        } else {
            Verdict::Keep
        }
    }
}

/// Runs every rule's query on each window and gives each row its rule's spec and verdict.
pub struct RuleEngine {
    rules: Vec<Rule>,
    queries: QueryEngine,
}

impl RuleEngine {
    /// Plans every rule once.
    pub async fn new(rules: Vec<Rule>, limits: EvalLimits) -> Result<Self> {
        let queries =
            QueryEngine::new(rules.iter().map(|r| r.query.clone()).collect(), limits).await?;
        Ok(RuleEngine { rules, queries })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Adds the columns of the window's tables some rule reads to `into`.
    pub fn read_columns(&self, into: &mut crate::tables::ColumnSet) {
        self.queries.read_columns(into);
    }

    /// The tables the rules with a longer `window` read.
    pub fn look_back_tables(&self) -> Vec<String> {
        self.queries.look_back_tables()
    }

    /// Evaluates every rule on one window, in rule order (see [`QueryEngine::evaluate`]).
    pub async fn evaluate(
        &self,
        batch: &AlignedBatch,
        history: &[AlignedBatch],
        budget: &dyn EvalBudget,
    ) -> (Vec<Finding>, Vec<RuleFailure>) {
        let (rows, failures) = self.queries.evaluate(batch, history, budget).await;
        let findings = self
            .rules
            .iter()
            .zip(rows)
            .flat_map(|(rule, rows)| {
                rows.into_iter().map(move |row| Finding {
                    spec: rule.spec.clone(),
                    verdict: rule.verdict(row.value),
                    labels: row.labels,
                    value: row.value,
                    evidence: row.evidence,
                    trace_ids: row.trace_ids,
                })
            })
            .collect();
        (findings, failures)
    }
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
