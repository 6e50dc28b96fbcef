//! Rule files: header parsing, load-time validation, the sandbox, and evaluation.

use std::path::Path;

use std::time::Duration;

use super::*;
use crate::align::{AlignConfig, TraceAligner};
use crate::decode::{Decoder, MessageContext};
use crate::model::Severity;

fn rule(text: &str) -> crate::error::Result<Rule> {
    parse_rule(Path::new("rules/r.sql"), text)
}

/// The rules under `paths` of `base`, read by the loader.
fn load_rules(base: &Path, paths: &[std::path::PathBuf]) -> crate::error::Result<Vec<Rule>> {
    let (texts, errors) = crate::load::read_rules(base, paths);
    let (rules, more) = parse_rules(&texts);
    match errors.into_iter().chain(more).next() {
        Some(e) => Err(e),
        None => Ok(rules),
    }
}

async fn engine(text: &str) -> crate::error::Result<RuleEngine> {
    RuleEngine::new(vec![rule(text)?], EvalLimits::default()).await
}

#[test]
fn header_and_query_are_split_with_line_numbers() {
    let r = rule(
        "-- id = \"x\"\n-- severity = \"warning\"\n--\n-- [labels]\n-- team = \"a\"\n\nSELECT 1 AS value;\n",
    )
    .unwrap();
    assert_eq!(r.id(), "x");
    assert_eq!(r.spec.alert, "x", "alert defaults to the id");
    assert_eq!(r.spec.severity, Severity::Warning);
    assert_eq!(r.spec.labels["team"], "a");
    assert_eq!(r.query.sql, "SELECT 1 AS value");
    assert_eq!(r.query.line, 7);
}

#[test]
fn id_defaults_to_the_file_name() {
    let r = rule("-- severity = \"info\"\nSELECT 1 AS value").unwrap();
    assert_eq!(r.id(), "r");
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
        "COPY (SELECT 1 AS value) TO '/tmp/x.parquet'",
        "INSERT INTO spans SELECT * FROM spans",
        "CREATE TABLE t AS SELECT 1 AS value",
        "SET datafusion.execution.batch_size = 1",
        "DROP TABLE spans",
        "SELECT count(*) AS value FROM read_csv('/etc/passwd')",
        "SELECT count(*) AS value FROM read_parquet('/tmp/x.parquet')",
        "SELECT count(*) AS value FROM read_json('http://127.0.0.1:1/x')",
        "SELECT count(*) AS value FROM '/etc/passwd'",
        "SELECT count(*) AS value FROM information_schema.tables",
        "SELECT count(*) AS value FROM generate_series(1, 100000000)",
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3) \
         SELECT count(*) AS value FROM n",
    ] {
        let r = engine(&format!("-- severity = \"info\"\n{sql}")).await;
        assert!(r.is_err(), "{sql} must be rejected");
        let e = r.err().unwrap().to_string();
        assert!(e.starts_with("rules/r.sql:2:"), "{sql}: {e}");
    }
}

