//! OTLP/JSON trace and log requests read with [`Scanner`] straight into records, for the
//! shape the Collector writes nearly every line in: known fields only, each once, the
//! resource before its scopes and the scope before its spans (a log's scope may come
//! after its logs), keys without escapes, attribute values that are strings, ints, bools
//! or doubles, no links, log bodies that are strings. Anything else gives up (`None`) and
//! the request is read by `plain::plain_spans` or `plain::plain_logs`, then the crate's
//! types, as before; the unit tests hold that whatever this path accepts decodes to the
//! records those paths make. Metric requests are read in `scanned_metrics.rs` with the
//! request and scope readers here (`request`, `scope_records`).

use std::borrow::Cow;
use std::sync::Arc;

use opentelemetry_proto::tonic::trace::v1::Status;

use super::otlp::{span_kind, span_status, span_times, time};
use super::scanner::{parse_u64, Scanner};
use crate::model::{
    Attributes, EventTime, HexId, LogRecord, Record, Resource, SpanId, SpanRecord, TraceId,
};

/// The records of an OTLP/JSON `ExportTraceServiceRequest` of the plain shape above.
pub(super) fn scanned_spans(text: &str) -> Option<Vec<Record>> {
    // A span takes a few hundred bytes of the text: room for most requests' spans at once,
    // rather than moving the records at every doubling.
    let capacity = text.len() / 256;
    request(text, "resourceSpans", "scopeSpans", capacity, scope_spans)
}

/// Sets a field read from an object; `None` if the object had it already, as serde's
/// derived structs refuse a duplicate field.
pub(super) fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    slot.replace(value).is_none().then_some(())
}

/// The records of a whole request `{"<resources>": [...]}` of any signal: each element a
/// resource (before its scopes), `schemaUrl`, and the list `scopes`, whose elements `scope`
/// reads into the records, given their resource.
pub(super) fn request(
    text: &str,
    resources: &str,
    scopes: &str,
    capacity: usize,
    mut scope: impl FnMut(&mut Scanner, &Arc<Resource>, &mut Vec<Record>) -> Option<()>,
) -> Option<Vec<Record>> {
    let mut s = Scanner::new(text);
    let (mut out, mut listed) = (Vec::with_capacity(capacity), None);
    s.object(|s, key| {
        if key != resources {
            return None;
        }
        once(&mut listed, ())?;
        s.array(|s| {
            let (mut res, mut listed, mut schema) = (None, None, None);
            s.object(|s, key| match key {
                "resource" => once(&mut res, resource(s)?),
                "schemaUrl" => once(&mut schema, s.str()?),
                key if key == scopes => {
                    once(&mut listed, ())?;
                    // The resource comes first, as the Collector writes it, or not at all
                    // (then it is empty, as `PlainResource::shared` makes a missing one).
                    let res = res.get_or_insert_with(Arc::default);
                    s.array(|s| scope(s, res, &mut out))
                }
                _ => None,
            })
        })
    })?;
    s.end()?;
    Some(out)
}

/// The records' shared resource, as `PlainResource::shared` makes it (`null` is empty).
fn resource(s: &mut Scanner) -> Option<Arc<Resource>> {
    let (mut attrs, mut dropped) = (None, None);
    if !s.null() {
        s.object(|s, key| match key {
            "attributes" => once(&mut attrs, attributes(s)?),
            "droppedAttributesCount" => once(&mut dropped, s.int::<u32>()?),
            _ => None,
        })?;
    }
    let attributes = attrs.unwrap_or_default();
    Some(Arc::new(Resource::from_attributes(attributes)))
}

fn scope_spans(s: &mut Scanner, res: &Arc<Resource>, out: &mut Vec<Record>) -> Option<()> {
    let (mut scope, mut listed, mut schema) = (None, None, None);
    s.object(|s, key| match key {
        // As `otlp::scope_name`: an empty name is none.
        "scope" => once(&mut scope, scope_name(s)?.filter(|n| !n.is_empty())),
        "spans" => {
            once(&mut listed, ())?;
            // The scope comes first, as the Collector writes it, or not at all.
            let scope = scope.get_or_insert(None);
            s.array(|s| {
                let span = span(s, res, scope.as_deref().map(str::to_owned))?;
                out.push(Record::Span(span));
                Some(())
            })
        }
        "schemaUrl" => once(&mut schema, s.str()?),
        _ => None,
    })
}

