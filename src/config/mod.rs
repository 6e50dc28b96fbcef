//! `pipeline.toml`: what a pipeline reads, how it windows, which rules it runs and where its
//! results go. These structs are the reference for the file; every field is documented here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::decode::Encoding;

mod kafka;

use crate::error::{toml_line, Error, Result};
pub use kafka::{KafkaConfig, KafkaInput, KafkaOutputs};

/// The whole `pipeline.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Name of the pipeline; alerts carry it in their `generatorURL`.
    pub name: String,
    /// Directories (or single `.sql` files) holding rules, relative to the pipeline directory.
    /// Default: `["rules"]`.
    #[serde(default = "default_rules")]
    pub rules: Vec<PathBuf>,
    /// Event-time windows and watermarks.
    #[serde(default)]
    pub window: WindowConfig,
    /// Per-trace session windows.
    #[serde(default)]
    pub traces: TraceConfig,
    /// Caps on buffered state and in-flight output.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Per-rule resource limits.
    #[serde(default)]
    pub evaluation: EvaluationConfig,
    /// Notification behaviour: resends and inhibition.
    #[serde(default)]
    pub alerting: AlertingConfig,
    /// Forward alerts to a Prometheus Alertmanager as well (best effort).
    pub alertmanager: Option<AlertmanagerConfig>,
    /// Sliding-window detectors over SQL sources (see `detect::DetectorConfig`).
    #[serde(default)]
    pub detectors: Vec<crate::detect::DetectorConfig>,
    /// Limits on input messages.
    #[serde(default)]
    pub decode: DecodeConfig,
    /// Kafka inputs and outputs, used by `faultline run --brokers`.
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// Log cleaning: template mining and traceback folding.
    #[serde(default)]
    pub logs: LogsConfig,
    /// The knowledge base of remediations (`kb/*.toml`): matching, review, feedback.
    #[serde(default)]
    pub kb: crate::kb::KbConfig,
    /// Incidents and root-cause ranking: which alert labels name entities, and the
    /// indicators whose deviations rank suspects (see `incident::IncidentConfig`).
    #[serde(default)]
    pub incidents: crate::incident::IncidentConfig,
}

fn default_rules() -> Vec<PathBuf> {
    vec![PathBuf::from("rules")]
}

/// Event-time windows: tumbling (`slide` = `size`, the default) or hopping. A window
/// `[start, start + size)` is evaluated once, when the watermark passes
/// `end + traces.gap + allowed_lateness`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length, e.g. `"1m"`. Default 1 minute.
    #[serde(with = "humantime_serde", default = "default_window_size")]
    pub size: Duration,
    /// Distance between window starts; `size` must be a whole multiple of it. Default: `size`
    /// (tumbling windows).
    #[serde(with = "humantime_serde::option", default)]
    pub slide: Option<Duration>,
    /// How far behind the newest event time of a partition its watermark trails, so that
    /// records out of order by up to this much are on time. The pipeline watermark is the
    /// minimum over active partitions (files). Default `"5s"`.
    #[serde(with = "humantime_serde", default = "default_out_of_orderness")]
    pub max_out_of_orderness: Duration,
    /// Extra time a window waits after the watermark passed before it is evaluated; records
    /// arriving later still go to the late output. Default `"0s"`.
    #[serde(with = "humantime_serde", default)]
    pub allowed_lateness: Duration,
    /// Kafka mode: a partition without input for this long is idle and stops holding the
    /// watermark back; when every partition is idle the watermark follows the wall clock
    /// (minus `max_out_of_orderness`), so quiet inputs still close their windows.
    /// Default `"5s"`.
    #[serde(with = "humantime_serde", default = "default_idle_timeout")]
    pub idle_timeout: Duration,
}

impl WindowConfig {
    pub fn slide(&self) -> Duration {
        self.slide.unwrap_or(self.size)
    }
}

/// Per-trace session windows: spans, logs and trace-carrying metric points of one trace are
/// kept together until the trace goes quiet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    /// A trace closes when the watermark passes its last activity plus this. Default `"10s"`.
    #[serde(with = "humantime_serde", default = "default_gap")]
    pub gap: Duration,
    /// A trace still active this long after its first record is closed anyway (later records
    /// start a new fragment). Default `"5m"`.
    #[serde(with = "humantime_serde", default = "default_max_age")]
    pub max_age: Duration,
}