fn batch(lines: &[serde_json::Value]) -> crate::model::AlignedBatch {
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
    let (findings, failures) = e.evaluate(&b, &[], &Unbounded).await;
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

/// Plans are built once and executed again for every window: each evaluation must read its
/// own window (no row count folded in at planning, no join's build side kept from before).
#[tokio::test]
async fn a_stored_plan_reads_each_windows_rows() {
    let e = RuleEngine::new(
        vec![
            rule("-- id = \"n\"\n-- severity = \"info\"\nSELECT count(*) AS value FROM spans")
                .unwrap(),
            rule(
                "-- id = \"pairs\"\n-- severity = \"info\"\n\
                 SELECT a.service, count(*) AS value FROM spans a JOIN spans b \
                 ON a.service = b.service GROUP BY a.service",
            )
            .unwrap(),
        ],
        EvalLimits::default(),
    )
    .await
    .unwrap();
    let three = batch(&[
        span("a", 1, 1, "/"),
        span("a", 2, 1, "/"),
        span("b", 3, 1, "/"),
    ]);
    let two = batch(&[span("b", 4, 1, "/"), span("b", 5, 1, "/")]);
    let mut got = Vec::new();
    for b in [&three, &two, &three] {
        let (findings, failures) = e.evaluate(b, &[], &Unbounded).await;
        assert!(failures.is_empty(), "{failures:?}");
        let values: Vec<_> = findings
            .iter()
            .map(|f| (f.spec.id.clone(), f.labels.get("service").cloned(), f.value))
            .collect();
        got.push(values);
    }
    let n = |v: f64| ("n".to_string(), None, v);
    let pairs = |s: &str, v: f64| ("pairs".to_string(), Some(s.to_string()), v);
    assert_eq!(got[0], vec![n(3.0), pairs("a", 4.0), pairs("b", 1.0)]);
    assert_eq!(got[1], vec![n(2.0), pairs("b", 4.0)]);
    assert_eq!(got[2], got[0]);
}

/// `now()` is folded into the plan when it is made: the load time, the same every window
/// (README, "Sandbox").
#[tokio::test]
async fn now_is_the_time_the_rule_was_planned() {
    let e = engine("-- severity = \"info\"\nSELECT date_part('epoch', now()) AS value")
        .await
        .unwrap();
    let b = batch(&[span("a", 1, 1, "/")]);
    let (first, _) = e.evaluate(&b, &[], &Unbounded).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (second, _) = e.evaluate(&b, &[], &Unbounded).await;
    assert_eq!(first[0].value, second[0].value);
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
    let e = RuleEngine::new(vec![bad, good], EvalLimits::default())
        .await
        .unwrap();
    let (findings, failures) = e
        .evaluate(&batch(&[span("not-a-number", 1, 5, "/")]), &[], &Unbounded)
        .await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].rule_id, "bad");
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].spec.id, "good");
    assert_eq!(findings[0].value, 1.0);
}

#[tokio::test]
async fn shipped_rules_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/inference");
    let rules = load_rules(&dir, &[std::path::PathBuf::from("rules")]).unwrap();
    assert!(rules.iter().any(|r| r.id() == "request_latency_p95"));
    RuleEngine::new(rules, EvalLimits::default()).await.unwrap();
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
    let (findings, failures) = e
        .evaluate(&batch(&[span("a", 1, 5, "/")]), &[], &Unbounded)
        .await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].labels["started"], "1970-01-01T00:00:00Z");
}

#[tokio::test]
async fn parameters_bind_to_placeholders_and_conditions() {
    let r = rule(
        "-- severity = \"info\"\n-- fire = \"value > $high\"\n-- clear = \"value < $low\"\n\
         -- [params]\n-- high = 95\n-- low = 85.0\n-- service = \"a\"\n\
         SELECT service, max(duration_ms) AS value FROM spans\n\
         WHERE service = $service GROUP BY service HAVING max(duration_ms) > $low",
    )
    .unwrap();
    assert!(r.fire.unwrap().holds(96.0) && !r.fire.unwrap().holds(95.0));
    assert!(r.clear.unwrap().holds(84.0));
    let e = RuleEngine::new(vec![r], EvalLimits::default())
        .await
        .unwrap();
    let (findings, failures) = e
        .evaluate(
            &batch(&[
                span("a", 1, 90, "/"),
                span("b", 2, 99, "/"),
                span("a", 3, 80, "/"),
            ]),
            &[],
            &Unbounded,
        )
        .await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(findings.len(), 1);
    assert_eq!(
        (findings[0].labels["service"].as_str(), findings[0].value),
        ("a", 90.0)
    );
}

