//! `faultline alerts`: reads alert notifications — an `alerts.jsonl` (or the `--output`
//! directory holding it), stdin, or the alerts topic — filters them and prints them for a
//! person (or as the JSON lines they were).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use super::human::{Format, Renderer};
use crate::error::{Error, Result};

/// `faultline alerts`.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// Alert files (JSON lines, `schemas/alert.json`), `--output` directories (their
    /// `alerts.jsonl` is read) or `-` for stdin. Default: stdin, unless `--brokers`.
    pub files: Vec<PathBuf>,
    /// Read the alerts topic of these Kafka bootstrap servers instead (every partition from
    /// its start, as it is now).
    #[arg(long, conflicts_with = "files")]
    pub brokers: Option<String>,
    /// The topic for `--brokers`.
    #[arg(long, default_value = "faultline.alerts", requires = "brokers")]
    pub topic: String,
    /// Only these alertnames (repeatable).
    #[arg(long)]
    pub alertname: Vec<String>,
    /// Only these severities (repeatable): info, warning, critical.
    #[arg(long)]
    pub severity: Vec<String>,
    /// Only alerts with this label value, `NAME=VALUE` (repeatable; all must hold).
    #[arg(long, value_parser = label_filter)]
    pub label: Vec<(String, String)>,
    /// Only `firing` or `resolved` notifications.
    #[arg(long, value_parser = ["firing", "resolved"])]
    pub status: Option<String>,
    /// Only notifications at or after this time (RFC 3339; a firing alert's time is its
    /// `startsAt`, a resolved one's its `endsAt`).
    #[arg(long, value_parser = rfc3339)]
    pub since: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Only notifications before this time (RFC 3339).
    #[arg(long, value_parser = rfc3339)]
    pub until: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// `human`: a line per notification; `json`: the matching lines as they were.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

fn label_filter(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

fn rfc3339(s: &str) -> std::result::Result<chrono::DateTime<chrono::FixedOffset>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-11-01T12:00:00Z ({e})"))
}

impl AlertsArgs {
    /// Whether the notification passes every filter given.
    fn keeps(&self, alert: &Value) -> bool {
        let label = |k: &str| alert["labels"][k].as_str().unwrap_or("");
        let status = alert["status"].as_str().unwrap_or("");
        let time_key = match status {
            "resolved" => "endsAt",
            _ => "startsAt",
        };
        let time = alert[time_key]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let any =
            |wanted: &[String], have: &str| wanted.is_empty() || wanted.iter().any(|w| w == have);
        any(&self.alertname, label("alertname"))
            && any(&self.severity, label("severity"))
            && self.label.iter().all(|(k, v)| label(k) == v)
            && self.status.as_deref().is_none_or(|s| s == status)
            && self.since.is_none_or(|s| time.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| time.is_some_and(|t| t < u))
    }
}

/// Reads, filters and prints; a line that is not an alert is an error naming its place.
pub fn run(args: &AlertsArgs) -> Result<()> {
    let lines = match &args.brokers {
        Some(brokers) => topic_lines(brokers, &args.topic)?,
        None => file_lines(&args.files)?,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let color = super::color_for_stdout();
    let mut renderer = Renderer::new(color);
    for (place, line) in lines {
        let alert: Value = serde_json::from_str(&line).map_err(|e| Error::Config {
            location: place.clone(),
            message: format!("not a JSON alert ({e})"),
        })?;
        if alert["labels"]["alertname"].as_str().is_none() {
            return Err(Error::Config {
                location: place,
                message: "not an alert notification (no labels.alertname)".into(),
            });
        }
        // Every notification goes through the renderer, so a resend stays a resend when the
        // first notification is filtered out by time.
        let (text, _) = renderer.alert(&alert);
        if !args.keeps(&alert) {
            continue;
        }
        let printed = match args.format {
            Format::Human => writeln!(out, "{text}"),
            Format::Json => writeln!(out, "{line}"),
        };
        printed.map_err(|source| Error::Io {
            path: "<stdout>".into(),
            source,
        })?;
    }
    Ok(())
}

/// Non-blank lines with their `file:line`.
fn file_lines(files: &[PathBuf]) -> Result<Vec<(String, String)>> {
    let stdin = [PathBuf::from(crate::source::STDIN)];
    let files = if files.is_empty() { &stdin[..] } else { files };
    let mut lines = Vec::new();
    for file in files {
        let (name, reader): (String, Box<dyn Read>) = if file.as_os_str() == crate::source::STDIN {
            ("<stdin>".into(), Box::new(std::io::stdin()))
        } else {
            let path = match file.is_dir() {
                true => file.join(crate::output::OutputKind::Alerts.file_name()),
                false => file.clone(),
            };
            let f = std::fs::File::open(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            (path.display().to_string(), Box::new(f))
        };
        for (i, line) in BufReader::new(reader).lines().enumerate() {
            let line = line.map_err(|source| Error::Io {
                path: name.clone().into(),
                source,
            })?;
            if !line.trim().is_empty() {
                lines.push((format!("{name}:{}", i + 1), line));
            }
        }
    }
    Ok(lines)
}

/// The topic's messages as lines, in notification time order (partitions interleaved).
fn topic_lines(brokers: &str, topic: &str) -> Result<Vec<(String, String)>> {
    let config = crate::config::KafkaConfig::default();
    let mut lines: Vec<(String, String)> =
        crate::source::read_whole_topic(brokers, &config, topic)?
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| {
                (
                    format!("{topic} message {}", i + 1),
                    String::from_utf8_lossy(&bytes).into_owned(),
                )
            })
            .collect();
    let time = |line: &str| {
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        let key = match v["status"].as_str() {
            Some("resolved") => "endsAt",
            _ => "startsAt",
        };
        v[key].as_str().unwrap_or("").to_string()
    };
    lines.sort_by_cached_key(|(_, line)| time(line));
    Ok(lines)
}
