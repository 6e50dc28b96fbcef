//! The `traces` table: one row per trace, derived from its spans and logs.

use crate::model::{EventTime, Record, SpanId, SpanRecord, StatusCode, TraceId, TraceSummary};

/// Time of `span` not covered by any of its children (children clipped to the span, overlaps
/// counted once). `iv` is scratch space, reused from span to span.
fn self_time_ns<'a>(
    span: &SpanRecord,
    children: impl Iterator<Item = &'a SpanRecord>,
    iv: &mut Vec<(i64, i64)>,
) -> i64 {
    let (s, e) = (span.start_time.0, span.end_time.0);
    iv.clear();
    iv.extend(
        children
            .map(|c| (c.start_time.0.max(s), c.end_time.0.min(e)))
            .filter(|(a, b)| a < b),
    );
    iv.sort_unstable();
    let mut covered = 0;
    let mut cur: Option<(i64, i64)> = None;
    for &(a, b) in iv.iter() {
        match &mut cur {
            Some((_, ce)) if a <= *ce => *ce = (*ce).max(b),
            _ => {
                if let Some((cs, ce)) = cur {
                    covered += ce - cs;
                }
                cur = Some((a, b));
            }
        }
    }
    if let Some((cs, ce)) = cur {
        covered += ce - cs;
    }
    (e - s) - covered
}

/// A trace's spans, log counts and extent.
struct Gathered<'a> {
    spans: Vec<&'a SpanRecord>,
    log_count: u32,
    error_log_count: u32,
    start: EventTime,
    end: EventTime,
}

fn gather<'a>(records: impl IntoIterator<Item = &'a Record>) -> Gathered<'a> {
    let mut g = Gathered {
        spans: Vec::new(),
        log_count: 0,
        error_log_count: 0,
        start: EventTime::MAX,
        end: EventTime::MIN,
    };
    for r in records {
        let (from, to) = match r {
            Record::Span(s) => {
                g.spans.push(s);
                (s.start_time, s.end_time)
            }
            Record::Log(l) => {
                g.log_count += 1;
                if l.severity_number >= 17 {
                    g.error_log_count += 1;
                }
                (l.time, l.time)
            }
            Record::Metric(m) => (m.time, m.time),
        };
        g.start = g.start.min(from);
        g.end = g.end.max(to);
    }
    if g.start > g.end {
        (g.start, g.end) = (EventTime(0), EventTime(0));
    }
    g
}

