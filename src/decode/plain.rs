//! OTLP/JSON trace and log requests decoded straight into records, for the plain shapes that
//! make up nearly every line: ids as hex, attribute values that are strings, ints, bools or
//! doubles, log bodies that are strings. Anything else, and anything the crate's types would
//! reject or read differently, makes this path give up, and the request is decoded the
//! general way (`otlp::decode_json_text`), which words every error.
//!
//! Why our own serde types: `opentelemetry-proto` reads each `AnyValue` as a flattened
//! field, buffering it as serde `Content` first, and reads a string `intValue` by trying a
//! number, building an error message and dropping it, then the string; and the attribute
//! lists are copied from `KeyValue` vectors into the records' maps. Skipping all that took
//! 7 % off a file run's instructions (`BENCHMARKS.md`, "Eleventh session"). Every field the
//! crate declares is declared here with the same type, so that a request this path accepts
//! is one the crate accepts too; the unit tests compare both paths record by record.

use std::fmt;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{EntityRef, InstrumentationScope};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::Status;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::otlp::{scope_name, span_kind, span_status, span_times, time};
use crate::model::{
    Attributes, EventTime, HexId, LogRecord, Record, Resource, SpanId, SpanRecord, TraceId,
};

/// The records of an OTLP/JSON `ExportTraceServiceRequest`; `None` when the text is not a
/// plain one (see the module's comment).
pub(super) fn plain_spans(text: &str) -> Option<Vec<Record>> {
    let request: TraceRequest = parse(text)?;
    let mut out = Vec::new();
    for rs in request.resource_spans {
        let res = PlainResource::shared(rs.resource);
        for ss in rs.scope_spans {
            let scope = scope_name(ss.scope);
            for span in ss.spans {
                out.push(Record::Span(span.into_record(&res, scope.clone())?));
            }
        }
    }
    Some(out)
}

/// The records of an OTLP/JSON `ExportLogsServiceRequest`; `None` when the text is not a
/// plain one. `fallback_time` as for `otlp::decode_json_text`.
pub(super) fn plain_logs(text: &str, fallback_time: Option<EventTime>) -> Option<Vec<Record>> {
    let request: LogsRequest = parse(text)?;
    let mut out = Vec::new();
    for rl in request.resource_logs {
        let res = PlainResource::shared(rl.resource);
        for sl in rl.scope_logs {
            let scope = scope_name(sl.scope);
            for log in sl.log_records {
                out.push(Record::Log(log.into_record(
                    &res,
                    scope.clone(),
                    fallback_time,
                )?));
            }
        }
    }
    Some(out)
}