fn default_gap() -> Duration {
    Duration::from_secs(10)
}
fn default_max_age() -> Duration {
    Duration::from_secs(300)
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            gap: default_gap(),
            max_age: default_max_age(),
        }
    }
}

/// Bounds on memory. Reaching a cap closes the oldest state early (counted in the stats and
/// flagged `closed_early` in the `traces` table); nothing is dropped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Open traces at most; beyond it the least recently active trace is closed.
    /// Default 100000.
    #[serde(default = "default_max_open_traces")]
    pub max_open_traces: usize,
    /// Records one trace may hold before it is closed and a new fragment starts.
    /// Default 10000.
    #[serde(default = "default_max_rows_per_trace")]
    pub max_rows_per_trace: usize,
    /// Estimated bytes of records held in open traces and unevaluated windows; beyond it the
    /// oldest window is evaluated early. Default 256 MiB.
    #[serde(default = "default_max_buffered_bytes")]
    pub max_buffered_bytes: usize,
    /// Kafka mode: outputs produced but not yet acknowledged; beyond it consumption pauses
    /// until half of them are. Default 10000.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight_outputs: usize,
    /// Input messages per shard kept uncommitted while pending or firing alerts depend on
    /// them (so a failover replays them and rebuilds the alert states). Beyond it the oldest
    /// are committed anyway and counted (`alert_state_unreplayable`). Default 1000000.
    #[serde(default = "default_max_deferred")]
    pub max_deferred_acks: usize,
}

fn default_max_deferred() -> usize {
    1_000_000
}

fn default_max_open_traces() -> usize {
    100_000
}
fn default_max_rows_per_trace() -> usize {
    10_000
}
fn default_max_buffered_bytes() -> usize {
    256 << 20
}
fn default_max_in_flight() -> usize {
    10_000
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_open_traces: default_max_open_traces(),
            max_rows_per_trace: default_max_rows_per_trace(),
            max_buffered_bytes: default_max_buffered_bytes(),
            max_in_flight_outputs: default_max_in_flight(),
            max_deferred_acks: default_max_deferred(),
        }
    }
}

fn default_window_size() -> Duration {
    Duration::from_secs(60)
}
fn default_out_of_orderness() -> Duration {
    Duration::from_secs(5)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(5)
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            size: default_window_size(),
            slide: None,
            max_out_of_orderness: default_out_of_orderness(),
            allowed_lateness: Duration::ZERO,
            idle_timeout: default_idle_timeout(),
        }
    }
}

/// How alert notifications are sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// A firing alert is sent again (same `id`) after this much event time. Default `"5m"`.
    #[serde(with = "humantime_serde", default = "default_resend")]
    pub resend_interval: Duration,
    /// Inhibition rules, as in Alertmanager.
    #[serde(default)]
    pub inhibit: Vec<crate::alert::InhibitRule>,
    /// Labels that group notifications, e.g. `["alertname", "service"]`. Empty (default):
    /// every alert is its own group.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// How long (event time) a new group waits for more alerts before its first
    /// notification. Default `"0s"`.
    #[serde(with = "humantime_serde", default)]
    pub group_wait: Duration,
    /// Least event time between two notifications of one group. Default `"0s"`.
    #[serde(with = "humantime_serde", default)]
    pub group_interval: Duration,
}

fn default_resend() -> Duration {
    Duration::from_secs(300)
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            resend_interval: default_resend(),
            inhibit: Vec::new(),
            group_by: Vec::new(),
            group_wait: Duration::ZERO,
            group_interval: Duration::ZERO,
        }
    }
}

/// An Alertmanager to forward alerts to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `"http://alertmanager:9093"` (alerts go to `/api/v2/alerts`).
    pub url: String,
    /// Time limit of one request. Default `"5s"`.
    #[serde(with = "humantime_serde", default = "default_am_timeout")]
    pub timeout: Duration,
}

fn default_am_timeout() -> Duration {
    Duration::from_secs(5)
}

