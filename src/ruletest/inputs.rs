//! A test's inputs as the pipeline's input messages: flat JSON records at their event
//! times, one message per record, in time order.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::notation::{expand_values, parse_series, Sample};
use super::spec::{TestCase, TimedRecord};
use crate::decode::{Encoding, MessageContext};
use crate::model::{duration_nanos, Location};
use crate::source::InputMessage;

/// The messages of `test`, sorted by event time (stable: series, then logs, then spans,
/// each in file order). `place` names the test in locations (`file#test`).
pub fn messages(
    test: &TestCase,
    start_ns: i64,
    interval: Duration,
    place: &str,
) -> Result<Vec<InputMessage>, String> {
    let mut timed: Vec<(i64, String, Value)> = Vec::new();
    for (i, s) in test.input_series.iter().enumerate() {
        let where_ = format!("input_series[{i}]");
        let selector = parse_series(&s.series).map_err(|e| format!("{where_}: {e}"))?;
        let values = expand_values(&s.values).map_err(|e| format!("{where_}: {e}"))?;
        let mut base = Map::new();
        base.insert("signal".into(), json!("metric"));
        base.insert("name".into(), json!(selector.name));
        let mut attributes = Map::new();
        for (k, v) in selector.labels {
            match k.as_str() {
                "service" | "host" => base.insert(k, json!(v)),
                _ => attributes.insert(k, json!(v)),
            };
        }
        if !attributes.is_empty() {
            base.insert("attributes".into(), Value::Object(attributes));
        }
        for (k, sample) in values.into_iter().enumerate() {
            let Sample::Value(v) = sample else { continue };
            if !v.is_finite() {
                return Err(format!(
                    "{where_}: value {v} at step {k}: metric records must be finite"
                ));
            }
            let t = start_ns + duration_nanos(interval) * k as i64;
            let mut rec = base.clone();
            rec.insert("value".into(), json!(v));
            rec.insert("time_unix_nano".into(), json!(t));
            timed.push((t, format!("{where_}[{k}]"), Value::Object(rec)));
        }
    }
    for (list, signal, time_key) in [
        (&test.input_logs, "log", "time_unix_nano"),
        (&test.input_spans, "span", "start_time_unix_nano"),
    ] {
        for (i, r) in list.iter().enumerate() {
            let where_ = format!("input_{signal}s[{i}]");
            timed.push(timed_record(r, signal, time_key, start_ns, where_)?);
        }
    }
    timed.sort_by_key(|(t, _, _)| *t);
    Ok(timed
        .into_iter()
        .map(|(_, where_, v)| {
            let payload = v.to_string().into_bytes();
            InputMessage {
                size: payload.len(),
                payload,
                source: Location::File {
                    path: format!("{place} {where_}"),
                    line: 1,
                },
                context: MessageContext {
                    signal: None,
                    encoding: Encoding::Json,
                    fallback_time: None,
                },
            }
        })
        .collect())
}

fn timed_record(
    r: &TimedRecord,
    signal: &str,
    time_key: &str,
    start_ns: i64,
    where_: String,
) -> Result<(i64, String, Value), String> {
    let t = start_ns + duration_nanos(r.at);
    let mut rec = r.fields.clone();
    for key in [
        "time",
        "time_unix_nano",
        "start_time",
        "start_time_unix_nano",
    ] {
        if rec.contains_key(key) {
            return Err(format!("{where_}: give `at`, not `{key}`"));
        }
    }
    rec.insert("signal".into(), json!(signal));
    rec.insert(time_key.into(), json!(t));
    Ok((t, where_, Value::Object(rec)))
}
