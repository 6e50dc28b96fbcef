use std::cell::Cell;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::{plain_logs, plain_spans};
use crate::decode::otlp::decode_json;
use crate::model::{EventTime, Record};

/// The records the general path (the crate's types, through `serde_json::Value`) makes of
/// `text`, or its error.
pub(in crate::decode) fn general(text: &str) -> Result<Vec<Record>, String> {
    general_with(text, None)
}

fn general_with(text: &str, fallback_time: Option<EventTime>) -> Result<Vec<Record>, String> {
    let object: serde_json::Map<String, Value> = serde_json::from_str(text).unwrap();
    match decode_json(&object, fallback_time) {
        Ok(Some(records)) => Ok(records),
        Ok(None) => Err("not OTLP".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Every line of the example that starts with `{"KIND"` takes the plain path (`plain`) and
/// decodes as the general path does; there are over 100 of them.
pub(in crate::decode) fn example_lines_take_the_plain_path(
    kind: &str,
    plain: impl Fn(&str) -> Option<Vec<Record>>,
) {
    let text = include_str!("../../examples/incident.jsonl");
    let prefix = format!("{{\"{kind}\"");
    let mut lines = 0;
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        lines += 1;
        let records = plain(line).unwrap_or_else(|| panic!("not plain: {line}"));
        assert!(!records.is_empty());
        assert_eq!(Ok(records), general(line), "{line}");
    }
    assert!(lines > 100, "{lines} {kind} lines");
}

/// Runs 512 generated cases, each a request's text with the fallback time to decode it
/// with: whatever the plain path (`plain`) accepts, the general path decodes to the same
/// records, and both outcomes occur more than 25 times.
pub(in crate::decode) fn plain_agrees_with_general<S: Strategy>(
    strategy: S,
    case: impl Fn(S::Value) -> (String, Option<EventTime>),
    plain: impl Fn(&str, Option<EventTime>) -> Option<Vec<Record>>,
) {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(512));
    let (accepted, general_only) = (Cell::new(0), Cell::new(0));
    runner
        .run(&strategy, |value| {
            let (text, fallback) = case(value);
            match plain(&text, fallback) {
                Some(records) => {
                    accepted.set(accepted.get() + 1);
                    prop_assert_eq!(Ok(records), general_with(&text, fallback), "{}", text);
                }
                None => general_only.set(general_only.get() + 1),
            }
            Ok(())
        })
        .unwrap();
    let (accepted, general_only) = (accepted.get(), general_only.get());
    assert!(
        accepted > 25 && general_only > 25,
        "{accepted} plain, {general_only} not"
    );
}

#[test]
fn every_span_line_of_the_example_takes_the_plain_path_and_decodes_alike() {
    example_lines_take_the_plain_path("resourceSpans", plain_spans);
}

pub(in crate::decode) fn request(spans: Vec<Value>) -> String {
    request_from(service_resource(), spans)
}

fn service_resource() -> Value {
    json!({"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]})
}

fn request_from(resource: Value, spans: Vec<Value>) -> String {
    json!({"resourceSpans": [{
        "resource": resource,
        "scopeSpans": [{"scope": {"name": "lib", "version": "1"}, "spans": spans}]
    }]})
    .to_string()
}

/// A resource with generated attributes (as plain or unusual as a span's), or none.
pub(in crate::decode) fn a_resource() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => proptest::collection::vec(attribute(), 0..4).prop_map(|a| json!({"attributes": a})),
        1 => Just(json!(null)),
        1 => Just(json!({"droppedAttributesCount": 2})),
    ]
}

pub(in crate::decode) fn span(extra: &[(&str, Value)]) -> Value {
    let mut span = json!({
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "GET /",
        "kind": 2,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000500000000",
    });
    for (k, v) in extra {
        span[*k] = v.clone();
    }
    span
}

#[test]
fn unusual_shapes_fall_back_and_plain_ones_do_not() {
    let fall_back = [
        (
            "attributes",
            json!([{"key": "a", "value": {"arrayValue": {"values": []}}}]),
        ),
        (
            "attributes",
            json!([{"key": "a", "value": {"kvlistValue": {"values": []}}}]),
        ),
        (
            "attributes",
            json!([{"key": "a", "value": {"bytesValue": "AAE="}}]),
        ),
        ("attributes", json!([{"key": "a", "value": null}])),
        ("attributes", json!([{"key": "a", "value": {}}])),
        (
            "attributes",
            json!([{"key": "a", "value": {"stringValue": "x", "intValue": "1"}}]),
        ),
        ("attributes", json!([{"value": {"stringValue": "x"}}])),
        ("traceId", json!("0x5b8efff798038103d269b633813fc60c")),
        ("traceId", json!("")),
        ("spanId", json!("eee19b7e")),
        ("startTimeUnixNano", json!("0")),
        ("endTimeUnixNano", json!("1")),
    ];
    for (field, value) in fall_back {
        let text = request(vec![span(&[(field, value.clone())])]);
        assert_eq!(plain_spans(&text), None, "{field}: {value}");
    }
    let plain = [
        (
            "attributes",
            json!([{"key": "a", "value": {"intValue": 7}}]),
        ),
        ("attributes", json!([{"key": "a"}])),
        (
            "attributes",
            json!([{"key": "a", "value": {"doubleValue": 2}}, {"key": "a", "value": {"boolValue": true}}]),
        ),
        ("traceId", json!("5B8EFFF798038103D269B633813FC60C")),
        ("parentSpanId", json!("0000000000000000")),
        ("endTimeUnixNano", json!(1700000000000000001u64)),
        ("status", json!({"code": 2, "message": "boom"})),
        (
            "events",
            json!([{"name": "e", "attributes": [{"key": "k", "value": {"arrayValue": {"values": []}}}]}]),
        ),
        ("unknownField", json!({"anything": [1, 2]})),
    ];
    for (field, value) in plain {
        let text = request(vec![span(&[(field, value.clone())])]);
        let records = plain_spans(&text).unwrap_or_else(|| panic!("{field}: {value}"));
        assert_eq!(Ok(records), general(&text), "{field}: {value}");
    }
}

fn id_text(bytes: usize) -> impl Strategy<Value = Value> {
    prop_oneof![
        40 => proptest::collection::vec(any::<u8>(), bytes).prop_map(|b| json!(const_hex::encode(b))),
        1 => proptest::collection::vec(any::<u8>(), bytes).prop_map(|b| json!(const_hex::encode_upper(b))),
        1 => Just(json!("")),
        1 => Just(json!("0".repeat(2 * bytes))),
        1 => proptest::collection::vec(any::<u8>(), bytes).prop_map(|b| json!(format!("0x{}", const_hex::encode(b)))),
        1 => proptest::collection::vec(any::<u8>(), bytes + 1).prop_map(|b| json!(const_hex::encode(b))),
        1 => Just(json!(17)),
    ]
}

pub(in crate::decode) fn time_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        40 => (1u64..2_000_000_000_000_000_000).prop_map(|t| json!(t.to_string())),
        4 => (0u64..u64::MAX).prop_map(|t| json!(t)),
        1 => (i64::MIN..0).prop_map(|t| json!(t)),
        1 => Just(json!("12x")),
        1 => Just(json!(null)),
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        40 => ".{0,12}".prop_map(|s| json!({"stringValue": s})),
        20 => any::<i64>().prop_map(|i| json!({"intValue": i.to_string()})),
        4 => any::<i64>().prop_map(|i| json!({"intValue": i})),
        1 => any::<u64>().prop_map(|i| json!({"intValue": i})),
        1 => "[0-9+ -]{0,4}".prop_map(|s| json!({"intValue": s})),
        4 => any::<bool>().prop_map(|b| json!({"boolValue": b})),
        4 => any::<f64>().prop_filter("finite", |d| d.is_finite()).prop_map(|d| json!({"doubleValue": d})),
        1 => any::<i32>().prop_map(|i| json!({"doubleValue": i})),
        1 => Just(json!({"stringValue": null})),
        1 => Just(json!({"boolValue": "true"})),
        1 => Just(json!({"arrayValue": {"values": [{"intValue": "1"}]}})),
        1 => Just(json!({"other": 1})),
        1 => Just(json!(null)),
    ]
}