/// Summarises the records of one trace.
pub fn summarize<'a>(
    trace_id: TraceId,
    records: impl IntoIterator<Item = &'a Record>,
    closed_early: bool,
) -> TraceSummary {
    let Gathered {
        mut spans,
        log_count,
        error_log_count,
        start,
        end,
    } = gather(records);
    // Deterministic whatever the arrival order.
    spans.sort_by(|a, b| (a.start_time, &a.span_id).cmp(&(b.start_time, &b.span_id)));
    let root = spans.iter().find(|s| s.parent_span_id.is_none()).copied();
    let duration_ms = match root {
        Some(r) => r.duration_ms(),
        None => (end.0 - start.0) as f64 / 1e6,
    };
    // `(parent id, child's index)` sorted: each span's children are one run of it (one
    // allocation per trace, where a map of vectors took one per parent).
    let mut edges: Vec<(SpanId, usize)> = spans
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((s.parent_span_id?, i)))
        .collect();
    edges.sort_unstable();
    let mut bottleneck: Option<(&SpanRecord, i64)> = None;
    let mut scratch = Vec::new();
    for s in &spans {
        let first = edges.partition_point(|(parent, _)| *parent < s.span_id);
        let children = edges[first..]
            .iter()
            .take_while(|(parent, _)| *parent == s.span_id)
            .map(|(_, i)| spans[*i]);
        let own = self_time_ns(s, children, &mut scratch);
        if bottleneck.is_none_or(|(_, best)| own > best) {
            bottleneck = Some((s, own));
        }
    }
    let mut services: Vec<&str> = spans
        .iter()
        .filter_map(|s| s.resource.service.as_deref())
        .collect();
    services.sort_unstable();
    services.dedup();
    TraceSummary {
        trace_id,
        start_time: start,
        end_time: end,
        duration_ms,
        has_root: root.is_some(),
        root_service: root.and_then(|r| r.resource.service.clone()),
        root_name: root.map(|r| r.name.clone()),
        span_count: spans.len() as u32,
        error_count: spans
            .iter()
            .filter(|s| s.status == StatusCode::Error)
            .count() as u32,
        log_count,
        error_log_count,
        service_count: services.len() as u32,
        bottleneck_span: bottleneck.map(|(s, _)| s.name.clone()),
        bottleneck_service: bottleneck.and_then(|(s, _)| s.resource.service.clone()),
        bottleneck_ms: bottleneck.map(|(_, ns)| ns as f64 / 1e6),
        bottleneck_share: bottleneck.map(|(_, ns)| {
            if duration_ms > 0.0 {
                ns as f64 / 1e6 / duration_ms
            } else {
                0.0
            }
        }),
        closed_early,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LogRecord, Resource};
    use std::sync::Arc;

    fn span(id: &str, parent: Option<&str>, name: &str, start_ms: i64, end_ms: i64) -> Record {
        Record::Span(SpanRecord {
            start_time: EventTime(start_ms * 1_000_000),
            end_time: EventTime(end_ms * 1_000_000),
            trace_id: TraceId::from_label("t"),
            span_id: SpanId::from_label(id),
            parent_span_id: parent.map(SpanId::from_label),
            name: name.into(),
            kind: "internal",
            status: if name == "forward" {
                StatusCode::Error
            } else {
                StatusCode::Ok
            },
            status_message: None,
            resource: Arc::new(Resource::from_attributes(
                [("service.name".to_string(), format!("svc-{}", &name[..1]))].into(),
            )),
            scope: None,
            attributes: Default::default(),
            event_count: 0,
        })
    }

    #[test]
    fn the_bottleneck_is_the_span_with_the_most_self_time() {
        // root 0-120 > client 2-118 > generate 3-117 > tokenize 3-18, forward 18-104, decode 104-114
        let records = vec![
            span("d", Some("c"), "decode", 104, 114),
            span("a", None, "root", 0, 120),
            span("b", Some("a"), "client", 2, 118),
            span("c", Some("b"), "generate", 3, 117),
            span("e", Some("c"), "tokenize", 3, 18),
            span("f", Some("c"), "forward", 18, 104),
            Record::Log(LogRecord {
                time: EventTime(50_000_000),
                observed_time: None,
                trace_id: Some(TraceId::from_label("t")),
                span_id: None,
                severity_number: 17,
                severity_text: None,
                body: "oom".into(),
                resource: Default::default(),
                scope: None,
                attributes: Default::default(),
                parsed: None,
            }),
        ];
        let s = summarize(TraceId::from_label("t"), &records, false);
        assert_eq!(s.duration_ms, 120.0);
        assert_eq!(s.root_name.as_deref(), Some("root"));
        assert_eq!(
            (s.span_count, s.error_count, s.log_count, s.error_log_count),
            (6, 1, 1, 1)
        );
        assert_eq!(s.bottleneck_span.as_deref(), Some("forward"));
        assert_eq!(s.bottleneck_ms, Some(86.0));
        assert!((s.bottleneck_share.unwrap() - 86.0 / 120.0).abs() < 1e-9);
        assert_eq!(s.service_count, 6);
    }

    #[test]
    fn overlapping_children_are_counted_once() {
        let records = vec![
            span("a", None, "root", 0, 100),
            span("b", Some("a"), "x", 10, 60),
            span("c", Some("a"), "y", 40, 80),
        ];
        let s = summarize(TraceId::from_label("t"), &records, false);
        // root self = 100 - |10..80| = 30; x self 50; y self 40
        assert_eq!(s.bottleneck_span.as_deref(), Some("x"));
        assert_eq!(s.bottleneck_ms, Some(50.0));
    }

    #[test]
    fn a_trace_without_root_spans_its_records() {
        let records = vec![span("b", Some("zz"), "x", 10, 60)];
        let s = summarize(TraceId::from_label("t"), &records, true);
        assert!(!s.has_root);
        assert_eq!(s.duration_ms, 50.0);
        assert!(s.closed_early);
    }
}
