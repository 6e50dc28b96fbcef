//! Shared helpers: the binary, temporary pipelines, span builders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub const TRACE_PREFIX: &str = "0af7651916cd43dd8448eb211c80";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn faultline() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_faultline"));
    c.env("FAULTLINE_LOG", "info");
    c
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn faultline");
    assert!(
        out.status.success(),
        "faultline failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A name unique to this test process and call, for topics, groups and directories.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes a pipeline directory using the test latency rule (`tests/rules/latency`: p95 of
/// root spans per service above 500 ms, firing at once) and `extra` TOML.
pub fn pipeline_dir(dir: &Path, extra: &str) -> PathBuf {
    pipeline_dir_with_rules(dir, &repo().join("tests/rules/latency"), extra)
}

/// Writes a pipeline directory using the rules in `rules` and `extra` TOML.
pub fn pipeline_dir_with_rules(dir: &Path, rules: &Path, extra: &str) -> PathBuf {
    let p = dir.join("pipeline");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("pipeline.toml"),
        format!(
            "name = \"test\"\nrules = [{:?}]\n{extra}",
            rules.display().to_string()
        ),
    )
    .unwrap();
    p
}

/// A 32-hex trace id from a number.
pub fn trace_id(n: u32) -> String {
    format!("{TRACE_PREFIX}{n:04x}")
}

pub fn span_id(n: u32) -> String {
    format!("b7ad6b71{n:08x}")
}

/// Start of the minute `minutes` minutes from now (negative: in the past), in ns. Tests
/// whose windows must close only by event time use future minutes, which the idle
/// wall-clock advance cannot reach.
pub fn minute_from_now(minutes: i64) -> i64 {
    minute_ago(-minutes)
}

/// A flat root span of `ms` milliseconds starting at `start_ns`.
pub fn flat_span(service: &str, n: u32, start_ns: i64, ms: i64) -> serde_json::Value {
    serde_json::json!({
        "signal": "span", "trace_id": trace_id(n), "span_id": span_id(n),
        "name": "POST /v1/chat/completions", "kind": "server", "service": service,
        "start_time_unix_nano": start_ns, "end_time_unix_nano": start_ns + ms * 1_000_000,
        "status": "ok"
    })
}

/// An OTLP/JSON trace export request with root spans of one service.
pub fn otlp_json_spans(service: &str, spans: &[(u32, i64, i64)]) -> serde_json::Value {
    let spans: Vec<_> = spans
        .iter()
        .map(|(n, start, ms)| {
            serde_json::json!({
                "traceId": trace_id(*n), "spanId": span_id(*n), "name": "POST /v1/chat/completions",
                "kind": 2, "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": (start + ms * 1_000_000).to_string(), "status": {}
            })
        })
        .collect();
    serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]
    }]})
}

/// Start of the minute that began `minutes_ago` minutes before now, in ns.
pub fn minute_ago(minutes_ago: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now / 60 - minutes_ago) * 60 * 1_000_000_000
}

pub fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The last record of each incident in `incidents.jsonl` (its current view), in the order
/// the incidents opened; every record is checked against `schemas/incident.json`.
pub fn last_incident_records(path: &Path) -> Vec<serde_json::Value> {
    let mut last: Vec<(String, serde_json::Value)> = Vec::new();
    for record in read_lines(path) {
        assert_valid("incident.json", &record);
        let id = record["id"].as_str().unwrap().to_string();
        match last.iter_mut().find(|(i, _)| *i == id) {
            Some(slot) => slot.1 = record,
            None => last.push((id, record)),
        }
    }
    last.into_iter().map(|(_, r)| r).collect()
}

/// Asserts that `value` satisfies `schemas/NAME`.
pub fn assert_valid(schema: &str, value: &serde_json::Value) {
    let path = repo().join("schemas").join(schema);
    let schema_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema_json)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{value} does not match {schema}: {errors:#?}"
    );
}

/// A copy of the default pipeline in `dir/inference` (the same directory name, so the same
/// rule groups): its rules and knowledge base, and `toml` as its `pipeline.toml`.
pub fn inference_copy_with(dir: &Path, toml: &str) -> PathBuf {
    let from = repo().join("pipelines/inference");
    let to = dir.join("inference");
    for sub in ["rules", "kb"] {
        std::fs::create_dir_all(to.join(sub)).unwrap();
        for e in std::fs::read_dir(from.join(sub)).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, to.join(sub).join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(to.join("pipeline.toml"), toml).unwrap();
    to
}
