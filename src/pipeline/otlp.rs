//! The pipeline's own telemetry over OTLP (`run --otlp-endpoint`, off by default): the
//! metrics `/metrics` serves, as OTLP metrics, and a span per rule evaluation, sent to a
//! collector's OTLP/HTTP receiver every `--otlp-interval` from a thread of their own (and
//! once more at shutdown). A collector that is down costs a warning per failed export,
//! never the pipeline.
//!
//! The metrics are read back from the registry's OpenMetrics text: `prometheus-client`
//! offers no other public way to read its values (its protobuf encoding needs `protoc` at
//! build time), and reading the text `/metrics` serves keeps both exports in agreement.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};
use tracing::{info, warn};

use super::metrics::StageSpan;
use super::Metrics;
use crate::decode::string_attribute as kv;
use crate::sink::OtlpHttp;

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// One metric family of the OpenMetrics text.
#[derive(Debug, Default, PartialEq)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub help: String,
    pub unit: String,
    pub samples: Vec<Sample>,
}

/// One sample line: the part of its name after the family's, its labels, its value.
#[derive(Debug, PartialEq)]
pub struct Sample {
    pub suffix: String,
    pub labels: Labels,
    pub value: f64,
}

/// The families of an OpenMetrics text exposition, in order.
pub fn parse_exposition(text: &str) -> Vec<Family> {
    let mut families: Vec<Family> = Vec::new();
    for line in text.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (Some(what), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            let rest = parts.next().unwrap_or_default().to_string();
            if families.last().is_none_or(|f| f.name != name) {
                families.push(Family {
                    name: name.to_string(),
                    ..Family::default()
                });
            }
            let family = families.last_mut().expect("pushed");
            match what {
                "TYPE" => family.kind = rest,
                "HELP" => family.help = rest,
                "UNIT" => family.unit = rest,
                _ => {}
            }
            continue;
        }
        let Some((name, labels, value)) = parse_sample(line) else {
            continue;
        };
        let Some(family) = families
            .iter_mut()
            .rev()
            .find(|f| name.starts_with(f.name.as_str()))
        else {
            continue;
        };
        family.samples.push(Sample {
            suffix: name[family.name.len()..].to_string(),
            labels,
            value,
        });
    }
    families
}

/// A sample's labels, unescaped, in order.
type Labels = Vec<(String, String)>;

/// `name{label="value",...} value`: its name, labels and value.
fn parse_sample(line: &str) -> Option<(&str, Labels, f64)> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after_key) = inner.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after_key.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.trim_start_matches(',').to_string(), value));
            inner = &after_key[end + 1..];
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((name, labels, value))
}

fn attributes(labels: &[(String, String)]) -> Vec<KeyValue> {
    labels
        .iter()
        .filter(|(k, _)| k != "le")
        .map(|(k, v)| kv(k, v))
        .collect()
}

/// UCUM units of the OpenMetrics unit names used.
fn ucum(unit: &str) -> String {
    match unit {
        "seconds" => "s".into(),
        "bytes" => "By".into(),
        other => other.into(),
    }
}

