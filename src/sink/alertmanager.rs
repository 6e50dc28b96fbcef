//! Forwarding alerts to a Prometheus Alertmanager (`POST /api/v2/alerts`), best effort.
//!
//! Alertmanager is a notification router, not a log: faultline's record of an alert is the
//! alerts topic (or file). Forwarding retries a few times and then logs and counts the
//! failure; it never holds back the pipeline or its commits. Alertmanager ignores the extra
//! fields of our alert records; label names it would refuse are rewritten to `_`.

use std::time::Duration;

use tokio::task::JoinSet;
use tracing::warn;

use crate::output::{Output, OutputKind};

pub struct AlertmanagerSink {
    agent: ureq::Agent,
    url: String,
    pending: JoinSet<bool>,
    /// Alerts Alertmanager did not accept after the retries.
    pub failed: u64,
}

/// Alertmanager's label-name rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// One alert record as Alertmanager's postable alert (extra fields kept; it ignores them).
fn postable(json: &str) -> Option<serde_json::Value> {
    let mut v: serde_json::Value = serde_json::from_str(json).ok()?;
    if let Some(labels) = v.get_mut("labels").and_then(|l| l.as_object_mut()) {
        let fixed: serde_json::Map<String, serde_json::Value> = std::mem::take(labels)
            .into_iter()
            .map(|(k, v)| (label_name(&k), v))
            .collect();
        *labels = fixed;
    }
    Some(v)
}

impl AlertmanagerSink {
    /// `url` is Alertmanager's base URL, e.g. `http://127.0.0.1:9093`.
    pub fn new(url: &str, timeout: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .build()
            .into();
        AlertmanagerSink {
            agent,
            url: format!("{}/api/v2/alerts", url.trim_end_matches('/')),
            pending: JoinSet::new(),
            failed: 0,
        }
    }

    /// Forwards the alerts among `outputs` (one request), in the background.
    pub fn forward(&mut self, outputs: &[Output]) {
        let alerts: Vec<serde_json::Value> = outputs
            .iter()
            .filter(|o| o.kind == OutputKind::Alerts)
            .filter_map(|o| postable(&o.json))
            .collect();
        if alerts.is_empty() {
            return;
        }
        let body = serde_json::Value::Array(alerts).to_string();
        let (agent, url) = (self.agent.clone(), self.url.clone());
        self.pending.spawn_blocking(move || {
            let mut delay = Duration::from_millis(200);
            for attempt in 1..=3 {
                match agent
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .send(body.as_str())
                {
                    Ok(_) => return true,
                    Err(error) => {
                        warn!(%error, attempt, url, "Alertmanager did not accept alerts.");
                        std::thread::sleep(delay);
                        delay *= 4;
                    }
                }
            }
            false
        });
        self.reap();
    }

    /// Collects finished forwards.
    fn reap(&mut self) {
        while let Some(done) = self.pending.try_join_next() {
            if !matches!(done, Ok(true)) {
                self.failed += 1;
            }
        }
    }

    /// Waits for every forward in flight.
    pub async fn drain(&mut self) {
        while let Some(done) = self.pending.join_next().await {
            if !matches!(done, Ok(true)) {
                self.failed += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_alertmanager_refuses_are_rewritten() {
        assert_eq!(label_name("http.route"), "http_route");
        assert_eq!(label_name("9lives"), "_9lives");
        assert_eq!(label_name("service"), "service");
        let v = postable(r#"{"labels":{"http.route":"/x","alertname":"A"},"id":"1"}"#).unwrap();
        assert_eq!(v["labels"]["http_route"], "/x");
        assert_eq!(v["id"], "1");
    }
}