pub(in crate::decode) fn attribute() -> impl Strategy<Value = Value> {
    ("[a-c.]{1,3}", any_value(), 0..40u8).prop_map(|(key, value, shape)| match shape {
        0 => json!({"value": value}),
        1 => json!({"key": key}),
        2 => json!({"key": key, "value": value, "extra": [1]}),
        3 => json!({"key": key, "value": value, "keyStrindex": 0}),
        _ => json!({"key": key, "value": value}),
    })
}

fn a_span() -> impl Strategy<Value = Value> {
    (
        (id_text(16), id_text(8), prop::option::of(id_text(8))),
        (time_value(), prop::option::of(time_value())),
        (0..8i32, proptest::collection::vec(attribute(), 0..5)),
        (0..3usize, prop::option::of((0..4i32, ".{0,6}"))),
    )
        .prop_map(
            |((trace, span_id, parent), (start, end), (kind, attributes), (events, status))| {
                let mut s = json!({
                    "traceId": trace, "spanId": span_id, "name": "op", "kind": kind,
                    "startTimeUnixNano": start, "attributes": attributes,
                    "events": vec![json!({"name": "e"}); events],
                });
                if let Some(p) = parent {
                    s["parentSpanId"] = p;
                }
                if let Some(e) = end {
                    s["endTimeUnixNano"] = e;
                }
                if let Some((code, message)) = status {
                    s["status"] = json!({"code": code, "message": message});
                }
                s
            },
        )
}

