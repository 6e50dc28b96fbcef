//! Decoder cases: OTLP protobuf and JSON for every signal and metric type, the flat form, and
//! malformed input of every kind.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point, summary_data_point,
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::json;

use super::*;
use crate::model::{MetricKind, StatusCode};

const TRACE: &str = "5b8efff798038103d269b633813fc60c";
const SPAN: &str = "eee19b7ec3c1b174";

fn json_ctx() -> MessageContext {
    MessageContext::default()
}

fn decode_json(v: serde_json::Value) -> Result<Vec<Record>, DecodeError> {
    Decoder::new(1 << 20).decode(v.to_string().as_bytes(), json_ctx())
}

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn resource() -> Option<OtlpResource> {
    Some(OtlpResource {
        attributes: vec![
            kv(
                "service.name",
                any_value::Value::StringValue("llm-gateway".into()),
            ),
            kv("host.name", any_value::Value::StringValue("gw-1".into())),
        ],
        ..Default::default()
    })
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn trace_request() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: hex(TRACE),
                    span_id: hex(SPAN),
                    name: "POST /v1/chat/completions".into(),
                    kind: span::SpanKind::Server as i32,
                    start_time_unix_nano: 1_700_000_000_000_000_000,
                    end_time_unix_nano: 1_700_000_000_750_000_000,
                    attributes: vec![kv(
                        "http.response.status_code",
                        any_value::Value::IntValue(500),
                    )],
                    status: Some(Status {
                        code: 2,
                        message: "boom".into(),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn otlp_proto_spans_keep_ids_resource_and_attributes() {
    let bytes = trace_request().encode_to_vec();
    let ctx = MessageContext {
        signal: Some(Signal::Spans),
        ..Default::default()
    };
    let records = Decoder::new(1 << 20).decode(&bytes, ctx).unwrap();
    let [Record::Span(s)] = records.as_slice() else {
        panic!("{records:?}")
    };
    assert_eq!(s.trace_id, TRACE);
    assert_eq!(s.span_id, SPAN);
    assert_eq!(s.parent_span_id, None);
    assert_eq!(s.kind, "server");
    assert_eq!(s.status, StatusCode::Error);
    assert_eq!(s.status_message.as_deref(), Some("boom"));
    assert_eq!(s.duration_ms(), 750.0);
    assert_eq!(s.resource.service.as_deref(), Some("llm-gateway"));
    assert_eq!(s.resource.host.as_deref(), Some("gw-1"));
    assert_eq!(s.attributes["http.response.status_code"], "500");
}

#[test]
fn otlp_json_from_the_crate_serializer_decodes_like_protobuf() {
    // The crate's serializer writes OTLP/JSON (hex ids, int64 as strings).
    let req = trace_request();
    let text = serde_json::to_string(&req).unwrap();
    assert!(text.contains(TRACE), "hex ids in OTLP/JSON: {text}");
    let from_json = Decoder::new(1 << 20)
        .decode(text.as_bytes(), json_ctx())
        .unwrap();
    let from_proto = Decoder::new(1 << 20)
        .decode(
            &req.encode_to_vec(),
            MessageContext {
                signal: Some(Signal::Spans),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(from_json, from_proto);
}

#[test]
fn upper_case_hex_ids_are_normalised_and_zero_parent_is_root() {
    let v = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": TRACE.to_uppercase(), "spanId": SPAN.to_uppercase(),
        "parentSpanId": "0000000000000000", "name": "x",
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": 1700000000100000000u64
    }]}]}]});
    let records = decode_json(v).unwrap();
    let Record::Span(s) = &records[0] else {
        panic!()
    };
    assert_eq!(s.trace_id, TRACE);
    assert_eq!(s.span_id, SPAN);
    assert_eq!(s.parent_span_id, None);
    assert_eq!(s.duration_ms(), 100.0);
}

