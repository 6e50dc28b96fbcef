//! Helpers for tests on the real broker: topics, producing, reading, running instances.
//!
//! `scripts/test` starts the broker (`scripts/kafka start`) and sets FAULTLINE_TEST_BROKERS.
//! Every test uses its own topics and group, so tests run in parallel.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::common::*;

/// `[window]` settings for tests: `size`, 5 s out of orderness, 1 s idle timeout.
pub fn window(size: &str) -> String {
    format!("[window]\nsize = \"{size}\"\nmax_out_of_orderness = \"5s\"\nidle_timeout = \"1s\"\n")
}

/// The shipped pipeline's settings without its `[kafka]` section (a test adds its own
/// topics) and with a 1 s idle timeout.
pub fn shipped_settings_short_idle() -> String {
    let toml = std::fs::read_to_string(repo().join("pipelines/inference/pipeline.toml")).unwrap();
    let (head, rest) = toml.split_once("[kafka]").unwrap();
    let tail = &rest[rest.find("[kb]").unwrap()..];
    format!("{head}{tail}").replace("idle_timeout = \"5s\"", "idle_timeout = \"1s\"")
}

pub fn brokers() -> String {
    std::env::var("FAULTLINE_TEST_BROKERS").expect(
        "FAULTLINE_TEST_BROKERS is not set: run the tests with scripts/test, which starts a \
         Kafka broker (scripts/kafka start) and sets it",
    )
}

/// Topics of one test.
pub struct Topics {
    pub logs: String,
    pub metrics: String,
    pub spans: String,
    pub alerts: String,
    pub deadletter: String,
    pub late: String,
    pub suggestions: String,
    pub review: String,
    pub incidents: String,
    pub feedback: String,
    /// The watermark journal (created by the first write).
    pub watermarks: String,
    /// The checkpoints' state topic (created compacted by the first instance).
    pub state: String,
}

impl Topics {
    pub fn new() -> Self {
        let p = unique("t");
        Topics {
            logs: format!("{p}.logs"),
            metrics: format!("{p}.metrics"),
            spans: format!("{p}.spans"),
            alerts: format!("{p}.alerts"),
            deadletter: format!("{p}.deadletter"),
            late: format!("{p}.late"),
            suggestions: format!("{p}.suggestions"),
            review: format!("{p}.review"),
            incidents: format!("{p}.incidents"),
            feedback: format!("{p}.feedback"),
            watermarks: format!("{p}.watermarks"),
            state: format!("{p}.state"),
        }
    }

    pub fn all(&self) -> [&str; 10] {
        [
            &self.logs,
            &self.metrics,
            &self.spans,
            &self.alerts,
            &self.deadletter,
            &self.late,
            &self.suggestions,
            &self.review,
            &self.incidents,
            &self.feedback,
        ]
    }

    /// `settings` (TOML for `[window]`, `[traces]`, ...) followed by this test's topics.
    pub fn pipeline_toml(&self, settings: &str) -> String {
        self.pipeline_toml_checkpointed(settings, "10s")
    }

    /// [`Topics::pipeline_toml`] with state checkpoints every `interval` (`"0s"`: none).
    pub fn pipeline_toml_checkpointed(&self, settings: &str, interval: &str) -> String {
        format!(
            r#"
{settings}

[[kafka.inputs]]
topic = "{}"
signal = "logs"

[[kafka.inputs]]
topic = "{}"
signal = "metrics"

[[kafka.inputs]]
topic = "{}"
signal = "spans"

[kafka.outputs]
alerts = "{}"
suggestions = "{}"
deadletter = "{}"
late = "{}"
review = "{}"
incidents = "{}"
feedback = "{}"
watermarks = "{}"

[kafka.checkpoints]
topic = "{}"
interval = "{interval}"
"#,
            self.logs,
            self.metrics,
            self.spans,
            self.alerts,
            self.suggestions,
            self.deadletter,
            self.late,
            self.review,
            self.incidents,
            self.feedback,
            self.watermarks,
            self.state
        )
    }

    pub async fn create(&self) {
        self.create_with(1, 1).await
    }

    /// Creates the input topics with `inputs` partitions and the outputs with `outputs`.
    pub async fn create_with(&self, inputs: i32, outputs: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .create()
            .unwrap();
        let new: Vec<NewTopic> = self
            .all()
            .iter()
            .enumerate()
            .map(|(i, t)| {
                NewTopic::new(
                    t,
                    if i < 3 { inputs } else { outputs },
                    TopicReplication::Fixed(1),
                )
            })
            .collect();
        for r in admin
            .create_topics(&new, &AdminOptions::new())
            .await
            .unwrap()
        {
            r.unwrap();
        }
    }
}

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.max.bytes", "4000000")
        .create()
        .unwrap()
}

