//! Sandbox validation: each entry's preconditions are SQL over a one-row `alert` table and
//! the window the alert fired in, planned once at load in the same sandboxed DataFusion as
//! rules, run only for the candidate entries of an alert.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::entry::{Entry, OnFail};
use super::suggestion::{Check, Validation};
use crate::alert::Alert;
use crate::error::Result;
use crate::model::AlignedBatch;
use crate::rules::{EvalBudget, EvalLimits, ExtraTable, QueryEngine};
use crate::tables::{string_map, string_map_column};

/// Columns of the `alert` table preconditions read.
pub fn alert_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("alertname", DataType::Utf8, false),
                Field::new("severity", DataType::Utf8, false),
                Field::new("value", DataType::Float64, false),
                Field::new("labels", string_map(), false),
                Field::new("annotations", string_map(), false),
                Field::new("evidence", string_map(), false),
            ]))
        })
        .clone()
}

/// The extra table preconditions may read.
pub fn alert_table() -> ExtraTable {
    ("alert", alert_schema())
}

/// The alert as the one row of the `alert` table; evidence values as text.
fn alert_batch(alert: &Alert) -> RecordBatch {
    let label = |k: &str| alert.labels.get(k).cloned().unwrap_or_default();
    let evidence: BTreeMap<String, String> = alert
        .evidence
        .values
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![label("alertname")])),
        Arc::new(StringArray::from(vec![label("severity")])),
        Arc::new(Float64Array::from(vec![alert.evidence.value])),
        string_map_column(&alert.labels),
        string_map_column(&alert.annotations),
        string_map_column(&evidence),
    ];
    RecordBatch::try_new(alert_schema(), columns).expect("alert row matches its schema")
}

/// Every entry's preconditions, planned.
pub struct Preconditions {
    engine: QueryEngine,
    /// Per entry: its preconditions' indices in `engine`, with what a failure does.
    by_entry: Vec<Vec<(usize, String, OnFail)>>,
}

impl Preconditions {
    pub async fn new(entries: &[Entry], limits: EvalLimits) -> Result<Self> {
        let mut queries = Vec::new();
        let mut by_entry = Vec::with_capacity(entries.len());
        for e in entries {
            let mut mine = Vec::new();
            for (p, q) in &e.preconditions {
                mine.push((queries.len(), p.name.clone(), p.on_fail));
                queries.push(q.clone());
            }
            by_entry.push(mine);
        }
        let engine = QueryEngine::with_extra(queries, limits, &[alert_table()]).await?;
        Ok(Preconditions { engine, by_entry })
    }

    /// Adds the columns of the window's tables some precondition reads to `into`.
    pub fn read_columns(&self, into: &mut crate::tables::ColumnSet) {
        self.engine.read_columns(into);
    }

    /// Makes `alert` the one row of the `alert` table for the next [`Preconditions::check`]s.
    pub fn set_alert(&self, alert: &Alert) {
        self.engine.set_extra("alert", alert_batch(alert));
    }

    /// Runs entry `entry`'s preconditions in `batch` against the alert last set with
    /// [`Preconditions::set_alert`]: each result with what a failure does.
    pub async fn check(
        &self,
        entry: usize,
        batch: &AlignedBatch,
        budget: &dyn EvalBudget,
    ) -> Vec<(Validation, OnFail)> {
        let mine = &self.by_entry[entry];
        if mine.is_empty() {
            return Vec::new();
        }
        let which: Vec<usize> = mine.iter().map(|(i, _, _)| *i).collect();
        let results = self.engine.evaluate_some(&which, batch, budget).await;
        mine.iter()
            .zip(results)
            .map(|((i, name, on_fail), rows)| {
                let (result, reason) = match rows {
                    Err(f) => (
                        Check::NotApplicable,
                        format!("could not run: {}", f.message),
                    ),
                    Ok(_) if self.window_empty(*i, batch) => {
                        (Check::NotApplicable, "no window data to check".to_string())
                    }
                    Ok(rows) if rows.is_empty() => {
                        (Check::NotApplicable, "nothing to check".to_string())
                    }
                    Ok(rows) if rows.iter().any(|r| r.value != 0.0) => {
                        (Check::Passed, "holds".to_string())
                    }
                    Ok(_) => (Check::Failed, "does not hold".to_string()),
                };
                let v = Validation {
                    name: name.clone(),
                    result,
                    reason,
                };
                (v, *on_fail)
            })
            .collect()
    }

    /// True when precondition `i` reads only window tables and all of them are empty.
    fn window_empty(&self, i: usize, batch: &AlignedBatch) -> bool {
        let scans = self.engine.scans(i);
        !scans.iter().any(|t| t == "alert")
            && scans
                .iter()
                .all(|t| batch.data_table(t).is_none_or(|b| b.num_rows() == 0))
    }
}
