//! The pipeline on files: golden output of the example incident, bad input, late records.

use std::io::Write;
use std::path::Path;

use crate::common::*;

fn run_files(pipeline: &Path, inputs: &[&Path], out: &Path) {
    let mut cmd = faultline();
    cmd.args(["run", "--pipeline"]).arg(pipeline);
    for i in inputs {
        cmd.arg("--input").arg(i);
    }
    cmd.arg("--output").arg(out);
    run_ok(&mut cmd);
}

/// Compares with a golden file; `FAULTLINE_BLESS=1` rewrites it.
fn assert_golden(actual: &Path, golden: &Path) {
    let actual_text = std::fs::read_to_string(actual).unwrap();
    if std::env::var_os("FAULTLINE_BLESS").is_some() {
        std::fs::write(golden, &actual_text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(golden).unwrap_or_default();
    if actual_text != expected {
        panic!(
            "{} differs from {} (rerun with FAULTLINE_BLESS=1 to accept)\n--- expected\n{expected}\n--- actual\n{actual_text}",
            actual.display(),
            golden.display()
        );
    }
}

/// The example is one incident — GPU memory pressure on the model server, its OOMs, and the
/// gateway's errors and latency (a trace edge joins them) — whose top suspect is the model
/// server, named on the alerts too.
fn assert_the_example_is_one_incident_whose_top_suspect_is_the_model_server(out: &Path) {
    let records = read_lines(&out.join("incidents.jsonl"));
    for r in &records {
        assert_valid("incident.json", r);
    }
    let ids: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "one incident");
    let (first, last) = (&records[0], records.last().unwrap());
    assert_eq!(first["status"], "opened");
    assert_eq!(last["status"], "resolved");
    assert_eq!(last["verdict"], "suspect");
    assert_eq!(last["suspects"][0]["service"], "inference-server");
    assert_eq!(
        last["propagation_path"],
        serde_json::json!(["llm-gateway->inference-server"])
    );
    let names: std::collections::BTreeSet<&str> = last["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alertname"].as_str().unwrap())
        .collect();
    for n in [
        "GpuMemoryPressure",
        "CudaOutOfMemory",
        "RequestLatencyP95High",
    ] {
        assert!(names.contains(n), "{n} in {names:?}");
    }
    // The incident opened when the evidence of the first faulty window was complete.
    assert_eq!(first["opened_at"], "2026-11-01T12:09:00Z");
    let alerts = read_lines(&out.join("alerts.jsonl"));
    let named = alerts
        .iter()
        .filter(|a| a["annotations"]["root_cause"] == "inference-server")
        .count();
    assert!(named > 0, "the top suspect annotates the incident's alerts");
}

