//! Evaluating queries with DataFusion. Each query (a rule's, or a detector's source) is
//! parsed, checked and optimized once, at load, in its own `SessionContext` with its own
//! memory pool, and physically planned once per size class of its tables (`plans`); the
//! window's tables are swapped before each evaluation, and a stored plan (its state reset)
//! executes on a snapshot of them (`scan`).
//!
//! What bounds an evaluation is deterministic — the memory pool, and the rows the window's
//! tables hold — so the same input gives the same rows on any machine at any load. A
//! wall-clock budget is the driver's choice ([`EvalBudget`]): file runs use [`Unbounded`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::future::BoxFuture;
use futures::StreamExt;

use super::plans::Plans;
use super::position::query_error;
use super::scan::{SwapTable, WindowData};
use super::{columns, rows, sandbox};
use crate::error::{Error, Result};
use crate::model::{AlignedBatch, Param, Query, QueryRow};
use crate::tables::{self, ColumnSet};

pub use super::rows::MAX_SAMPLE_TRACE_IDS;

/// Per-query resource limits that do not depend on the machine.
#[derive(Debug, Clone, Copy)]
pub struct EvalLimits {
    /// Memory one query's evaluation may reserve (sorts, aggregations, joins).
    pub max_memory_bytes: usize,
}

impl Default for EvalLimits {
    fn default() -> Self {
        EvalLimits {
            max_memory_bytes: 64 << 20,
        }
    }
}

/// One query's evaluation of one window, as the engine hands it to an [`EvalBudget`].
pub type Evaluation = BoxFuture<'static, Result<Vec<QueryRow>, String>>;

/// What an evaluation may take besides its [`EvalLimits`]. The engine stays pure; a driver
/// that wants a wall-clock limit brings one (Kafka mode), and its outcome is reported as
/// [`FailureKind::OverBudget`].
#[async_trait]
pub trait EvalBudget: Send + Sync {
    /// Runs `evaluation`; `Err(None)` when the budget abandoned it (it may finish in the
    /// background, the query is skipped until it has), `Err(Some(message))` when it failed.
    /// `query_id` names the rule or detector (a budget may time it).
    async fn run(
        &self,
        query_id: &str,
        evaluation: Evaluation,
    ) -> Result<Vec<QueryRow>, Option<String>>;

    /// Evaluations of one window this budget runs at once (its `run` must then execute
    /// them on tasks of their own to gain anything). Results keep the queries' order.
    fn parallelism(&self) -> usize {
        1
    }
}

/// No budget: every evaluation runs to its end, inline. What file runs and replays use, so
/// their output never depends on machine speed or load.
pub struct Unbounded;

#[async_trait]
impl EvalBudget for Unbounded {
    async fn run(&self, _: &str, evaluation: Evaluation) -> Result<Vec<QueryRow>, Option<String>> {
        evaluation.await.map_err(Some)
    }
}

