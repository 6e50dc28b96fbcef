//! `silence`: a series that was arriving goes quiet.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::super::{by_series, Detection, Detector, Sample, SeriesMap};
use super::{detection, three, three_f};
use crate::model::{duration_nanos, EventTime, Window};

/// `silence`: active when a series has not delivered for longer than `timeout`, or than
/// `interval_factor` times its learned interval when that is longer (its *limit*).
///
/// With `peers_by`, silence is judged against the series' peers (the series with the same
/// values of those labels, e.g. the ranks of one job): a series is silent only when a peer
/// went on delivering for longer than the limit after it stopped. A whole group stopping
/// within the limit — the job ending, a collector restarting, the end of a recording — is an
/// end, not a fault, and raises nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceParams {
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
    /// Labels whose values make a peer group (e.g. `["service"]`: the ranks of one job).
    /// Unset: each series is judged on its own.
    #[serde(default)]
    pub peers_by: Option<Vec<String>>,
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
fn one_hour() -> Duration {
    Duration::from_secs(3600)
}

/// `silence`: per series the last sample time and an EWMA of the interval between samples.
pub struct Silence {
    cfg: SilenceParams,
    /// Last sample time, learned interval, samples seen.
    series: SeriesMap<(Option<EventTime>, Option<f64>, u32)>,
}

impl Silence {
    pub fn new(cfg: SilenceParams, max: usize) -> Self {
        Silence {
            cfg,
            series: SeriesMap::new(max),
        }
    }
}

impl Detector for Silence {
    series_state!();

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
        let groups = self.group_progress();
        self.series
            .iter_mut()
            .filter_map(|(k, (_, (last, interval, seen)))| {
                let last = (*last)?;
                if *seen < self.cfg.min_samples {
                    return None;
                }
                let silent = (now.0 - last.0) as f64;
                let limit = timeout.max(interval.map_or(0.0, |i| i * factor));
                if silent <= limit {
                    return None;
                }
                // Peers: did another member go on for longer than the limit after it stopped?
                if let Some(groups) = &groups {
                    let peers_last = groups.get(&group_of(k, self.cfg.peers_by.as_deref()))?;
                    let went_on = peers_last
                        .iter()
                        .filter(|(member, _)| member != k)
                        .any(|(_, t)| (t.0 - last.0) as f64 > limit);
                    if !went_on {
                        return None;
                    }
                }
                Some(detection(
                    k,
                    silent / 1e9,
                    vec![
                        ("last_seen", json!(last.to_rfc3339())),
                        ("silent_seconds", json!(silent / 1e9)),
                        ("limit_seconds", json!(limit / 1e9)),
                    ],
                ))
            })
            .collect()
    }
}

type Key = BTreeMap<String, String>;
/// A peer group's label values.
type Group = Vec<Option<String>>;
/// Per peer group, each member and its last sample time.
type Groups = BTreeMap<Group, Vec<(Key, EventTime)>>;

/// The peer group of a series: its values of the `peers_by` labels.
fn group_of(key: &Key, peers_by: Option<&[String]>) -> Group {
    peers_by
        .unwrap_or_default()
        .iter()
        .map(|l| key.get(l).cloned())
        .collect()
}

impl Silence {
    /// With `peers_by`: per group, each member's last sample time.
    fn group_progress(&mut self) -> Option<Groups> {
        let peers_by = self.cfg.peers_by.as_deref()?;
        let mut groups = Groups::new();
        for (k, (_, (last, _, _))) in self.series.iter_mut() {
            if let Some(last) = last {
                groups
                    .entry(group_of(k, Some(peers_by)))
                    .or_default()
                    .push((k.clone(), *last));
            }
        }
        Some(groups)
    }
}
