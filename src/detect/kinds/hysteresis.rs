//! `hysteresis`: graded levels with enter and clear thresholds.

use serde::Deserialize;
use serde_json::json;

use super::super::{by_series, Detection, Detector, Sample, SeriesMap};
use super::{detection, three};
use crate::model::{Severity, Window};

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
pub struct HysteresisParams {
    pub levels: Vec<Level>,
    /// Samples in a row above a level's `enter` to enter it. Default 3.
    #[serde(default = "three")]
    pub samples: u32,
}

/// `hysteresis`: levels ordered from the lowest; a series is at the highest level it entered
/// (`samples` in a row above `enter`) and has not cleared (a sample below `clear`).
pub struct Hysteresis {
    cfg: HysteresisParams,
    series: SeriesMap<HysteresisState>,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct HysteresisState {
    /// Index into the levels, `None` below the lowest.
    level: Option<usize>,
    /// Samples in a row above each level's `enter`.
    runs: Vec<u32>,
    last: f64,
}

impl Hysteresis {
    pub fn new(cfg: HysteresisParams, max: usize) -> Self {
        Hysteresis {
            cfg,
            series: SeriesMap::new(max),
        }
    }
}

impl Detector for Hysteresis {
    series_state!();

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
                d.level = i;
                Some(d)
            })
            .collect()
    }
}
