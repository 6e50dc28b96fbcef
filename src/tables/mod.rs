//! The Arrow tables SQL rules read: `logs`, `metrics`, `spans`, `traces` and
//! `window_bounds`. This file holds their schemas; `build.rs` builds their batches.
//!
//! `schemas/tables.json` documents every column; a test keeps it and the schemas here
//! identical. This module only converts decoded
//! records into `RecordBatch`es; it does no I/O.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use crate::model::{AlignedBatch, Window};

mod arrays;
mod build;
mod capacity;
mod columns;
mod family;
mod utf8;

pub use build::{
    logs_batch, logs_table, metrics_batch, metrics_table, spans_batch, spans_table,
    string_map_column, traces_batch, traces_table, window_bounds_batch,
};
pub use columns::{ColumnSet, TableColumns};

/// Names of the tables, in the order rules see them documented.
pub const TABLE_NAMES: [&str; 5] = ["logs", "metrics", "spans", "traces", "window_bounds"];

/// The tables built from a window's records (`window_bounds` is derived from the window).
pub const DATA_TABLES: [&str; 4] = ["logs", "metrics", "spans", "traces"];

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// `Map<Utf8, Utf8>` exactly as arrow's `MapBuilder` produces it.
pub fn string_map() -> DataType {
    let entries = Fields::from(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", DataType::Utf8, true),
    ]);
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    )
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// Columns of the `logs` table.
pub fn logs_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("time", timestamp(), false),
                Field::new("observed_time", timestamp(), true),
                utf8("trace_id", true),
                utf8("span_id", true),
                utf8("service", true),
                utf8("host", true),
                Field::new("severity_number", DataType::Int32, false),
                utf8("severity_text", true),
                utf8("body", false),
                utf8("scope", true),
                Field::new("resource", string_map(), false),
                Field::new("attributes", string_map(), false),
                utf8("template_id", true),
                utf8("template", true),
                Field::new("params", list_of(DataType::Utf8), false),
                Field::new("fields", string_map(), false),
                utf8("signature", true),
                Field::new("signature_fields", string_map(), false),
            ]))
        })
        .clone()
}

/// Columns of the `metrics` table: one row per data point.
pub fn metrics_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("time", timestamp(), false),
                Field::new("start_time", timestamp(), true),
                utf8("service", true),
                utf8("host", true),
                utf8("name", false),
                utf8("description", true),
                utf8("unit", true),
                utf8("kind", false),
                utf8("temporality", true),
                Field::new("is_monotonic", DataType::Boolean, true),
                Field::new("value", DataType::Float64, true),
                Field::new("count", DataType::UInt64, true),
                Field::new("sum", DataType::Float64, true),
                Field::new("min", DataType::Float64, true),
                Field::new("max", DataType::Float64, true),
                Field::new("bucket_bounds", list_of(DataType::Float64), false),
                Field::new("bucket_counts", list_of(DataType::UInt64), false),
                Field::new("quantiles", list_of(DataType::Float64), false),
                Field::new("quantile_values", list_of(DataType::Float64), false),
                utf8("trace_id", true),
                utf8("span_id", true),
                utf8("scope", true),
                Field::new("resource", string_map(), false),
                Field::new("attributes", string_map(), false),
            ]))
        })
        .clone()
}

/// Columns of the `spans` table.
pub fn spans_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("start_time", timestamp(), false),
                Field::new("end_time", timestamp(), false),
                Field::new("duration_ms", DataType::Float64, false),
                utf8("trace_id", false),
                utf8("span_id", false),
                utf8("parent_span_id", true),
                Field::new("is_root", DataType::Boolean, false),
                utf8("service", true),
                utf8("host", true),
                utf8("name", false),
                utf8("kind", false),
                utf8("status", false),
                utf8("status_message", true),
                Field::new("event_count", DataType::UInt32, false),
                utf8("scope", true),
                Field::new("resource", string_map(), false),
                Field::new("attributes", string_map(), false),
                utf8("parent_service", true),
                Field::new("parent_duration_ms", DataType::Float64, true),
                Field::new("child_count", DataType::UInt32, false),
                Field::new("child_ms", DataType::Float64, false),
                Field::new("remote_child_count", DataType::UInt32, false),
            ]))
        })
        .clone()
}

