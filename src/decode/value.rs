//! OTLP `AnyValue`s and attribute lists as the strings and JSON the tables hold.

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};

use crate::model::Attributes;

/// An OTLP attribute with a string value (what agents and the pipeline's own telemetry
/// attach to what they send).
pub fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The JSON form of a value (bytes as base64).
pub(crate) fn any_to_json(value: Option<&Value>) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        None => J::Null,
        Some(Value::StringValue(s)) => J::String(s.clone()),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::IntValue(i)) => J::from(*i),
        Some(Value::DoubleValue(d)) => J::from(*d),
        Some(Value::BytesValue(b)) => {
            J::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(Value::ArrayValue(a)) => J::Array(
            a.values
                .iter()
                .map(|v| any_to_json(v.value.as_ref()))
                .collect(),
        ),
        // Indexes into a profile's string table; meaningless outside profiles.
        Some(Value::StringValueStrindex(i)) => J::from(*i),
        Some(Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        any_to_json(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect(),
        ),
    }
}

/// Takes the strings of a decoded request instead of copying them: every key and string
/// value of a record would otherwise be allocated twice on the way in.
pub(crate) fn attributes(list: Vec<KeyValue>) -> Attributes {
    list.into_iter()
        .map(|kv| (kv.key, any_into_string(kv.value)))
        .collect()
}

/// Renders a value for an attribute map: scalars as text, arrays and maps as JSON. Owned,
/// so a string value is moved, not copied.
fn any_into_string(value: Option<AnyValue>) -> String {
    match value.and_then(|v| v.value) {
        None => String::new(),
        Some(Value::StringValue(s)) => s,
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => any_to_json(Some(&other)).to_string(),
    }
}

/// A JSON scalar as attribute text; structured values as JSON.
pub(crate) fn json_to_string(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
