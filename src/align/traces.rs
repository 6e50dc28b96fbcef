//! [`TraceAligner`]: per-trace session windows feeding tumbling or hopping time windows.
//!
//! A record with a trace id joins its trace's open session; a trace closes when the
//! watermark passes its last activity plus `trace_gap` (or its first activity plus
//! `max_trace_age`) and moves, whole, into the time bucket of its last activity. Records
//! without a trace id go straight into the bucket of their own time. Buckets are `slide`
//! long; window `[s, s + size)` is released when the watermark passes
//! `s + size + trace_gap + allowed_lateness`, which guarantees every trace that ended in it
//! has closed.

use std::collections::{BTreeMap, BTreeSet};

use super::{summarize, AlignConfig, AlignStats};
use crate::model::{duration_nanos, AckId, AlignedBatch, EventTime, Late, Record, TraceId, Window};
use crate::tables::{self, ColumnSet};

struct Row {
    record: Record,
    ack: AckId,
}

struct OpenTrace {
    first: EventTime,
    last: EventTime,
    /// The deadline its entry in `deadlines` is filed under: the deadline when the entry
    /// was made, never later than the current one (deadlines only move later).
    filed: EventTime,
    rows: Vec<Row>,
}

struct ClosedTrace {
    rows: Vec<Row>,
    closed_early: bool,
    /// Closed because its session went quiet: a straggler still joins it. Traces closed by
    /// age or a cap take no more rows; later records start a new fragment, which merges
    /// back here if it closes into the same window.
    takes_stragglers: bool,
}

#[derive(Default)]
struct Bucket {
    /// Records without a trace id.
    loose: Vec<Row>,
    /// Closed traces whose last activity falls in this bucket, by trace id.
    traces: BTreeMap<TraceId, ClosedTrace>,
}

enum CloseReason {
    Gap,
    MaxAge,
    OpenCap,
    RowCap,
    /// Its window is being released early for the byte cap.
    ByteCap,
}

/// Estimated bytes of the index entries one trace costs besides its records: its entries in
/// the open map, the deadline set and the closed index, ids inline (measured by
/// `benches/align.rs`).
const TRACE_OVERHEAD: usize = 200;

pub struct TraceAligner {
    cfg: AlignConfig,
    size: i64,
    slide: i64,
    gap: i64,
    max_age: i64,
    release_delay: i64,
    watermark: EventTime,
    open: foldhash::HashMap<TraceId, OpenTrace>,
    /// One `(filed deadline, trace id)` per open trace. A record that moves its trace's
    /// deadline does not re-file it: an entry found due is re-filed under the trace's
    /// current deadline then, so the first entry that is current is the earliest deadline,
    /// at a fraction of the cost of keeping every entry current.
    deadlines: BTreeSet<(EventTime, TraceId)>,
    /// Bucket of every closed trace whose bucket is still held.
    closed_in: foldhash::HashMap<TraceId, EventTime>,
    buckets: BTreeMap<EventTime, Bucket>,
    /// Start of the first window not yet released.
    next_start: Option<EventTime>,
    bytes: usize,
    stats: AlignStats,
    /// The columns of the tables to build (all until the pipeline says which it reads).
    columns: ColumnSet,
}

impl TraceAligner {
    /// `size` must be a whole multiple of `slide` (config validation checks it).
    pub fn new(cfg: AlignConfig) -> Self {
        let slide = duration_nanos(cfg.slide).max(1);
        let size = (duration_nanos(cfg.size) / slide).max(1) * slide;
        let gap = duration_nanos(cfg.trace_gap);
        TraceAligner {
            size,
            slide,
            gap,
            max_age: duration_nanos(cfg.max_trace_age),
            release_delay: gap.saturating_add(duration_nanos(cfg.allowed_lateness)),
            cfg,
            watermark: EventTime::MIN,
            open: Default::default(),
            deadlines: BTreeSet::new(),
            closed_in: Default::default(),
            buckets: BTreeMap::new(),
            next_start: None,
            bytes: 0,
            stats: AlignStats::default(),
            columns: ColumnSet::all(),
        }
    }

    /// Builds only `columns` of the tables of the windows released from now on: the others
    /// hold placeholders (`tables::ColumnSet`).
    pub fn build_columns(&mut self, columns: ColumnSet) {
        self.columns = columns;
    }

    pub fn watermark(&self) -> EventTime {
        self.watermark
    }

    /// Where event time stands: the watermark and the first window not yet released (for a
    /// checkpoint; open traces and windows are re-read from their input instead).
    pub fn progress(&self) -> (EventTime, Option<EventTime>) {
        (self.watermark, self.next_start)
    }

