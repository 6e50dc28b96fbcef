//! `zscore`: |z| of a sample against the series' EWMA mean and variance.

use serde::Deserialize;
use serde_json::json;

use super::super::{by_series, Detection, Detector, Sample, SeriesMap};
use super::{detection, three_f};
use crate::model::Window;

/// `zscore`: EWMA mean and variance per series; active when |z| of the last sample exceeds
/// `threshold` after `warmup` samples.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZScoreParams {
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

/// `zscore`.
pub struct ZScore {
    cfg: ZScoreParams,
    /// Count, mean, variance, z of the last sample.
    series: SeriesMap<(u32, f64, f64, f64, f64)>,
}

impl ZScore {
    pub fn new(cfg: ZScoreParams, max: usize) -> Self {
        ZScore {
            cfg,
            series: SeriesMap::new(max),
        }
    }
}

impl Detector for ZScore {
    series_state!();

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
