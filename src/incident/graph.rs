//! The service call graph seen in recent windows: which service called which (a span whose
//! parent span belongs to another service). Alerts on neighbouring services belong to the
//! same incident, as a trace edge ties them together.

use std::collections::{BTreeSet, VecDeque};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::record_batch::RecordBatch;

/// Windows of edges kept.
const WINDOWS: usize = 5;
/// Edges kept per window at most (a bound on pathological inputs).
const MAX_EDGES: usize = 10_000;

/// The `spans` columns [`edges_of`] reads (built whatever the queries read): a span's
/// service and its parent's — the family column, so a span id repeated in a trace is the
/// parent its first row says, as for every query (`tables::family`).
pub const SPAN_COLUMNS: [&str; 2] = ["service", "parent_service"];

/// `caller -> callee` service pairs of one window's spans: a span whose parent span belongs
/// to another service.
pub fn edges_of(spans: &RecordBatch) -> BTreeSet<(String, String)> {
    let [Some(service), Some(parent_service)] = SPAN_COLUMNS.map(|c| spans.column_by_name(c))
    else {
        return BTreeSet::new();
    };
    let (callee, caller) = (
        service.as_string::<i32>(),
        parent_service.as_string::<i32>(),
    );
    // Collected borrowed and copied once each.
    let mut edges: BTreeSet<(&str, &str)> = BTreeSet::new();
    for row in 0..spans.num_rows() {
        if callee.is_null(row) || caller.is_null(row) {
            continue;
        }
        let (caller, callee) = (caller.value(row), callee.value(row));
        if caller != callee && edges.len() < MAX_EDGES {
            edges.insert((caller, callee));
        }
    }
    edges
        .into_iter()
        .map(|(caller, callee)| (caller.to_string(), callee.to_string()))
        .collect()
}

/// The call edges of the last few windows.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CallGraph {
    windows: VecDeque<BTreeSet<(String, String)>>,
}

impl CallGraph {
    pub fn push(&mut self, edges: BTreeSet<(String, String)>) {
        self.windows.push_back(edges);
        while self.windows.len() > WINDOWS {
            self.windows.pop_front();
        }
    }

    /// Whether `a` called `b` or `b` called `a` recently.
    pub fn adjacent(&self, a: &str, b: &str) -> bool {
        self.windows.iter().any(|w| {
            w.contains(&(a.to_string(), b.to_string()))
                || w.contains(&(b.to_string(), a.to_string()))
        })
    }
}
