//! The flat JSON form: one log, metric or span per message, for producers that don't speak
//! OTLP. `schemas/flat-log.json`, `flat-metric.json` and `flat-span.json` define it.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::value::json_to_string;
use super::{normalise_hex_id, DecodeError};
use crate::model::{
    Attributes, EventTime, HexId, LogRecord, MetricKind, MetricPoint, Record, Resource, Signal,
    SpanRecord, StatusCode,
};

/// A time given as RFC 3339 text, or as nanoseconds since the epoch (number or string) in
/// the `*_unix_nano` fields.
#[derive(Deserialize)]
#[serde(untagged)]
enum Nanos {
    Number(u64),
    Text(String),
}

impl Nanos {
    fn get(&self, field: &str) -> Result<EventTime, DecodeError> {
        let n = match self {
            Nanos::Number(n) => *n,
            Nanos::Text(s) => s.parse::<u64>().map_err(|_| {
                DecodeError::record(format!("{field} {s:?} is not an integer of nanoseconds"))
            })?,
        };
        i64::try_from(n)
            .map(EventTime)
            .map_err(|_| DecodeError::record(format!("{field} {n} is out of range")))
    }
}

fn rfc3339(field: &str, text: &str) -> Result<EventTime, DecodeError> {
    let t = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
        DecodeError::record(format!("{field} {text:?} is not an RFC 3339 time: {e}"))
    })?;
    t.timestamp_nanos_opt()
        .map(EventTime)
        .ok_or_else(|| DecodeError::record(format!("{field} {text:?} is out of range")))
}

/// `time` (RFC 3339) or `time_unix_nano`; exactly one is expected.
fn pick_time(
    name: &str,
    text: Option<&str>,
    nanos: Option<&Nanos>,
) -> Result<Option<EventTime>, DecodeError> {
    match (text, nanos) {
        (Some(t), None) => rfc3339(name, t).map(Some),
        (None, Some(n)) => n.get(&format!("{name}_unix_nano")).map(Some),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(DecodeError::record(format!(
            "both {name} and {name}_unix_nano are set; give one"
        ))),
    }
}

fn string_map(map: Option<Map<String, Value>>) -> Attributes {
    map.unwrap_or_default()
        .iter()
        .map(|(k, v)| (k.clone(), json_to_string(v)))
        .collect()
}

fn resource(
    service: Option<String>,
    host: Option<String>,
    extra: Option<Map<String, Value>>,
) -> Resource {
    let mut attributes = string_map(extra);
    if let Some(s) = service {
        attributes.insert("service.name".into(), s);
    }
    if let Some(h) = host {
        attributes.insert("host.name".into(), h);
    }
    Resource::from_attributes(attributes)
}

fn id<const N: usize>(raw: Option<&str>, what: &str) -> Result<Option<HexId<N>>, DecodeError> {
    raw.map(|r| normalise_hex_id(r, what))
        .transpose()
        .map(Option::flatten)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlatLog {
    #[serde(rename = "signal")]
    _signal: Option<String>,
    time: Option<String>,
    time_unix_nano: Option<Nanos>,
    trace_id: Option<String>,
    span_id: Option<String>,
    service: Option<String>,
    host: Option<String>,
    severity: Option<String>,
    severity_number: Option<i32>,
    body: Value,
    scope: Option<String>,
    attributes: Option<Map<String, Value>>,
    resource: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlatMetric {
    #[serde(rename = "signal")]
    _signal: Option<String>,
    time: Option<String>,
    time_unix_nano: Option<Nanos>,
    name: String,
    value: f64,
    kind: Option<String>,
    unit: Option<String>,
    is_monotonic: Option<bool>,
    temporality: Option<String>,
    trace_id: Option<String>,
    service: Option<String>,
    host: Option<String>,
    scope: Option<String>,
    attributes: Option<Map<String, Value>>,
    resource: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlatSpan {
    #[serde(rename = "signal")]
    _signal: Option<String>,
    trace_id: String,
    span_id: String,
    parent_span_id: Option<String>,
    name: String,
    kind: Option<String>,
    start_time: Option<String>,
    start_time_unix_nano: Option<Nanos>,
    end_time: Option<String>,
    end_time_unix_nano: Option<Nanos>,
    duration_ms: Option<f64>,
    status: Option<String>,
    status_message: Option<String>,
    service: Option<String>,
    host: Option<String>,
    scope: Option<String>,
    attributes: Option<Map<String, Value>>,
    resource: Option<Map<String, Value>>,
}

fn parse<T: DeserializeOwned>(object: Map<String, Value>, what: &str) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            DecodeError::record(format!("invalid flat {what}: {}", e.inner()))
        } else {
            DecodeError::record(format!("invalid flat {what} at {path}: {}", e.inner()))
        }
    })
}