struct Compiled {
    query: Query,
    /// Its stored plans: each evaluation executes a copy of one, its state reset.
    plans: Arc<Plans>,
    /// The tables the plan reads.
    scans: Vec<String>,
    /// Tables of its own for a query with a longer `window` (they hold several batches).
    own_tables: Option<Vec<(&'static str, Arc<SwapTable>)>>,
    /// Set while an evaluation runs, including one a budget abandoned: DataFusion cannot
    /// interrupt a CPU-bound operator, so it finishes in the background and the query is
    /// skipped until it has.
    busy: Arc<AtomicBool>,
}

/// Runs queries on each window's tables (and on extra tables of the caller's, such as the
/// knowledge base's one-row `alert`).
pub struct QueryEngine {
    compiled: Vec<Compiled>,
    tables: Vec<(&'static str, Arc<SwapTable>)>,
}

/// An extra table a query may read besides the window's: its name and schema.
pub type ExtraTable = (&'static str, SchemaRef);

/// Why a query produced nothing for a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// It failed: an error, or its memory limit.
    Error,
    /// The driver's wall-clock budget abandoned it (Kafka mode only).
    OverBudget,
    /// Skipped: an evaluation the budget abandoned earlier is still running.
    Busy,
}

/// A query that failed on a batch; the others still ran.
#[derive(Debug)]
pub struct RuleFailure {
    pub rule_id: String,
    pub kind: FailureKind,
    pub message: String,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

fn new_tables(extra: &[ExtraTable]) -> Vec<(&'static str, Arc<SwapTable>)> {
    tables::TABLE_NAMES
        .iter()
        .map(|name| (*name, tables::schema_of(name).expect("known table")))
        .chain(extra.iter().cloned())
        .map(|(name, schema)| (name, Arc::new(SwapTable::new(name, schema))))
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
    let ctx = SessionContext::new_with_config_rt(session_config(), runtime);
    for (name, table) in tables {
        ctx.register_table(*name, table.clone()).map_err(internal)?;
    }
    Ok(ctx)
}

/// How rules are planned and run.
pub(super) fn session_config() -> SessionConfig {
    // One partition: the batches are small and evaluation order stays deterministic.
    let mut config = SessionConfig::new().with_target_partitions(1);
    // A dynamic filter is state a stored plan's operators share with each other, which
    // resetting the plan between windows does not clear; the window's tables are in memory,
    // so such filters would prune nothing anyway.
    let optimizer = &mut config.options_mut().optimizer;
    optimizer.enable_dynamic_filter_pushdown = false;
    optimizer.enable_join_dynamic_filter_pushdown = false;
    optimizer.enable_topk_dynamic_filter_pushdown = false;
    optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    config
}

fn scalar(p: &Param) -> ScalarValue {
    match p {
        Param::Int(i) => ScalarValue::Int64(Some(*i)),
        Param::Float(f) => ScalarValue::Float64(Some(*f)),
        Param::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Param::Text(s) => ScalarValue::Utf8(Some(s.clone())),
    }
}

/// Parses, binds parameters, checks the sandbox and the result shape; the plan and the
/// tables it reads.
async fn plan_in(
    ctx: &SessionContext,
    query: &Query,
    allowed: &[&str],
) -> Result<(LogicalPlan, Vec<String>)> {
    let values: HashMap<String, ScalarValue> = query
        .params
        .iter()
        .map(|(k, v)| (k.clone(), scalar(v)))
        .collect();
    let plan = plan_unbound_in(ctx, query, allowed)
        .await?
        .with_param_values(ParamValues::from(values))
        .map_err(|e| query_error(query, &e.to_string()))?;
    let scans = sandbox::check_plan(&plan, allowed).map_err(|m| query_error(query, &m))?;
    check_columns(&plan).map_err(|m| query_error(query, &m))?;
    Ok((plan, scans))
}

/// Parses and plans with parameters left as placeholders, and checks the sandbox.
async fn plan_unbound_in(
    ctx: &SessionContext,
    query: &Query,
    allowed: &[&str],
) -> Result<LogicalPlan> {
    let fail = |m: String| query_error(query, &m);
    let df = ctx
        .sql_with_options(&query.sql, sandbox::sql_options())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let plan = df.logical_plan().clone();
    sandbox::check_plan(&plan, allowed).map_err(fail)?;
    Ok(plan)
}

/// Checks a query whose parameters are unknown (its rule's header did not parse): syntax,
/// tables and sandbox, so that `check` reports a file's SQL errors beside its header's.
pub async fn plan_unbound(query: &Query, limits: EvalLimits) -> Result<()> {
    let tables = new_tables(&[]);
    let ctx = context(&tables, limits)?;
    plan_unbound_in(&ctx, query, &names(&tables))
        .await
        .map(|_| ())
}

/// The result must have a numeric `value`; `sample_trace_ids`, when present, strings.
fn check_columns(plan: &LogicalPlan) -> Result<(), String> {
    let schema = plan.schema();
    let value = schema
        .fields()
        .iter()
        .find(|f| f.name() == columns::VALUE)
        .ok_or_else(|| "the query must return a numeric column named `value`".to_string())?;
    let t = value.data_type();
    if !t.is_numeric() && t != &DataType::Null && t != &DataType::Boolean {
        return Err(format!(
            "column `value` is {}, expected a number",
            value.data_type()
        ));
    }
    for f in schema.fields() {
        if f.name() == columns::SAMPLE_TRACE_IDS {
            let text = |t: &DataType| {
                matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
            };
            let ok = match f.data_type() {
                DataType::List(i) | DataType::LargeList(i) => text(i.data_type()),
                t => text(t),
            };
            if !ok {
                return Err(
                    "column `sample_trace_ids` must be a string or a list of strings".into(),
                );
            }
        }
    }
    Ok(())
}

/// Checks and plans one query against empty tables (the window's and `extra`): what loading
/// a pipeline does for every rule, detector source and precondition before anything runs.
pub async fn plan_query(query: &Query, limits: EvalLimits, extra: &[ExtraTable]) -> Result<()> {
    let tables = new_tables(extra);
    let ctx = context(&tables, limits)?;
    plan_in(&ctx, query, &names(&tables)).await.map(|_| ())
}

fn names(tables: &[(&'static str, Arc<SwapTable>)]) -> Vec<&'static str> {
    tables.iter().map(|(n, _)| *n).collect()
}

impl QueryEngine {
    /// Plans every query once.
    pub async fn new(queries: Vec<Query>, limits: EvalLimits) -> Result<Self> {
        Self::with_extra(queries, limits, &[]).await
    }

    /// Plans every query once; they may also read the `extra` tables, filled per evaluation
    /// with [`QueryEngine::set_extra`].
    pub async fn with_extra(
        queries: Vec<Query>,
        limits: EvalLimits,
        extra: &[ExtraTable],
    ) -> Result<Self> {
        let tables = new_tables(extra);
        let allowed = names(&tables);
        let mut compiled = Vec::with_capacity(queries.len());
        for query in queries {
            let own_tables = query.window.map(|_| new_tables(extra));
            let ctx = context(own_tables.as_deref().unwrap_or(&tables), limits)?;
            let (plan, scans) = plan_in(&ctx, &query, &allowed).await?;
            let empty = own_tables.as_deref().unwrap_or(&tables).iter();
            let empty = WindowData::snapshot(empty.map(|(_, t)| t.as_ref()), &scans);
            let plans = Plans::new(&ctx, &plan, empty)
                .await
                .map_err(|e| query_error(&query, &e.to_string()))?;
            compiled.push(Compiled {
                query,
                plans: Arc::new(plans),
                scans,
                own_tables,
                busy: Arc::new(AtomicBool::new(false)),
            });
        }
        Ok(QueryEngine { compiled, tables })
    }

    pub fn len(&self) -> usize {
        self.compiled.len()
    }

    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }

    /// Replaces the contents of the extra table `name` for the next evaluations.
    pub fn set_extra(&self, name: &str, batch: RecordBatch) {
        if let Some((_, table)) = self.tables.iter().find(|(n, _)| *n == name) {
            table.set(vec![batch]);
        }
    }

    /// The tables query `i` reads.
    pub fn scans(&self, i: usize) -> &[String] {
        &self.compiled[i].scans
    }

    /// Adds the columns of the window's tables some query reads to `into`.
    pub fn read_columns(&self, into: &mut ColumnSet) {
        for c in &self.compiled {
            c.plans.read_columns(into);
        }
    }

    /// The tables the queries with a longer `window` read: what a shard's look-back keeps.
    pub fn look_back_tables(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .compiled
            .iter()
            .filter(|c| c.query.window.is_some())
            .flat_map(|c| c.scans.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Evaluates the queries `which` on one window (no history), in that order: each one's
    /// rows, or why it produced none.
    pub async fn evaluate_some(
        &self,
        which: &[usize],
        batch: &AlignedBatch,
        budget: &dyn EvalBudget,
    ) -> Vec<Result<Vec<QueryRow>, RuleFailure>> {
        self.swap_window(batch);
        let evaluations = which.iter().map(|&i| {
            let c = &self.compiled[i];
            async move {
                self.evaluate_one(c, batch, &[], budget)
                    .await
                    .map_err(|(kind, message)| RuleFailure {
                        rule_id: c.query.id.clone(),
                        kind,
                        message,
                    })
            }
        });
        futures::stream::iter(evaluations)
            .buffered(budget.parallelism())
            .collect()
            .await
    }

    fn swap_window(&self, batch: &AlignedBatch) {
        for (name, table) in &self.tables {
            if let Some(data) = tables::table_of(batch, name) {
                table.set(vec![data]);
            }
        }
    }

    /// Evaluates every query on one window, in order: the rows of each (empty for a failed
    /// one). `history` holds the shard's earlier batches (oldest first) for queries with a
    /// longer `window`. A query that fails (an error, its memory limit, the budget) is
    /// reported and skipped; the others still run. As many run at once as the budget's
    /// `parallelism`; the results keep the queries' order either way.
    pub async fn evaluate(
        &self,
        batch: &AlignedBatch,
        history: &[AlignedBatch],
        budget: &dyn EvalBudget,
    ) -> (Vec<Vec<QueryRow>>, Vec<RuleFailure>) {
        self.swap_window(batch);
        let outcomes: Vec<_> = futures::stream::iter(
            self.compiled
                .iter()
                .map(|c| self.evaluate_one(c, batch, history, budget)),
        )
        .buffered(budget.parallelism())
        .collect()
        .await;
        let mut rows = Vec::with_capacity(self.compiled.len());
        let mut failures = Vec::new();
        for (c, outcome) in self.compiled.iter().zip(outcomes) {
            match outcome {
                Ok(r) => rows.push(r),
                Err((kind, message)) => {
                    rows.push(Vec::new());
                    failures.push(RuleFailure {
                        rule_id: c.query.id.clone(),
                        kind,
                        message,
                    });
                }
            }
        }
        (rows, failures)
    }

    async fn evaluate_one(
        &self,
        c: &Compiled,
        batch: &AlignedBatch,
        history: &[AlignedBatch],
        budget: &dyn EvalBudget,
    ) -> Result<Vec<QueryRow>, (FailureKind, String)> {
        if let (Some(tables), Some(window)) = (&c.own_tables, c.query.window) {
            fill_window(tables, &c.scans, batch, history, window);
        }
        if c.busy.swap(true, Ordering::AcqRel) {
            return Err((
                FailureKind::Busy,
                "skipped: an earlier evaluation that exceeded the budget is still running".into(),
            ));
        }
        // Taken now, so a later window's swap cannot change what this evaluation reads.
        let tables = c.own_tables.as_deref().unwrap_or(&self.tables);
        let data = WindowData::snapshot(tables.iter().map(|(_, t)| t.as_ref()), &c.scans);
        let evaluation = run(c.plans.clone(), data, c.busy.clone());
        budget
            .run(&c.query.id, Box::pin(evaluation))
            .await
            .map_err(|e| match e {
                Some(message) => (FailureKind::Error, message),
                None => (
                    FailureKind::OverBudget,
                    "evaluation exceeded the wall-clock budget and was abandoned".into(),
                ),
            })
    }
}

/// Fills the tables a longer-window query reads (`scans`) with the batches of the last
/// `window` of event time (those starting at or after `batch.window.end - window`) and this
/// one.
fn fill_window(
    tables: &[(&'static str, Arc<SwapTable>)],
    scans: &[String],
    batch: &AlignedBatch,
    history: &[AlignedBatch],
    window: Duration,
) {
    let from = batch.window.end.saturating_sub(window);
    let batches: Vec<&AlignedBatch> = history
        .iter()
        .filter(|b| b.window.start >= from && b.window.end <= batch.window.start)
        .chain(std::iter::once(batch))
        .collect();
    let start = batches
        .first()
        .map_or(batch.window.start, |b| b.window.start);
    for (name, table) in tables.iter().filter(|(n, _)| scans.iter().any(|s| s == n)) {
        let data = if *name == "window_bounds" {
            vec![tables::window_bounds_batch(
                start,
                batch.window.end,
                batch.early,
            )]
        } else {
            let Some(parts) = batches
                .iter()
                .map(|b| b.data_table(name).cloned())
                .collect::<Option<Vec<RecordBatch>>>()
            else {
                continue; // an extra table: the caller fills it
            };
            parts
        };
        table.set(data);
    }
}

async fn run(
    plans: Arc<Plans>,
    data: WindowData,
    busy: Arc<AtomicBool>,
) -> Result<Vec<QueryRow>, String> {
    let result = async {
        let Some((plan, task)) = plans.prepare(data).await.map_err(|e| e.to_string())? else {
            return Ok(Vec::new());
        };
        let batches = datafusion::physical_plan::collect(plan, task)
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for b in &batches {
            rows::rows_of(b, &mut out)?;
        }
        // Rows come in whatever order the plan produced; a total order makes the output
        // the same whichever plan ran.
        out.sort_by(rows::total_order);
        Ok(out)
    }
    .await;
    busy.store(false, Ordering::Release);
    result
}