    /// Resumes from a checkpoint's [`TraceAligner::progress`]: records of windows released
    /// before it are late.
    pub fn resume(&mut self, (watermark, next_start): (EventTime, Option<EventTime>)) {
        self.watermark = self.watermark.max(watermark);
        self.next_start = self.next_start.max(next_start);
    }

    pub fn stats(&self) -> AlignStats {
        AlignStats {
            buffered_bytes: self.bytes as u64,
            open_traces: self.open.len() as u64,
            ..self.stats.clone()
        }
    }

    pub fn open_traces(&self) -> usize {
        self.open.len()
    }

    /// Estimated bytes of records held (open traces and unreleased buckets).
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    fn bucket_of(&self, t: EventTime) -> EventTime {
        EventTime(t.0.div_euclid(self.slide) * self.slide)
    }

    /// The last window (by start) that contains time `t`, for late reports.
    fn window_of(&self, t: EventTime) -> Window {
        let start = self.bucket_of(t);
        Window {
            start,
            end: EventTime(start.0.saturating_add(self.size)),
        }
    }

    fn deadline(&self, first: EventTime, last: EventTime) -> EventTime {
        EventTime(
            last.0
                .saturating_add(self.gap)
                .min(first.0.saturating_add(self.max_age)),
        )
    }

    fn is_late(&self, t: EventTime) -> bool {
        self.next_start.is_some_and(|s| self.bucket_of(t) < s)
    }

    /// Places a record, or hands it back as late when every window that could hold it has
    /// been released.
    pub fn insert(&mut self, record: Record, ack: AckId) -> Result<(), Box<Late>> {
        let t = record.event_time();
        let bytes = record.approx_bytes();
        let Some(id) = record.trace_id() else {
            if self.is_late(t) {
                return Err(self.late(record));
            }
            let b = self.bucket_of(t);
            self.buckets
                .entry(b)
                .or_default()
                .loose
                .push(Row { record, ack });
            self.bytes += bytes;
            return Ok(());
        };
        if let Some(tr) = self.open.get_mut(&id) {
            // Its deadline entry is not touched: `due_trace` re-files it when it comes due.
            tr.last = tr.last.max(t);
            let full = tr.rows.len() + 1 >= self.cfg.max_rows_per_trace;
            tr.rows.push(Row { record, ack });
            self.bytes += bytes;
            if full {
                self.close(id, CloseReason::RowCap);
            }
            return Ok(());
        }
        // A straggler of a trace that closed into a window not yet released joins it there.
        if let Some(b) = self.closed_in.get(&id) {
            let bucket = self
                .buckets
                .get_mut(b)
                .expect("closed_in points at a held bucket");
            let tr = bucket.traces.get_mut(&id).expect("indexed trace");
            if tr.takes_stragglers {
                tr.rows.push(Row { record, ack });
                self.bytes += bytes;
                return Ok(());
            }
        }
        if self.is_late(t) {
            return Err(self.late(record));
        }
        self.stats.traces_opened += 1;
        self.bytes += TRACE_OVERHEAD;
        let filed = self.deadline(t, t);
        self.deadlines.insert((filed, id));
        self.open.insert(
            id,
            OpenTrace {
                first: t,
                last: t,
                filed,
                rows: vec![Row { record, ack }],
            },
        );
        self.bytes += bytes;
        if self.cfg.max_rows_per_trace <= 1 {
            self.close(id, CloseReason::RowCap);
        }
        while self.open.len() > self.cfg.max_open_traces {
            let oldest = self
                .due_trace(EventTime::MAX)
                .expect("open traces have deadlines");
            self.close(oldest, CloseReason::OpenCap);
        }
        Ok(())
    }

    /// The open trace with the earliest deadline, if that deadline is at or before `by`:
    /// entries filed under an earlier deadline than their trace's are re-filed on the way.
    fn due_trace(&mut self, by: EventTime) -> Option<TraceId> {
        loop {
            let &(filed, id) = self.deadlines.first()?;
            if filed > by {
                return None;
            }
            let tr = &self.open[&id];
            let current = self.deadline(tr.first, tr.last);
            if current == filed {
                return Some(id);
            }
            let (_, id) = self.deadlines.pop_first().expect("checked");
            self.open.get_mut(&id).expect("indexed").filed = current;
            self.deadlines.insert((current, id));
        }
    }

    fn late(&mut self, record: Record) -> Box<Late> {
        self.stats.late_records += 1;
        let window = self.window_of(record.event_time());
        Box::new(Late {
            record,
            window,
            watermark: self.watermark,
        })
    }

