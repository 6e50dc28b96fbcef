//! Tables built with some columns only: the wanted columns are exactly those of the full
//! build, the others placeholders of the declared type and nullability, every row empty.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;

use super::*;
use crate::decode::{Decoder, MessageContext};
use crate::model::{ParsedLog, Record};

/// The example incident's records, every other log parsed (so that the parsed columns hold
/// values), and the `traces` rows of its spans.
fn example() -> (
    Vec<LogRecord>,
    Vec<MetricPoint>,
    Vec<SpanRecord>,
    Vec<TraceSummary>,
) {
    let text = include_str!("../../examples/incident.jsonl");
    let decoder = Decoder::new(1 << 20);
    let (mut logs, mut metrics, mut spans) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        for record in decoder
            .decode(line.as_bytes(), MessageContext::default())
            .unwrap()
        {
            match record {
                Record::Log(l) => logs.push(l),
                Record::Metric(m) => metrics.push(*m),
                Record::Span(s) => spans.push(s),
            }
        }
    }
    for (i, log) in logs.iter_mut().enumerate().filter(|(i, _)| i % 2 == 0) {
        log.parsed = Some(Box::new(ParsedLog {
            template_id: Some(format!("{i:016x}")),
            template: Some("step <*> done".into()),
            params: vec![i.to_string(), "x".into()],
            fields: vec![("log.level".into(), "INFO".into())],
            signature: Some("nccl"),
            signature_fields: vec![("rank", (i % 4).to_string())],
        }));
    }
    let mut by_trace: std::collections::BTreeMap<_, Vec<Record>> = Default::default();
    for s in &spans {
        by_trace
            .entry(s.trace_id)
            .or_default()
            .push(Record::Span(s.clone()));
    }
    let summaries = by_trace
        .into_iter()
        .map(|(id, rows)| crate::align::summarize(id, rows.iter(), false))
        .collect();
    (logs, metrics, spans, summaries)
}

/// Sets of columns to build: none, all, each one alone, and pseudo-random ones.
fn masks(columns: usize) -> Vec<TableColumns> {
    let mut out = vec![TableColumns::NONE, TableColumns::ALL];
    out.extend((0..columns).map(|i| TableColumns::NONE.with(i)));
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..8 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let random = (0..columns)
            .filter(|i| (state >> (i + 7)) & 1 == 1)
            .fold(TableColumns::NONE, TableColumns::with);
        out.push(random);
    }
    out
}

/// `partial` has `full`'s schema and rows; the columns of `wanted` are `full`'s, the others
/// placeholders.
fn check(table: &str, full: &RecordBatch, partial: &RecordBatch, wanted: TableColumns) {
    assert_eq!(partial.schema(), full.schema(), "{table}");
    assert_eq!(partial.num_rows(), full.num_rows(), "{table}");
    for (i, field) in full.schema().fields().iter().enumerate() {
        let (built, placeholder) = (full.column(i), partial.column(i));
        let name = format!("{table}.{}", field.name());
        if wanted.has(i) {
            assert_eq!(built.to_data(), placeholder.to_data(), "{name}");
            continue;
        }
        assert_eq!(placeholder.len(), full.num_rows(), "{name}");
        if field.is_nullable() {
            assert_eq!(placeholder.null_count(), placeholder.len(), "{name}");
            continue;
        }
        assert_eq!(placeholder.null_count(), 0, "{name}");
        let all_empty = match field.data_type() {
            DataType::Utf8 => placeholder.as_string::<i32>().iter().all(|v| v == Some("")),
            DataType::Map(_, _) => placeholder.as_map().offsets().iter().all(|o| *o == 0),
            DataType::List(_) => placeholder
                .as_list::<i32>()
                .offsets()
                .iter()
                .all(|o| *o == 0),
            DataType::Boolean => placeholder.as_boolean().true_count() == 0,
            // Numbers and times: every byte of the values is zero.
            _ => placeholder.to_data().buffers()[0]
                .as_slice()
                .iter()
                .all(|b| *b == 0),
        };
        assert!(all_empty, "{name}");
        assert!(
            placeholder.get_array_memory_size() <= 8 * placeholder.len() + 1024,
            "{name}: {} bytes",
            placeholder.get_array_memory_size()
        );
    }
}

/// Builds one table with the columns given.
type Build<'a> = dyn Fn(TableColumns) -> RecordBatch + 'a;

#[test]
fn tables_built_with_some_columns_hold_those_exactly_and_placeholders_elsewhere() {
    let (logs, metrics, spans, summaries) = example();
    assert!(
        logs.len() > 50 && metrics.len() > 50 && spans.len() > 50 && summaries.len() > 10,
        "{} {} {} {}",
        logs.len(),
        metrics.len(),
        spans.len(),
        summaries.len()
    );
    let logs: Vec<&LogRecord> = logs.iter().collect();
    let metrics: Vec<&MetricPoint> = metrics.iter().collect();
    let spans: Vec<&SpanRecord> = spans.iter().collect();
    let tables: [(&str, RecordBatch, &Build); 4] = [
        ("logs", logs_batch(&logs), &|w| logs_table(&logs, w)),
        ("metrics", metrics_batch(&metrics), &|w| {
            metrics_table(&metrics, w)
        }),
        ("spans", spans_batch(&spans), &|w| spans_table(&spans, w)),
        ("traces", traces_batch(&summaries), &|w| {
            traces_table(&summaries, w)
        }),
    ];
    for (name, full, build) in tables {
        // The full build holds values in every column the example can fill.
        let schema = full.schema();
        let empty_columns: Vec<&str> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(i, _)| full.column(*i).null_count() == full.num_rows())
            .map(|(_, f)| f.name().as_str())
            .collect();
        assert!(
            empty_columns.len() <= 4,
            "{name}: {empty_columns:?} all null"
        );
        for wanted in masks(full.num_columns()) {
            check(name, &full, &build(wanted), wanted);
        }
    }
}

/// A window without rows of a table: every set of columns builds it (a placeholder of no
/// rows still has aligned buffers).
#[test]
fn empty_tables_build_with_any_columns() {
    let tables: [(&str, &Build); 4] = [
        ("logs", &|w| logs_table(&[], w)),
        ("metrics", &|w| metrics_table(&[], w)),
        ("spans", &|w| spans_table(&[], w)),
        ("traces", &|w| traces_table(&[], w)),
    ];
    for (name, build) in tables {
        let full = build(TableColumns::ALL);
        assert_eq!(full.num_rows(), 0, "{name}");
        for wanted in masks(full.num_columns()) {
            check(name, &full, &build(wanted), wanted);
        }
    }
}
