//! `[[detectors]]` in `pipeline.toml`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::kinds;
use super::Detector;
use crate::rules::{Rule, Severity};

/// One detector: a SQL source and what to detect in its series.
///
/// The `query` returns one row per sample: label columns (the series key), `value` and
/// optionally `sample_time` (default: the window end). Exactly one of the detector tables
/// (`consecutive`, `hysteresis`, `silence`, `zscore`, `quantile_over_time`, `burst`) is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// N consecutive samples above (or below) a threshold.
    pub consecutive: Option<Consecutive>,
    /// Graded levels, each with enter and clear thresholds.
    pub hysteresis: Option<Hysteresis>,
    /// A series that was arriving goes quiet.
    pub silence: Option<Silence>,
    /// |z| of a sample against the series' EWMA mean and variance.
    pub zscore: Option<ZScore>,
    /// A quantile of the samples over a sliding time range.
    pub quantile_over_time: Option<QuantileOverTime>,
    /// A count per window far above its learned baseline.
    pub burst: Option<Burst>,
    /// Drift between consecutive environment snapshots (`faultline agent env`).
    pub env_drift: Option<EnvDrift>,
}

/// `env_drift`: the source returns one row per variable per snapshot (rows of a snapshot
/// share `sample_time`) with a `variable` label, `evidence_text` (the value, redacted by the
/// agent for secrets) and `evidence_secret` (`"true"` for a secret); the other labels identify
/// the process. Reported per variable with a `problem` label: `disappeared`, `changed`
/// (once, in the window it happened), `out_of_range`, `secret_in_plaintext` (while true).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvDrift {
    /// Numeric ranges, e.g. `{ APP_BATCH_SIZE = [1, 512] }`.
    #[serde(default)]
    pub ranges: BTreeMap<String, [f64; 2]>,
}

fn default_severity() -> Severity {
    Severity::Warning
}
fn default_max_series() -> usize {
    100_000
}

/// `consecutive`: active once `samples` samples in a row breach `threshold`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consecutive {
    pub threshold: f64,
    /// How many samples in a row. Default 3.
    #[serde(default = "three")]
    pub samples: u32,
    /// Breach below the threshold instead of above. Default false.
    #[serde(default)]
    pub below: bool,
}

fn three() -> u32 {
    3
}

/// One hysteresis level.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    /// Name, e.g. `warning`, `throttle`, `shed`: the `level` label.
    pub name: String,
    /// Enter when `samples` samples in a row are above this.
    pub enter: f64,
    /// Leave when a sample is below this.
    pub clear: f64,
    /// Severity of this level's alert.
    pub severity: Severity,
    /// What to do, e.g. `notify`, `lower batch size`: the `action` label.
    #[serde(default)]
    pub action: Option<String>,
}

/// `hysteresis`: graded levels, ordered from the lowest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hysteresis {
    pub levels: Vec<Level>,
    /// Samples in a row above a level's `enter` to enter it. Default 3.
    #[serde(default = "three")]
    pub samples: u32,
}

/// `silence`: active when a series has not delivered for longer than `timeout`, or than
/// `interval_factor` times its learned interval when that is longer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    /// Default `"30s"`.
    #[serde(with = "humantime_serde", default = "thirty_seconds")]
    pub timeout: Duration,
    /// Multiple of the learned interval between samples. Default 3.
    #[serde(default = "three_f")]
    pub interval_factor: f64,
    /// Samples a series must have delivered before its silence counts (it was arriving
    /// regularly). Default 3.
    #[serde(default = "three")]
    pub min_samples: u32,
    /// A series silent this long is forgotten (no longer reported). Default `"1h"`.
    #[serde(with = "humantime_serde", default = "one_hour")]
    pub forget_after: Duration,
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
fn one_hour() -> Duration {
    Duration::from_secs(3600)
}
fn three_f() -> f64 {
    3.0
}

/// `zscore`: EWMA mean and variance per series; active when |z| of the last sample exceeds
/// `threshold` after `warmup` samples.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZScore {
    /// Default 3.
    #[serde(default = "three_f")]
    pub threshold: f64,
    /// EWMA weight of a new sample, 0..1. Default 0.1.
    #[serde(default = "tenth")]
    pub alpha: f64,
    /// Samples before it may fire. Default 10.
    #[serde(default = "ten")]
    pub warmup: u32,
}

fn tenth() -> f64 {
    0.1
}
fn ten() -> u32 {
    10
}

/// `quantile_over_time`: the `quantile` of the samples of the last `range` above
/// `threshold` — exact while a series' samples in the range fit in `max_samples`, else from
/// DDSketches (one per window, merged; 1 % relative error).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantileOverTime {
    pub quantile: f64,
    #[serde(with = "humantime_serde")]
    pub range: Duration,
    pub threshold: f64,
    /// Samples per series kept exactly. Default 10000.
    #[serde(default = "ten_thousand")]
    pub max_samples: usize,
}

fn ten_thousand() -> usize {
    10_000
}

/// `burst`: the value (a count per window, e.g. of an error signature) above `factor` times
/// its EWMA baseline and at least `min_count`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// Default 3.
    #[serde(default = "three_f")]
    pub factor: f64,
    /// Default 10.
    #[serde(default = "ten_f")]
    pub min_count: f64,
    /// EWMA weight of a new window. Default 0.2.
    #[serde(default = "fifth")]
    pub alpha: f64,
    /// Also a burst: a series never seen before whose first window reaches `min_count`
    /// (a new error template arriving in bulk; with `min_count = 1`, any new template) —
    /// once the detector has seen this many windows, so that what exists at start-up is not
    /// "new". Unset (default): a series needs one window of baseline first.
    #[serde(default)]
    pub new_series_after_windows: Option<u32>,
}

