//! The window's tables as DataFusion plans them. A query's physical plan is built once, at
//! load; its scans are [`WindowScanExec`] leaves that read the rows of the evaluation they
//! run in from that evaluation's [`TaskContext`] ([`WindowData`]), so each window only
//! executes the stored plan (planning was ~80 % of a small window's evaluation).
//!
//! The leaves report no statistics: a planner that knew the row count of the window the
//! plan was built on would fold it into the plan (`count(*)` becomes a constant).

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_datafusion_err, Result};
use datafusion::datasource::TableType;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions, SendableRecordBatchStream,
};

/// A table whose contents are replaced for every window.
#[derive(Debug)]
pub(crate) struct SwapTable {
    pub name: &'static str,
    pub schema: SchemaRef,
    /// Its contents: one batch, or a longer window's batches in event-time order (scanned
    /// as they are: concatenating them would copy the whole look-back every window).
    pub batches: RwLock<Vec<RecordBatch>>,
}

impl SwapTable {
    pub fn new(name: &'static str, schema: SchemaRef) -> Self {
        SwapTable {
            name,
            batches: RwLock::new(vec![RecordBatch::new_empty(schema.clone())]),
            schema,
        }
    }

    pub fn set(&self, batches: Vec<RecordBatch>) {
        *self.batches.write().expect("table lock") = batches;
    }
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
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Filters and limits stay in the plan above the scan (the provider claims neither).
        Ok(Arc::new(WindowScanExec::new(
            self.name,
            self.schema.clone(),
            projection.cloned(),
        )?))
    }
}

/// The rows of one evaluation's tables, taken when it starts: an extension of its
/// [`TaskContext`]'s session config, so evaluations that overlap (parallel ones, or one a
/// budget abandoned) each read their own window.
#[derive(Debug, Default)]
pub(crate) struct WindowData {
    tables: Vec<(&'static str, Vec<RecordBatch>)>,
}

impl WindowData {
    /// The current contents of the `tables` named in `scans`.
    pub fn snapshot<'a>(tables: impl Iterator<Item = &'a SwapTable>, scans: &[String]) -> Self {
        let tables = tables
            .filter(|t| scans.iter().any(|s| s == t.name))
            .map(|t| (t.name, t.batches.read().expect("table lock").clone()))
            .collect();
        WindowData { tables }
    }
}

/// Scans a window table's rows from the evaluation's [`WindowData`].
#[derive(Debug)]
pub(crate) struct WindowScanExec {
    table: &'static str,
    projection: Option<Vec<usize>>,
    /// After the projection.
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl WindowScanExec {
    fn new(table: &'static str, schema: SchemaRef, projection: Option<Vec<usize>>) -> Result<Self> {
        let projected = match &projection {
            Some(columns) => Arc::new(schema.project(columns)?),
            None => schema,
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(projected.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(WindowScanExec {
            table,
            projection,
            schema: projected,
            properties: Arc::new(properties),
        })
    }
}

impl DisplayAs for WindowScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "WindowScanExec: table={}", self.table)
    }
}

impl ExecutionPlan for WindowScanExec {
    fn name(&self) -> &'static str {
        "WindowScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let data = context
            .session_config()
            .get_extension::<WindowData>()
            .ok_or_else(|| internal_datafusion_err!("no window data in the task context"))?;
        let batches = data
            .tables
            .iter()
            .find(|(name, _)| *name == self.table)
            .map(|(_, batches)| batches.clone())
            .ok_or_else(|| internal_datafusion_err!("table {} not in the window", self.table))?;
        Ok(Box::pin(MemoryStream::try_new(
            batches,
            self.schema.clone(),
            self.projection.clone(),
        )?))
    }
}
