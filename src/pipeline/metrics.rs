//! The pipeline's own metrics (`run --metrics-addr`), in the Prometheus/OpenMetrics text
//! format through the `prometheus-client` crate, named in Vector's component style
//! (`faultline_component_received_events_total{component_kind="source",component_id=topic}`).
//!
//! Recorded per tick or batch, never per record: the driver counts messages per topic in a
//! plain map and hands the counts over here, and totals the pipeline already keeps (windows,
//! late records, dead letters…) are turned into counter increments by difference.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::Stats;
use crate::model::EventTime;
use crate::output::OutputKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Component {
    component_kind: &'static str,
    component_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Partition {
    topic: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Shard {
    shard: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rule {
    rule_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertState {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Confidence {
    confidence: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Build {
    version: &'static str,
    revision: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric, registered once; shared by the driver, the rule budget and the HTTP thread.
pub struct Metrics {
    registry: Registry,
    received_events: Family<Component, Counter>,
    received_bytes: Family<Component, Counter>,
    sent_events: Family<Component, Counter>,
    dead_letters: Counter,
    late_records: Counter,
    windows: Counter,
    rule_failures: Counter,
    consumer_lag: Family<Partition, Gauge>,
    buffered_bytes: Gauge,
    open_traces: Gauge,
    watermark_lag: Family<Shard, FloatGauge>,
    alerts: Family<AlertState, Gauge>,
    suggestions: Family<Confidence, Counter>,
    detector_series: Gauge,
    rule_seconds: Family<Rule, Histogram, fn() -> Histogram>,
    checkpoint_bytes: Family<Shard, Gauge>,
    checkpoint_age: FloatGauge,
    /// The totals seen at the last update, to turn them into increments.
    last: Mutex<Stats>,
    /// Stage spans waiting for the OTLP export (`None`: not exported, not collected).
    spans: Mutex<Option<SpanBuffer>>,
}

/// One timed stage of the pipeline, for the OTLP export of its own traces.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSpan {
    pub name: &'static str,
    pub attributes: Vec<(&'static str, String)>,
    /// When it ended, in ns since the epoch.
    pub end_ns: u64,
    pub took: Duration,
}

/// Spans between two exports, bounded: a stalled collector must not grow memory.
#[derive(Debug, Default)]
struct SpanBuffer {
    spans: Vec<StageSpan>,
    dropped: u64,
}

/// Spans kept between two exports.
const MAX_SPANS: usize = 4096;

fn rule_histogram() -> Histogram {
    // 0.5 ms to ~8 s: one window's query on a small batch up to a runaway one.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("faultline");
        let m = Metrics {
            received_events: Family::default(),
            received_bytes: Family::default(),
            sent_events: Family::default(),
            dead_letters: Counter::default(),
            late_records: Counter::default(),
            windows: Counter::default(),
            rule_failures: Counter::default(),
            consumer_lag: Family::default(),
            buffered_bytes: Gauge::default(),
            open_traces: Gauge::default(),
            watermark_lag: Family::default(),
            alerts: Family::default(),
            suggestions: Family::default(),
            detector_series: Gauge::default(),
            rule_seconds: Family::new_with_constructor(rule_histogram),
            checkpoint_bytes: Family::default(),
            checkpoint_age: FloatGauge::default(),
            last: Mutex::new(Stats::default()),
            spans: Mutex::new(None),
            registry: Registry::default(),
        };
        m.register(&mut registry);
        Metrics { registry, ..m }
    }

    /// What flowed: build, inputs, outputs, counts.
    fn register(&self, r: &mut Registry) {
        let build: Family<Build, Gauge> = Family::default();
        build
            .get_or_create(&Build {
                version: env!("CARGO_PKG_VERSION"),
                revision: option_env!("FAULTLINE_GIT_REV").unwrap_or("unknown"),
            })
            .set(1);
        r.register("build_info", "Version of this binary (value 1)", build);
        let families = [
            (
                "component_received_events",
                "Input messages consumed, per topic",
                &self.received_events,
            ),
            (
                "component_received_bytes",
                "Input payload bytes consumed, per topic",
                &self.received_bytes,
            ),
            (
                "component_sent_events",
                "Output records sent, per output (alerts, suggestions, …)",
                &self.sent_events,
            ),
        ];
        r.register(
            "suggestions",
            "Suggestions sent, by confidence bucket",
            self.suggestions.clone(),
        );
        for (name, help, family) in families {
            r.register(name, help, family.clone());
        }
        let counters = [
            (
                "dead_letters",
                "Undecodable input messages and lines",
                &self.dead_letters,
            ),
            (
                "late_records",
                "Records too late for their window",
                &self.late_records,
            ),
            ("windows_evaluated", "Windows evaluated", &self.windows),
            (
                "rule_failures",
                "Rule and detector evaluations that failed or ran over budget",
                &self.rule_failures,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        let gauges = [
            (
                "buffered_bytes",
                "Estimated bytes in open traces and windows",
                &self.buffered_bytes,
            ),
            ("open_traces", "Traces being aligned", &self.open_traces),
            (
                "detector_series",
                "Series the detectors keep state for",
                &self.detector_series,
            ),
        ];
        for (name, help, gauge) in gauges {
            r.register(name, help, gauge.clone());
        }
        self.register_state(r);
    }

    /// The gauges and histograms of where the pipeline stands.
    fn register_state(&self, r: &mut Registry) {
        r.register(
            "consumer_lag_messages",
            "Messages between the position and the end, per assigned partition",
            self.consumer_lag.clone(),
        );
        r.register(
            "watermark_lag_seconds",
            "Wall clock minus the shard's watermark (event time)",
            self.watermark_lag.clone(),
        );
        r.register(
            "alerts",
            "Alerts by state (pending, firing)",
            self.alerts.clone(),
        );
        r.register(
            "rule_evaluation_seconds",
            "Wall-clock time of one rule or detector query over one window",
            self.rule_seconds.clone(),
        );
        r.register(
            "checkpoint_bytes",
            "Size of the latest state snapshot, per shard",
            self.checkpoint_bytes.clone(),
        );
        r.register(
            "checkpoint_age_seconds",
            "Time since the latest state checkpoint",
            self.checkpoint_age.clone(),
        );
    }

    /// The text exposition (`GET /metrics`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Messages and bytes consumed per topic since the last call.
    pub fn received(&self, per_topic: &mut HashMap<String, (u64, u64)>) {
        for (topic, (messages, bytes)) in per_topic.drain() {
            let label = Component {
                component_kind: "source",
                component_id: topic,
            };
            self.received_events.get_or_create(&label).inc_by(messages);
            self.received_bytes.get_or_create(&label).inc_by(bytes);
        }
    }

    /// Output records sent per kind since the last call.
    pub fn sent(&self, per_kind: BTreeMap<OutputKind, u64>) {
        for (kind, n) in per_kind {
            let id = kind.file_name().trim_end_matches(".jsonl").to_string();
            let label = Component {
                component_kind: "sink",
                component_id: id,
            };
            self.sent_events.get_or_create(&label).inc_by(n);
        }
    }

    /// The pipeline's totals and gauges now.
    pub fn pipeline(&self, stats: &Stats, alerts: (usize, usize), buffered_bytes: usize) {
        let mut last = self.last.lock().expect("metrics lock");
        self.dead_letters
            .inc_by(stats.dead_letters.saturating_sub(last.dead_letters));
        self.late_records
            .inc_by(stats.late.saturating_sub(last.late));
        self.windows
            .inc_by(stats.windows.saturating_sub(last.windows));
        self.rule_failures
            .inc_by(stats.rule_failures.saturating_sub(last.rule_failures));
        *last = stats.clone();
        self.open_traces.set(stats.align.open_traces as i64);
        self.buffered_bytes.set(buffered_bytes as i64);
        let (pending, firing) = alerts;
        for (state, n) in [("pending", pending), ("firing", firing)] {
            self.alerts
                .get_or_create(&AlertState { state })
                .set(n as i64);
        }
    }

    /// Suggestions sent since the last call, by their confidence.
    pub fn suggested(&self, confidences: Vec<f64>) {
        for c in confidences {
            let confidence = match c {
                c if c >= 0.9 => "0.9-1",
                c if c >= 0.7 => "0.7-0.9",
                c if c >= 0.5 => "0.5-0.7",
                _ => "0-0.5",
            };
            self.suggestions
                .get_or_create(&Confidence { confidence })
                .inc();
        }
    }

    /// Series the detectors keep now.
    pub fn detector_series(&self, series: usize) {
        self.detector_series.set(series as i64);
    }

    /// Consumer lag per partition (librdkafka's statistics).
    pub fn lag(&self, per_partition: &[(String, i32, i64)]) {
        for (topic, partition, lag) in per_partition {
            let label = Partition {
                topic: topic.clone(),
                partition: partition.to_string(),
            };
            self.consumer_lag.get_or_create(&label).set(*lag);
        }
    }

    /// Wall clock minus each shard's watermark.
    pub fn watermark_lag(&self, per_shard: &[(i32, Duration)]) {
        for (shard, lag) in per_shard {
            let label = Shard {
                shard: shard.to_string(),
            };
            self.watermark_lag
                .get_or_create(&label)
                .set(lag.as_secs_f64());
        }
    }

    /// The latest checkpoint: snapshot sizes per shard and its age.
    pub fn checkpoint(&self, sizes: &BTreeMap<i32, usize>, age: Duration) {
        for (shard, bytes) in sizes {
            let label = Shard {
                shard: shard.to_string(),
            };
            self.checkpoint_bytes
                .get_or_create(&label)
                .set(*bytes as i64);
        }
        self.checkpoint_age.set(age.as_secs_f64());
    }

    /// One rule or detector query's evaluation time.
    pub fn rule_evaluated(&self, rule_id: &str, took: Duration) {
        let label = Rule {
            rule_id: rule_id.to_string(),
        };
        self.rule_seconds
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        let mut spans = self.spans.lock().expect("spans lock");
        if let Some(buffer) = spans.as_mut() {
            if buffer.spans.len() >= MAX_SPANS {
                buffer.dropped += 1;
                return;
            }
            let end_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            buffer.spans.push(StageSpan {
                name: "rule_evaluation",
                attributes: vec![("rule_id", rule_id.to_string())],
                end_ns,
                took,
            });
        }
    }

    /// Starts keeping stage spans for [`Metrics::take_spans`].
    pub fn collect_spans(&self) {
        let mut spans = self.spans.lock().expect("spans lock");
        spans.get_or_insert_with(SpanBuffer::default);
    }

    /// The stage spans kept since the last call, and how many did not fit.
    pub fn take_spans(&self) -> (Vec<StageSpan>, u64) {
        let mut spans = self.spans.lock().expect("spans lock");
        let buffer = spans.as_mut().map(std::mem::take).unwrap_or_default();
        (buffer.spans, buffer.dropped)
    }
}

impl super::Pipeline {
    /// Alerts pending and firing, all shards.
    pub fn alert_counts(&self) -> (usize, usize) {
        self.shards.values().fold((0, 0), |(p, f), shard| {
            let (sp, sf) = shard.lifecycle.counts();
            (p + sp, f + sf)
        })
    }

    /// Series the detectors keep, all shards.
    pub fn detector_series(&self) -> usize {
        self.shards.values().map(|s| s.detectors.series()).sum()
    }

    /// Each shard's watermark (event time up to which its windows are complete).
    pub fn shard_watermarks(&self) -> Vec<(i32, EventTime)> {
        self.shards
            .iter()
            .map(|(n, shard)| (*n, shard.aligner.watermark()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_spans_are_kept_only_when_exported_and_at_most_max_spans_between_exports() {
        let m = Metrics::new();
        m.rule_evaluated("r", Duration::from_millis(1));
        assert_eq!(
            m.take_spans(),
            (Vec::new(), 0),
            "not collected without an export"
        );
        m.collect_spans();
        for _ in 0..MAX_SPANS + 10 {
            m.rule_evaluated("r", Duration::from_millis(1));
        }
        let (spans, dropped) = m.take_spans();
        assert_eq!((spans.len(), dropped), (MAX_SPANS, 10));
        assert_eq!(spans[0].attributes, vec![("rule_id", "r".to_string())]);
        assert_eq!(m.take_spans(), (Vec::new(), 0), "taken");
    }

    #[test]
    fn counters_follow_the_totals_and_the_text_names_them_in_component_style() {
        let m = Metrics::new();
        let mut topics = HashMap::from([("otlp_spans".to_string(), (3, 300))]);
        m.received(&mut topics);
        assert!(topics.is_empty(), "handed over");
        m.sent(BTreeMap::from([(OutputKind::Alerts, 2)]));
        let mut stats = Stats {
            windows: 5,
            late: 1,
            ..Stats::default()
        };
        m.pipeline(&stats, (1, 2), 4096);
        stats.windows = 7;
        m.pipeline(&stats, (0, 3), 0);
        m.rule_evaluated("latency", Duration::from_millis(3));
        m.lag(&[("otlp_spans".into(), 0, 42)]);
        m.suggested(vec![0.95, 0.6]);
        m.detector_series(4);
        let text = m.encode();
        for line in [
            r#"faultline_component_received_events_total{component_kind="source",component_id="otlp_spans"} 3"#,
            r#"faultline_component_received_bytes_total{component_kind="source",component_id="otlp_spans"} 300"#,
            r#"faultline_component_sent_events_total{component_kind="sink",component_id="alerts"} 2"#,
            "faultline_windows_evaluated_total 7",
            "faultline_late_records_total 1",
            r#"faultline_alerts{state="firing"} 3"#,
            r#"faultline_rule_evaluation_seconds_count{rule_id="latency"} 1"#,
            r#"faultline_consumer_lag_messages{topic="otlp_spans",partition="0"} 42"#,
            r#"faultline_suggestions_total{confidence="0.9-1"} 1"#,
            r#"faultline_suggestions_total{confidence="0.5-0.7"} 1"#,
            "faultline_detector_series 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(text.contains("faultline_build_info{version="), "{text}");
    }
}
