//! The aligner: rows/s through `TraceAligner` against a baseline measured in the same run
//! (the same records straight into Arrow tables, no grouping by trace), and memory per open
//! trace, measured with a counting allocator and compared with the aligner's own estimate
//! that `limits.max_buffered_bytes` is enforced against.
//!
//! `cargo bench --bench align`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use faultline::align::{AlignConfig, TraceAligner};
use faultline::model::{
    Attributes, EventTime, Record, Resource, SpanId, SpanRecord, StatusCode, TraceId,
};
use faultline::tables;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const S: i64 = 1_000_000_000;

/// Span `s` of a trace (span 0 is the root).
fn span_id(s: usize) -> SpanId {
    SpanId::from_bytes(&(s as u64 + 1).to_be_bytes())
        .unwrap()
        .unwrap()
}

/// `traces` traces of `spans_per_trace` spans, 5 per second of event time, shared resource,
/// three attributes per span: an inference request's shape.
fn workload(traces: usize, spans_per_trace: usize) -> Vec<Record> {
    let resource = Arc::new(Resource::from_attributes(
        [
            ("service.name".to_string(), "inference-server".to_string()),
            ("host.name".to_string(), "gpu-node-7".to_string()),
        ]
        .into(),
    ));
    let mut out = Vec::with_capacity(traces * spans_per_trace);
    for t in 0..traces {
        let start = (t as i64) * S / 5;
        for s in 0..spans_per_trace {
            let attributes: Attributes = [
                ("gen_ai.request.model", "llama-3-8b"),
                ("http.route", "/v1/chat/completions"),
                (
                    "stage",
                    ["tokenize", "forward", "decode", "detokenize"][s % 4],
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            out.push(Record::Span(SpanRecord {
                start_time: EventTime(start + s as i64 * 10_000_000),
                end_time: EventTime(start + s as i64 * 10_000_000 + 9_000_000),
                trace_id: TraceId::from_bytes(&(t as u128 + 1).to_be_bytes())
                    .unwrap()
                    .unwrap(),
                span_id: span_id(s),
                parent_span_id: (s > 0).then(|| span_id(0)),
                name: ["tokenize", "forward", "decode", "detokenize"][s % 4].to_string(),
                kind: "internal",
                status: StatusCode::Ok,
                status_message: None,
                resource: resource.clone(),
                scope: None,
                attributes,
                event_count: 0,
            }));
        }
    }
    out
}

fn config() -> AlignConfig {
    AlignConfig {
        trace_gap: Duration::from_secs(2),
        ..AlignConfig::tumbling(Duration::from_secs(60))
    }
}

fn throughput(c: &mut Criterion) {
    let records = workload(20_000, 5);
    let mut g = c.benchmark_group("align");
    g.throughput(Throughput::Elements(records.len() as u64));
    g.sample_size(10);
    g.bench_function("baseline: records -> arrow tables", |b| {
        b.iter_batched(
            || records.clone(),
            |rs| {
                let spans: Vec<&SpanRecord> = rs
                    .iter()
                    .map(|r| match r {
                        Record::Span(s) => s,
                        _ => unreachable!(),
                    })
                    .collect();
                tables::spans_batch(&spans)
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("trace aligner: records -> aligned batches", |b| {
        b.iter_batched(
            || records.clone(),
            |rs| {
                let mut a = TraceAligner::new(config());
                let mut out = Vec::new();
                for (i, r) in rs.into_iter().enumerate() {
                    let t = r.event_time();
                    a.insert(r, i as u64).unwrap();
                    if i % 100 == 0 {
                        out.extend(a.advance(EventTime(t.0 - 5 * S)));
                    }
                }
                out.extend(a.flush());
                out
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// 1M open traces (one span each, all within the trace gap so none closes): heap bytes per
/// open trace, measured, against the estimate the byte cap uses.
fn memory_per_open_trace() {
    let n = 1_000_000;
    let base = LIVE.load(Ordering::Relaxed);
    let records: Vec<Record> = workload(n, 1)
        .into_iter()
        .map(|mut r| {
            if let Record::Span(s) = &mut r {
                // Same second for all: every trace stays open.
                s.start_time = EventTime(0);
                s.end_time = EventTime(9_000_000);
            }
            r
        })
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    let mut a = TraceAligner::new(config());
    for (i, r) in records.into_iter().enumerate() {
        a.insert(r, i as u64).unwrap();
    }
    let after = LIVE.load(Ordering::Relaxed);
    // The records moved in (their Vec was freed); what remains above `base` is the held
    // state: records plus the aligner's index structures.
    let per_trace_total = (after - base) as f64 / n as f64;
    let record_bytes = (before - base) as f64 / n as f64;
    println!(
        "memory: {} open traces; heap per open trace {:.0} B (the record alone: {:.0} B); \
         the estimate the byte cap counts: {:.0} B per trace = {:.2}x the measured heap",
        a.open_traces(),
        per_trace_total,
        record_bytes,
        a.buffered_bytes() as f64 / n as f64,
        a.buffered_bytes() as f64 / (after - base) as f64,
    );
}

criterion_group!(benches, throughput);

fn main() {
    benches();
    memory_per_open_trace();
    Criterion::default().configure_from_args().final_summary();
}
