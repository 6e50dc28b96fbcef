//! Detector cases as data: a series of samples, window by window, and the detections
//! expected at the end of each window.

use std::time::Duration;

use super::kinds::*;
use super::*;

const S: i64 = 1_000_000_000;

fn key(host: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("host".to_string(), host.to_string())])
}

/// Windows of 10 s; `series[w]` are the samples of window `w` as `(host, second, value)`.
/// Returns, per window, the active `(host, level, value)`.
fn run(d: &mut dyn Detector, series: &[&[(&str, i64, f64)]]) -> Vec<Vec<(String, usize, f64)>> {
    series
        .iter()
        .enumerate()
        .map(|(w, samples)| {
            let window = Window {
                start: EventTime(w as i64 * 10 * S),
                end: EventTime((w as i64 + 1) * 10 * S),
            };
            let samples: Vec<Sample> = samples
                .iter()
                .map(|(h, t, v)| Sample {
                    key: key(h),
                    time: EventTime(t * S),
                    value: *v,
                    evidence: BTreeMap::new(),
                })
                .collect();
            d.observe(&samples, window)
                .into_iter()
                .map(|d| (d.key["host"].clone(), d.level, d.value))
                .collect()
        })
        .collect()
}

fn on(host: &str, level: usize, value: f64) -> (String, usize, f64) {
    (host.to_string(), level, value)
}

#[test]
fn three_samples_in_a_row_above_90() {
    let mut d = Consecutive::new(
        ConsecutiveParams {
            threshold: 90.0,
            samples: 3,
            below: false,
        },
        100,
    );
    let got = run(
        &mut d,
        &[
            &[("g", 1, 91.0), ("g", 3, 95.0)],
            &[("g", 11, 85.0), ("g", 13, 92.0)], // the run breaks
            &[("g", 21, 93.0), ("g", 23, 94.0)], // 92, 93, 94: three in a row
            &[("g", 31, 70.0)],
        ],
    );
    assert_eq!(got, vec![vec![], vec![], vec![on("g", 0, 94.0)], vec![]]);
}

fn gpu_levels() -> HysteresisParams {
    let level = |name: &str, enter: f64, clear: f64, severity: Severity| Level {
        name: name.into(),
        enter,
        clear,
        severity,
        action: None,
    };
    HysteresisParams {
        samples: 3,
        levels: vec![
            level("warning", 90.0, 80.0, Severity::Warning),
            level("throttle", 95.0, 85.0, Severity::Critical),
            level("shed", 98.0, 90.0, Severity::Critical),
        ],
    }
}

#[test]
fn graded_gpu_memory_response_enters_and_clears_every_level() {
    let mut d = Hysteresis::new(gpu_levels(), 100);
    let got = run(
        &mut d,
        &[
            &[("g", 1, 91.0), ("g", 2, 92.0)], // two above 90: not yet
            &[("g", 11, 93.0)],                // third: warning
            &[("g", 21, 96.0), ("g", 22, 97.0), ("g", 23, 96.5)], // three above 95: throttle
            &[("g", 31, 99.0), ("g", 32, 99.0), ("g", 33, 99.5)], // shed
            &[("g", 41, 92.0)],                // below shed's clear 90? no: stays
            &[("g", 51, 89.0)],                // < 90 leaves shed, >= 85 keeps throttle
            &[("g", 61, 84.0)],                // < 85 leaves throttle, >= 80 keeps warning
            &[("g", 71, 79.0)],                // < 80 clears warning
            &[("g", 81, 97.0), ("g", 82, 97.0)], // two above 95 (and 90): nothing yet
        ],
    );
    assert_eq!(
        got,
        vec![
            vec![],
            vec![on("g", 0, 93.0)],
            vec![on("g", 1, 96.5)],
            vec![on("g", 2, 99.5)],
            vec![on("g", 2, 92.0)],
            vec![on("g", 1, 89.0)],
            vec![on("g", 0, 84.0)],
            vec![],
            vec![],
        ]
    );
}