#[test]
fn int64_fields_accept_strings_and_numbers() {
    let mk = |start: serde_json::Value| {
        json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": TRACE, "spanId": SPAN, "name": "x",
            "startTimeUnixNano": start, "endTimeUnixNano": "1700000000000000001"
        }]}]}]})
    };
    let a = decode_json(mk(json!("1700000000000000000"))).unwrap();
    let b = decode_json(mk(json!(1700000000000000000u64))).unwrap();
    assert_eq!(a, b);
    assert_eq!(a[0].event_time(), EventTime(1_700_000_000_000_000_001));
}

#[test]
fn base64_ids_are_rejected_with_the_json_path() {
    let v = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "W47/95gDgQPSabYzgT/GDA==", "spanId": SPAN, "name": "x",
        "startTimeUnixNano": "1"
    }]}]}]});
    let e = decode_json(v).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::InvalidRecord);
    assert!(
        e.message
            .contains("resourceSpans[0].scopeSpans[0].spans[0].traceId"),
        "{}",
        e.message
    );
}

#[test]
fn one_bare_span_per_message_is_accepted() {
    let v = json!({"traceId": TRACE, "spanId": SPAN, "name": "forward",
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000086000000",
        "parentSpanId": "1111111111111111"});
    let records = decode_json(v).unwrap();
    let Record::Span(s) = &records[0] else {
        panic!()
    };
    assert_eq!(s.parent_span_id.unwrap(), "1111111111111111");
    assert_eq!(s.duration_ms(), 86.0);
}

#[test]
fn logs_keep_body_severity_and_trace_context() {
    let v = json!({"resourceLogs": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "inference-server"}}]},
    "scopeLogs": [{"scope": {"name": "vllm"}, "logRecords": [
        {"timeUnixNano": "1700000000000000000", "severityNumber": 17, "severityText": "ERROR",
         "body": {"stringValue": "CUDA out of memory"}, "traceId": TRACE, "spanId": SPAN,
         "attributes": [{"key": "retries", "value": {"intValue": "3"}}]},
        {"observedTimeUnixNano": "1700000000500000000",
         "body": {"kvlistValue": {"values": [{"key": "event", "value": {"stringValue": "oom"}}]}}}
    ]}]}]});
    let records = decode_json(v).unwrap();
    let [Record::Log(a), Record::Log(b)] = records.as_slice() else {
        panic!("{records:?}")
    };
    assert_eq!(a.body, "CUDA out of memory");
    assert_eq!(a.severity_number, 17);
    assert_eq!(a.trace_id.unwrap(), TRACE);
    assert_eq!(a.attributes["retries"], "3");
    assert_eq!(a.scope.as_deref(), Some("vllm"));
    assert_eq!(a.resource.service.as_deref(), Some("inference-server"));
    // No timeUnixNano: the observed time stands in; structured body as JSON.
    assert_eq!(b.time, EventTime(1_700_000_000_500_000_000));
    assert_eq!(b.body, r#"{"event":"oom"}"#);
    assert_eq!(b.trace_id, None);
}

#[test]
fn log_without_any_time_uses_the_message_timestamp_or_fails() {
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![OtlpLog::default()],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let bytes = req.encode_to_vec();
    let mut ctx = MessageContext {
        signal: Some(Signal::Logs),
        ..Default::default()
    };
    let e = Decoder::new(1 << 20).decode(&bytes, ctx).unwrap_err();
    assert!(e.message.contains("neither timeUnixNano"), "{e}");
    ctx.fallback_time = Some(EventTime(42));
    let r = Decoder::new(1 << 20).decode(&bytes, ctx).unwrap();
    assert_eq!(r[0].event_time(), EventTime(42));
}

fn point(t: u64) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: t,
        ..Default::default()
    }
}

