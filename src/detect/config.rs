//! `[[detectors]]` in `pipeline.toml`: the fields every detector has, and `kind` with that
//! kind's parameters (defined beside each detector in `kinds/`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::kinds::{
    Burst, BurstParams, Consecutive, ConsecutiveParams, EnvDrift, EnvDriftParams, Hysteresis,
    HysteresisParams, QuantileOverTime, QuantileOverTimeParams, Silence, SilenceParams, ZScore,
    ZScoreParams,
};
use super::Detector;
use crate::model::{AlertSpec, Query, Severity};

/// One detector: a SQL source and what to detect in its series.
///
/// The `query` returns one row per sample: label columns (the series key), `value` and
/// optionally `sample_time` (default: the window end). `kind` names the detector; its
/// parameters sit beside the other fields:
///
/// ```toml
/// [[detectors]]
/// id = "rank_silence"
/// kind = "silence"
/// timeout = "30s"
/// query = "SELECT host, time AS sample_time, 1.0 AS value FROM logs"
/// ```
///
/// Unknown fields are rejected by the kind's parameters (`serde(flatten)` rules out
/// `deny_unknown_fields` here).
#[derive(Debug, Clone, Deserialize)]
pub struct DetectorConfig {
    /// Stable identifier (the alerts' `rule_id`).
    pub id: String,
    /// The `alertname` label; default the id.
    pub alert: Option<String>,
    /// Severity of its alerts (hysteresis levels set their own). Default `warning`.
    #[serde(default = "default_severity")]
    pub severity: Severity,
    /// The source query over the window's tables.
    pub query: String,
    /// Pending duration before an active series fires. Default `"0s"`.
    #[serde(rename = "for", with = "humantime_serde", default)]
    pub for_: Duration,
    /// How long an alert keeps firing after the series stopped being active. Default `"0s"`.
    #[serde(with = "humantime_serde", default)]
    pub keep_firing_for: Duration,
    /// Labels added to its alerts.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (`{{ $labels.X }}`, `{{ $value }}`, `{{ $evidence.X }}`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Most series it keeps state for; beyond, the least recently updated is forgotten.
    /// Default 100000.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// `kind` and its parameters.
    #[serde(flatten)]
    pub kind: DetectorKind,
}

/// Which detector, with its parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DetectorKind {
    /// N consecutive samples above (or below) a threshold.
    Consecutive(ConsecutiveParams),
    /// Graded levels, each with enter and clear thresholds.
    Hysteresis(HysteresisParams),
    /// A series that was arriving goes quiet.
    Silence(SilenceParams),
    /// |z| of a sample against the series' EWMA mean and variance.
    #[serde(rename = "zscore")]
    ZScore(ZScoreParams),
    /// A quantile of the samples over a sliding time range.
    QuantileOverTime(QuantileOverTimeParams),
    /// A count per window far above its learned baseline.
    Burst(BurstParams),
    /// Drift between consecutive environment snapshots (`faultline agent env`).
    EnvDrift(EnvDriftParams),
}

fn default_severity() -> Severity {
    Severity::Warning
}
fn default_max_series() -> usize {
    100_000
}

impl DetectorConfig {
    /// Checks what the types cannot: an error message naming the detector.
    pub fn validate(&self) -> Result<(), String> {
        let fail = |m: &str| Err(format!("detector {:?}: {m}", self.id));
        match &self.kind {
            DetectorKind::Hysteresis(h) if h.levels.is_empty() => fail("hysteresis needs levels"),
            DetectorKind::Hysteresis(h) if h.levels.iter().any(|l| l.clear > l.enter) => {
                fail("a level's clear is above its enter")
            }
            DetectorKind::QuantileOverTime(q) if !(0.0..=1.0).contains(&q.quantile) => {
                fail("quantile must be within 0..1")
            }
            _ => Ok(()),
        }
    }

    /// The detector itself (the config was validated with [`DetectorConfig::validate`]).
    pub fn build(&self) -> Box<dyn Detector> {
        let max = self.max_series;
        match &self.kind {
            DetectorKind::Consecutive(p) => Box::new(Consecutive::new(p.clone(), max)),
            DetectorKind::Hysteresis(p) => Box::new(Hysteresis::new(p.clone(), max)),
            DetectorKind::Silence(p) => Box::new(Silence::new(p.clone(), max)),
            DetectorKind::ZScore(p) => Box::new(ZScore::new(p.clone(), max)),
            DetectorKind::QuantileOverTime(p) => Box::new(QuantileOverTime::new(p.clone(), max)),
            DetectorKind::Burst(p) => Box::new(Burst::new(p.clone(), max)),
            DetectorKind::EnvDrift(p) => Box::new(EnvDrift::new(p.clone(), max)),
        }
    }

    /// The source query, written at `line` of `pipeline_toml`.
    pub fn source(&self, pipeline_toml: &Path, line: usize) -> Query {
        Query {
            id: self.id.clone(),
            sql: self.query.clone(),
            params: BTreeMap::new(),
            window: None,
            path: pipeline_toml.to_path_buf(),
            line,
        }
    }

    fn spec(&self, severity: Severity, labels: BTreeMap<String, String>) -> Arc<AlertSpec> {
        Arc::new(AlertSpec {
            id: self.id.clone(),
            alert: self.alert.clone().unwrap_or_else(|| self.id.clone()),
            severity,
            group: "detectors".into(),
            for_: self.for_,
            keep_firing_for: self.keep_firing_for,
            labels,
            annotations: self.annotations.clone(),
            params: BTreeMap::new(),
        })
    }

    /// The alerts its detections raise: one per hysteresis level (with that level's
    /// severity and `level`/`action` labels), else one.
    pub fn alert_specs(&self) -> Vec<Arc<AlertSpec>> {
        match &self.kind {
            DetectorKind::Hysteresis(h) => h
                .levels
                .iter()
                .map(|l| {
                    let mut labels = self.labels.clone();
                    labels.insert("level".into(), l.name.clone());
                    if let Some(a) = &l.action {
                        labels.insert("action".into(), a.clone());
                    }
                    self.spec(l.severity, labels)
                })
                .collect(),
            _ => vec![self.spec(self.severity, self.labels.clone())],
        }
    }
}
