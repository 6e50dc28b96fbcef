//! State checkpoints on the real broker: while an alert keeps firing, committed offsets
//! reach the end of the input (less its open windows) within a checkpoint interval — and
//! stay pinned without checkpoints, which shows what the test catches; after `kill -9` the
//! restarted instance restores the firing alert from its checkpoint, re-reads no more than
//! that lag, and resolves the alert it did not see start.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::broker::*;
use crate::common::*;

const S: i64 = 1_000_000_000;

/// `minutes` minutes of slow requests from `t0` (numbered from `first`): the latency alert
/// fires in the first window and keeps firing.
fn slow_minutes(first: u32, t0: i64, minutes: i64) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for m in 0..minutes {
        for k in 0..10 {
            let n = first + (m * 10 + k) as u32;
            out.push(flat_span("svc", n, t0 + m * 60 * S + k * 5 * S, 900));
        }
    }
    out
}

/// Messages of partition 0 of `topic` after the group's committed offset.
fn committed_lag(group: &str, topic: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    let offset = match committed.elements()[0].offset() {
        Offset::Offset(o) => o,
        _ => 0,
    };
    let (_, high) = c
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    high - offset
}

/// Polls the committed lag until it is at most `target` or `wait` passed; the last value.
fn lag_within(group: &str, topic: &str, target: i64, wait: Duration) -> i64 {
    let deadline = Instant::now() + wait;
    loop {
        let lag = committed_lag(group, topic);
        if lag <= target || Instant::now() > deadline {
            return lag;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The open windows at the end of the input: the last minute and the one before it (out
/// of order by up to the window), 10 messages each.
const OPEN_WINDOWS_MESSAGES: i64 = 20;

#[tokio::test(flavor = "multi_thread")]
async fn a_firing_alert_no_longer_pins_offsets_and_survives_kill_9() {
    let t0 = minute_from_now(240);
    let minutes = 30;
    let settings = format!("{}[traces]\ngap = \"1s\"\n", window("1m"));
    let tmp = tempfile::tempdir().unwrap();
    let p = producer();

    // Without checkpoints the firing alert's windows stay uncommitted: the broken property.
    let off = Topics::new();
    off.create().await;
    for s in slow_minutes(0, t0, minutes) {
        send(&p, &off.spans, &s).await;
    }
    let off_dir = tmp.path().join("off");
    let pipeline = pipeline_dir(&off_dir, &off.pipeline_toml_checkpointed(&settings, "0s"));
    let group = unique("off");
    let mut fl = Instance::start(&pipeline, &group, off_dir.join("run.log"));
    let mut alerts = TopicReader::new(&off.alerts);
    let deadline = Instant::now() + Duration::from_secs(60);
    while alerts.poll(Duration::from_millis(200)) == 0 {
        assert!(Instant::now() < deadline, "{}", fl.log_text());
    }
    std::thread::sleep(Duration::from_secs(5));
    let pinned = committed_lag(&group, &off.spans);
    assert!(fl.stop().success());
    assert!(
        pinned > 10 * (minutes - 3),
        "without checkpoints the firing alert holds its input: lag {pinned}"
    );

    // With checkpoints every 2 s: the lag comes down to the open windows.
    let on = Topics::new();
    on.create().await;
    for s in slow_minutes(0, t0, minutes) {
        send(&p, &on.spans, &s).await;
    }
    let on_dir = tmp.path().join("on");
    let pipeline = pipeline_dir(&on_dir, &on.pipeline_toml_checkpointed(&settings, "2s"));
    let group = unique("on");
    let member = ["--instance-id", "faultline-0"];
    let mut first = Instance::start_with(&pipeline, &group, on_dir.join("first.log"), &member);
    let mut alerts = TopicReader::new(&on.alerts);
    let deadline = Instant::now() + Duration::from_secs(60);
    while alerts.poll(Duration::from_millis(200)) == 0 {
        assert!(Instant::now() < deadline, "{}", first.log_text());
    }
    let firing = alerts.seen[0].clone();
    assert_eq!(firing["status"], "firing", "{firing}");
    let lag = lag_within(
        &group,
        &on.spans,
        OPEN_WINDOWS_MESSAGES,
        Duration::from_secs(20),
    );
    assert!(
        lag <= OPEN_WINDOWS_MESSAGES,
        "committed lag {lag} with checkpoints every 2 s:\n{}",
        first.log_text()
    );
    first.child.kill().unwrap(); // SIGKILL: no last checkpoint, no commit
    first.child.wait().unwrap();

    // The alert goes on firing, then clears; the restarted instance reports the end of the
    // episode that started before the crash.
    let mut rest = slow_minutes(10_000, t0 + minutes * 60 * S, 5);
    rest.push(flat_span("svc", 20_000, t0 + (minutes + 6) * 60 * S, 10));
    rest.push(flat_span("svc", 20_001, t0 + (minutes + 70) * 60 * S, 10));
    for s in &rest {
        send(&p, &on.spans, s).await;
    }
    let mut second = Instance::start_with(&pipeline, &group, on_dir.join("second.log"), &member);
    let deadline = Instant::now() + Duration::from_secs(90);
    let resolved = loop {
        alerts.poll(Duration::from_millis(200));
        if let Some(r) = alerts.seen.iter().find(|a| a["status"] == "resolved") {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "{}", second.log_text());
    };
    assert_eq!(
        resolved["startsAt"],
        firing["startsAt"],
        "the episode survived the crash:\n{}",
        second.log_text()
    );
    let text = second.log_text();
    assert!(
        text.contains("Shard restored from its checkpoint."),
        "{text}"
    );
    assert!(second.stop().success());
    let text = second.log_text();
    let ingested: i64 = text
        .rsplit("messages=")
        .next()
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    // It re-read at most the committed lag (open windows), then the new input.
    assert!(
        ingested <= OPEN_WINDOWS_MESSAGES + rest.len() as i64,
        "{ingested} messages ingested after the restart:\n{text}"
    );
    assert_eq!(
        alerts
            .seen
            .iter()
            .filter(|a| a["status"] == "firing" && a["startsAt"] != firing["startsAt"])
            .count(),
        0,
        "no second episode was started by the restart"
    );
}