#[test]
fn example_incident_alerts_match_golden_and_healthy_windows_fire_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    run_files(
        &repo().join("pipelines/inference"),
        &[&repo().join("examples/incident.jsonl")],
        &out,
    );
    assert_the_example_is_one_incident_whose_top_suspect_is_the_model_server(&out);
    for f in [
        "alerts.jsonl",
        "suggestions.jsonl",
        "deadletter.jsonl",
        "late.jsonl",
    ] {
        assert!(out.join(f).is_file(), "{f} is created even when empty");
    }
    assert_eq!(
        std::fs::read_to_string(out.join("deadletter.jsonl")).unwrap(),
        ""
    );
    assert_eq!(std::fs::read_to_string(out.join("late.jsonl")).unwrap(), "");
    let alerts = read_lines(&out.join("alerts.jsonl"));
    for a in &alerts {
        assert_valid("alert.json", a);
        // The incident is 12:08-12:15; nothing outside it, nothing for embedding-service.
        let starts = a["startsAt"].as_str().unwrap();
        assert!(
            ("2026-11-01T12:08:00Z"..="2026-11-01T12:15:00Z").contains(&starts),
            "{a}"
        );
        assert_ne!(a["labels"]["service"], "embedding-service");
    }
    // The latency rule (p95 > 500 ms for 5 minutes) fires at 12:13, five minutes into the
    // incident, names the bottleneck stage, and resolves when the incident ends at 12:15.
    let latency: Vec<(&str, &str, &str)> = alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == "RequestLatencyP95High")
        .map(|a| {
            (
                a["status"].as_str().unwrap(),
                a["startsAt"].as_str().unwrap(),
                a["endsAt"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        latency,
        vec![
            ("firing", "2026-11-01T12:13:00Z", "2026-11-01T12:19:00Z"),
            ("resolved", "2026-11-01T12:13:00Z", "2026-11-01T12:15:00Z")
        ]
    );
    let firing = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "RequestLatencyP95High")
        .unwrap();
    assert_eq!(firing["labels"]["service"], "llm-gateway");
    assert_eq!(firing["labels"]["severity"], "critical");
    assert_eq!(firing["evidence"]["values"]["bottleneck_stage"], "forward");
    assert_eq!(
        firing["evidence"]["values"]["bottleneck_service"],
        "inference-server"
    );
    assert_eq!(firing["evidence"]["trace_ids"].as_array().unwrap().len(), 5);
    assert!(firing["annotations"]["summary"]
        .as_str()
        .unwrap()
        .ends_with("bottleneck: forward on inference-server"));
    assert_golden(
        &out.join("alerts.jsonl"),
        &repo().join("tests/golden/incident/alerts.jsonl"),
    );
    // Every alert that fires gets suggestions (or an explicit "no known remediation"), each
    // valid; the latency alert's best one is the forward pass, its bottleneck stage.
    let suggestions = read_lines(&out.join("suggestions.jsonl"));
    for s in &suggestions {
        assert_valid("suggestion.json", s);
    }
    for a in alerts.iter().filter(|a| a["status"] == "firing") {
        assert!(
            suggestions
                .iter()
                .any(|s| s["alert_fingerprint"] == a["fingerprint"]),
            "no suggestion for {}",
            a["labels"]["alertname"]
        );
    }
    let best_for = |name: &str| {
        let fp = &alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .unwrap()["fingerprint"];
        suggestions
            .iter()
            .find(|s| &s["alert_fingerprint"] == fp && s["rank"] == 1)
            .unwrap()
            .clone()
    };
    let latency = best_for("RequestLatencyP95High");
    assert_eq!(latency["remediation_id"], "latency_forward", "{latency}");
    assert_eq!(latency["alert_id"], firing["id"]);
    // The alert forwarded to receivers carries its best suggestion.
    assert_eq!(firing["annotations"]["suggestion"], latency["title"]);
    assert_eq!(firing["annotations"]["runbook_url"], latency["runbook_url"]);
    for s in read_lines(&out.join("review.jsonl")) {
        assert_eq!(
            s["needs_review"], true,
            "only suggestions for a person go to review"
        );
    }
    assert_golden(
        &out.join("suggestions.jsonl"),
        &repo().join("tests/golden/incident/suggestions.jsonl"),
    );
    assert_golden(
        &out.join("review.jsonl"),
        &repo().join("tests/golden/incident/review.jsonl"),
    );
}

#[test]
fn replays_of_the_same_input_are_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let runs: Vec<String> = (0..2)
        .map(|i| {
            let out = tmp.path().join(format!("out{i}"));
            run_files(
                &repo().join("pipelines/inference"),
                &[&repo().join("examples/incident.jsonl")],
                &out,
            );
            let alerts = std::fs::read_to_string(out.join("alerts.jsonl")).unwrap();
            alerts + &std::fs::read_to_string(out.join("incidents.jsonl")).unwrap()
        })
        .collect();
    assert!(runs[0].contains("\"suspects\""));
    assert_eq!(runs[0], runs[1]);
}

