//! The Kafka driver observing itself: its own metrics (`--metrics-addr`), served from a
//! thread of their own and updated once a second from what the driver and the pipeline
//! already count, and the health report behind `/healthz` and `/readyz`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;

use super::{wall_clock, Driver, KafkaOptions};
use crate::error::Result;
use crate::pipeline::health::serve_http;
use crate::pipeline::health::Status;
use crate::pipeline::otlp::OtlpExport;
use crate::pipeline::Metrics;

/// A broker error this recent, with nothing received since, makes the driver degraded.
const DEGRADED_AFTER_ERROR: Duration = Duration::from_secs(10);

/// How often the metrics are brought up to date.
const METRICS_EVERY: Duration = Duration::from_secs(1);

/// The pipeline's own metrics when they are served (`--metrics-addr`) or exported
/// (`--otlp-endpoint`), and the export running (it sends what is left when dropped).
pub(super) fn own_telemetry(
    options: &KafkaOptions,
    instance: &str,
) -> Result<(Option<Arc<Metrics>>, Option<OtlpExport>)> {
    if options.metrics_addr.is_none() && options.otlp_endpoint.is_none() {
        return Ok((None, None));
    }
    let metrics = Arc::new(Metrics::new());
    if let Some(addr) = &options.metrics_addr {
        serve_metrics(addr, metrics.clone())?;
    }
    let export = options.otlp_endpoint.as_ref().map(|endpoint| {
        OtlpExport::start(metrics.clone(), endpoint, options.otlp_interval, instance)
    });
    Ok((Some(metrics), export))
}

/// Serves `GET /metrics` on `addr`.
fn serve_metrics(addr: &str, metrics: Arc<Metrics>) -> Result<()> {
    let served = metrics;
    serve_http(addr, "metrics", move |path| match path {
        "/metrics" => (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            served.encode(),
        ),
        _ => (404, "text/plain", "GET /metrics\n".into()),
    })?;
    info!(addr, "Metrics endpoint: GET /metrics (Prometheus).");
    Ok(())
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

    /// Degraded while the brokers report errors and nothing arrives; ok again once the
    /// errors stop or messages flow.
    pub(super) fn check_health(&mut self) {
        let stats = self.pipeline.stats();
        self.health.count(stats.messages, stats.alerts);
        self.health.load(
            self.source.consumer_lag(),
            self.pipeline.buffered_bytes(),
            self.source.assigned_partitions(),
        );
        let error = self.source.last_error();
        let failing = match self.source.brokers_up() {
            // librdkafka's own view of its connections, every 2 s.
            Some(up) => (!up)
                .then(|| error.map_or("no broker connection is up".into(), |(_, reason)| reason)),
            None => error
                .filter(|(at, _)| at.elapsed() < DEGRADED_AFTER_ERROR && *at > self.last_input)
                .map(|(_, reason)| reason),
        };
        match failing {
            Some(reason) => self.health.set(Status::Degraded, Some(reason)),
            None => self.health.set(Status::Ok, None),
        }
    }
}