/// What one rule may use to evaluate one window; a rule over its limit fails for that window
/// (reported and counted), the others still run. The memory limit is deterministic: the
/// same input fails the same way on any machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationConfig {
    /// Memory one rule may reserve for sorts, aggregations and joins. Default 64 MiB.
    #[serde(default = "default_rule_memory")]
    pub max_memory_bytes: usize,
    /// Kafka mode only: wall time one rule may take on one window; a rule over it is
    /// abandoned for that window (logged and counted as `rule_timeouts`). File runs are
    /// never cut by time, so their output does not depend on the machine's speed or load.
    /// Default `"5s"`.
    #[serde(with = "humantime_serde", default = "default_rule_timeout")]
    pub timeout: Duration,
    /// Kafka mode only: queries of one window evaluated at once (each on a core of its
    /// own): a closing window's rules finish sooner, so alerts leave sooner. Memory can reach
    /// this many times `max_memory_bytes`. Default: the machine's cores. File runs evaluate
    /// one query at a time (the outputs are the same either way).
    #[serde(default)]
    pub parallelism: Option<usize>,
}

fn default_rule_memory() -> usize {
    64 << 20
}
fn default_rule_timeout() -> Duration {
    Duration::from_secs(5)
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        EvaluationConfig {
            max_memory_bytes: default_rule_memory(),
            timeout: default_rule_timeout(),
            parallelism: None,
        }
    }
}

impl EvaluationConfig {
    /// Queries evaluated at once in Kafka mode (at least 1).
    pub fn parallelism(&self) -> usize {
        self.parallelism
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    pub fn limits(&self) -> crate::rules::EvalLimits {
        crate::rules::EvalLimits {
            max_memory_bytes: self.max_memory_bytes,
        }
    }
}

/// `[logs]`: how log records are cleaned before rules see them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// File (relative to the pipeline directory) where the template miner keeps what it
    /// learned, so templates (and their ids) stay the same across restarts. Written when a
    /// run ends (end of the input files, or SIGINT/SIGTERM with Kafka). Unset: templates are learned afresh at each start.
    #[serde(default)]
    pub template_state: Option<PathBuf>,
    /// Most lines folded into one traceback event. Default 200.
    #[serde(default = "default_fold_max_lines")]
    pub fold_max_lines: usize,
    /// Template miner tuning (`[logs.miner]`); the defaults are the ones evaluated in
    /// BENCHMARKS.md and suit every log kind tried.
    #[serde(default)]
    pub miner: crate::logparse::MinerConfig,
}

fn default_fold_max_lines() -> usize {
    200
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            template_state: None,
            fold_max_lines: default_fold_max_lines(),
            miner: crate::logparse::MinerConfig::default(),
        }
    }
}

/// Limits applied before decoding.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    /// Messages (Kafka) or lines (files) larger than this go to the dead letter output.
    /// Default 1 MiB.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Dead letters keep at most this many bytes of the original payload. Default 64 KiB.
    #[serde(default = "default_dead_letter_payload_bytes")]
    pub dead_letter_payload_bytes: usize,
}

fn default_max_message_bytes() -> usize {
    1024 * 1024
}
fn default_dead_letter_payload_bytes() -> usize {
    64 * 1024
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            max_message_bytes: default_max_message_bytes(),
            dead_letter_payload_bytes: default_dead_letter_payload_bytes(),
        }
    }
}

