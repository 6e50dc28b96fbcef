//! Evaluating rules with DataFusion over the tables of one window.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SQLOptions, SessionContext};

use super::{columns, load, Rule};
use crate::align::AlignedBatch;
use crate::error::{Error, Result};
use crate::tables;

/// One result row of a rule: an alert instance before the lifecycle.
#[derive(Debug, Clone)]
pub struct Finding {
    pub rule: Arc<Rule>,
    /// Label columns of the row (string rendering of each non-special column).
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// `evidence_*` columns, prefix removed.
    pub evidence: BTreeMap<String, serde_json::Value>,
    pub trace_ids: Vec<String>,
}

/// Most trace ids one finding keeps as evidence.
pub const MAX_SAMPLE_TRACE_IDS: usize = 10;

/// Only queries: no DDL (so no `CREATE EXTERNAL TABLE`), no DML, no `SET`/`COPY`-like
/// statements.
pub(crate) fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

fn register(ctx: &SessionContext, name: &str, batch: RecordBatch) -> Result<()> {
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(internal)?;
    ctx.deregister_table(name).map_err(internal)?;
    ctx.register_table(name, Arc::new(table))
        .map_err(internal)?;
    Ok(())
}

pub(crate) fn register_empty_tables(ctx: &SessionContext) -> Result<()> {
    for name in tables::TABLE_NAMES {
        let schema = tables::schema_of(name).expect("known table");
        register(ctx, name, RecordBatch::new_empty(schema))?;
    }
    Ok(())
}

/// Runs every rule on each window's tables.
pub struct RuleEngine {
    rules: Vec<Arc<Rule>>,
    ctx: SessionContext,
}

/// A rule that failed on a batch; the others still ran.
#[derive(Debug)]
pub struct RuleFailure {
    pub rule_id: String,
    pub message: String,
}

impl RuleEngine {
    pub async fn new(rules: Vec<Arc<Rule>>) -> Result<Self> {
        let ctx = SessionContext::new();
        register_empty_tables(&ctx)?;
        for rule in &rules {
            load::validate(&ctx, rule).await?;
        }
        Ok(RuleEngine { rules, ctx })
    }

    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    /// Evaluates every rule on one window, in rule order. A rule that fails at run time is
    /// reported and skipped; it does not stop the others.
    pub async fn evaluate(&self, batch: &AlignedBatch) -> (Vec<Finding>, Vec<RuleFailure>) {
        let mut findings = Vec::new();
        let mut failures = Vec::new();
        for name in tables::TABLE_NAMES {
            let table = batch.table(name).expect("known table");
            if let Err(e) = register(&self.ctx, name, table) {
                failures.push(RuleFailure {
                    rule_id: "*".into(),
                    message: e.to_string(),
                });
                return (findings, failures);
            }
        }
        for rule in &self.rules {
            match self.run(rule).await {
                Ok(mut f) => findings.append(&mut f),
                Err(message) => failures.push(RuleFailure {
                    rule_id: rule.id.clone(),
                    message,
                }),
            }
        }
        (findings, failures)
    }

    async fn run(&self, rule: &Arc<Rule>) -> Result<Vec<Finding>, String> {
        let df = self
            .ctx
            .sql_with_options(&rule.sql, sql_options())
            .await
            .map_err(|e| e.to_string())?;
        let batches = df.collect().await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for b in &batches {
            rows_to_findings(rule, b, &mut out)?;
        }
        // Rows come in whatever order the plan produced; sort for deterministic output.
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
}

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

fn rows_to_findings(
    rule: &Arc<Rule>,
    batch: &RecordBatch,
    out: &mut Vec<Finding>,
) -> Result<(), String> {
    let schema = batch.schema();
    let value_idx = schema
        .index_of(columns::VALUE)
        .map_err(|_| "result has no `value` column".to_string())?;
    let values = cast(batch.column(value_idx), &DataType::Float64).map_err(|e| e.to_string())?;
    let values: &Float64Array = values.as_primitive();
    let mut labels = Vec::new();
    let mut evidence = Vec::new();
    let mut samples = None;
    for (i, field) in schema.fields().iter().enumerate() {
        let name = field.name().as_str();
        if i == value_idx {
            continue;
        } else if name == columns::SAMPLE_TRACE_IDS {
            samples = Some(batch.column(i).clone());
        } else if let Some(key) = name.strip_prefix(columns::EVIDENCE_PREFIX) {
            let col = if field.data_type().is_integer() {
                cast(batch.column(i), &DataType::Int64).map_err(|e| e.to_string())?
            } else if field.data_type().is_numeric() {
                cast(batch.column(i), &DataType::Float64).map_err(|e| e.to_string())?
            } else {
                Arc::new(as_strings(batch.column(i))?)
            };
            evidence.push((key.to_string(), col));
        } else {
            labels.push((name.to_string(), as_strings(batch.column(i))?));
        }
    }
    for row in 0..batch.num_rows() {
        if values.is_null(row) || !values.value(row).is_finite() {
            continue;
        }
        let labels = labels
            .iter()
            .filter(|(_, c)| !c.is_null(row))
            .map(|(k, c)| (k.clone(), c.value(row).to_string()))
            .collect();
        let evidence = evidence
            .iter()
            .filter(|(_, c)| !c.is_null(row))
            .map(|(k, c)| {
                let v = match c.data_type() {
                    DataType::Int64 => serde_json::json!(c.as_primitive::<Int64Type>().value(row)),
                    DataType::Float64 => {
                        serde_json::json!(c.as_primitive::<Float64Type>().value(row))
                    }
                    _ => serde_json::json!(c.as_string::<i32>().value(row)),
                };
                (k.clone(), v)
            })
            .collect();
        out.push(Finding {
            rule: rule.clone(),
            labels,
            value: values.value(row),
            evidence,
            trace_ids: match &samples {
                Some(c) => trace_ids(c.as_ref(), row)?,
                None => Vec::new(),
            },
        });
    }
    Ok(())
}
