//! A query's stored physical plans. Logical optimization runs once, at load; a physical
//! plan is made per *size class* of the tables the query reads (each table's row count to a
//! power of two) and executed again, its state reset, for every window of that class. The
//! planner sees the first such window's sizes (which side of a join to build a hash table
//! on is decided by them), never an exact count it could fold into the plan. Results do not
//! depend on the plan chosen: rows are put in a total order afterwards. A query without
//! joins has nothing the sizes decide, so it keeps one plan for every window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::Result;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use super::empty::EmptyWhen;
use super::scan::WindowData;
use crate::tables::ColumnSet;

/// Plans kept per query: size classes a run keeps meeting are few (a steady stream has one
/// or two); beyond this the oldest is planned again when it comes back.
const MAX_PLANS: usize = 16;

/// A stored physical plan and when its output is certainly empty.
type Stored = (Arc<dyn ExecutionPlan>, Arc<EmptyWhen>);

/// Stored plans with their size classes, oldest first.
type ByClass = Vec<(Vec<u8>, Stored)>;

/// One query's optimized plan, its physical plans by size class, and the session each
/// evaluation's [`TaskContext`] is made from.
pub(crate) struct Plans {
    state: SessionState,
    logical: LogicalPlan,
    /// Whether the physical plan depends on the tables' sizes (a join's build side).
    sized: bool,
    by_class: Mutex<ByClass>,
}

impl Plans {
    /// Optimizes `plan` and plans it physically for `tables` as they are at load (empty),
    /// so that every planning error shows at load.
    pub async fn new(ctx: &SessionContext, plan: &LogicalPlan, tables: WindowData) -> Result<Self> {
        let state = ctx.state();
        let logical = state.optimize(plan)?;
        let mut sized = false;
        logical.apply_with_subqueries(|node| {
            sized |= matches!(node, LogicalPlan::Join(_) | LogicalPlan::Subquery(_));
            Ok(TreeNodeRecursion::Continue)
        })?;
        let plans = Plans {
            state,
            logical,
            sized,
            by_class: Mutex::new(Vec::new()),
        };
        plans.plan_for(&tables).await?;
        Ok(plans)
    }

    /// A plan ready to execute on `data` (a fresh copy of the stored one), and the task
    /// context whose scans read `data`; `None` when its output is certainly empty for
    /// `data` (`empty`), so that there is nothing to execute.
    pub async fn prepare(
        &self,
        data: WindowData,
    ) -> Result<Option<(Arc<dyn ExecutionPlan>, Arc<TaskContext>)>> {
        let (plan, empty) = self.plan_for(&data).await?;
        if empty.holds(&data) {
            return Ok(None);
        }
        Ok(Some((reset_plan_states(plan)?, self.task(data))))
    }

    async fn plan_for(&self, data: &WindowData) -> Result<Stored> {
        let class = if self.sized { data.class() } else { Vec::new() };
        let cached = self.lock().iter().find(|(c, _)| *c == class).cloned();
        if let Some((_, plan)) = cached {
            return Ok(plan);
        }
        let mut state = self.state.clone();
        state.config_mut().set_extension(Arc::new(data.sizes()));
        let plan = state
            .query_planner()
            .create_physical_plan(&self.logical, &state)
            .await?;
        let plan = super::lean::lean_projections(plan)?;
        let stored = (plan.clone(), Arc::new(EmptyWhen::of(&plan)));
        let mut by_class = self.lock();
        if by_class.len() >= MAX_PLANS {
            by_class.remove(0);
        }
        by_class.push((class, stored.clone()));
        Ok(stored)
    }

