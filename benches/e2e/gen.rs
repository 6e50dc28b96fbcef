//! The benchmark's input, as the OpenTelemetry Collector's Kafka exporter writes it: OTLP
//! protobuf export requests, each a batch of one resource's spans, logs or metric points.
//! An inference fleet: gateways (a request's root span) calling model servers (a child span
//! and a log line each), hosts reporting GPU gauges every 10 s of event time.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;

pub const GATEWAYS: u64 = 1000;
pub const SERVERS: u64 = 1000;
pub const HOSTS: u64 = 500;
/// Requests per export request (the Collector's batch of one resource).
pub const BATCH: u64 = 25;

/// One produced message: topic kind (0 spans, 1 logs, 2 metrics), key, payload, events.
pub struct Batch {
    pub signal: usize,
    pub key: String,
    pub payload: Vec<u8>,
    pub events: u64,
}

fn text(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

fn resource(service: String, host: u64) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            text("service.name", service),
            text("host.name", format!("host-{host}")),
        ],
        ..Default::default()
    })
}

/// Whether gateway `g` fails its requests at event time `t` (a fault injected at `since`).
pub type Faulty<'a> = &'a dyn Fn(u64, i64) -> bool;

/// `BATCH` requests of gateway `gateway` starting at `t` (ns), `spacing` ns apart, numbered
/// from `first`: a spans message (gateway roots and server children) and a logs message.
pub fn requests(first: u64, gateway: u64, t: i64, spacing: i64, faulty: Faulty) -> [Batch; 2] {
    let server = (gateway * 7) % SERVERS;
    let host = server % HOSTS;
    let (mut roots, mut children, mut logs) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..BATCH {
        let n = first + i;
        let start = t + i as i64 * spacing;
        // An all-zero trace id is invalid in OTLP: request 0 gets 1 << 64.
        let trace_id = (u128::from(n) | (1 << 64)).to_be_bytes().to_vec();
        let root_id = (n * 2 + 1).to_be_bytes().to_vec();
        let child_id = (n * 2 + 2).to_be_bytes().to_vec();
        let failed = faulty(gateway, start);
        let ms = 40 + (n % 13) as i64 * 7;
        let code = if failed {
            status::StatusCode::Error
        } else {
            status::StatusCode::Ok
        };
        roots.push(Span {
            trace_id: trace_id.clone(),
            span_id: root_id.clone(),
            name: "POST /v1/chat/completions".into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: start as u64,
            end_time_unix_nano: (start + ms * 1_000_000) as u64,
            status: Some(Status {
                code: code as i32,
                ..Default::default()
            }),
            ..Default::default()
        });
        children.push(Span {
            trace_id: trace_id.clone(),
            span_id: child_id.clone(),
            parent_span_id: root_id,
            name: "generate".into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: (start + 2_000_000) as u64,
            end_time_unix_nano: (start + (ms - 2) * 1_000_000) as u64,
            ..Default::default()
        });
        logs.push(LogRecord {
            time_unix_nano: (start + 3_000_000) as u64,
            severity_number: if failed { 17 } else { 9 },
            severity_text: if failed { "ERROR" } else { "INFO" }.into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "request {n} model=llama-3-8b prompt_tokens={} completion_tokens={} status={}",
                    100 + n % 50,
                    20 + n % 30,
                    if failed { 500 } else { 200 }
                ))),
            }),
            trace_id,
            span_id: child_id,
            ..Default::default()
        });
    }
    let spans = ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: resource(format!("gateway-{gateway}"), gateway % HOSTS),
                scope_spans: vec![ScopeSpans {
                    spans: roots,
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceSpans {
                resource: resource(format!("model-server-{server}"), host),
                scope_spans: vec![ScopeSpans {
                    spans: children,
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    };
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(format!("model-server-{server}"), host),
            scope_logs: vec![ScopeLogs {
                log_records: logs,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    // One key for the request batch: its spans and logs land on the same partition number.
    let key = format!("{first}");
    [
        Batch {
            signal: 0,
            key: key.clone(),
            payload: spans.encode_to_vec(),
            events: 2 * BATCH,
        },
        Batch {
            signal: 1,
            key,
            payload: logs.encode_to_vec(),
            events: BATCH,
        },
    ]
}

/// A host's GPU gauges at `t`.
pub fn gauges(host: u64, t: i64) -> Batch {
    let point = |value: f64| NumberDataPoint {
        time_unix_nano: t as u64,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    };
    let gauge = |name: &str, unit: &str, value: f64| Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![point(value)],
        })),
        ..Default::default()
    };
    let seed = (host as f64 * 0.37 + t as f64 / 1e10).sin().abs();
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(format!("model-server-{}", host % SERVERS), host),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    gauge("hw.gpu.utilization", "1", 0.5 + 0.3 * seed),
                    gauge("hw.gpu.memory.usage", "By", 40e9 + 10e9 * seed),
                    gauge("vllm:gpu_cache_usage_perc", "1", 0.3 + 0.2 * seed),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Batch {
        signal: 2,
        key: format!("host-{host}"),
        payload: request.encode_to_vec(),
        events: 3,
    }
}