    fn close(&mut self, trace_id: TraceId, reason: CloseReason) {
        let Some(tr) = self.open.remove(&trace_id) else {
            return;
        };
        self.deadlines.remove(&(tr.filed, trace_id));
        self.stats.traces_closed += 1;
        let quiet = matches!(reason, CloseReason::Gap);
        let early = match reason {
            CloseReason::Gap => false,
            CloseReason::MaxAge => {
                self.stats.traces_closed_at_max_age += 1;
                false
            }
            CloseReason::OpenCap => {
                self.stats.traces_closed_early_open_cap += 1;
                true
            }
            CloseReason::RowCap => {
                self.stats.traces_closed_early_row_cap += 1;
                true
            }
            CloseReason::ByteCap => true,
        };
        // Never into a released window (cannot happen for gap closes; a guard for the rest).
        let mut b = self.bucket_of(tr.last);
        if let Some(s) = self.next_start {
            b = b.max(s);
        }
        let bucket = self.buckets.entry(b).or_default();
        match bucket.traces.get_mut(&trace_id) {
            Some(existing) => {
                existing.rows.extend(tr.rows);
                existing.closed_early |= early;
                existing.takes_stragglers = quiet;
                self.bytes -= TRACE_OVERHEAD;
            }
            None => {
                bucket.traces.insert(
                    trace_id,
                    ClosedTrace {
                        rows: tr.rows,
                        closed_early: early,
                        takes_stragglers: quiet,
                    },
                );
            }
        }
        self.closed_in.insert(trace_id, b);
    }

    /// Start of the next window to release, if any bucket holds data.
    fn first_pending_window(&self) -> Option<EventTime> {
        let (&b, _) = self.buckets.first_key_value()?;
        let candidate = EventTime(b.0.saturating_sub(self.size - self.slide));
        Some(match self.next_start {
            Some(s) => candidate.max(s),
            None => candidate,
        })
    }

    /// Moves the watermark forward (never back): closes traces whose session ended and
    /// releases every window it passed, oldest first.
    pub fn advance(&mut self, watermark: EventTime) -> Vec<AlignedBatch> {
        if watermark <= self.watermark {
            return Vec::new();
        }
        self.watermark = watermark;
        while let Some(id) = self.due_trace(watermark) {
            let tr = &self.open[&id];
            let reason = if tr.last.0.saturating_add(self.gap) <= watermark.0 {
                CloseReason::Gap
            } else {
                CloseReason::MaxAge
            };
            self.close(id, reason);
        }
        let mut out = Vec::new();
        while let Some(s) = self.first_pending_window() {
            if s.0
                .saturating_add(self.size)
                .saturating_add(self.release_delay)
                > watermark.0
            {
                break;
            }
            out.push(self.release(s, false));
        }
        out
    }

    /// Releases everything: end of input.
    pub fn flush(&mut self) -> Vec<AlignedBatch> {
        let ids: Vec<TraceId> = self.deadlines.iter().map(|&(_, id)| id).collect();
        for id in ids {
            self.close(id, CloseReason::Gap);
        }
        let mut out = Vec::new();
        while let Some(s) = self.first_pending_window() {
            out.push(self.release(s, false));
        }
        out
    }

    /// Enforces `max_buffered_bytes`: releases what the oldest window holds early (closing
    /// the traces that ended in it) until under the cap. The window stays open: records that
    /// arrive for it later are released with it as usual, not late.
    pub fn enforce_byte_cap(&mut self) -> Vec<AlignedBatch> {
        let mut out = Vec::new();
        while self.bytes > self.cfg.max_buffered_bytes {
            let Some(s) = self.first_pending_window() else {
                // Everything is in open traces: close the least recently active one.
                let Some(id) = self.due_trace(EventTime::MAX) else {
                    break;
                };
                self.close(id, CloseReason::ByteCap);
                continue;
            };
            let end = EventTime(s.0.saturating_add(self.size));
            let mut ending: Vec<TraceId> = self
                .open
                .iter()
                .filter(|(_, tr)| tr.last < end)
                .map(|(&id, _)| id)
                .collect();
            ending.sort();
            for id in ending {
                self.close(id, CloseReason::ByteCap);
            }
            out.push(self.release(s, true));
        }
        out
    }

