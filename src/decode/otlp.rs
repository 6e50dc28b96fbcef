//! OTLP protobuf and OTLP/JSON, through the `opentelemetry-proto` crate's generated types.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, ExponentialHistogramDataPoint, ResourceMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, Status};
use prost::Message;
use serde::de::DeserializeOwned;

use super::points::{self, PointBase};
use super::value::{any_to_json, attributes};
use super::{bytes_id, DecodeError, DecodeErrorKind};
use crate::model::{
    EventTime, LogRecord, MetricKind, MetricPoint, Record, Resource, Signal, SpanRecord, StatusCode,
};

pub(super) fn decode_proto(
    payload: &[u8],
    signal: Signal,
    fallback_time: Option<EventTime>,
) -> Result<Vec<Record>, DecodeError> {
    let invalid = |e: prost::DecodeError| {
        DecodeError::new(
            DecodeErrorKind::InvalidProtobuf,
            format!("invalid OTLP {} protobuf: {e}", signal.as_str()),
        )
    };
    match signal {
        Signal::Spans => {
            let req = ExportTraceServiceRequest::decode(payload).map_err(invalid)?;
            spans(req.resource_spans)
        }
        Signal::Logs => {
            let req = ExportLogsServiceRequest::decode(payload).map_err(invalid)?;
            logs(req.resource_logs, fallback_time)
        }
        Signal::Metrics => {
            let req = ExportMetricsServiceRequest::decode(payload).map_err(invalid)?;
            metrics(req.resource_metrics)
        }
    }
}

fn from_json<T: DeserializeOwned>(
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<T, DecodeError> {
    // Errors name the JSON path, e.g. `resourceSpans[0].scopeSpans[0].spans[2].traceId`.
    let value = serde_json::Value::Object(object.clone());
    serde_path_to_error::deserialize(value).map_err(|e| {
        DecodeError::record(format!("invalid OTLP/JSON at {}: {}", e.path(), e.inner()))
    })
}

/// Decodes an OTLP/JSON export request straight from its text, without a
/// `serde_json::Value` in between, when its first key names the request (as the Collector
/// writes them) and the object has no other request key `decode_json` would prefer.
/// `None`: another shape, or the text does not decode this way — then `decode_json` decides
/// (and words any error) exactly as before.
pub(super) fn decode_json_text(
    text: &str,
    fallback_time: Option<EventTime>,
) -> Option<Result<Vec<Record>, DecodeError>> {
    let has = |key: &str| text.contains(key);
    match first_key(text)? {
        "resourceSpans" => {
            match super::scanned::scanned_spans(text).or_else(|| super::plain::plain_spans(text)) {
                Some(records) => Some(Ok(records)),
                None => typed::<ExportTraceServiceRequest>(text).map(|r| spans(r.resource_spans)),
            }
        }
        "resourceLogs" if !has("\"resourceSpans\"") => {
            let scanned = super::scanned::scanned_logs(text, fallback_time);
            match scanned.or_else(|| super::plain::plain_logs(text, fallback_time)) {
                Some(records) => Some(Ok(records)),
                None => typed::<ExportLogsServiceRequest>(text)
                    .map(|r| logs(r.resource_logs, fallback_time)),
            }
        }
        "resourceMetrics" if !has("\"resourceSpans\"") && !has("\"resourceLogs\"") => {
            let scanned = super::scanned_metrics::scanned_metrics(text);
            match scanned.or_else(|| super::plain_metrics::plain_metrics(text)) {
                Some(records) => Some(Ok(records)),
                None => {
                    typed::<ExportMetricsServiceRequest>(text).map(|r| metrics(r.resource_metrics))
                }
            }
        }
        _ => None,
    }
}

/// The first key of a JSON object's text, when it has no escapes.
fn first_key(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find(['"', '\\'])?;
    (rest.as_bytes()[end] == b'"').then(|| &rest[..end])
}

fn typed<T: DeserializeOwned>(text: &str) -> Option<T> {
    super::plain::parse(text)
}

/// Decodes an OTLP/JSON object; `Ok(None)` when the object is not OTLP at all.
pub(super) fn decode_json(
    object: &serde_json::Map<String, serde_json::Value>,
    fallback_time: Option<EventTime>,
) -> Result<Option<Vec<Record>>, DecodeError> {
    let records = if object.contains_key("resourceSpans") {
        spans(from_json::<ExportTraceServiceRequest>(object)?.resource_spans)?
    } else if object.contains_key("resourceLogs") {
        logs(
            from_json::<ExportLogsServiceRequest>(object)?.resource_logs,
            fallback_time,
        )?
    } else if object.contains_key("resourceMetrics") {
        metrics(from_json::<ExportMetricsServiceRequest>(object)?.resource_metrics)?
    } else if object.contains_key("scopeSpans") {
        spans(vec![from_json::<ResourceSpans>(object)?])?
    } else if object.contains_key("traceId") && object.contains_key("startTimeUnixNano") {
        // One bare span per message, as some exporters write them.
        let span = from_json::<Span>(object)?;
        vec![Record::Span(convert_span(span, &Arc::default(), None)?)]
    } else {
        return Ok(None);
    };
    Ok(Some(records))
}

fn resource(r: Option<OtlpResource>) -> Arc<Resource> {
    Arc::new(Resource::from_attributes(
        r.map(|r| attributes(r.attributes)).unwrap_or_default(),
    ))
}

pub(super) fn scope_name(s: Option<InstrumentationScope>) -> Option<String> {
    s.map(|s| s.name).filter(|n| !n.is_empty())
}

pub(super) fn time(nanos: u64) -> Option<EventTime> {
    (nanos != 0).then(|| EventTime(i64::try_from(nanos).unwrap_or(i64::MAX)))
}

/// A span's start and end as every decoding path reads them: a span needs a start, no end
/// is the start, and an end before the start is refused (the error says which, after the
/// span's name).
pub(super) fn span_times(start: u64, end: u64) -> Result<(EventTime, EventTime), &'static str> {
    let start = time(start).ok_or("has no startTimeUnixNano")?;
    let end = time(end).unwrap_or(start);
    if end < start {
        return Err("ends before it starts");
    }
    Ok((start, end))
}

