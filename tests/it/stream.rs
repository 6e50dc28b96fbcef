//! The stream core on the real broker: alignment by trace id, lateness, idle partitions,
//! crash recovery, scale-out and co-partitioning checks.
//!
//! Event times are in the future where windows must close by event time alone: the idle
//! wall-clock advance cannot reach them, so results do not depend on timing.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::broker::*;
use crate::common::*;

const S: i64 = 1_000_000_000;

/// A rule that reports the shape of every trace: one alert per trace.
fn trace_shape_rules(dir: &Path) -> std::path::PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("trace_shape.sql"),
        "-- severity = \"info\"\n\
         SELECT trace_id, span_count AS value, log_count AS evidence_logs,\n\
                bottleneck_span AS evidence_bottleneck\n\
         FROM traces\n",
    )
    .unwrap();
    rules
}

fn child_span(
    trace: u32,
    id: u32,
    parent: u32,
    name: &str,
    start: i64,
    ms: i64,
) -> serde_json::Value {
    serde_json::json!({
        "signal": "span", "trace_id": trace_id(trace), "span_id": span_id(id),
        "parent_span_id": span_id(parent), "name": name, "kind": "internal", "service": "svc",
        "start_time_unix_nano": start, "end_time_unix_nano": start + ms * 1_000_000
    })
}