impl PipelineConfig {
    /// Parses the text of a `pipeline.toml`; errors name `path:line`.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let config: PipelineConfig = toml::from_str(text).map_err(|e| Error::Config {
            location: format!("{}:{}", path.display(), toml_line(text, &e)),
            message: e.message().to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let fail = |message: String| Error::Config {
            location: path.display().to_string(),
            message,
        };
        if self.window.size.is_zero() || self.window.slide().is_zero() {
            return Err(fail(
                "window.size and window.slide must be greater than zero".into(),
            ));
        }
        if self.window.size.as_nanos() % self.window.slide().as_nanos() != 0 {
            return Err(fail(format!(
                "window.size ({}) must be a whole multiple of window.slide ({})",
                humantime::format_duration(self.window.size),
                humantime::format_duration(self.window.slide())
            )));
        }
        if self.limits.max_open_traces == 0 || self.limits.max_rows_per_trace == 0 {
            return Err(fail(
                "limits.max_open_traces and limits.max_rows_per_trace must be at least 1".into(),
            ));
        }
        if self.decode.max_message_bytes == 0 {
            return Err(fail(
                "decode.max_message_bytes must be greater than zero".into(),
            ));
        }
        if self.kafka.checkpoints.exactly_once && !self.kafka.checkpoints.enabled() {
            return Err(fail(
                "kafka.checkpoints.exactly_once needs checkpoints: an interval above 0s".into(),
            ));
        }
        if self.kafka.inputs.is_empty() {
            return Err(fail("kafka.inputs must name at least one topic".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for input in &self.kafka.inputs {
            if !seen.insert(&input.topic) {
                return Err(fail(format!(
                    "kafka input topic {:?} is listed twice",
                    input.topic
                )));
            }
            if input.signal.is_none() && input.encoding == Encoding::OtlpProto {
                return Err(fail(format!(
                    "kafka input {:?}: otlp_proto needs a signal (logs, metrics or spans)",
                    input.topic
                )));
            }
        }
        Ok(())
    }
}

impl PipelineConfig {
    /// The aligner's settings.
    pub fn align(&self) -> crate::align::AlignConfig {
        crate::align::AlignConfig {
            size: self.window.size,
            slide: self.window.slide(),
            trace_gap: self.traces.gap,
            max_trace_age: self.traces.max_age,
            allowed_lateness: self.window.allowed_lateness,
            max_open_traces: self.limits.max_open_traces,
            max_rows_per_trace: self.limits.max_rows_per_trace,
            max_buffered_bytes: self.limits.max_buffered_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hopping_windows_need_a_slide_that_divides_the_size() {
        let err = PipelineConfig::parse(
            "name = \"p\"\n[window]\nsize = \"90s\"\nslide = \"1m\"\n",
            Path::new("p.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("whole multiple"), "{err}");
        let ok = PipelineConfig::parse(
            "name = \"p\"\n[window]\nsize = \"2m\"\nslide = \"30s\"\n",
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(ok.align().slide, Duration::from_secs(30));
    }

    #[test]
    fn evaluation_parallelism_defaults_to_the_cores_and_is_at_least_one() {
        let parse = |t: &str| PipelineConfig::parse(t, Path::new("p.toml")).unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(parse("name = \"p\"\n").evaluation.parallelism(), cores);
        let three = parse("name = \"p\"\n[evaluation]\nparallelism = 3\n");
        assert_eq!(three.evaluation.parallelism(), 3);
        let zero = parse("name = \"p\"\n[evaluation]\nparallelism = 0\n");
        assert_eq!(zero.evaluation.parallelism(), 1);
    }

    #[test]
    fn defaults_are_the_collector_topics() {
        let c = PipelineConfig::parse("name = \"p\"\n", Path::new("pipeline.toml")).unwrap();
        let topics: Vec<_> = c.kafka.inputs.iter().map(|i| i.topic.as_str()).collect();
        assert_eq!(topics, ["otlp_logs", "otlp_metrics", "otlp_spans"]);
        assert_eq!(c.kafka.outputs.alerts, "faultline.alerts");
        assert_eq!(c.window.size, Duration::from_secs(60));
    }

    #[test]
    fn a_topic_may_set_its_own_idle_timeout() {
        let parse = |t: &str| PipelineConfig::parse(t, Path::new("p.toml")).unwrap();
        let window = Duration::from_secs(5);
        let defaults = parse("name = \"p\"\n").kafka;
        assert_eq!(defaults.idle_timeout("otlp_spans", window), window);
        assert_eq!(
            defaults.idle_timeout("otlp_metrics", window),
            Duration::from_secs(1),
            "metrics come in bursts"
        );
        let own = parse(
            "name = \"p\"\n[[kafka.inputs]]\ntopic = \"m\"\nidle_timeout = \"250ms\"\n\
             [[kafka.inputs]]\ntopic = \"s\"\n",
        )
        .kafka;
        assert_eq!(own.idle_timeout("m", window), Duration::from_millis(250));
        assert_eq!(own.idle_timeout("s", window), window);
    }

    #[test]
    fn unknown_field_is_reported_with_its_line() {
        let err = PipelineConfig::parse(
            "name = \"p\"\n[window]\nsize = \"1m\"\nsizee = \"2m\"\n",
            Path::new("x/pipeline.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("x/pipeline.toml:4"), "{err}");
        assert!(err.contains("sizee"), "{err}");
    }

    #[test]
    fn bad_duration_and_zero_window_are_rejected() {
        let err = PipelineConfig::parse(
            "name = \"p\"\n[window]\nsize = \"soon\"\n",
            Path::new("p.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("p.toml:3"), "{err}");
        let err = PipelineConfig::parse(
            "name = \"p\"\n[window]\nsize = \"0s\"\n",
            Path::new("p.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("window.size"), "{err}");
    }
}
