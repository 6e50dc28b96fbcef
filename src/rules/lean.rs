//! Projections that execute without per-execution metric labels.
//!
//! DataFusion 55's `ProjectionExec` formats every one of its expressions as SQL, for the
//! labels of its expression metrics, each time it is executed. A stored plan is executed
//! once per window, so for the small windows of a file run that formatting was about 6 % of
//! all the CPU. The projections of a stored plan are replaced by [`LeanProjectionExec`],
//! which evaluates the same expressions into the same schema and records no metrics (the
//! pipeline reads none of DataFusion's operator metrics).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{internal_err, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::projection::{ProjectionExpr, Projector};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
    ReplaceChildrenOptions, SendableRecordBatchStream,
};
use futures::StreamExt;

/// Replaces every `ProjectionExec` of `plan` by a [`LeanProjectionExec`].
pub(crate) fn lean_projections(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(projection) = node.downcast_ref::<ProjectionExec>() else {
            return Ok(Transformed::no(node));
        };
        let input = Arc::clone(projection.input());
        let projector = projection
            .projection_expr()
            .make_projector_with_schema_metadata(&input.schema(), &projection.schema())?;
        let lean: Arc<dyn ExecutionPlan> = Arc::new(LeanProjectionExec {
            projector,
            input,
            properties: Arc::clone(projection.properties()),
        });
        Ok(Transformed::yes(lean))
    })
    .map(|t| t.data)
}

/// `ProjectionExec`'s evaluation, without its metrics.
#[derive(Debug)]
pub(crate) struct LeanProjectionExec {
    projector: Projector,
    input: Arc<dyn ExecutionPlan>,
    /// The replaced projection's: same schema, ordering and partitioning.
    properties: Arc<PlanProperties>,
}

impl LeanProjectionExec {
    /// The expressions it projects.
    pub fn exprs(&self) -> &[ProjectionExpr] {
        self.projector.projection().as_ref()
    }

    /// What it projects from.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

impl DisplayAs for LeanProjectionExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let exprs: Vec<String> = self
            .projector
            .projection()
            .as_ref()
            .iter()
            .map(|e| format!("{} as {}", e.expr, e.alias))
            .collect();
        write!(f, "LeanProjectionExec: expr=[{}]", exprs.join(", "))
    }
}

impl ExecutionPlan for LeanProjectionExec {
    fn name(&self) -> &'static str {
        "LeanProjectionExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for e in self.projector.projection().as_ref().iter() {
            if f(&e.expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    /// A stored plan's copy (its state reset) keeps the properties: the input is the same
    /// operator, reset.
    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (Some(input), true) = (children.pop(), children.is_empty()) else {
            return internal_err!("LeanProjectionExec has one child");
        };
        Ok(Arc::new(LeanProjectionExec {
            projector: self.projector.clone(),
            input,
            properties: Arc::clone(&self.properties),
        }))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let projector = self.projector.clone();
        let batches = self
            .input
            .execute(partition, context)?
            .map(move |batch| projector.project_batch(&batch?));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            batches,
        )))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::execution_plan::reset_plan_states;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn context() -> SessionContext {
        let schema = Arc::new(Schema::new(vec![
            Field::new("service", DataType::Utf8, true),
            Field::new("ms", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    None,
                    Some("a"),
                ])),
                Arc::new(Float64Array::from(vec![1.0, 2.5, 4.0, 8.0])),
            ],
        )
        .unwrap();
        let ctx = SessionContext::new();
        let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        ctx
    }

    #[tokio::test]
    async fn a_lean_plan_gives_what_the_plan_it_replaced_gives() {
        let ctx = context().await;
        let sql = "SELECT upper(coalesce(service, 'none')) || '!' AS who, ms * 2 AS double, \
                   'fixed' AS tag, sum(ms) OVER (PARTITION BY service) / ms AS share \
                   FROM t ORDER BY ms";
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        assert!(displayable(plan.as_ref())
            .indent(false)
            .to_string()
            .contains("ProjectionExec:"));
        let expected = collect(plan.clone(), ctx.task_ctx()).await.unwrap();
        let lean = lean_projections(plan).unwrap();
        let shown = displayable(lean.as_ref()).indent(false).to_string();
        assert!(!shown.contains(" ProjectionExec:") && !shown.starts_with("ProjectionExec:"));
        assert!(shown.contains("LeanProjectionExec"), "{shown}");
        for _ in 0..2 {
            let run = reset_plan_states(lean.clone()).unwrap();
            let got = collect(run, ctx.task_ctx()).await.unwrap();
            assert_eq!(got, expected);
        }
    }
}