/// A copy of the default pipeline with `extra` appended to its `pipeline.toml`.
fn inference_copy(dir: &Path, extra: &str) -> std::path::PathBuf {
    let toml = std::fs::read_to_string(repo().join("pipelines/inference/pipeline.toml")).unwrap();
    inference_copy_with(dir, &format!("{toml}\n{extra}"))
}

/// The file run's output does not depend on machine speed or load: with every core busy
/// and a wall-clock budget of 1 ns per rule (which a Kafka run would enforce), a file run
/// gives the golden alerts byte for byte: file runs bound rules by memory, never by time.
#[test]
fn a_file_replay_on_a_saturated_machine_gives_byte_identical_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = inference_copy(tmp.path(), "[evaluation]\ntimeout = \"1ns\"\n");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let burners: Vec<_> = (0..cores * 2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    let out = tmp.path().join("out");
    run_files(&pipeline, &[&repo().join("examples/incident.jsonl")], &out);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in burners {
        b.join().unwrap();
    }
    let got = std::fs::read_to_string(out.join("alerts.jsonl")).unwrap();
    let golden =
        std::fs::read_to_string(repo().join("tests/golden/incident/alerts.jsonl")).unwrap();
    assert!(!golden.is_empty());
    assert!(
        got == golden,
        "alerts differ from the golden file under load:\n{got}"
    );
}

#[test]
fn without_output_alerts_go_to_stdout() {
    let out = run_ok(
        faultline()
            .args([
                "run",
                "--pipeline",
                "pipelines/inference",
                "--input",
                "examples/incident.jsonl",
            ])
            .current_dir(repo()),
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (alerts, suggestions): (Vec<serde_json::Value>, Vec<serde_json::Value>) = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .partition(|v| v["rule_id"].is_string());
    let golden = read_lines(&repo().join("tests/golden/incident/alerts.jsonl"));
    assert_eq!(alerts, golden);
    let golden = read_lines(&repo().join("tests/golden/incident/suggestions.jsonl"));
    assert_eq!(
        suggestions, golden,
        "suggestions follow their alerts on stdout too"
    );
}

/// Writes `lines` (raw bytes) as a JSON-lines file.
fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    let mut f = std::fs::File::create(path).unwrap();
    for l in lines {
        f.write_all(l).unwrap();
        f.write_all(b"\n").unwrap();
    }
}

fn slow_spans(service: &str, first: u32, start: i64) -> Vec<Vec<u8>> {
    (0..10)
        .map(|i| {
            flat_span(service, first + i, start + i as i64 * 1_000_000_000, 900)
                .to_string()
                .into_bytes()
        })
        .collect()
}

#[test]
fn bad_lines_go_to_dead_letter_with_file_and_line_and_the_rest_still_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = 1_800_000_000_000_000_000i64;
    let mut lines = slow_spans("api", 0, t0); // lines 1-10
    let bad: Vec<(Vec<u8>, &str)> =
        vec![
        (b"{\"resourceSpans\": [".to_vec(), "invalid_json"), // 11
        (
            serde_json::json!({"signal": "span", "trace_id": trace_id(99), "span_id": span_id(99),
                "name": 42, "start_time_unix_nano": t0, "duration_ms": 5})
            .to_string()
            .into_bytes(),
            "invalid_record",
        ), // 12
        (b"{\"signal\": \"log\", \"body\": \"\xff\xfe\"}".to_vec(), "invalid_utf8"), // 13
        (
            format!("{{\"signal\":\"log\",\"body\":\"{}\"}}", "x".repeat(2 << 20)).into_bytes(),
            "oversized",
        ), // 14
        (b"[1, 2, 3]".to_vec(), "invalid_record"), // 15
    ];
    lines.extend(bad.iter().map(|(l, _)| l.clone()));
    lines.extend(slow_spans("api", 20, t0 + 20_000_000_000)); // lines 16-25
    let input = tmp.path().join("input.jsonl");
    write_lines(&input, &lines);
    let out = tmp.path().join("out");
    run_files(&pipeline_dir(tmp.path(), ""), &[&input], &out);

    let dead = read_lines(&out.join("deadletter.jsonl"));
    let got: Vec<(u64, &str)> = dead
        .iter()
        .map(|d| {
            assert_valid("deadletter.json", d);
            assert_eq!(d["source"]["kind"], "file");
            assert_eq!(d["source"]["path"], input.display().to_string());
            (
                d["source"]["line"].as_u64().unwrap(),
                d["error_kind"].as_str().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(u64, &str)> = bad
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| (11 + i as u64, *kind))
        .collect();
    assert_eq!(got, expected);
    assert!(
        dead[1]["reason"].as_str().unwrap().contains("name"),
        "{}",
        dead[1]
    );
    // Non-UTF-8 payloads are kept as base64; oversized ones cut but measured.
    assert_eq!(dead[2]["payload_encoding"], "base64");
    assert_eq!(dead[3]["payload_bytes"], bad[3].0.len());
    assert_eq!(dead[3]["payload_truncated"], true);
    assert_eq!(dead[0]["payload"], "{\"resourceSpans\": [");

    let alerts = read_lines(&out.join("alerts.jsonl"));
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["labels"]["service"], "api");
    assert_eq!(
        alerts[0]["evidence"]["values"]["requests"], 20,
        "all 20 good spans counted"
    );
}