/// The families as OTLP metrics: counters as cumulative monotonic sums, gauges and info
/// metrics as gauges, histograms with their buckets (OpenMetrics counts them cumulatively,
/// OTLP per bucket). `start_ns` is when counting began.
pub fn to_otlp_metrics(families: &[Family], start_ns: u64, now_ns: u64) -> Vec<Metric> {
    let number = |s: &Sample| NumberDataPoint {
        attributes: attributes(&s.labels),
        start_time_unix_nano: start_ns,
        time_unix_nano: now_ns,
        value: Some(number_data_point::Value::AsDouble(s.value)),
        ..Default::default()
    };
    let mut out = Vec::new();
    for f in families {
        let points = |suffix: &str| -> Vec<NumberDataPoint> {
            f.samples
                .iter()
                .filter(|s| s.suffix == suffix)
                .map(number)
                .collect()
        };
        let data = match f.kind.as_str() {
            "counter" => Data::Sum(Sum {
                data_points: points("_total"),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
            "histogram" => Data::Histogram(Histogram {
                data_points: histogram_points(f, start_ns, now_ns),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
            "info" => Data::Gauge(Gauge {
                data_points: points("_info"),
            }),
            _ => Data::Gauge(Gauge {
                data_points: points(""),
            }),
        };
        out.push(Metric {
            name: f.name.clone(),
            description: f.help.clone(),
            unit: ucum(&f.unit),
            data: Some(data),
            ..Default::default()
        });
    }
    out
}

/// A histogram family's series (its labels without `le`) as OTLP points.
fn histogram_points(f: &Family, start_ns: u64, now_ns: u64) -> Vec<HistogramDataPoint> {
    type Series = (Vec<(f64, f64)>, f64, f64);
    let mut series: BTreeMap<Vec<(String, String)>, Series> = BTreeMap::new();
    for s in &f.samples {
        let key: Vec<(String, String)> = s
            .labels
            .iter()
            .filter(|(k, _)| k != "le")
            .cloned()
            .collect();
        let entry = series.entry(key).or_default();
        match s.suffix.as_str() {
            "_bucket" => {
                let le = s.labels.iter().find(|(k, _)| k == "le");
                let bound = le.and_then(|(_, v)| match v.as_str() {
                    "+Inf" => Some(f64::INFINITY),
                    v => v.parse().ok(),
                });
                if let Some(bound) = bound {
                    entry.0.push((bound, s.value));
                }
            }
            "_sum" => entry.1 = s.value,
            "_count" => entry.2 = s.value,
            _ => {}
        }
    }
    series
        .into_iter()
        .map(|(labels, (mut buckets, sum, count))| {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut previous = 0.0;
            let bucket_counts = buckets
                .iter()
                .map(|(_, cumulative)| {
                    let n = (cumulative - previous).max(0.0) as u64;
                    previous = *cumulative;
                    n
                })
                .collect();
            HistogramDataPoint {
                attributes: attributes(&labels),
                start_time_unix_nano: start_ns,
                time_unix_nano: now_ns,
                count: count as u64,
                sum: Some(sum),
                bucket_counts,
                explicit_bounds: buckets
                    .iter()
                    .map(|(b, _)| *b)
                    .filter(|b| b.is_finite())
                    .collect(),
                ..Default::default()
            }
        })
        .collect()
}

/// A 16-byte id (trace) or 8-byte id (span), unique within this process: a hash of the
/// time, the process and a counter (no random source needed for uniqueness).
fn id(len: usize, seq: u64, at_ns: u64) -> Vec<u8> {
    use std::hash::Hasher;
    let mut out = Vec::with_capacity(len);
    for salt in 0..len.div_ceil(8) as u64 {
        let mut h = fnv::FnvHasher::default();
        for part in [seq, at_ns, u64::from(std::process::id()), salt] {
            h.write_u64(part);
        }
        out.extend(h.finish().to_be_bytes());
    }
    out.truncate(len);
    out
}

/// Stage spans as OTLP spans, each a trace of its own.
pub fn to_otlp_spans(spans: &[StageSpan], first_seq: u64) -> Vec<Span> {
    spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let seq = first_seq + i as u64;
            Span {
                trace_id: id(16, seq, s.end_ns),
                span_id: id(8, seq, s.end_ns.wrapping_add(1)),
                name: s.name.to_string(),
                kind: SpanKind::Internal as i32,
                start_time_unix_nano: s.end_ns.saturating_sub(s.took.as_nanos() as u64),
                end_time_unix_nano: s.end_ns,
                attributes: s.attributes.iter().map(|(k, v)| kv(k, v)).collect(),
                ..Default::default()
            }
        })
        .collect()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// What every export says about its sender.
fn resource(instance: &str) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", "faultline"),
            kv("service.version", env!("CARGO_PKG_VERSION")),
            kv("service.instance.id", instance),
        ],
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "faultline".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// The export thread; stopping it sends what is left.
pub struct OtlpExport {
    /// Dropping it wakes the thread at once (no polling): it sends what is left and ends.
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OtlpExport {
    /// Starts exporting `metrics` (and the stage spans it collects) to `endpoint` every
    /// `interval`; `instance` names this member (`service.instance.id`).
    pub fn start(
        metrics: Arc<Metrics>,
        endpoint: &str,
        interval: Duration,
        instance: &str,
    ) -> Self {
        metrics.collect_spans();
        let interval = interval.max(Duration::from_millis(100));
        let (stop, stopped) = std::sync::mpsc::channel();
        let exporter = Exporter {
            http: OtlpHttp::new(endpoint, EXPORT_TIMEOUT),
            metrics,
            resource: resource(instance),
            start_ns: now_ns(),
            spans_sent: 0,
        };
        let thread = std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || exporter.run(interval, &stopped))
            .ok();
        info!(endpoint, every = ?interval, "Exporting the pipeline's own metrics and spans over OTLP/HTTP.");
        OtlpExport {
            stop: Some(stop),
            thread,
        }
    }

    /// Sends what is left and stops.
    pub fn stop(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for OtlpExport {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Exporter {
    http: OtlpHttp,
    metrics: Arc<Metrics>,
    resource: Resource,
    start_ns: u64,
    spans_sent: u64,
}

impl Exporter {
    /// Exports every `interval` until `stopped` says stop (its sender is gone), then once
    /// more.
    fn run(mut self, interval: Duration, stopped: &std::sync::mpsc::Receiver<()>) {
        use std::sync::mpsc::RecvTimeoutError;
        loop {
            let stopping = !matches!(
                stopped.recv_timeout(interval),
                Err(RecvTimeoutError::Timeout)
            );
            self.export();
            if stopping {
                return;
            }
        }
    }

    fn export(&mut self) {
        let families = parse_exposition(&self.metrics.encode());
        let metrics = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics: to_otlp_metrics(&families, self.start_ns, now_ns()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        if let Err(error) = self.http.post("metrics", &metrics) {
            warn!(%error, "The OTLP receiver did not take the pipeline's metrics.");
        }
        let (spans, dropped) = self.metrics.take_spans();
        if dropped > 0 {
            warn!(
                dropped,
                "Stage spans over the per-export limit were not exported."
            );
        }
        if spans.is_empty() {
            return;
        }
        let traces = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope()),
                    spans: to_otlp_spans(&spans, self.spans_sent),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        self.spans_sent += spans.len() as u64;
        if let Err(error) = self.http.post("traces", &traces) {
            warn!(%error, "The OTLP receiver did not take the pipeline's spans.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_becomes_sums_gauges_and_per_bucket_histograms() {
        let text = "# HELP a_events Events.\n# TYPE a_events counter\n\
            a_events_total{component_id=\"x\\\"y\",kind=\"s\"} 7\n\
            a_events_created{component_id=\"x\"} 1.7e9\n\
            # TYPE lag gauge\n# UNIT lag seconds\nlag{shard=\"0\"} 1.5\n\
            # TYPE eval_seconds histogram\n\
            eval_seconds_sum{rule_id=\"r\"} 0.75\neval_seconds_count{rule_id=\"r\"} 4\n\
            eval_seconds_bucket{le=\"0.1\",rule_id=\"r\"} 1\n\
            eval_seconds_bucket{le=\"1.0\",rule_id=\"r\"} 3\n\
            eval_seconds_bucket{le=\"+Inf\",rule_id=\"r\"} 4\n\
            # TYPE build info\nbuild_info{version=\"1\"} 1\n# EOF\n";
        let families = parse_exposition(text);
        assert_eq!(families.len(), 4, "{families:?}");
        let metrics = to_otlp_metrics(&families, 10, 20);
        let Some(Data::Sum(sum)) = &metrics[0].data else {
            panic!("{:?}", metrics[0]);
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.data_points.len(),
            1,
            "the _created sample is not a point"
        );
        let p = &sum.data_points[0];
        assert_eq!(p.value, Some(number_data_point::Value::AsDouble(7.0)));
        assert_eq!(p.attributes[0], kv("component_id", "x\"y"));
        assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (10, 20));
        assert_eq!(metrics[1].unit, "s");
        let Some(Data::Histogram(h)) = &metrics[2].data else {
            panic!("{:?}", metrics[2]);
        };
        let p = &h.data_points[0];
        assert_eq!((p.count, p.sum), (4, Some(0.75)));
        assert_eq!(p.explicit_bounds, vec![0.1, 1.0]);
        assert_eq!(p.bucket_counts, vec![1, 2, 1]);
        assert_eq!(p.attributes, vec![kv("rule_id", "r")]);
        let Some(Data::Gauge(g)) = &metrics[3].data else {
            panic!("{:?}", metrics[3]);
        };
        assert_eq!(g.data_points[0].attributes, vec![kv("version", "1")]);
    }

    #[test]
    fn spans_have_distinct_ids_and_their_stage_timing() {
        let spans: Vec<StageSpan> = (0..3)
            .map(|i| StageSpan {
                name: "rule evaluation",
                attributes: vec![("rule_id", format!("r{i}"))],
                end_ns: 5_000_000_000,
                took: Duration::from_millis(250),
            })
            .collect();
        let out = to_otlp_spans(&spans, 0);
        let ids: std::collections::BTreeSet<_> = out.iter().map(|s| &s.trace_id).collect();
        assert_eq!(ids.len(), 3);
        assert!(out
            .iter()
            .all(|s| s.trace_id.len() == 16 && s.span_id.len() == 8));
        assert_eq!(out[1].start_time_unix_nano, 4_750_000_000);
        assert_eq!(out[1].attributes, vec![kv("rule_id", "r1")]);
    }

    /// A receiver answering 200 to every request, keeping their paths.
    fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let paths = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = paths.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || serve(stream, &kept));
            }
        });
        (url, paths)
    }

    /// Answers each request on `stream` with 200, keeping its path.
    fn serve(stream: std::net::TcpStream, kept: &std::sync::Mutex<Vec<String>>) {
        use std::io::{BufRead, Read, Write};
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut out = stream;
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut length = 0;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            reader.read_exact(&mut vec![0; length]).unwrap();
            kept.lock().unwrap().push(path);
            out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            line.clear();
        }
    }

    #[test]
    fn stopping_sends_what_is_left_and_a_collector_that_is_down_stops_nothing() {
        let (url, paths) = receiver();
        let metrics = Arc::new(Metrics::new());
        let mut export = OtlpExport::start(metrics.clone(), &url, Duration::from_secs(3600), "t");
        metrics.rule_evaluated("r", Duration::from_millis(3));
        export.stop();
        assert_eq!(*paths.lock().unwrap(), vec!["/v1/metrics", "/v1/traces"]);
        // Nothing listens here: each export fails with a warning, and stopping still returns.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let down = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let mut export = OtlpExport::start(metrics.clone(), &down, Duration::from_millis(100), "t");
        metrics.rule_evaluated("r", Duration::from_millis(3));
        std::thread::sleep(Duration::from_millis(350));
        export.stop();
        assert!(
            metrics.take_spans().0.is_empty(),
            "taken by the failed exports"
        );
    }
}
