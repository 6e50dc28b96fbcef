//! Aligner cases: sessions, windows, lateness, caps, revocation.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::UInt32Type;

use super::*;
use crate::model::{Attributes, LogRecord, Resource, SpanId, SpanRecord, StatusCode};

const S: i64 = 1_000_000_000;

/// A trace id named by a short label, or given as 32 hex digits.
fn trace_id(trace: &str) -> TraceId {
    match trace.len() {
        32 => TraceId::parse(trace),
        _ => TraceId::from_label(trace),
    }
}

/// The label a `trace_id` column shows for an id made by [`trace_id`] from one.
fn label(hex_id: &str) -> String {
    let bytes = const_hex::decode(hex_id).unwrap();
    let named = bytes
        .iter()
        .rposition(|b| *b != 0)
        .map_or(&[][..], |end| &bytes[..=end]);
    match std::str::from_utf8(named) {
        Ok(text) if text.bytes().all(|b| b.is_ascii_alphanumeric()) => text.to_string(),
        _ => hex_id.to_string(),
    }
}

/// Span `n` of a trace (span 0 is the root).
fn span_id(n: u32) -> SpanId {
    SpanId::from_bytes(&(u64::from(n) + 1).to_be_bytes())
        .unwrap()
        .unwrap()
}

fn span(trace: &str, id: u32, end_s: i64) -> Record {
    Record::Span(SpanRecord {
        start_time: EventTime(end_s * S - 100_000_000),
        end_time: EventTime(end_s * S),
        trace_id: trace_id(trace),
        span_id: span_id(id),
        parent_span_id: (id != 0).then(|| span_id(0)),
        name: format!("s{id}"),
        kind: "internal",
        status: StatusCode::Ok,
        status_message: None,
        resource: Arc::new(Resource::default()),
        scope: None,
        attributes: Attributes::new(),
        event_count: 0,
    })
}

fn log(trace: Option<&str>, at_s: i64) -> Record {
    Record::Log(LogRecord {
        time: EventTime(at_s * S),
        observed_time: None,
        trace_id: trace.map(trace_id),
        span_id: None,
        severity_number: 17,
        severity_text: None,
        body: "x".into(),
        resource: Arc::new(Resource::default()),
        scope: None,
        attributes: Attributes::new(),
        parsed: None,
    })
}

fn cfg() -> AlignConfig {
    AlignConfig {
        trace_gap: Duration::from_secs(10),
        ..AlignConfig::tumbling(Duration::from_secs(60))
    }
}

fn at(s: i64) -> EventTime {
    EventTime(s * S)
}

fn trace_rows(b: &RecordBatch) -> Vec<(String, u32, u32)> {
    let ids = b.column_by_name("trace_id").unwrap().as_string::<i32>();
    let spans = b
        .column_by_name("span_count")
        .unwrap()
        .as_primitive::<UInt32Type>();
    let logs = b
        .column_by_name("log_count")
        .unwrap()
        .as_primitive::<UInt32Type>();
    (0..b.num_rows())
        .map(|i| (label(ids.value(i)), spans.value(i), logs.value(i)))
        .collect()
}

#[test]
fn out_of_order_spans_and_logs_of_a_trace_end_in_one_batch() {
    let mut a = TraceAligner::new(cfg());
    a.insert(span("t1", 2, 30), 1).unwrap();
    a.insert(log(Some("t1"), 31), 2).unwrap();
    assert!(a.advance(at(35)).is_empty());
    a.insert(span("t1", 0, 25), 3).unwrap(); // 10 s out of order, session still open
    a.insert(log(None, 20), 4).unwrap();
    assert!(a.advance(at(60 + 9)).is_empty(), "waits for the trace gap");
    let out = a.advance(at(70));
    assert_eq!(out.len(), 1);
    let b = &out[0];
    assert_eq!(b.window.start, at(0));
    assert_eq!(trace_rows(&b.traces), vec![("t1".to_string(), 2, 1)]);
    assert_eq!(b.spans.num_rows(), 2);
    assert_eq!(b.logs.num_rows(), 2, "the trace's log and the loose one");
    let mut acks = b.acks.clone();
    acks.sort();
    assert_eq!(acks, vec![1, 2, 3, 4]);
    assert_eq!(a.buffered_bytes(), 0);
}

