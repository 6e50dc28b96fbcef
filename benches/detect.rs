//! Detector throughput: samples/s through each detector kind, against a baseline measured in
//! the same run (grouping the same samples by series, which every detector does first).
//!
//! `cargo bench --bench detect`

use std::collections::BTreeMap;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use faultline::detect::kinds::*;
use faultline::detect::*;
use faultline::model::EventTime;
use faultline::model::Severity;
use faultline::model::Window;

const S: i64 = 1_000_000_000;

/// 1 000 series (GPUs of 125 hosts) × 60 samples: one minute at 1 s.
fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    for host in 0..125 {
        for gpu in 0..8 {
            let key: BTreeMap<String, String> = [
                ("host".to_string(), format!("node-{host}")),
                ("gpu".to_string(), gpu.to_string()),
            ]
            .into();
            for t in 0..60 {
                out.push(Sample {
                    key: key.clone(),
                    time: EventTime(t * S),
                    value: 60.0 + ((host * 7 + gpu * 3 + t) % 40) as f64,
                    evidence: BTreeMap::new(),
                });
            }
        }
    }
    out
}

fn window() -> Window {
    Window {
        start: EventTime(0),
        end: EventTime(60 * S),
    }
}

/// Makes a fresh detector for each measured run.
type Factory = Box<dyn Fn() -> Box<dyn Detector>>;

fn detectors() -> Vec<(&'static str, Factory)> {
    let level = |name: &str, enter: f64, clear: f64| Level {
        name: name.into(),
        enter,
        clear,
        severity: Severity::Warning,
        action: None,
    };
    let levels = vec![
        level("warning", 90.0, 80.0),
        level("throttle", 95.0, 85.0),
        level("shed", 98.0, 90.0),
    ];
    vec![
        (
            "consecutive",
            Box::new(|| {
                Box::new(Consecutive::new(
                    ConsecutiveParams {
                        threshold: 90.0,
                        samples: 3,
                        below: false,
                    },
                    100_000,
                )) as Box<dyn Detector>
            }),
        ),
        (
            "hysteresis",
            Box::new(move || {
                Box::new(Hysteresis::new(
                    HysteresisParams {
                        levels: levels.clone(),
                        samples: 3,
                    },
                    100_000,
                )) as Box<dyn Detector>
            }),
        ),
        (
            "silence",
            Box::new(|| {
                Box::new(Silence::new(
                    SilenceParams {
                        timeout: Duration::from_secs(30),
                        interval_factor: 3.0,
                        min_samples: 3,
                        forget_after: Duration::from_secs(3600),
                        peers_by: None,
                    },
                    100_000,
                )) as Box<dyn Detector>
            }),
        ),
        (
            "zscore",
            Box::new(|| {
                Box::new(ZScore::new(
                    ZScoreParams {
                        threshold: 3.0,
                        alpha: 0.1,
                        warmup: 10,
                    },
                    100_000,
                )) as Box<dyn Detector>
            }),
        ),
        (
            "quantile_over_time",
            Box::new(|| {
                Box::new(QuantileOverTime::new(
                    QuantileOverTimeParams {
                        quantile: 0.95,
                        range: Duration::from_secs(300),
                        threshold: 95.0,
                        max_samples: 10_000,
                    },
                    100_000,
                )) as Box<dyn Detector>
            }),
        ),
        (
            "burst",
            Box::new(|| {
                Box::new(Burst::new(
                    BurstParams {
                        factor: 3.0,
                        min_count: 10.0,
                        alpha: 0.2,
                        new_series_after_windows: None,
                    },
                    100_000,
                )) as Box<dyn Detector>
            }),
        ),
    ]
}

fn throughput(c: &mut Criterion) {
    let samples = samples();
    let mut g = c.benchmark_group("detect");
    g.throughput(Throughput::Elements(samples.len() as u64));
    g.sample_size(20);
    g.bench_function("baseline: group samples by series", |b| {
        b.iter(|| {
            let mut m: BTreeMap<&BTreeMap<String, String>, Vec<&Sample>> = BTreeMap::new();
            for s in &samples {
                m.entry(&s.key).or_default().push(s);
            }
            for v in m.values_mut() {
                v.sort_by_key(|s| s.time);
            }
            m.len()
        })
    });
    for (name, make) in detectors() {
        g.bench_function(name, |b| {
            b.iter_batched(
                &make,
                |mut d| d.observe(&samples, window()),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
