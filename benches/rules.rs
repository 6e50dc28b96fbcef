//! Rule evaluation per aligned batch: the six shipped inference rules on one minute of the
//! example incident, against a baseline measured in the same run (one trivial rule,
//! `SELECT count(*) AS value FROM spans`, on the same batch: the fixed cost of running any
//! query).
//!
//! `cargo bench --bench rules`

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use faultline::align::{AlignConfig, TraceAligner};
use faultline::decode::{Decoder, Encoding, MessageContext};
use faultline::model::AlignedBatch;
use faultline::rules::{parse_rule, EvalLimits, RuleEngine, Unbounded};

/// The minute 12:10-12:11 of the example (mid-incident), as the aligner releases it.
fn batch(root: &Path) -> AlignedBatch {
    let text = std::fs::read_to_string(root.join("examples/incident.jsonl")).unwrap();
    let decoder = Decoder::new(1 << 20);
    let ctx = MessageContext {
        encoding: Encoding::Json,
        ..Default::default()
    };
    let mut aligner = TraceAligner::new(AlignConfig {
        trace_gap: Duration::from_secs(10),
        ..AlignConfig::tumbling(Duration::from_secs(60))
    });
    for (i, line) in text.lines().enumerate() {
        for r in decoder.decode(line.as_bytes(), ctx).unwrap() {
            let _ = aligner.insert(r, i as u64);
        }
    }
    aligner
        .flush()
        .into_iter()
        .find(|b| b.window.start.to_rfc3339() == "2026-11-01T12:10:00Z")
        .unwrap()
}

fn evaluation(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let batch = batch(root);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let shipped = rt
        .block_on(faultline::load::load(&root.join("pipelines/inference")))
        .unwrap()
        .rules;
    let n = shipped.len();
    let engine = rt
        .block_on(RuleEngine::new(shipped, EvalLimits::default()))
        .unwrap();
    let trivial = parse_rule(
        Path::new("count.sql"),
        "-- severity = \"info\"\nSELECT count(*) AS value FROM spans",
    )
    .unwrap();
    let baseline = rt
        .block_on(RuleEngine::new(vec![trivial], EvalLimits::default()))
        .unwrap();
    let mut g = c.benchmark_group("rules");
    g.sample_size(20);
    g.bench_function("baseline: 1 trivial rule per batch", |b| {
        b.iter(|| rt.block_on(baseline.evaluate(&batch, &[], &Unbounded)))
    });
    g.bench_function(format!("{n} shipped inference rules per batch"), |b| {
        b.iter(|| rt.block_on(engine.evaluate(&batch, &[], &Unbounded)))
    });
    g.finish();
    println!(
        "batch: {} spans, {} logs, {} metric points, {} traces",
        batch.spans.num_rows(),
        batch.logs.num_rows(),
        batch.metrics.num_rows(),
        batch.traces.num_rows()
    );
}

criterion_group!(benches, evaluation);
criterion_main!(benches);