fn metrics_request() -> ExportMetricsServiceRequest {
    let t = 1_700_000_000_000_000_000;
    let metric = |name: &str, data: Data| Metric {
        name: name.into(),
        unit: "1".into(),
        data: Some(data),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric(
                        "gpu.util",
                        Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                value: Some(number_data_point::Value::AsDouble(0.97)),
                                exemplars: vec![Exemplar {
                                    trace_id: hex(TRACE),
                                    span_id: hex(SPAN),
                                    ..Default::default()
                                }],
                                ..point(t)
                            }],
                        }),
                    ),
                    metric(
                        "requests",
                        Data::Sum(Sum {
                            data_points: vec![NumberDataPoint {
                                value: Some(number_data_point::Value::AsInt(12)),
                                ..point(t)
                            }],
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "latency",
                        Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                time_unix_nano: t,
                                count: 6,
                                sum: Some(3.5),
                                bucket_counts: vec![1, 2, 3],
                                explicit_bounds: vec![0.1, 1.0],
                                min: Some(0.05),
                                max: Some(2.0),
                                ..Default::default()
                            }],
                            aggregation_temporality: 1,
                        }),
                    ),
                    metric(
                        "latency_exp",
                        Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                time_unix_nano: t,
                                count: 5,
                                scale: 0,
                                zero_count: 1,
                                positive: Some(Buckets {
                                    offset: 1,
                                    bucket_counts: vec![3, 1],
                                }),
                                ..Default::default()
                            }],
                            aggregation_temporality: 2,
                        }),
                    ),
                    metric(
                        "latency_summary",
                        Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                time_unix_nano: t,
                                count: 10,
                                sum: 12.5,
                                quantile_values: vec![summary_data_point::ValueAtQuantile {
                                    quantile: 0.99,
                                    value: 4.0,
                                }],
                                ..Default::default()
                            }],
                        }),
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric_points(records: Vec<Record>) -> Vec<crate::model::MetricPoint> {
    records
        .into_iter()
        .map(|r| match r {
            Record::Metric(m) => *m,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn every_metric_type_decodes_from_protobuf_and_json_alike() {
    let req = metrics_request();
    let proto = Decoder::new(1 << 20)
        .decode(
            &req.encode_to_vec(),
            MessageContext {
                signal: Some(Signal::Metrics),
                ..Default::default()
            },
        )
        .unwrap();
    let json = Decoder::new(1 << 20)
        .decode(serde_json::to_string(&req).unwrap().as_bytes(), json_ctx())
        .unwrap();
    assert_eq!(proto, json);
    let m = metric_points(proto);
    let kinds: Vec<_> = m.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            MetricKind::Gauge,
            MetricKind::Sum,
            MetricKind::Histogram,
            MetricKind::ExponentialHistogram,
            MetricKind::Summary
        ]
    );
    assert_eq!(m[0].value, Some(0.97));
    assert_eq!(m[0].trace_id.unwrap(), TRACE, "exemplar trace id");
    assert_eq!(m[0].span_id.unwrap(), SPAN);
    assert_eq!(
        (m[1].value, m[1].temporality, m[1].is_monotonic),
        (Some(12.0), Some("cumulative"), Some(true))
    );
    assert_eq!(
        (m[2].count, m[2].sum, m[2].temporality),
        (Some(6), Some(3.5), Some("delta"))
    );
    assert_eq!(m[2].bucket_bounds, vec![0.1, 1.0]);
    assert_eq!(m[2].bucket_counts, vec![1, 2, 3]);
    assert_eq!((m[2].min, m[2].max), (Some(0.05), Some(2.0)));
    // scale 0: base 2; offset 1 → buckets (2,4] and (4,8]; zero bucket first, +Inf last.
    assert_eq!(m[3].bucket_bounds, vec![0.0, 4.0, 8.0]);
    assert_eq!(m[3].bucket_counts, vec![1, 3, 1, 0]);
    assert_eq!((m[4].count, m[4].sum), (Some(10), Some(12.5)));
    assert_eq!(m[4].quantiles, vec![(0.99, 4.0)]);
    assert_eq!(m[4].resource.service.as_deref(), Some("llm-gateway"));
}

#[test]
fn gauge_int_value_as_json_string() {
    let v = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{
        "name": "vllm:num_requests_waiting",
        "gauge": {"dataPoints": [{"timeUnixNano": "1700000000000000000", "asInt": "37",
            "attributes": [{"key": "trace_id", "value": {"stringValue": TRACE}}]}]}
    }]}]}]});
    let m = metric_points(decode_json(v).unwrap());
    assert_eq!(m[0].value, Some(37.0));
    assert_eq!(m[0].trace_id.unwrap(), TRACE, "trace id from attribute");
}

