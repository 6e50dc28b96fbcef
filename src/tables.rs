//! The Arrow tables SQL rules read: `logs`, `metrics`, `spans` and `traces`.
//!
//! `schemas/tables.json` documents every column; a test keeps it and the schemas here
//! identical. This module only converts decoded
//! records into `RecordBatch`es; it does no I/O.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, ListBuilder, MapBuilder, StringBuilder,
    TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use crate::model::{
    AlignedBatch, Attributes, EventTime, LogRecord, MetricPoint, SpanRecord, TraceSummary,
};

/// Names of the tables, in the order rules see them documented.
pub const TABLE_NAMES: [&str; 5] = ["logs", "metrics", "spans", "traces", "window_bounds"];

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// `Map<Utf8, Utf8>` exactly as arrow's `MapBuilder` produces it.
fn string_map() -> DataType {
    let entries = Fields::from(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", DataType::Utf8, true),
    ]);
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    )
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// Columns of the `logs` table.
pub fn logs_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("time", timestamp(), false),
                Field::new("observed_time", timestamp(), true),
                utf8("trace_id", true),
                utf8("span_id", true),
                utf8("service", true),
                utf8("host", true),
                Field::new("severity_number", DataType::Int32, false),
                utf8("severity_text", true),
                utf8("body", false),
                utf8("scope", true),
                Field::new("resource", string_map(), false),
                Field::new("attributes", string_map(), false),
                utf8("template_id", true),
                utf8("template", true),
                Field::new("params", list_of(DataType::Utf8), false),
                Field::new("fields", string_map(), false),
                utf8("signature", true),
                Field::new("signature_fields", string_map(), false),
            ]))
        })
        .clone()
}

/// Columns of the `metrics` table: one row per data point.
pub fn metrics_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("time", timestamp(), false),
                Field::new("start_time", timestamp(), true),
                utf8("service", true),
                utf8("host", true),
                utf8("name", false),
                utf8("description", true),
                utf8("unit", true),
                utf8("kind", false),
                utf8("temporality", true),
                Field::new("is_monotonic", DataType::Boolean, true),
                Field::new("value", DataType::Float64, true),
                Field::new("count", DataType::UInt64, true),
                Field::new("sum", DataType::Float64, true),
                Field::new("min", DataType::Float64, true),
                Field::new("max", DataType::Float64, true),
                Field::new("bucket_bounds", list_of(DataType::Float64), false),
                Field::new("bucket_counts", list_of(DataType::UInt64), false),
                Field::new("quantiles", list_of(DataType::Float64), false),
                Field::new("quantile_values", list_of(DataType::Float64), false),
                utf8("trace_id", true),
                utf8("span_id", true),
                utf8("scope", true),
                Field::new("resource", string_map(), false),
                Field::new("attributes", string_map(), false),
            ]))
        })
        .clone()
}

/// Columns of the `spans` table.
pub fn spans_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("start_time", timestamp(), false),
                Field::new("end_time", timestamp(), false),
                Field::new("duration_ms", DataType::Float64, false),
                utf8("trace_id", false),
                utf8("span_id", false),
                utf8("parent_span_id", true),
                Field::new("is_root", DataType::Boolean, false),
                utf8("service", true),
                utf8("host", true),
                utf8("name", false),
                utf8("kind", false),
                utf8("status", false),
                utf8("status_message", true),
                Field::new("event_count", DataType::UInt32, false),
                utf8("scope", true),
                Field::new("resource", string_map(), false),
                Field::new("attributes", string_map(), false),
            ]))
        })
        .clone()
}

/// Columns of the `traces` table: one row per trace closed into the window.
pub fn traces_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                utf8("trace_id", false),
                Field::new("start_time", timestamp(), false),
                Field::new("end_time", timestamp(), false),
                Field::new("duration_ms", DataType::Float64, false),
                Field::new("has_root", DataType::Boolean, false),
                utf8("root_service", true),
                utf8("root_name", true),
                Field::new("span_count", DataType::UInt32, false),
                Field::new("error_count", DataType::UInt32, false),
                Field::new("log_count", DataType::UInt32, false),
                Field::new("error_log_count", DataType::UInt32, false),
                Field::new("service_count", DataType::UInt32, false),
                utf8("bottleneck_span", true),
                utf8("bottleneck_service", true),
                Field::new("bottleneck_ms", DataType::Float64, true),
                Field::new("bottleneck_share", DataType::Float64, true),
                Field::new("closed_early", DataType::Boolean, false),
            ]))
        })
        .clone()
}