#[test]
fn a_series_that_goes_quiet_is_reported_with_its_last_seen_time() {
    let mut d = Silence::new(
        SilenceParams {
            timeout: Duration::from_secs(30),
            interval_factor: 3.0,
            min_samples: 3,
            forget_after: Duration::from_secs(120),
            peers_by: None,
        },
        100,
    );
    let got = run(
        &mut d,
        &[
            &[
                ("rank0", 1, 1.0),
                ("rank1", 1, 1.0),
                ("rank0", 6, 1.0),
                ("rank1", 6, 1.0),
            ],
            &[("rank0", 11, 1.0), ("rank1", 11, 1.0), ("rank0", 16, 1.0)],
            &[("rank0", 21, 1.0), ("rank0", 26, 1.0)],
            &[("rank0", 31, 1.0), ("rank0", 36, 1.0)],
            &[("rank0", 41, 1.0), ("rank0", 46, 1.0)], // rank1 silent since 11: 39 s at 50
            &[("rank0", 51, 1.0)],
        ],
    );
    assert_eq!(got[3], vec![], "29 s of silence is within the timeout");
    assert_eq!(got[4], vec![on("rank1", 0, 39.0)]);
    assert_eq!(got[5], vec![on("rank1", 0, 49.0)]);
}

/// Ranks of one job (`service`), judged against each other (or, `alone`, each on its own).
fn ranks(alone: bool) -> Silence {
    Silence::new(
        SilenceParams {
            timeout: Duration::from_secs(20),
            interval_factor: 3.0,
            min_samples: 2,
            forget_after: Duration::from_secs(600),
            peers_by: (!alone).then(|| vec!["service".into()]),
        },
        100,
    )
}

/// Windows of 10 s; `ranks[w]` are the ranks of job `svc` that log twice in window `w`.
fn job(d: &mut Silence, ranks: &[&[&str]]) -> Vec<Vec<String>> {
    ranks
        .iter()
        .enumerate()
        .map(|(w, rs)| {
            let w = w as i64;
            let samples: Vec<Sample> = rs
                .iter()
                .flat_map(|r| [w * 10 + 1, w * 10 + 6].map(|t| (r, t)))
                .map(|(r, t)| Sample {
                    key: BTreeMap::from([
                        ("service".to_string(), "svc".to_string()),
                        ("rank".to_string(), r.to_string()),
                    ]),
                    time: EventTime(t * S),
                    value: 1.0,
                    evidence: BTreeMap::new(),
                })
                .collect();
            let window = Window {
                start: EventTime(w * 10 * S),
                end: EventTime((w + 1) * 10 * S),
            };
            d.observe(&samples, window)
                .into_iter()
                .map(|d| d.key["rank"].clone())
                .collect()
        })
        .collect()
}

#[test]
fn a_rank_is_silent_only_while_its_peers_go_on() {
    let all: &[&str] = &["0", "1", "2", "3"];
    let without_2: &[&str] = &["0", "1", "3"];
    let got = job(
        &mut ranks(false),
        &[all, all, without_2, without_2, without_2, without_2],
    );
    // Rank 2 last logged at 16 s; at 50 s it has been quiet 34 s while the others went on.
    assert_eq!(got[3], Vec::<String>::new());
    assert_eq!(got[4], vec!["2"]);
    assert_eq!(got[5], vec!["2"]);
}

#[test]
fn a_whole_job_stopping_together_is_an_end_not_a_fault() {
    let all: &[&str] = &["0", "1", "2", "3"];
    // Ranks 1 and 3 stop a few seconds before the others (within the limit): the job ended.
    let stop: &[&[&str]] = &[all, all, all, &["0", "2"], &[], &[], &[], &[], &[]];
    let got = job(&mut ranks(false), stop);
    assert!(got.iter().all(Vec::is_empty), "{got:?}");
    // Judged alone, every rank would have been reported.
    let got = job(&mut ranks(true), stop);
    assert_eq!(got[8].len(), 4, "{got:?}");
}