// The request is taken, not borrowed, so its strings move into the records.
fn spans(resource_spans: Vec<ResourceSpans>) -> Result<Vec<Record>, DecodeError> {
    let mut out = Vec::new();
    for rs in resource_spans {
        let res = resource(rs.resource);
        for ss in rs.scope_spans {
            let scope = scope_name(ss.scope);
            for span in ss.spans {
                out.push(Record::Span(convert_span(span, &res, scope.clone())?));
            }
        }
    }
    Ok(out)
}

fn convert_span(
    span: Span,
    res: &Arc<Resource>,
    scope: Option<String>,
) -> Result<SpanRecord, DecodeError> {
    let trace_id = bytes_id(&span.trace_id, "traceId")?
        .ok_or_else(|| DecodeError::record(format!("span {:?} has no traceId", span.name)))?;
    let span_id = bytes_id(&span.span_id, "spanId")?
        .ok_or_else(|| DecodeError::record(format!("span {:?} has no spanId", span.name)))?;
    let (start, end) = span_times(span.start_time_unix_nano, span.end_time_unix_nano)
        .map_err(|what| DecodeError::record(format!("span {:?} {what}", span.name)))?;
    let (status, status_message) = span_status(span.status);
    Ok(SpanRecord {
        start_time: start,
        end_time: end,
        trace_id,
        span_id,
        parent_span_id: bytes_id(&span.parent_span_id, "parentSpanId")?,
        name: span.name,
        kind: span_kind(span.kind),
        status,
        status_message,
        resource: res.clone(),
        scope,
        attributes: attributes(span.attributes),
        event_count: u32::try_from(span.events.len()).unwrap_or(u32::MAX),
    })
}

/// A span's status code and its message (`None` when empty).
pub(super) fn span_status(status: Option<Status>) -> (StatusCode, Option<String>) {
    match status {
        None => (StatusCode::Unset, None),
        Some(s) => (
            match s.code {
                1 => StatusCode::Ok,
                2 => StatusCode::Error,
                _ => StatusCode::Unset,
            },
            Some(s.message).filter(|m| !m.is_empty()),
        ),
    }
}

