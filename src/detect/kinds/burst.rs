//! `burst`: a count per window far above its learned baseline.

use serde::Deserialize;
use serde_json::json;

use super::super::{by_series, Detection, Detector, Sample, SeriesMap};
use super::{detection, three_f};
use crate::model::saved::{self, Saved};
use crate::model::Window;

/// `burst`: the value (a count per window, e.g. of an error signature) above `factor` times
/// its EWMA baseline and at least `min_count`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstParams {
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

/// `burst`: the window's value against an EWMA baseline of earlier windows.
pub struct Burst {
    cfg: BurstParams,
    /// Baseline, windows seen, this window's value.
    series: SeriesMap<(f64, u32, Option<f64>)>,
    /// Windows observed by the detector.
    windows: u32,
}

impl Burst {
    pub fn new(cfg: BurstParams, max: usize) -> Self {
        Burst {
            cfg,
            series: SeriesMap::new(max),
            windows: 0,
        }
    }
}

impl Detector for Burst {
    fn series(&self) -> usize {
        self.series.len()
    }

    fn save(&self) -> Saved {
        saved::save(&(self.series.save(), self.windows))
    }

    fn restore(&mut self, state: Saved) -> Result<(), String> {
        let (series, windows): (Saved, u32) = saved::load(state)?;
        self.series.restore(series)?;
        self.windows = windows;
        Ok(())
    }

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
