//! Throughput harness: decoding and the whole file pipeline over the example recording,
//! reported as ratios to a baseline measured in the same run (plain `serde_json::Value`
//! parsing of the same lines, the floor for any JSON decoder).
//!
//! `cargo bench --bench pipeline [-- ITERATIONS]`

use std::path::Path;
use std::time::{Duration, Instant};

use faultline::decode::{Decoder, Encoding, MessageContext};
use faultline::model::{AckId, Location};
use faultline::pipeline::Pipeline;
use faultline::rules::Unbounded;
use faultline::source::InputMessage;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn time<F: FnMut()>(iterations: usize, mut f: F) -> Duration {
    f(); // warm-up
    median(
        (0..iterations)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("examples/incident.jsonl")).unwrap();
    let lines: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    let ctx = MessageContext {
        encoding: Encoding::Json,
        ..Default::default()
    };
    let decoder = Decoder::new(1 << 20);
    let records: usize = lines
        .iter()
        .map(|l| decoder.decode(l, ctx).unwrap().len())
        .sum();

    let baseline = time(iterations, || {
        for l in &lines {
            std::hint::black_box(serde_json::from_slice::<serde_json::Value>(l).unwrap());
        }
    });
    let decode = time(iterations, || {
        for l in &lines {
            std::hint::black_box(decoder.decode(l, ctx).unwrap());
        }
    });

    let dir = root.join("pipelines/inference");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let loaded = rt.block_on(faultline::load::load(&dir)).unwrap();
    let messages: Vec<InputMessage> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| InputMessage {
            payload: l.to_vec(),
            size: l.len(),
            source: Location::File {
                path: "incident.jsonl".into(),
                line: i as u64 + 1,
            },
            context: ctx,
        })
        .collect();
    let mut alerts = 0;
    let pipeline = time(iterations, || {
        rt.block_on(async {
            let mut p = Pipeline::new(loaded.clone(), Box::new(Unbounded))
                .await
                .unwrap();
            for (i, m) in messages.iter().enumerate() {
                let partition = m.source.partition_key();
                std::hint::black_box(p.ingest(m, i as AckId, &partition).await);
            }
            std::hint::black_box(p.finish().await);
            alerts = p.stats().alerts;
        })
    });

    let rate = |d: Duration| records as f64 / d.as_secs_f64();
    println!(
        "input: {} lines, {} records, {:.1} MB; median of {iterations} runs",
        lines.len(),
        records,
        bytes as f64 / 1e6
    );
    println!(
        "{:<28} {:>12} {:>14} {:>10}",
        "stage", "time", "records/s", "vs base"
    );
    for (name, d) in [
        ("baseline: serde_json::Value", baseline),
        ("decode (OTLP/JSON -> records)", decode),
        ("pipeline (decode..alerts)", pipeline),
    ] {
        println!(
            "{name:<28} {:>10.1}ms {:>14.0} {:>9.2}x",
            d.as_secs_f64() * 1e3,
            rate(d),
            baseline.as_secs_f64() / d.as_secs_f64()
        );
    }
    let golden = std::fs::read_to_string(root.join("tests/golden/incident/alerts.jsonl")).unwrap();
    assert_eq!(
        alerts as usize,
        golden.lines().count(),
        "the example produces its golden alerts"
    );
}
