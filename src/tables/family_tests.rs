//! The family columns against the self-joins they replace: generated windows of traces
//! (lost parents, services missing, parallel and remote children) are queried both ways.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, UInt32Type};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::model::{EventTime, Resource, SpanId, SpanRecord, StatusCode, TraceId};
use crate::tables::spans_batch;

fn span(trace: usize, id: usize, parent: Option<usize>, service: Option<&str>) -> SpanRecord {
    // Durations that do not add up exactly in binary, so that summing order would show.
    let start = (trace * 1000 + id * 7) as i64 * 1_000_000;
    let duration = 100_000_000 + (id * 3_300_001 + trace * 700_003) as i64;
    SpanRecord {
        start_time: EventTime(start),
        end_time: EventTime(start + duration),
        trace_id: TraceId::from_label(&format!("t{trace}")),
        span_id: SpanId::from_label(&format!("s{id}")),
        parent_span_id: parent.map(|p| SpanId::from_label(&format!("s{p}"))),
        name: format!("op{}", id % 3),
        kind: "internal",
        status: StatusCode::Ok,
        status_message: None,
        resource: Arc::new(Resource::from_attributes(
            service
                .map(|s| [("service.name".to_string(), s.to_string())].into())
                .unwrap_or_default(),
        )),
        scope: None,
        attributes: Default::default(),
        event_count: 0,
    }
}

/// A window of `traces` traces of up to 9 spans each, shaped by a fixed pseudo-random walk:
/// each span's parent is an earlier span, a span that is not there (lost), or none (a root);
/// services come from a few names or are missing.
fn window(traces: usize, seed: u64) -> Vec<SpanRecord> {
    let mut state = seed;
    let mut next = |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % n) as usize
    };
    let services = [Some("api"), Some("model"), Some("db"), None];
    let mut out = Vec::new();
    for t in 0..traces {
        let n = 1 + next(9);
        for id in 0..n {
            let parent = match (id, next(10)) {
                (0, _) => None,
                (_, 0) => Some(50 + id), // lost: never in the window
                _ => Some(next(id as u64)),
            };
            out.push(span(t, id, parent, services[next(4)]));
        }
    }
    out
}

async fn rows(batch: &RecordBatch, sql: &str) -> String {
    // One partition: a grouped sum adds in row order, as the pipeline's sessions do.
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    let table = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]]).unwrap();
    ctx.register_table("spans", Arc::new(table)).unwrap();
    let out = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&out).unwrap().to_string()
}

const EDGES_BY_JOIN: &str = "
    SELECT c.trace_id, c.span_id, p.service AS parent_service, p.duration_ms AS parent_ms
    FROM spans c LEFT JOIN spans p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id
    ORDER BY 1, 2";
const EDGES_BY_COLUMN: &str = "
    SELECT trace_id, span_id, parent_service, parent_duration_ms AS parent_ms
    FROM spans ORDER BY 1, 2";
const CHILDREN_BY_JOIN: &str = "
    WITH k AS (
        SELECT trace_id, parent_span_id, count(*) AS n, sum(duration_ms) AS ms,
               min(service) AS first_service, max(service) AS last_service
        FROM spans WHERE parent_span_id IS NOT NULL GROUP BY trace_id, parent_span_id)
    SELECT s.trace_id, s.span_id, coalesce(k.n, 0) AS n, coalesce(k.ms, 0.0) AS ms,
           s.service IS NULL OR coalesce(k.first_service = s.service
                                         AND k.last_service = s.service, true) AS local
    FROM spans s LEFT JOIN k ON k.trace_id = s.trace_id AND k.parent_span_id = s.span_id
    ORDER BY 1, 2";
const CHILDREN_BY_COLUMN: &str = "
    SELECT trace_id, span_id, CAST(child_count AS BIGINT) AS n, child_ms AS ms,
           service IS NULL OR remote_child_count = 0 AS local
    FROM spans ORDER BY 1, 2";

#[tokio::test]
async fn family_columns_are_what_the_self_joins_find() {
    for seed in 1..=8 {
        let spans = window(40, seed);
        let refs: Vec<&SpanRecord> = spans.iter().collect();
        let batch = spans_batch(&refs);
        assert_eq!(
            rows(&batch, EDGES_BY_JOIN).await,
            rows(&batch, EDGES_BY_COLUMN).await,
            "seed {seed}"
        );
        assert_eq!(
            rows(&batch, CHILDREN_BY_JOIN).await,
            rows(&batch, CHILDREN_BY_COLUMN).await,
            "seed {seed}"
        );
    }
}

#[test]
fn a_span_knows_its_parent_and_children() {
    // root (api) -> a (api) -> b (model), c (api); a lost parent; a root without service.
    let spans = [
        span(0, 0, None, Some("api")),
        span(0, 1, Some(0), Some("api")),
        span(0, 2, Some(1), Some("model")),
        span(0, 3, Some(1), Some("api")),
        span(0, 4, Some(9), Some("api")),
        span(1, 0, None, None),
        span(1, 1, Some(0), Some("db")),
    ];
    let refs: Vec<&SpanRecord> = spans.iter().collect();
    let batch = spans_batch(&refs);
    let column = |name: &str| batch.column_by_name(name).unwrap().clone();
    let parent_service = column("parent_service");
    let parent_service = parent_service.as_string::<i32>();
    let services: Vec<Option<&str>> = (0..7)
        .map(|i| parent_service.is_valid(i).then(|| parent_service.value(i)))
        .collect();
    assert_eq!(
        services,
        [
            None,
            Some("api"),
            Some("api"),
            Some("api"),
            None,
            None,
            None
        ]
    );
    let parent_ms = column("parent_duration_ms");
    let parent_ms = parent_ms.as_primitive::<Float64Type>();
    assert!(parent_ms.is_null(0) && parent_ms.is_null(4) && parent_ms.is_valid(6));
    assert_eq!(parent_ms.value(2), spans[1].duration_ms());
    let counts = column("child_count");
    assert_eq!(
        counts.as_primitive::<UInt32Type>().values(),
        &[1, 2, 0, 0, 0, 1, 0]
    );
    let remote = column("remote_child_count");
    assert_eq!(
        remote.as_primitive::<UInt32Type>().values(),
        &[0, 1, 0, 0, 0, 1, 0]
    );
    let child_ms = column("child_ms");
    let child_ms = child_ms.as_primitive::<Float64Type>();
    assert_eq!(
        child_ms.value(1),
        spans[2].duration_ms() + spans[3].duration_ms()
    );
    assert_eq!(child_ms.value(2), 0.0);
}

#[test]
fn a_repeated_span_id_is_one_parent() {
    // The parent delivered twice: its child is counted once, and both rows see it.
    let spans = [
        span(0, 0, None, Some("api")),
        span(0, 0, None, Some("api")),
        span(0, 1, Some(0), Some("model")),
    ];
    let refs: Vec<&SpanRecord> = spans.iter().collect();
    let batch = spans_batch(&refs);
    let counts = batch.column_by_name("child_count").unwrap();
    assert_eq!(counts.as_primitive::<UInt32Type>().values(), &[1, 1, 0]);
    let parent = batch.column_by_name("parent_service").unwrap();
    assert_eq!(parent.as_string::<i32>().value(2), "api");
}