/// Decodes one flat record. Its `signal` field wins; otherwise the input's signal decides.
pub(super) fn decode(
    object: Map<String, Value>,
    input: Option<Signal>,
) -> Result<Record, DecodeError> {
    let signal = match object.get("signal") {
        Some(Value::String(s)) => match s.as_str() {
            "log" | "logs" => Signal::Logs,
            "metric" | "metrics" => Signal::Metrics,
            "span" | "spans" => Signal::Spans,
            other => {
                return Err(DecodeError::record(format!(
                    "signal {other:?} is not one of log, metric, span"
                )))
            }
        },
        Some(other) => {
            return Err(DecodeError::record(format!(
                "signal must be a string, got {other}"
            )))
        }
        None => input.ok_or_else(|| {
            DecodeError::record(
                "neither an OTLP/JSON export request nor a flat record with a \"signal\" field",
            )
        })?,
    };
    match signal {
        Signal::Logs => log(parse(object, "log")?),
        Signal::Metrics => metric(parse(object, "metric")?),
        Signal::Spans => span(parse(object, "span")?),
    }
}

fn severity_number(text: &str) -> i32 {
    match text.to_ascii_uppercase().as_str() {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" | "INFORMATION" | "NOTICE" => 9,
        "WARN" | "WARNING" => 13,
        "ERROR" | "ERR" => 17,
        "FATAL" | "CRITICAL" | "CRIT" | "EMERGENCY" | "ALERT" => 21,
        _ => 0,
    }
}

fn log(f: FlatLog) -> Result<Record, DecodeError> {
    let time = pick_time("time", f.time.as_deref(), f.time_unix_nano.as_ref())?
        .ok_or_else(|| DecodeError::record("flat log needs time or time_unix_nano"))?;
    Ok(Record::Log(LogRecord {
        time,
        observed_time: None,
        trace_id: id(f.trace_id.as_deref(), "trace_id")?,
        span_id: id(f.span_id.as_deref(), "span_id")?,
        severity_number: f
            .severity_number
            .or_else(|| f.severity.as_deref().map(severity_number))
            .unwrap_or(0),
        severity_text: f.severity,
        body: json_to_string(&f.body),
        resource: Arc::new(resource(f.service, f.host, f.resource)),
        scope: f.scope,
        attributes: string_map(f.attributes),
        parsed: None,
    }))
}

fn metric(f: FlatMetric) -> Result<Record, DecodeError> {
    let time = pick_time("time", f.time.as_deref(), f.time_unix_nano.as_ref())?
        .ok_or_else(|| DecodeError::record("flat metric needs time or time_unix_nano"))?;
    let kind = match f.kind.as_deref().unwrap_or("gauge") {
        "gauge" => MetricKind::Gauge,
        "sum" => MetricKind::Sum,
        other => {
            return Err(DecodeError::record(format!(
                "flat metric kind {other:?} is not gauge or sum (send distributions as OTLP)"
            )))
        }
    };
    let temporality = match f.temporality.as_deref() {
        None => None,
        Some("delta") => Some("delta"),
        Some("cumulative") => Some("cumulative"),
        Some(other) => {
            return Err(DecodeError::record(format!(
                "temporality {other:?} is not delta or cumulative"
            )))
        }
    };
    if !f.value.is_finite() {
        return Err(DecodeError::record("metric value is not finite"));
    }
    let resource = Arc::new(resource(f.service, f.host, f.resource));
    Ok(Record::Metric(Box::new(MetricPoint {
        unit: f.unit,
        temporality,
        is_monotonic: f.is_monotonic,
        value: Some(f.value),
        trace_id: id(f.trace_id.as_deref(), "trace_id")?,
        scope: f.scope,
        attributes: string_map(f.attributes),
        ..MetricPoint::new(time, f.name, kind, resource)
    })))
}

