//! Evaluating rules with DataFusion. Each rule is parsed, checked and planned once, at load,
//! in its own `SessionContext` with its own memory pool; the window's tables are providers
//! whose data is swapped before each evaluation, so the stored plans read the new batch.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::datasource::{MemTable, TableType};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::load::rule_error;
use super::{columns, sandbox, Param, Rule};
use crate::align::AlignedBatch;
use crate::error::{Error, Result};
use crate::model::EventTime;
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
    /// The row's `sample_time` column: when a detector source's sample was taken.
    pub time: Option<EventTime>,
}

/// Most trace ids one finding keeps as evidence.
pub const MAX_SAMPLE_TRACE_IDS: usize = 10;

/// A table whose contents are replaced for every window.
#[derive(Debug)]
struct SwapTable {
    schema: SchemaRef,
    batch: RwLock<RecordBatch>,
}

#[async_trait]
impl TableProvider for SwapTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let batch = self.batch.read().expect("table lock").clone();
        MemTable::try_new(self.schema.clone(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// Per-rule resource limits.
#[derive(Debug, Clone, Copy)]
pub struct EvalLimits {
    /// Memory one rule's evaluation may reserve (sorts, aggregations, joins).
    pub max_memory_bytes: usize,
    /// Wall time one rule's evaluation of one window may take.
    pub timeout: Duration,
}

impl Default for EvalLimits {
    fn default() -> Self {
        EvalLimits {
            max_memory_bytes: 64 << 20,
            timeout: Duration::from_secs(5),
        }
    }
}

struct Compiled {
    rule: Arc<Rule>,
    ctx: SessionContext,
    plan: LogicalPlan,
    /// Tables of its own for a rule with a longer `window` (they hold several batches).
    own_tables: Option<Vec<(&'static str, Arc<SwapTable>)>>,
    /// Set while an evaluation runs, including one abandoned after its timeout: DataFusion
    /// cannot interrupt a CPU-bound operator, so the abandoned task finishes in the
    /// background and the rule is skipped until it has.
    busy: Arc<AtomicBool>,
}

/// Runs every rule on each window's tables.
pub struct RuleEngine {
    compiled: Vec<Compiled>,
    tables: Vec<(&'static str, Arc<SwapTable>)>,
    limits: EvalLimits,
}

/// A rule that failed on a batch; the others still ran.
#[derive(Debug)]
pub struct RuleFailure {
    pub rule_id: String,
    pub message: String,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

fn new_tables() -> Vec<(&'static str, Arc<SwapTable>)> {
    tables::TABLE_NAMES
        .iter()
        .map(|name| {
            let schema = tables::schema_of(name).expect("known table");
            let table = SwapTable {
                batch: RwLock::new(RecordBatch::new_empty(schema.clone())),
                schema,
            };
            (*name, Arc::new(table))
        })
        .collect()
}

fn context(
    tables: &[(&'static str, Arc<SwapTable>)],
    limits: EvalLimits,
) -> Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limits.max_memory_bytes, 1.0)
        .build_arc()
        .map_err(internal)?;
    // One partition: the batches are small and evaluation order stays deterministic.
    let config = SessionConfig::new().with_target_partitions(1);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    for (name, table) in tables {
        ctx.register_table(*name, table.clone()).map_err(internal)?;
    }
    Ok(ctx)
}

fn scalar(p: &Param) -> ScalarValue {
    match p {
        Param::Int(i) => ScalarValue::Int64(Some(*i)),
        Param::Float(f) => ScalarValue::Float64(Some(*f)),
        Param::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Param::Text(s) => ScalarValue::Utf8(Some(s.clone())),
    }
}

/// Parses, binds parameters, checks the sandbox and the result shape.
async fn plan_in(ctx: &SessionContext, rule: &Rule) -> Result<LogicalPlan> {
    let fail = |m: String| rule_error(&rule.path, rule.sql_line, m);
    let df = ctx
        .sql_with_options(&rule.sql, sandbox::sql_options())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let values: HashMap<String, ScalarValue> = rule
        .params
        .iter()
        .map(|(k, v)| (k.clone(), scalar(v)))
        .collect();
    let plan = df
        .logical_plan()
        .clone()
        .with_param_values(ParamValues::from(values))
        .map_err(|e| fail(e.to_string()))?;
    sandbox::check_plan(&plan).map_err(fail)?;
    let schema = plan.schema();
    let value = schema
        .fields()
        .iter()
        .find(|f| f.name() == columns::VALUE)
        .ok_or_else(|| fail("the query must return a numeric column named `value`".into()))?;
    if !value.data_type().is_numeric() && value.data_type() != &DataType::Null {
        return Err(fail(format!(
            "column `value` is {}, expected a number",
            value.data_type()
        )));
    }
    for f in schema.fields() {
        if f.name() == columns::SAMPLE_TRACE_IDS {
            let ok = match f.data_type() {
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => true,
                DataType::List(i) | DataType::LargeList(i) => matches!(
                    i.data_type(),
                    DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                ),
                _ => false,
            };
            if !ok {
                return Err(fail(
                    "column `sample_trace_ids` must be a string or a list of strings".into(),
                ));
            }
        }
    }
    Ok(plan)
}

/// Checks and plans one rule against empty tables, for `faultline check`.
pub async fn plan_rule(rule: &Rule) -> Result<()> {
    let ctx = context(&new_tables(), EvalLimits::default())?;
    plan_in(&ctx, rule).await.map(|_| ())
}

impl RuleEngine {
    /// Plans every rule once.
    pub async fn new(rules: Vec<Rule>, limits: EvalLimits) -> Result<Self> {
        let tables = new_tables();
        let mut compiled = Vec::with_capacity(rules.len());
        for rule in rules {
            let own_tables = rule.window.map(|_| new_tables());
            let ctx = context(own_tables.as_deref().unwrap_or(&tables), limits)?;
            let plan = plan_in(&ctx, &rule).await?;
            compiled.push(Compiled {
                rule: Arc::new(rule),
                ctx,
                plan,
                own_tables,
                busy: Arc::new(AtomicBool::new(false)),
            });
        }
        Ok(RuleEngine {
            compiled,
            tables,
            limits,
        })
    }

    pub fn rules(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.compiled.iter().map(|c| &c.rule)
    }

    pub fn len(&self) -> usize {
        self.compiled.len()
    }

    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }

    /// Evaluates every rule on one window, in rule order. `history` holds the shard's
    /// earlier batches (oldest first) for rules with a longer `window`. A rule that fails at
    /// run time (an error, its memory limit, its timeout) is reported and skipped; the others
    /// still run. Each evaluation runs as its own task, so a runaway query cannot hold up the
    /// others (on a multi-threaded runtime).
    pub async fn evaluate(
        &self,
        batch: &AlignedBatch,
        history: &[AlignedBatch],
    ) -> (Vec<Finding>, Vec<RuleFailure>) {
        for (name, table) in &self.tables {
            *table.batch.write().expect("table lock") = batch.table(name).expect("known table");
        }
        let mut findings = Vec::new();
        let mut failures = Vec::new();
        for c in &self.compiled {
            let fail = |message: String| RuleFailure {
                rule_id: c.rule.id.clone(),
                message,
            };
            if let (Some(tables), Some(window)) = (&c.own_tables, c.rule.window) {
                if let Err(e) = fill_window(tables, batch, history, window) {
                    failures.push(fail(e));
                    continue;
                }
            }
            if c.busy.swap(true, Ordering::AcqRel) {
                failures.push(fail(
                    "skipped: an earlier evaluation that exceeded the timeout is still running"
                        .into(),
                ));
                continue;
            }
            // The scan copies the table contents when the physical plan is built, so a later
            // window's swap cannot change what this evaluation reads.
            let task = tokio::spawn(run(
                c.rule.clone(),
                c.ctx.clone(),
                c.plan.clone(),
                c.busy.clone(),
            ));
            match tokio::time::timeout(self.limits.timeout, task).await {
                Ok(Ok(Ok(mut f))) => findings.append(&mut f),
                Ok(Ok(Err(message))) => failures.push(fail(message)),
                Ok(Err(join)) => failures.push(fail(format!("evaluation panicked: {join}"))),
                Err(_) => failures.push(fail(format!(
                    "evaluation exceeded {} and was abandoned",
                    humantime::format_duration(self.limits.timeout)
                ))),
            }
        }
        (findings, failures)
    }
}

/// Fills a longer-window rule's tables with the batches of the last `window` of event time
/// (those starting at or after `batch.window.end - window`) and this one.
fn fill_window(
    tables: &[(&'static str, Arc<SwapTable>)],
    batch: &AlignedBatch,
    history: &[AlignedBatch],
    window: Duration,
) -> Result<(), String> {
    let from = batch.window.end.saturating_sub(window);
    let batches: Vec<&AlignedBatch> = history
        .iter()
        .filter(|b| b.window.start >= from && b.window.end <= batch.window.start)
        .chain(std::iter::once(batch))
        .collect();
    let start = batches
        .first()
        .map_or(batch.window.start, |b| b.window.start);
    for (name, table) in tables {
        let data = if *name == "window_bounds" {
            tables::window_bounds_batch(start, batch.window.end, batch.early)
        } else {
            let parts: Vec<RecordBatch> = batches
                .iter()
                .map(|b| b.table(name).expect("known table"))
                .collect();
            concat_batches(&table.schema, &parts).map_err(|e| e.to_string())?
        };
        *table.batch.write().expect("table lock") = data;
    }
    Ok(())
}

async fn run(
    rule: Arc<Rule>,
    ctx: SessionContext,
    plan: LogicalPlan,
    busy: Arc<AtomicBool>,
) -> Result<Vec<Finding>, String> {
    let result = async {
        let df = ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| e.to_string())?;
        let batches = df.collect().await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for b in &batches {
            rows_to_findings(&rule, b, &mut out)?;
        }
        // Rows come in whatever order the plan produced; sort for deterministic output.
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
    .await;
    busy.store(false, Ordering::Release);
    result
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
    let mut times = None;
    for (i, field) in schema.fields().iter().enumerate() {
        let name = field.name().as_str();
        if i == value_idx {
            continue;
        } else if name == columns::SAMPLE_TIME {
            let ts = cast(
                batch.column(i),
                &DataType::Timestamp(TimeUnit::Nanosecond, None),
            )
            .and_then(|c| cast(&c, &DataType::Int64))
            .map_err(|e| format!("column `sample_time` is not a time: {e}"))?;
            times = Some(ts);
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
            time: times
                .as_ref()
                .filter(|c| !c.is_null(row))
                .map(|c| EventTime(c.as_primitive::<Int64Type>().value(row))),
        });
    }
    Ok(())
}
