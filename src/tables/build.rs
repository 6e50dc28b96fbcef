//! Records and trace summaries into the tables' `RecordBatch`es, column by column: the
//! columns a [`TableColumns`] names are built, the others hold placeholders (`columns`).
//! The `*_batch` functions build every column; the aligner builds only what its pipeline's
//! queries read.

use std::cell::OnceCell;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{Float64Type, Int32Type, UInt32Type, UInt64Type};
use datafusion::arrow::record_batch::RecordBatch;

use super::arrays::{
    bools, ids, maps, number_lists, numbers, pair_maps, resources, string_lists, strings, table,
    times, values,
};
use super::columns::TableColumns;
use super::family::family_columns;
use super::{logs_schema, metrics_schema, spans_schema, traces_schema, window_bounds_schema};
use crate::model::{EventTime, LogRecord, MetricPoint, ParsedLog, SpanRecord, TraceSummary};

/// Builds the `traces` table from trace summaries.
pub fn traces_batch(summaries: &[TraceSummary]) -> RecordBatch {
    traces_table(summaries, TableColumns::ALL)
}

/// The `traces` table with the columns `wanted` built.
pub fn traces_table(summaries: &[TraceSummary], wanted: TableColumns) -> RecordBatch {
    let rows: Vec<&TraceSummary> = summaries.iter().collect();
    let rows = &rows[..];
    table(traces_schema(), wanted, rows.len(), |name| match name {
        "trace_id" => ids(rows, |t| Some(t.trace_id)),
        "start_time" => times(rows, |t| Some(t.start_time)),
        "end_time" => times(rows, |t| Some(t.end_time)),
        "duration_ms" => values::<Float64Type, _>(rows, |t| t.duration_ms),
        "has_root" => bools(rows, |t| Some(t.has_root)),
        "root_service" => strings(rows, |t| t.root_service.as_deref()),
        "root_name" => strings(rows, |t| t.root_name.as_deref()),
        "span_count" => values::<UInt32Type, _>(rows, |t| t.span_count),
        "error_count" => values::<UInt32Type, _>(rows, |t| t.error_count),
        "log_count" => values::<UInt32Type, _>(rows, |t| t.log_count),
        "error_log_count" => values::<UInt32Type, _>(rows, |t| t.error_log_count),
        "service_count" => values::<UInt32Type, _>(rows, |t| t.service_count),
        "bottleneck_span" => strings(rows, |t| t.bottleneck_span.as_deref()),
        "bottleneck_service" => strings(rows, |t| t.bottleneck_service.as_deref()),
        "bottleneck_ms" => numbers::<Float64Type, _>(rows, |t| t.bottleneck_ms),
        "bottleneck_share" => numbers::<Float64Type, _>(rows, |t| t.bottleneck_share),
        "closed_early" => bools(rows, |t| Some(t.closed_early)),
        other => unreachable!("traces has no column {other}"),
    })
}

/// Builds the `window_bounds` table of one window.
pub fn window_bounds_batch(start: EventTime, end: EventTime, early: bool) -> RecordBatch {
    let row = [&()];
    table(
        window_bounds_schema(),
        TableColumns::ALL,
        1,
        |name| match name {
            "window_start" => times(&row, |_| Some(start)),
            "window_end" => times(&row, |_| Some(end)),
            "evaluated_early" => bools(&row, |_| Some(early)),
            other => unreachable!("window_bounds has no column {other}"),
        },
    )
}

/// A one-row `Map<Utf8, Utf8>` column (the type of `tables::string_map`) of `pairs`.
pub fn string_map_column<'a>(
    pairs: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> ArrayRef {
    let pairs: Vec<(&String, String)> = pairs.into_iter().map(|(k, v)| (k, v.clone())).collect();
    let row = [&pairs[..]];
    pair_maps(&row, |p| p)
}

/// Builds the `logs` table from records.
pub fn logs_batch(records: &[&LogRecord]) -> RecordBatch {
    logs_table(records, TableColumns::ALL)
}

/// The `logs` table with the columns `wanted` built.
pub fn logs_table(rows: &[&LogRecord], wanted: TableColumns) -> RecordBatch {
    table(logs_schema(), wanted, rows.len(), |name| match name {
        "time" => times(rows, |r| Some(r.time)),
        "observed_time" => times(rows, |r| r.observed_time),
        "trace_id" => ids(rows, |r| r.trace_id),
        "span_id" => ids(rows, |r| r.span_id),
        "service" => strings(rows, |r| r.resource.service.as_deref()),
        "host" => strings(rows, |r| r.resource.host.as_deref()),
        "severity_number" => values::<Int32Type, _>(rows, |r| r.severity_number),
        "severity_text" => strings(rows, |r| r.severity_text.as_deref()),
        "body" => strings(rows, |r| Some(r.body.as_str())),
        "scope" => strings(rows, |r| r.scope.as_deref()),
        "resource" => resources(rows, |r| &r.resource),
        "attributes" => maps(rows, |r| &r.attributes),
        "template_id" => strings(rows, |r| parsed(r)?.template_id.as_deref()),
        "template" => strings(rows, |r| parsed(r)?.template.as_deref()),
        "params" => string_lists(rows, |r| parsed(r).map_or(&[][..], |p| &p.params[..])),
        "fields" => pair_maps(rows, |r| parsed(r).map_or(&[][..], |p| &p.fields[..])),
        "signature" => strings(rows, |r| parsed(r)?.signature),
        "signature_fields" => pair_maps(rows, |r| {
            parsed(r).map_or(&[][..], |p| &p.signature_fields[..])
        }),
        other => unreachable!("logs has no column {other}"),
    })
}