#[test]
fn a_silent_series_is_forgotten_after_a_while() {
    let mut d = Silence::new(
        SilenceParams {
            timeout: Duration::from_secs(5),
            interval_factor: 3.0,
            min_samples: 2,
            forget_after: Duration::from_secs(20),
            peers_by: None,
        },
        100,
    );
    let got = run(
        &mut d,
        &[
            &[("a", 1, 1.0), ("a", 2, 1.0), ("b", 1, 1.0)],
            &[],
            &[],
            &[],
        ],
    );
    // "b" sent one sample only: never arriving regularly, never silent.
    assert_eq!(got[1], vec![on("a", 0, 18.0)]);
    assert_eq!(got[3], vec![], "forgotten after 20 s");
}

#[test]
fn zscore_fires_on_an_outlier_after_warmup() {
    let mut d = ZScore::new(
        ZScoreParams {
            threshold: 3.0,
            alpha: 0.2,
            warmup: 5,
        },
        100,
    );
    let steady: Vec<(&str, i64, f64)> = (0..10).map(|i| ("s", i, 100.0 + (i % 3) as f64)).collect();
    let got = run(
        &mut d,
        &[
            &steady,
            &[("s", 11, 101.0)],
            &[("s", 21, 140.0)],
            &[("s", 31, 101.0)],
        ],
    );
    assert_eq!(got[0], vec![]);
    assert_eq!(got[1], vec![]);
    assert_eq!(got[2].len(), 1);
    assert_eq!(got[2][0].2, 140.0);
    assert_eq!(got[3], vec![]);
}

#[test]
fn p95_over_the_last_30_seconds() {
    let mut d = QuantileOverTime::new(
        QuantileOverTimeParams {
            quantile: 0.95,
            range: Duration::from_secs(30),
            threshold: 500.0,
            max_samples: 1000,
        },
        100,
    );
    let fast: Vec<(&str, i64, f64)> = (0..10).map(|i| ("api", i, 100.0)).collect();
    let slow: Vec<(&str, i64, f64)> = (10..20).map(|i| ("api", i, 800.0)).collect();
    let got = run(&mut d, &[&fast, &slow, &[], &[], &[]]);
    assert_eq!(got[0], vec![]);
    assert_eq!(got[1], vec![on("api", 0, 800.0)]);
    assert_eq!(
        got[3],
        vec![on("api", 0, 800.0)],
        "slow samples still within 30 s"
    );
    assert_eq!(got[4], vec![], "out of range");
}

#[test]
fn a_quantile_over_many_samples_comes_from_sketches_within_one_percent() {
    let mut d = QuantileOverTime::new(
        QuantileOverTimeParams {
            quantile: 0.99,
            range: Duration::from_secs(60),
            threshold: 0.0,
            max_samples: 100,
        },
        10,
    );
    // 5000 samples 1..=5000 in one window: far more than the 100 kept exactly.
    let samples: Vec<Sample> = (1..=5000)
        .map(|i| Sample {
            key: key("api"),
            time: EventTime(i * 1_000_000),
            value: i as f64,
            evidence: BTreeMap::new(),
        })
        .collect();
    let window = Window {
        start: EventTime(0),
        end: EventTime(10 * S),
    };
    let got = d.observe(&samples, window);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].evidence["method"], "ddsketch");
    assert_eq!(got[0].evidence["samples"], 5000);
    let exact = 4950.0;
    assert!(
        (got[0].value - exact).abs() / exact < 0.01,
        "{}",
        got[0].value
    );
}

#[test]
fn a_burst_of_an_error_signature_against_its_baseline() {
    let mut d = Burst::new(
        BurstParams {
            factor: 3.0,
            min_count: 10.0,
            alpha: 0.5,
            new_series_after_windows: None,
        },
        100,
    );
    let got = run(
        &mut d,
        &[
            &[("nccl", 5, 2.0)],
            &[("nccl", 15, 3.0)],
            &[("nccl", 25, 40.0)],
            &[("nccl", 35, 3.0)],
            &[("nccl", 45, 8.0)], // above 3x baseline but under min_count
        ],
    );
    assert_eq!(
        got,
        vec![vec![], vec![], vec![on("nccl", 0, 40.0)], vec![], vec![]]
    );
}