/// The whole text as one `T`; `None` on any error (the general path words it).
pub(super) fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct LogsRequest {
    resource_logs: Vec<ResourceLogs>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ResourceLogs {
    resource: Option<PlainResource>,
    scope_logs: Vec<ScopeLogs>,
    #[allow(dead_code)]
    schema_url: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ScopeLogs {
    scope: Option<InstrumentationScope>,
    log_records: Vec<PlainLog>,
    #[allow(dead_code)]
    schema_url: String,
}

/// `opentelemetry_proto`'s `LogRecord`, field for field.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(dead_code)]
struct PlainLog {
    #[serde(deserialize_with = "nanos")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "nanos")]
    observed_time_unix_nano: u64,
    severity_number: i32,
    severity_text: String,
    body: Option<PlainBody>,
    attributes: PlainAttributes,
    dropped_attributes_count: u32,
    flags: u32,
    #[serde(deserialize_with = "id")]
    trace_id: Option<TraceId>,
    #[serde(deserialize_with = "id")]
    span_id: Option<SpanId>,
    event_name: String,
}

impl PlainLog {
    /// The record `otlp::logs` makes of the same log; `None` where it would fail.
    fn into_record(
        self,
        res: &Arc<Resource>,
        scope: Option<String>,
        fallback_time: Option<EventTime>,
    ) -> Option<LogRecord> {
        let observed = time(self.observed_time_unix_nano);
        Some(LogRecord {
            time: time(self.time_unix_nano).or(observed).or(fallback_time)?,
            observed_time: observed,
            trace_id: self.trace_id,
            span_id: self.span_id,
            severity_number: self.severity_number,
            severity_text: Some(self.severity_text).filter(|s| !s.is_empty()),
            body: self.body.map(|b| b.0).unwrap_or_default(),
            resource: res.clone(),
            scope,
            attributes: self.attributes.0,
            parsed: None,
        })
    }
}

/// A log body that is a string. Other bodies are rendered as JSON by the general path, and
/// an empty `AnyValue` (`{}`) is the crate's to read.
struct PlainBody(String);

impl<'de> Deserialize<'de> for PlainBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match PlainValue::deserialize(d)? {
            PlainValue(text, ValueKind::String) => Ok(PlainBody(text)),
            _ => Err(de::Error::custom("not a string body")),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct TraceRequest {
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ResourceSpans {
    resource: Option<PlainResource>,
    scope_spans: Vec<ScopeSpans>,
    #[allow(dead_code)] // declared so that it is type-checked as the crate does
    schema_url: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ScopeSpans {
    scope: Option<InstrumentationScope>,
    spans: Vec<PlainSpan>,
    #[allow(dead_code)]
    schema_url: String,
}

/// `opentelemetry_proto`'s `Resource`, field for field: logs often come one record per
/// request, so their resource's attributes are as many as their own.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(dead_code)]
pub(super) struct PlainResource {
    attributes: PlainAttributes,
    dropped_attributes_count: u32,
    entity_refs: Vec<EntityRef>,
}

impl PlainResource {
    /// The records' shared resource, as `otlp::resource` makes it.
    pub(super) fn shared(resource: Option<PlainResource>) -> Arc<Resource> {
        Arc::new(Resource::from_attributes(
            resource.map(|r| r.attributes.0).unwrap_or_default(),
        ))
    }
}

/// `opentelemetry_proto`'s `Span`, field for field, with ids, times and attributes read
/// into what the records keep.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(dead_code)] // unused fields are declared so that they are type-checked as the crate does
struct PlainSpan {
    #[serde(deserialize_with = "id")]
    trace_id: Option<TraceId>,
    #[serde(deserialize_with = "id")]
    span_id: Option<SpanId>,
    trace_state: String,
    #[serde(deserialize_with = "id")]
    parent_span_id: Option<SpanId>,
    flags: u32,
    name: String,
    kind: i32,
    #[serde(deserialize_with = "nanos")]
    start_time_unix_nano: u64,
    #[serde(deserialize_with = "nanos")]
    end_time_unix_nano: u64,
    attributes: PlainAttributes,
    dropped_attributes_count: u32,
    events: Vec<Event>,
    dropped_events_count: u32,
    links: Vec<Link>,
    dropped_links_count: u32,
    status: Option<Status>,
}

impl PlainSpan {
    /// The record `otlp::convert_span` makes of the same span; `None` where it would fail.
    fn into_record(self, res: &Arc<Resource>, scope: Option<String>) -> Option<SpanRecord> {
        let (start, end) = span_times(self.start_time_unix_nano, self.end_time_unix_nano).ok()?;
        let (status, status_message) = span_status(self.status);
        Some(SpanRecord {
            start_time: start,
            end_time: end,
            trace_id: self.trace_id?,
            span_id: self.span_id?,
            parent_span_id: self.parent_span_id,
            name: self.name,
            kind: span_kind(self.kind),
            status,
            status_message,
            resource: res.clone(),
            scope,
            attributes: self.attributes.0,
            event_count: u32::try_from(self.events.len()).unwrap_or(u32::MAX),
        })
    }
}

/// An id as `HexId::from_hex` reads it: exactly `2 × N` hex digits (or empty: absent). The
/// crate also takes a `0x` prefix and other lengths, which end in the general path.
fn id<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<Option<HexId<N>>, D::Error> {
    struct IdVisitor<const N: usize>;
    impl<const N: usize> Visitor<'_> for IdVisitor<N> {
        type Value = Option<HexId<N>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "{} hex digits", 2 * N)
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            HexId::from_hex(text).map_err(|_| E::custom("not a plain id"))
        }
    }
    d.deserialize_str(IdVisitor::<N>)
}

/// A `fixed64` time as the crate reads it: a number, or a string of digits.
pub(super) fn nanos<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct NanosVisitor;
    impl Visitor<'_> for NanosVisitor {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a u64 or a string of one")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(E::custom)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            v.parse().map_err(E::custom)
        }
    }
    d.deserialize_any(NanosVisitor)
}

