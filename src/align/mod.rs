//! Alignment: assigns records to tumbling event-time windows and releases each window as an
//! [`AlignedBatch`] of Arrow tables once the watermark passes its end.
//!
//! Pure and deterministic: time comes only from record timestamps and from watermarks the
//! caller passes in; no I/O. A record whose window has already been released is returned to
//! the caller as late, never dropped here.

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;

use crate::model::{duration_nanos, EventTime, LogRecord, MetricPoint, Record, SpanRecord};
use crate::tables;

/// Identifies the input message a record came from, so its offset can be committed once
/// everything derived from it is delivered.
pub type AckId = u64;

/// The half-open event-time interval `[start, end)` a batch covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub start: EventTime,
    pub end: EventTime,
}

/// The tables of one closed window, ready for rules.
#[derive(Debug, Clone)]
pub struct AlignedBatch {
    pub window: Window,
    pub logs: RecordBatch,
    pub metrics: RecordBatch,
    pub spans: RecordBatch,
    /// Input messages that contributed rows, once per row.
    pub acks: Vec<AckId>,
}

impl AlignedBatch {
    pub fn table(&self, name: &str) -> Option<&RecordBatch> {
        match name {
            "logs" => Some(&self.logs),
            "metrics" => Some(&self.metrics),
            "spans" => Some(&self.spans),
            _ => None,
        }
    }
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

#[derive(Default)]
struct OpenWindow {
    logs: Vec<LogRecord>,
    metrics: Vec<MetricPoint>,
    spans: Vec<SpanRecord>,
    acks: Vec<AckId>,
}

/// Tumbling windows with a bounded-out-of-orderness watermark.
pub struct WindowAligner {
    size: i64,
    out_of_orderness: Duration,
    watermark: EventTime,
    open: BTreeMap<EventTime, OpenWindow>,
}

impl WindowAligner {
    pub fn new(size: Duration, out_of_orderness: Duration) -> Self {
        WindowAligner {
            size: duration_nanos(size).max(1),
            out_of_orderness,
            watermark: EventTime::MIN,
            open: BTreeMap::new(),
        }
    }

    pub fn watermark(&self) -> EventTime {
        self.watermark
    }

    pub fn window_of(&self, t: EventTime) -> Window {
        let start = t.0.div_euclid(self.size) * self.size;
        Window {
            start: EventTime(start),
            end: EventTime(start.saturating_add(self.size)),
        }
    }

    /// Places a record in its window, or hands it back as late when that window is closed.
    pub fn insert(&mut self, record: Record, ack: AckId) -> Result<(), Box<Late>> {
        let window = self.window_of(record.event_time());
        if window.end <= self.watermark {
            return Err(Box::new(Late {
                record,
                window,
                watermark: self.watermark,
            }));
        }
        let open = self.open.entry(window.start).or_default();
        open.acks.push(ack);
        match record {
            Record::Log(l) => open.logs.push(l),
            Record::Metric(m) => open.metrics.push(m),
            Record::Span(s) => open.spans.push(s),
        }
        Ok(())
    }

    /// The watermark implied by having seen event time `t`.
    pub fn watermark_after(&self, t: EventTime) -> EventTime {
        t.saturating_sub(self.out_of_orderness)
    }

    /// Moves the watermark forward (never back) and releases every window it passed, oldest
    /// first.
    pub fn advance(&mut self, watermark: EventTime) -> Vec<AlignedBatch> {
        if watermark <= self.watermark {
            return Vec::new();
        }
        self.watermark = watermark;
        let mut closed = Vec::new();
        while let Some((&start, _)) = self.open.first_key_value() {
            let window = self.window_of(start);
            if window.end > watermark {
                break;
            }
            let open = self.open.remove(&start).expect("first key exists");
            closed.push(Self::batch(window, open));
        }
        closed
    }

    /// Releases every open window: end of input.
    pub fn flush(&mut self) -> Vec<AlignedBatch> {
        let end = self
            .open
            .keys()
            .next_back()
            .map(|start| self.window_of(*start).end)
            .unwrap_or(self.watermark);
        self.advance(end)
    }

    /// Number of windows not yet released.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    fn batch(window: Window, open: OpenWindow) -> AlignedBatch {
        AlignedBatch {
            window,
            logs: tables::logs_batch(&open.logs),
            metrics: tables::metrics_batch(&open.metrics),
            spans: tables::spans_batch(&open.spans),
            acks: open.acks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attributes, Resource};

    fn log(secs: i64) -> Record {
        Record::Log(LogRecord {
            time: EventTime(secs * 1_000_000_000),
            observed_time: None,
            trace_id: None,
            span_id: None,
            severity_number: 9,
            severity_text: None,
            body: format!("at {secs}"),
            resource: Resource::default(),
            scope: None,
            attributes: Attributes::new(),
        })
    }

    fn s(secs: i64) -> EventTime {
        EventTime(secs * 1_000_000_000)
    }

    #[test]
    fn windows_close_when_the_watermark_passes_their_end() {
        let mut a = WindowAligner::new(Duration::from_secs(60), Duration::from_secs(5));
        a.insert(log(10), 1).unwrap();
        a.insert(log(70), 2).unwrap();
        assert!(
            a.advance(a.watermark_after(s(64))).is_empty(),
            "59 s < 60 s"
        );
        let closed = a.advance(a.watermark_after(s(65)));
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].window.start, s(0));
        assert_eq!(closed[0].logs.num_rows(), 1);
        assert_eq!(closed[0].acks, vec![1]);
        assert_eq!(a.open_windows(), 1);
    }

    #[test]
    fn out_of_order_record_within_bound_joins_its_window() {
        let mut a = WindowAligner::new(Duration::from_secs(60), Duration::from_secs(5));
        a.insert(log(62), 1).unwrap();
        a.advance(a.watermark_after(s(62)));
        a.insert(log(58), 2).unwrap(); // 4 s out of order, window [0, 60) still open
        let closed = a.flush();
        assert_eq!(closed.len(), 2);
        assert_eq!(closed[0].logs.num_rows(), 1);
        assert_eq!(closed[0].acks, vec![2]);
    }

    #[test]
    fn record_behind_a_closed_window_is_late_with_its_delay() {
        let mut a = WindowAligner::new(Duration::from_secs(60), Duration::from_secs(5));
        a.insert(log(1), 1).unwrap();
        assert_eq!(a.advance(a.watermark_after(s(130))).len(), 1);
        let late = a.insert(log(30), 2).unwrap_err();
        assert_eq!(late.watermark, s(125));
        assert_eq!(late.delay(), Duration::from_secs(95));
        assert_eq!(late.window.end, s(60));
    }

    #[test]
    fn watermark_never_moves_back() {
        let mut a = WindowAligner::new(Duration::from_secs(60), Duration::ZERO);
        a.advance(s(100));
        a.advance(s(50));
        assert_eq!(a.watermark(), s(100));
    }

    #[test]
    fn negative_times_fall_into_the_right_window() {
        let a = WindowAligner::new(Duration::from_secs(60), Duration::ZERO);
        assert_eq!(a.window_of(s(-1)).start, s(-60));
    }
}
