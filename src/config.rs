//! `pipeline.toml`: what a pipeline reads, how it windows, which rules it runs and where its
//! results go. These structs are the reference for the file; every field is documented here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::decode::Encoding;
use crate::error::{Error, Result};
use crate::model::Signal;

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
    /// Event-time windowing.
    #[serde(default)]
    pub window: WindowConfig,
    /// Limits on input messages.
    #[serde(default)]
    pub decode: DecodeConfig,
    /// Kafka inputs and outputs, used by `faultline run --brokers`.
    #[serde(default)]
    pub kafka: KafkaConfig,
}

fn default_rules() -> Vec<PathBuf> {
    vec![PathBuf::from("rules")]
}

/// Tumbling event-time windows: every record falls into the window containing its event time;
/// a window is evaluated once the watermark passes its end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length, e.g. `"1m"`. Default 1 minute.
    #[serde(with = "humantime_serde", default = "default_window_size")]
    pub size: Duration,
    /// How far behind the newest event time the watermark trails, so that records arriving
    /// out of order by up to this much still land in their window. Default `"5s"`.
    #[serde(with = "humantime_serde", default = "default_out_of_orderness")]
    pub max_out_of_orderness: Duration,
    /// Kafka mode: after this long without any input the watermark advances to the wall clock
    /// (minus `max_out_of_orderness`), so quiet inputs still close their windows. Default `"5s"`.
    #[serde(with = "humantime_serde", default = "default_idle_timeout")]
    pub idle_timeout: Duration,
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
            max_out_of_orderness: default_out_of_orderness(),
            idle_timeout: default_idle_timeout(),
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

/// Kafka topics and client settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Consumer group id; `--group` overrides it. Default `faultline`.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Input topics. Default: `otlp_logs`, `otlp_metrics`, `otlp_spans` (the OpenTelemetry
    /// Collector Kafka exporter's defaults) with `encoding = "auto"`.
    #[serde(default = "default_inputs")]
    pub inputs: Vec<KafkaInput>,
    /// Output topics.
    #[serde(default)]
    pub outputs: KafkaOutputs,
    /// Extra librdkafka settings for the consumer and the producer (e.g. `"security.protocol"
    /// = "SASL_SSL"`, `"sasl.mechanism"`, `"ssl.ca.location"`). Values are passed verbatim.
    #[serde(default)]
    pub client: BTreeMap<String, String>,
    /// Extra librdkafka settings for the consumer only.
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
    /// Extra librdkafka settings for the producer only.
    #[serde(default)]
    pub producer: BTreeMap<String, String>,
}

fn default_group() -> String {
    "faultline".into()
}

fn default_inputs() -> Vec<KafkaInput> {
    [
        ("otlp_logs", Signal::Logs),
        ("otlp_metrics", Signal::Metrics),
        ("otlp_spans", Signal::Spans),
    ]
    .into_iter()
    .map(|(topic, signal)| KafkaInput {
        topic: topic.into(),
        signal: Some(signal),
        encoding: Encoding::Auto,
    })
    .collect()
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            group_id: default_group(),
            inputs: default_inputs(),
            outputs: KafkaOutputs::default(),
            client: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

/// One input topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaInput {
    /// Topic name.
    pub topic: String,
    /// `logs`, `metrics` or `spans`: needed to decode OTLP protobuf; flat records may also name
    /// their signal themselves.
    pub signal: Option<Signal>,
    /// `auto` (default: JSON when the payload starts with `{`, else protobuf), `json` (OTLP/JSON
    /// or flat), `otlp_proto`, `otlp_json` or `flat_json`.
    #[serde(default)]
    pub encoding: Encoding,
}

/// Output topic names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaOutputs {
    /// Alerts (`schemas/alert.json`). Default `faultline.alerts`.
    #[serde(default = "d_alerts")]
    pub alerts: String,
    /// Remediation suggestions. Default `faultline.suggestions`.
    #[serde(default = "d_suggestions")]
    pub suggestions: String,
    /// Undecodable input (`schemas/deadletter.json`). Default `faultline.deadletter`.
    #[serde(default = "d_deadletter")]
    pub deadletter: String,
    /// Records too late for their window (`schemas/late.json`). Default `faultline.late`.
    #[serde(default = "d_late")]
    pub late: String,
}

fn d_alerts() -> String {
    "faultline.alerts".into()
}
fn d_suggestions() -> String {
    "faultline.suggestions".into()
}
fn d_deadletter() -> String {
    "faultline.deadletter".into()
}
fn d_late() -> String {
    "faultline.late".into()
}

impl Default for KafkaOutputs {
    fn default() -> Self {
        KafkaOutputs {
            alerts: d_alerts(),
            suggestions: d_suggestions(),
            deadletter: d_deadletter(),
            late: d_late(),
        }
    }
}

impl PipelineConfig {
    /// Reads `DIR/pipeline.toml`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("pipeline.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path)
    }

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
        if self.window.size.is_zero() {
            return Err(fail("window.size must be greater than zero".into()));
        }
        if self.decode.max_message_bytes == 0 {
            return Err(fail(
                "decode.max_message_bytes must be greater than zero".into(),
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

/// 1-based line of a TOML error, or 1 when it has no span.
pub(crate) fn toml_line(text: &str, e: &toml::de::Error) -> usize {
    e.span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_collector_topics() {
        let c = PipelineConfig::parse("name = \"p\"\n", Path::new("pipeline.toml")).unwrap();
        let topics: Vec<_> = c.kafka.inputs.iter().map(|i| i.topic.as_str()).collect();
        assert_eq!(topics, ["otlp_logs", "otlp_metrics", "otlp_spans"]);
        assert_eq!(c.kafka.outputs.alerts, "faultline.alerts");
        assert_eq!(c.window.size, Duration::from_secs(60));
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