/// Builds the `traces` table from trace summaries.
pub fn traces_batch(summaries: &[TraceSummary]) -> RecordBatch {
    let mut strings: [StringBuilder; 5] = std::array::from_fn(|_| StringBuilder::new());
    let (mut start, mut end) = (
        TimestampNanosecondBuilder::new(),
        TimestampNanosecondBuilder::new(),
    );
    let mut floats: [Float64Builder; 3] = std::array::from_fn(|_| Float64Builder::new());
    let mut bools: [BooleanBuilder; 2] = std::array::from_fn(|_| BooleanBuilder::new());
    let mut counts: [UInt32Builder; 5] = std::array::from_fn(|_| UInt32Builder::new());
    for t in summaries {
        let [id, root_service, root_name, b_span, b_service] = &mut strings;
        id.append_value(&t.trace_id);
        root_service.append_option(t.root_service.as_deref());
        root_name.append_option(t.root_name.as_deref());
        b_span.append_option(t.bottleneck_span.as_deref());
        b_service.append_option(t.bottleneck_service.as_deref());
        ts(&mut start, Some(t.start_time));
        ts(&mut end, Some(t.end_time));
        let [duration, b_ms, b_share] = &mut floats;
        duration.append_value(t.duration_ms);
        b_ms.append_option(t.bottleneck_ms);
        b_share.append_option(t.bottleneck_share);
        let [has_root, early] = &mut bools;
        has_root.append_value(t.has_root);
        early.append_value(t.closed_early);
        let [spans, errors, logs, error_logs, services] = &mut counts;
        spans.append_value(t.span_count);
        errors.append_value(t.error_count);
        logs.append_value(t.log_count);
        error_logs.append_value(t.error_log_count);
        services.append_value(t.service_count);
    }
    let [mut id, mut root_service, mut root_name, mut b_span, mut b_service] = strings;
    let [mut duration, mut b_ms, mut b_share] = floats;
    let [mut has_root, mut early] = bools;
    let [mut spans, mut errors, mut logs, mut error_logs, mut services] = counts;
    batch(
        traces_schema(),
        vec![
            Arc::new(id.finish()),
            finish_ts(start),
            finish_ts(end),
            Arc::new(duration.finish()),
            Arc::new(has_root.finish()),
            Arc::new(root_service.finish()),
            Arc::new(root_name.finish()),
            Arc::new(spans.finish()),
            Arc::new(errors.finish()),
            Arc::new(logs.finish()),
            Arc::new(error_logs.finish()),
            Arc::new(services.finish()),
            Arc::new(b_span.finish()),
            Arc::new(b_service.finish()),
            Arc::new(b_ms.finish()),
            Arc::new(b_share.finish()),
            Arc::new(early.finish()),
        ],
    )
}

/// Columns of the one-row `window_bounds` table: the window being evaluated.
pub fn window_bounds_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("window_start", timestamp(), false),
                Field::new("window_end", timestamp(), false),
                Field::new("evaluated_early", DataType::Boolean, false),
            ]))
        })
        .clone()
}

/// Builds the `window_bounds` table of one window.
pub fn window_bounds_batch(start: EventTime, end: EventTime, early: bool) -> RecordBatch {
    let (mut s, mut e) = (
        TimestampNanosecondBuilder::new(),
        TimestampNanosecondBuilder::new(),
    );
    ts(&mut s, Some(start));
    ts(&mut e, Some(end));
    let mut early_col = BooleanBuilder::new();
    early_col.append_value(early);
    batch(
        window_bounds_schema(),
        vec![finish_ts(s), finish_ts(e), Arc::new(early_col.finish())],
    )
}

