//! Alignment: groups records by `trace_id` into per-trace session windows in event time and
//! releases them, with the records that carry no trace id, as [`AlignedBatch`]es of Arrow
//! tables for tumbling or hopping time windows, once the watermark has passed.
//!
//! Pure and deterministic: time comes only from record timestamps and the watermarks the
//! caller passes in; no I/O. State is bounded by caps; a cap closes the oldest state early
//! (counted), never drops it. A record whose window was already released is handed back as
//! late, never dropped here.

mod summary;
mod traces;
mod watermark;

use std::time::Duration;

use serde::Serialize;

pub use summary::summarize;
pub use traces::TraceAligner;
pub use watermark::WatermarkTracker;

/// How the aligner windows and what it may hold. See `config::WindowConfig`,
/// `TraceConfig` and `LimitsConfig` for the user-facing meaning.
#[derive(Debug, Clone)]
pub struct AlignConfig {
    pub size: Duration,
    pub slide: Duration,
    pub trace_gap: Duration,
    pub max_trace_age: Duration,
    pub allowed_lateness: Duration,
    pub max_open_traces: usize,
    pub max_rows_per_trace: usize,
    pub max_buffered_bytes: usize,
}

impl AlignConfig {
    /// Tumbling windows of `size`, no trace gap or lateness, generous caps: for tests.
    pub fn tumbling(size: Duration) -> Self {
        AlignConfig {
            size,
            slide: size,
            trace_gap: Duration::ZERO,
            max_trace_age: Duration::from_secs(3600),
            allowed_lateness: Duration::ZERO,
            max_open_traces: usize::MAX,
            max_rows_per_trace: usize::MAX,
            max_buffered_bytes: usize::MAX,
        }
    }
}

/// What the aligner did, for the overflow and lateness counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlignStats {
    /// Estimated bytes held now (open traces and unevaluated windows).
    pub buffered_bytes: u64,
    /// Open traces now.
    pub open_traces: u64,
    pub traces_opened: u64,
    pub traces_closed: u64,
    /// Closed because `traces.max_age` passed while they were still active.
    pub traces_closed_at_max_age: u64,
    /// Closed early because `limits.max_open_traces` was reached (the least recently active).
    pub traces_closed_early_open_cap: u64,
    /// Closed early because one trace reached `limits.max_rows_per_trace`.
    pub traces_closed_early_row_cap: u64,
    pub windows_emitted: u64,
    /// Windows released before the watermark passed, because of `limits.max_buffered_bytes`.
    pub windows_emitted_early: u64,
    pub late_records: u64,
}

impl AlignStats {
    /// Adds another shard's counters (and current sizes) to these.
    pub fn add(&mut self, o: &AlignStats) {
        self.buffered_bytes += o.buffered_bytes;
        self.open_traces += o.open_traces;
        self.traces_opened += o.traces_opened;
        self.traces_closed += o.traces_closed;
        self.traces_closed_at_max_age += o.traces_closed_at_max_age;
        self.traces_closed_early_open_cap += o.traces_closed_early_open_cap;
        self.traces_closed_early_row_cap += o.traces_closed_early_row_cap;
        self.windows_emitted += o.windows_emitted;
        self.windows_emitted_early += o.windows_emitted_early;
        self.late_records += o.late_records;
    }
}
