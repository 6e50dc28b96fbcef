//! `quantile_over_time`: a quantile of the samples over a sliding time range.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use sketches_ddsketch::{Config as DDSketchConfig, DDSketch};

use super::super::{by_series, Detection, Detector, Sample, SeriesMap};
use super::detection;
use crate::model::{EventTime, Window};

/// `quantile_over_time`: the `quantile` of the samples of the last `range` above
/// `threshold` — exact while a series' samples in the range fit in `max_samples`, else from
/// DDSketches (one per window, merged; 1 % relative error).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantileOverTimeParams {
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

/// `quantile_over_time`: nearest-rank quantile of the exact samples in the range while they
/// fit, else a merge of per-window DDSketches.
pub struct QuantileOverTime {
    cfg: QuantileOverTimeParams,
    series: SeriesMap<QuantileState>,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct QuantileState {
    exact: VecDeque<(EventTime, f64)>,
    /// Start of the newest window whose samples did not all fit in `exact`.
    overflowed: Option<EventTime>,
    /// One sketch per window, by window start.
    sketches: VecDeque<(EventTime, DDSketch)>,
}

impl QuantileOverTime {
    pub fn new(cfg: QuantileOverTimeParams, max: usize) -> Self {
        QuantileOverTime {
            cfg,
            series: SeriesMap::new(max),
        }
    }
}

fn sketch() -> DDSketch {
    DDSketch::new(DDSketchConfig::new(0.01, 2048, 1.0e-9))
}

impl Detector for QuantileOverTime {
    series_state!();

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
