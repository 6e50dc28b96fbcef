//! The Kafka driver's own metrics (`--metrics-addr`): served from a thread of their own,
//! updated once a second from what the driver and the pipeline already count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;

use super::{wall_clock, Driver};
use crate::error::Result;
use crate::pipeline::health::serve_http;
use crate::pipeline::Metrics;

/// How often the metrics are brought up to date.
const METRICS_EVERY: Duration = Duration::from_secs(1);

/// Registers the metrics and serves `GET /metrics` on `addr`.
pub(super) fn serve_metrics(addr: &str) -> Result<Arc<Metrics>> {
    let metrics = Arc::new(Metrics::new());
    let served = metrics.clone();
    serve_http(addr, "metrics", move |path| match path {
        "/metrics" => (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            served.encode(),
        ),
        _ => (404, "text/plain", "GET /metrics\n".into()),
    })?;
    info!(addr, "Metrics endpoint: GET /metrics (Prometheus).");
    Ok(metrics)
}

impl Driver {
    /// Hands what was counted since the last update to the metrics, once a second.
    pub(super) fn record_metrics(&mut self) {
        let Some(m) = &self.metrics else {
            return;
        };
        if self.last_metrics.elapsed() < METRICS_EVERY {
            return;
        }
        self.last_metrics = Instant::now();
        m.received(&mut self.received);
        m.sent(self.emitter.take_sent());
        m.suggested(self.emitter.take_confidences());
        m.detector_series(self.pipeline.detector_series());
        m.pipeline(
            &self.pipeline.stats(),
            self.pipeline.alert_counts(),
            self.pipeline.buffered_bytes(),
        );
        m.lag(&self.source.partition_lags());
        let now = wall_clock();
        let lags: Vec<(i32, Duration)> = self
            .pipeline
            .shard_watermarks()
            .into_iter()
            .filter(|(_, wm)| wm.0 > 0)
            .map(|(shard, wm)| {
                let behind = now.0.saturating_sub(wm.0).max(0);
                (shard, Duration::from_nanos(behind as u64))
            })
            .collect();
        m.watermark_lag(&lags);
        if let Some(cp) = &self.checkpoints {
            m.checkpoint(&cp.sizes, cp.age());
        }
    }
}
