//! Sliding-window detectors: stateful patterns that are clumsy in SQL — N consecutive
//! breaches, graded hysteresis, silence of a series, z-score against a learned baseline,
//! quantiles over a time range, bursts. Each detector reads the rows of a SQL *source* query
//! (key columns, `sample_time`, `value`) per window, keeps state per key in event time, and
//! reports active series as findings that fire, under the detector's own `AlertSpec`s, so
//! they go through the same alert lifecycle as SQL rules without posing as rules.
//!
//! Pure and deterministic: no I/O, no wall clock; state is bounded per detector
//! (`max_series`, least recently updated series evicted first).

mod config;
pub mod kinds;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use config::{DetectorConfig, DetectorKind};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::saved::{self, Saved};
use crate::model::{AlertSpec, EventTime, Finding, QueryRow, Verdict, Window};

/// One sample of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub key: BTreeMap<String, String>,
    pub time: EventTime,
    pub value: f64,
    /// The source row's `evidence_*` columns (e.g. a text value for `env_drift`).
    pub evidence: BTreeMap<String, serde_json::Value>,
}

/// What a detector reports for one series at the end of a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub key: BTreeMap<String, String>,
    pub value: f64,
    /// Extra labels (e.g. the hysteresis level) — they become part of the alert identity.
    pub labels: BTreeMap<String, String>,
    /// Which of the detector's alerts (hysteresis levels) this is; 0 for single-level
    /// detectors.
    pub level: usize,
    pub evidence: BTreeMap<String, serde_json::Value>,
}

/// A stateful detector. Pure: no I/O, no wall clock.
pub trait Detector: Send {
    /// Feeds the samples of one window (any order) and returns the series that are active
    /// at its end.
    fn observe(&mut self, samples: &[Sample], window: Window) -> Vec<Detection>;

    /// The detector's state (per-series counters, baselines, samples) for a checkpoint.
    fn save(&self) -> Saved;

    /// Takes back a saved state; an error leaves the detector as it was.
    fn restore(&mut self, state: Saved) -> Result<(), String>;

    /// Series it keeps state for now (for the metrics).
    fn series(&self) -> usize;
}

/// A detector with the alerts (one per level) it reports under.
struct Installed {
    detector: Box<dyn Detector>,
    specs: Vec<Arc<AlertSpec>>,
}

impl Installed {
    /// The detector's id (its specs share it).
    fn id(&self) -> &str {
        self.specs.first().map_or("", |s| s.id.as_str())
    }
}

/// The detectors of one shard.
pub struct DetectorSet {
    detectors: Vec<Installed>,
}

impl DetectorSet {
    /// Series kept by all detectors.
    pub fn series(&self) -> usize {
        self.detectors.iter().map(|d| d.detector.series()).sum()
    }

    /// Each detector's state under its id, for a checkpoint.
    pub fn save(&self) -> Vec<(String, Saved)> {
        self.detectors
            .iter()
            .map(|d| (d.id().to_string(), d.detector.save()))
            .collect()
    }

    /// Takes back saved states by detector id: a detector no longer configured is skipped,
    /// a new one starts empty. Errors name the detectors whose state did not fit.
    pub fn restore(&mut self, saved: Vec<(String, Saved)>) -> Result<(), String> {
        let mut errors = Vec::new();
        for (id, state) in saved {
            if let Some(d) = self.detectors.iter_mut().find(|d| d.id() == id) {
                if let Err(e) = d.detector.restore(state) {
                    errors.push(format!("detector {id}: {e}"));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    pub fn new(configs: &[DetectorConfig]) -> Self {
        DetectorSet {
            detectors: configs
                .iter()
                .map(|c| Installed {
                    detector: c.build(),
                    specs: c.alert_specs(),
                })
                .collect(),
        }
    }

    /// Feeds each detector the rows of its source (`rows[i]` for detector `i`, in config
    /// order) and returns the active series as findings that fire.
    pub fn observe(&mut self, rows: &[Vec<QueryRow>], window: Window) -> Vec<Finding> {
        let mut out = Vec::new();
        for (Installed { detector, specs }, rows) in self.detectors.iter_mut().zip(rows) {
            let samples: Vec<Sample> = rows
                .iter()
                .map(|r| Sample {
                    key: r.labels.clone(),
                    time: r.time.unwrap_or(window.end),
                    value: r.value,
                    evidence: r.evidence.clone(),
                })
                .collect();
            for d in detector.observe(&samples, window) {
                let mut labels = d.key;
                labels.extend(d.labels);
                out.push(Finding {
                    spec: specs[d.level.min(specs.len() - 1)].clone(),
                    verdict: Verdict::Fire,
                    labels,
                    value: d.value,
                    evidence: d.evidence,
                    trace_ids: Vec::new(),
                });
            }
        }
        out
    }
}

/// Bounded per-series state: at most `max` series; inserting beyond evicts the least recently
/// updated one.
pub(crate) struct SeriesMap<S> {
    max: usize,
    series: BTreeMap<BTreeMap<String, String>, (EventTime, S)>,
    pub evicted: u64,
}

impl<S: Default> SeriesMap<S> {
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn new(max: usize) -> Self {
        SeriesMap {
            max: max.max(1),
            series: BTreeMap::new(),
            evicted: 0,
        }
    }

    pub fn get(&mut self, key: &BTreeMap<String, String>, at: EventTime) -> &mut S {
        if !self.series.contains_key(key) && self.series.len() >= self.max {
            let oldest = self
                .series
                .iter()
                .min_by_key(|(k, (t, _))| (*t, (*k).clone()))
                .map(|(k, _)| k.clone())
                .expect("non-empty");
            self.series.remove(&oldest);
            self.evicted += 1;
        }
        let entry = self
            .series
            .entry(key.clone())
            .or_insert_with(|| (at, S::default()));
        entry.0 = entry.0.max(at);
        &mut entry.1
    }

    pub fn iter_mut(
        &mut self,
    ) -> impl Iterator<Item = (&BTreeMap<String, String>, &mut (EventTime, S))> {
        self.series.iter_mut()
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&(EventTime, S)) -> bool) {
        self.series.retain(|_, v| keep(v));
    }
}

impl<S: Serialize + DeserializeOwned> SeriesMap<S> {
    /// The series and the eviction count (the bound comes from the configuration).
    pub fn save(&self) -> Saved {
        saved::save(&(&self.series, self.evicted))
    }

    pub fn restore(&mut self, state: Saved) -> Result<(), String> {
        (self.series, self.evicted) = saved::load(state)?;
        Ok(())
    }
}

/// Samples grouped by series, each in time order.
pub(crate) fn by_series(samples: &[Sample]) -> BTreeMap<&BTreeMap<String, String>, Vec<&Sample>> {
    let mut out: BTreeMap<&BTreeMap<String, String>, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        out.entry(&s.key).or_default().push(s);
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.time.cmp(&b.time).then(a.value.total_cmp(&b.value)));
    }
    out
}

#[cfg(test)]
mod tests;