/// Whatever a span path (`decode`) accepts of generated trace requests, the general path
/// decodes to the same records; both outcomes occur.
pub(in crate::decode) fn span_path_agrees_with_general(decode: fn(&str) -> Option<Vec<Record>>) {
    plain_agrees_with_general(
        (a_resource(), proptest::collection::vec(a_span(), 1..4)),
        |(resource, spans)| (request_from(resource, spans), None),
        |text, _| decode(text),
    );
}

/// Whatever the plain path accepts, the general path decodes to the same records; and
/// the generated requests exercise both outcomes.
#[test]
fn the_plain_path_agrees_with_the_general_one() {
    span_path_agrees_with_general(plain_spans);
}

#[test]
fn every_log_line_of_the_example_takes_the_plain_path_and_decodes_alike() {
    example_lines_take_the_plain_path("resourceLogs", |line| plain_logs(line, None));
}

pub(in crate::decode) fn logs_request(logs: Vec<Value>) -> String {
    logs_request_from(service_resource(), logs)
}

fn logs_request_from(resource: Value, logs: Vec<Value>) -> String {
    json!({"resourceLogs": [{
        "resource": resource,
        "scopeLogs": [{"scope": {"name": "lib"}, "logRecords": logs}]
    }]})
    .to_string()
}

/// A plain log record with the fields of `extra` set or replaced.
pub(in crate::decode) fn log(extra: Value) -> Value {
    let mut log = json!({"timeUnixNano": "1700000000000000000", "severityNumber": 9,
        "severityText": "INFO", "body": {"stringValue": "ready"}});
    for (k, v) in extra.as_object().unwrap() {
        log[k] = v.clone();
    }
    log
}

#[test]
fn log_bodies_other_than_strings_and_logs_without_a_time_fall_back() {
    for extra in [
        json!({"body": {"intValue": "5"}}),
        json!({"body": {"doubleValue": 1e20}}),
        json!({"body": {"kvlistValue": {"values": []}}}),
        json!({"body": {}}),
        json!({"timeUnixNano": "0"}),
    ] {
        let text = logs_request(vec![log(extra.clone())]);
        assert_eq!(plain_logs(&text, None), None, "{extra}");
    }
    for (extra, fallback) in [
        (json!({}), None),
        (
            json!({"body": null, "traceId": "", "spanId": "00f067aa0ba902b7"}),
            None,
        ),
        (json!({"timeUnixNano": "0"}), Some(EventTime(5))),
        (
            json!({"timeUnixNano": "0", "observedTimeUnixNano": 17}),
            Some(EventTime(5)),
        ),
    ] {
        let text = logs_request(vec![log(extra.clone())]);
        let records = plain_logs(&text, fallback).unwrap_or_else(|| panic!("{extra}"));
        assert_eq!(Ok(records), general_with(&text, fallback), "{extra}");
    }
}

fn a_log() -> impl Strategy<Value = Value> {
    (
        (prop::option::of(id_text(16)), prop::option::of(id_text(8))),
        (
            prop::option::of(time_value()),
            prop::option::of(time_value()),
        ),
        (0..25i32, ".{0,4}"),
        prop::option::of(any_value()),
        proptest::collection::vec(attribute(), 0..4),
    )
        .prop_map(
            |((trace, span), (t, observed), (number, text), body, attributes)| {
                let mut log = json!({"severityNumber": number, "severityText": text,
                "attributes": attributes});
                for (key, value) in [
                    ("traceId", trace),
                    ("spanId", span),
                    ("timeUnixNano", t),
                    ("observedTimeUnixNano", observed),
                    ("body", body),
                ] {
                    if let Some(v) = value {
                        log[key] = v;
                    }
                }
                log
            },
        )
}

/// As for spans: whatever the plain path accepts, with and without a fallback time, the
/// general path decodes to the same records.
#[test]
fn the_plain_log_path_agrees_with_the_general_one() {
    log_path_agrees_with_general(plain_logs);
}

/// Whatever `decode` (a log path) accepts of generated log requests, with and without a
/// fallback time, the general path decodes to the same records.
pub(in crate::decode) fn log_path_agrees_with_general(
    decode: fn(&str, Option<EventTime>) -> Option<Vec<Record>>,
) {
    let strategy = (
        a_resource(),
        proptest::collection::vec(a_log(), 1..4),
        prop::option::of(1i64..1_000),
    );
    plain_agrees_with_general(
        strategy,
        |(resource, logs, fallback)| (logs_request_from(resource, logs), fallback.map(EventTime)),
        decode,
    );
}