fn parsed(r: &LogRecord) -> Option<&ParsedLog> {
    r.parsed.as_deref()
}

/// Builds the `metrics` table from data points.
pub fn metrics_batch(points: &[&MetricPoint]) -> RecordBatch {
    metrics_table(points, TableColumns::ALL)
}

/// The `metrics` table with the columns `wanted` built.
pub fn metrics_table(rows: &[&MetricPoint], wanted: TableColumns) -> RecordBatch {
    table(metrics_schema(), wanted, rows.len(), |name| match name {
        "time" => times(rows, |p| Some(p.time)),
        "start_time" => times(rows, |p| p.start_time),
        "service" => strings(rows, |p| p.resource.service.as_deref()),
        "host" => strings(rows, |p| p.resource.host.as_deref()),
        "name" => strings(rows, |p| Some(p.name.as_str())),
        "description" => strings(rows, |p| p.description.as_deref()),
        "unit" => strings(rows, |p| p.unit.as_deref()),
        "kind" => strings(rows, |p| Some(p.kind.as_str())),
        "temporality" => strings(rows, |p| p.temporality),
        "is_monotonic" => bools(rows, |p| p.is_monotonic),
        "value" => numbers::<Float64Type, _>(rows, |p| p.value),
        "count" => numbers::<UInt64Type, _>(rows, |p| p.count),
        "sum" => numbers::<Float64Type, _>(rows, |p| p.sum),
        "min" => numbers::<Float64Type, _>(rows, |p| p.min),
        "max" => numbers::<Float64Type, _>(rows, |p| p.max),
        "bucket_bounds" => {
            number_lists::<Float64Type, _, _>(rows, |p| p.bucket_bounds.iter().copied())
        }
        "bucket_counts" => {
            number_lists::<UInt64Type, _, _>(rows, |p| p.bucket_counts.iter().copied())
        }
        "quantiles" => {
            number_lists::<Float64Type, _, _>(rows, |p| p.quantiles.iter().map(|(q, _)| *q))
        }
        "quantile_values" => {
            number_lists::<Float64Type, _, _>(rows, |p| p.quantiles.iter().map(|(_, v)| *v))
        }
        "trace_id" => ids(rows, |p| p.trace_id),
        "span_id" => ids(rows, |p| p.span_id),
        "scope" => strings(rows, |p| p.scope.as_deref()),
        "resource" => resources(rows, |p| &p.resource),
        "attributes" => maps(rows, |p| &p.attributes),
        other => unreachable!("metrics has no column {other}"),
    })
}

/// Builds the `spans` table from spans.
pub fn spans_batch(spans: &[&SpanRecord]) -> RecordBatch {
    spans_table(spans, TableColumns::ALL)
}

/// The `spans` table with the columns `wanted` built.
pub fn spans_table(rows: &[&SpanRecord], wanted: TableColumns) -> RecordBatch {
    // The five family columns come from one pass over the window's spans.
    let family = OnceCell::new();
    let family_column = |i: usize| family.get_or_init(|| family_columns(rows))[i].clone();
    table(spans_schema(), wanted, rows.len(), |name| match name {
        "start_time" => times(rows, |s| Some(s.start_time)),
        "end_time" => times(rows, |s| Some(s.end_time)),
        "duration_ms" => values::<Float64Type, _>(rows, SpanRecord::duration_ms),
        "trace_id" => ids(rows, |s| Some(s.trace_id)),
        "span_id" => ids(rows, |s| Some(s.span_id)),
        "parent_span_id" => ids(rows, |s| s.parent_span_id),
        "is_root" => bools(rows, |s| Some(s.parent_span_id.is_none())),
        "service" => strings(rows, |s| s.resource.service.as_deref()),
        "host" => strings(rows, |s| s.resource.host.as_deref()),
        "name" => strings(rows, |s| Some(s.name.as_str())),
        "kind" => strings(rows, |s| Some(s.kind)),
        "status" => strings(rows, |s| Some(s.status.as_str())),
        "status_message" => strings(rows, |s| s.status_message.as_deref()),
        "event_count" => values::<UInt32Type, _>(rows, |s| s.event_count),
        "scope" => strings(rows, |s| s.scope.as_deref()),
        "resource" => resources(rows, |s| &s.resource),
        "attributes" => maps(rows, |s| &s.attributes),
        "parent_service" => family_column(0),
        "parent_duration_ms" => family_column(1),
        "child_count" => family_column(2),
        "child_ms" => family_column(3),
        "remote_child_count" => family_column(4),
        other => unreachable!("spans has no column {other}"),
    })
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