/// An `InstrumentationScope`'s name; `None` for `null`.
fn scope_name<'a>(s: &mut Scanner<'a>) -> Option<Option<Cow<'a, str>>> {
    let (mut name, mut version, mut attrs, mut dropped) = (None, None, None, None);
    if s.null() {
        return Some(None);
    }
    s.object(|s, key| match key {
        "name" => once(&mut name, s.string()?),
        "version" => once(&mut version, s.string()?),
        "attributes" => once(&mut attrs, attributes(s)?),
        "droppedAttributesCount" => once(&mut dropped, s.int::<u32>()?),
        _ => None,
    })?;
    Some(Some(name.unwrap_or_default()))
}

/// A span's fields as read, each `None` until it is.
#[derive(Default)]
struct SpanFields<'a> {
    trace_id: Option<Option<TraceId>>,
    span_id: Option<Option<SpanId>>,
    parent_span_id: Option<Option<SpanId>>,
    trace_state: Option<Cow<'a, str>>,
    flags: Option<u32>,
    name: Option<Cow<'a, str>>,
    kind: Option<i32>,
    start: Option<u64>,
    end: Option<u64>,
    attributes: Option<Attributes>,
    dropped_attributes: Option<u32>,
    events: Option<u32>,
    dropped_events: Option<u32>,
    links: Option<()>,
    dropped_links: Option<u32>,
    status: Option<Option<Status>>,
}

/// One span, as `PlainSpan::into_record` makes it.
fn span(s: &mut Scanner, res: &Arc<Resource>, scope: Option<String>) -> Option<SpanRecord> {
    let mut f = SpanFields::default();
    s.object(|s, key| match key {
        "traceId" => once(&mut f.trace_id, HexId::from_hex(s.str()?).ok()?),
        "spanId" => once(&mut f.span_id, HexId::from_hex(s.str()?).ok()?),
        "parentSpanId" => once(&mut f.parent_span_id, HexId::from_hex(s.str()?).ok()?),
        "traceState" => once(&mut f.trace_state, s.string()?),
        "flags" => once(&mut f.flags, s.int()?),
        "name" => once(&mut f.name, s.string()?),
        "kind" => once(&mut f.kind, s.int()?),
        "startTimeUnixNano" => once(&mut f.start, nanos(s)?),
        "endTimeUnixNano" => once(&mut f.end, nanos(s)?),
        "attributes" => once(&mut f.attributes, attributes(s)?),
        "droppedAttributesCount" => once(&mut f.dropped_attributes, s.int()?),
        "events" => once(&mut f.events, events(s)?),
        "droppedEventsCount" => once(&mut f.dropped_events, s.int()?),
        "links" => once(&mut f.links, s.array(|_| None)?),
        "droppedLinksCount" => once(&mut f.dropped_links, s.int()?),
        "status" => once(&mut f.status, status(s)?),
        _ => None,
    })?;
    let (start_time, end_time) = span_times(f.start.unwrap_or(0), f.end.unwrap_or(0)).ok()?;
    let (status, status_message) = span_status(f.status.flatten());
    Some(SpanRecord {
        start_time,
        end_time,
        trace_id: f.trace_id.flatten()?,
        span_id: f.span_id.flatten()?,
        parent_span_id: f.parent_span_id.flatten(),
        name: f.name.unwrap_or_default().into_owned(),
        kind: span_kind(f.kind.unwrap_or(0)),
        status,
        status_message,
        resource: res.clone(),
        scope,
        attributes: f.attributes.unwrap_or_default(),
        event_count: f.events.unwrap_or(0),
    })
}

