//! The decoded records every stage after `decode` works on, and where they came from.
//!
//! Records are plain owned structs: decoding normalises every input form (OTLP protobuf,
//! OTLP/JSON, flat JSON) into them, so later stages never see wire formats.

use std::fmt;
use std::sync::Arc;

use super::{Attributes, ParsedLog, PartitionKey, SpanId, TraceId};

/// Event time in nanoseconds since the Unix epoch (UTC). All windowing uses this, never the
/// wall clock.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct EventTime(pub i64);

impl EventTime {
    pub const MIN: EventTime = EventTime(i64::MIN);
    pub const MAX: EventTime = EventTime(i64::MAX);

    pub fn from_nanos(nanos: i64) -> Self {
        EventTime(nanos)
    }

    pub fn nanos(self) -> i64 {
        self.0
    }

    pub fn saturating_add(self, d: std::time::Duration) -> Self {
        EventTime(self.0.saturating_add(duration_nanos(d)))
    }

    pub fn saturating_sub(self, d: std::time::Duration) -> Self {
        EventTime(self.0.saturating_sub(duration_nanos(d)))
    }

    /// RFC 3339 with nanosecond precision in UTC, the form every output uses.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000) as u32;
        match chrono::DateTime::from_timestamp(secs, nanos) {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            None => format!("{}ns", self.0),
        }
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A duration in nanoseconds, saturated to `i64`.
pub fn duration_nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Which kind of telemetry a record or an input carries.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Logs,
    Metrics,
    Spans,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
            Signal::Spans => "spans",
        }
    }
}

/// Where an input message came from, precise enough for an operator to find it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// A Kafka message.
    Kafka {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// A line of an input file (1-based).
    File { path: String, line: u64 },
}

impl Location {
    /// The input partition this location belongs to, for per-partition watermarks: a Kafka
    /// topic-partition, or a file.
    pub fn partition_key(&self) -> PartitionKey {
        match self {
            Location::Kafka {
                topic, partition, ..
            } => PartitionKey::new(topic, *partition),
            Location::File { path, .. } => PartitionKey::new(path, 0),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Kafka {
                topic,
                partition,
                offset,
            } => write!(f, "{topic}/{partition}@{offset}"),
            Location::File { path, line } => write!(f, "{path}:{line}"),
        }
    }
}

/// What identifies the emitter of a record: promoted resource attributes plus the rest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    /// `service.name`.
    pub service: Option<String>,
    /// `host.name`.
    pub host: Option<String>,
    /// Every resource attribute, including the promoted ones.
    pub attributes: Attributes,
}

impl Resource {
    pub fn from_attributes(attributes: Attributes) -> Self {
        Resource {
            service: attributes.get("service.name").cloned(),
            host: attributes.get("host.name").cloned(),
            attributes,
        }
    }
}

/// One log record.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub time: EventTime,
    pub observed_time: Option<EventTime>,
    /// `None` when absent or all zero.
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub severity_number: i32,
    pub severity_text: Option<String>,
    /// The body as text; structured bodies are rendered as JSON.
    pub body: String,
    /// Shared by every record of one export request.
    pub resource: Arc<Resource>,
    pub scope: Option<String>,
    pub attributes: Attributes,
    /// What the log cleaner (`logparse`) found; `None` until the pipeline has parsed it.
    pub parsed: Option<Box<ParsedLog>>,
}

/// The shape of a metric data point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Sum => "sum",
            MetricKind::Histogram => "histogram",
            MetricKind::ExponentialHistogram => "exponential_histogram",
            MetricKind::Summary => "summary",
        }
    }
}

/// One metric data point. Scalar kinds fill `value`; distributions fill `count`, `sum`, the
/// buckets or the quantiles.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub time: EventTime,
    pub start_time: Option<EventTime>,
    pub name: String,
    pub description: Option<String>,
    pub unit: Option<String>,
    pub kind: MetricKind,
    /// `delta` or `cumulative` for sums and histograms.
    pub temporality: Option<&'static str>,
    pub is_monotonic: Option<bool>,
    pub value: Option<f64>,
    pub count: Option<u64>,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Upper bounds of the buckets; the last bucket (`+Inf`) has no bound.
    pub bucket_bounds: Vec<f64>,
    pub bucket_counts: Vec<u64>,
    /// `(quantile, value)` pairs of a summary.
    pub quantiles: Vec<(f64, f64)>,
    /// Trace id of the first exemplar, or of a `trace_id` attribute.
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    /// Shared by every record of one export request.
    pub resource: Arc<Resource>,
    pub scope: Option<String>,
    pub attributes: Attributes,
}

