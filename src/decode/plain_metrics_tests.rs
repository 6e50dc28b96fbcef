use proptest::prelude::*;
use serde_json::{json, Value};

use super::plain_metrics;
use crate::decode::plain::tests::{
    a_resource, attribute, example_lines_take_the_plain_path, general, plain_agrees_with_general,
    time_value,
};
use crate::model::Record;

#[test]
fn every_metric_line_of_the_example_takes_the_plain_path_and_decodes_alike() {
    example_lines_take_the_plain_path("resourceMetrics", plain_metrics);
}

fn request_from(resource: Value, metrics: Vec<Value>) -> String {
    json!({"resourceMetrics": [{
        "resource": resource,
        "scopeMetrics": [{"scope": {"name": "lib", "version": "1"}, "metrics": metrics}]
    }]})
    .to_string()
}

pub(in crate::decode) fn request(metric: Value) -> String {
    let resource =
        json!({"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]});
    request_from(resource, vec![metric])
}

pub(in crate::decode) fn number_point(extra: Value) -> Value {
    let mut p = json!({"timeUnixNano": "1700000000000000000", "asDouble": 0.5,
        "attributes": [{"key": "gpu", "value": {"stringValue": "0"}}]});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

pub(in crate::decode) fn histogram_point(extra: Value) -> Value {
    let mut p = json!({"timeUnixNano": "1700000000000000000", "count": "3", "sum": 1.5,
        "bucketCounts": ["1", "2", "0"], "explicitBounds": [0.5, 1.0]});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

#[test]
fn unusual_metrics_fall_back_and_plain_ones_do_not() {
    let gauge = |p: Value| json!({"name": "m", "gauge": {"dataPoints": [p]}});
    let fall_back = [
        json!({"name": "m"}),
        json!({"name": "m", "gauge": null}),
        json!({"name": "m", "gauge": {"dataPoints": []}, "sum": {"dataPoints": []}}),
        json!({"name": "m", "gauge": {"dataPoints": []}, "summary": null}),
        json!({"name": "m", "summary": {"dataPoints": []}}),
        json!({"name": "m", "exponentialHistogram": {"dataPoints": []}}),
        gauge(number_point(json!({"asInt": "2"}))),
        gauge(number_point(json!({"asDouble": null}))),
        gauge(number_point(json!({"asDouble": "NaN"}))),
        gauge(number_point(json!({"timeUnixNano": "0"}))),
        gauge(number_point(
            json!({"attributes": [{"key": "a", "value": {"arrayValue": {}}}]}),
        )),
        gauge(number_point(
            json!({"attributes": [{"key": "trace_id", "value": {"stringValue": "x"}}]}),
        )),
        json!({"name": "h", "histogram": {"dataPoints": [histogram_point(json!({"bucketCounts": ["1"]}))]}}),
        json!({"name": "h", "histogram": {"dataPoints": [histogram_point(json!({"count": -1}))]}}),
    ];
    for metric in fall_back {
        assert_eq!(plain_metrics(&request(metric.clone())), None, "{metric}");
    }
    let mut without_value = number_point(json!({}));
    without_value.as_object_mut().unwrap().remove("asDouble");
    let plain = [
        gauge(number_point(json!({}))),
        gauge(without_value),
        gauge(number_point(json!({"asDouble": 3}))),
        json!({"name": "m", "gauge": {"dataPoints": []}}),
        json!({"name": "m", "unit": "By", "description": "d", "gauge": {}, "extra": [1]}),
        json!({"name": "s", "sum": {"dataPoints": [{"timeUnixNano": 5, "asInt": "-7"}],
            "aggregationTemporality": 1, "isMonotonic": true}}),
        json!({"name": "s", "sum": {"dataPoints": [{"timeUnixNano": "5", "asInt": 9}]}}),
        json!({"name": "h", "histogram": {"dataPoints": [histogram_point(json!({}))],
            "aggregationTemporality": 2}}),
        json!({"name": "h", "histogram": {"dataPoints": [histogram_point(json!({
            "bucketCounts": [], "explicitBounds": [], "min": 0.1, "max": 2, "sum": null}))]}}),
        gauge(number_point(json!({"attributes": [{"key": "trace_id",
            "value": {"stringValue": "5b8efff798038103d269b633813fc60c"}}]}))),
        gauge(number_point(
            json!({"exemplars": [{"timeUnixNano": "1", "asDouble": 1,
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}]}),
        )),
    ];
    for metric in plain {
        let text = request(metric.clone());
        let records = plain_metrics(&text).unwrap_or_else(|| panic!("{metric}"));
        assert_eq!(Ok(records), general(&text), "{metric}");
    }
}

fn number_value() -> impl Strategy<Value = Option<(&'static str, Value)>> {
    prop_oneof![
        10 => any::<f64>().prop_filter("finite", |d| d.is_finite()).prop_map(|d| Some(("asDouble", json!(d)))),
        4 => any::<i64>().prop_map(|i| Some(("asInt", json!(i.to_string())))),
        2 => any::<i64>().prop_map(|i| Some(("asInt", json!(i)))),
        1 => any::<u64>().prop_map(|i| Some(("asInt", json!(i)))),
        1 => Just(Some(("asInt", json!("1.5")))),
        1 => Just(Some(("asDouble", json!(null)))),
        1 => Just(None),
    ]
}

fn a_number_point() -> impl Strategy<Value = Value> {
    (
        time_value(),
        prop::option::of(time_value()),
        proptest::collection::vec(attribute(), 0..3),
        number_value(),
        prop::option::of(number_value()),
    )
        .prop_map(|(time, start, attributes, value, second)| {
            let mut p = json!({"timeUnixNano": time, "attributes": attributes});
            if let Some(s) = start {
                p["startTimeUnixNano"] = s;
            }
            for (k, v) in [value, second.flatten()].into_iter().flatten() {
                p[k] = v;
            }
            p
        })
}

fn fixed64() -> impl Strategy<Value = Value> {
    prop_oneof![
        10 => (0u64..1000).prop_map(|c| json!(c.to_string())),
        2 => (0u64..1000).prop_map(|c| json!(c)),
        1 => Just(json!(-1)),
        1 => Just(json!("x")),
    ]
}

fn a_histogram_point() -> impl Strategy<Value = Value> {
    (
        time_value(),
        proptest::collection::vec(attribute(), 0..3),
        fixed64(),
        proptest::collection::vec(fixed64(), 0..5),
        proptest::collection::vec(0.0f64..10.0, 0..5),
        prop::option::of(prop_oneof![
            (0.0f64..100.0).prop_map(|s| json!(s)),
            Just(json!(null))
        ]),
    )
        .prop_map(|(time, attributes, count, counts, bounds, sum)| {
            let mut p = json!({"timeUnixNano": time, "attributes": attributes, "count": count,
                "bucketCounts": counts, "explicitBounds": bounds});
            if let Some(s) = sum {
                p["sum"] = s;
            }
            p
        })
}

fn a_metric() -> impl Strategy<Value = Value> {
    let number_points = proptest::collection::vec(a_number_point(), 0..3);
    (
        0..8u8,
        number_points,
        proptest::collection::vec(a_histogram_point(), 0..3),
        0..4i32,
        any::<bool>(),
    )
        .prop_map(|(kind, numbers, histograms, temporality, monotonic)| {
            let mut m = json!({"name": "m", "unit": "1"});
            match kind {
                0 | 1 => m["gauge"] = json!({"dataPoints": numbers}),
                2 | 3 => {
                    m["sum"] = json!({"dataPoints": numbers,
                        "aggregationTemporality": temporality, "isMonotonic": monotonic})
                }
                4 | 5 => {
                    m["histogram"] = json!({"dataPoints": histograms,
                        "aggregationTemporality": temporality})
                }
                6 => {
                    m["gauge"] = json!({"dataPoints": numbers});
                    m["summary"] = json!({"dataPoints": []});
                }
                _ => m["summary"] = json!({"dataPoints": [{"timeUnixNano": "1", "count": "1"}]}),
            }
            m
        })
}

/// Whatever the plain path accepts, the general path decodes to the same records; and
/// the generated requests exercise both outcomes.
#[test]
fn the_plain_metric_path_agrees_with_the_general_one() {
    metric_path_agrees_with_general(plain_metrics);
}

/// Whatever `decode` (a metric path) accepts of generated metric requests, the general path
/// decodes to the same records; both outcomes occur.
pub(in crate::decode) fn metric_path_agrees_with_general(decode: fn(&str) -> Option<Vec<Record>>) {
    plain_agrees_with_general(
        (a_resource(), proptest::collection::vec(a_metric(), 1..3)),
        |(resource, metrics)| (request_from(resource, metrics), None),
        |text, _| decode(text),
    );
}