    /// Removes every held row whose ack matches (their partition was revoked: the new owner
    /// reads them again). Returns the removed rows' acks, once per row.
    pub fn remove_acks(&mut self, mut matches: impl FnMut(AckId) -> bool) -> Vec<AckId> {
        let mut removed = Vec::new();
        let mut take = |rows: &mut Vec<Row>| {
            rows.retain(|r| {
                if matches(r.ack) {
                    removed.push(r.ack);
                    false
                } else {
                    true
                }
            });
        };
        let mut emptied = Vec::new();
        for (id, tr) in self.open.iter_mut() {
            take(&mut tr.rows);
            if tr.rows.is_empty() {
                emptied.push((*id, tr.filed));
            }
        }
        for bucket in self.buckets.values_mut() {
            take(&mut bucket.loose);
            for tr in bucket.traces.values_mut() {
                take(&mut tr.rows);
            }
        }
        for (id, filed) in emptied {
            self.open.remove(&id);
            self.deadlines.remove(&(filed, id));
        }
        for bucket in self.buckets.values_mut() {
            bucket.traces.retain(|_, tr| !tr.rows.is_empty());
        }
        let buckets = &self.buckets;
        self.closed_in
            .retain(|id, b| buckets.get(b).is_some_and(|bk| bk.traces.contains_key(id)));
        self.buckets
            .retain(|_, b| !b.loose.is_empty() || !b.traces.is_empty());
        self.bytes = self.recount();
        removed
    }

    /// Bytes of everything held, counted from scratch.
    fn recount(&self) -> usize {
        let rows = |rows: &[Row]| rows.iter().map(|r| r.record.approx_bytes()).sum::<usize>();
        let open: usize = self
            .open
            .values()
            .map(|tr| TRACE_OVERHEAD + rows(&tr.rows))
            .sum();
        let held: usize = self
            .buckets
            .values()
            .map(|b| {
                rows(&b.loose)
                    + b.traces
                        .values()
                        .map(|tr| TRACE_OVERHEAD + rows(&tr.rows))
                        .sum::<usize>()
            })
            .sum();
        open + held
    }

    /// Logs, metrics, spans and traces held for `[s, end)`: counted first, so that a
    /// window's vectors are allocated once at their size.
    fn counts(&self, s: EventTime, end: EventTime) -> [usize; 4] {
        let mut counts = [0; 4];
        for bucket in self.buckets.range(s..end).map(|(_, b)| b) {
            let loose = bucket.loose.iter();
            for r in loose.chain(bucket.traces.values().flat_map(|t| t.rows.iter())) {
                counts[match r.record {
                    Record::Log(_) => 0,
                    Record::Metric(_) => 1,
                    Record::Span(_) => 2,
                }] += 1;
            }
            counts[3] += bucket.traces.len();
        }
        counts
    }

    /// Builds the batch of window `[s, s + size)` and drops the buckets no later window
    /// needs.
    fn release(&mut self, s: EventTime, early: bool) -> AlignedBatch {
        let end = EventTime(s.0.saturating_add(self.size));
        let [log_count, metric_count, span_count, trace_count] = self.counts(s, end);
        let mut logs = Vec::with_capacity(log_count);
        let mut metrics = Vec::with_capacity(metric_count);
        let mut spans = Vec::with_capacity(span_count);
        let mut summaries = Vec::with_capacity(trace_count);
        for bucket in self.buckets.range(s..end).map(|(_, b)| b) {
            let loose = bucket.loose.iter().map(|r| &r.record);
            let traced = bucket
                .traces
                .values()
                .flat_map(|t| t.rows.iter().map(|r| &r.record));
            for r in loose.chain(traced) {
                match r {
                    Record::Log(l) => logs.push(l),
                    Record::Metric(m) => metrics.push(&**m),
                    Record::Span(sp) => spans.push(sp),
                }
            }
            for (id, tr) in &bucket.traces {
                summaries.push(summarize(
                    *id,
                    tr.rows.iter().map(|r| &r.record),
                    tr.closed_early,
                ));
            }
        }
        let batch_tables = (
            tables::logs_table(&logs, self.columns.of("logs")),
            tables::metrics_table(&metrics, self.columns.of("metrics")),
            tables::spans_table(&spans, self.columns.of("spans")),
            tables::traces_table(&summaries, self.columns.of("traces")),
        );
        // Buckets before the next window's start are needed by no later window.
        let next = EventTime(s.0.saturating_add(self.slide));
        let keep = self.buckets.split_off(&next);
        let dropped = std::mem::replace(&mut self.buckets, keep);
        let mut acks = Vec::new();
        for (_, bucket) in dropped {
            for r in &bucket.loose {
                acks.push(r.ack);
                self.bytes -= r.record.approx_bytes();
            }
            for (id, tr) in bucket.traces {
                self.closed_in.remove(&id);
                self.bytes -= TRACE_OVERHEAD;
                for r in &tr.rows {
                    acks.push(r.ack);
                    self.bytes -= r.record.approx_bytes();
                }
            }
        }
        self.stats.windows_emitted += 1;
        if early {
            self.stats.windows_emitted_early += 1;
        } else {
            self.next_start = Some(next);
        }
        let (logs, metrics, spans, traces) = batch_tables;
        AlignedBatch {
            window: Window { start: s, end },
            logs,
            metrics,
            spans,
            traces,
            acks,
            early,
        }
    }
}

#[cfg(test)]
mod tests;
