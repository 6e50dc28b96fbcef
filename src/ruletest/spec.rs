//! The rule-test file: YAML in the notation of `promtool test rules` where it applies, plus
//! logs, spans, alert counts and suggestions. These structs are the file's reference: every
//! field documented, unknown keys refused.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// One test file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Rule files or directories to test, relative to this file. Without it, the rules of
    /// `pipeline`.
    #[serde(default)]
    pub rule_files: Option<Vec<PathBuf>>,
    /// Pipeline directory (relative to this file) whose `pipeline.toml` — windows, defaults,
    /// detectors, knowledge base — the tests run with. Without it, every setting is at its
    /// default and only `rule_files` run.
    #[serde(default)]
    pub pipeline: Option<PathBuf>,
    /// promtool's rule evaluation interval. Here rules run once per window, so when given it
    /// must equal the pipeline's `window.slide`.
    #[serde(default, with = "humantime_serde")]
    pub evaluation_interval: Option<Duration>,
    /// Event time of offset 0 (RFC 3339). Default `2026-01-01T00:00:00Z` (promtool starts at
    /// the Unix epoch, which OTLP reads as "no time").
    #[serde(default)]
    pub start_time: Option<String>,
    /// The tests.
    pub tests: Vec<TestCase>,
}

/// One test: inputs and what must come out of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Shown in reports; `--run REGEX` selects tests by it. Default `test N`.
    #[serde(default)]
    pub name: Option<String>,
    /// Time between two values of an `input_series` entry. Default: the pipeline's window
    /// slide.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Metric series in promtool notation.
    #[serde(default)]
    pub input_series: Vec<InputSeries>,
    /// Log records: a flat log record (`schemas/flat-log.json`) with `at` instead of a time.
    #[serde(default)]
    pub input_logs: Vec<TimedRecord>,
    /// Spans: a flat span (`schemas/flat-span.json`) with `at` (its start) instead of a time.
    #[serde(default)]
    pub input_spans: Vec<TimedRecord>,
    /// Alerts expected to be firing at a time (promtool's `alert_rule_test`).
    #[serde(default)]
    pub alert_rule_test: Vec<AlertRuleTest>,
    /// How many alerts of a name fire over the whole test.
    #[serde(default)]
    pub alert_count_test: Vec<AlertCountTest>,
    /// Which remediation the knowledge base suggests first for an alert.
    #[serde(default)]
    pub suggestion_test: Vec<SuggestionTest>,
}

/// promtool's `input_series` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    /// `name{label="value",...}`. Labels `service` and `host` become the record's service
    /// and host; the others its attributes.
    pub series: String,
    /// promtool's expanding notation: `0+10x5 _ stale 1x3`. `_` and `stale` give no sample.
    pub values: String,
}

/// A flat record at an offset from the start time.
#[derive(Debug, Clone, Deserialize)]
pub struct TimedRecord {
    /// Offset from `start_time`, e.g. `90s`.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// The record's fields, as in the flat JSON schemas.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// promtool's `alert_rule_test` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleTest {
    /// Offset from the start: the alerts firing once every window ending at or before it
    /// has been evaluated.
    #[serde(with = "humantime_serde")]
    pub eval_time: Duration,
    /// The alert name.
    pub alertname: String,
    /// The firing alerts of that name, exactly; empty: none fires.
    #[serde(default)]
    pub exp_alerts: Vec<ExpectedAlert>,
}

/// One expected firing alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAlert {
    /// Every label except `alertname`, exactly (`severity` and the defaults' labels too).
    #[serde(default)]
    pub exp_labels: BTreeMap<String, String>,
    /// Annotations that must have these values (others may exist: the knowledge base and
    /// incidents add some).
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
}

/// Bounds on the number of alerts of a name that fire over the test (resends of one alert
/// count once).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertCountTest {
    /// The alert name.
    pub alertname: String,
    /// At least this many.
    #[serde(default)]
    pub at_least: Option<usize>,
    /// At most this many.
    #[serde(default)]
    pub at_most: Option<usize>,
    /// Exactly this many.
    #[serde(default)]
    pub exactly: Option<usize>,
}

/// The knowledge base's first suggestion for the alerts of a name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestionTest {
    /// The alert name.
    pub alertname: String,
    /// Id of the remediation expected first; empty means no suggestion at all.
    pub exp_remediation: String,
}
