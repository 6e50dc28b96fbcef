//! The look-back of a rule over several windows, across `kill -9`, on the real broker: saved
//! in the snapshot while small, left out and rebuilt from re-read input when over
//! `max_history_bytes` — either way the restarted instance's rule sees the same windows an
//! uninterrupted run does, and the committed lag shows which of the two happened.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::broker::*;
use crate::checkpoint::committed_lag_of;
use crate::common::*;

const S: i64 = 1_000_000_000;

/// Alerts labelled with the number of spans in the last three windows: a new alert (a new
/// label value) every window, so every window's look-back shows on the alert topic.
const RULE: &str = r#"-- id = "spans_in_look_back"
-- severity = "info"
-- window = "3m"
SELECT service, CAST(count(*) AS VARCHAR) AS spans, 1 AS value
FROM spans WHERE service = 'svc' GROUP BY service
"#;

/// Minute `m` has `m + 1` spans, so the look-back count of window `m` is
/// `(m + 1) + m + (m - 1) = 3m` from the third window on: distinct in every window.
fn minutes(t0: i64, range: std::ops::Range<i64>) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for m in range {
        for k in 0..=m {
            let n = (m * 20 + k) as u32;
            out.push(flat_span("svc", n, t0 + m * 60 * S + k * S, 10));
        }
    }
    out
}

/// The counts an uninterrupted run labels windows `0..=last` with.
fn expected(last: i64) -> BTreeSet<String> {
    (0..=last)
        .map(|m| match m {
            0 => 1,
            1 => 3,
            m => 3 * m,
        })
        .map(|c| c.to_string())
        .collect()
}

fn counts(alerts: &TopicReader) -> BTreeSet<String> {
    alerts
        .seen
        .iter()
        .filter(|a| a["status"] == "firing")
        .filter_map(|a| a["labels"]["spans"].as_str().map(str::to_string))
        .collect()
}

fn wait_for_count(alerts: &mut TopicReader, count: &str, fl: &Instance) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !counts(alerts).contains(count) {
        alerts.poll(Duration::from_millis(200));
        assert!(Instant::now() < deadline, "no {count}: {}", fl.log_text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_look_back_is_saved_in_the_checkpoint() {
    // Windows 9 (and perhaps 8) open at the end of the first part: 10 (19) messages.
    look_back_across_kill_9("", 10..=19).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_look_back_is_re_read_after_kill_9_not_saved() {
    // Besides the open windows, the two look-back windows stay uncommitted: 10 + 9 + 8 (or,
    // with window 8 still open, 10 + 9 + 8 + 7) messages.
    look_back_across_kill_9("max_history_bytes = 0\n", 27..=34).await;
}

async fn look_back_across_kill_9(budget: &str, lag_range: std::ops::RangeInclusive<i64>) {
    let t0 = minute_from_now(300);
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("spans_in_look_back.sql"), RULE).unwrap();
    let topics = Topics::new();
    topics.create().await;
    let settings = format!("{}[traces]\ngap = \"1s\"\n", window("1m"));
    let toml = topics.pipeline_toml_checkpointed(&settings, "1s") + budget;
    let pipeline = pipeline_dir_with_rules(tmp.path(), &rules, &toml);
    let group = unique("lookback");
    let member = ["--instance-id", "faultline-0"];
    let p = producer();
    for s in minutes(t0, 0..10) {
        send(&p, &topics.spans, &s).await;
    }
    let mut first = Instance::start_with(&pipeline, &group, tmp.path().join("first.log"), &member);
    let mut alerts = TopicReader::new(&topics.alerts);
    wait_for_count(&mut alerts, "24", &first); // window 8
    std::thread::sleep(Duration::from_secs(4)); // a few checkpoints
    let lag = committed_lag_of(&group, &topics.spans, 0);
    assert!(
        lag_range.contains(&lag),
        "committed lag {lag}, expected {lag_range:?}:\n{}",
        first.log_text()
    );
    first.child.kill().unwrap(); // SIGKILL: no last checkpoint
    first.child.wait().unwrap();

    let mut rest = minutes(t0, 10..16);
    rest.push(flat_span("flush", 9_999, t0 + 70 * 60 * S, 10));
    for s in &rest {
        send(&p, &topics.spans, s).await;
    }
    let mut second =
        Instance::start_with(&pipeline, &group, tmp.path().join("second.log"), &member);
    wait_for_count(&mut alerts, "45", &second); // window 15
    assert!(second.stop().success());
    let text = second.log_text();
    assert!(
        text.contains("Shard restored from its checkpoint."),
        "{text}"
    );
    assert_eq!(
        counts(&alerts),
        expected(15),
        "every window's look-back as an uninterrupted run sees it:\n{text}"
    );
}