/// The schema of a table by name.
/// The table `name` of a window's batch, `window_bounds` included.
pub fn table_of(batch: &AlignedBatch, name: &str) -> Option<RecordBatch> {
    match name {
        "window_bounds" => Some(window_bounds_batch(
            batch.window.start,
            batch.window.end,
            batch.early,
        )),
        _ => batch.data_table(name).cloned(),
    }
}

pub fn schema_of(table: &str) -> Option<SchemaRef> {
    match table {
        "logs" => Some(logs_schema()),
        "metrics" => Some(metrics_schema()),
        "spans" => Some(spans_schema()),
        "traces" => Some(traces_schema()),
        "window_bounds" => Some(window_bounds_schema()),
        _ => None,
    }
}

type StringMapBuilder = MapBuilder<StringBuilder, StringBuilder>;

fn map_builder() -> StringMapBuilder {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

fn append_map(builder: &mut StringMapBuilder, attributes: &Attributes) {
    for (k, v) in attributes {
        builder.keys().append_value(k);
        builder.values().append_value(v);
    }
    builder
        .append(true)
        .expect("keys and values are appended in pairs");
}

fn append_pairs<K: AsRef<str>>(builder: &mut StringMapBuilder, pairs: &[(K, String)]) {
    for (k, v) in pairs {
        builder.keys().append_value(k.as_ref());
        builder.values().append_value(v);
    }
    builder
        .append(true)
        .expect("keys and values are appended in pairs");
}

fn ts(builder: &mut TimestampNanosecondBuilder, t: Option<EventTime>) {
    builder.append_option(t.map(EventTime::nanos));
}

fn finish_ts(mut b: TimestampNanosecondBuilder) -> ArrayRef {
    Arc::new(b.finish().with_timezone("UTC"))
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schema, columns).expect("builders follow the declared schema")
}

/// Builds the `logs` table from records.
pub fn logs_batch<'a>(records: impl IntoIterator<Item = &'a LogRecord>) -> RecordBatch {
    let mut time = TimestampNanosecondBuilder::new();
    let mut observed = TimestampNanosecondBuilder::new();
    let (mut trace_id, mut span_id, mut service, mut host) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut severity_number = Int32Builder::new();
    let (mut severity_text, mut body, mut scope) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut resource, mut attributes) = (map_builder(), map_builder());
    let (mut template_id, mut template, mut signature) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut params = ListBuilder::new(StringBuilder::new());
    let (mut fields, mut signature_fields) = (map_builder(), map_builder());
    for r in records {
        ts(&mut time, Some(r.time));
        ts(&mut observed, r.observed_time);
        trace_id.append_option(r.trace_id.as_deref());
        span_id.append_option(r.span_id.as_deref());
        service.append_option(r.resource.service.as_deref());
        host.append_option(r.resource.host.as_deref());
        severity_number.append_value(r.severity_number);
        severity_text.append_option(r.severity_text.as_deref());
        body.append_value(&r.body);
        scope.append_option(r.scope.as_deref());
        append_map(&mut resource, &r.resource.attributes);
        append_map(&mut attributes, &r.attributes);
        let parsed = r.parsed.as_deref();
        template_id.append_option(parsed.and_then(|p| p.template_id.as_deref()));
        template.append_option(parsed.and_then(|p| p.template.as_deref()));
        for param in parsed.map_or(&[][..], |p| &p.params[..]) {
            params.values().append_value(param);
        }
        params.append(true);
        append_pairs(&mut fields, parsed.map_or(&[][..], |p| &p.fields[..]));
        signature.append_option(parsed.and_then(|p| p.signature));
        append_pairs(
            &mut signature_fields,
            parsed.map_or(&[][..], |p| &p.signature_fields[..]),
        );
    }
    batch(
        logs_schema(),
        vec![
            finish_ts(time),
            finish_ts(observed),
            Arc::new(trace_id.finish()),
            Arc::new(span_id.finish()),
            Arc::new(service.finish()),
            Arc::new(host.finish()),
            Arc::new(severity_number.finish()),
            Arc::new(severity_text.finish()),
            Arc::new(body.finish()),
            Arc::new(scope.finish()),
            Arc::new(resource.finish()),
            Arc::new(attributes.finish()),
            Arc::new(template_id.finish()),
            Arc::new(template.finish()),
            Arc::new(params.finish()),
            Arc::new(fields.finish()),
            Arc::new(signature.finish()),
            Arc::new(signature_fields.finish()),
        ],
    )
}