/// A flat span's end: its end time, or its start plus `duration_ms`.
fn span_end(start: EventTime, f: &FlatSpan) -> Result<EventTime, DecodeError> {
    let end = pick_time(
        "end_time",
        f.end_time.as_deref(),
        f.end_time_unix_nano.as_ref(),
    )?;
    match (end, f.duration_ms) {
        (Some(end), None) => Ok(end),
        // The cast saturates; the sum must not overflow (a fuzzer found a duration of 1e100).
        (None, Some(ms)) if ms.is_finite() && ms >= 0.0 => start
            .0
            .checked_add((ms * 1e6) as i64)
            .map(EventTime)
            .ok_or_else(|| {
                DecodeError::record(format!("duration_ms {ms} ends after the year 2262"))
            }),
        (None, Some(ms)) => Err(DecodeError::record(format!(
            "duration_ms {ms} is not a non-negative number"
        ))),
        (None, None) => Err(DecodeError::record(
            "flat span needs end_time, end_time_unix_nano or duration_ms",
        )),
        (Some(_), Some(_)) => Err(DecodeError::record(
            "give either an end time or duration_ms, not both",
        )),
    }
}

fn span(f: FlatSpan) -> Result<Record, DecodeError> {
    let start = pick_time(
        "start_time",
        f.start_time.as_deref(),
        f.start_time_unix_nano.as_ref(),
    )?
    .ok_or_else(|| DecodeError::record("flat span needs start_time or start_time_unix_nano"))?;
    let end = span_end(start, &f)?;
    if end < start {
        return Err(DecodeError::record("span ends before it starts"));
    }
    let status = match f.status.as_deref().unwrap_or("unset") {
        "unset" => StatusCode::Unset,
        "ok" => StatusCode::Ok,
        "error" => StatusCode::Error,
        other => {
            return Err(DecodeError::record(format!(
                "status {other:?} is not unset, ok or error"
            )))
        }
    };
    let kind = match f.kind.as_deref().unwrap_or("unspecified") {
        "internal" => "internal",
        "server" => "server",
        "client" => "client",
        "producer" => "producer",
        "consumer" => "consumer",
        "unspecified" => "unspecified",
        other => {
            return Err(DecodeError::record(format!(
                "span kind {other:?} is not internal, server, client, producer, consumer or unspecified"
            )))
        }
    };
    Ok(Record::Span(SpanRecord {
        start_time: start,
        end_time: end,
        trace_id: id(Some(&f.trace_id), "trace_id")?
            .ok_or_else(|| DecodeError::record("trace_id is all zero"))?,
        span_id: id(Some(&f.span_id), "span_id")?
            .ok_or_else(|| DecodeError::record("span_id is all zero"))?,
        parent_span_id: id(f.parent_span_id.as_deref(), "parent_span_id")?,
        name: f.name,
        kind,
        status,
        status_message: f.status_message,
        resource: Arc::new(resource(f.service, f.host, f.resource)),
        scope: f.scope,
        attributes: string_map(f.attributes),
        event_count: 0,
    }))
}

fn map_json(map: &Attributes) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// The flat JSON form of a record, which `decode` reads back: late records carry it so
/// they can be replayed.
pub fn to_flat_json(record: &Record) -> Value {
    use serde_json::json;
    let mut v = match record {
        Record::Log(l) => json!({
            "signal": "log",
            "time_unix_nano": l.time.0,
            "trace_id": l.trace_id,
            "span_id": l.span_id,
            "severity": l.severity_text,
            "severity_number": l.severity_number,
            "body": l.body,
            "scope": l.scope,
            "attributes": map_json(&l.attributes),
            "resource": map_json(&l.resource.attributes),
        }),
        Record::Metric(m) => json!({
            "signal": "metric",
            "time_unix_nano": m.time.0,
            "name": m.name,
            "kind": m.kind.as_str(),
            "value": m.value,
            "count": m.count,
            "sum": m.sum,
            "unit": m.unit,
            "temporality": m.temporality,
            "is_monotonic": m.is_monotonic,
            "trace_id": m.trace_id,
            "scope": m.scope,
            "attributes": map_json(&m.attributes),
            "resource": map_json(&m.resource.attributes),
        }),
        Record::Span(s) => json!({
            "signal": "span",
            "trace_id": s.trace_id,
            "span_id": s.span_id,
            "parent_span_id": s.parent_span_id,
            "name": s.name,
            "kind": s.kind,
            "start_time_unix_nano": s.start_time.0,
            "end_time_unix_nano": s.end_time.0,
            "status": s.status.as_str(),
            "status_message": s.status_message,
            "scope": s.scope,
            "attributes": map_json(&s.attributes),
            "resource": map_json(&s.resource.attributes),
        }),
    };
    // Absent optional fields are left out rather than written as null.
    if let Value::Object(o) = &mut v {
        o.retain(|_, x| !x.is_null());
    }
    v
}