#[test]
fn histogram_with_inconsistent_buckets_is_invalid() {
    let v = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{
        "name": "h", "histogram": {"dataPoints": [{"timeUnixNano": "1", "count": "3",
            "bucketCounts": ["1", "2"], "explicitBounds": [1.0, 2.0]}]}
    }]}]}]});
    let e = decode_json(v).unwrap_err();
    assert!(e.message.contains("2 bucket counts for 2 bounds"), "{e}");
}

#[test]
fn malformed_inputs_are_classified() {
    let d = Decoder::new(64);
    let spans = MessageContext {
        signal: Some(Signal::Spans),
        ..Default::default()
    };
    let mut truncated = trace_request().encode_to_vec();
    truncated.truncate(truncated.len() / 2);
    let cases: Vec<(&[u8], MessageContext, DecodeErrorKind)> = vec![
        (&truncated, spans, DecodeErrorKind::Oversized),
        (
            b"{\"resourceSpans\": [",
            json_ctx(),
            DecodeErrorKind::InvalidJson,
        ),
        (
            b"{\"a\":\"\xff\xfe\"}",
            json_ctx(),
            DecodeErrorKind::InvalidUtf8,
        ),
        (
            b"{\"resourceSpans\": 7}",
            json_ctx(),
            DecodeErrorKind::InvalidRecord,
        ),
        (b"{\"x\": 1}", json_ctx(), DecodeErrorKind::InvalidRecord),
    ];
    for (payload, ctx, kind) in cases {
        let e = d.decode(payload, ctx).unwrap_err();
        assert_eq!(e.kind, kind, "{e}");
    }
    let big = Decoder::new(1 << 20);
    let e = big.decode(&truncated, spans).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::InvalidProtobuf, "{e}");
    assert!(e.message.contains("invalid OTLP spans protobuf"), "{e}");
    let e = big
        .decode(b"\x0a\x05hello", MessageContext::default())
        .unwrap_err();
    assert!(e.message.contains("without a signal"), "{e}");
    let wrong_type = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": TRACE, "spanId": SPAN, "name": 5, "startTimeUnixNano": "1"}]}]}]});
    let e = decode_json(wrong_type).unwrap_err();
    assert!(e.message.contains("spans[0].name"), "{e}");
}

#[test]
fn flat_records_of_each_signal() {
    let log = json!({"signal": "log", "time": "2026-11-01T12:00:00.5Z", "service": "api",
        "severity": "error", "body": "boom", "trace_id": TRACE, "attributes": {"code": 500}});
    let Record::Log(l) = &decode_json(log).unwrap()[0] else {
        panic!()
    };
    assert_eq!((l.severity_number, l.body.as_str()), (17, "boom"));
    assert_eq!(l.time.to_rfc3339(), "2026-11-01T12:00:00.500Z");
    assert_eq!(l.attributes["code"], "500");
    assert_eq!(l.resource.service.as_deref(), Some("api"));

    let metric = json!({"signal": "metric", "time_unix_nano": "1700000000000000000",
        "name": "gpu.memory.used_ratio", "value": 0.93, "host": "gpu-1"});
    let Record::Metric(m) = &decode_json(metric).unwrap()[0] else {
        panic!()
    };
    assert_eq!((m.value, m.kind), (Some(0.93), MetricKind::Gauge));
    assert_eq!(m.resource.host.as_deref(), Some("gpu-1"));

    let span = json!({"signal": "span", "trace_id": TRACE, "span_id": SPAN, "name": "tokenize",
        "service": "api", "start_time": "2026-11-01T12:00:00Z", "duration_ms": 15, "status": "error"});
    let Record::Span(s) = &decode_json(span).unwrap()[0] else {
        panic!()
    };
    assert_eq!((s.duration_ms(), s.status), (15.0, StatusCode::Error));
}