/// Builds the `metrics` table from data points.
pub fn metrics_batch<'a>(points: impl IntoIterator<Item = &'a MetricPoint>) -> RecordBatch {
    let (mut time, mut start) = (
        TimestampNanosecondBuilder::new(),
        TimestampNanosecondBuilder::new(),
    );
    let mut strings: [StringBuilder; 7] = std::array::from_fn(|_| StringBuilder::new());
    let mut is_monotonic = BooleanBuilder::new();
    let mut floats: [Float64Builder; 4] = std::array::from_fn(|_| Float64Builder::new());
    let mut count = UInt64Builder::new();
    let mut bucket_bounds = ListBuilder::new(Float64Builder::new());
    let mut bucket_counts = ListBuilder::new(UInt64Builder::new());
    let mut quantiles = ListBuilder::new(Float64Builder::new());
    let mut quantile_values = ListBuilder::new(Float64Builder::new());
    let mut ids: [StringBuilder; 3] = std::array::from_fn(|_| StringBuilder::new());
    let (mut resource, mut attributes) = (map_builder(), map_builder());
    for p in points {
        ts(&mut time, Some(p.time));
        ts(&mut start, p.start_time);
        let [service, host, name, description, unit, kind, temporality] = &mut strings;
        service.append_option(p.resource.service.as_deref());
        host.append_option(p.resource.host.as_deref());
        name.append_value(&p.name);
        description.append_option(p.description.as_deref());
        unit.append_option(p.unit.as_deref());
        kind.append_value(p.kind.as_str());
        temporality.append_option(p.temporality);
        is_monotonic.append_option(p.is_monotonic);
        let [value, sum, min, max] = &mut floats;
        value.append_option(p.value);
        count.append_option(p.count);
        sum.append_option(p.sum);
        min.append_option(p.min);
        max.append_option(p.max);
        bucket_bounds.values().append_slice(&p.bucket_bounds);
        bucket_bounds.append(true);
        bucket_counts.values().append_slice(&p.bucket_counts);
        bucket_counts.append(true);
        for (q, v) in &p.quantiles {
            quantiles.values().append_value(*q);
            quantile_values.values().append_value(*v);
        }
        quantiles.append(true);
        quantile_values.append(true);
        let [trace_id, span_id, scope] = &mut ids;
        trace_id.append_option(p.trace_id.as_deref());
        span_id.append_option(p.span_id.as_deref());
        scope.append_option(p.scope.as_deref());
        append_map(&mut resource, &p.resource.attributes);
        append_map(&mut attributes, &p.attributes);
    }
    let [mut service, mut host, mut name, mut description, mut unit, mut kind, mut temporality] =
        strings;
    let [mut value, mut sum, mut min, mut max] = floats;
    let [mut trace_id, mut span_id, mut scope] = ids;
    batch(
        metrics_schema(),
        vec![
            finish_ts(time),
            finish_ts(start),
            Arc::new(service.finish()),
            Arc::new(host.finish()),
            Arc::new(name.finish()),
            Arc::new(description.finish()),
            Arc::new(unit.finish()),
            Arc::new(kind.finish()),
            Arc::new(temporality.finish()),
            Arc::new(is_monotonic.finish()),
            Arc::new(value.finish()),
            Arc::new(count.finish()),
            Arc::new(sum.finish()),
            Arc::new(min.finish()),
            Arc::new(max.finish()),
            Arc::new(bucket_bounds.finish()),
            Arc::new(bucket_counts.finish()),
            Arc::new(quantiles.finish()),
            Arc::new(quantile_values.finish()),
            Arc::new(trace_id.finish()),
            Arc::new(span_id.finish()),
            Arc::new(scope.finish()),
            Arc::new(resource.finish()),
            Arc::new(attributes.finish()),
        ],
    )
}

