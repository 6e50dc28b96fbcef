//! The aligners build only the columns the pipeline reads, and nothing it produces changes:
//! the default pipeline over the example incident, with and without the columns no query
//! reads.

use super::*;
use crate::model::AckId;
use crate::output::Output;
use crate::rules::Unbounded;

fn run(rt: &tokio::runtime::Runtime, every_column: bool) -> (ColumnSet, Vec<Output>) {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/inference"));
    let mut p = rt.block_on(async {
        let loaded = crate::load::load(dir).await.unwrap();
        Pipeline::new(loaded, Box::new(Unbounded)).await.unwrap()
    });
    if every_column {
        p.columns = ColumnSet::all();
    }
    let key = PartitionKey::new("in", 0);
    p.register(&key);
    let mut outputs = Vec::new();
    for (i, m) in super::checkpoint::tests::messages().iter().enumerate() {
        outputs.extend(rt.block_on(p.ingest(m, i as AckId, &key)).outputs);
    }
    outputs.extend(rt.block_on(p.finish()).outputs);
    (p.columns.clone(), outputs)
}

#[test]
fn the_default_pipeline_builds_fewer_columns_and_produces_the_same() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (read, lean) = run(&rt, false);
    let (all, full) = run(&rt, true);
    assert_eq!(all, ColumnSet::all());
    assert!(all.covers(&read) && !read.covers(&all), "{read:?}");
    // No query of the default pipeline reads the metrics' resources, the spans' status
    // messages or their ids (the call graph reads the family column `parent_service`); a
    // precondition of the knowledge base reads the spans' attributes.
    let has = |table: &str, column: &str| {
        let index = crate::tables::schema_of(table).unwrap().index_of(column);
        read.of(table).has(index.unwrap())
    };
    assert!(
        !has("metrics", "resource") && !has("spans", "status_message"),
        "{read:?}"
    );
    assert!(
        !has("spans", "span_id") && !has("spans", "parent_span_id"),
        "{read:?}"
    );
    assert!(
        has("spans", "parent_service") && has("spans", "attributes"),
        "{read:?}"
    );

    let shown = |outputs: &[Output]| -> Vec<String> {
        outputs
            .iter()
            .map(|o| format!("{:?} {} {}", o.kind, o.key, o.json))
            .collect()
    };
    let (lean, full) = (shown(&lean), shown(&full));
    assert!(
        lean.iter().any(|o| o.starts_with("Alerts"))
            && lean.iter().any(|o| o.starts_with("Incidents")),
        "the example raises alerts and an incident"
    );
    assert_eq!(lean.len(), full.len());
    for (a, b) in lean.iter().zip(&full) {
        assert_eq!(a, b);
    }
}

/// The call graph reads the tables outside SQL: from spans built with the columns it declares
/// alone, it finds the edges it finds in full ones.
#[test]
fn the_call_graph_declares_the_columns_it_reads() {
    let decoder = crate::decode::Decoder::new(1 << 20);
    let mut spans = Vec::new();
    for m in super::checkpoint::tests::messages() {
        for r in decoder.decode(&m.payload, m.context).unwrap() {
            if let Record::Span(s) = r {
                spans.push(s);
            }
        }
    }
    let rows: Vec<&crate::model::SpanRecord> = spans.iter().collect();
    let mut declared = ColumnSet::default();
    crate::incident::read_columns(&mut declared);
    let lean = crate::tables::spans_table(&rows, declared.of("spans"));
    let edges = crate::incident::graph::edges_of(&crate::tables::spans_batch(&rows));
    assert!(!edges.is_empty());
    assert_eq!(crate::incident::graph::edges_of(&lean), edges);
}