fn trace_log(trace: u32, at: i64) -> serde_json::Value {
    serde_json::json!({"signal": "log", "time_unix_nano": at, "trace_id": trace_id(trace),
        "severity": "ERROR", "body": "CUDA out of memory", "service": "svc"})
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_order_records_of_a_trace_align_and_one_beyond_lateness_is_late() {
    let topics = Topics::new();
    topics.create().await;
    let tmp = tempfile::tempdir().unwrap();
    let settings = format!("{}[traces]\ngap = \"2s\"\n", window("1m"));
    let pipeline = pipeline_dir_with_rules(
        tmp.path(),
        &trace_shape_rules(tmp.path()),
        &topics.pipeline_toml(&settings),
    );
    let p = producer();
    let t0 = minute_from_now(60);
    // Trace 1: its log and a child span first, its root 8 s out of order after another
    // trace moved the spans watermark past trace 1's session gap.
    send(&p, &topics.logs, &trace_log(1, t0 + 30 * S)).await;
    send(
        &p,
        &topics.spans,
        &child_span(1, 11, 1, "forward", t0 + 28 * S + S / 2, 3000),
    )
    .await;
    send(&p, &topics.spans, &flat_span("svc", 2, t0 + 40 * S, 10)).await;
    send(&p, &topics.spans, &flat_span("svc", 1, t0 + 28 * S, 4000)).await;
    // Much later: once the logs partition is idle, the watermark (t0+195 s) releases the
    // first minute.
    send(
        &p,
        &topics.spans,
        &flat_span("svc", 3, t0 + 200 * S - 10_000_000, 10),
    )
    .await;

    let mut fl = Instance::start(&pipeline, &unique("g"), tmp.path().join("faultline.log"));
    let alerts = read_topic(&topics.alerts, 2, Duration::from_secs(60));
    let mut got: Vec<(String, f64, serde_json::Value, serde_json::Value)> = alerts
        .iter()
        .map(|(_, a)| {
            (
                a["labels"]["trace_id"].as_str().unwrap().to_string(),
                a["evidence"]["value"].as_f64().unwrap(),
                a["evidence"]["values"]["logs"].clone(),
                a["evidence"]["values"]["bottleneck"].clone(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            (
                trace_id(1),
                2.0,
                serde_json::json!(1),
                serde_json::json!("forward")
            ),
            (
                trace_id(2),
                1.0,
                serde_json::json!(0),
                serde_json::json!("POST /v1/chat/completions")
            ),
        ],
        "log:\n{}",
        fl.log_text()
    );

    // A record of the released minute is now late: on the late topic with its delay.
    let offset = send(
        &p,
        &topics.spans,
        &flat_span("svc", 4, t0 + 10 * S - 10_000_000, 10),
    )
    .await;
    let late = read_topic(&topics.late, 1, Duration::from_secs(30));
    assert_eq!(late.len(), 1, "log:\n{}", fl.log_text());
    let l = &late[0].1;
    assert_valid("late.json", l);
    assert_eq!(l["source"]["offset"], offset);
    assert_eq!(l["record"]["trace_id"], trace_id(4));
    assert_eq!(
        l["delay_ms"], 185_000.0,
        "watermark t0+195 s, event time t0+10 s"
    );
    assert!(fl.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_partition_does_not_stall_windows_on_the_others() {
    let topics = Topics::new();
    topics.create_with(2, 1).await;
    let tmp = tempfile::tempdir().unwrap();
    let settings = format!("{}[traces]\ngap = \"1s\"\n", window("1m"));
    let pipeline = pipeline_dir(tmp.path(), &topics.pipeline_toml(&settings));
    let p = producer();
    let t0 = minute_from_now(60);
    // Partition 1 says one thing at the start, then nothing.
    produce_to(
        &p,
        &topics.spans,
        Some(1),
        flat_span("quiet", 0, t0, 10).to_string().as_bytes(),
    )
    .await;
    let mut fl = Instance::start(&pipeline, &unique("g"), tmp.path().join("faultline.log"));
    // Partition 0 keeps going: slow requests, ten seconds of event time every 100 ms.
    let mut reader = TopicReader::new(&topics.alerts);
    let mut first_alert = None;
    for i in 0..100u32 {
        let s = flat_span("busy", 100 + i, t0 + i as i64 * 10 * S, 900);
        produce_to(&p, &topics.spans, Some(0), s.to_string().as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if reader.poll(Duration::ZERO) > 0 {
            first_alert = Some(i);
            break;
        }
    }
    // Alerts came while partition 0 was still sending and partition 1 had been quiet.
    assert!(first_alert.is_some(), "windows stalled:\n{}", fl.log_text());
    assert_eq!(reader.seen[0]["labels"]["service"], "busy");
    assert!(fl.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bursty_topic_goes_idle_after_its_own_idle_timeout() {
    let topics = Topics::new();
    topics.create_with(1, 1).await;
    let tmp = tempfile::tempdir().unwrap();
    // The window's idle timeout never passes in this test; the metrics and logs topics'
    // own 1 s does. (The logs topic stays empty: it is idle after its 1 s too.)
    let settings = "[window]\nsize = \"1m\"\nmax_out_of_orderness = \"5s\"\n\
                    idle_timeout = \"1h\"\n[traces]\ngap = \"1s\"\n";
    let toml = topics.pipeline_toml(settings).replace(
        "signal = \"metrics\"\n",
        "signal = \"metrics\"\nidle_timeout = \"1s\"\n",
    );
    let toml = toml.replace(
        "signal = \"logs\"\n",
        "signal = \"logs\"\nidle_timeout = \"1s\"\n",
    );
    let pipeline = pipeline_dir(tmp.path(), &toml);
    let p = producer();
    let t0 = minute_from_now(60);
    let mut fl = Instance::start(&pipeline, &unique("g"), tmp.path().join("faultline.log"));
    // Spans go on (ten seconds of event time every 100 ms); a gauge comes every 4 s of wall
    // time, stamped with the spans' event time, as a scrape would be. Until the metrics
    // partition counts as idle it holds the watermark at its last gauge's time.
    let mut reader = TopicReader::new(&topics.alerts);
    let mut first_alert = None;
    for i in 0..150u32 {
        let t = t0 + i as i64 * 10 * S;
        let s = flat_span("busy", 100 + i, t, 900);
        produce_to(&p, &topics.spans, Some(0), s.to_string().as_bytes()).await;
        if i % 40 == 0 {
            let gauge = serde_json::json!({"signal": "metric", "name": "hw.temperature",
                "value": 60, "time_unix_nano": t, "host": "gpu-1"});
            produce_to(&p, &topics.metrics, Some(0), gauge.to_string().as_bytes()).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if reader.poll(Duration::ZERO) > 0 {
            first_alert = Some(i);
            break;
        }
    }
    // A window closed before the second burst: by the metrics topic's own idle timeout, not
    // by the next gauge moving its watermark on.
    assert!(
        first_alert.is_some_and(|i| i < 40),
        "first alert after {first_alert:?} steps:\n{}",
        fl.log_text()
    );
    assert_eq!(reader.seen[0]["labels"]["service"], "busy");
    assert!(fl.stop().success());
}

/// Slow requests of `service` in every even minute, fast ones in odd minutes, for `minutes`
/// minutes from `t0`, then one fast request an hour later that closes every window.
pub fn workload(service: &str, first: u32, t0: i64, minutes: i64) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut n = first;
    for m in 0..minutes {
        for k in 0..10 {
            let ms = if m % 2 == 0 { 900 } else { 50 };
            out.push(flat_span(service, n, t0 + m * 60 * S + k * 5 * S, ms));
            n += 1;
        }
    }
    out.push(flat_span(service, n, t0 + (minutes + 60) * 60 * S, 10));
    out
}

fn ids(alerts: &[serde_json::Value]) -> BTreeSet<String> {
    alerts
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

/// Reads the alert topic until `expected` distinct ids arrived or `timeout` passed.
fn distinct_alerts(topic: &str, expected: usize, timeout: Duration) -> BTreeSet<String> {
    let mut reader = TopicReader::new(topic);
    let deadline = Instant::now() + timeout;
    loop {
        reader.poll(Duration::from_millis(200));
        let got = ids(&reader.seen);
        if got.len() >= expected || Instant::now() > deadline {
            return got;
        }
    }
}

/// The alert ids a single clean instance produces from `topics`' input.
async fn clean_run_ids(
    topics: &Topics,
    settings: &str,
    expected: usize,
    dir: &Path,
) -> BTreeSet<String> {
    let clean = Topics {
        alerts: format!("{}.clean", topics.alerts),
        ..Topics::new()
    };
    let reference = Topics {
        logs: topics.logs.clone(),
        metrics: topics.metrics.clone(),
        spans: topics.spans.clone(),
        alerts: clean.alerts.clone(),
        deadletter: clean.deadletter,
        late: clean.late,
        suggestions: clean.suggestions,
        review: clean.review,
        incidents: clean.incidents,
        feedback: clean.feedback,
        watermarks: clean.watermarks,
        state: clean.state,
    };
    let pipeline = pipeline_dir(&dir.join("clean"), &reference.pipeline_toml(settings));
    let mut fl = Instance::start(&pipeline, &unique("clean"), dir.join("clean.log"));
    let got = distinct_alerts(&reference.alerts, expected, Duration::from_secs(90));
    assert!(fl.stop().success());
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_then_restart_produces_every_alert_of_a_clean_run() {
    let topics = Topics::new();
    topics.create().await;
    let tmp = tempfile::tempdir().unwrap();
    let settings = format!("{}[traces]\ngap = \"1s\"\n", window("1m"));
    let pipeline = pipeline_dir(tmp.path(), &topics.pipeline_toml(&settings));
    let minutes = 120;
    // Each slow minute fires, and resolves in the fast minute after it.
    let expected = minutes as usize;
    // Input keeps arriving while the first instance runs, so it dies mid-stream.
    let spans = topics.spans.clone();
    let feed = tokio::spawn(async move {
        let p = producer();
        for (i, s) in workload("svc", 0, minute_from_now(180), minutes)
            .iter()
            .enumerate()
        {
            send(&p, &spans, s).await;
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }
    });

    let group = unique("g");
    let mut reader = TopicReader::new(&topics.alerts);
    // Static membership: the restarted instance gets its partitions back at once.
    let member = ["--instance-id", "faultline-0"];
    let mut first = Instance::start_with(&pipeline, &group, tmp.path().join("first.log"), &member);
    let deadline = Instant::now() + Duration::from_secs(60);
    // Kill once a third of the alerts are out: some input is committed, some is not.
    while reader.poll(Duration::from_millis(5)) < expected / 3 {
        assert!(
            Instant::now() < deadline,
            "too few alerts:\n{}",
            first.log_text()
        );
    }
    first.child.kill().unwrap(); // SIGKILL: no flush, no commit
    first.child.wait().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    reader.poll(Duration::from_millis(500));
    let before_restart = ids(&reader.seen);
    assert!(
        before_restart.len() < expected,
        "the kill came after the last alert; the test needs more input"
    );

    let mut second =
        Instance::start_with(&pipeline, &group, tmp.path().join("second.log"), &member);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !second.log_text().contains("First input message.") {
        assert!(Instant::now() < deadline, "{}", second.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = second.log_text();
    let after_ms: u64 = text
        .split("after_ms=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    // Without static membership this waited for the dead member's session timeout: 43 s
    // when tried.
    assert!(
        after_ms <= 10_000,
        "first record {after_ms} ms after the restart:\n{text}"
    );
    feed.await.unwrap();
    let after = distinct_alerts(&topics.alerts, expected, Duration::from_secs(90));
    assert!(second.stop().success());
    assert_eq!(after.len(), expected, "log:\n{}", second.log_text());
    assert!(before_restart.is_subset(&after));
    let clean = clean_run_ids(&topics, &settings, expected, tmp.path()).await;
    assert_eq!(after, clean);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_then_one_leaves_produce_the_alerts_of_one() {
    let topics = Topics::new();
    topics.create_with(2, 1).await;
    let tmp = tempfile::tempdir().unwrap();
    let settings = format!("{}[traces]\ngap = \"1s\"\n", window("1m"));
    let pipeline = pipeline_dir(tmp.path(), &topics.pipeline_toml(&settings));
    let p = producer();
    let t0 = minute_from_now(120);
    let minutes = 20;
    // Each service's traces on one partition (keyed by trace id, the trace ids of one
    // service hash alike here), so per-service aggregates are whole on one member.
    let a = workload("svc-a", 0, t0, minutes);
    let b = workload("svc-b", 10_000, t0, minutes);
    let half = a.len() / 2;
    for (i, s) in a[..half].iter().enumerate() {
        produce_to(&p, &topics.spans, Some(0), s.to_string().as_bytes()).await;
        produce_to(&p, &topics.spans, Some(1), b[i].to_string().as_bytes()).await;
    }
    let group = unique("g");
    let mut x = Instance::start(&pipeline, &group, tmp.path().join("x.log"));
    let mut y = Instance::start(&pipeline, &group, tmp.path().join("y.log"));
    // Both members own a partition and alerts are out.
    let mut reader = TopicReader::new(&topics.alerts);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(x.log_text().contains("Partitions assigned")
        && y.log_text().contains("Partitions assigned"))
        || reader.poll(Duration::from_millis(200)) < 2
    {
        assert!(
            Instant::now() < deadline,
            "x:\n{}\ny:\n{}",
            x.log_text(),
            y.log_text()
        );
    }
    assert!(x.stop().success(), "{}", x.log_text());
    for (i, s) in a[half..].iter().enumerate() {
        produce_to(&p, &topics.spans, Some(0), s.to_string().as_bytes()).await;
        produce_to(
            &p,
            &topics.spans,
            Some(1),
            b[half + i].to_string().as_bytes(),
        )
        .await;
    }
    // Per service, each slow minute fires and resolves in the fast minute after it.
    let expected = 2 * minutes as usize;
    let got = distinct_alerts(&topics.alerts, expected, Duration::from_secs(90));
    assert!(y.stop().success());
    assert_eq!(got.len(), expected, "y:\n{}", y.log_text());
    let clean = clean_run_ids(&topics, &settings, expected, tmp.path()).await;
    assert_eq!(got, clean);
}

#[tokio::test(flavor = "multi_thread")]
async fn input_topics_with_different_partition_counts_are_refused() {
    let topics = Topics::new();
    topics.create().await;
    // Recreate the spans input with 3 partitions under another name.
    let spans3 = format!("{}.3", topics.spans);
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .create()
            .unwrap();
    admin
        .create_topics(
            &[rdkafka::admin::NewTopic::new(
                &spans3,
                3,
                rdkafka::admin::TopicReplication::Fixed(1),
            )],
            &rdkafka::admin::AdminOptions::new(),
        )
        .await
        .unwrap();
    let t = Topics {
        spans: spans3,
        ..Topics::new()
    };
    let t = Topics {
        logs: topics.logs.clone(),
        metrics: topics.metrics.clone(),
        ..t
    };
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = pipeline_dir(tmp.path(), &t.pipeline_toml(&window("1m")));
    let out = faultline()
        .args(["run", "--brokers", &brokers(), "--pipeline"])
        .arg(&pipeline)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not co-partitioned"), "{err}");
    assert!(err.contains(&format!("\"{}\": 3", t.spans)), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn consumption_pauses_while_outputs_await_acknowledgement() {
    let topics = Topics::new();
    topics.create().await;
    let tmp = tempfile::tempdir().unwrap();
    // Slow acknowledgements (the producer lingers 1.5 s) and room for only 5 in flight.
    let settings = format!(
        "{}[limits]\nmax_in_flight_outputs = 5\n[kafka.producer]\n\"linger.ms\" = \"1500\"\n",
        window("1m")
    );
    let pipeline = pipeline_dir(tmp.path(), &topics.pipeline_toml(&settings));
    let p = producer();
    let n = 40;
    for i in 0..n {
        produce(&p, &topics.spans, format!("not json {i}").as_bytes()).await;
    }
    let mut fl = Instance::start(&pipeline, &unique("g"), tmp.path().join("faultline.log"));
    let dead = read_topic(&topics.deadletter, n, Duration::from_secs(60));
    assert_eq!(
        dead.len(),
        n,
        "every dead letter delivered:\n{}",
        fl.log_text()
    );
    let offsets: Vec<i64> = dead
        .iter()
        .map(|(_, d)| d["source"]["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(offsets, (0..n as i64).collect::<Vec<_>>());
    assert!(fl.stop().success());
    let log = fl.log_text();
    let paused = log.find("Backpressure. paused=true").expect("paused");
    assert!(
        log[paused..].contains("Backpressure. paused=false"),
        "{log}"
    );
}
