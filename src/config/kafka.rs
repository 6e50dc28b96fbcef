//! `[kafka]` of `pipeline.toml`: input and output topics and client settings.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::decode::Encoding;
use crate::model::Signal;

/// Kafka topics and client settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Consumer group id; `--group` overrides it. Default `faultline`.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Static group membership (`group.instance.id`): a stable name per instance, e.g. the
    /// pod name; `--instance-id` or `FAULTLINE_INSTANCE_ID` override it. A member that
    /// restarts under the same name within `session.timeout.ms` gets its partitions back at
    /// once, without a rebalance; the price is that a stopped member's partitions wait for
    /// the session timeout before another member takes them. Default: none (dynamic).
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Input topics. Default: `otlp_logs`, `otlp_metrics`, `otlp_spans` (the OpenTelemetry
    /// Collector Kafka exporter's defaults) with `encoding = "auto"`.
    #[serde(default = "default_inputs")]
    pub inputs: Vec<KafkaInput>,
    /// Output topics.
    #[serde(default)]
    pub outputs: KafkaOutputs,
    /// Refuse to start when the input topics have different partition counts: correlation by
    /// trace id needs co-partitioned topics (same key, same partition count). Default true.
    #[serde(default = "default_true")]
    pub require_copartitioned: bool,
    /// Extra librdkafka settings for the consumer and the producer (e.g. `"security.protocol"
    /// = "SASL_SSL"`, `"sasl.mechanism"`, `"ssl.ca.location"`). Values are passed verbatim.
    #[serde(default)]
    pub client: BTreeMap<String, String>,
    /// librdkafka settings whose values come from environment variables, so that no secret
    /// sits in `pipeline.toml`: setting → variable, e.g. `"sasl.password" =
    /// "FAULTLINE_KAFKA_PASSWORD"`. Read when connecting; a variable that is not set is an
    /// error naming it.
    #[serde(default)]
    pub client_env: BTreeMap<String, String>,
    /// librdkafka settings whose values are read from files when connecting (a trailing
    /// newline removed): setting → path, e.g. `"sasl.password" = "/run/secrets/kafka"`
    /// (Kubernetes and Docker secrets).
    #[serde(default)]
    pub client_files: BTreeMap<String, std::path::PathBuf>,
    /// Extra librdkafka settings for the consumer only.
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
    /// Extra librdkafka settings for the producer only.
    #[serde(default)]
    pub producer: BTreeMap<String, String>,
    /// State checkpoints: what lets committed offsets reach the end while alerts fire.
    #[serde(default)]
    pub checkpoints: CheckpointConfig,
}

/// `[kafka.checkpoints]`: each shard's state (alert states, detector series, incidents…)
/// saved to a compacted topic with the input offsets it covers; offsets are committed up to
/// the latest checkpoint, and a new owner of a shard restores it and re-reads only from
/// there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// How often state is checkpointed and offsets committed: the most input a restart
    /// re-reads besides open windows. `"0s"` turns checkpoints off (offsets then stay
    /// uncommitted while an alert state depends on their windows). Default `"10s"`.
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    pub interval: std::time::Duration,
    /// The compacted state topic, keyed `group/pipeline/shard`; created (compacted) when
    /// missing. Default `faultline.state`.
    #[serde(default = "default_state_topic")]
    pub topic: String,
    /// Exactly-once outputs (Kafka transactions): each interval's outputs, the state
    /// snapshots and the input offsets they cover are committed in one transaction, so a
    /// consumer with `isolation.level = read_committed` sees every alert once, across
    /// crashes, restarts and rebalances. Outputs become visible at the commit, up to one
    /// interval later; a rebalance or a failed commit rolls the instance back to its last
    /// checkpoint (the aborted outputs are produced again). The transactional id is
    /// `faultline-<group>-<instance_id>`: give `instance_id` so that a restarted member
    /// fences its predecessor's open transaction at once (without it, read_committed
    /// consumers wait up to three intervals, at least 10 s, for the broker to abort it).
    /// The Alertmanager is not transactional. Default false (at least once).
    #[serde(default)]
    pub exactly_once: bool,
    /// The largest look-back (the earlier windows kept for rules and indicators whose
    /// `window` spans several) saved in a snapshot, in bytes of memory. A larger one is left
    /// out and rebuilt from the input after a restart: the checkpoint then covers each
    /// partition only up to the look-back's oldest message, so committed offsets stay that
    /// far behind and a restart re-reads that much more. Default 16777216 (16 MiB).
    #[serde(default = "default_max_history_bytes")]
    pub max_history_bytes: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            interval: ten_seconds(),
            topic: default_state_topic(),
            exactly_once: false,
            max_history_bytes: default_max_history_bytes(),
        }
    }
}

