//! The window's tables as DataFusion plans them. A query's physical plans are stored
//! (`plans`); their scans are [`WindowScanExec`] leaves that read the rows of the evaluation
//! they run in from that evaluation's [`TaskContext`] ([`WindowData`]), so a window only
//! executes a stored plan (planning was ~80 % of a small window's evaluation).
//!
//! The leaves report the sizes of the window they were planned for as estimates
//! ([`TableSizes`]: a join builds its hash table on the smaller side), never as exact counts:
//! a planner that knew the exact row count would fold it into the plan (`count(*)` becomes
//! a constant) and the next window would read it.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_datafusion_err, Result, Statistics};
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
    name: &'static str,
    schema: SchemaRef,
    /// Its contents: one batch, or a longer window's batches in event-time order (scanned
    /// as they are: concatenating them would copy the whole look-back every window).
    batches: RwLock<Vec<RecordBatch>>,
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
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Filters and limits stay in the plan above the scan (the provider claims neither).
        let sizes = state.config().get_extension::<TableSizes>();
        let estimate = sizes.and_then(|s| s.estimate(self.name, projection));
        Ok(Arc::new(WindowScanExec::new(
            self.name,
            self.schema.clone(),
            projection.cloned(),
            estimate,
        )?))
    }
}

/// The rows of one evaluation's tables, taken when it starts: an extension of its
/// [`TaskContext`]'s session config, so evaluations that overlap (parallel ones, or one a
/// budget abandoned) each read their own window.
#[derive(Debug)]
pub(crate) struct WindowData {
    /// By table name.
    tables: Vec<(&'static str, Vec<RecordBatch>)>,
}

impl WindowData {
    /// The current contents of the `tables` named in `scans`.
    pub fn snapshot<'a>(tables: impl Iterator<Item = &'a SwapTable>, scans: &[String]) -> Self {
        let mut tables: Vec<_> = tables
            .filter(|t| scans.iter().any(|s| s == t.name))
            .map(|t| (t.name, t.batches.read().expect("table lock").clone()))
            .collect();
        tables.sort_by_key(|(name, _)| *name);
        WindowData { tables }
    }

    /// The batches of table `name`, if the evaluation reads it.
    pub fn batches(&self, name: &str) -> Option<&[RecordBatch]> {
        self.tables
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, batches)| batches.as_slice())
    }

    /// The size class: each table's row count to a power of two. Cheap: only a plan that
    /// is not stored yet needs the [`sizes`](Self::sizes).
    pub fn class(&self) -> Vec<u8> {
        self.tables
            .iter()
            .map(|(_, batches)| {
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                (usize::BITS - rows.leading_zeros()) as u8
            })
            .collect()
    }

    /// Rows and bytes per column of each table, for the planner.
    pub fn sizes(&self) -> TableSizes {
        let tables = self
            .tables
            .iter()
            .map(|(name, batches)| {
                let rows = batches.iter().map(|b| b.num_rows()).sum();
                let width = batches.first().map_or(0, |b| b.num_columns());
                let columns = (0..width)
                    .map(|i| {
                        let bytes = |b: &RecordBatch| b.column(i).get_array_memory_size();
                        batches.iter().map(bytes).sum()
                    })
                    .collect();
                (*name, rows, columns)
            })
            .collect();
        TableSizes { tables }
    }
}

/// The sizes of a window's tables, as the planner is told them: rows and bytes per column.
#[derive(Debug)]
pub(crate) struct TableSizes {
    tables: Vec<(&'static str, usize, Vec<usize>)>,
}

impl TableSizes {
    /// Estimated rows and bytes of table `name`'s `projection`.
    fn estimate(&self, name: &str, projection: Option<&Vec<usize>>) -> Option<(usize, usize)> {
        let (_, rows, columns) = self.tables.iter().find(|(n, _, _)| *n == name)?;
        let bytes = match projection {
            Some(p) => p.iter().filter_map(|&i| columns.get(i)).sum(),
            None => columns.iter().sum(),
        };
        Some((*rows, bytes))
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
    /// Rows and bytes of the window it was planned for (estimates, never exact).
    estimate: Option<(usize, usize)>,
}

impl WindowScanExec {
    fn new(
        table: &'static str,
        schema: SchemaRef,
        projection: Option<Vec<usize>>,
        estimate: Option<(usize, usize)>,
    ) -> Result<Self> {
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
            estimate,
        })
    }

    /// The table it reads.
    pub fn table(&self) -> &'static str {
        self.table
    }

    /// The columns of the table it reads, if not all.
    pub fn projection(&self) -> Option<&Vec<usize>> {
        self.projection.as_ref()
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

    fn statistics_from_inputs(
        &self,
        _: &[Arc<Statistics>],
        _: &datafusion::physical_plan::statistics::StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.schema);
        if let Some((rows, bytes)) = self.estimate {
            stats = stats
                .with_num_rows(Precision::Inexact(rows))
                .with_total_byte_size(Precision::Inexact(bytes));
        }
        Ok(Arc::new(stats))
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