impl MetricPoint {
    /// A point of metric `name` at `time` with nothing else known yet: no value,
    /// distribution, ids, scope, attributes or metadata. Each decoder fills in what its
    /// format carries.
    pub fn new(time: EventTime, name: String, kind: MetricKind, resource: Arc<Resource>) -> Self {
        MetricPoint {
            time,
            start_time: None,
            name,
            description: None,
            unit: None,
            kind,
            temporality: None,
            is_monotonic: None,
            value: None,
            count: None,
            sum: None,
            min: None,
            max: None,
            bucket_bounds: Vec::new(),
            bucket_counts: Vec::new(),
            quantiles: Vec::new(),
            trace_id: None,
            span_id: None,
            resource,
            scope: None,
            attributes: Attributes::new(),
        }
    }
}

/// Span status as in OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

/// One span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub start_time: EventTime,
    pub end_time: EventTime,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    /// `internal`, `server`, `client`, `producer`, `consumer` or `unspecified`.
    pub kind: &'static str,
    pub status: StatusCode,
    pub status_message: Option<String>,
    /// Shared by every record of one export request.
    pub resource: Arc<Resource>,
    pub scope: Option<String>,
    pub attributes: Attributes,
    pub event_count: u32,
}

impl SpanRecord {
    pub fn duration_ms(&self) -> f64 {
        (self.end_time.0 - self.start_time.0) as f64 / 1e6
    }
}

/// A decoded record of any signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Log(LogRecord),
    /// Boxed: a data point is the largest record by far, and every record is moved several
    /// times (decode, log folding, the aligner's rows), so the enum's size is what it costs.
    Metric(Box<MetricPoint>),
    Span(SpanRecord),
}

impl Record {
    /// The event time windows use: a span counts when it ends, since that is when it is known.
    pub fn event_time(&self) -> EventTime {
        match self {
            Record::Log(l) => l.time,
            Record::Metric(m) => m.time,
            Record::Span(s) => s.end_time,
        }
    }

    pub fn signal(&self) -> Signal {
        match self {
            Record::Log(_) => Signal::Logs,
            Record::Metric(_) => Signal::Metrics,
            Record::Span(_) => Signal::Spans,
        }
    }
}

fn attributes_bytes(a: &Attributes) -> usize {
    a.heap_bytes()
}

fn opt_len(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, String::len)
}

impl Record {
    /// Estimated heap and inline bytes the record holds, for memory caps. The shared resource
    /// is counted as a pointer: it is shared by every record of an export request.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Record>()
            + match self {
                Record::Log(l) => {
                    l.body.len()
                        + opt_len(&l.severity_text)
                        + opt_len(&l.scope)
                        + attributes_bytes(&l.attributes)
                }
                Record::Metric(m) => {
                    std::mem::size_of::<MetricPoint>()
                        + m.name.len()
                        + opt_len(&m.description)
                        + opt_len(&m.unit)
                        + opt_len(&m.scope)
                        + 8 * (m.bucket_bounds.len() + m.bucket_counts.len())
                        + 16 * m.quantiles.len()
                        + attributes_bytes(&m.attributes)
                }
                Record::Span(s) => {
                    s.name.len()
                        + opt_len(&s.status_message)
                        + opt_len(&s.scope)
                        + attributes_bytes(&s.attributes)
                }
            }
    }

    /// The trace the record belongs to, if any.
    pub fn trace_id(&self) -> Option<TraceId> {
        match self {
            Record::Log(l) => l.trace_id,
            Record::Metric(m) => m.trace_id,
            Record::Span(s) => Some(s.trace_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_no_larger_than_a_span_or_a_log() {
        // Every record is moved several times on its way to a window and held in the
        // aligner's rows: a variant larger than the common ones makes every record pay.
        let common = std::mem::size_of::<SpanRecord>().max(std::mem::size_of::<LogRecord>());
        assert!(
            std::mem::size_of::<Record>() <= common + 8,
            "Record is {} bytes, a span {}, a log {}, a metric point {}",
            std::mem::size_of::<Record>(),
            std::mem::size_of::<SpanRecord>(),
            std::mem::size_of::<LogRecord>(),
            std::mem::size_of::<MetricPoint>()
        );
    }
}
