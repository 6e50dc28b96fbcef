//! The environment agent: snapshots the environment variables of a process (its own, or
//! another's through `/proc/PID/environ`) as OTLP logs, one record per variable, all of one
//! snapshot stamped with the same time. Secret values never leave it: a variable whose name
//! looks secret (PASSWORD, SECRET, TOKEN, KEY, CREDENTIAL, …) or whose value looks like a
//! credential is sent as a keyed hash (`<redacted:…>`, stable within one agent run so changes
//! still show) and flagged `env.secret = true`.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use regex::Regex;

use super::Destination;
use crate::decode::string_attribute as text;
use crate::error::{Error, Result};

/// Reads the environment of `pid` (or of this process), keeping names with `prefix`.
pub fn snapshot(pid: Option<u32>, prefix: Option<&str>) -> Result<BTreeMap<String, String>> {
    let vars: Vec<(String, String)> = match pid {
        None => std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect(),
        Some(pid) => {
            let path = std::path::PathBuf::from(format!("/proc/{pid}/environ"));
            let raw = std::fs::read(&path).map_err(|source| Error::Io { path, source })?;
            raw.split(|b| *b == 0)
                .filter(|e| !e.is_empty())
                .filter_map(|e| {
                    let text = String::from_utf8_lossy(e);
                    let (k, v) = text.split_once('=')?;
                    Some((k.to_string(), v.to_string()))
                })
                .collect()
        }
    };
    Ok(vars
        .into_iter()
        .filter(|(k, _)| prefix.is_none_or(|p| k.starts_with(p)))
        .collect())
}

/// Why a variable is treated as a secret, if it is.
pub fn secret_reason(name: &str, value: &str) -> Option<&'static str> {
    static NAME: OnceLock<Regex> = OnceLock::new();
    static VALUE: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let name_re = NAME.get_or_init(|| {
        Regex::new(r"(?i)(PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|CREDENTIAL|PRIVATE|(^|_)KEY($|_)|API_?KEY|AUTH)")
            .expect("valid")
    });
    if name_re.is_match(name) && !value.is_empty() {
        return Some("name looks secret");
    }
    let values = VALUE.get_or_init(|| {
        [
            (r"AKIA[0-9A-Z]{16}", "AWS access key id"),
            (r"-----BEGIN [A-Z ]*PRIVATE KEY-----", "private key"),
            (r"^eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.", "JSON web token"),
            (r"^(ghp_|gho_|github_pat_)[A-Za-z0-9_]{20,}", "GitHub token"),
            (r"^xox[abprs]-[A-Za-z0-9-]{10,}", "Slack token"),
            (r"^sk-[A-Za-z0-9_-]{20,}", "API secret key"),
            (
                r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@",
                "password in a URL",
            ),
        ]
        .into_iter()
        .map(|(p, why)| (Regex::new(p).expect("valid"), why))
        .collect()
    });
    values
        .iter()
        .find(|(re, _)| re.is_match(value))
        .map(|(_, why)| *why)
}

/// A keyed hash of a secret value: equal values give equal hashes within one agent run,
/// nothing about the value can be learnt from it.
fn redacted(value: &str) -> String {
    static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let mut h = KEY.get_or_init(Default::default).build_hasher();
    h.write(value.as_bytes());
    format!("<redacted:{:016x}>", h.finish())
}

/// One snapshot as OTLP logs: a record per variable, secrets redacted.
pub fn to_otlp(
    vars: &BTreeMap<String, String>,
    service: &str,
    host: &str,
    pid: u32,
    time_ns: u64,
) -> ExportLogsServiceRequest {
    let records = vars
        .iter()
        .map(|(name, value)| {
            let reason = secret_reason(name, value);
            let shown = match reason {
                Some(_) => redacted(value),
                None => value.clone(),
            };
            let mut attributes = vec![
                text("env.name", name),
                text("env.value", &shown),
                text(
                    "env.secret",
                    if reason.is_some() { "true" } else { "false" },
                ),
            ];
            if let Some(why) = reason {
                attributes.push(text("env.secret_reason", why));
            }
            LogRecord {
                time_unix_nano: time_ns,
                observed_time_unix_nano: time_ns,
                severity_number: 9,
                severity_text: "INFO".into(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(format!("env {name}"))),
                }),
                attributes,
                ..Default::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", service),
                    text("host.name", host),
                    text("process.pid", &pid.to_string()),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "faultline.agent.env".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| format!("pid-{pid}"))
}

/// Snapshots every `interval` (`count` times, or until stopped) and writes.
pub async fn run(
    dest: &mut Destination,
    pid: Option<u32>,
    prefix: Option<&str>,
    interval: Duration,
    count: Option<u64>,
) -> Result<()> {
    let target = pid.unwrap_or_else(std::process::id);
    let service = process_name(target);
    let host = super::gpu::hostname();
    let mut tick = tokio::time::interval(interval);
    let mut n = 0;
    while count.is_none_or(|c| n < c) {
        tick.tick().await;
        let vars = snapshot(pid, prefix)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let req = to_otlp(&vars, &service, &host, target, now);
        dest.write(&host, &req).await?;
        n += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn secret_names_and_credential_values_are_recognised() {
        for (name, value) in [
            ("APP_DB_PASSWORD", "x"),
            ("APP_API_TOKEN", "x"),
            ("APP_SIGNING_KEY", "x"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("APP_NOTE", "AKIAIOSFODNN7EXAMPLE"),
            ("APP_DSN", "postgres://app:hunter2@db:5432/app"),
            ("APP_HEADER", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"),
        ] {
            assert!(secret_reason(name, value).is_some(), "{name}={value}");
        }
        for (name, value) in [
            ("APP_BATCH_SIZE", "32"),
            ("APP_MONKEY_MODE", "on"),
            ("APP_URL", "https://example.internal/api"),
            ("APP_DB_PASSWORD", ""),
        ] {
            assert!(secret_reason(name, value).is_none(), "{name}={value}");
        }
    }

    #[test]
    fn a_snapshot_never_carries_a_secret_value() {
        let vars = BTreeMap::from([
            (
                "APP_DB_PASSWORD".to_string(),
                "planted-secret-7f3a".to_string(),
            ),
            ("APP_BATCH_SIZE".to_string(), "32".to_string()),
        ]);
        let req = to_otlp(&vars, "trainer", "node-1", 42, 1);
        let json = serde_json::to_string(&req).unwrap();
        let proto = req.encode_to_vec();
        assert!(!json.contains("planted-secret-7f3a"));
        let needle = b"planted-secret-7f3a";
        assert!(!proto.windows(needle.len()).any(|w| w == needle));
        assert!(json.contains("<redacted:"));
        assert!(json.contains("\"32\""));
        // The same value hashes the same within a run, so a change still shows.
        assert_eq!(redacted("a"), redacted("a"));
        assert_ne!(redacted("a"), redacted("b"));
    }
}
