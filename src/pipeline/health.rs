//! The Kafka driver's health, served over HTTP for orchestrators (`--health-addr`):
//! `GET /healthz` answers 200 while the process runs (liveness), `GET /readyz` 200 only while
//! it is ready: connected, partitions assigned, and not stalled (input waiting in Kafka but
//! nothing consumed for [`STALL_AFTER`]); 503 otherwise, with the reason. Both with a JSON
//! body.
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

/// Input waiting in Kafka and nothing consumed for this long: stalled (not ready). Longer
/// than any pause a healthy instance makes (a checkpoint, a rule reload, a rebalance).
pub const STALL_AFTER: Duration = Duration::from_secs(60);

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

impl Status {
    /// As in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Ok => "ok",
            Status::Degraded => "degraded",
            Status::Stopping => "stopping",
        }
    }
}

/// What `/healthz` and `/readyz` report.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub status: Status,
    /// Why it is degraded (the last broker error).
    pub reason: Option<String>,
    /// What `/readyz` answers: connected (`status` ok), partitions assigned, not stalled.
    pub ready: bool,
    /// Why it is not ready.
    pub not_ready: Option<String>,
    /// Input partitions assigned to this member.
    pub assigned_partitions: usize,
    /// Seconds since the last message was consumed while input waits in Kafka (`null`: none
    /// waits, or it was consumed less than [`STALL_AFTER`] ago).
    pub stalled_s: Option<u64>,
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
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    report: HealthReport,
    started: Instant,
    /// When `report.messages` last grew (or the start).
    progressed: Instant,
}

impl Default for Health {
    fn default() -> Self {
        let report = HealthReport {
            status: Status::Connecting,
            reason: None,
            ready: false,
            not_ready: None,
            assigned_partitions: 0,
            stalled_s: None,
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
        let now = Instant::now();
        Health {
            inner: Arc::new(Mutex::new(Inner {
                report,
                started: now,
                progressed: now,
            })),
        }
    }
}

impl Health {
    /// Moves to `status`; entering `Degraded` counts an episode and logs it once.
    pub fn set(&self, status: Status, reason: Option<String>) {
        let mut guard = self.inner.lock().expect("health lock");
        let report = &mut guard.report;
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
        self.inner
            .lock()
            .expect("health lock")
            .report
            .commit_failures += 1;
    }

    /// A checkpoint was written; `sizes` are the latest snapshot sizes per shard.
    pub fn checkpointed(&self, sizes: &std::collections::BTreeMap<i32, usize>) {
        let mut guard = self.inner.lock().expect("health lock");
        guard.report.checkpoints += 1;
        guard.report.snapshot_bytes = sizes.clone();
    }

    /// Where consumption stands: lag, buffered bytes, partitions assigned.
    pub fn load(&self, consumer_lag: Option<i64>, buffered_bytes: usize, assigned: usize) {
        let mut guard = self.inner.lock().expect("health lock");
        guard.report.consumer_lag = consumer_lag;
        guard.report.buffered_bytes = buffered_bytes;
        guard.report.assigned_partitions = assigned;
    }

    /// The counters the report shows.
    pub fn count(&self, messages: u64, alerts: u64) {
        self.count_at(messages, alerts, Instant::now());
    }

    fn count_at(&self, messages: u64, alerts: u64, now: Instant) {
        let mut guard = self.inner.lock().expect("health lock");
        if messages > guard.report.messages {
            guard.progressed = now;
        }
        guard.report.messages = messages;
        guard.report.alerts = alerts;
    }

    pub fn report(&self) -> HealthReport {
        self.report_at(Instant::now())
    }

    fn report_at(&self, now: Instant) -> HealthReport {
        let guard = self.inner.lock().expect("health lock");
        let mut report = guard.report.clone();
        report.uptime_s = now.duration_since(guard.started).as_secs();
        let idle = now.duration_since(guard.progressed);
        let waiting = report.consumer_lag.is_some_and(|lag| lag > 0);
        report.stalled_s = (waiting && idle >= STALL_AFTER).then_some(idle.as_secs());
        report.not_ready = match (report.status, report.assigned_partitions, report.stalled_s) {
            (Status::Ok, 0, _) => Some("no input partitions assigned".into()),
            (Status::Ok, _, Some(s)) => Some(format!(
                "stalled: {} messages wait in Kafka and none was consumed for {s} s",
                report.consumer_lag.unwrap_or(0)
            )),
            (Status::Ok, _, None) => None,
            (status, _, _) => Some(match &report.reason {
                Some(reason) => format!("{}: {reason}", status.name()),
                None => status.name().to_string(),
            }),
        };
        report.ready = report.not_ready.is_none();
        report
    }

    /// Serves `/healthz` and `/readyz` on `addr` from a thread of its own.
    pub fn serve(&self, addr: &str) -> Result<()> {
        let health = self.clone();
        serve_http(addr, "health", move |path| {
            let report = health.report();
            let code = match path {
                "/healthz" => 200,
                "/readyz" if report.ready => 200,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_a_connection_partitions_and_progress_while_input_waits() {
        let health = Health::default();
        let t0 = Instant::now();
        assert_eq!(
            health.report_at(t0).not_ready.as_deref(),
            Some("connecting")
        );
        health.set(Status::Ok, None);
        assert_eq!(
            health.report_at(t0).not_ready.as_deref(),
            Some("no input partitions assigned")
        );
        health.load(Some(0), 0, 2);
        health.count_at(10, 0, t0);
        assert!(
            health.report_at(t0 + STALL_AFTER * 2).ready,
            "nothing waits: idle, not stalled"
        );
        health.load(Some(500), 0, 2);
        assert!(
            health.report_at(t0 + STALL_AFTER / 2).ready,
            "a pause is not a stall"
        );
        let stalled = health.report_at(t0 + STALL_AFTER + Duration::from_secs(1));
        assert!(!stalled.ready);
        assert_eq!(stalled.stalled_s, Some(61));
        assert!(stalled
            .not_ready
            .unwrap()
            .starts_with("stalled: 500 messages wait"));
        health.count_at(11, 0, t0 + STALL_AFTER * 2);
        assert!(
            health.report_at(t0 + STALL_AFTER * 2).ready,
            "consuming again"
        );
        health.set(Status::Degraded, Some("Broker down".into()));
        assert_eq!(
            health.report_at(t0).not_ready.as_deref(),
            Some("degraded: Broker down")
        );
    }
}
