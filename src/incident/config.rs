//! `[incidents]` in `pipeline.toml`: how alerts group into incidents and which indicators
//! the root-cause ranking watches.

use std::path::Path;

use serde::Deserialize;

use crate::model::Query;

/// `[incidents]`: alerts that overlap in time and share an entity form one incident; the
/// indicators' robust deviations rank its suspects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentConfig {
    /// Alert labels that name an entity (a service, host, GPU, rank …). Two firing alerts
    /// sharing one of these label values belong to the same incident. Default: `service`,
    /// `service_name`, `host`, `host_name`, `pod`, `gpu`, `rank`, `job`, `caller`, `callee`.
    #[serde(default = "default_entity_labels")]
    pub entity_labels: Vec<String>,
    /// Windows of history kept per (entity, indicator) series for its baseline. Default 30.
    #[serde(default = "default_history")]
    pub history: usize,
    /// Baseline samples a series needs before it can deviate. Default 3.
    #[serde(default = "default_min_history")]
    pub min_history: usize,
    /// Series kept at most; the least recently seen are forgotten first. Default 50 000.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// A deviation (robust units) at or above this makes an entity anomalous: it counts for
    /// the onset and the trace-graph walk. Default 3.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// The ranking says `unknown` (abstains) when the top suspect's score is below
    /// `threshold` or leads the second by less than this fraction of its score. Default 0.1.
    #[serde(default = "default_abstain_margin")]
    pub abstain_margin: f64,
    /// Suspects listed per incident. Default 5.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Windows before an incident opened that still count for its ranking and onset (a
    /// cause often shows before the alert it causes). Default 2.
    #[serde(default = "default_lookback")]
    pub lookback: usize,
    /// The indicators: SQL over each window's tables.
    #[serde(default)]
    pub indicators: Vec<IndicatorConfig>,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            entity_labels: default_entity_labels(),
            history: default_history(),
            min_history: default_min_history(),
            max_series: default_max_series(),
            threshold: default_threshold(),
            abstain_margin: default_abstain_margin(),
            top_k: default_top_k(),
            lookback: default_lookback(),
            indicators: Vec::new(),
        }
    }
}

/// Which way of a deviation is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Higher than the baseline (latency, errors, CPU).
    #[default]
    Up,
    /// Lower than the baseline (throughput, a log line that stopped).
    Down,
    /// Either way.
    Both,
}

/// `[[incidents.indicators]]`: one SQL query whose rows are observations per entity. Its
/// columns: `entity` (the suspect it describes), `indicator` (a name), `value`, and, for
/// an edge of the call graph, `callee` (then `entity` is the caller and the deviation
/// counts for both ends).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndicatorConfig {
    /// Unique name, shown as the evidence's method.
    pub id: String,
    /// The query over the window's tables (`logs`, `metrics`, `spans`, `traces`).
    pub source: String,
    /// Event time the query sees, ending with the evaluated window (e.g. `"5m"`: who took
    /// part lately, so one that went silent is still known); a whole multiple of the
    /// window. Default: the window.
    #[serde(with = "humantime_serde::option", default)]
    pub window: Option<std::time::Duration>,
    /// Which way of a deviation is bad. Default `up`.
    #[serde(default)]
    pub direction: Direction,
    /// Multiplies this indicator's deviations when suspects are scored. Default 1.
    #[serde(default = "one")]
    pub weight: f64,
    /// The smallest robust scale, in the value's unit: a deviation is measured in units of
    /// max(1.4826 · MAD, `relative_floor` · |median|, `floor`). Default 1.
    #[serde(default = "one")]
    pub floor: f64,
    /// See `floor`. Default 0.1.
    #[serde(default = "default_relative_floor")]
    pub relative_floor: f64,
    /// An entity's score on this indicator: the mean of its `top` largest series
    /// deviations (fewer series count as 0). 1 (default): its worst series. More: one
    /// deviating series among many is chance, a broken code path moves several.
    #[serde(default = "one_usize")]
    pub top: usize,
    /// The indicator is a count: a series missing from a window counts as 0 there, instead
    /// of unobserved (as latencies are). Default false.
    #[serde(default)]
    pub zero_when_absent: bool,
}

impl IndicatorConfig {
    /// The source query, written at `line` of `pipeline_toml`.
    pub fn query(&self, pipeline_toml: &Path, line: usize) -> Query {
        Query {
            id: format!("incidents.{}", self.id),
            sql: self.source.clone(),
            params: Default::default(),
            window: self.window,
            path: pipeline_toml.to_path_buf(),
            line,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(format!("indicator {:?}: weight must be > 0", self.id));
        }
        if !(self.floor.is_finite() && self.floor > 0.0) {
            return Err(format!("indicator {:?}: floor must be > 0", self.id));
        }
        if self.top == 0 {
            return Err(format!("indicator {:?}: top must be at least 1", self.id));
        }
        if !(self.relative_floor.is_finite() && self.relative_floor >= 0.0) {
            return Err(format!(
                "indicator {:?}: relative_floor must be >= 0",
                self.id
            ));
        }
        Ok(())
    }
}

impl IncidentConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.history == 0 || self.min_history == 0 || self.min_history > self.history {
            return Err("incidents: need 1 <= min_history <= history".into());
        }
        if self.top_k == 0 || self.max_series == 0 {
            return Err("incidents: top_k and max_series must be at least 1".into());
        }
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err("incidents: threshold must be > 0".into());
        }
        Ok(())
    }
}

fn default_entity_labels() -> Vec<String> {
    [
        "service",
        "service_name",
        "host",
        "host_name",
        "pod",
        "gpu",
        "rank",
        "job",
        "caller",
        "callee",
    ]
    .map(String::from)
    .to_vec()
}
fn default_history() -> usize {
    30
}
fn default_min_history() -> usize {
    3
}
fn default_max_series() -> usize {
    50_000
}
fn default_threshold() -> f64 {
    3.0
}
fn default_abstain_margin() -> f64 {
    0.1
}
fn default_top_k() -> usize {
    5
}
fn default_lookback() -> usize {
    2
}
fn one() -> f64 {
    1.0
}
fn one_usize() -> usize {
    1
}
fn default_relative_floor() -> f64 {
    0.1
}