/// The name of an OTLP span kind.
pub(super) fn span_kind(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

fn logs(
    resource_logs: Vec<ResourceLogs>,
    fallback_time: Option<EventTime>,
) -> Result<Vec<Record>, DecodeError> {
    let mut out = Vec::new();
    for rl in resource_logs {
        let res = resource(rl.resource);
        for sl in rl.scope_logs {
            let scope = scope_name(sl.scope);
            for log in sl.log_records {
                let observed = time(log.observed_time_unix_nano);
                let t = time(log.time_unix_nano)
                    .or(observed)
                    .or(fallback_time)
                    .ok_or_else(|| {
                        DecodeError::record(
                            "log record has neither timeUnixNano nor observedTimeUnixNano",
                        )
                    })?;
                let body = match log.body.and_then(|b| b.value) {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => s,
                    None => String::new(),
                    other => any_to_json(other.as_ref()).to_string(),
                };
                out.push(Record::Log(LogRecord {
                    time: t,
                    observed_time: observed,
                    trace_id: bytes_id(&log.trace_id, "traceId")?,
                    span_id: bytes_id(&log.span_id, "spanId")?,
                    severity_number: log.severity_number,
                    severity_text: Some(log.severity_text).filter(|s| !s.is_empty()),
                    body,
                    resource: res.clone(),
                    scope: scope.clone(),
                    attributes: attributes(log.attributes),
                    parsed: None,
                }));
            }
        }
    }
    Ok(out)
}

fn metrics(resource_metrics: Vec<ResourceMetrics>) -> Result<Vec<Record>, DecodeError> {
    let mut out = Vec::new();
    for rm in resource_metrics {
        let res = resource(rm.resource);
        for sm in rm.scope_metrics {
            let scope = scope_name(sm.scope);
            for mut metric in sm.metrics {
                let data = metric.data.take();
                let base = PointBase {
                    name: &metric.name,
                    description: &metric.description,
                    unit: &metric.unit,
                    res: &res,
                    scope: &scope,
                };
                metric_points(&base, data, &mut out)?;
            }
        }
    }
    Ok(out)
}

/// Count, sum, extremes and buckets of an exponential histogram point: the zero bucket first,
/// then positive buckets by upper bound base^(offset + i + 1) with base = 2^(2^-scale).
/// Negative buckets are folded into the zero bucket's count: latency-like data has none.
fn exponential_buckets(p: &ExponentialHistogramDataPoint, m: &mut MetricPoint) {
    m.count = Some(p.count);
    m.sum = p.sum;
    m.min = p.min;
    m.max = p.max;
    let base_value = 2f64.powf(2f64.powi(-p.scale));
    let negative: u64 = p
        .negative
        .as_ref()
        .map_or(0, |b| b.bucket_counts.iter().sum());
    m.bucket_bounds.push(0.0);
    m.bucket_counts.push(p.zero_count + negative);
    if let Some(pos) = &p.positive {
        for (i, c) in pos.bucket_counts.iter().enumerate() {
            m.bucket_bounds
                .push(base_value.powi(pos.offset.saturating_add(i as i32 + 1)));
            m.bucket_counts.push(*c);
        }
    }
    m.bucket_counts.push(0); // the +Inf bucket
}

fn metric_points(
    base: &PointBase<'_>,
    data: Option<Data>,
    out: &mut Vec<Record>,
) -> Result<(), DecodeError> {
    let Some(data) = data else {
        return Err(DecodeError::record(format!(
            "metric {:?} has no data (gauge, sum, histogram, exponentialHistogram or summary)",
            base.name
        )));
    };
    match data {
        Data::Gauge(g) => base.gauge(g.data_points, out)?,
        Data::Sum(s) => base.sum(
            s.data_points,
            s.aggregation_temporality,
            s.is_monotonic,
            out,
        )?,
        Data::Histogram(h) => base.histogram(h.data_points, h.aggregation_temporality, out)?,
        Data::ExponentialHistogram(h) => {
            for mut p in h.data_points {
                let mut m = base.point(MetricKind::ExponentialHistogram, &mut p)?;
                m.temporality = points::temporality(h.aggregation_temporality);
                exponential_buckets(&p, &mut m);
                out.push(Record::Metric(Box::new(m)));
            }
        }
        Data::Summary(s) => {
            for mut p in s.data_points {
                let mut m = base.point(MetricKind::Summary, &mut p)?;
                m.count = Some(p.count);
                m.sum = Some(p.sum);
                m.quantiles = p
                    .quantile_values
                    .iter()
                    .map(|q| (q.quantile, q.value))
                    .collect();
                out.push(Record::Metric(Box::new(m)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct path is only a shortcut: for every line of the example recording it
    /// yields what the `serde_json::Value` path yields, and it is taken for the OTLP lines.
    #[test]
    fn the_direct_text_path_decodes_exactly_like_the_value_path() {
        let text = include_str!("../../examples/incident.jsonl");
        let mut direct = 0;
        for line in text.lines() {
            let object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(line).unwrap();
            let by_value = decode_json(&object, None).map(|r| format!("{r:?}"));
            if let Some(fast) = decode_json_text(line, None) {
                direct += 1;
                let fast = fast.map(|r| format!("{:?}", Some(r)));
                assert_eq!(fast.ok(), by_value.ok(), "{line}");
            }
        }
        assert!(direct > 100, "{direct} lines took the direct path");
    }

    #[test]
    fn protobuf_ids_of_the_wrong_length_are_named() {
        let cases = [
            (15, 8, "traceId has 15 bytes, expected 16"),
            (16, 9, "spanId has 9 bytes, expected 8"),
        ];
        for (trace, span, needle) in cases {
            let span = Span {
                trace_id: vec![7; trace],
                span_id: vec![7; span],
                start_time_unix_nano: 1,
                ..Default::default()
            };
            let e = convert_span(span, &Arc::default(), None).unwrap_err();
            assert_eq!(e.kind, DecodeErrorKind::InvalidRecord, "{e}");
            assert!(e.message.contains(needle), "{e}");
        }
    }

    #[test]
    fn first_keys_are_read_only_when_plain() {
        assert_eq!(
            first_key(" {\n \"resourceLogs\": []}"),
            Some("resourceLogs")
        );
        assert_eq!(first_key("{\"res\\u006furceLogs\": []}"), None);
        assert_eq!(first_key("[1]"), None);
        assert_eq!(first_key("{}"), None);
    }
}
