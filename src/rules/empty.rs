//! When a stored plan's result is empty without running it.
//!
//! Most queries of a pipeline look for something a window usually lacks (NCCL errors, a GPU
//! metric, a training rank), and executing a stored plan has a fixed cost (its state reset,
//! its operators' streams and hash tables) whatever the window holds. From the physical plan
//! we derive a condition under which its output is certainly empty — an inner join with an
//! empty side, a grouped aggregation of nothing, a filter no row of its table passes — and
//! check it on the window's rows first: a filter over a table is one vectorized predicate,
//! not a plan. The condition is conservative: an operator it does not know makes it false
//! (run the plan), so a skipped query is one whose rows would have been none.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::common::JoinType;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, Column};
use datafusion::physical_expr::projection::{update_expr, ProjectionExpr};
use datafusion::physical_expr::{DynamicFilterTracking, PhysicalExpr};
use datafusion::physical_expr_common::physical_expr::is_volatile;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec,
};
use datafusion::physical_plan::limit::{GlobalLimitExec, LocalLimitExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::ExecutionPlan;

use super::bound::{aggregate_bound, below_projections};
use super::lean::LeanProjectionExec;
use super::scan::{WindowData, WindowScanExec};

/// A condition on a window's tables under which a plan's output is empty.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EmptyWhen {
    /// Never known to be empty: the plan runs.
    Never,
    /// Always empty.
    Always,
    /// Table `table` has no rows.
    NoRows { table: &'static str },
    /// No row of `table` (its columns `projection`) passes `predicate`.
    NoneMatch {
        table: &'static str,
        projection: Option<Vec<usize>>,
        predicate: Arc<dyn PhysicalExpr>,
    },
    /// Any of these holds (cheapest first).
    Any(Vec<EmptyWhen>),
    /// All of these hold.
    All(Vec<EmptyWhen>),
}

impl EmptyWhen {
    /// The condition of `plan`'s output being empty.
    pub fn of(plan: &Arc<dyn ExecutionPlan>) -> Self {
        let children = plan.children();
        let only_child = || match children.as_slice() {
            [child] => Self::of(child),
            _ => EmptyWhen::Never,
        };
        if let Some(scan) = plan.downcast_ref::<WindowScanExec>() {
            return EmptyWhen::NoRows {
                table: scan.table(),
            };
        }
        if plan.is::<EmptyExec>() {
            return EmptyWhen::Always;
        }
        if let Some(filter) = plan.downcast_ref::<FilterExec>() {
            let input = filter.input();
            let predicate = Arc::clone(filter.predicate());
            // A join's dynamic filter changes while the plan runs: never judge by it.
            let dynamic = DynamicFilterTracking::classify(&predicate).contains_dynamic_filter();
            if dynamic || is_volatile(&predicate) {
                return Self::of(input);
            }
            // A bound on an aggregation's rows; it holds whenever the aggregation's input
            // is empty too, so it is all that needs checking.
            if let Some(bound) = aggregate_bound(input, &predicate)
                .and_then(|(rows, bound)| FilterExec::try_new(bound, rows).ok())
            {
                return Self::of(&(Arc::new(bound) as _));
            }
            return match onto_scan(input, predicate) {
                Some((scan, predicate)) => EmptyWhen::NoneMatch {
                    table: scan.table(),
                    projection: scan.projection().cloned(),
                    predicate,
                },
                None => Self::of(input),
            };
        }
        if let Some(aggregate) = plan.downcast_ref::<AggregateExec>() {
            // Without GROUP BY an aggregation of nothing is still one row.
            let groups = aggregate.group_expr();
            if groups.expr().is_empty() || groups.has_grouping_set() {
                return EmptyWhen::Never;
            }
            return only_child();
        }
        if let Some(join) = plan.downcast_ref::<HashJoinExec>() {
            return join_empty(*join.join_type(), join.left(), join.right());
        }
        if let Some(join) = plan.downcast_ref::<NestedLoopJoinExec>() {
            return join_empty(*join.join_type(), join.left(), join.right());
        }
        if let Some(join) = plan.downcast_ref::<SortMergeJoinExec>() {
            return join_empty(join.join_type(), join.left(), join.right());
        }
        if let Some(join) = plan.downcast_ref::<CrossJoinExec>() {
            return join_empty(JoinType::Inner, join.left(), join.right());
        }
        if plan.is::<UnionExec>() {
            return all(children.iter().map(|c| Self::of(c)).collect());
        }
        if preserves_emptiness(plan) {
            return only_child();
        }
        EmptyWhen::Never
    }

    /// Whether it holds for `data`. A predicate that fails to evaluate counts as matching
    /// (the plan runs and reports the error).
    pub fn holds(&self, data: &WindowData) -> bool {
        match self {
            EmptyWhen::Never => false,
            EmptyWhen::Always => true,
            EmptyWhen::NoRows { table } => data
                .batches(table)
                .is_some_and(|b| b.iter().all(|b| b.num_rows() == 0)),
            EmptyWhen::NoneMatch {
                table,
                projection,
                predicate,
            } => data.batches(table).is_some_and(|batches| {
                batches
                    .iter()
                    .all(|b| !any_match(b, projection.as_deref(), predicate.as_ref()))
            }),
            EmptyWhen::Any(conditions) => conditions.iter().any(|c| c.holds(data)),
            EmptyWhen::All(conditions) => conditions.iter().all(|c| c.holds(data)),
        }
    }

    /// Whether it can ever hold (a plan with `Never` need not be checked).
    pub fn is_never(&self) -> bool {
        matches!(self, EmptyWhen::Never)
    }

    /// How much checking it costs, to put the cheap conditions first.
    fn cost(&self) -> u8 {
        match self {
            EmptyWhen::Never | EmptyWhen::Always | EmptyWhen::NoRows { .. } => 0,
            EmptyWhen::NoneMatch { .. } => 1,
            EmptyWhen::Any(_) | EmptyWhen::All(_) => 2,
        }
    }
}

/// The output of a join of `left` and `right` is empty when the sides it keeps rows of
/// are, or when one side of a matching join is.
fn join_empty(
    join_type: JoinType,
    left: &Arc<dyn ExecutionPlan>,
    right: &Arc<dyn ExecutionPlan>,
) -> EmptyWhen {
    let (l, r) = (EmptyWhen::of(left), EmptyWhen::of(right));
    match join_type {
        JoinType::Inner | JoinType::LeftSemi | JoinType::RightSemi => any(vec![l, r]),
        JoinType::Left | JoinType::LeftAnti | JoinType::LeftMark => l,
        JoinType::Right | JoinType::RightAnti | JoinType::RightMark => r,
        JoinType::Full => all(vec![l, r]),
    }
}

fn any(conditions: Vec<EmptyWhen>) -> EmptyWhen {
    if conditions.iter().any(|c| matches!(c, EmptyWhen::Always)) {
        return EmptyWhen::Always;
    }
    let mut conditions: Vec<_> = conditions.into_iter().filter(|c| !c.is_never()).collect();
    conditions.sort_by_key(EmptyWhen::cost);
    dedup(&mut conditions);
    match conditions.len() {
        0 => EmptyWhen::Never,
        1 => conditions.pop().expect("one condition"),
        _ => EmptyWhen::Any(conditions),
    }
}

fn all(conditions: Vec<EmptyWhen>) -> EmptyWhen {
    if conditions.is_empty() || conditions.iter().any(EmptyWhen::is_never) {
        return EmptyWhen::Never;
    }
    let mut conditions: Vec<_> = conditions
        .into_iter()
        .filter(|c| !matches!(c, EmptyWhen::Always))
        .collect();
    conditions.sort_by_key(EmptyWhen::cost);
    dedup(&mut conditions);
    match conditions.len() {
        0 => EmptyWhen::Always,
        1 => conditions.pop().expect("one condition"),
        _ => EmptyWhen::All(conditions),
    }
}

/// Drops repeated conditions (a query that reads a common table expression twice has its
/// condition twice), so that a window checks each once.
fn dedup(conditions: &mut Vec<EmptyWhen>) {
    let mut kept: Vec<EmptyWhen> = Vec::with_capacity(conditions.len());
    for c in conditions.drain(..) {
        if !kept.contains(&c) {
            kept.push(c);
        }
    }
    *conditions = kept;
}

/// Operators whose output is empty when their one input is (each output row comes from
/// input rows).
fn preserves_emptiness(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.is::<ProjectionExec>()
        || plan.is::<LeanProjectionExec>()
        || plan.is::<SortExec>()
        || plan.is::<SortPreservingMergeExec>()
        || plan.is::<CoalescePartitionsExec>()
        || plan.is::<RepartitionExec>()
        || plan.is::<GlobalLimitExec>()
        || plan.is::<LocalLimitExec>()
        || plan.is::<BoundedWindowAggExec>()
        || plan.is::<WindowAggExec>()
        || plan.is::<CooperativeExec>()
}

/// The table scan below `plan` and `predicate` (on `plan`'s rows) rewritten onto the
/// scan's rows, when only projections, filters and wrappers that pass batches on lie
/// between: a filter's rows are its input's rows that pass its predicate too.
fn onto_scan(
    plan: &Arc<dyn ExecutionPlan>,
    predicate: Arc<dyn PhysicalExpr>,
) -> Option<(&WindowScanExec, Arc<dyn PhysicalExpr>)> {
    let (plan, predicate) = below_projections(plan, predicate)?;
    if let Some(scan) = plan.downcast_ref::<WindowScanExec>() {
        return Some((scan, predicate));
    }
    let filter = plan.downcast_ref::<FilterExec>()?;
    let own = Arc::clone(filter.predicate());
    let dynamic = DynamicFilterTracking::classify(&own).contains_dynamic_filter();
    if dynamic || is_volatile(&own) {
        return None;
    }
    // A filter may keep only some of its input's columns.
    let predicate = match filter.projection() {
        None => predicate,
        Some(kept) => {
            let input = filter.input().schema();
            let columns: Vec<ProjectionExpr> = kept
                .iter()
                .map(|&i| {
                    let name = input.field(i).name();
                    ProjectionExpr::new(Arc::new(Column::new(name, i)), name.clone())
                })
                .collect();
            update_expr(&predicate, &columns, true).ok().flatten()?
        }
    };
    onto_scan(
        filter.input(),
        Arc::new(BinaryExpr::new(own, Operator::And, predicate)),
    )
}

fn any_match(
    batch: &RecordBatch,
    projection: Option<&[usize]>,
    predicate: &dyn PhysicalExpr,
) -> bool {
    if batch.num_rows() == 0 {
        return false;
    }
    let projected;
    let input = match projection {
        Some(columns) => match batch.project(columns) {
            Ok(p) => {
                projected = p;
                &projected
            }
            Err(_) => return true,
        },
        None => batch,
    };
    let Ok(values) = predicate
        .evaluate(input)
        .and_then(|v| v.into_array(input.num_rows()))
    else {
        return true;
    };
    match values.as_boolean_opt() {
        Some(passed) => passed.true_count() > 0,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::collect;
    use datafusion::prelude::SessionContext;

    use super::super::plans::Plans;
    use super::super::scan::SwapTable;
    use super::*;

    /// Tables `t(v)` and `u(w)`, filled with `t` and `u`; whether `sql`'s plan is skipped,
    /// and the rows it returns when run.
    async fn skipped_and_rows(sql: &str, t: &[i64], u: &[i64]) -> (bool, usize) {
        let ctx = SessionContext::new_with_config(super::super::query::session_config());
        let mut tables = Vec::new();
        // t(v, x) with x = 10 v: a second column, so that filters keep only some.
        for (name, columns, values) in [("t", &["v", "x"][..], t), ("u", &["w"][..], u)] {
            let fields: Vec<_> = columns
                .iter()
                .map(|c| Field::new(*c, DataType::Int64, true))
                .collect();
            let schema = Arc::new(Schema::new(fields));
            let table = Arc::new(SwapTable::new(name, schema.clone()));
            let arrays = (0..columns.len())
                .map(|i| {
                    let scale = 10i64.pow(i as u32);
                    Arc::new(Int64Array::from_iter_values(
                        values.iter().map(|v| v * scale),
                    )) as _
                })
                .collect();
            table.set(vec![RecordBatch::try_new(schema, arrays).unwrap()]);
            ctx.register_table(name, table.clone()).unwrap();
            tables.push(table);
        }
        let scans = ["t".to_string(), "u".to_string()];
        let snapshot = || WindowData::snapshot(tables.iter().map(|t| t.as_ref()), &scans);
        let logical = ctx.state().create_logical_plan(sql).await.unwrap();
        let plans = Plans::new(&ctx, &logical, snapshot()).await.unwrap();
        let skipped = plans.prepare(snapshot()).await.unwrap().is_none();
        // What the plan returns when it does run, skipped or not.
        let plan = ctx.state().create_physical_plan(&logical).await.unwrap();
        let rows: usize = collect(plan, plans.task(snapshot()))
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        (skipped, rows)
    }

    /// Every query here, on every combination of contents: a skipped plan is one whose
    /// rows would have been none, and the expected ones are skipped.
    #[tokio::test]
    async fn a_plan_is_skipped_only_when_it_would_return_nothing() {
        let contents: [&[i64]; 4] = [&[], &[1, 2], &[7], &[2, 7, 9]];
        // (query, skipped when t = [1, 2] and u = [])
        let queries = [
            ("SELECT v FROM t WHERE v > 5", true),
            (
                "SELECT v, count(*) AS n FROM t WHERE v > 5 GROUP BY v",
                true,
            ),
            ("SELECT count(*) AS n FROM t WHERE v > 5", false),
            ("SELECT v, w FROM t JOIN u ON t.v = u.w", true),
            ("SELECT v, w FROM t LEFT JOIN u ON t.v = u.w", false),
            ("SELECT v, w FROM t RIGHT JOIN u ON t.v = u.w", true),
            ("SELECT v, w FROM t FULL JOIN u ON t.v = u.w", false),
            ("SELECT v FROM t WHERE v IN (SELECT w FROM u)", true),
            ("SELECT v FROM t WHERE v NOT IN (SELECT w FROM u)", false),
            ("SELECT v FROM t UNION ALL SELECT w FROM u", false),
            (
                "SELECT w FROM u UNION ALL SELECT v FROM t WHERE v > 5",
                true,
            ),
            (
                "SELECT v, row_number() OVER (ORDER BY v) AS r FROM t WHERE v > 5",
                true,
            ),
            ("SELECT v FROM t WHERE v > 5 ORDER BY v LIMIT 1", true),
            ("SELECT 1 AS one", false),
            // Thresholds on aggregates bounded by their column's extremes.
            (
                "SELECT v, max(v) AS m FROM t GROUP BY v HAVING max(v) > 5",
                true,
            ),
            ("SELECT max(v) AS m FROM t HAVING max(v) > 5", true),
            ("SELECT min(v) AS m FROM t HAVING 5 <= min(v)", true),
            ("SELECT avg(v) AS a FROM t HAVING avg(v) > 2.5", true),
            (
                "SELECT avg(v) AS a FROM t WHERE v > 1 HAVING avg(v) >= 2",
                false,
            ),
            (
                "SELECT avg(v) AS a FROM t WHERE v > 1 HAVING avg(v) >= 3",
                true,
            ),
            ("SELECT median(v) AS m FROM t HAVING median(v) < 1", true),
            (
                "SELECT percentile_cont(v, 0.9) AS p FROM t HAVING percentile_cont(v, 0.9) > 5",
                true,
            ),
            (
                "WITH a AS (SELECT v % 2 AS k, max(v) AS m FROM t GROUP BY v % 2) \
                 SELECT k, w FROM a JOIN u ON a.k = u.w WHERE m > 5",
                true,
            ),
            (
                "SELECT max(x) AS m FROM t WHERE v > 0 HAVING max(x) > 50",
                true,
            ),
            (
                "SELECT max(x) AS m FROM t WHERE v > 0 HAVING max(x) > 15",
                false,
            ),
            ("SELECT max(v) AS m FROM t HAVING max(v) > 1", false),
            ("SELECT sum(v) AS s FROM t HAVING sum(v) > 2", false),
            ("SELECT count(*) AS n FROM t HAVING count(*) > 1", false),
            ("SELECT max(v) AS m FROM t HAVING max(v) <> 5", false),
        ];
        for (sql, expected) in queries {
            let (skipped, _) = skipped_and_rows(sql, &[1, 2], &[]).await;
            assert_eq!(skipped, expected, "{sql}");
            for t in contents {
                for u in contents {
                    let (skipped, rows) = skipped_and_rows(sql, t, u).await;
                    assert!(
                        !skipped || rows == 0,
                        "{sql} skipped with {rows} rows, t={t:?} u={u:?}"
                    );
                }
            }
        }
    }

    /// A filter over a projection of a table (as the planner puts map lookups below a
    /// filter) is judged on the table's rows, the projected expression put in.
    #[tokio::test]
    async fn a_filter_over_a_projection_is_judged_on_the_table() {
        use datafusion::logical_expr::Operator;
        use datafusion::physical_expr::expressions::{binary, col, lit};
        use datafusion::physical_expr::projection::ProjectionExpr;
        let ctx = SessionContext::new_with_config(super::super::query::session_config());
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let table = Arc::new(SwapTable::new("t", schema.clone()));
        ctx.register_table("t", table.clone()).unwrap();
        let scan = ctx.sql("SELECT v FROM t").await.unwrap();
        let scan = scan.create_physical_plan().await.unwrap();
        // x = v * 3; rows where x > 5.
        let tripled = binary(
            col("v", &schema).unwrap(),
            Operator::Multiply,
            lit(3i64),
            &schema,
        )
        .unwrap();
        let projection =
            ProjectionExec::try_new(vec![ProjectionExpr::new(tripled, "x".to_string())], scan)
                .unwrap();
        let projected = projection.schema();
        let over = binary(
            col("x", &projected).unwrap(),
            Operator::Gt,
            lit(5i64),
            &projected,
        )
        .unwrap();
        let plan: Arc<dyn ExecutionPlan> =
            Arc::new(FilterExec::try_new(over, Arc::new(projection)).unwrap());
        let empty = EmptyWhen::of(&plan);
        assert!(
            matches!(empty, EmptyWhen::NoneMatch { table: "t", .. }),
            "{empty:?}"
        );
        let scans = ["t".to_string()];
        for (values, skipped) in [(vec![1, 1], true), (vec![1, 2], false), (vec![], true)] {
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values))])
                    .unwrap();
            table.set(vec![batch]);
            let data = WindowData::snapshot(std::iter::once(table.as_ref()), &scans);
            assert_eq!(empty.holds(&data), skipped, "{:?}", data.batches("t"));
        }
    }

    /// A table expression read twice gives its condition twice; a window checks it once.
    #[tokio::test]
    async fn a_repeated_condition_is_checked_once() {
        let ctx = SessionContext::new_with_config(super::super::query::session_config());
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        ctx.register_table("t", Arc::new(SwapTable::new("t", schema)))
            .unwrap();
        let sql = "WITH a AS (SELECT v FROM t WHERE v > 5) \
                   SELECT x.v FROM a x JOIN a y ON x.v = y.v";
        let plan = ctx.sql(sql).await.unwrap();
        let plan = plan.create_physical_plan().await.unwrap();
        let empty = EmptyWhen::of(&plan);
        assert!(
            matches!(empty, EmptyWhen::NoneMatch { table: "t", .. }),
            "{empty:?}"
        );
    }

    /// A predicate that cannot be evaluated counts as matching: the plan runs and reports
    /// its error.
    #[test]
    fn a_failing_predicate_runs_the_plan() {
        use datafusion::physical_expr::expressions::col;
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1]))])
            .unwrap();
        // An Int64 column is not a boolean mask.
        let predicate = col("v", &schema).unwrap();
        assert!(any_match(&batch, None, predicate.as_ref()));
        // A projection that does not fit the batch.
        assert!(any_match(&batch, Some(&[3]), predicate.as_ref()));
    }
}
