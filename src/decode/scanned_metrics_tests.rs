use serde_json::{json, Value};

use super::scanned_metrics;
use crate::decode::plain::tests::{example_lines_take_the_plain_path, general};
use crate::decode::plain_metrics::plain_metrics;
use crate::decode::plain_metrics::tests::{
    histogram_point, metric_path_agrees_with_general, number_point, request,
};
use crate::decode::scanned::tests::pretty_printed_lines_read_alike;

#[test]
fn every_metric_line_of_the_example_is_scanned_and_decodes_alike() {
    example_lines_take_the_plain_path("resourceMetrics", scanned_metrics);
}

/// Whitespace anywhere JSON allows it reads as the compact text does.
#[test]
fn pretty_printed_metric_requests_are_scanned_alike() {
    pretty_printed_lines_read_alike("resourceMetrics", scanned_metrics);
}

/// Whatever the scanner accepts of the serde path's generated metric requests, the general
/// path decodes to the same records; both outcomes occur.
#[test]
fn the_scanned_metric_path_agrees_with_the_general_one() {
    metric_path_agrees_with_general(scanned_metrics);
}

/// Shapes the scanner leaves to the serde path (which reads or refuses them), and plain
/// ones it reads as the general path does.
#[test]
fn unusual_metrics_are_left_to_the_serde_path_and_plain_ones_are_not() {
    let gauge = |p: Value| json!({"name": "m", "gauge": {"dataPoints": [p]}});
    let histogram = |p: Value| json!({"name": "h", "histogram": {"dataPoints": [p]}});
    let exemplar = json!([{"timeUnixNano": "1", "asDouble": 1.0,
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}]);
    let left = [
        json!({"name": "m"}),
        json!({"name": "m", "gauge": null}),
        json!({"name": "m", "gauge": {"dataPoints": []}, "sum": {"dataPoints": []}}),
        json!({"name": "m", "summary": {"dataPoints": []}}),
        json!({"name": "m", "exponentialHistogram": {"dataPoints": []}}),
        json!({"name": "m", "metadata": [], "gauge": {"dataPoints": []}}),
        json!({"name": "m", "extra": 1, "gauge": {"dataPoints": []}}),
        gauge(number_point(json!({"asInt": "2"}))),
        gauge(number_point(json!({"asDouble": null}))),
        gauge(number_point(json!({"asDouble": "NaN"}))),
        gauge(number_point(json!({"timeUnixNano": "0"}))),
        gauge(number_point(json!({"exemplars": exemplar}))),
        gauge(number_point(json!({"extra": 1}))),
        histogram(histogram_point(json!({"bucketCounts": ["1"]}))),
        histogram(histogram_point(json!({"count": -1}))),
        histogram(histogram_point(json!({"exemplars": exemplar}))),
        histogram(histogram_point(json!({"explicitBounds": ["0.5", 1.0]}))),
    ];
    for metric in left {
        let text = request(metric.clone());
        assert_eq!(scanned_metrics(&text), None, "{metric}");
        // The serde path reads what it can; either way the general path agrees.
        if let Some(records) = plain_metrics(&text) {
            assert_eq!(Ok(records), general(&text), "{metric}");
        }
    }
    let mut without_value = number_point(json!({}));
    without_value.as_object_mut().unwrap().remove("asDouble");
    let mut int_value = number_point(json!({"asInt": "-7"}));
    int_value.as_object_mut().unwrap().remove("asDouble");
    let scanned = [
        gauge(number_point(json!({}))),
        gauge(without_value),
        gauge(int_value),
        gauge(number_point(
            json!({"asDouble": 3, "exemplars": [], "flags": 1}),
        )),
        gauge(number_point(
            json!({"startTimeUnixNano": 1_699_999_999_000_000_000u64}),
        )),
        json!({"name": "m", "gauge": {"dataPoints": []}}),
        json!({"name": "m", "unit": "By", "description": "d", "gauge": {}}),
        json!({"name": "s", "sum": {"dataPoints": [number_point(json!({}))],
            "aggregationTemporality": 1, "isMonotonic": true}}),
        histogram(histogram_point(json!({}))),
        histogram(histogram_point(
            json!({"sum": null, "min": 0.25, "max": null,
            "bucketCounts": [1, "2", 0], "exemplars": []}),
        )),
        histogram(histogram_point(
            json!({"bucketCounts": [], "explicitBounds": []}),
        )),
    ];
    for metric in scanned {
        let text = request(metric.clone());
        let records = scanned_metrics(&text).unwrap_or_else(|| panic!("{metric}"));
        assert_eq!(Ok(records), general(&text), "{metric}");
    }
}

/// A resource after the metrics it applies to, or a key twice, is left to the serde path;
/// a scope before or after its metrics, and requests without a resource or scope, are read.
#[test]
fn metric_order_and_duplicates_are_checked() {
    let metrics = json!([{"name": "m", "gauge": {"dataPoints": [number_point(json!({}))]}}]);
    // `json!` sorts keys, so these orders are written out.
    let left = [
        format!(r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":{metrics}}}],"resource":{{}}}}]}}"#),
        r#"{"resourceMetrics":[],"resourceMetrics":[]}"#.to_string(),
        r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"a","name":"b","gauge":{}}]}]}]}"#
            .to_string(),
        r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"a","gauge":{"dataPoints":[],"dataPoints":[]}}]}]}]}"#
            .to_string(),
    ];
    for text in left {
        assert_eq!(scanned_metrics(&text), None, "{text}");
    }
    for text in [
        format!(r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":{metrics}}}]}}]}}"#),
        format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":{metrics},"scope":{{"name":"x"}}}}]}}]}}"#
        ),
        format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"scope":{{"name":"x"}},"metrics":{metrics}}}]}}]}}"#
        ),
        format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":{metrics},"scope":{{"name":""}}}}]}}]}}"#
        ),
        json!({"resourceMetrics": []}).to_string(),
        json!({"resourceMetrics": [{"resource": null, "scopeMetrics": [{"scope": null, "metrics": metrics}]}]}).to_string(),
    ] {
        let records = scanned_metrics(&text).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(Ok(records), general(&text), "{text}");
    }
}
