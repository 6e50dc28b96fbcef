//! A filter over an aggregation, judged by the aggregated column's extremes.
//!
//! `max`, `min`, `avg`, `median` and `percentile_cont` of a column lie between its smallest
//! and largest value, so no group passes `agg(x) > c` when no input row has `x > c` (and
//! likewise for `>=`, `<`, `<=`). Threshold rules are written this way — `HAVING max(usage)
//! > 0.95`, a p95 above a limit — and most windows hold nothing near the threshold: checking
//! that is one vectorized predicate on the table's rows (`empty.rs`), not the whole plan.

use std::sync::Arc;

use datafusion::logical_expr::Operator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::expressions::{cast, BinaryExpr, Column, Literal};
use datafusion::physical_expr::projection::update_expr;
use datafusion::physical_expr::utils::split_conjunction;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::ExecutionPlan;

use super::lean::LeanProjectionExec;

/// A plan below another and a predicate rewritten onto its rows.
type Below<'a> = (&'a Arc<dyn ExecutionPlan>, Arc<dyn PhysicalExpr>);

/// An aggregation's functions and the plan whose rows they aggregate.
type Aggregated<'a> = (&'a [Arc<AggregateFunctionExpr>], &'a Arc<dyn ExecutionPlan>);

/// Aggregates whose value lies between the smallest and largest value of their first
/// argument.
const BOUNDED: [&str; 5] = ["max", "min", "avg", "median", "percentile_cont"];

/// For a filter with `predicate` over `input`: an aggregation's input and a predicate on
/// its rows such that when no row passes it, no row passes the filter. `None` when `input`
/// is no aggregation (below projections) or no conjunct compares a bounded aggregate with a
/// constant.
pub(super) fn aggregate_bound(
    input: &Arc<dyn ExecutionPlan>,
    predicate: &Arc<dyn PhysicalExpr>,
) -> Option<(Arc<dyn ExecutionPlan>, Arc<dyn PhysicalExpr>)> {
    let (plan, predicate) = below_projections(input, Arc::clone(predicate))?;
    let aggregate = plan.downcast_ref::<AggregateExec>()?;
    let (rows_of, input) = aggregated_rows(aggregate)?;
    let groups = aggregate.group_expr();
    if groups.has_grouping_set() {
        return None;
    }
    let first_aggregate = groups.expr().len();
    let input_schema = input.schema();
    split_conjunction(&predicate)
        .into_iter()
        .find_map(|conjunct| {
            let (column, op, constant) = compared_with_constant(conjunct)?;
            let function = rows_of.get(column.checked_sub(first_aggregate)?)?;
            if !BOUNDED.contains(&function.fun().name()) {
                return None;
            }
            let value = function.expressions().into_iter().next()?;
            let (value_type, constant_type) = (
                value.data_type(&input_schema).ok()?,
                constant.data_type(&input_schema).ok()?,
            );
            let value = if value_type == constant_type {
                value
            } else if value_type.is_numeric() && constant_type.is_numeric() {
                cast(value, &input_schema, constant_type).ok()?
            } else {
                return None;
            };
            let bound: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(value, op, constant));
            Some((Arc::clone(input), bound))
        })
}

/// The aggregate functions of `aggregate` (in output order, after the group columns) and
/// the plan whose rows they aggregate: its own input, or the partial aggregation's below a
/// final one.
fn aggregated_rows(aggregate: &AggregateExec) -> Option<Aggregated<'_>> {
    match aggregate.mode() {
        AggregateMode::Single | AggregateMode::SinglePartitioned => {
            Some((aggregate.aggr_expr(), aggregate.input()))
        }
        AggregateMode::Final | AggregateMode::FinalPartitioned => {
            let mut plan = aggregate.input();
            while plan.is::<RepartitionExec>()
                || plan.is::<CoalescePartitionsExec>()
                || plan.is::<CooperativeExec>()
            {
                plan = plan.children().into_iter().next()?;
            }
            let partial = plan.downcast_ref::<AggregateExec>()?;
            (*partial.mode() == AggregateMode::Partial)
                .then(|| (partial.aggr_expr(), partial.input()))
        }
        _ => None,
    }
}

/// `column op constant` (a constant on the left is moved right), for an ordering `op`.
fn compared_with_constant(
    expr: &Arc<dyn PhysicalExpr>,
) -> Option<(usize, Operator, Arc<dyn PhysicalExpr>)> {
    let binary = expr.downcast_ref::<BinaryExpr>()?;
    let (left, right) = (binary.left(), binary.right());
    let constant = |e: &Arc<dyn PhysicalExpr>| {
        e.downcast_ref::<Literal>()
            .filter(|l| !l.value().is_null())
            .map(|_| Arc::clone(e))
    };
    let op = *binary.op();
    if !matches!(
        op,
        Operator::Gt | Operator::GtEq | Operator::Lt | Operator::LtEq
    ) {
        return None;
    }
    if let (Some(c), Some(k)) = (left.downcast_ref::<Column>(), constant(right)) {
        return Some((c.index(), op, k));
    }
    let (c, k) = (right.downcast_ref::<Column>()?, constant(left)?);
    Some((c.index(), op.swap()?, k))
}

/// The first plan below `plan` that is not a projection or a wrapper, and `predicate` (on
/// `plan`'s rows) rewritten onto its rows: a projection maps each row to one row, so a
/// predicate on its output is the same predicate on its input with the projected
/// expressions put in.
pub(super) fn below_projections(
    plan: &Arc<dyn ExecutionPlan>,
    predicate: Arc<dyn PhysicalExpr>,
) -> Option<Below<'_>> {
    if let Some(coop) = plan.downcast_ref::<CooperativeExec>() {
        return below_projections(coop.input(), predicate);
    }
    let (exprs, input) = if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        (projection.expr(), projection.input())
    } else if let Some(lean) = plan.downcast_ref::<LeanProjectionExec>() {
        (lean.exprs(), lean.input())
    } else {
        return Some((plan, predicate));
    };
    let unprojected = update_expr(&predicate, exprs, true).ok().flatten()?;
    if datafusion::physical_expr_common::physical_expr::is_volatile(&unprojected) {
        return None;
    }
    below_projections(input, unprojected)
}
