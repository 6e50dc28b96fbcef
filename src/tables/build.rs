//! Records and trace summaries into the tables' `RecordBatch`es.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, ListBuilder, MapBuilder, StringBuilder,
    TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::capacity::{add_row, string_builders, text, MapSize, ResourceSizes, StringMapBuilder};
use super::family::family_columns;
use super::{logs_schema, metrics_schema, spans_schema, traces_schema, window_bounds_schema};
use crate::model::{Attributes, EventTime, LogRecord, MetricPoint, SpanRecord, TraceSummary};

/// Hex digits of a trace id and of a span id.
const TRACE_ID_TEXT: usize = 32;
const SPAN_ID_TEXT: usize = 16;

/// Builds the `traces` table from trace summaries.
pub fn traces_batch(summaries: &[TraceSummary]) -> RecordBatch {
    let n = summaries.len();
    let mut text_bytes = [0; 5];
    for t in summaries {
        add_row(
            &mut text_bytes,
            [
                TRACE_ID_TEXT,
                text(t.root_service.as_deref()),
                text(t.root_name.as_deref()),
                text(t.bottleneck_span.as_deref()),
                text(t.bottleneck_service.as_deref()),
            ],
        );
    }
    let mut strings = string_builders(n, text_bytes);
    let (mut start, mut end) = (
        TimestampNanosecondBuilder::with_capacity(n),
        TimestampNanosecondBuilder::with_capacity(n),
    );
    let mut floats: [Float64Builder; 3] = std::array::from_fn(|_| Float64Builder::with_capacity(n));
    let mut bools: [BooleanBuilder; 2] = std::array::from_fn(|_| BooleanBuilder::with_capacity(n));
    let mut counts: [UInt32Builder; 5] = std::array::from_fn(|_| UInt32Builder::with_capacity(n));
    for t in summaries {
        let [id, root_service, root_name, b_span, b_service] = &mut strings;
        id.append_value(t.trace_id.hex());
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
/// A `Map<Utf8, Utf8>` column (the type of `tables::string_map`) of `maps`, one row each.
pub fn string_map_column(maps: &[&Attributes]) -> ArrayRef {
    let mut b = map_builder();
    for m in maps {
        append_map(&mut b, m);
    }
    Arc::new(b.finish())
}

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

/// Sizes of the `logs` table's variable-length columns.
struct LogSizes {
    text: [usize; 10],
    params: usize,
    param_bytes: usize,
    resource: MapSize,
    attributes: MapSize,
    fields: MapSize,
    signature_fields: MapSize,
}

fn log_sizes(records: &[&LogRecord]) -> LogSizes {
    let mut text_bytes = [0; 10];
    let (mut params_size, mut params_bytes) = (0, 0);
    let mut resource_size = ResourceSizes::default();
    let [mut attributes_size, mut fields_size, mut signature_fields_size] = [MapSize::default(); 3];
    for r in records {
        let parsed = r.parsed.as_deref();
        add_row(
            &mut text_bytes,
            [
                r.trace_id.map_or(0, |_| TRACE_ID_TEXT),
                r.span_id.map_or(0, |_| SPAN_ID_TEXT),
                text(r.resource.service.as_deref()),
                text(r.resource.host.as_deref()),
                text(r.severity_text.as_deref()),
                r.body.len(),
                text(r.scope.as_deref()),
                text(parsed.and_then(|p| p.template_id.as_deref())),
                text(parsed.and_then(|p| p.template.as_deref())),
                text(parsed.and_then(|p| p.signature)),
            ],
        );
        resource_size.add(&r.resource);
        attributes_size.add(&r.attributes);
        if let Some(p) = parsed {
            params_size += p.params.len();
            params_bytes += p.params.iter().map(String::len).sum::<usize>();
            fields_size.add_pairs(p.fields.iter().map(|(k, v)| (k, v)));
            signature_fields_size.add_pairs(p.signature_fields.iter().map(|(k, v)| (*k, v)));
        }
    }
    LogSizes {
        text: text_bytes,
        params: params_size,
        param_bytes: params_bytes,
        resource: resource_size.total,
        attributes: attributes_size,
        fields: fields_size,
        signature_fields: signature_fields_size,
    }
}

/// Builds the `logs` table from records.
pub fn logs_batch(records: &[&LogRecord]) -> RecordBatch {
    let n = records.len();
    let sizes = log_sizes(records);
    let [mut trace_id, mut span_id, mut service, mut host, mut severity_text, mut body, mut scope, mut template_id, mut template, mut signature] =
        string_builders(n, sizes.text);
    let mut time = TimestampNanosecondBuilder::with_capacity(n);
    let mut observed = TimestampNanosecondBuilder::with_capacity(n);
    let mut severity_number = Int32Builder::with_capacity(n);
    let (mut resource, mut attributes) = (sizes.resource.builder(n), sizes.attributes.builder(n));
    let values = StringBuilder::with_capacity(sizes.params, sizes.param_bytes);
    let mut params = ListBuilder::with_capacity(values, n);
    let (mut fields, mut signature_fields) =
        (sizes.fields.builder(n), sizes.signature_fields.builder(n));
    for r in records.iter().copied() {
        ts(&mut time, Some(r.time));
        ts(&mut observed, r.observed_time);
        trace_id.append_option(r.trace_id.map(|id| id.hex()));
        span_id.append_option(r.span_id.map(|id| id.hex()));
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

/// The list columns of the `metrics` table: histogram buckets and summary quantiles.
struct Distributions {
    bucket_bounds: ListBuilder<Float64Builder>,
    bucket_counts: ListBuilder<UInt64Builder>,
    quantiles: ListBuilder<Float64Builder>,
    quantile_values: ListBuilder<Float64Builder>,
}

/// Values the list columns of the `metrics` table will hold.
#[derive(Default)]
struct DistributionSizes {
    bounds: usize,
    counts: usize,
    quantiles: usize,
}

impl DistributionSizes {
    fn count(&mut self, p: &MetricPoint) {
        self.bounds += p.bucket_bounds.len();
        self.counts += p.bucket_counts.len();
        self.quantiles += p.quantiles.len();
    }

    fn builders(self, rows: usize) -> Distributions {
        let floats =
            |values| ListBuilder::with_capacity(Float64Builder::with_capacity(values), rows);
        Distributions {
            bucket_bounds: floats(self.bounds),
            bucket_counts: ListBuilder::with_capacity(
                UInt64Builder::with_capacity(self.counts),
                rows,
            ),
            quantiles: floats(self.quantiles),
            quantile_values: floats(self.quantiles),
        }
    }
}

impl Distributions {
    fn append(&mut self, p: &MetricPoint) {
        self.bucket_bounds.values().append_slice(&p.bucket_bounds);
        self.bucket_bounds.append(true);
        self.bucket_counts.values().append_slice(&p.bucket_counts);
        self.bucket_counts.append(true);
        for (q, v) in &p.quantiles {
            self.quantiles.values().append_value(*q);
            self.quantile_values.values().append_value(*v);
        }
        self.quantiles.append(true);
        self.quantile_values.append(true);
    }

    fn finish(mut self) -> [ArrayRef; 4] {
        [
            Arc::new(self.bucket_bounds.finish()),
            Arc::new(self.bucket_counts.finish()),
            Arc::new(self.quantiles.finish()),
            Arc::new(self.quantile_values.finish()),
        ]
    }
}

/// Sizes of the `metrics` table's variable-length columns: its strings, its ids and scope,
/// its two maps, its lists.
type MetricSizes = ([usize; 7], [usize; 3], MapSize, MapSize, DistributionSizes);

fn metric_sizes(points: &[&MetricPoint]) -> MetricSizes {
    let mut text_bytes = [0; 7];
    let mut id_bytes = [0; 3];
    let mut resource_size = ResourceSizes::default();
    let mut attributes_size = MapSize::default();
    let mut distributions = DistributionSizes::default();
    for p in points {
        add_row(
            &mut text_bytes,
            [
                text(p.resource.service.as_deref()),
                text(p.resource.host.as_deref()),
                p.name.len(),
                text(p.description.as_deref()),
                text(p.unit.as_deref()),
                p.kind.as_str().len(),
                text(p.temporality),
            ],
        );
        add_row(
            &mut id_bytes,
            [
                p.trace_id.map_or(0, |_| TRACE_ID_TEXT),
                p.span_id.map_or(0, |_| SPAN_ID_TEXT),
                text(p.scope.as_deref()),
            ],
        );
        resource_size.add(&p.resource);
        attributes_size.add(&p.attributes);
        distributions.count(p);
    }
    (
        text_bytes,
        id_bytes,
        resource_size.total,
        attributes_size,
        distributions,
    )
}

/// Builds the `metrics` table from data points.
pub fn metrics_batch(points: &[&MetricPoint]) -> RecordBatch {
    let n = points.len();
    let (text_bytes, id_bytes, resource_size, attributes_size, distributions) =
        metric_sizes(points);
    let mut distributions = distributions.builders(n);
    let (mut time, mut start) = (
        TimestampNanosecondBuilder::with_capacity(n),
        TimestampNanosecondBuilder::with_capacity(n),
    );
    let mut strings = string_builders(n, text_bytes);
    let mut is_monotonic = BooleanBuilder::with_capacity(n);
    let mut floats: [Float64Builder; 4] = std::array::from_fn(|_| Float64Builder::with_capacity(n));
    let mut count = UInt64Builder::with_capacity(n);
    let mut ids = string_builders(n, id_bytes);
    let (mut resource, mut attributes) = (resource_size.builder(n), attributes_size.builder(n));
    for p in points.iter().copied() {
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
        distributions.append(p);
        let [trace_id, span_id, scope] = &mut ids;
        trace_id.append_option(p.trace_id.map(|id| id.hex()));
        span_id.append_option(p.span_id.map(|id| id.hex()));
        scope.append_option(p.scope.as_deref());
        append_map(&mut resource, &p.resource.attributes);
        append_map(&mut attributes, &p.attributes);
    }
    let [mut service, mut host, mut name, mut description, mut unit, mut kind, mut temporality] =
        strings;
    let [mut value, mut sum, mut min, mut max] = floats;
    let [mut trace_id, mut span_id, mut scope] = ids;
    let [bucket_bounds, bucket_counts, quantiles, quantile_values] = distributions.finish();
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
            bucket_bounds,
            bucket_counts,
            quantiles,
            quantile_values,
            Arc::new(trace_id.finish()),
            Arc::new(span_id.finish()),
            Arc::new(scope.finish()),
            Arc::new(resource.finish()),
            Arc::new(attributes.finish()),
        ],
    )
}

/// The byte sizes of the `spans` table's ten string columns, its resources and attributes.
fn span_sizes(spans: &[&SpanRecord]) -> ([usize; 10], MapSize, MapSize) {
    let mut text_bytes = [0; 10];
    let mut resource_size = ResourceSizes::default();
    let mut attributes_size = MapSize::default();
    for s in spans {
        add_row(
            &mut text_bytes,
            [
                TRACE_ID_TEXT,
                SPAN_ID_TEXT,
                s.parent_span_id.map_or(0, |_| SPAN_ID_TEXT),
                text(s.resource.service.as_deref()),
                text(s.resource.host.as_deref()),
                s.name.len(),
                s.kind.len(),
                s.status.as_str().len(),
                text(s.status_message.as_deref()),
                text(s.scope.as_deref()),
            ],
        );
        resource_size.add(&s.resource);
        attributes_size.add(&s.attributes);
    }
    (text_bytes, resource_size.total, attributes_size)
}

/// Builds the `spans` table from spans.
pub fn spans_batch(spans: &[&SpanRecord]) -> RecordBatch {
    let n = spans.len();
    let (text_bytes, resource_size, attributes_size) = span_sizes(spans);
    let (mut start, mut end) = (
        TimestampNanosecondBuilder::with_capacity(n),
        TimestampNanosecondBuilder::with_capacity(n),
    );
    let mut duration = Float64Builder::with_capacity(n);
    let mut strings = string_builders(n, text_bytes);
    let mut is_root = BooleanBuilder::with_capacity(n);
    let mut event_count = UInt32Builder::with_capacity(n);
    let (mut resource, mut attributes) = (resource_size.builder(n), attributes_size.builder(n));
    for s in spans.iter().copied() {
        ts(&mut start, Some(s.start_time));
        ts(&mut end, Some(s.end_time));
        duration.append_value(s.duration_ms());
        let [trace_id, span_id, parent, service, host, name, kind, status, message, scope] =
            &mut strings;
        trace_id.append_value(s.trace_id.hex());
        span_id.append_value(s.span_id.hex());
        parent.append_option(s.parent_span_id.map(|id| id.hex()));
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
        ]
        .into_iter()
        .chain(family_columns(spans))
        .collect(),
    )
}