/// A span's events, read as the crate reads them, counted.
fn events(s: &mut Scanner) -> Option<u32> {
    let mut count = 0u32;
    s.array(|s| {
        let (mut time, mut name, mut attrs, mut dropped) = (None, None, None, None);
        s.object(|s, key| match key {
            "timeUnixNano" => once(&mut time, nanos(s)?),
            "name" => once(&mut name, s.string()?),
            "attributes" => once(&mut attrs, attributes(s)?),
            "droppedAttributesCount" => once(&mut dropped, s.int::<u32>()?),
            _ => None,
        })?;
        count = count.saturating_add(1);
        Some(())
    })?;
    Some(count)
}

/// A span's status; `None` for `null`.
fn status(s: &mut Scanner) -> Option<Option<Status>> {
    let (mut code, mut message) = (None, None);
    if s.null() {
        return Some(None);
    }
    s.object(|s, key| match key {
        "code" => once(&mut code, s.int::<i32>()?),
        "message" => once(&mut message, s.string()?),
        _ => None,
    })?;
    Some(Some(Status {
        code: code.unwrap_or(0),
        message: message.unwrap_or_default().into_owned(),
    }))
}

/// A `fixed64` time as `plain::nanos` reads it: an integer, or a string `u64` parses.
pub(super) fn nanos(s: &mut Scanner) -> Option<u64> {
    if s.at_string() {
        // A time written with escapes gives up to the serde path, which reads it.
        parse_u64(s.str()?)
    } else {
        s.int::<u64>()
    }
}

/// An attribute list, as `PlainAttributes` reads it.
pub(super) fn attributes(s: &mut Scanner) -> Option<Attributes> {
    let mut pairs = Vec::new();
    s.array(|s| {
        pairs.push(key_value(s)?);
        Some(())
    })?;
    // Sorted once; later duplicates win, as when the crate's list is collected.
    Some(pairs.into_iter().collect())
}

/// One `KeyValue` as `PlainKeyValue` reads it: a key, and its value's text (empty when
/// there is no value). A `keyStrindex` gives up.
fn key_value(s: &mut Scanner) -> Option<(String, String)> {
    let (mut key, mut value) = (None, None);
    s.object(|s, field| match field {
        "key" => once(&mut key, s.string()?),
        "value" => once(&mut value, any_value(s)?),
        _ => None,
    })?;
    Some((key?.into_owned(), value.unwrap_or_default()))
}

/// An `AnyValue` of exactly one string, int, bool or double, as `PlainValue` renders it.
fn any_value(s: &mut Scanner) -> Option<String> {
    let mut text = None;
    s.object(|s, key| {
        if text.is_some() {
            return None;
        }
        text = Some(match key {
            "stringValue" => s.string()?.into_owned(),
            "intValue" if s.at_string() => s.string()?.parse::<i64>().ok()?.to_string(),
            "intValue" => s.int::<i64>()?.to_string(),
            "boolValue" => s.bool()?.to_string(),
            "doubleValue" => double(s)?.to_string(),
            _ => return None,
        });
        Some(())
    })?;
    text
}

/// A JSON number read as serde_json reads it into an `f64` (a string such as `"NaN"`
/// gives up).
pub(super) fn double(s: &mut Scanner) -> Option<f64> {
    serde_json::from_str::<f64>(s.number_text()?).ok()
}

/// The records of an OTLP/JSON `ExportLogsServiceRequest` of the plain shape above;
/// `fallback_time` as for `otlp::decode_json_text`.
pub(super) fn scanned_logs(text: &str, fallback_time: Option<EventTime>) -> Option<Vec<Record>> {
    request(text, "resourceLogs", "scopeLogs", 0, |s, res, out| {
        scope_records(s, "logRecords", out, |s, out| {
            out.push(Record::Log(log(s, res, fallback_time)?));
            Some(())
        })
    })
}

