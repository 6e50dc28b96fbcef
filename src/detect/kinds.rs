//! The detectors. Each keeps bounded state per series (`SeriesMap`) in event time.

use std::collections::{BTreeMap, VecDeque};

use serde_json::json;
use sketches_ddsketch::{Config as DDSketchConfig, DDSketch};

use super::config::{Burst, Consecutive, EnvDrift, Hysteresis, QuantileOverTime, Silence, ZScore};
use super::{by_series, Detection, Detector, Sample, SeriesMap};
use crate::align::Window;
use crate::model::{duration_nanos, EventTime};

fn detection(
    key: &BTreeMap<String, String>,
    value: f64,
    evidence: Vec<(&str, serde_json::Value)>,
) -> Detection {
    Detection {
        key: key.clone(),
        value,
        labels: BTreeMap::new(),
        rule: 0,
        evidence: evidence
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// `consecutive`.
pub struct ConsecutiveBreaches {
    cfg: Consecutive,
    /// Breaches in a row and the last value.
    series: SeriesMap<(u32, f64)>,
}

impl ConsecutiveBreaches {
    pub fn new(cfg: Consecutive, max: usize) -> Self {
        ConsecutiveBreaches {
            cfg,
            series: SeriesMap::new(max),
        }
    }
}

impl Detector for ConsecutiveBreaches {
    fn observe(&mut self, samples: &[Sample], _window: Window) -> Vec<Detection> {
        for (key, list) in by_series(samples) {
            let at = list.last().expect("non-empty").time;
            let state = self.series.get(key, at);
            for s in list {
                let breach = if self.cfg.below {
                    s.value < self.cfg.threshold
                } else {
                    s.value > self.cfg.threshold
                };
                state.0 = if breach { state.0.saturating_add(1) } else { 0 };
                state.1 = s.value;
            }
        }
        let n = self.cfg.samples;
        self.series
            .iter_mut()
            .filter(|(_, (_, (run, _)))| *run >= n)
            .map(|(k, (_, (run, last)))| detection(k, *last, vec![("consecutive", json!(*run))]))
            .collect()
    }
}

/// `hysteresis`: levels ordered from the lowest; a series is at the highest level it entered
/// (`samples` in a row above `enter`) and has not cleared (a sample below `clear`).
pub struct GradedHysteresis {
    cfg: Hysteresis,
    series: SeriesMap<HysteresisState>,
}

#[derive(Default)]
struct HysteresisState {
    /// Index into the levels, `None` below the lowest.
    level: Option<usize>,
    /// Samples in a row above each level's `enter`.
    runs: Vec<u32>,
    last: f64,
}

impl GradedHysteresis {
    pub fn new(cfg: Hysteresis, max: usize) -> Self {
        GradedHysteresis {
            cfg,
            series: SeriesMap::new(max),
        }
    }
}

impl Detector for GradedHysteresis {
    fn observe(&mut self, samples: &[Sample], _window: Window) -> Vec<Detection> {
        let levels = &self.cfg.levels;
        for (key, list) in by_series(samples) {
            let at = list.last().expect("non-empty").time;
            let st = self.series.get(key, at);
            st.runs.resize(levels.len(), 0);
            for s in list {
                st.last = s.value;
                for (i, l) in levels.iter().enumerate() {
                    st.runs[i] = if s.value > l.enter {
                        st.runs[i].saturating_add(1)
                    } else {
                        0
                    };
                }
                // Clear downwards: leave every level whose clear threshold the value is under.
                while let Some(i) = st.level {
                    if s.value < levels[i].clear {
                        st.level = i.checked_sub(1);
                    } else {
                        break;
                    }
                }
                // Enter upwards: the highest level entered for `samples` in a row.
                if let Some(i) = (0..levels.len())
                    .rev()
                    .find(|&i| st.runs[i] >= self.cfg.samples)
                {
                    if st.level.is_none_or(|cur| i > cur) {
                        st.level = Some(i);
                    }
                }
            }
        }
        self.series
            .iter_mut()
            .filter_map(|(k, (_, st))| {
                let i = st.level?;
                let mut d = detection(
                    k,
                    st.last,
                    vec![
                        ("level", json!(levels[i].name)),
                        ("enter", json!(levels[i].enter)),
                        ("clear", json!(levels[i].clear)),
                    ],
                );
                d.rule = i;
                Some(d)
            })
            .collect()
    }
}

/// `silence`: per series the last sample time and an EWMA of the interval between samples.
pub struct Heartbeat {
    cfg: Silence,
    /// Last sample time, learned interval, samples seen.
    series: SeriesMap<(Option<EventTime>, Option<f64>, u32)>,
}

impl Heartbeat {
    pub fn new(cfg: Silence, max: usize) -> Self {
        Heartbeat {
            cfg,
            series: SeriesMap::new(max),
        }
    }
}

impl Detector for Heartbeat {
    fn observe(&mut self, samples: &[Sample], window: Window) -> Vec<Detection> {
        for (key, list) in by_series(samples) {
            let at = list.last().expect("non-empty").time;
            let (last, interval, seen) = self.series.get(key, at);
            for s in list {
                *seen = seen.saturating_add(1);
                if let Some(prev) = *last {
                    let gap = (s.time.0 - prev.0) as f64;
                    if gap > 0.0 {
                        *interval = Some(match *interval {
                            Some(i) => 0.8 * i + 0.2 * gap,
                            None => gap,
                        });
                    }
                }
                *last = Some(last.map_or(s.time, |l| l.max(s.time)));
            }
        }
        let now = window.end;
        let forget = duration_nanos(self.cfg.forget_after);
        self.series
            .retain(|(_, (last, _, _))| last.is_some_and(|l| now.0 - l.0 <= forget));
        let timeout = duration_nanos(self.cfg.timeout) as f64;
        let factor = self.cfg.interval_factor;
        self.series
            .iter_mut()
            .filter_map(|(k, (_, (last, interval, seen)))| {
                let last = (*last)?;
                if *seen < self.cfg.min_samples {
                    return None;
                }
                let silent = (now.0 - last.0) as f64;
                let limit = timeout.max(interval.map_or(0.0, |i| i * factor));
                (silent > limit).then(|| {
                    detection(
                        k,
                        silent / 1e9,
                        vec![
                            ("last_seen", json!(last.to_rfc3339())),
                            ("silent_seconds", json!(silent / 1e9)),
                            ("limit_seconds", json!(limit / 1e9)),
                        ],
                    )
                })
            })
            .collect()
    }
}

/// `zscore`.
pub struct ZScoreDetector {
    cfg: ZScore,
    /// Count, mean, variance, z of the last sample.
    series: SeriesMap<(u32, f64, f64, f64, f64)>,
}

impl ZScoreDetector {
    pub fn new(cfg: ZScore, max: usize) -> Self {
        ZScoreDetector {
            cfg,
            series: SeriesMap::new(max),
        }
    }
}

impl Detector for ZScoreDetector {
    fn observe(&mut self, samples: &[Sample], _window: Window) -> Vec<Detection> {
        let a = self.cfg.alpha;
        for (key, list) in by_series(samples) {
            let at = list.last().expect("non-empty").time;
            let (n, mean, var, z, last) = self.series.get(key, at);
            for s in list {
                let x = s.value;
                *z = if *n >= self.cfg.warmup && *var > 0.0 {
                    (x - *mean) / var.sqrt()
                } else {
                    0.0
                };
                *last = x;
                if *n == 0 {
                    *mean = x;
                } else {
                    let d = x - *mean;
                    *mean += a * d;
                    *var = (1.0 - a) * (*var + a * d * d);
                }
                *n = n.saturating_add(1);
            }
        }
        let t = self.cfg.threshold;
        self.series
            .iter_mut()
            .filter(|(_, (_, (_, _, _, z, _)))| z.abs() > t)
            .map(|(k, (_, (_, mean, var, z, last)))| {
                detection(
                    k,
                    *last,
                    vec![
                        ("z", json!(*z)),
                        ("mean", json!(*mean)),
                        ("stddev", json!(var.sqrt())),
                    ],
                )
            })
            .collect()
    }
}

/// `quantile_over_time`: nearest-rank quantile of the exact samples in the range while they
/// fit, else a merge of per-window DDSketches.
pub struct QuantileWindow {
    cfg: QuantileOverTime,
    series: SeriesMap<QuantileState>,
}

#[derive(Default)]
struct QuantileState {
    exact: VecDeque<(EventTime, f64)>,
    /// Start of the newest window whose samples did not all fit in `exact`.
    overflowed: Option<EventTime>,
    /// One sketch per window, by window start.
    sketches: VecDeque<(EventTime, DDSketch)>,
}

impl QuantileWindow {
    pub fn new(cfg: QuantileOverTime, max: usize) -> Self {
        QuantileWindow {
            cfg,
            series: SeriesMap::new(max),
        }
    }
}

fn sketch() -> DDSketch {
    DDSketch::new(DDSketchConfig::new(0.01, 2048, 1.0e-9))
}

impl Detector for QuantileWindow {
    fn observe(&mut self, samples: &[Sample], window: Window) -> Vec<Detection> {
        for (key, list) in by_series(samples) {
            let at = list.last().expect("non-empty").time;
            let st = self.series.get(key, at);
            if st.sketches.back().is_none_or(|(s, _)| *s != window.start) {
                st.sketches.push_back((window.start, sketch()));
            }
            let current = &mut st.sketches.back_mut().expect("pushed").1;
            for s in list {
                current.add(s.value);
                if st.exact.len() < self.cfg.max_samples {
                    st.exact.push_back((s.time, s.value));
                } else {
                    st.overflowed = Some(window.start);
                }
            }
        }
        let from = window.end.saturating_sub(self.cfg.range);
        let q = self.cfg.quantile;
        let mut out = Vec::new();
        for (k, (_, st)) in self.series.iter_mut() {
            while st.exact.front().is_some_and(|(t, _)| *t < from) {
                st.exact.pop_front();
            }
            while st.sketches.front().is_some_and(|(s, _)| *s < from) {
                st.sketches.pop_front();
            }
            if st.overflowed.is_some_and(|o| o < from) {
                st.overflowed = None;
            }
            let (value, n, method) = if st.overflowed.is_some() {
                let mut merged = sketch();
                for (_, s) in &st.sketches {
                    let _ = merged.merge(s);
                }
                let v = merged.quantile(q).ok().flatten();
                (v, merged.count(), "ddsketch")
            } else {
                let mut values: Vec<f64> = st.exact.iter().map(|(_, v)| *v).collect();
                values.sort_by(f64::total_cmp);
                let v = (!values.is_empty()).then(|| {
                    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
                    values[rank - 1]
                });
                (v, values.len(), "exact")
            };
            if let Some(v) = value.filter(|v| *v > self.cfg.threshold) {
                out.push(detection(
                    k,
                    v,
                    vec![("samples", json!(n)), ("method", json!(method))],
                ));
            }
        }
        self.series
            .retain(|(_, st)| !st.exact.is_empty() || !st.sketches.is_empty());
        out
    }
}

/// `burst`: the window's value against an EWMA baseline of earlier windows.
pub struct BurstDetector {
    cfg: Burst,
    /// Baseline, windows seen, this window's value.
    series: SeriesMap<(f64, u32, Option<f64>)>,
    /// Windows observed by the detector.
    windows: u32,
}

impl BurstDetector {
    pub fn new(cfg: Burst, max: usize) -> Self {
        BurstDetector {
            cfg,
            series: SeriesMap::new(max),
            windows: 0,
        }
    }
}

impl Detector for BurstDetector {
    fn observe(&mut self, samples: &[Sample], _window: Window) -> Vec<Detection> {
        for (_, (_, (_, _, current))) in self.series.iter_mut() {
            *current = None;
        }
        for (key, list) in by_series(samples) {
            let at = list.last().expect("non-empty").time;
            let value: f64 = list.iter().map(|s| s.value).sum();
            self.series.get(key, at).2 = Some(value);
        }
        let mut out = Vec::new();
        let new_counts = self
            .cfg
            .new_series_after_windows
            .is_some_and(|after| self.windows >= after);
        self.windows = self.windows.saturating_add(1);
        for (k, (_, (baseline, seen, current))) in self.series.iter_mut() {
            let v = current.unwrap_or(0.0);
            let burst = if *seen == 0 {
                new_counts && v >= self.cfg.min_count
            } else {
                v >= self.cfg.min_count && v > self.cfg.factor * *baseline
            };
            if burst {
                let new = json!(*seen == 0);
                out.push(detection(
                    k,
                    v,
                    vec![("baseline", json!(*baseline)), ("new", new)],
                ));
            }
            *baseline = if *seen == 0 {
                v
            } else {
                (1.0 - self.cfg.alpha) * *baseline + self.cfg.alpha * v
            };
            *seen = seen.saturating_add(1);
        }
        out
    }
}

/// `env_drift`: per process, the last snapshot of its variables.
pub struct EnvDriftDetector {
    cfg: EnvDrift,
    /// Variable -> (value text, secret) of the last snapshot.
    series: SeriesMap<BTreeMap<String, (String, bool)>>,
}

impl EnvDriftDetector {
    pub fn new(cfg: EnvDrift, max: usize) -> Self {
        EnvDriftDetector {
            cfg,
            series: SeriesMap::new(max),
        }
    }
}

fn evidence_text(s: &Sample, name: &str) -> String {
    match s.evidence.get(name) {
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

impl Detector for EnvDriftDetector {
    fn observe(&mut self, samples: &[Sample], _window: Window) -> Vec<Detection> {
        // Process key -> snapshot time -> variables.
        type Snapshot = BTreeMap<String, (String, bool)>;
        let mut processes: BTreeMap<BTreeMap<String, String>, BTreeMap<EventTime, Snapshot>> =
            BTreeMap::new();
        for s in samples {
            let mut process = s.key.clone();
            let Some(variable) = process.remove("variable") else {
                continue;
            };
            let secret = evidence_text(s, "secret") == "true";
            processes
                .entry(process)
                .or_default()
                .entry(s.time)
                .or_default()
                .insert(variable, (evidence_text(s, "text"), secret));
        }
        let mut out = Vec::new();
        let report = |out: &mut Vec<Detection>,
                      process: &BTreeMap<String, String>,
                      var: &str,
                      problem: &str,
                      value: f64,
                      ev: Vec<(&str, serde_json::Value)>| {
            let mut d = detection(process, value, ev);
            d.labels.insert("variable".into(), var.to_string());
            d.labels.insert("problem".into(), problem.to_string());
            out.push(d);
        };
        for (process, snapshots) in processes {
            let at = *snapshots.keys().next_back().expect("non-empty");
            let last = self.series.get(&process, at);
            for (_, snap) in snapshots {
                if !last.is_empty() {
                    for (var, (old, _)) in last.iter() {
                        match snap.get(var) {
                            None => report(
                                &mut out,
                                &process,
                                var,
                                "disappeared",
                                1.0,
                                vec![("last_value", json!(old))],
                            ),
                            Some((new, _)) if new != old => report(
                                &mut out,
                                &process,
                                var,
                                "changed",
                                1.0,
                                vec![("old_value", json!(old)), ("new_value", json!(new))],
                            ),
                            Some(_) => {}
                        }
                    }
                }
                *last = snap;
            }
            for (var, (text, secret)) in last.iter() {
                if *secret {
                    report(
                        &mut out,
                        &process,
                        var,
                        "secret_in_plaintext",
                        1.0,
                        vec![("value", json!(text))],
                    );
                }
                if let Some([lo, hi]) = self.cfg.ranges.get(var) {
                    match text.trim().parse::<f64>() {
                        Ok(v) if v < *lo || v > *hi => report(
                            &mut out,
                            &process,
                            var,
                            "out_of_range",
                            v,
                            vec![("min", json!(lo)), ("max", json!(hi))],
                        ),
                        Ok(_) => {}
                        Err(_) => report(
                            &mut out,
                            &process,
                            var,
                            "out_of_range",
                            0.0,
                            vec![
                                ("value", json!(text)),
                                ("min", json!(lo)),
                                ("max", json!(hi)),
                            ],
                        ),
                    }
                }
            }
        }
        // One detection per (process, variable, problem): a change and a disappearance in
        // one window are both kept; repeats of the same are merged.
        out.sort_by(|a, b| (&a.key, &a.labels).cmp(&(&b.key, &b.labels)));
        out.dedup_by(|a, b| a.key == b.key && a.labels == b.labels);
        out
    }
}