#[test]
fn late_record_goes_to_late_file_with_its_delay_and_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = 1_800_000_000_000_000_000i64; // a whole minute
    let mut lines = vec![flat_span("api", 1, t0, 10).to_string().into_bytes()];
    // Three minutes later: the watermark (newest - 5 s) passes the first window.
    lines.push(
        flat_span("api", 2, t0 + 180_000_000_000, 10)
            .to_string()
            .into_bytes(),
    );
    // Out of order by 4 s, but its window [t0+120 s, t0+180 s) is still open.
    lines.push(
        flat_span("api", 3, t0 + 176_000_000_000, 10)
            .to_string()
            .into_bytes(),
    );
    // Back in the first minute: late by ~2m55s.
    let late_span = flat_span("api", 4, t0 + 5_000_000_000, 10);
    lines.push(late_span.to_string().into_bytes());
    let input = tmp.path().join("input.jsonl");
    write_lines(&input, &lines);
    let out = tmp.path().join("out");
    run_files(&pipeline_dir(tmp.path(), ""), &[&input], &out);
    let late = read_lines(&out.join("late.jsonl"));
    assert_eq!(late.len(), 1, "{late:?}");
    assert_valid("late.json", &late[0]);
    assert_valid("flat-span.json", &late[0]["record"]);
    assert_eq!(late[0]["source"]["line"], 4);
    assert_eq!(late[0]["signal"], "spans");
    // watermark = t0 + 180.01 s - 5 s; event time (span end) = t0 + 5.01 s.
    assert_eq!(late[0]["delay_ms"].as_f64().unwrap(), 170_000.0);
    assert_eq!(late[0]["record"]["trace_id"], trace_id(4));

    // The late record is in the flat form: it can be fed back in on its own.
    let replay = tmp.path().join("replay.jsonl");
    write_lines(&replay, &[late[0]["record"].to_string().into_bytes()]);
    let out2 = tmp.path().join("out2");
    run_files(&pipeline_dir(tmp.path(), ""), &[&replay], &out2);
    assert_eq!(
        std::fs::read_to_string(out2.join("deadletter.jsonl")).unwrap(),
        ""
    );
    assert_eq!(
        std::fs::read_to_string(out2.join("late.jsonl")).unwrap(),
        ""
    );
}

