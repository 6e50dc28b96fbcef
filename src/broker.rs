//! The Kafka client's plumbing shared by sources and sinks: connecting to the brokers, and
//! librdkafka contexts that say one clear thing instead of its retry chatter.
//!
//! librdkafka retries everything forever and reports each failure twice (a log line and an
//! error event), several times a second. Operators need one line that says what is wrong:
//! [`wait_for_brokers`] connects before anything else starts — wrong credentials or an
//! untrusted certificate end the run with one error naming the broker, an unreachable broker
//! gets one line, backoff and a periodic reminder — and [`Chatter`] keeps librdkafka's own
//! lines to one per distinct message per minute afterwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use tracing::{debug, info, warn};

use crate::config::KafkaConfig;
use crate::error::{Error, Result};

/// How long one distinct librdkafka line stays quiet after it was logged.
const REPEAT: Duration = Duration::from_secs(60);
/// How often a broker that does not answer is mentioned again.
const REMINDER: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Rate-limited reporting of librdkafka's logs and errors, and the errors seen since the
/// last look (for [`wait_for_brokers`]).
#[derive(Default)]
pub struct Chatter {
    last_logged: Mutex<HashMap<String, Instant>>,
    recent: Mutex<Vec<(Option<RDKafkaErrorCode>, String)>>,
    /// Record errors without logging them (the caller reports them itself).
    silent: bool,
    /// The last error event and when it came (the driver's health).
    last: Mutex<Option<(Instant, String)>>,
    /// Whether the last statistics report had a broker connection up.
    up: Mutex<Option<bool>>,
    /// Consumer lag (messages between the application's position and the high watermark)
    /// per assigned partition, at the last statistics report.
    lag: Mutex<HashMap<(String, i32), i64>>,
    /// Partitions with fetched messages the application has not taken yet, at the last
    /// statistics report.
    waiting: Mutex<std::collections::HashSet<(String, i32)>>,
}

impl Chatter {
    /// True when `line` was not logged within [`REPEAT`].
    pub fn fresh(&self, line: &str) -> bool {
        let mut seen = self.last_logged.lock().expect("chatter lock");
        let now = Instant::now();
        if seen
            .get(line)
            .is_some_and(|t| now.duration_since(*t) < REPEAT)
        {
            return false;
        }
        if seen.len() > 1000 {
            seen.clear();
        }
        seen.insert(line.to_string(), now);
        true
    }

    /// A librdkafka log line: at debug level (the same failures arrive as error events).
    pub fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        debug!(facility, ?level, "librdkafka: {message}");
    }

    /// A librdkafka error event: remembered, and logged once per distinct text per minute.
    pub fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        self.recent
            .lock()
            .expect("chatter lock")
            .push((code, reason.to_string()));
        // Strip librdkafka's "(after N ms in state ..., N identical error(s) suppressed)".
        let line = reason.split(" (after ").next().unwrap_or(reason);
        *self.last.lock().expect("chatter lock") = Some((Instant::now(), line.to_string()));
        if !self.silent && self.fresh(line) {
            warn!("Kafka: {line}");
        }
    }

    /// A statistics report (`statistics.interval.ms`): is any broker connection up?
    pub fn stats(&self, statistics: &rdkafka::Statistics) {
        let up = statistics
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP");
        *self.up.lock().expect("chatter lock") = Some(up);
        let lags = statistics
            .topics
            .iter()
            .flat_map(|(name, t)| t.partitions.values().map(move |p| (name, p)))
            .filter(|(_, p)| p.partition >= 0 && p.hi_offset >= 0)
            .map(|(name, p)| {
                // Behind the end from where the application is (librdkafka's own
                // `consumer_lag` counts from the last commit, unknown before the first).
                let at = [p.app_offset, p.committed_offset, p.lo_offset]
                    .into_iter()
                    .find(|o| *o >= 0)
                    .unwrap_or(0);
                ((name.clone(), p.partition), (p.hi_offset - at).max(0))
            });
        *self.lag.lock().expect("chatter lock") = lags.collect();
        // Fetched and not yet consumed: the lag alone cannot say it (a transactional topic's
        // commit markers keep the high watermark ahead of the last message for ever).
        *self.waiting.lock().expect("chatter lock") = statistics
            .topics
            .iter()
            .flat_map(|(name, t)| t.partitions.values().map(move |p| (name, p)))
            .filter(|(_, p)| p.partition >= 0 && p.fetchq_cnt > 0)
            .map(|(name, p)| (name.clone(), p.partition))
            .collect();
    }

    /// Consumer lag summed over the partitions at the last statistics report (`None`:
    /// nothing assigned or known yet).
    pub fn consumer_lag(&self) -> Option<i64> {
        let lag = self.lag.lock().expect("chatter lock");
        (!lag.is_empty()).then(|| lag.values().sum())
    }

    /// Whether a partition had fetched messages waiting for the application at the last
    /// statistics report.
    /// Consumer lag per partition at the last statistics report.
    pub fn partition_lags(&self) -> Vec<(String, i32, i64)> {
        let lag = self.lag.lock().expect("chatter lock");
        let mut out: Vec<_> = lag.iter().map(|((t, p), l)| (t.clone(), *p, *l)).collect();
        out.sort();
        out
    }

    pub fn lagging(&self, topic: &str, partition: i32) -> bool {
        self.waiting
            .lock()
            .expect("chatter lock")
            .contains(&(topic.to_string(), partition))
    }

    /// Whether a broker connection was up at the last statistics report (`None` before the
    /// first).
    pub fn brokers_up(&self) -> Option<bool> {
        *self.up.lock().expect("chatter lock")
    }

    /// The last error event: when, and what.
    pub fn last_error(&self) -> Option<(Instant, String)> {
        self.last.lock().expect("chatter lock").clone()
    }

    /// The errors reported since the last call.
    fn take_recent(&self) -> Vec<(Option<RDKafkaErrorCode>, String)> {
        std::mem::take(&mut *self.recent.lock().expect("chatter lock"))
    }
}