#[test]
fn a_new_series_arriving_in_bulk_is_a_burst_after_the_warm_up() {
    let mut d = Burst::new(
        BurstParams {
            factor: 5.0,
            min_count: 10.0,
            alpha: 0.2,
            new_series_after_windows: Some(2),
        },
        100,
    );
    let got = run(
        &mut d,
        &[
            &[("old", 5, 30.0)], // new, but during the warm-up
            &[("old", 15, 30.0)],
            &[("old", 25, 30.0), ("fresh", 26, 12.0), ("quiet", 27, 3.0)],
            &[("old", 35, 30.0), ("fresh", 36, 12.0)],
        ],
    );
    assert_eq!(got[0], vec![]);
    assert_eq!(got[1], vec![]);
    // `fresh` is new with 12 >= min_count; `quiet` is new but under it; `old` is steady.
    assert_eq!(got[2], vec![on("fresh", 0, 12.0)]);
    // Its second window compares with its baseline (12): no burst.
    assert_eq!(got[3], vec![]);
}

#[test]
fn state_is_bounded_by_max_series() {
    let mut d = Consecutive::new(
        ConsecutiveParams {
            threshold: 0.0,
            samples: 1,
            below: false,
        },
        2,
    );
    let got = run(&mut d, &[&[("a", 1, 1.0), ("b", 2, 1.0), ("c", 3, 1.0)]]);
    let hosts: Vec<_> = got[0].iter().map(|d| d.0.as_str()).collect();
    assert_eq!(
        hosts,
        vec!["b", "c"],
        "the least recently updated series was evicted"
    );
}

use crate::model::Severity;

fn env(var: &str, t: i64, text: &str, secret: bool) -> Sample {
    Sample {
        key: BTreeMap::from([
            ("service".to_string(), "trainer".to_string()),
            ("variable".to_string(), var.to_string()),
        ]),
        time: EventTime(t * S),
        value: 0.0,
        evidence: BTreeMap::from([
            ("text".to_string(), serde_json::json!(text)),
            (
                "secret".to_string(),
                serde_json::json!(if secret { "true" } else { "false" }),
            ),
        ]),
    }
}

#[test]
fn environment_drift_between_snapshots() {
    let mut d = EnvDrift::new(
        EnvDriftParams {
            ranges: BTreeMap::from([("APP_BATCH_SIZE".to_string(), [1.0, 512.0])]),
        },
        100,
    );
    let w = |i: i64| Window {
        start: EventTime(i * 10 * S),
        end: EventTime((i + 1) * 10 * S),
    };
    let seen = |ds: Vec<Detection>| -> Vec<(String, String, f64)> {
        ds.into_iter()
            .map(|d| {
                (
                    d.labels["variable"].clone(),
                    d.labels["problem"].clone(),
                    d.value,
                )
            })
            .collect()
    };
    let first = vec![
        env("APP_BATCH_SIZE", 1, "32", false),
        env("APP_MODE", 1, "fast", false),
    ];
    assert!(d.observe(&first, w(0)).is_empty());
    // The mode variable vanishes, the batch size leaves its range, a secret appears.
    let second = vec![
        env("APP_BATCH_SIZE", 11, "4096", false),
        env("APP_DB_PASSWORD", 11, "<redacted:1>", true),
    ];
    let s = |a: &str, b: &str, v: f64| (a.to_string(), b.to_string(), v);
    assert_eq!(
        seen(d.observe(&second, w(1))),
        vec![
            // Ordered by problem, then variable.
            s("APP_BATCH_SIZE", "changed", 1.0),
            s("APP_MODE", "disappeared", 1.0),
            s("APP_BATCH_SIZE", "out_of_range", 4096.0),
            s("APP_DB_PASSWORD", "secret_in_plaintext", 1.0),
        ]
    );
    // Nothing new: only the standing problems remain.
    let third = vec![
        env("APP_BATCH_SIZE", 21, "4096", false),
        env("APP_DB_PASSWORD", 21, "<redacted:1>", true),
    ];
    assert_eq!(
        seen(d.observe(&third, w(2))),
        vec![
            s("APP_BATCH_SIZE", "out_of_range", 4096.0),
            s("APP_DB_PASSWORD", "secret_in_plaintext", 1.0)
        ]
    );
}