/// Builds the `spans` table from spans.
pub fn spans_batch<'a>(spans: impl IntoIterator<Item = &'a SpanRecord>) -> RecordBatch {
    let (mut start, mut end) = (
        TimestampNanosecondBuilder::new(),
        TimestampNanosecondBuilder::new(),
    );
    let mut duration = Float64Builder::new();
    let mut strings: [StringBuilder; 10] = std::array::from_fn(|_| StringBuilder::new());
    let mut is_root = BooleanBuilder::new();
    let mut event_count = UInt32Builder::new();
    let (mut resource, mut attributes) = (map_builder(), map_builder());
    for s in spans {
        ts(&mut start, Some(s.start_time));
        ts(&mut end, Some(s.end_time));
        duration.append_value(s.duration_ms());
        let [trace_id, span_id, parent, service, host, name, kind, status, message, scope] =
            &mut strings;
        trace_id.append_value(&s.trace_id);
        span_id.append_value(&s.span_id);
        parent.append_option(s.parent_span_id.as_deref());
        is_root.append_value(s.parent_span_id.is_none());
        service.append_option(s.resource.service.as_deref());
        host.append_option(s.resource.host.as_deref());
        name.append_value(&s.name);
        kind.append_value(s.kind);
        status.append_value(s.status.as_str());
        message.append_option(s.status_message.as_deref());
        event_count.append_value(s.event_count);
        scope.append_option(s.scope.as_deref());
        append_map(&mut resource, &s.resource.attributes);
        append_map(&mut attributes, &s.attributes);
    }
    let [mut trace_id, mut span_id, mut parent, mut service, mut host, mut name, mut kind, mut status, mut message, mut scope] =
        strings;
    batch(
        spans_schema(),
        vec![
            finish_ts(start),
            finish_ts(end),
            Arc::new(duration.finish()),
            Arc::new(trace_id.finish()),
            Arc::new(span_id.finish()),
            Arc::new(parent.finish()),
            Arc::new(is_root.finish()),
            Arc::new(service.finish()),
            Arc::new(host.finish()),
            Arc::new(name.finish()),
            Arc::new(kind.finish()),
            Arc::new(status.finish()),
            Arc::new(message.finish()),
            Arc::new(event_count.finish()),
            Arc::new(scope.finish()),
            Arc::new(resource.finish()),
            Arc::new(attributes.finish()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `schemas/tables.json` is the user-facing definition; the code must agree with it.
    #[test]
    fn tables_match_documented_schema() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../schemas/tables.json")).unwrap();
        for table in TABLE_NAMES {
            let schema = schema_of(table).unwrap();
            let documented = doc["tables"][table]["columns"]
                .as_array()
                .unwrap_or_else(|| panic!("table {table} is not documented"));
            let documented: Vec<(String, String, bool)> = documented
                .iter()
                .map(|c| {
                    assert!(
                        c["description"].as_str().is_some_and(|d| !d.is_empty()),
                        "{table}.{} has no description",
                        c["name"]
                    );
                    (
                        c["name"].as_str().unwrap().to_string(),
                        c["type"].as_str().unwrap().to_string(),
                        c["nullable"].as_bool().unwrap(),
                    )
                })
                .collect();
            let actual: Vec<(String, String, bool)> = schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), type_name(f.data_type()), f.is_nullable()))
                .collect();
            assert_eq!(actual, documented, "table {table}");
        }
    }

    fn type_name(t: &DataType) -> String {
        match t {
            DataType::Timestamp(_, _) => "timestamp_ns_utc".into(),
            DataType::Utf8 => "string".into(),
            DataType::Float64 => "float64".into(),
            DataType::Int32 => "int32".into(),
            DataType::UInt32 => "uint32".into(),
            DataType::UInt64 => "uint64".into(),
            DataType::Boolean => "boolean".into(),
            DataType::Map(_, _) => "map<string,string>".into(),
            DataType::List(f) => format!("list<{}>", type_name(f.data_type())),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn empty_batches_have_the_declared_schemas() {
        assert_eq!(logs_batch([]).schema(), logs_schema());
        assert_eq!(metrics_batch([]).schema(), metrics_schema());
        assert_eq!(spans_batch([]).schema(), spans_schema());
        assert_eq!(traces_batch(&[]).schema(), traces_schema());
    }
}