#[test]
fn flat_record_takes_the_signal_of_its_input() {
    let span = json!({"trace_id": TRACE, "span_id": SPAN, "name": "x",
        "start_time_unix_nano": 1, "end_time_unix_nano": 2});
    let ctx = MessageContext {
        signal: Some(Signal::Spans),
        ..Default::default()
    };
    let r = Decoder::new(1 << 20)
        .decode(span.to_string().as_bytes(), ctx)
        .unwrap();
    assert_eq!(r[0].signal(), Signal::Spans);
    let e = decode_json(span).unwrap_err();
    assert!(e.message.contains("\"signal\" field"), "{e}");
}

#[test]
fn flat_wrong_types_and_unknown_fields_are_named() {
    let cases = [
        (
            json!({"signal": "metric", "time": "2026-11-01T12:00:00Z", "name": "m", "value": "high"}),
            "value",
        ),
        (
            json!({"signal": "log", "time": "yesterday", "body": "x"}),
            "RFC 3339",
        ),
        (
            json!({"signal": "log", "time": "2026-11-01T12:00:00Z", "body": "x", "sevrity": "INFO"}),
            "sevrity",
        ),
        (
            json!({"signal": "span", "trace_id": "abc", "span_id": SPAN, "name": "x", "start_time_unix_nano": 1, "duration_ms": 1}),
            "trace_id",
        ),
        (
            json!({"signal": "trace", "x": 1}),
            "not one of log, metric, span",
        ),
    ];
    for (v, needle) in cases {
        let e = decode_json(v.clone()).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::InvalidRecord, "{v}");
        assert!(e.message.contains(needle), "{v}: {e}");
    }
}

#[test]
fn flat_json_of_a_record_decodes_back_to_it() {
    let mut records = decode_json(serde_json::to_value(trace_request()).unwrap()).unwrap();
    records.extend(
        decode_json(json!({"signal": "log", "time_unix_nano": 5, "body": "b",
        "severity": "WARN", "trace_id": TRACE, "service": "s", "attributes": {"k": "v"}}))
        .unwrap(),
    );
    records.extend(
        decode_json(json!({"signal": "metric", "time_unix_nano": 5, "name": "m",
        "value": 1.5, "kind": "sum", "is_monotonic": true, "temporality": "delta"}))
        .unwrap(),
    );
    for r in records {
        let back = decode_json(to_flat_json(&r)).unwrap();
        let mut expected = r.clone();
        if let Record::Span(s) = &mut expected {
            s.event_count = 0; // the flat form has no events
        }
        assert_eq!(back, vec![expected]);
    }
}

/// Inputs the fuzzers (`scripts/fuzz`) found crashing or hanging, kept in
/// `tests/fuzz/decode_json/`: each decodes to records or to a dead-letter error, never a
/// panic.
#[test]
fn fuzzer_findings_decode_or_fail_cleanly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/decode_json");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let result = Decoder::new(1 << 20).decode(&bytes, json_ctx());
        if path.ends_with("span-duration-overflow.json") {
            let error = result.unwrap_err();
            assert!(error.message.contains("duration_ms"), "{error:?}");
        }
        n += 1;
    }
    assert!(n >= 2, "the findings are in {dir}");
}