/// Produces a JSON value and returns its offset.
pub async fn send(p: &FutureProducer, topic: &str, v: &serde_json::Value) -> i64 {
    produce(p, topic, v.to_string().as_bytes()).await
}

/// Produces one message and returns its offset.
pub async fn produce(p: &FutureProducer, topic: &str, payload: &[u8]) -> i64 {
    produce_to(p, topic, None, payload).await
}

/// Produces one message to a given partition (or the default partitioner's) and returns its
/// offset.
pub async fn produce_to(
    p: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    payload: &[u8],
) -> i64 {
    let mut record = FutureRecord::<(), [u8]>::to(topic).payload(payload);
    if let Some(n) = partition {
        record = record.partition(n);
    }
    let delivered = p
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    delivered.offset
}

/// A consumer of a one-partition topic from its beginning, outside any group's offsets.
fn reader(topic: &str) -> BaseConsumer {
    reader_on(&brokers(), topic)
}

/// [`reader`] on other brokers (a test's own broker).
pub fn reader_on(brokers: &str, topic: &str) -> BaseConsumer {
    reader_isolated(brokers, topic, "read_committed")
}

/// A reader with `isolation.level` `isolation` (`read_uncommitted` also sees what open and
/// aborted transactions wrote).
fn reader_isolated(brokers: &str, topic: &str, isolation: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    c
}

/// Reads a topic from the beginning until `n` messages arrived or `timeout` passed.
pub fn read_topic(topic: &str, n: usize, timeout: Duration) -> Vec<(i64, serde_json::Value)> {
    let c = reader(topic);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let v = serde_json::from_slice(m.payload().unwrap()).unwrap();
            out.push((m.offset(), v));
        }
    }
    out
}

/// A running `faultline run --brokers` process, stopped with SIGTERM on drop.
pub struct Instance {
    pub child: Child,
    pub log: std::path::PathBuf,
}

impl Instance {
    pub fn start(pipeline: &Path, group: &str, log: std::path::PathBuf) -> Self {
        Self::start_with(pipeline, group, log, &[])
    }

    /// [`Instance::start`] with more arguments.
    pub fn start_with(
        pipeline: &Path,
        group: &str,
        log: std::path::PathBuf,
        extra: &[&str],
    ) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args([
                "run",
                "--brokers",
                &brokers(),
                "--group",
                group,
                "--pipeline",
            ])
            .arg(pipeline)
            .args(extra)
            .env(
                "FAULTLINE_LOG",
                std::env::var("FAULTLINE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Instance { child, log }
    }

    /// SIGTERM, then the exit status within 30 s.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM")
    }

    /// Sends `signal` (a `kill` option such as `-HUP`) without waiting.
    pub fn send_signal(&self, signal: &str) {
        Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// Sends `signal` (a `kill` option such as `-INT`) and waits up to 30 s for the exit.
    pub fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        self.send_signal(signal);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A long-lived reader of a one-partition topic, for polling without reconnecting.
pub struct TopicReader {
    consumer: BaseConsumer,
    pub seen: Vec<serde_json::Value>,
}

impl TopicReader {
    pub fn new(topic: &str) -> Self {
        TopicReader {
            consumer: reader(topic),
            seen: Vec::new(),
        }
    }

    /// A reader that also sees uncommitted and aborted transactional writes.
    pub fn uncommitted(topic: &str) -> Self {
        TopicReader {
            consumer: reader_isolated(&brokers(), topic, "read_uncommitted"),
            seen: Vec::new(),
        }
    }

    /// Reads what is there now (waiting at most `wait` for the first message).
    pub fn poll(&mut self, wait: Duration) -> usize {
        let mut timeout = wait;
        while let Some(m) = self.consumer.poll(timeout) {
            let m = m.unwrap();
            self.seen
                .push(serde_json::from_slice(m.payload().unwrap()).unwrap());
            timeout = Duration::ZERO;
        }
        self.seen.len()
    }
}

/// Every message of a one-partition topic as lossy text (keys and payloads).
pub fn read_raw(topic: &str, wait: Duration) -> Vec<String> {
    let c = reader(topic);
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    while Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            out.push(format!(
                "{} {}",
                String::from_utf8_lossy(m.key().unwrap_or_default()),
                String::from_utf8_lossy(m.payload().unwrap_or_default())
            ));
        }
    }
    out
}
