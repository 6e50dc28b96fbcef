//! Result batches of a query into [`QueryRow`]s: `value` is the value, `evidence_*` columns
//! evidence, `sample_trace_ids` sample traces, `sample_time` the sample's time, every other
//! column a label.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};

use super::columns;
use crate::model::{EventTime, QueryRow};

/// Most trace ids one row keeps as evidence.
pub const MAX_SAMPLE_TRACE_IDS: usize = 10;

fn as_strings(col: &dyn Array) -> Result<StringArray, String> {
    let c = cast(col, &DataType::Utf8).map_err(|e| e.to_string())?;
    Ok(c.as_string::<i32>().clone())
}

fn trace_ids(col: &dyn Array, row: usize) -> Result<Vec<String>, String> {
    if col.is_null(row) {
        return Ok(Vec::new());
    }
    let values = match col.data_type() {
        DataType::List(_) => col.as_list::<i32>().value(row),
        DataType::LargeList(_) => col.as_list::<i64>().value(row),
        _ => col.slice(row, 1),
    };
    let strings = as_strings(&values)?;
    Ok(strings
        .iter()
        .flatten()
        .take(MAX_SAMPLE_TRACE_IDS)
        .map(str::to_string)
        .collect())
}

/// The columns of a result batch, by meaning.
#[derive(Default)]
struct Columns {
    labels: Vec<(String, StringArray)>,
    evidence: Vec<(String, ArrayRef)>,
    samples: Option<ArrayRef>,
    times: Option<ArrayRef>,
}

fn classify(batch: &RecordBatch, value_idx: usize) -> Result<Columns, String> {
    let mut cols = Columns::default();
    for (i, field) in batch.schema().fields().iter().enumerate() {
        let name = field.name().as_str();
        let col = batch.column(i);
        if i == value_idx {
            continue;
        } else if name == columns::SAMPLE_TIME {
            let ts = cast(col, &DataType::Timestamp(TimeUnit::Nanosecond, None))
                .and_then(|c| cast(&c, &DataType::Int64))
                .map_err(|e| format!("column `sample_time` is not a time: {e}"))?;
            cols.times = Some(ts);
        } else if name == columns::SAMPLE_TRACE_IDS {
            cols.samples = Some(col.clone());
        } else if let Some(key) = name.strip_prefix(columns::EVIDENCE_PREFIX) {
            let t = field.data_type();
            let col = if t.is_integer() {
                cast(col, &DataType::Int64).map_err(|e| e.to_string())?
            } else if t.is_numeric() {
                cast(col, &DataType::Float64).map_err(|e| e.to_string())?
            } else {
                Arc::new(as_strings(col)?)
            };
            cols.evidence.push((key.to_string(), col));
        } else {
            cols.labels.push((name.to_string(), as_strings(col)?));
        }
    }
    Ok(cols)
}

fn evidence_value(c: &ArrayRef, row: usize) -> serde_json::Value {
    match c.data_type() {
        DataType::Int64 => serde_json::json!(c.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => serde_json::json!(c.as_primitive::<Float64Type>().value(row)),
        _ => serde_json::json!(c.as_string::<i32>().value(row)),
    }
}

/// Appends the rows of `batch` with a finite `value` to `out`.
pub(super) fn rows_of(batch: &RecordBatch, out: &mut Vec<QueryRow>) -> Result<(), String> {
    let value_idx = batch
        .schema()
        .index_of(columns::VALUE)
        .map_err(|_| "result has no `value` column".to_string())?;
    let values = cast(batch.column(value_idx), &DataType::Float64).map_err(|e| e.to_string())?;
    let values: &Float64Array = values.as_primitive();
    let cols = classify(batch, value_idx)?;
    for row in 0..batch.num_rows() {
        if values.is_null(row) || !values.value(row).is_finite() {
            continue;
        }
        out.push(QueryRow {
            labels: cols
                .labels
                .iter()
                .filter(|(_, c)| !c.is_null(row))
                .map(|(k, c)| (k.clone(), c.value(row).to_string()))
                .collect(),
            value: values.value(row),
            evidence: cols
                .evidence
                .iter()
                .filter(|(_, c)| !c.is_null(row))
                .map(|(k, c)| (k.clone(), evidence_value(c, row)))
                .collect(),
            trace_ids: match &cols.samples {
                Some(c) => trace_ids(c.as_ref(), row)?,
                None => Vec::new(),
            },
            time: cols
                .times
                .as_ref()
                .filter(|c| !c.is_null(row))
                .map(|c| EventTime(c.as_primitive::<Int64Type>().value(row))),
        });
    }
    Ok(())
}

/// Rows by labels, then sample time, value, sample traces and evidence: a total order, so
/// a query's rows come out the same whatever order its plan produced them in.
pub(crate) fn total_order(a: &QueryRow, b: &QueryRow) -> std::cmp::Ordering {
    let evidence = |r: &QueryRow| serde_json::to_string(&r.evidence).unwrap_or_default();
    a.labels
        .cmp(&b.labels)
        .then_with(|| a.time.cmp(&b.time))
        .then_with(|| a.value.total_cmp(&b.value))
        .then_with(|| a.trace_ids.cmp(&b.trace_ids))
        .then_with(|| evidence(a).cmp(&evidence(b)))
}