/// A scope of logs or metrics: its list `records`, whose elements `record` reads into
/// `out`, and its name, before or after them (`set_scope`), and `schemaUrl`.
pub(super) fn scope_records(
    s: &mut Scanner,
    records: &str,
    out: &mut Vec<Record>,
    mut record: impl FnMut(&mut Scanner, &mut Vec<Record>) -> Option<()>,
) -> Option<()> {
    let (mut scope, mut listed, mut schema) = (None, None, None);
    let first = out.len();
    s.object(|s, key| match key {
        "scope" => once(&mut scope, scope_name(s)?),
        "schemaUrl" => once(&mut schema, s.str()?),
        key if key == records => {
            once(&mut listed, ())?;
            s.array(|s| record(s, out))
        }
        _ => None,
    })?;
    set_scope(&mut out[first..], scope.flatten());
    Some(())
}

/// Gives `records` (logs or metric points read without it) their scope's name, which may
/// come before or after them: serde_json writes keys in order, so `logRecords` and
/// `metrics` before `scope`. As `otlp::scope_name`: an empty name is none.
fn set_scope(records: &mut [Record], name: Option<Cow<str>>) {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return;
    };
    for record in records {
        match record {
            Record::Log(l) => l.scope = Some(name.to_string()),
            Record::Metric(m) => m.scope = Some(name.to_string()),
            Record::Span(s) => s.scope = Some(name.to_string()),
        }
    }
}

/// A log's fields as read, each `None` until it is.
#[derive(Default)]
struct LogFields<'a> {
    time: Option<u64>,
    observed: Option<u64>,
    severity_number: Option<i32>,
    severity_text: Option<Cow<'a, str>>,
    body: Option<Option<Cow<'a, str>>>,
    attributes: Option<Attributes>,
    dropped_attributes: Option<u32>,
    flags: Option<u32>,
    trace_id: Option<Option<TraceId>>,
    span_id: Option<Option<SpanId>>,
    event_name: Option<Cow<'a, str>>,
}

/// One log, as `PlainLog::into_record` makes it.
fn log(s: &mut Scanner, res: &Arc<Resource>, fallback: Option<EventTime>) -> Option<LogRecord> {
    let mut f = LogFields::default();
    s.object(|s, key| match key {
        "timeUnixNano" => once(&mut f.time, nanos(s)?),
        "observedTimeUnixNano" => once(&mut f.observed, nanos(s)?),
        "severityNumber" => once(&mut f.severity_number, s.int()?),
        "severityText" => once(&mut f.severity_text, s.string()?),
        "body" => once(&mut f.body, string_body(s)?),
        "attributes" => once(&mut f.attributes, attributes(s)?),
        "droppedAttributesCount" => once(&mut f.dropped_attributes, s.int()?),
        "flags" => once(&mut f.flags, s.int()?),
        "traceId" => once(&mut f.trace_id, HexId::from_hex(s.str()?).ok()?),
        "spanId" => once(&mut f.span_id, HexId::from_hex(s.str()?).ok()?),
        "eventName" => once(&mut f.event_name, s.string()?),
        _ => None,
    })?;
    let observed = time(f.observed.unwrap_or(0));
    Some(LogRecord {
        time: time(f.time.unwrap_or(0)).or(observed).or(fallback)?,
        observed_time: observed,
        trace_id: f.trace_id.flatten(),
        span_id: f.span_id.flatten(),
        severity_number: f.severity_number.unwrap_or(0),
        severity_text: f
            .severity_text
            .filter(|t| !t.is_empty())
            .map(Cow::into_owned),
        body: f.body.flatten().map(Cow::into_owned).unwrap_or_default(),
        resource: res.clone(),
        scope: None,
        attributes: f.attributes.unwrap_or_default(),
        parsed: None,
    })
}

/// A log body that is exactly one `stringValue`; `None` inside for `null` (an empty body).
/// Other bodies are rendered as JSON by the general path.
fn string_body<'a>(s: &mut Scanner<'a>) -> Option<Option<Cow<'a, str>>> {
    if s.null() {
        return Some(None);
    }
    let mut text = None;
    s.object(|s, key| match key {
        "stringValue" => once(&mut text, s.string()?),
        _ => None,
    })?;
    text.map(Some)
}

#[cfg(test)]
#[path = "scanned_tests.rs"]
pub(super) mod tests;