#[test]
fn directory_defaults_are_inherited_and_overridden() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rules");
    let gpu = root.join("gpu");
    std::fs::create_dir_all(&gpu).unwrap();
    std::fs::write(
        root.join("_defaults.toml"),
        "severity = \"warning\"\nfor = \"2m\"\n[labels]\nteam = \"ml\"\n[params]\nthreshold = 90\n",
    )
    .unwrap();
    std::fs::write(
        gpu.join("_defaults.toml"),
        "[labels]\nteam = \"gpu\"\n[params]\nthreshold = 95\n",
    )
    .unwrap();
    let q = "SELECT count(*) AS value FROM metrics HAVING count(*) > $threshold";
    std::fs::write(root.join("a.sql"), format!("-- alert = \"A\"\n{q}")).unwrap();
    std::fs::write(
        gpu.join("b.sql"),
        format!("-- severity = \"critical\"\n-- [params]\n-- threshold = 99\n{q}"),
    )
    .unwrap();
    std::fs::write(gpu.join("c.sql"), q).unwrap();
    let rules = load_rules(tmp.path(), &[std::path::PathBuf::from("rules")]).unwrap();
    // Rules directly in the rules directory belong to the pipeline (its directory name).
    let base_group = tmp
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let got: Vec<_> = rules
        .iter()
        .map(|r| {
            (
                r.id(),
                r.spec.group.as_str(),
                r.spec.severity,
                r.spec.labels["team"].as_str(),
                r.query.params["threshold"].to_string(),
                r.spec.for_.as_secs(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "a",
                base_group.as_str(),
                Severity::Warning,
                "ml",
                "90".to_string(),
                120
            ),
            ("b", "gpu", Severity::Critical, "gpu", "99".to_string(), 120),
            ("c", "gpu", Severity::Warning, "gpu", "95".to_string(), 120),
        ]
    );
}

#[tokio::test]
async fn a_rule_over_its_memory_limit_fails_alone() {
    let r = rule(
        "-- severity = \"info\"\n\
         SELECT a.trace_id AS t, count(*) AS value FROM spans a, spans b, spans c\n\
         GROUP BY a.trace_id ORDER BY value",
    )
    .unwrap();
    let limits = EvalLimits {
        max_memory_bytes: 16 << 10,
    };
    let e = RuleEngine::new(vec![r], limits).await.unwrap();
    let spans: Vec<_> = (1..61).map(|i| span("s", i, 5, "/")).collect();
    let (findings, failures) = e.evaluate(&batch(&spans), &[], &Unbounded).await;
    assert!(findings.is_empty());
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].message.contains("Resources exhausted"),
        "{}",
        failures[0].message
    );
}

#[tokio::test]
async fn a_longer_rule_window_sees_the_earlier_batches_of_its_span() {
    let r = rule(
        "-- severity = \"info\"\n-- window = \"3m\"\n\
         SELECT count(*) AS value, CAST(min(w.window_start) AS VARCHAR) AS since\n\
         FROM spans, window_bounds w",
    )
    .unwrap();
    assert_eq!(r.query.window, Some(Duration::from_secs(180)));
    let e = RuleEngine::new(vec![r], EvalLimits::default())
        .await
        .unwrap();
    // Four one-minute batches with 1, 2, 3 and 4 spans.
    let mut a = TraceAligner::new(AlignConfig::tumbling(Duration::from_secs(60)));
    let mut n = 0;
    for minute in 0..4u32 {
        for _ in 0..=minute {
            n += 1;
            let mut s = span("s", n, 5, "/");
            s["start_time_unix_nano"] =
                serde_json::json!(u64::from(minute) * 60_000_000_000 + 1_000);
            for r in Decoder::new(1 << 20)
                .decode(s.to_string().as_bytes(), MessageContext::default())
                .unwrap()
            {
                a.insert(r, 0).unwrap();
            }
        }
    }
    let batches = a.flush();
    assert_eq!(batches.len(), 4);
    let (f, _) = e.evaluate(&batches[3], &batches[..3], &Unbounded).await;
    // Minutes 1-3: 2 + 3 + 4 spans; minute 0 is outside the 3-minute window.
    assert_eq!(f[0].value, 9.0);
    assert_eq!(f[0].labels["since"], "1970-01-01T00:01:00Z");
    let (f, _) = e.evaluate(&batches[0], &[], &Unbounded).await;
    assert_eq!(f[0].value, 1.0);
}