    /// Adds the columns of the window's tables the plan reads to `into`: each scan's
    /// projection (every column without one) and the columns of filters pushed into it.
    pub fn read_columns(&self, into: &mut ColumnSet) {
        self.logical
            .apply_with_subqueries(|node| {
                if let LogicalPlan::TableScan(scan) = node {
                    let table = scan.table_name.table();
                    match &scan.projection {
                        Some(indices) => indices.iter().for_each(|i| into.add_index(table, *i)),
                        None => into.add_table(table),
                    }
                    for column in scan.filters.iter().flat_map(|f| f.column_refs()) {
                        into.add(table, &column.name);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .expect("the visitor never fails");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ByClass> {
        self.by_class.lock().expect("plan cache lock")
    }

    /// The plan's functions are resolved already, so the context needs no function
    /// registry.
    pub(super) fn task(&self, data: WindowData) -> Arc<TaskContext> {
        Arc::new(TaskContext::new(
            None,
            self.state.session_id().to_string(),
            self.state.config().clone().with_extension(Arc::new(data)),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            self.state.runtime_env().clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
    use datafusion::physical_plan::collect;

    use super::super::scan::SwapTable;
    use super::*;

    /// Table `t(v)`, and the plans of `sql` over it.
    async fn plans_over_t(sql: &str) -> (SchemaRef, Arc<SwapTable>, Plans) {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let table = Arc::new(SwapTable::new("t", schema.clone()));
        let ctx = SessionContext::new();
        ctx.register_table("t", table.clone()).unwrap();
        let logical = ctx.state().create_logical_plan(sql).await.unwrap();
        let plans = Plans::new(&ctx, &logical, snapshot(&table)).await.unwrap();
        (schema, table, plans)
    }

    fn snapshot(table: &SwapTable) -> WindowData {
        WindowData::snapshot(std::iter::once(table), &["t".to_string()])
    }

    /// A query without joins keeps the plan made at load, whatever the sizes.
    #[tokio::test]
    async fn a_query_without_joins_has_one_plan() {
        let (schema, table, plans) =
            plans_over_t("SELECT v, count(*) AS n FROM t GROUP BY v").await;
        for rows in [1, 100, 10_000] {
            let values = Int64Array::from((0..rows).map(|i| i % 7).collect::<Vec<_>>());
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
            table.set(vec![batch]);
            let (plan, task) = plans
                .prepare(snapshot(&table))
                .await
                .unwrap()
                .expect("rows to group");
            let out = collect(plan, task).await.unwrap();
            let counted: i64 = out
                .iter()
                .map(|b| {
                    b.column(1)
                        .as_primitive::<Int64Type>()
                        .iter()
                        .flatten()
                        .sum::<i64>()
                })
                .sum();
            assert_eq!(counted, rows);
        }
        assert_eq!(plans.lock().len(), 1);
    }

    /// Past `MAX_PLANS` size classes the oldest plan goes; a window of its class is planned
    /// again and still reads its own rows.
    #[tokio::test]
    async fn the_oldest_size_class_is_planned_again_past_the_limit() {
        let sql = "SELECT sum(a.v) AS s, count(*) AS n FROM t AS a JOIN t AS b ON a.v = b.v";
        let (schema, table, plans) = plans_over_t(sql).await;
        let run = |rows: i64| {
            let values = Int64Array::from((1..=rows).collect::<Vec<_>>());
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
            table.set(vec![batch]);
            let data = snapshot(&table);
            let class = data.class();
            let plans = &plans;
            async move {
                let (plan, task) = plans
                    .prepare(data)
                    .await
                    .unwrap()
                    .expect("a scalar aggregate is never skipped");
                let out = collect(plan, task).await.unwrap();
                let sum = out[0].column(0).as_primitive::<Int64Type>().value(0);
                let count = out[0].column(1).as_primitive::<Int64Type>().value(0);
                assert!(!out[0].column(0).is_null(0));
                assert_eq!((sum, count), (rows * (rows + 1) / 2, rows), "{rows} rows");
                class
            }
        };
        // The empty load-time class, then one class per power of two.
        let first = run(1).await;
        for k in 1..MAX_PLANS as u32 + 1 {
            run(1 << k).await;
        }
        let stored: Vec<Vec<u8>> = plans.lock().iter().map(|(c, _)| c.clone()).collect();
        assert_eq!(stored.len(), MAX_PLANS);
        assert!(!stored.contains(&first), "the oldest classes were dropped");
        assert_eq!(run(1).await, first);
        assert_eq!(plans.lock().len(), MAX_PLANS);
        assert_eq!(plans.lock().last().map(|(c, _)| c.clone()), Some(first));
    }
}
