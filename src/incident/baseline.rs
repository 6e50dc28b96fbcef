//! Robust baselines per (indicator, entity, name, callee) series: the last `history`
//! window values, a median and a MAD, and each new value's deviation in robust units.
//! Bounded: at most `max_series` series, the least recently seen forgotten first.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::config::{Direction, IncidentConfig, IndicatorConfig};
use crate::model::QueryRow;

/// What a series is about. `callee` is set for an edge of the call graph.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct SeriesKey {
    /// Index of the indicator in `[[incidents.indicators]]`.
    pub indicator: usize,
    pub entity: String,
    /// The row's `indicator` column (e.g. a metric or template name).
    pub name: String,
    pub callee: Option<String>,
    /// The row's `given` column: the series is a conditional one (e.g. "after X, Y"), only
    /// observed in windows where some row of its indicator and entity has the same `given`.
    pub given: Option<String>,
}

/// One series' value in one window, against its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub key: SeriesKey,
    pub value: f64,
    pub baseline: f64,
    /// In robust units, signed so that positive is the bad direction; 0 without a baseline.
    pub deviation: f64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Series {
    values: VecDeque<f64>,
    last_seen: u64,
}

/// Every series' recent history.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Baselines {
    series: BTreeMap<SeriesKey, Series>,
    /// Windows observed so far.
    windows: u64,
    /// Recent values of all series of one (indicator, name), e.g. every call edge's network
    /// time: the peers' baseline a series without enough history of its own is judged by.
    pools: BTreeMap<(usize, String), Series>,
}

/// Values a peer pool keeps, in multiples of `history`.
const POOL_FACTOR: usize = 8;

/// Median of `v` (sorted in place); 0 when empty.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The deviation of `value` from `history` (signed by `direction`) and the baseline median;
/// `None` with fewer than `min` samples. With `samples` (the row's `samples` column: `value`
/// is a proportion of that many trials) the scale is at least the binomial standard error
/// at the baseline proportion: a ratio of 3 trials moves by chance, one of 300 does not.
pub fn deviation(
    history: &[f64],
    value: f64,
    min: usize,
    indicator: &IndicatorConfig,
    samples: Option<f64>,
) -> Option<(f64, f64)> {
    if history.len() < min {
        return None;
    }
    let mut v = history.to_vec();
    let med = median(&mut v);
    let mut abs: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
    let mad = median(&mut abs);
    let binomial = samples.filter(|n| *n >= 1.0).map_or(0.0, |n| {
        let p = med.clamp(0.0, 1.0);
        ((p * (1.0 - p)).max(1.0 / n) / n).sqrt()
    });
    let scale = (1.4826 * mad)
        .max(indicator.relative_floor * med.abs())
        .max(indicator.floor)
        .max(binomial);
    let d = (value - med) / scale;
    let signed = match indicator.direction {
        Direction::Up => d,
        Direction::Down => -d,
        Direction::Both => d.abs(),
    };
    Some((signed, med))
}

/// Trials behind a proportion, per (indicator, entity, given).
type Trials = BTreeMap<(usize, String, Option<String>), f64>;

/// This window's value per series, and the trials of proportions.
fn current_values(rows: &[Vec<QueryRow>]) -> (BTreeMap<SeriesKey, f64>, Trials) {
    let mut current = BTreeMap::new();
    let mut trials = Trials::new();
    for (i, rows) in rows.iter().enumerate() {
        for row in rows {
            if !row.value.is_finite() {
                continue;
            }
            let label = |k: &str| row.labels.get(k).cloned();
            let Some(entity) = label("entity").filter(|e| !e.is_empty()) else {
                continue;
            };
            let key = SeriesKey {
                indicator: i,
                entity,
                name: label("indicator").unwrap_or_default(),
                callee: label("callee").filter(|c| !c.is_empty()),
                given: label("given"),
            };
            if let Some(n) = label("samples").and_then(|n| n.parse::<f64>().ok()) {
                trials.insert((i, key.entity.clone(), key.given.clone()), n);
            }
            current.insert(key, row.value);
        }
    }
    (current, trials)
}

/// Removes the least recently seen entries of `map` beyond `max`.
fn forget_oldest<K: Ord + Clone>(map: &mut BTreeMap<K, Series>, max: usize) {
    if map.len() <= max {
        return;
    }
    let mut by_age: Vec<(u64, K)> = map.iter().map(|(k, s)| (s.last_seen, k.clone())).collect();
    by_age.sort();
    let excess = map.len() - max;
    for (_, key) in by_age.into_iter().take(excess) {
        map.remove(&key);
    }
}