/// Columns of the `traces` table: one row per trace closed into the window.
pub fn traces_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                utf8("trace_id", false),
                Field::new("start_time", timestamp(), false),
                Field::new("end_time", timestamp(), false),
                Field::new("duration_ms", DataType::Float64, false),
                Field::new("has_root", DataType::Boolean, false),
                utf8("root_service", true),
                utf8("root_name", true),
                Field::new("span_count", DataType::UInt32, false),
                Field::new("error_count", DataType::UInt32, false),
                Field::new("log_count", DataType::UInt32, false),
                Field::new("error_log_count", DataType::UInt32, false),
                Field::new("service_count", DataType::UInt32, false),
                utf8("bottleneck_span", true),
                utf8("bottleneck_service", true),
                Field::new("bottleneck_ms", DataType::Float64, true),
                Field::new("bottleneck_share", DataType::Float64, true),
                Field::new("closed_early", DataType::Boolean, false),
            ]))
        })
        .clone()
}

/// Columns of the one-row `window_bounds` table: the window being evaluated.
pub fn window_bounds_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("window_start", timestamp(), false),
                Field::new("window_end", timestamp(), false),
                Field::new("evaluated_early", DataType::Boolean, false),
            ]))
        })
        .clone()
}

/// A window with no rows: what a check over the window sees when there is no window data
/// (an alert evaluated on its own, as in the knowledge base's evaluation).
pub fn empty_batch(window: Window) -> AlignedBatch {
    let empty = |schema: SchemaRef| RecordBatch::new_empty(schema);
    AlignedBatch {
        window,
        logs: empty(logs_schema()),
        metrics: empty(metrics_schema()),
        spans: empty(spans_schema()),
        traces: empty(traces_schema()),
        acks: Vec::new(),
        early: false,
    }
}

/// The table `name` of a window's batch, `window_bounds` included.
pub fn table_of(batch: &AlignedBatch, name: &str) -> Option<RecordBatch> {
    match name {
        "window_bounds" => Some(window_bounds_batch(
            batch.window.start,
            batch.window.end,
            batch.early,
        )),
        _ => batch.data_table(name).cloned(),
    }
}

pub fn schema_of(table: &str) -> Option<SchemaRef> {
    match table {
        "logs" => Some(logs_schema()),
        "metrics" => Some(metrics_schema()),
        "spans" => Some(spans_schema()),
        "traces" => Some(traces_schema()),
        "window_bounds" => Some(window_bounds_schema()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `schemas/tables.json` is the user-facing definition; the code must agree with it.
    #[test]
    fn tables_match_documented_schema() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/tables.json")).unwrap();
        for table in TABLE_NAMES {
            let schema = schema_of(table).unwrap();
            let documented = doc["tables"][table]["columns"]
                .as_array()
                .unwrap_or_else(|| panic!("table {table} is not documented"));
            let documented: Vec<(String, String, bool)> = documented
                .iter()
                .map(|c| {
                    assert!(
                        c["description"].as_str().is_some_and(|d| !d.is_empty()),
                        "{table}.{} has no description",
                        c["name"]
                    );
                    (
                        c["name"].as_str().unwrap().to_string(),
                        c["type"].as_str().unwrap().to_string(),
                        c["nullable"].as_bool().unwrap(),
                    )
                })
                .collect();
            let actual: Vec<(String, String, bool)> = schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), type_name(f.data_type()), f.is_nullable()))
                .collect();
            assert_eq!(actual, documented, "table {table}");
        }
    }

    fn type_name(t: &DataType) -> String {
        match t {
            DataType::Timestamp(_, _) => "timestamp_ns_utc".into(),
            DataType::Utf8 => "string".into(),
            DataType::Float64 => "float64".into(),
            DataType::Int32 => "int32".into(),
            DataType::UInt32 => "uint32".into(),
            DataType::UInt64 => "uint64".into(),
            DataType::Boolean => "boolean".into(),
            DataType::Map(_, _) => "map<string,string>".into(),
            DataType::List(f) => format!("list<{}>", type_name(f.data_type())),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn empty_batches_have_the_declared_schemas() {
        assert_eq!(logs_batch(&[]).schema(), logs_schema());
        assert_eq!(metrics_batch(&[]).schema(), metrics_schema());
        assert_eq!(spans_batch(&[]).schema(), spans_schema());
        assert_eq!(traces_batch(&[]).schema(), traces_schema());
    }
}
