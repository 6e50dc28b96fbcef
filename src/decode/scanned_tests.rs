use proptest::prelude::*;
use serde_json::{json, Value};

use super::{scanned_logs, scanned_spans};
use crate::decode::plain::tests::{
    example_lines_take_the_plain_path, general, log, log_path_agrees_with_general, logs_request,
    request, span, span_path_agrees_with_general,
};
use crate::decode::plain::{plain_logs, plain_spans};
use crate::model::Record;

#[test]
fn every_span_line_of_the_example_is_scanned_and_decodes_alike() {
    example_lines_take_the_plain_path("resourceSpans", scanned_spans);
}

/// Whitespace anywhere JSON allows it reads as the compact text does.
#[test]
fn pretty_printed_requests_are_scanned_alike() {
    pretty_printed_lines_read_alike("resourceSpans", scanned_spans);
}

/// Every line of the example that starts with `{"KIND"`, pretty-printed and wrapped in
/// whitespace, reads with `scanned` as the compact line does; there are over 100.
pub(in crate::decode) fn pretty_printed_lines_read_alike(
    kind: &str,
    scanned: fn(&str) -> Option<Vec<Record>>,
) {
    let text = include_str!("../../examples/incident.jsonl");
    let prefix = format!("{{\"{kind}\"");
    let mut lines = 0;
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        let pretty = serde_json::to_string_pretty(&serde_json::from_str::<Value>(line).unwrap());
        let pretty = format!(" \r\n\t{}\n", pretty.unwrap());
        assert_eq!(scanned(&pretty), scanned(line), "{pretty}");
        lines += 1;
    }
    assert!(lines > 100, "{lines} {kind} lines");
}

/// Whatever the scanner accepts, the general path decodes to the same records (the same
/// generated requests as the serde path's test, so both outcomes occur).
#[test]
fn the_scanned_path_agrees_with_the_general_one() {
    span_path_agrees_with_general(scanned_spans);
}

/// Shapes the serde path reads but the scanner leaves to it, and plain ones it reads.
#[test]
fn unusual_shapes_are_left_to_the_serde_path_and_plain_ones_are_not() {
    let left = [
        ("unknownField", json!(1)),
        (
            "links",
            json!([{"traceId": "5b8efff798038103d269b633813fc60c"}]),
        ),
        ("status", json!({"code": 2, "extra": 1})),
        (
            "attributes",
            json!([{"key": "a", "keyStrindex": 1, "value": {"stringValue": "x"}}]),
        ),
        (
            "attributes",
            json!([{"key": "a", "value": {"stringValue": "x"}, "x": 1}]),
        ),
    ];
    for (field, value) in left {
        let text = request(vec![span(&[(field, value.clone())])]);
        assert_eq!(scanned_spans(&text), None, "{field}: {value}");
        let records = plain_spans(&text).unwrap_or_else(|| panic!("serde: {field}: {value}"));
        assert_eq!(Ok(records), general(&text), "{field}: {value}");
    }
    let scanned = [
        ("name", json!("caf\u{e9} \u{1F600}")),
        ("name", json!("say \"hi\"\tC:\\ \u{1}")),
        (
            "attributes",
            json!([{"key": "a\u{e9}\\", "value": {"stringValue": "\n\u{7f}"}}]),
        ),
        ("status", json!(null)),
        ("attributes", json!([{"key": "a"}])),
        (
            "attributes",
            json!([{"key": "b", "value": {"doubleValue": 2.5e-3}},
                   {"key": "a", "value": {"intValue": -7}},
                   {"key": "b", "value": {"boolValue": false}},
                   {"key": "c", "value": {"intValue": "0042"}}]),
        ),
        ("parentSpanId", json!("")),
        ("links", json!([])),
        ("status", json!({})),
        ("status", json!({"message": "boom", "code": 2})),
        (
            "events",
            json!([{"name": "e", "timeUnixNano": "1700000000100000000",
                    "attributes": [{"key": "k", "value": {"stringValue": "v"}}]}, {}]),
        ),
        ("droppedEventsCount", json!(3)),
    ];
    for (field, value) in scanned {
        let text = request(vec![span(&[(field, value.clone())])]);
        let records = scanned_spans(&text).unwrap_or_else(|| panic!("{field}: {value}"));
        assert_eq!(Ok(records), general(&text), "{field}: {value}");
    }
}

