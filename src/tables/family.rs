//! The `spans` table's family columns: each span's parent and children among the window's
//! spans. A window holds whole traces, so these are what a self-join of `spans` on
//! `(trace_id, parent_span_id) = (trace_id, span_id)` finds — computed once per window from
//! the binary ids instead of by every query that needs them (the join hashed and compared
//! the hex strings of both sides, and it was a tenth of a file run's instructions with the
//! default pipeline's two indicators that did it; BENCHMARKS.md, "Twelfth session").
//!
//! A span id that occurs more than once in a trace (a duplicate delivery) counts once: its
//! first row in the window is the parent every child sees, and every row with that id has
//! the same children, compared with that first row's service.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Builder, StringBuilder, UInt32Builder};

use crate::model::{SpanId, SpanRecord, TraceId};

/// What the children of one span id add up to.
#[derive(Default, Clone, Copy)]
struct Children {
    count: u32,
    duration_ms: f64,
    /// Children whose service is set and is not the (first) parent row's.
    remote: u32,
}

/// The family columns of `spans`, in the table's order: `parent_service`,
/// `parent_duration_ms`, `child_count`, `child_ms`, `remote_child_count`.
pub(super) fn family_columns(spans: &[&SpanRecord]) -> [ArrayRef; 5] {
    let n = spans.len();
    // The first row of each (trace, span) id, and so each row's own first row.
    let mut first: foldhash::HashMap<(TraceId, SpanId), usize> =
        foldhash::HashMap::with_capacity_and_hasher(n, Default::default());
    let own: Vec<usize> = spans
        .iter()
        .enumerate()
        .map(|(row, s)| *first.entry((s.trace_id, s.span_id)).or_insert(row))
        .collect();
    let parent: Vec<Option<usize>> = spans
        .iter()
        .map(|s| first.get(&(s.trace_id, s.parent_span_id?)).copied())
        .collect();
    // Indexed by the first row of the parent id; in row order, so sums add up as a
    // grouped `sum` over the table would.
    let mut children = vec![Children::default(); n];
    for (s, p) in spans.iter().zip(&parent) {
        let Some(p) = *p else { continue };
        let c = &mut children[p];
        c.count += 1;
        c.duration_ms += s.duration_ms();
        let service = s.resource.service.as_deref();
        if service.is_some() && service != spans[p].resource.service.as_deref() {
            c.remote += 1;
        }
    }
    let parent_service_of =
        |p: &Option<usize>| p.and_then(|p| spans[p].resource.service.as_deref());
    let service_bytes = parent
        .iter()
        .filter_map(parent_service_of)
        .map(str::len)
        .sum();
    let mut parent_service = StringBuilder::with_capacity(n, service_bytes);
    let mut parent_duration = Float64Builder::with_capacity(n);
    let mut count = UInt32Builder::with_capacity(n);
    let mut child_ms = Float64Builder::with_capacity(n);
    let mut remote = UInt32Builder::with_capacity(n);
    for (p, &own) in parent.iter().zip(&own) {
        parent_service.append_option(parent_service_of(p));
        parent_duration.append_option(p.map(|p| spans[p].duration_ms()));
        let c = children[own];
        count.append_value(c.count);
        child_ms.append_value(c.duration_ms);
        remote.append_value(c.remote);
    }
    [
        Arc::new(parent_service.finish()),
        Arc::new(parent_duration.finish()),
        Arc::new(count.finish()),
        Arc::new(child_ms.finish()),
        Arc::new(remote.finish()),
    ]
}

#[cfg(test)]
#[path = "family_tests.rs"]
mod tests;
