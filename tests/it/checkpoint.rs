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
pub fn slow_minutes(first: u32, t0: i64, minutes: i64) -> Vec<serde_json::Value> {
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
    committed_lag_of(group, topic, 0)
}

/// Messages of one partition of `topic` after the group's committed offset.
pub fn committed_lag_of(group: &str, topic: &str, partition: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    let offset = match committed.elements()[0].offset() {
        Offset::Offset(o) => o,
        _ => 0,
    };
    let (_, high) = c
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .unwrap();
    high - offset
}

/// Polls the committed lag of partition 0 until it is at most `target` or `wait` passed;
/// the last value.
fn lag_within(group: &str, topic: &str, target: i64, wait: Duration) -> i64 {
    lag_of_within(group, topic, 0, target, wait)
}

fn lag_of_within(group: &str, topic: &str, partition: i32, target: i64, wait: Duration) -> i64 {
    let deadline = Instant::now() + wait;
    loop {
        let lag = committed_lag_of(group, topic, partition);
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

/// Waits for the first alert with `status` and these labels.
fn wait_for(
    reader: &mut TopicReader,
    status: &str,
    service: &str,
    logs: &[&Instance],
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        reader.poll(Duration::from_millis(200));
        if let Some(a) = reader
            .seen
            .iter()
            .find(|a| a["status"] == status && a["labels"]["service"] == service)
        {
            return a.clone();
        }
        let logs: Vec<String> = logs.iter().map(|i| i.log_text()).collect();
        assert!(
            Instant::now() < deadline,
            "no {status} {service}:\n{logs:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_message_is_dead_lettered_once_across_a_crash() {
    let topics = Topics::new();
    topics.create().await;
    let t0 = minute_from_now(240);
    let p = producer();
    let spans = slow_minutes(0, t0, 10);
    // In the last window, so every restart re-reads it (it is in an open window's range).
    let poison_at = spans.len() - 5;
    for (i, s) in spans.iter().enumerate() {
        if i == poison_at {
            produce(&p, &topics.spans, b"\x00\xffnot a record").await;
        }
        send(&p, &topics.spans, s).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let settings = format!("{}[traces]\ngap = \"1s\"\n", window("1m"));
    let pipeline = pipeline_dir(
        tmp.path(),
        &topics.pipeline_toml_checkpointed(&settings, "1s"),
    );
    let group = unique("poison");
    let member = ["--instance-id", "faultline-0"];
    for round in 0..3 {
        let log = tmp.path().join(format!("run-{round}.log"));
        let mut fl = Instance::start_with(&pipeline, &group, log, &member);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !fl.log_text().contains("First input message.") {
            assert!(Instant::now() < deadline, "{}", fl.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(3)); // past a checkpoint
        let lag = lag_within(
            &group,
            &topics.spans,
            OPEN_WINDOWS_MESSAGES,
            Duration::from_secs(30),
        );
        assert!(lag <= OPEN_WINDOWS_MESSAGES, "{}", fl.log_text());
        fl.child.kill().unwrap(); // a crash after every checkpoint that covers the poison
        fl.child.wait().unwrap();
    }
    let dead = read_topic(&topics.deadletter, 2, Duration::from_secs(5));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].1["source"]["offset"], poison_at, "{}", dead[0].1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebalance_mid_alert_moves_the_state_and_one_member_resolves() {
    rebalance_mid_alert(false).await;
}

/// The same under exactly-once outputs: the rebalance aborts the open transaction, and a
/// read_committed consumer sees no notification twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebalance_mid_alert_under_exactly_once_repeats_nothing() {
    rebalance_mid_alert(true).await;
}

async fn rebalance_mid_alert(exactly_once: bool) {
    let topics = Topics::new();
    topics.create_with(2, 1).await;
    let t0 = minute_from_now(240);
    let p = producer();
    // One service per partition, each firing from its first window.
    let mut n = 0;
    for (partition, service) in [(0, "a"), (1, "b")] {
        for m in 0..20 {
            for k in 0..10 {
                let span = flat_span(service, n, t0 + m * 60 * S + k * 5 * S, 900);
                produce_to(
                    &p,
                    &topics.spans,
                    Some(partition),
                    span.to_string().as_bytes(),
                )
                .await;
                n += 1;
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let settings = format!("{}[traces]\ngap = \"1s\"\n", window("1m"));
    let toml = topics.pipeline_toml_checkpointed(&settings, "1s")
        + &format!("exactly_once = {exactly_once}\n");
    let pipeline = pipeline_dir(tmp.path(), &toml);
    let group = unique("rebalance");
    let mut alerts = TopicReader::new(&topics.alerts);
    let mut first = Instance::start(&pipeline, &group, tmp.path().join("first.log"));
    let firing_a = wait_for(&mut alerts, "firing", "a", &[&first]);
    let firing_b = wait_for(&mut alerts, "firing", "b", &[&first]);
    for partition in [0, 1] {
        let lag = lag_of_within(
            &group,
            &topics.spans,
            partition,
            OPEN_WINDOWS_MESSAGES,
            Duration::from_secs(30),
        );
        assert!(lag <= OPEN_WINDOWS_MESSAGES, "{}", first.log_text());
    }
    // A second member joins: one of the shards moves to it with its firing alert.
    let second = Instance::start(&pipeline, &group, tmp.path().join("second.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !second
        .log_text()
        .contains("Shard restored from its checkpoint.")
    {
        assert!(Instant::now() < deadline, "{}", second.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Then both services recover; each alert resolves exactly once, as the episode that
    // started before the rebalance.
    for (partition, service) in [(0, "a"), (1, "b")] {
        for (i, at) in [21, 80].into_iter().enumerate() {
            let span = flat_span(
                service,
                60_000 + partition as u32 * 10 + i as u32,
                t0 + at * 60 * S,
                10,
            );
            produce_to(
                &p,
                &topics.spans,
                Some(partition),
                span.to_string().as_bytes(),
            )
            .await;
        }
    }
    let mut second = second;
    for (service, firing) in [("a", &firing_a), ("b", &firing_b)] {
        let resolved = wait_for(&mut alerts, "resolved", service, &[&first, &second]);
        assert_eq!(resolved["startsAt"], firing["startsAt"], "{resolved}");
    }
    std::thread::sleep(Duration::from_secs(3));
    alerts.poll(Duration::from_millis(500));
    for service in ["a", "b"] {
        let resolutions = alerts
            .seen
            .iter()
            .filter(|a| a["status"] == "resolved" && a["labels"]["service"] == service)
            .count();
        assert_eq!(resolutions, 1, "service {service}: {:#?}", alerts.seen);
    }
    if exactly_once {
        let mut payloads: Vec<String> = alerts.seen.iter().map(|a| a.to_string()).collect();
        let all = payloads.len();
        payloads.sort();
        payloads.dedup();
        assert_eq!(payloads.len(), all, "repeats: {:#?}", alerts.seen);
        assert!(
            first.log_text().contains("the open transaction is aborted"),
            "{}",
            first.log_text()
        );
    }
    assert!(first.stop().success());
    assert!(second.stop().success());
}

/// Deletes `topic` and waits until the broker no longer lists it.
async fn delete_topic(topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    admin
        .delete_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap();
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let md = c.fetch_metadata(None, Duration::from_secs(5)).unwrap();
        if !md.topics().iter().any(|t| t.name() == topic) {
            return;
        }
        assert!(Instant::now() < deadline, "{topic} still listed");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Starts an instance and waits until it ingested something and checkpointed.
fn run_until_checkpointed(
    pipeline: &std::path::Path,
    group: &str,
    log: std::path::PathBuf,
    topic: &str,
) -> Instance {
    let fl = Instance::start_with(pipeline, group, log, &["--instance-id", "faultline-0"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fl.log_text().contains("First input message.") {
        assert!(Instant::now() < deadline, "{}", fl.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let lag = lag_within(group, topic, OPEN_WINDOWS_MESSAGES, Duration::from_secs(30));
    assert!(lag <= OPEN_WINDOWS_MESSAGES, "{}", fl.log_text());
    fl
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_or_deleted_state_topic_is_reported_and_the_run_goes_on() {
    let topics = Topics::new();
    topics.create().await;
    let t0 = minute_from_now(240);
    let p = producer();
    for s in slow_minutes(0, t0, 10) {
        send(&p, &topics.spans, &s).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let settings = format!("{}[traces]\ngap = \"1s\"\n", window("1m"));
    let pipeline = pipeline_dir(
        tmp.path(),
        &topics.pipeline_toml_checkpointed(&settings, "1s"),
    );
    let group = unique("corrupt");
    let mut alerts = TopicReader::new(&topics.alerts);
    let crash = |mut fl: Instance| {
        fl.child.kill().unwrap();
        fl.child.wait().unwrap();
    };
    crash(run_until_checkpointed(
        &pipeline,
        &group,
        tmp.path().join("first.log"),
        &topics.spans,
    ));

    // Garbage as the newest record of the state topic: reported, the last good one used.
    // (A compacted topic takes keyed records only.)
    let garbage = rdkafka::producer::FutureRecord::to(&topics.state)
        .key("someone/else/0")
        .payload(&b"\x00 not a snapshot"[..]);
    p.send(garbage, Duration::from_secs(10)).await.unwrap();
    let fl = run_until_checkpointed(
        &pipeline,
        &group,
        tmp.path().join("second.log"),
        &topics.spans,
    );
    let text = fl.log_text();
    assert!(
        text.contains("Unreadable snapshot on the state topic"),
        "{text}"
    );
    assert!(
        text.contains("Shard restored from its checkpoint."),
        "{text}"
    );
    crash(fl);

    // The state topic gone: reported, recreated, the input read on from the committed
    // offsets; new input still raises and resolves alerts.
    delete_topic(&topics.state).await;
    let mut rest = slow_minutes(5_000, t0 + 10 * 60 * S, 3);
    rest.push(flat_span("svc", 6_000, t0 + 14 * 60 * S, 10));
    rest.push(flat_span("svc", 6_001, t0 + 80 * 60 * S, 10));
    for s in &rest {
        send(&p, &topics.spans, s).await;
    }
    let mut fl = Instance::start_with(
        &pipeline,
        &group,
        tmp.path().join("third.log"),
        &["--instance-id", "faultline-0"],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !alerts.seen.iter().any(|a| a["status"] == "resolved") {
        alerts.poll(Duration::from_millis(200));
        assert!(Instant::now() < deadline, "{}", fl.log_text());
    }
    let text = fl.log_text();
    assert!(text.contains("No checkpoint of the shard"), "{text}");
    assert!(fl.stop().success(), "{}", fl.log_text());
}
