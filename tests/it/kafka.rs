//! The pipeline as a consumer-group member on a real Apache Kafka broker: input formats,
//! dead letters, commits.

use std::collections::BTreeSet;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::broker::*;
use crate::common::*;

pub fn services(alerts: &[(i64, serde_json::Value)]) -> BTreeSet<String> {
    alerts
        .iter()
        .map(|(_, a)| a["labels"]["service"].as_str().unwrap().to_string())
        .collect()
}

/// Root spans of 800 ms for `service`, ten per message kind.
fn slow(first: u32, start: i64) -> Vec<(u32, i64, i64)> {
    (0..10)
        .map(|i| (first + i, start + i as i64 * 1_000_000_000, 800))
        .collect()
}

fn proto_spans(service: &str, spans: &[(u32, i64, i64)]) -> Vec<u8> {
    let json = otlp_json_spans(service, spans);
    let req: ExportTraceServiceRequest = serde_json::from_value(json).unwrap();
    req.encode_to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_proto_json_and_flat_input_come_out_as_alerts() {
    let topics = Topics::new();
    topics.create().await;
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = pipeline_dir(tmp.path(), &topics.pipeline_toml(&window("1m")));
    let p = producer();
    let t0 = minute_ago(10);

    // OTLP protobuf, one export request with ten spans.
    produce(&p, &topics.spans, &proto_spans("svc-proto", &slow(0, t0))).await;
    // OTLP/JSON, a whole batch per message.
    produce(
        &p,
        &topics.spans,
        otlp_json_spans("svc-json-batch", &slow(100, t0))
            .to_string()
            .as_bytes(),
    )
    .await;
    // OTLP/JSON, one span per message.
    for s in slow(200, t0) {
        let one = otlp_json_spans("svc-json-span", &[s]);
        produce(&p, &topics.spans, one.to_string().as_bytes()).await;
    }
    // Flat JSON records.
    for (n, start, ms) in slow(300, t0) {
        produce(
            &p,
            &topics.spans,
            flat_span("svc-flat", n, start, ms).to_string().as_bytes(),
        )
        .await;
    }
    // Healthy traffic: fast requests fire nothing.
    for (n, start, _) in slow(400, t0) {
        produce(
            &p,
            &topics.spans,
            flat_span("svc-fast", n, start, 20).to_string().as_bytes(),
        )
        .await;
    }
    // Logs and metrics topics are consumed too (OTLP/JSON and flat).
    let log = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": t0.to_string(), "severityNumber": 9, "body": {"stringValue": "ok"}}]}]}]});
    produce(&p, &topics.logs, log.to_string().as_bytes()).await;
    let metric = serde_json::json!({"name": "vllm:num_requests_waiting", "value": 1,
        "time_unix_nano": t0, "service": "svc-proto"});
    produce(&p, &topics.metrics, metric.to_string().as_bytes()).await;

    let mut fl = Instance::start(&pipeline, &unique("g"), tmp.path().join("faultline.log"));
    let alerts = read_topic(&topics.alerts, 4, Duration::from_secs(60));
    let expected: BTreeSet<String> = ["svc-proto", "svc-json-batch", "svc-json-span", "svc-flat"]
        .map(String::from)
        .into();
    assert_eq!(services(&alerts), expected, "log:\n{}", fl.log_text());
    for (_, a) in &alerts {
        assert_valid("alert.json", a);
        assert_eq!(a["labels"]["alertname"], "RequestLatencyP95High");
        assert_eq!(a["evidence"]["values"]["requests"], 10);
        assert_eq!(a["status"], "firing");
    }
    // Nothing else arrives: no alert for the healthy service, no dead letters.
    assert_eq!(
        read_topic(&topics.alerts, 5, Duration::from_secs(3)).len(),
        4
    );
    assert!(read_topic(&topics.deadletter, 1, Duration::from_secs(1)).is_empty());
    // Ctrl-C stops it as cleanly as SIGTERM.
    assert!(fl.signal("-INT").success(), "{}", fl.log_text());
    assert!(fl.log_text().contains("Stopped."), "{}", fl.log_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_messages_land_on_dead_letter_with_offsets_and_neighbours_still_alert() {
    let topics = Topics::new();
    topics.create().await;
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = pipeline_dir(tmp.path(), &topics.pipeline_toml(&window("1m")));
    let p = producer();
    let t0 = minute_ago(10);

    let mut truncated = proto_spans("svc", &slow(0, t0));
    truncated.truncate(truncated.len() - 7);
    let wrong_types = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": trace_id(1), "spanId": span_id(1), "name": "x",
        "startTimeUnixNano": {"nanos": 1}}]}]}]});
    let big = format!(
        "{{\"signal\":\"span\",\"name\":\"{}\"}}",
        "x".repeat(2 << 20)
    );
    let garbage: Vec<(Vec<u8>, &str)> = vec![
        (truncated, "invalid_protobuf"),
        (b"{\"resourceSpans\": [{".to_vec(), "invalid_json"),
        (wrong_types.to_string().into_bytes(), "invalid_record"),
        (big.into_bytes(), "oversized"),
        (
            b"{\"signal\": \"span\", \"name\": \"\xc3\x28\"}".to_vec(),
            "invalid_utf8",
        ),
    ];
    let mut expected_dead = Vec::new();
    let mut n = 0;
    for (payload, kind) in &garbage {
        // A good span before and after every bad message.
        for _ in 0..2 {
            let s = flat_span("svc-ok", n, t0 + n as i64 * 1_000_000_000, 900);
            produce(&p, &topics.spans, s.to_string().as_bytes()).await;
            n += 1;
        }
        let offset = produce(&p, &topics.spans, payload).await;
        expected_dead.push((offset, *kind));
    }

    let mut fl = Instance::start(&pipeline, &unique("g"), tmp.path().join("faultline.log"));
    let dead = read_topic(&topics.deadletter, garbage.len(), Duration::from_secs(60));
    let got: Vec<(i64, &str)> = dead
        .iter()
        .map(|(_, d)| {
            assert_valid("deadletter.json", d);
            assert_eq!(d["source"]["kind"], "kafka");
            assert_eq!(d["source"]["topic"], topics.spans.as_str());
            assert_eq!(d["source"]["partition"], 0);
            assert!(!d["reason"].as_str().unwrap().is_empty());
            (
                d["source"]["offset"].as_i64().unwrap(),
                d["error_kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected_dead, "log:\n{}", fl.log_text());
    assert_eq!(dead[3].1["payload_truncated"], true);
    assert_eq!(dead[4].1["payload_encoding"], "base64");

    let alerts = read_topic(&topics.alerts, 1, Duration::from_secs(60));
    assert_eq!(services(&alerts), BTreeSet::from(["svc-ok".to_string()]));
    assert_eq!(
        alerts[0].1["evidence"]["values"]["requests"], n,
        "every good span counted"
    );
    // Each dead letter is logged once with its location.
    assert!(fl.stop().success());
    let log = fl.log_text();
    for (offset, _) in &expected_dead {
        let needle = format!("{}/0@{offset}", topics.spans);
        assert_eq!(
            log.matches(&needle).count(),
            1,
            "{needle} logged once:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_commits_delivered_input_but_not_records_of_open_windows() {
    let topics = Topics::new();
    topics.create().await;
    let tmp = tempfile::tempdir().unwrap();
    // One-hour windows: a record stamped two hours ahead cannot be evaluated yet.
    let pipeline = pipeline_dir(tmp.path(), &topics.pipeline_toml(&window("1h")));
    let p = producer();
    let past = minute_ago(180);
    let mut last_past = 0;
    // A slow hour (the alert fires) and a fast one (it resolves): once resolved, nothing
    // needs their input any more.
    let hour = 3_600_000_000_000;
    let spans = slow(0, past).into_iter().chain(
        slow(20, past + hour)
            .into_iter()
            .map(|(n, s, _)| (n, s, 20)),
    );
    for (n, start, ms) in spans {
        last_past = produce(
            &p,
            &topics.spans,
            flat_span("svc", n, start, ms).to_string().as_bytes(),
        )
        .await;
    }
    let future = minute_ago(-120);
    let held = produce(
        &p,
        &topics.spans,
        flat_span("svc", 50, future, 900).to_string().as_bytes(),
    )
    .await;
    assert_eq!(held, last_past + 1);

    let group = unique("g");
    let mut fl = Instance::start(&pipeline, &group, tmp.path().join("faultline.log"));
    let alerts = read_topic(&topics.alerts, 2, Duration::from_secs(60));
    let statuses: Vec<_> = alerts
        .iter()
        .map(|(_, a)| a["status"].as_str().unwrap())
        .collect();
    let status = fl.stop();
    assert_eq!(statuses, ["firing", "resolved"], "{}", fl.log_text());
    assert!(status.success(), "{}", fl.log_text());

    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topics.spans, 0);
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    let offset = committed.find_partition(&topics.spans, 0).unwrap().offset();
    // Everything up to the held record is committed; the held record is read again after
    // a restart. (While an alert is firing, the input of its windows is held too; see
    // `stream::two_instances_then_one_leaves_produce_the_alerts_of_one`.)
    assert_eq!(offset, Offset::Offset(held), "log:\n{}", fl.log_text());
}

/// `faultline alerts --brokers` reads the alerts topic (every partition, in notification time
/// order) and filters it like a file.
#[tokio::test(flavor = "multi_thread")]
async fn alerts_reads_and_filters_the_alerts_topic() {
    let topic = unique("alerts-topic");
    let p = producer();
    let alert = |id: &str, name: &str, status: &str, start: &str| {
        serde_json::json!({"id": id, "rule_id": name, "status": status,
            "labels": {"alertname": name, "severity": "critical"},
            "annotations": {"summary": format!("{name} {status}")},
            "startsAt": start, "endsAt": "2026-11-01T12:30:00Z"})
    };
    // Produced out of time order: the command sorts by notification time.
    send(
        &p,
        &topic,
        &alert("b", "Later", "firing", "2026-11-01T12:20:00Z"),
    )
    .await;
    send(
        &p,
        &topic,
        &alert("a", "Earlier", "firing", "2026-11-01T12:10:00Z"),
    )
    .await;
    let out = run_ok(faultline().args(["alerts", "--brokers", &brokers(), "--topic", &topic]));
    let text = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().nth(4).unwrap())
        .collect();
    assert_eq!(names, ["Earlier", "Later"], "{text}");
    let out = run_ok(faultline().args([
        "alerts",
        "--brokers",
        &brokers(),
        "--topic",
        &topic,
        "--alertname",
        "Later",
    ]));
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
}
