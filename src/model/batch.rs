//! What alignment hands to rules and detectors: the tables of one event-time window.

use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;

use super::{AckId, EventTime, Record};

/// The half-open event-time interval `[start, end)` a batch covers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Window {
    pub start: EventTime,
    pub end: EventTime,
}

/// The tables of one window, ready for rules.
#[derive(Debug, Clone)]
pub struct AlignedBatch {
    pub window: Window,
    pub logs: RecordBatch,
    pub metrics: RecordBatch,
    pub spans: RecordBatch,
    /// One row per trace closed into this window (`schemas/tables.json`).
    pub traces: RecordBatch,
    /// Input messages whose rows are released with this batch, once per row.
    pub acks: Vec<AckId>,
    /// Released before the watermark passed, because a memory cap was reached.
    pub early: bool,
}

impl AlignedBatch {
    /// The data table `name` of this batch (`logs`, `metrics`, `spans` or `traces`;
    /// `window_bounds` is derived from `window` by `tables`).
    pub fn data_table(&self, name: &str) -> Option<&RecordBatch> {
        match name {
            "logs" => Some(&self.logs),
            "metrics" => Some(&self.metrics),
            "spans" => Some(&self.spans),
            "traces" => Some(&self.traces),
            _ => None,
        }
    }
}

/// One row of the `traces` table.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    pub trace_id: super::TraceId,
    pub start_time: EventTime,
    pub end_time: EventTime,
    /// The root span's duration, or end - start without a root.
    pub duration_ms: f64,
    pub has_root: bool,
    pub root_service: Option<String>,
    pub root_name: Option<String>,
    pub span_count: u32,
    pub error_count: u32,
    pub log_count: u32,
    /// Logs at severity ERROR (17) or above.
    pub error_log_count: u32,
    pub service_count: u32,
    /// The span with the most exclusive (self) time: where the time went.
    pub bottleneck_span: Option<String>,
    pub bottleneck_service: Option<String>,
    pub bottleneck_ms: Option<f64>,
    /// `bottleneck_ms / duration_ms`.
    pub bottleneck_share: Option<f64>,
    /// Closed before its session gap passed, because of a cap.
    pub closed_early: bool,
}
/// A record that arrived after its window was released.
#[derive(Debug, Clone)]
pub struct Late {
    pub record: Record,
    pub window: Window,
    pub watermark: EventTime,
}

impl Late {
    /// How far behind the watermark the record's event time was.
    pub fn delay(&self) -> Duration {
        let nanos = self.watermark.0.saturating_sub(self.record.event_time().0);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
    }
}