/// A resource or scope after the spans it applies to, or a key twice, is left to the serde
/// path; requests without a resource or scope are read.
#[test]
fn order_and_duplicates_are_checked() {
    let spans = json!([span(&[])]).to_string();
    // `json!` sorts keys, so these orders are written out.
    let left = [
        format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":{spans}}}],"resource":{{}}}}]}}"#),
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":{spans},"scope":{{"name":"x"}}}}]}}]}}"#
        ),
        r#"{"resourceSpans":[],"resourceSpans":[]}"#.to_string(),
        r#"{"resourceSpans":[{"sc\u006fpeSpans":[]}]}"#.to_string(),
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"name":"a","name":"b",{}}}]}}]}}]}}"#,
            r#""traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","startTimeUnixNano":"1""#
        ),
    ];
    for text in left {
        assert_eq!(scanned_spans(&text), None, "{text}");
    }
    for text in [
        format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":{spans}}}]}}]}}"#),
        json!({"resourceSpans": []}).to_string(),
        json!({"resourceSpans": [{"resource": null, "scopeSpans": [{"scope": null, "spans": [span(&[])]}]}]}).to_string(),
    ] {
        let records = scanned_spans(&text).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(Ok(records), general(&text), "{text}");
    }
}

proptest! {
    /// Cutting a scanned request anywhere, or appending a byte that is not whitespace,
    /// makes it unreadable: the scanner reads whole texts only.
    #[test]
    fn truncated_or_extended_requests_are_not_read(
        cut in 0usize..1000, extra in "[^ \t\r\n]"
    ) {
        let text = request(vec![span(&[("attributes", json!([{"key": "a", "value": {"intValue": 7}}]))])]);
        prop_assert!(scanned_spans(&text).is_some());
        let cut = cut % text.len();
        prop_assert_eq!(scanned_spans(&text[..cut]), None);
        prop_assert_eq!(scanned_spans(&format!("{text}{extra}")), None);
    }
}

#[test]
fn every_log_line_of_the_example_is_scanned_and_decodes_alike() {
    example_lines_take_the_plain_path("resourceLogs", |line| scanned_logs(line, None));
}

/// Whatever the scanner accepts of the serde path's generated log requests, with and
/// without a fallback time, the general path decodes to the same records.
#[test]
fn the_scanned_log_path_agrees_with_the_general_one() {
    log_path_agrees_with_general(scanned_logs);
}

/// Bodies other than one string, unknown fields and keys twice are left to the serde path;
/// plain logs, a `null` body and logs timed by the fallback are read.
#[test]
fn unusual_logs_are_left_to_the_serde_path_and_plain_ones_are_not() {
    let left = [
        json!({"body": {"intValue": "5"}}),
        json!({"body": {}}),
        json!({"body": {"stringValue": "a", "boolValue": true}}),
        json!({"body": {"stringValue": null}}),
        json!({"unknownField": 1}),
        json!({"traceId": "0x5b8efff798038103d269b633813fc60c"}),
    ];
    for extra in left {
        let text = logs_request(vec![log(extra.clone())]);
        assert_eq!(scanned_logs(&text, None), None, "{extra}");
    }
    let twice = logs_request(vec![log(json!({}))]).replace(
        r#""severityNumber":9"#,
        r#""severityNumber":9,"severityNumber":9"#,
    );
    assert_eq!(scanned_logs(&twice, None), None, "{twice}");
    assert_eq!(plain_logs(&twice, None), None, "serde refuses it too");

    for (extra, fallback) in [
        (json!({}), None),
        (
            json!({"body": null, "traceId": "", "spanId": "00f067aa0ba902b7"}),
            None,
        ),
        (json!({"body": {"stringValue": "caf\u{e9} \"x\""}}), None),
        (
            json!({"timeUnixNano": "0"}),
            Some(crate::model::EventTime(5)),
        ),
        (
            json!({"severityText": "", "eventName": "e", "flags": 1}),
            None,
        ),
    ] {
        let text = logs_request(vec![log(extra.clone())]);
        let records = scanned_logs(&text, fallback).unwrap_or_else(|| panic!("{extra}"));
        assert_eq!(
            Ok(records),
            plain_logs(&text, fallback).ok_or(()),
            "{extra}"
        );
    }
}