#[test]
fn a_directory_input_reads_its_jsonl_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    let t0 = 1_800_000_000_000_000_000i64;
    write_lines(&dir.join("a.jsonl"), &slow_spans("svc-a", 0, t0));
    write_lines(&dir.join("b.jsonl"), &slow_spans("svc-b", 100, t0));
    std::fs::write(dir.join("notes.txt"), "not input").unwrap();
    let out = tmp.path().join("out");
    run_files(&pipeline_dir(tmp.path(), ""), &[&dir], &out);
    let services: Vec<_> = read_lines(&out.join("alerts.jsonl"))
        .iter()
        .map(|a| a["labels"]["service"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(services, ["svc-a", "svc-b"]);
}

#[test]
fn flat_test_inputs_match_the_flat_schemas() {
    assert_valid(
        "flat-span.json",
        &flat_span("api", 1, 1_800_000_000_000_000_000, 5),
    );
    let log = serde_json::json!({"signal": "log", "time": "2026-11-01T12:00:00Z", "body": "x",
        "severity": "ERROR", "trace_id": trace_id(1), "service": "api"});
    assert_valid("flat-log.json", &log);
    let metric =
        serde_json::json!({"signal": "metric", "time_unix_nano": "1", "name": "m", "value": 1});
    assert_valid("flat-metric.json", &metric);
    // And the schemas reject what the decoder rejects.
    let unknown = serde_json::json!({"signal": "metric", "time_unix_nano": 1, "name": "m", "value": 1, "vaule": 2});
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/flat-metric.json")).unwrap(),
    )
    .unwrap();
    assert!(!jsonschema::is_valid(&schema, &unknown));
}

#[test]
fn the_traces_table_names_the_bottleneck_stage_of_the_incident() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    // The README's example query.
    std::fs::write(
        rules.join("stages.sql"),
        "-- severity = \"info\"\n\
         SELECT root_service AS service, bottleneck_span AS stage, count(*) AS value\n\
         FROM traces WHERE duration_ms > 500 GROUP BY root_service, bottleneck_span\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    run_files(
        &pipeline_dir_with_rules(tmp.path(), &rules, ""),
        &[&repo().join("examples/incident.jsonl")],
        &out,
    );
    let alerts = read_lines(&out.join("alerts.jsonl"));
    let stages: std::collections::BTreeMap<(String, String), f64> = alerts
        .iter()
        .map(|a| {
            (
                (
                    a["labels"]["service"].as_str().unwrap().to_string(),
                    a["labels"]["stage"].as_str().unwrap().to_string(),
                ),
                a["evidence"]["value"].as_f64().unwrap(),
            )
        })
        .fold(Default::default(), |mut m, (k, v)| {
            *m.entry(k).or_default() += v;
            m
        });
    let slow: f64 = stages.values().sum();
    let forward = stages
        .get(&("llm-gateway".to_string(), "forward".to_string()))
        .copied()
        .unwrap_or(0.0);
    assert!(slow > 100.0, "{stages:?}");
    assert!(
        forward / slow > 0.9,
        "forward is the bottleneck of slow requests: {stages:?}"
    );
}

#[test]
fn files_of_one_period_are_read_interleaved_in_event_time() {
    // Split the example by signal: one file of traces, one of logs and metrics.
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("examples/incident.jsonl")).unwrap();
    let (spans, rest): (Vec<&str>, Vec<&str>) = text
        .lines()
        .partition(|l| l.starts_with("{\"resourceSpans\""));
    assert!(!spans.is_empty() && !rest.is_empty());
    let a = tmp.path().join("spans.jsonl");
    let b = tmp.path().join("logs-and-metrics.jsonl");
    std::fs::write(&a, spans.join("\n")).unwrap();
    std::fs::write(&b, rest.join("\n")).unwrap();
    let out = tmp.path().join("out");
    // The spans file first: read one after the other, every log would be late.
    run_files(&repo().join("pipelines/inference"), &[&a, &b], &out);
    assert_eq!(std::fs::read_to_string(out.join("late.jsonl")).unwrap(), "");
    assert_golden(
        &out.join("alerts.jsonl"),
        &repo().join("tests/golden/incident/alerts.jsonl"),
    );
}
