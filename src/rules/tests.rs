//! Rule files: header parsing, load-time validation, the sandbox, and evaluation.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::align::{AlignConfig, TraceAligner};
use crate::decode::{Decoder, MessageContext};

fn rule(text: &str) -> crate::error::Result<Rule> {
    parse_rule(Path::new("rules/r.sql"), text)
}

async fn engine(text: &str) -> crate::error::Result<RuleEngine> {
    RuleEngine::new(vec![Arc::new(rule(text)?)]).await
}

#[test]
fn header_and_query_are_split_with_line_numbers() {
    let r = rule(
        "-- id = \"x\"\n-- severity = \"warning\"\n--\n-- [labels]\n-- team = \"a\"\n\nSELECT 1 AS value;\n",
    )
    .unwrap();
    assert_eq!(r.id, "x");
    assert_eq!(r.alert, "x", "alert defaults to the id");
    assert_eq!(r.severity, Severity::Warning);
    assert_eq!(r.labels["team"], "a");
    assert_eq!(r.sql, "SELECT 1 AS value");
    assert_eq!(r.sql_line, 7);
}

#[test]
fn id_defaults_to_the_file_name() {
    let r = rule("-- severity = \"info\"\nSELECT 1 AS value").unwrap();
    assert_eq!(r.id, "r");
}

#[test]
fn header_errors_name_the_line() {
    let e = rule("-- severity = \"critical\"\n-- sevrity = 1\nSELECT 1 AS value")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rules/r.sql:2:"), "{e}");
    let e = rule("-- id = \"x\"\nSELECT 1 AS value")
        .unwrap_err()
        .to_string();
    assert!(e.contains("severity"), "{e}");
    let e = rule("-- severity = \"bad\"\nSELECT 1 AS value")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rules/r.sql:1:"), "{e}");
    let e = rule("-- severity = \"info\"\n").unwrap_err().to_string();
    assert!(e.contains("no query"), "{e}");
}

#[tokio::test]
async fn queries_are_planned_at_load() {
    let e = engine(
        "-- severity = \"info\"\n\nSELECT service, count(*) AS value FROM spanz GROUP BY service",
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(e.starts_with("rules/r.sql:3:"), "{e}");
    let e = engine("-- severity = \"info\"\nSELECT service FROM spans")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("named `value`"), "{e}");
    let e = engine("-- severity = \"info\"\nSELECT service AS value FROM spans")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("expected a number"), "{e}");
}

#[tokio::test]
async fn only_queries_are_allowed() {
    for sql in [
        "CREATE EXTERNAL TABLE t (a INT) STORED AS CSV LOCATION '/etc/passwd'",
        "COPY spans TO '/tmp/x.csv'",
        "INSERT INTO spans SELECT * FROM spans",
        "CREATE TABLE t AS SELECT 1 AS value",
        "SET datafusion.execution.batch_size = 1",
        "DROP TABLE spans",
    ] {
        let r = engine(&format!("-- severity = \"info\"\n{sql}")).await;
        assert!(r.is_err(), "{sql} must be rejected");
        let e = r.err().unwrap().to_string();
        assert!(e.starts_with("rules/r.sql:2:"), "{sql}: {e}");
    }
}

fn batch(lines: &[serde_json::Value]) -> crate::align::AlignedBatch {
    let d = Decoder::new(1 << 20);
    let mut a = TraceAligner::new(AlignConfig::tumbling(std::time::Duration::from_secs(3600)));
    for (i, l) in lines.iter().enumerate() {
        for r in d
            .decode(l.to_string().as_bytes(), MessageContext::default())
            .unwrap()
        {
            a.insert(r, i as u64).unwrap();
        }
    }
    let mut closed = a.flush();
    assert_eq!(closed.len(), 1);
    closed.remove(0)
}

fn span(service: &str, n: u32, ms: u32, route: &str) -> serde_json::Value {
    serde_json::json!({"signal": "span", "trace_id": format!("{n:032x}"), "span_id": format!("{n:016x}"),
        "name": "req", "service": service, "start_time_unix_nano": 1_000_000_000_000u64,
        "duration_ms": ms, "attributes": {"http.route": route}})
}

#[tokio::test]
async fn rows_become_findings_with_labels_evidence_and_traces() {
    let e = engine(
        "-- severity = \"critical\"\n\
         SELECT service, attributes['http.route'] AS route, max(duration_ms) AS value,\n\
                count(*) AS evidence_n, 'slow' AS evidence_note,\n\
                array_agg(trace_id ORDER BY trace_id) AS sample_trace_ids\n\
         FROM spans GROUP BY service, attributes['http.route'] ORDER BY service",
    )
    .await
    .unwrap();
    let b = batch(&[
        span("b", 1, 10, "/x"),
        span("a", 2, 30, "/y"),
        span("a", 3, 20, "/y"),
    ]);
    let (findings, failures) = e.evaluate(&b).await;
    assert!(failures.is_empty(), "{failures:?}");
    let got: Vec<_> = findings
        .iter()
        .map(|f| {
            (
                f.labels.clone(),
                f.value,
                f.evidence.clone(),
                f.trace_ids.clone(),
            )
        })
        .collect();
    let labels = |s: &str, r: &str| {
        BTreeMap::from([
            ("route".to_string(), r.to_string()),
            ("service".to_string(), s.to_string()),
        ])
    };
    let evidence = |n: i64| {
        BTreeMap::from([
            ("n".to_string(), serde_json::json!(n)),
            ("note".to_string(), serde_json::json!("slow")),
        ])
    };
    assert_eq!(
        got,
        vec![
            // Sorted by label set (route first), whatever order the query chose.
            (
                labels("b", "/x"),
                10.0,
                evidence(1),
                vec![format!("{:032x}", 1)]
            ),
            (
                labels("a", "/y"),
                30.0,
                evidence(2),
                vec![format!("{:032x}", 2), format!("{:032x}", 3)]
            ),
        ]
    );
}

#[tokio::test]
async fn a_failing_rule_does_not_stop_the_others() {
    let bad = parse_rule(
        Path::new("rules/bad.sql"),
        // Plans fine on empty tables, fails at run time on a non-numeric string.
        "-- severity = \"info\"\nSELECT CAST(service AS DOUBLE) AS value FROM spans",
    )
    .unwrap();
    let good = parse_rule(
        Path::new("rules/good.sql"),
        "-- severity = \"info\"\nSELECT count(*) AS value FROM spans",
    )
    .unwrap();
    let e = RuleEngine::new(vec![Arc::new(bad), Arc::new(good)])
        .await
        .unwrap();
    let (findings, failures) = e.evaluate(&batch(&[span("not-a-number", 1, 5, "/")])).await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].rule_id, "bad");
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].rule.id, "good");
    assert_eq!(findings[0].value, 1.0);
}

#[tokio::test]
async fn shipped_rules_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/inference");
    let rules = load_rules(&dir, &[std::path::PathBuf::from("rules")])
        .await
        .unwrap();
    assert!(rules.iter().any(|r| r.id == "request_latency_p95"));
}

#[tokio::test]
async fn rules_see_the_window_bounds() {
    let e = engine(
        "-- severity = \"info\"\n\
         SELECT CAST(w.window_start AS VARCHAR) AS started, count(*) AS value\n\
         FROM spans, window_bounds w GROUP BY w.window_start",
    )
    .await
    .unwrap();
    let (findings, failures) = e.evaluate(&batch(&[span("a", 1, 5, "/")])).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].labels["started"], "1970-01-01T00:00:00Z");
}