/// The microservices pipeline's `pattern_dropout` indicator pairs an event only with the
/// events that follow it in the same request: "after X, Y" is code that went on. An event
/// that came before X (the operation around a generic `commit`) is no pair, so a shift in the
/// mix of operations sharing `commit` is no dropout.
#[tokio::test]
async fn pattern_dropout_pairs_an_event_only_with_what_follows_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/microservices");
    let loaded = crate::load::load(&dir).await.unwrap();
    let which = loaded
        .config
        .incidents
        .indicators
        .iter()
        .position(|i| i.id == "pattern_dropout")
        .unwrap();
    let engine = QueryEngine::new(
        vec![loaded.indicators[which].clone()],
        EvalLimits::default(),
    )
    .await
    .unwrap();
    let op = |trace: u32, seq: u32, name: &str, at_ms: u64| {
        serde_json::json!({"signal": "span", "trace_id": format!("{trace:032x}"),
            "span_id": format!("{:016x}", trace * 10 + seq), "name": name, "service": "orders",
            "start_time_unix_nano": 1_000_000_000_000u64 + at_ms * 1_000_000, "duration_ms": 1})
    };
    // Six reads and six writes, each an operation and then its commit.
    let mut lines = Vec::new();
    for t in 1..=12 {
        let name = if t <= 6 { "getOrder" } else { "createOrder" };
        lines.push(op(t, 1, name, 10 * t as u64));
        lines.push(op(t, 2, "commit", 10 * t as u64 + 3));
    }
    let (rows, failures) = engine.evaluate(&batch(&lines), &[], &Unbounded).await;
    assert!(failures.is_empty(), "{failures:?}");
    let got: BTreeMap<String, f64> = rows[0]
        .iter()
        .map(|r| (r.labels["indicator"].clone(), r.value))
        .collect();
    assert_eq!(
        got.get("span getOrder => span commit"),
        Some(&1.0),
        "{got:?}"
    );
    assert_eq!(got.get("span createOrder => span commit"), Some(&1.0));
    assert!(
        !got.contains_key("span commit => span getOrder"),
        "an operation before the commit does not follow it: {got:?}"
    );
}

/// The columns of the window's tables rules read (what the aligner builds) are their scans'
/// projections, through CTEs, joins, subqueries and map lookups; `SELECT *` reads every
/// column of its table, `count(*)` none, and other tables add nothing.
#[tokio::test]
async fn the_columns_a_rule_reads_are_its_scans_projections() {
    let none = r#""logs": [], "metrics": [], "spans": [], "traces": []"#;
    let cases = [
        (
            "SELECT service, count(*) AS value FROM spans WHERE status = 'error' GROUP BY service",
            none.replace(r#""spans": []"#, r#""spans": ["service", "status"]"#),
        ),
        (
            "SELECT attributes['rank'] AS rank, 1.0 AS value FROM logs WHERE severity_number >= 17",
            none.replace(
                r#""logs": []"#,
                r#""logs": ["severity_number", "attributes"]"#,
            ),
        ),
        (
            "WITH slow AS (SELECT trace_id FROM traces WHERE duration_ms > \
             (SELECT avg(duration_ms) FROM traces)) \
             SELECT s.name AS op, count(*) AS value FROM spans s JOIN slow USING (trace_id) \
             CROSS JOIN window_bounds GROUP BY s.name",
            none.replace(r#""spans": []"#, r#""spans": ["trace_id", "name"]"#)
                .replace(
                    r#""traces": []"#,
                    r#""traces": ["trace_id", "duration_ms"]"#,
                ),
        ),
        ("SELECT count(*) AS value FROM metrics", none.to_string()),
    ];
    for (sql, expected) in cases {
        let e = engine(&format!("-- severity = \"info\"\n{sql}\n"))
            .await
            .unwrap();
        let mut columns = crate::tables::ColumnSet::default();
        e.read_columns(&mut columns);
        assert_eq!(format!("{columns:?}"), format!("{{{expected}}}"), "{sql}");
    }
    let every = engine("-- severity = \"info\"\nSELECT *, 1.0 AS value FROM logs\n")
        .await
        .unwrap();
    let mut columns = crate::tables::ColumnSet::default();
    every.read_columns(&mut columns);
    let mut all_logs = crate::tables::ColumnSet::default();
    all_logs.add_table("logs");
    assert_eq!(columns, all_logs);
}
