//! `consecutive`: N samples in a row beyond a threshold.

use serde::Deserialize;
use serde_json::json;

use super::super::{by_series, Detection, Detector, Sample, SeriesMap};
use super::{detection, three};
use crate::model::Window;

/// `consecutive`: active once `samples` samples in a row breach `threshold`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsecutiveParams {
    pub threshold: f64,
    /// How many samples in a row. Default 3.
    #[serde(default = "three")]
    pub samples: u32,
    /// Breach below the threshold instead of above. Default false.
    #[serde(default)]
    pub below: bool,
}

/// `consecutive`.
pub struct Consecutive {
    cfg: ConsecutiveParams,
    /// Breaches in a row and the last value.
    series: SeriesMap<(u32, f64)>,
}

impl Consecutive {
    pub fn new(cfg: ConsecutiveParams, max: usize) -> Self {
        Consecutive {
            cfg,
            series: SeriesMap::new(max),
        }
    }
}

impl Detector for Consecutive {
    series_state!();

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
