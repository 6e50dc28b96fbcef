//! OTLP/JSON trace requests read with [`Scanner`] straight into records, for the shape the
//! Collector writes nearly every line in: known fields only, each once, the resource before
//! its scopes and the scope before its spans, keys without escapes, attribute values that
//! are strings, ints, bools or doubles, no links. Anything else gives up (`None`) and
//! the request is read by `plain::plain_spans`, then the crate's types, as before; the unit
//! tests hold that whatever this path accepts decodes to the records those paths make.

use std::borrow::Cow;
use std::sync::Arc;

use opentelemetry_proto::tonic::trace::v1::Status;

use super::otlp::{span_kind, span_status, span_times};
use super::scanner::{parse_u64, Scanner};
use crate::model::{Attributes, HexId, Record, Resource, SpanId, SpanRecord, TraceId};

/// The records of an OTLP/JSON `ExportTraceServiceRequest` of the plain shape above.
pub(super) fn scanned_spans(text: &str) -> Option<Vec<Record>> {
    let mut s = Scanner::new(text);
    let (mut out, mut listed) = (Vec::new(), None);
    s.object(|s, key| match key {
        "resourceSpans" => {
            once(&mut listed, ())?;
            s.array(|s| resource_spans(s, &mut out))
        }
        _ => None,
    })?;
    s.end()?;
    Some(out)
}

/// Sets a field read from an object; `None` if the object had it already, as serde's
/// derived structs refuse a duplicate field.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    slot.replace(value).is_none().then_some(())
}

fn resource_spans(s: &mut Scanner, out: &mut Vec<Record>) -> Option<()> {
    let (mut res, mut listed, mut schema) = (None, None, None);
    s.object(|s, key| match key {
        "resource" => once(&mut res, resource(s)?),
        "scopeSpans" => {
            once(&mut listed, ())?;
            // The resource comes first, as the Collector writes it, or not at all (then it
            // is empty, as `PlainResource::shared` makes a missing one).
            let res = res.get_or_insert_with(Arc::default);
            s.array(|s| scope_spans(s, res, out))
        }
        "schemaUrl" => once(&mut schema, s.str()?),
        _ => None,
    })
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
fn nanos(s: &mut Scanner) -> Option<u64> {
    if s.at_string() {
        // A time written with escapes gives up to the serde path, which reads it.
        parse_u64(s.str()?)
    } else {
        s.int::<u64>()
    }
}

/// An attribute list, as `PlainAttributes` reads it.
fn attributes(s: &mut Scanner) -> Option<Attributes> {
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
            "doubleValue" => serde_json::from_str::<f64>(s.number_text()?)
                .ok()?
                .to_string(),
            _ => return None,
        });
        Some(())
    })?;
    text
}

#[cfg(test)]
#[path = "scanned_tests.rs"]
mod tests;