fn ten_f() -> f64 {
    10.0
}
fn fifth() -> f64 {
    0.2
}

/// Which detector a config declares.
#[derive(Debug, Clone)]
pub enum DetectorKindConfig<'a> {
    Consecutive(&'a Consecutive),
    Hysteresis(&'a Hysteresis),
    Silence(&'a Silence),
    ZScore(&'a ZScore),
    QuantileOverTime(&'a QuantileOverTime),
    Burst(&'a Burst),
    EnvDrift(&'a EnvDrift),
}

impl DetectorConfig {
    /// The one detector table set, or an error naming the problem.
    pub fn kind(&self) -> Result<DetectorKindConfig<'_>, String> {
        let mut kinds = Vec::new();
        if let Some(c) = &self.consecutive {
            kinds.push(DetectorKindConfig::Consecutive(c));
        }
        if let Some(c) = &self.hysteresis {
            if c.levels.is_empty() {
                return Err(format!("detector {:?}: hysteresis needs levels", self.id));
            }
            if c.levels.iter().any(|l| l.clear > l.enter) {
                return Err(format!(
                    "detector {:?}: a level's clear is above its enter",
                    self.id
                ));
            }
            kinds.push(DetectorKindConfig::Hysteresis(c));
        }
        if let Some(c) = &self.silence {
            kinds.push(DetectorKindConfig::Silence(c));
        }
        if let Some(c) = &self.zscore {
            kinds.push(DetectorKindConfig::ZScore(c));
        }
        if let Some(c) = &self.quantile_over_time {
            if !(0.0..=1.0).contains(&c.quantile) {
                return Err(format!(
                    "detector {:?}: quantile must be within 0..1",
                    self.id
                ));
            }
            kinds.push(DetectorKindConfig::QuantileOverTime(c));
        }
        if let Some(c) = &self.burst {
            kinds.push(DetectorKindConfig::Burst(c));
        }
        if let Some(c) = &self.env_drift {
            kinds.push(DetectorKindConfig::EnvDrift(c));
        }
        match kinds.len() {
            1 => Ok(kinds.remove(0)),
            0 => Err(format!(
                "detector {:?} declares no detector: set one of consecutive, hysteresis, silence, zscore, quantile_over_time, burst, env_drift",
                self.id
            )),
            _ => Err(format!("detector {:?} declares more than one detector", self.id)),
        }
    }

    /// The detector itself (the config was validated with [`DetectorConfig::kind`]).
    pub fn build(&self) -> Box<dyn Detector> {
        let max = self.max_series;
        match self.kind().expect("validated at load") {
            DetectorKindConfig::Consecutive(c) => {
                Box::new(kinds::ConsecutiveBreaches::new(c.clone(), max))
            }
            DetectorKindConfig::Hysteresis(c) => {
                Box::new(kinds::GradedHysteresis::new(c.clone(), max))
            }
            DetectorKindConfig::Silence(c) => Box::new(kinds::Heartbeat::new(c.clone(), max)),
            DetectorKindConfig::ZScore(c) => Box::new(kinds::ZScoreDetector::new(c.clone(), max)),
            DetectorKindConfig::QuantileOverTime(c) => {
                Box::new(kinds::QuantileWindow::new(c.clone(), max))
            }
            DetectorKindConfig::Burst(c) => Box::new(kinds::BurstDetector::new(c.clone(), max)),
            DetectorKindConfig::EnvDrift(c) => {
                Box::new(kinds::EnvDriftDetector::new(c.clone(), max))
            }
        }
    }

    fn rule(
        &self,
        pipeline_toml: &Path,
        severity: Severity,
        labels: BTreeMap<String, String>,
    ) -> Rule {
        Rule {
            id: self.id.clone(),
            alert: self.alert.clone().unwrap_or_else(|| self.id.clone()),
            severity,
            group: "detectors".into(),
            for_: self.for_,
            keep_firing_for: self.keep_firing_for,
            fire: None,
            clear: None,
            window: None,
            labels,
            annotations: self.annotations.clone(),
            params: BTreeMap::new(),
            sql: self.query.clone(),
            path: pipeline_toml.to_path_buf(),
            sql_line: 1,
        }
    }

    /// The source query as a rule the engine evaluates (its rows are samples).
    pub fn source_rule(&self, pipeline_toml: &Path) -> Rule {
        self.rule(pipeline_toml, self.severity, BTreeMap::new())
    }

    /// The rules its detections are reported under: one per hysteresis level (with that
    /// level's severity and `level`/`action` labels), else one.
    pub fn alert_rules(&self, pipeline_toml: &Path) -> Vec<Arc<Rule>> {
        match &self.hysteresis {
            Some(h) => h
                .levels
                .iter()
                .map(|l| {
                    let mut labels = self.labels.clone();
                    labels.insert("level".into(), l.name.clone());
                    if let Some(a) = &l.action {
                        labels.insert("action".into(), a.clone());
                    }
                    Arc::new(self.rule(pipeline_toml, l.severity, labels))
                })
                .collect(),
            None => vec![Arc::new(self.rule(
                pipeline_toml,
                self.severity,
                self.labels.clone(),
            ))],
        }
    }
}