/// Appends `value` to a bounded history.
fn push_bounded(series: &mut Series, value: f64, max: usize, now: u64) {
    series.values.push_back(value);
    while series.values.len() > max {
        series.values.pop_front();
    }
    series.last_seen = now;
}

impl Baselines {
    /// Scores this window's rows (one list per indicator) against the baselines, then adds
    /// them to the history — except for series about a `frozen` entity (one an open
    /// incident names), whose baseline must not learn the incident.
    pub fn observe(
        &mut self,
        config: &IncidentConfig,
        rows: &[Vec<QueryRow>],
        frozen: &BTreeSet<String>,
    ) -> Vec<Observation> {
        self.windows += 1;
        let (mut current, trials) = current_values(rows);
        self.zero_fill(config, &mut current);
        let mut out = Vec::with_capacity(current.len());
        for (key, value) in current {
            let n = trials
                .get(&(key.indicator, key.entity.clone(), key.given.clone()))
                .copied();
            let is_frozen = frozen.contains(&key.entity)
                || key.callee.as_ref().is_some_and(|c| frozen.contains(c));
            out.push(self.score_and_learn(config, key, value, n, is_frozen));
        }
        self.evict(config.max_series);
        out
    }

    /// Counts: a known series missing from this window is a 0 there (a conditional one only
    /// where its condition was observed).
    fn zero_fill(&self, config: &IncidentConfig, current: &mut BTreeMap<SeriesKey, f64>) {
        let givens: BTreeSet<(usize, &str, &str)> = current
            .keys()
            .filter_map(|k| Some((k.indicator, k.entity.as_str(), k.given.as_deref()?)))
            .collect();
        let mut zeros = Vec::new();
        for key in self.series.keys() {
            let observed = key
                .given
                .as_deref()
                .is_none_or(|g| givens.contains(&(key.indicator, key.entity.as_str(), g)));
            if config.indicators[key.indicator].zero_when_absent
                && observed
                && !current.contains_key(key)
            {
                zeros.push(key.clone());
            }
        }
        current.extend(zeros.into_iter().map(|k| (k, 0.0)));
    }

    /// One series' deviation against its history (or its peers' when it has too little);
    /// then, unless frozen, the value joins both.
    fn score_and_learn(
        &mut self,
        config: &IncidentConfig,
        key: SeriesKey,
        value: f64,
        trials: Option<f64>,
        frozen: bool,
    ) -> Observation {
        let now = self.windows;
        let indicator = &config.indicators[key.indicator];
        let prior = (self.windows - 1).min(config.history as u64) as usize;
        let history: Vec<f64> = match self.series.get(&key) {
            Some(s) => s.values.iter().copied().collect(),
            // A count never seen before was 0 in every earlier window (a conditional
            // series was not observed where its condition was not).
            None if indicator.zero_when_absent && key.given.is_none() => vec![0.0; prior],
            None => Vec::new(),
        };
        let pooled = !indicator.zero_when_absent && key.given.is_none();
        let pool_key = (key.indicator, key.name.clone());
        let reference = match self.pools.get(&pool_key) {
            // Too little history of its own (a rarely used call edge): its peers'.
            Some(pool) if pooled && history.len() < config.min_history => {
                pool.values.iter().copied().collect()
            }
            _ => history.clone(),
        };
        let (deviation, baseline) =
            deviation(&reference, value, config.min_history, indicator, trials)
                .unwrap_or((0.0, value));
        if !frozen {
            if pooled {
                let pool = self.pools.entry(pool_key).or_insert_with(|| Series {
                    values: VecDeque::new(),
                    last_seen: now,
                });
                push_bounded(pool, value, config.history * POOL_FACTOR, now);
            }
            let s = self.series.entry(key.clone()).or_insert_with(|| Series {
                values: history.into(),
                last_seen: now,
            });
            push_bounded(s, value, config.history, now);
        }
        Observation {
            key,
            value,
            baseline,
            deviation,
        }
    }

    /// Forgets the least recently seen series (and peer pools) beyond `max`.
    fn evict(&mut self, max: usize) {
        forget_oldest(&mut self.pools, max);
        forget_oldest(&mut self.series, max);
    }

    /// Series kept.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Approximate bytes held (keys and values), for the evaluation's state figure.
    pub fn approx_bytes(&self) -> usize {
        self.series
            .iter()
            .map(|(k, s)| {
                64 + k.entity.len()
                    + k.name.len()
                    + k.callee.as_ref().map_or(0, String::len)
                    + 8 * s.values.len()
            })
            .sum::<usize>()
            + self
                .pools
                .iter()
                .map(|(k, s)| 64 + k.1.len() + 8 * s.values.len())
                .sum::<usize>()
    }
}
