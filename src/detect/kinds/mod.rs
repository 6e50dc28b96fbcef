//! The detectors, one file per kind, each with its parameters (what `[[detectors]]` takes
//! beside `kind = "…"`). Each keeps bounded state per series (`SeriesMap`) in event time.

/// `save`/`restore` of a detector whose whole state is its `series` map.
macro_rules! series_state {
    () => {
        fn save(&self) -> $crate::model::saved::Saved {
            self.series.save()
        }

        fn restore(&mut self, state: $crate::model::saved::Saved) -> Result<(), String> {
            self.series.restore(state)
        }

        fn series(&self) -> usize {
            self.series.len()
        }
    };
}

mod burst;
mod consecutive;
mod env_drift;
mod hysteresis;
mod quantile_over_time;
mod silence;
mod zscore;

use std::collections::BTreeMap;

pub use burst::{Burst, BurstParams};
pub use consecutive::{Consecutive, ConsecutiveParams};
pub use env_drift::{EnvDrift, EnvDriftParams};
pub use hysteresis::{Hysteresis, HysteresisParams, Level};
pub use quantile_over_time::{QuantileOverTime, QuantileOverTimeParams};
pub use silence::{Silence, SilenceParams};
pub use zscore::{ZScore, ZScoreParams};

use super::Detection;

fn detection(
    key: &BTreeMap<String, String>,
    value: f64,
    evidence: Vec<(&str, serde_json::Value)>,
) -> Detection {
    Detection {
        key: key.clone(),
        value,
        labels: BTreeMap::new(),
        level: 0,
        evidence: evidence
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

fn three() -> u32 {
    3
}

fn three_f() -> f64 {
    3.0
}
