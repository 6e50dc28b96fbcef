//! The Kafka driver's health, served over HTTP for orchestrators (`--health-addr`):
//! `GET /healthz` answers 200 while the process runs (liveness), `GET /readyz` 200 only while
//! it is connected and consuming, 503 while connecting or degraded (readiness); both with a
//! JSON body.
//!
//! Hand-written on `std::net`: a few fixed GET routes (these two, and `/metrics` of
//! `--metrics-addr`) need no HTTP framework, and the endpoints must keep answering while the
//! pipeline is busy (a thread of their own).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::{info, warn};

use crate::error::{Error, Result};

/// Where the driver is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for the brokers (not ready).
    Connecting,
    /// Connected and consuming (ready).
    Ok,
    /// The brokers reported errors more recently than anything was received (not ready).
    Degraded,
    /// Stopping after a signal.
    Stopping,
}

/// What `/healthz` and `/readyz` report.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub status: Status,
    /// Why it is degraded (the last broker error).
    pub reason: Option<String>,
    /// How many times it became degraded since the start.
    pub degraded_episodes: u64,
    /// Offset commits that failed (retried; after a lost membership the new owner re-reads).
    pub commit_failures: u64,
    /// State checkpoints written (all shards each time).
    pub checkpoints: u64,
    /// Bytes of the latest snapshot per shard held here.
    pub snapshot_bytes: std::collections::BTreeMap<i32, usize>,
    /// Messages behind the end of the assigned input partitions (consumer lag; grows under
    /// overload, and `null` until librdkafka's first statistics report).
    pub consumer_lag: Option<i64>,
    /// Estimated bytes held in open traces and windows (capped by
    /// `limits.max_buffered_bytes`: beyond it the oldest window is evaluated early).
    pub buffered_bytes: usize,
    /// Input messages consumed.
    pub messages: u64,
    /// Alert notifications sent.
    pub alerts: u64,
    pub uptime_s: u64,
}

/// Shared between the driver (which updates it) and the HTTP thread (which reads it).
#[derive(Clone)]
pub struct Health {
    inner: Arc<Mutex<(HealthReport, Instant)>>,
}

impl Default for Health {
    fn default() -> Self {
        let report = HealthReport {
            status: Status::Connecting,
            reason: None,
            degraded_episodes: 0,
            commit_failures: 0,
            checkpoints: 0,
            snapshot_bytes: Default::default(),
            consumer_lag: None,
            buffered_bytes: 0,
            messages: 0,
            alerts: 0,
            uptime_s: 0,
        };
        Health {
            inner: Arc::new(Mutex::new((report, Instant::now()))),
        }
    }
}

impl Health {
    /// Moves to `status`; entering `Degraded` counts an episode and logs it once.
    pub fn set(&self, status: Status, reason: Option<String>) {
        let mut guard = self.inner.lock().expect("health lock");
        let report = &mut guard.0;
        if status == Status::Degraded && report.status != Status::Degraded {
            report.degraded_episodes += 1;
            warn!(
                reason = reason.as_deref().unwrap_or(""),
                "Degraded: the brokers report errors."
            );
        }
        if status == Status::Ok && report.status == Status::Degraded {
            info!("Recovered: consuming again.");
        }
        report.status = status;
        report.reason = reason;
    }

    /// An offset commit failed.
    pub fn commit_failed(&self) {
        self.inner.lock().expect("health lock").0.commit_failures += 1;
    }

    /// A checkpoint was written; `sizes` are the latest snapshot sizes per shard.
    pub fn checkpointed(&self, sizes: &std::collections::BTreeMap<i32, usize>) {
        let mut guard = self.inner.lock().expect("health lock");
        guard.0.checkpoints += 1;
        guard.0.snapshot_bytes = sizes.clone();
    }

    /// Where consumption stands: lag and buffered bytes.
    pub fn load(&self, consumer_lag: Option<i64>, buffered_bytes: usize) {
        let mut guard = self.inner.lock().expect("health lock");
        guard.0.consumer_lag = consumer_lag;
        guard.0.buffered_bytes = buffered_bytes;
    }

    /// The counters the report shows.
    pub fn count(&self, messages: u64, alerts: u64) {
        let mut guard = self.inner.lock().expect("health lock");
        guard.0.messages = messages;
        guard.0.alerts = alerts;
    }

    pub fn report(&self) -> HealthReport {
        let guard = self.inner.lock().expect("health lock");
        let mut report = guard.0.clone();
        report.uptime_s = guard.1.elapsed().as_secs();
        report
    }

    /// Serves `/healthz` and `/readyz` on `addr` from a thread of its own.
    pub fn serve(&self, addr: &str) -> Result<()> {
        let health = self.clone();
        serve_http(addr, "health", move |path| {
            let report = health.report();
            let code = match path {
                "/healthz" => 200,
                "/readyz" if report.status == Status::Ok => 200,
                "/readyz" => 503,
                _ => 404,
            };
            let body = serde_json::to_string(&report).expect("health serializes");
            (code, "application/json", body)
        })?;
        info!(
            addr,
            "Health endpoint: GET /healthz (liveness), /readyz (readiness)."
        );
        Ok(())
    }
}

/// Answers GET requests on `addr` from a thread of its own (so it keeps answering while the
/// pipeline is busy): `route(path)` gives the status code, content type and body.
pub fn serve_http(
    addr: &str,
    name: &str,
    route: impl Fn(&str) -> (u16, &'static str, String) + Send + 'static,
) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| Error::KafkaSetup(format!("{name} endpoint on {addr}: {e}")))?;
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &route);
            }
        })
        .map_err(|e| Error::Internal(format!("{name} thread: {e}")))?;
    Ok(())
}

fn answer(
    mut stream: TcpStream,
    route: &impl Fn(&str) -> (u16, &'static str, String),
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    // The whole request head: closing with unread bytes would reset the connection and
    // lose the answer.
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let request = String::from_utf8_lossy(&head);
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (code, content_type, body) = route(path);
    let text = match code {
        200 => "OK",
        503 => "Service Unavailable",
        _ => "Not Found",
    };
    let response = format!(
        "HTTP/1.1 {code} {text}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)
}