/// A client context with nothing but [`Chatter`].
#[derive(Default, Clone)]
pub struct QuietContext {
    pub chatter: Arc<Chatter>,
}

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.chatter.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.chatter.error(error, reason);
    }
}

impl ConsumerContext for QuietContext {}

/// Failures that retrying cannot fix: the credentials or the certificates are wrong.
fn is_fatal(code: Option<RDKafkaErrorCode>, reason: &str) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SSL
                | RDKafkaErrorCode::SaslAuthenticationFailed
        )
    ) || reason.contains("SSL handshake failed")
        || reason.contains("certificate verify failed")
}

/// Waits until the brokers answer a metadata request. Wrong credentials or an untrusted
/// certificate fail at once with one error naming the brokers; otherwise one warning, retries
/// with backoff (1 s doubling to 30 s) and a reminder every 30 s, until `deadline` if set.
pub async fn wait_for_brokers(
    brokers: &str,
    config: &KafkaConfig,
    deadline: Option<Duration>,
) -> Result<()> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", "faultline-connect-check")
        .set("socket.connection.setup.timeout.ms", "5000");
    for (k, v) in config.consumer_settings()? {
        c.set(k, v);
    }
    let context = QuietContext {
        chatter: Arc::new(Chatter {
            silent: true,
            ..Chatter::default()
        }),
    };
    let consumer: Arc<BaseConsumer<QuietContext>> = Arc::new(
        c.create_with_context(context.clone())
            .map_err(|e| Error::kafka("creating consumer", e))?,
    );
    let started = Instant::now();
    let (mut backoff, mut reminded, mut announced) = (Duration::from_secs(1), started, false);
    loop {
        let probe = consumer.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let answer = probe.fetch_metadata(None, Duration::from_secs(5));
            // Error events reach the context only when the client is polled; briefly, since
            // a failing connection keeps producing them.
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until && probe.poll(Duration::from_millis(50)).is_some() {}
            answer
        })
        .await
        .map_err(|e| Error::Internal(format!("metadata probe: {e}")))?;
        let errors = context.chatter.take_recent();
        let failure = match answer {
            Ok(_) => {
                if announced {
                    info!(
                        brokers,
                        waited_s = started.elapsed().as_secs(),
                        "Connected to Kafka."
                    );
                }
                return Ok(());
            }
            Err(e) => e,
        };
        if let Some((_, reason)) = errors.iter().find(|(code, r)| is_fatal(*code, r)) {
            let reason = reason.split(" (after ").next().unwrap_or(reason);
            return Err(Error::KafkaSetup(format!(
                "cannot connect to {brokers}: {reason} (check the credentials — \
                 kafka.client_env, kafka.client_files — and ssl.ca.location)"
            )));
        }
        let reason = errors
            .last()
            .map(|(_, r)| r.split(" (after ").next().unwrap_or(r).to_string())
            .unwrap_or_else(|| failure.to_string());
        if !announced {
            warn!(brokers, %reason, "No Kafka broker answers; retrying with backoff. Not ready until connected.");
            announced = true;
        } else if reminded.elapsed() >= REMINDER {
            reminded = Instant::now();
            warn!(brokers, waited_s = started.elapsed().as_secs(), %reason, "Still no Kafka broker.");
        }
        if let Some(limit) = deadline.filter(|d| started.elapsed() + backoff > *d) {
            return Err(Error::KafkaSetup(format!(
                "no Kafka broker answered at {brokers} within {}: {reason}",
                humantime::format_duration(limit)
            )));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