#[test]
fn a_trace_belongs_to_the_window_of_its_last_activity() {
    let mut a = TraceAligner::new(cfg());
    a.insert(span("t1", 1, 55), 1).unwrap();
    a.insert(span("t1", 0, 62), 2).unwrap();
    let out = a.advance(at(200));
    assert_eq!(out.len(), 1, "window [0,60) held nothing else");
    assert_eq!(out[0].window.start, at(60));
    assert_eq!(trace_rows(&out[0].traces), vec![("t1".to_string(), 2, 0)]);
}

#[test]
fn a_record_for_a_released_window_is_late_with_its_delay() {
    let mut a = TraceAligner::new(cfg());
    a.insert(span("t1", 0, 10), 1).unwrap();
    assert_eq!(a.advance(at(75)).len(), 1);
    let late = a.insert(span("t2", 0, 50), 2).unwrap_err();
    assert_eq!(late.delay(), Duration::from_secs(25));
    assert_eq!(late.window.start, at(0));
    assert_eq!(a.stats().late_records, 1);
    // A record of the next window is fine.
    a.insert(span("t3", 0, 61), 3).unwrap();
}

#[test]
fn a_late_record_of_a_closed_trace_joins_it_while_its_window_is_held() {
    let mut a = TraceAligner::new(AlignConfig {
        allowed_lateness: Duration::from_secs(30),
        ..cfg()
    });
    a.insert(span("t1", 0, 10), 1).unwrap();
    assert!(
        a.advance(at(80)).is_empty(),
        "closed, but the window waits 30 s more"
    );
    a.insert(log(Some("t1"), 12), 2).unwrap();
    let out = a.advance(at(100));
    assert_eq!(trace_rows(&out[0].traces), vec![("t1".to_string(), 1, 1)]);
}

#[test]
fn hopping_windows_see_a_record_in_each_window_and_release_it_once() {
    let mut a = TraceAligner::new(AlignConfig {
        slide: Duration::from_secs(60),
        ..AlignConfig::tumbling(Duration::from_secs(120))
    });
    a.insert(log(None, 70), 1).unwrap();
    let out = a.advance(at(1000));
    let starts: Vec<_> = out.iter().map(|b| b.window.start).collect();
    assert_eq!(starts, vec![at(0), at(60)]);
    assert!(out.iter().all(|b| b.logs.num_rows() == 1));
    assert_eq!(out[0].acks, Vec::<AckId>::new());
    assert_eq!(out[1].acks, vec![1]);
}

#[test]
fn max_trace_age_closes_a_trace_that_never_goes_quiet() {
    let mut a = TraceAligner::new(AlignConfig {
        max_trace_age: Duration::from_secs(30),
        ..cfg()
    });
    for s in 0..10 {
        a.insert(span("busy", s as u32, s * 5), s as u64).unwrap();
        a.advance(at(s * 5));
    }
    assert_eq!(a.stats().traces_closed_at_max_age, 1);
    assert_eq!(a.open_traces(), 1, "later records open a new fragment");
}

#[test]
fn the_open_trace_cap_closes_the_oldest_early_and_loses_nothing() {
    let mut a = TraceAligner::new(AlignConfig {
        max_open_traces: 3,
        ..cfg()
    });
    for i in 0..10 {
        a.insert(span(&format!("t{i}"), 0, i), i as u64).unwrap();
    }
    assert_eq!(a.open_traces(), 3);
    assert_eq!(a.stats().traces_closed_early_open_cap, 7);
    let out = a.flush();
    let rows: Vec<_> = out.iter().flat_map(|b| trace_rows(&b.traces)).collect();
    assert_eq!(rows.len(), 10);
    let early = out[0]
        .traces
        .column_by_name("closed_early")
        .unwrap()
        .as_boolean()
        .clone();
    assert_eq!(early.true_count(), 7);
}

#[test]
fn the_row_cap_splits_a_huge_trace() {
    let mut a = TraceAligner::new(AlignConfig {
        max_rows_per_trace: 4,
        ..cfg()
    });
    for i in 0..10 {
        a.insert(span("big", i, 1), i as u64).unwrap();
    }
    assert_eq!(a.stats().traces_closed_early_row_cap, 2);
    let out = a.flush();
    assert_eq!(out[0].spans.num_rows(), 10, "nothing dropped");
}