impl CheckpointConfig {
    pub fn enabled(&self) -> bool {
        !self.interval.is_zero()
    }
}

fn default_max_history_bytes() -> usize {
    16 << 20
}

fn ten_seconds() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

fn default_state_topic() -> String {
    "faultline.state".into()
}

fn default_true() -> bool {
    true
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
        // Metrics come in bursts, one per scrape or export interval (see the field).
        idle_timeout: (signal == Signal::Metrics).then_some(Duration::from_secs(1)),
    })
    .collect()
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            group_id: default_group(),
            instance_id: None,
            inputs: default_inputs(),
            outputs: KafkaOutputs::default(),
            require_copartitioned: true,
            client: BTreeMap::new(),
            client_env: BTreeMap::new(),
            client_files: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
            checkpoints: CheckpointConfig::default(),
        }
    }
}

impl KafkaConfig {
    /// How long a partition of `topic` may go without input before it stops holding the
    /// watermark back: its input's own `idle_timeout`, else `default`.
    pub fn idle_timeout(&self, topic: &str, default: Duration) -> Duration {
        self.inputs
            .iter()
            .find(|i| i.topic == topic)
            .and_then(|i| i.idle_timeout)
            .unwrap_or(default)
    }

    /// The consumer's librdkafka settings: `client`, then `client_env` and `client_files`
    /// resolved, then `consumer`.
    pub fn consumer_settings(&self) -> crate::Result<Vec<(String, String)>> {
        self.settings(&self.consumer)
    }

    /// The producer's librdkafka settings: `client`, the resolved secrets, then `producer`.
    pub fn producer_settings(&self) -> crate::Result<Vec<(String, String)>> {
        self.settings(&self.producer)
    }

    fn settings(
        &self,
        specific: &BTreeMap<String, String>,
    ) -> crate::Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = self.client.clone().into_iter().collect();
        for (setting, var) in &self.client_env {
            let value = std::env::var(var).map_err(|_| crate::Error::Config {
                location: format!("kafka.client_env.{setting:?}"),
                message: format!("environment variable {var} is not set"),
            })?;
            out.push((setting.clone(), value));
        }
        for (setting, path) in &self.client_files {
            let text = std::fs::read_to_string(path).map_err(|e| crate::Error::Config {
                location: format!("kafka.client_files.{setting:?}"),
                message: format!("cannot read {}: {e}", path.display()),
            })?;
            out.push((
                setting.clone(),
                text.trim_end_matches(['\n', '\r']).to_string(),
            ));
        }
        out.extend(specific.clone());
        Ok(out)
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
    /// This topic's partitions go idle after this long without input instead of after
    /// `[window] idle_timeout`. For a topic written in bursts, such as metrics scraped every
    /// 10 s: between bursts its partitions have nothing to deliver, and until they count as
    /// idle they hold every window back. A burst is judged against the other partitions'
    /// watermark either way once the gap between bursts exceeds the idle timeout, so a
    /// shorter one costs such a topic no lateness. Only caught-up partitions go idle.
    #[serde(with = "humantime_serde::option", default)]
    pub idle_timeout: Option<Duration>,
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
    /// Suggestions a person should confirm (below the review threshold, or no known
    /// remediation). Default `faultline.review`.
    #[serde(default = "d_review")]
    pub review: String,
    /// Incidents: alerts grouped with their root-cause ranking (`schemas/incident.json`).
    /// Default `faultline.incidents`.
    #[serde(default = "d_incidents")]
    pub incidents: String,
    /// Feedback on suggestions, read from its start at every start (it rebuilds the
    /// knowledge base's statistics). Default `faultline.feedback`.
    #[serde(default = "d_feedback")]
    pub feedback: String,
    /// The watermark journal: decisions the wall clock made (idle partitions, event time
    /// following the wall clock; `schemas/watermark.json`), read by `faultline replay` to
    /// make the same decisions between the same records. Default `faultline.watermarks`.
    #[serde(default = "d_watermarks")]
    pub watermarks: String,
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
fn d_review() -> String {
    "faultline.review".into()
}
fn d_incidents() -> String {
    "faultline.incidents".into()
}
fn d_watermarks() -> String {
    "faultline.watermarks".into()
}
fn d_feedback() -> String {
    "faultline.feedback".into()
}

impl Default for KafkaOutputs {
    fn default() -> Self {
        KafkaOutputs {
            alerts: d_alerts(),
            suggestions: d_suggestions(),
            deadletter: d_deadletter(),
            late: d_late(),
            review: d_review(),
            incidents: d_incidents(),
            feedback: d_feedback(),
            watermarks: d_watermarks(),
        }
    }
}