/// An attribute list read straight into the records' map, each value rendered as
/// `value::attributes` renders it.
#[derive(Default)]
pub(super) struct PlainAttributes(pub(super) Attributes);

impl<'de> Deserialize<'de> for PlainAttributes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = PlainAttributes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of attributes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PlainAttributes, A::Error> {
                let mut pairs = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some(PlainKeyValue(key, value)) = seq.next_element()? {
                    pairs.push((key, value));
                }
                // Sorted once; later duplicates win, as when the crate's list is collected.
                Ok(PlainAttributes(pairs.into_iter().collect()))
            }
        }
        d.deserialize_seq(ListVisitor)
    }
}

/// One `KeyValue`: its key and its value's text.
struct PlainKeyValue(String, String);

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum KeyValueField {
    Key,
    Value,
    KeyStrindex,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for PlainKeyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyValueVisitor;
        impl<'de> Visitor<'de> for KeyValueVisitor {
            type Value = PlainKeyValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an attribute")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PlainKeyValue, A::Error> {
                let (mut key, mut value, mut strindex) = (None, None, false);
                while let Some(field) = map.next_key()? {
                    let duplicate = match field {
                        KeyValueField::Key => key.replace(map.next_value::<String>()?).is_some(),
                        KeyValueField::Value => {
                            value.replace(map.next_value::<PlainValue>()?.0).is_some()
                        }
                        KeyValueField::KeyStrindex => {
                            map.next_value::<i32>()?;
                            std::mem::replace(&mut strindex, true)
                        }
                        KeyValueField::Other => {
                            map.next_value::<IgnoredAny>()?;
                            false
                        }
                    };
                    if duplicate {
                        return Err(de::Error::custom("duplicate field"));
                    }
                }
                let key = key.ok_or_else(|| de::Error::missing_field("key"))?;
                // No value is an empty one, as `value::attributes` renders `None`.
                Ok(PlainKeyValue(key, value.unwrap_or_default()))
            }
        }
        d.deserialize_map(KeyValueVisitor)
    }
}

/// An `AnyValue` holding exactly one string, int, bool or double, as attribute text, and
/// which of the four it was.
struct PlainValue(String, ValueKind);

#[derive(PartialEq)]
enum ValueKind {
    String,
    Other,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum ValueField {
    StringValue,
    IntValue,
    BoolValue,
    DoubleValue,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for PlainValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = PlainValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a plain attribute value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PlainValue, A::Error> {
                let (text, kind) = match map.next_key()? {
                    Some(ValueField::StringValue) => {
                        (map.next_value::<String>()?, ValueKind::String)
                    }
                    Some(ValueField::IntValue) => (
                        map.next_value::<IntValue>()?.0.to_string(),
                        ValueKind::Other,
                    ),
                    Some(ValueField::BoolValue) => {
                        (map.next_value::<bool>()?.to_string(), ValueKind::Other)
                    }
                    Some(ValueField::DoubleValue) => {
                        (map.next_value::<f64>()?.to_string(), ValueKind::Other)
                    }
                    Some(ValueField::Other) | None => {
                        return Err(de::Error::custom("not a plain value"))
                    }
                };
                match map.next_key::<IgnoredAny>()? {
                    None => Ok(PlainValue(text, kind)),
                    Some(_) => Err(de::Error::custom("more than one value")),
                }
            }
        }
        d.deserialize_map(ValueVisitor)
    }
}

/// An `intValue`: a number, or a string of one (OTLP/JSON writes 64-bit ints as strings).
pub(super) struct IntValue(pub(super) i64);

impl<'de> Deserialize<'de> for IntValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IntVisitor;
        impl Visitor<'_> for IntVisitor {
            type Value = IntValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an i64 or a string of one")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntValue, E> {
                Ok(IntValue(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntValue, E> {
                i64::try_from(v).map(IntValue).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntValue, E> {
                v.parse().map(IntValue).map_err(E::custom)
            }
        }
        d.deserialize_any(IntVisitor)
    }
}

#[cfg(test)]
#[path = "plain_tests.rs"]
pub(super) mod tests;