/// 1M traces open at once against a 2 MiB cap: memory stays under the cap after every
/// insert, nothing is dropped or late, and the counters say what happened.
#[test]
fn a_million_open_traces_stay_under_the_byte_cap() {
    let cap = 2 << 20;
    let mut a = TraceAligner::new(AlignConfig {
        max_buffered_bytes: cap,
        ..cfg()
    });
    let n: u64 = 1_000_000;
    let (mut rows, mut max_bytes) = (0usize, 0usize);
    for i in 0..n {
        // All within one minute: without caps every trace would still be open.
        let t = (i % 50) as i64;
        a.insert(span(&format!("{:032x}", i + 1), 0, t), i).unwrap();
        for b in a.enforce_byte_cap() {
            assert!(b.early);
            rows += b.spans.num_rows();
        }
        max_bytes = max_bytes.max(a.buffered_bytes());
    }
    assert!(max_bytes <= cap, "{max_bytes} > {cap}");
    rows += a.flush().iter().map(|b| b.spans.num_rows()).sum::<usize>();
    assert_eq!(rows as u64, n, "every record released");
    let st = a.stats();
    assert!(st.windows_emitted_early > 0);
    assert_eq!(st.traces_opened, n);
    assert_eq!(st.traces_closed, n);
    assert_eq!(st.late_records, 0);
}

#[test]
fn removing_revoked_acks_leaves_the_rest() {
    let mut a = TraceAligner::new(cfg());
    a.insert(span("t1", 0, 1), 1).unwrap();
    a.insert(span("t1", 1, 2), 2).unwrap();
    a.insert(log(None, 3), 3).unwrap();
    a.insert(span("t2", 0, 4), 2).unwrap();
    let mut removed = a.remove_acks(|ack| ack == 2);
    removed.sort();
    assert_eq!(removed, vec![2, 2]);
    assert_eq!(a.open_traces(), 1, "t2 had only revoked rows");
    let out = a.flush();
    assert_eq!(trace_rows(&out[0].traces), vec![("t1".to_string(), 1, 0)]);
    assert_eq!(out[0].logs.num_rows(), 1);
    assert_eq!(a.buffered_bytes(), 0);
}

/// The open-trace cap closes the trace least recently active, even when an older trace
/// became active again after it opened (its deadline moved past the others').
#[test]
fn the_open_trace_cap_closes_the_least_recently_active_trace() {
    let mut a = TraceAligner::new(AlignConfig {
        max_open_traces: 2,
        ..cfg()
    });
    a.insert(span("first", 0, 1), 0).unwrap();
    a.insert(span("second", 0, 2), 1).unwrap();
    a.insert(span("first", 1, 5), 2).unwrap();
    a.insert(span("third", 0, 6), 3).unwrap();
    assert_eq!(a.stats().traces_closed_early_open_cap, 1);
    let out = a.flush();
    let early: Vec<_> = out
        .iter()
        .flat_map(|b| {
            let ids = b
                .traces
                .column_by_name("trace_id")
                .unwrap()
                .as_string::<i32>();
            let early = b
                .traces
                .column_by_name("closed_early")
                .unwrap()
                .as_boolean();
            (0..b.traces.num_rows())
                .filter(|&i| early.value(i))
                .map(|i| label(ids.value(i)))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(early, ["second"]);
}

/// A trace whose later records moved its deadline stays open while the watermark passes its
/// first deadline, and closes once it has been quiet for the gap after its last record.
#[test]
fn a_trace_closes_a_gap_after_its_last_record_not_its_first() {
    let mut a = TraceAligner::new(cfg());
    a.insert(span("long", 0, 1), 0).unwrap();
    a.insert(span("long", 1, 8), 1).unwrap();
    a.insert(span("long", 2, 15), 2).unwrap();
    a.advance(at(20));
    assert_eq!(a.open_traces(), 1, "the gap after 15 s has not passed");
    a.advance(at(25));
    assert_eq!(a.open_traces(), 0);
    assert_eq!(a.stats().traces_closed, 1);
    assert_eq!(a.stats().traces_closed_at_max_age, 0);
    let out = a.flush();
    let rows: Vec<_> = out.iter().flat_map(|b| trace_rows(&b.traces)).collect();
    assert_eq!(rows, [("long".to_string(), 3, 0)]);
}
