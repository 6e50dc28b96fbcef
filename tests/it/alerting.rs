//! Alerting on the real broker: an incident fires then resolves, grouped and inhibited; rules
//! reload while running.

use std::time::{Duration, Instant};

use crate::broker::*;
use crate::common::*;

const S: i64 = 1_000_000_000;

/// Waits until the instance's log contains `needle`.
fn wait_for_log(fl: &Instance, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fl.log_text().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in:\n{}",
            fl.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_reload_keeps_the_old_rules_when_a_file_is_broken() {
    let topics = Topics::new();
    topics.create().await;
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::copy(
        repo().join("tests/rules/latency/latency_p95_now.sql"),
        rules.join("latency.sql"),
    )
    .unwrap();
    let settings = format!("{}[traces]\ngap = \"1s\"\n", window("1m"));
    let pipeline = pipeline_dir_with_rules(tmp.path(), &rules, &topics.pipeline_toml(&settings));
    let p = producer();
    let f = minute_from_now(120);
    let m = 60 * S;
    let mut n = 0;
    // Slow requests in minute `at`, then a fast one ten minutes later that closes it.
    let mut phase = |at: i64| {
        let mut out = Vec::new();
        for i in 0..10 {
            out.push(flat_span("svc", n, f + at * m + i * S, 900));
            n += 1;
        }
        out.push(flat_span("svc", n, f + (at + 10) * m, 10));
        n += 1;
        out
    };
    let mut reader = TopicReader::new(&topics.alerts);
    let mut fl = Instance::start(&pipeline, &unique("g"), tmp.path().join("faultline.log"));
    for s in phase(0) {
        send(&p, &topics.spans, &s).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while reader.poll(Duration::from_millis(200)) < 1 {
        assert!(Instant::now() < deadline, "{}", fl.log_text());
    }

    // A broken rule file and SIGHUP: reported with file and line, the old rule keeps going.
    std::fs::write(
        rules.join("broken.sql"),
        "-- severity = \"info\"\nSELEKT nonsense\n",
    )
    .unwrap();
    fl.send_signal("-HUP");
    wait_for_log(&fl, "Rule reload failed");
    assert!(fl
        .log_text()
        .contains(&format!("{}:2", rules.join("broken.sql").display())));
    for s in phase(20) {
        send(&p, &topics.spans, &s).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while reader.poll(Duration::from_millis(200)) < 3 {
        assert!(Instant::now() < deadline, "{}", fl.log_text());
    }
    let statuses: Vec<(&str, &str)> = reader
        .seen
        .iter()
        .map(|a| {
            (
                a["status"].as_str().unwrap(),
                a["labels"]["alertname"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("firing", "RequestLatencyP95High"),
            ("resolved", "RequestLatencyP95High"),
            ("firing", "RequestLatencyP95High")
        ]
    );

    // Fixing the file is picked up without a signal, and the new rule runs.
    std::fs::write(
        rules.join("broken.sql"),
        "-- alert = \"SpansSeen\"\n-- severity = \"info\"\nSELECT service, count(*) AS value FROM spans GROUP BY service\n",
    )
    .unwrap();
    wait_for_log(&fl, "Rules reloaded. rules=2");
    for s in phase(40) {
        send(&p, &topics.spans, &s).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reader
        .seen
        .iter()
        .any(|a| a["labels"]["alertname"] == "SpansSeen")
    {
        reader.poll(Duration::from_millis(200));
        assert!(Instant::now() < deadline, "{}", fl.log_text());
    }
    assert!(fl.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incident_fires_then_resolves_grouped_and_inhibited() {
    let topics = Topics::new();
    topics.create().await;
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("latency.sql"),
        "-- alert = \"LatencyHigh\"\n-- severity = \"warning\"\n\
         SELECT service, host, percentile_cont(duration_ms, 0.95) AS value FROM spans\n\
         WHERE is_root GROUP BY service, host HAVING percentile_cont(duration_ms, 0.95) > 500\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("oom.sql"),
        "-- alert = \"GpuOutOfMemory\"\n-- severity = \"critical\"\n\
         SELECT host, count(*) AS value FROM logs\n\
         WHERE body LIKE '%CUDA out of memory%' GROUP BY host\n",
    )
    .unwrap();
    let settings = format!(
        "{}[traces]\ngap = \"1s\"\n\
         [alerting]\ngroup_by = [\"host\"]\ngroup_wait = \"1m\"\ngroup_interval = \"1m\"\n\
         [[alerting.inhibit]]\nsource = {{ alertname = \"GpuOutOfMemory\" }}\n\
         target = {{ severity = \"warning\" }}\nequal = [\"host\"]\n",
        window("1m")
    );
    let pipeline = pipeline_dir_with_rules(tmp.path(), &rules, &topics.pipeline_toml(&settings));
    let p = producer();
    let f = minute_from_now(120);
    let m = 60 * S;
    let mut n = 0;
    let mut span = |service: &str, host: &str, at: i64, ms: i64| {
        n += 1;
        let mut s = flat_span(service, n, at, ms);
        s["host"] = host.into();
        s
    };
    // Minutes 0-2: both hosts slow, and h1's GPU runs out of memory. Minutes 3-4: healthy.
    // An hour later one request closes every window.
    let mut spans = Vec::new();
    let mut logs = Vec::new();
    for minute in 0..5 {
        let ms = if minute < 3 { 900 } else { 40 };
        for i in 0..6 {
            let at = f + minute * m + i * 10 * S;
            spans.push(span("svc-a", "h1", at, ms));
            spans.push(span("svc-b", "h2", at, ms));
            if minute < 3 {
                logs.push(serde_json::json!({"signal": "log", "time_unix_nano": at + S,
                    "severity": "ERROR", "host": "h1", "service": "svc-a",
                    "body": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"}));
            }
        }
    }
    spans.push(span("svc-a", "h1", f + 65 * m, 10));
    logs.push(serde_json::json!({"signal": "log", "time_unix_nano": f + 65 * m, "body": "tick"}));
    for s in &spans {
        send(&p, &topics.spans, s).await;
    }
    for l in &logs {
        send(&p, &topics.logs, l).await;
    }
    let mut fl = Instance::start(&pipeline, &unique("g"), tmp.path().join("faultline.log"));
    let alerts = read_topic(&topics.alerts, 4, Duration::from_secs(60));
    assert!(fl.stop().success());
    let at = |s: &serde_json::Value| {
        (s.as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
            - f)
            / m
    };
    let got: Vec<(i64, &str, &str, &str, i64, String)> = alerts
        .iter()
        .map(|(_, a)| {
            (
                at(&a["evidence"]["window_end"]),
                a["status"].as_str().unwrap(),
                a["labels"]["alertname"].as_str().unwrap(),
                a["labels"]["host"].as_str().unwrap(),
                at(&a["startsAt"]),
                a["group_key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // The OOM on h1 inhibits h1's latency warning (never notified, so never resolved);
    // h2's latency fires. Each host is a group. (The first element is the end of the window
    // whose finding the notification carries: the last window the condition held.)
    assert_eq!(
        got,
        vec![
            (
                1,
                "firing",
                "GpuOutOfMemory",
                "h1",
                0,
                "{host=\"h1\"}".to_string()
            ),
            (
                1,
                "firing",
                "LatencyHigh",
                "h2",
                0,
                "{host=\"h2\"}".to_string()
            ),
            (
                3,
                "resolved",
                "GpuOutOfMemory",
                "h1",
                0,
                "{host=\"h1\"}".to_string()
            ),
            (
                3,
                "resolved",
                "LatencyHigh",
                "h2",
                0,
                "{host=\"h2\"}".to_string()
            ),
        ],
        "log:\n{}",
        fl.log_text()
    );
    assert!(read_topic(&topics.alerts, 5, Duration::from_secs(2)).len() == 4);
    // Two incidents (the hosts share nothing), each opened and resolved, keyed by its id.
    let incidents = read_topic(&topics.incidents, 5, Duration::from_secs(5));
    let mut seen: Vec<(String, String, Vec<String>)> = incidents
        .iter()
        .map(|(_, r)| {
            assert_valid("incident.json", r);
            let names = r["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["alertname"].as_str().unwrap().to_string())
                .collect();
            (
                r["status"].as_str().unwrap().to_string(),
                r["opened_at"].to_string(),
                names,
            )
        })
        .collect();
    seen.sort();
    let opened = format!(
        "\"{}\"",
        chrono::DateTime::from_timestamp_nanos(f + m)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    );
    let want =
        |status: &str, name: &str| (status.to_string(), opened.clone(), vec![name.to_string()]);
    assert_eq!(
        seen,
        vec![
            want("opened", "GpuOutOfMemory"),
            want("opened", "LatencyHigh"),
            want("resolved", "GpuOutOfMemory"),
            want("resolved", "LatencyHigh"),
        ]
    );
}

/// The shipped detectors' `[[detectors]]` tables, for a test pipeline of its own topics.
fn shipped_detectors() -> String {
    let toml = std::fs::read_to_string(repo().join("pipelines/inference/pipeline.toml")).unwrap();
    let at = toml
        .find("[[detectors]]")
        .expect("the shipped pipeline has detectors");
    toml[at..].to_string()
}

fn projection(a: &serde_json::Value) -> (String, String, String, String, String) {
    let labels: Vec<String> = a["labels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect();
    (
        a["rule_id"].as_str().unwrap().into(),
        a["status"].as_str().unwrap().into(),
        labels.join(","),
        a["startsAt"].as_str().unwrap().into(),
        a["endsAt"].as_str().unwrap().into(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn gpu_memory_and_rank_silence_detectors_on_the_broker() {
    let cases = repo().join("pipelines/inference/tests");
    // DCGM metrics of two hosts (one GPU climbs past 90 % then 95 %) on the metrics topic,
    // and the step logs of four training ranks (one goes quiet) on the logs topic, as the
    // Collector would produce them; each case in a run of its own.
    for (case, signal) in [
        ("gpu_memory_pressure", "metrics"),
        ("training_rank_silence", "logs"),
    ] {
        let topics = Topics::new();
        topics.create().await;
        let tmp = tempfile::tempdir().unwrap();
        // No SQL rules: only the shipped detectors.
        let rules = tmp.path().join("rules");
        std::fs::create_dir_all(&rules).unwrap();
        let settings = format!("{}\n{}", window("1m"), shipped_detectors());
        let pipeline =
            pipeline_dir_with_rules(tmp.path(), &rules, &topics.pipeline_toml(&settings));
        let topic = if signal == "metrics" {
            &topics.metrics
        } else {
            &topics.logs
        };
        let p = producer();
        let input = std::fs::read_to_string(cases.join(case).join("input.jsonl")).unwrap();
        for line in input.lines() {
            produce(&p, topic, line.as_bytes()).await;
        }
        let mut expected: Vec<_> = read_lines(&cases.join(case).join("expected.jsonl"))
            .iter()
            .map(projection)
            .collect();
        expected.sort();
        let mut fl = Instance::start(&pipeline, &unique("g"), tmp.path().join("faultline.log"));
        let alerts = read_topic(&topics.alerts, expected.len() + 1, Duration::from_secs(12));
        assert!(fl.stop().success());
        let mut got: Vec<_> = alerts.iter().map(|(_, a)| projection(a)).collect();
        got.sort();
        // The graded alerts name dgx-1's GPU 1 only; the silence alert names rank 2.
        assert_eq!(got, expected, "{case}, log:\n{}", fl.log_text());
        assert!(got
            .iter()
            .all(|g| g.2.contains("gpu=1,host=dgx-1") || g.2.contains("rank=2")));
    }
}
