//! Exactly-once outputs against at-least-once, on a real broker, in the same run:
//! throughput (a backlog of flat spans consumed until the group's committed offsets reach
//! its end) and output latency (a message that closes a window produced, until the alert it
//! causes is readable by a `read_committed` consumer). Both modes checkpoint every second,
//! so the only difference is the transaction.
//!
//! Needs a broker: `scripts/kafka start` and `FAULTLINE_TEST_BROKERS=127.0.0.1:9092`; the
//! binary is `FAULTLINE_BIN`, else target/release/faultline, else target/debug/faultline.
//! `cargo bench --bench exactly_once` (`EOS_BENCH_MESSAGES`, default 40000).

#[path = "support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use support::{committed_offset, faultline_binary, now_ns, quantile};

const S: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * S;
/// Spans per event-time minute in the backlog.
const PER_MINUTE: usize = 100;
const LATENCY_SAMPLES: usize = 20;

struct Run {
    messages_per_s: f64,
    latencies_ms: Vec<f64>,
}

fn main() {
    let Ok(brokers) = std::env::var("FAULTLINE_TEST_BROKERS") else {
        eprintln!("exactly_once bench: needs a broker (scripts/kafka start; FAULTLINE_TEST_BROKERS=127.0.0.1:9092); skipped");
        return;
    };
    let bin = faultline_binary();
    let n: usize = std::env::var("EOS_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!(
        "binary {}, {n} messages, checkpoints every 1 s",
        bin.display()
    );
    let mut results: Vec<(bool, Run)> = Vec::new();
    // Interleaved, twice each, so drift of the machine hits both modes alike.
    for (round, exactly_once) in [false, true, false, true].into_iter().enumerate() {
        let run = runtime.block_on(one_run(&brokers, &bin, n, exactly_once, round));
        println!(
            "  {:<14} {:>8.0} messages/s, output latency p50 {:>6.0} ms p99 {:>6.0} ms",
            mode_name(exactly_once),
            run.messages_per_s,
            quantile(&run.latencies_ms, 0.5),
            quantile(&run.latencies_ms, 0.99)
        );
        results.push((exactly_once, run));
    }
    let summary = |eos: bool| {
        let runs: Vec<&Run> = results
            .iter()
            .filter(|(m, _)| *m == eos)
            .map(|(_, r)| r)
            .collect();
        let tput = runs.iter().map(|r| r.messages_per_s).sum::<f64>() / runs.len() as f64;
        let lat: Vec<f64> = runs.iter().flat_map(|r| r.latencies_ms.clone()).collect();
        (tput, quantile(&lat, 0.5), quantile(&lat, 0.99))
    };
    let (alo, eos) = (summary(false), summary(true));
    println!(
        "at-least-once: {:.0} messages/s, latency p50 {:.0} ms, p99 {:.0} ms",
        alo.0, alo.1, alo.2
    );
    println!(
        "exactly-once:  {:.0} messages/s, latency p50 {:.0} ms, p99 {:.0} ms",
        eos.0, eos.1, eos.2
    );
    println!(
        "exactly-once / at-least-once: throughput {:.2}x, latency p50 {:.1}x",
        eos.0 / alo.0,
        eos.1 / alo.1.max(1.0)
    );
}

fn mode_name(exactly_once: bool) -> &'static str {
    if exactly_once {
        "exactly-once"
    } else {
        "at-least-once"
    }
}

async fn one_run(brokers: &str, bin: &Path, n: usize, exactly_once: bool, round: usize) -> Run {
    let prefix = format!("eosbench-{}-{round}", std::process::id());
    let (spans, alerts) = (format!("{prefix}.spans"), format!("{prefix}.alerts"));
    create_topics(brokers, &[&spans, &alerts]).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    // Event time hours ahead of the wall clock: only records close windows.
    let t0 = (now_ns() / MINUTE + 240) * MINUTE;
    let minutes = n.div_ceil(PER_MINUTE) as i64;
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let minute = (i / PER_MINUTE) as i64;
        let at = t0 + minute * MINUTE + (i % PER_MINUTE) as i64 * (MINUTE / PER_MINUTE as i64);
        let ms = if minute % 2 == 0 { 900 } else { 10 };
        let payload = span(i as u64, at, ms);
        let sent = producer
            .send_result(FutureRecord::<(), _>::to(&spans).payload(&payload))
            .map_err(|(e, _)| e);
        pending.push(sent);
    }
    for p in pending {
        p.unwrap().await.unwrap().unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_pipeline(dir.path(), &prefix, exactly_once);
    let group = format!("{prefix}-group");
    let mut child = start(bin, brokers, &group, &pipeline, dir.path());
    let started = Instant::now();
    // Caught up when the committed offset is within the open windows of the end.
    let target = n as i64 - 3 * PER_MINUTE as i64;
    let deadline = started + Duration::from_secs(900);
    while committed_offset(brokers, &group, &spans, 0) < target {
        assert!(Instant::now() < deadline, "no catch-up in 900 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let messages_per_s = n as f64 / started.elapsed().as_secs_f64();

    // Latency: each message opens a new minute, which closes the one before (slow and fast
    // minutes alternate, so every close changes the alert's state and notifies).
    let reader = committed_reader(brokers, &alerts);
    while reader.poll(Duration::from_millis(500)).is_some() {}
    let mut latencies_ms = Vec::new();
    for i in 0..LATENCY_SAMPLES as i64 {
        let minute = minutes + 2 + i;
        let ms = if minute % 2 == 0 { 900 } else { 10 };
        let payload = span(1_000_000 + i as u64, t0 + minute * MINUTE + 10 * S, ms);
        let sent = Instant::now();
        producer
            .send(
                FutureRecord::<(), _>::to(&spans).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        let wait_until = sent + Duration::from_secs(20);
        while Instant::now() < wait_until {
            if let Some(m) = reader.poll(Duration::from_millis(5)) {
                m.unwrap();
                latencies_ms.push(sent.elapsed().as_secs_f64() * 1e3);
                break;
            }
        }
        // Drain anything else this close produced before the next sample.
        while reader.poll(Duration::from_millis(300)).is_some() {}
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    Run {
        messages_per_s,
        latencies_ms,
    }
}

fn span(n: u64, start_ns: i64, ms: i64) -> Vec<u8> {
    serde_json::json!({
        "signal": "span", "trace_id": format!("{n:032x}"), "span_id": format!("{n:016x}"),
        "name": "POST /v1/chat/completions", "kind": "server", "service": "svc",
        "start_time_unix_nano": start_ns, "end_time_unix_nano": start_ns + ms * 1_000_000,
        "status": "ok"
    })
    .to_string()
    .into_bytes()
}

fn write_pipeline(dir: &Path, prefix: &str, exactly_once: bool) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let p = dir.join("pipeline");
    std::fs::create_dir_all(&p).unwrap();
    let toml = format!(
        r#"name = "bench"
rules = [{rules:?}]
[window]
size = "1m"
max_out_of_orderness = "5s"
idle_timeout = "1s"
[traces]
gap = "1s"
[[kafka.inputs]]
topic = "{prefix}.spans"
signal = "spans"
[kafka.outputs]
alerts = "{prefix}.alerts"
suggestions = "{prefix}.suggestions"
deadletter = "{prefix}.deadletter"
late = "{prefix}.late"
review = "{prefix}.review"
incidents = "{prefix}.incidents"
feedback = "{prefix}.feedback"
watermarks = "{prefix}.watermarks"
[kafka.checkpoints]
topic = "{prefix}.state"
interval = "1s"
exactly_once = {exactly_once}
"#,
        rules = root.join("tests/rules/latency").display().to_string()
    );
    std::fs::write(p.join("pipeline.toml"), toml).unwrap();
    p
}

fn start(bin: &Path, brokers: &str, group: &str, pipeline: &Path, dir: &Path) -> Child {
    Command::new(bin)
        .args(["run", "--brokers", brokers, "--group", group, "--pipeline"])
        .arg(pipeline)
        .args(["--instance-id", &format!("{group}-0")])
        .env("FAULTLINE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("run.log")).unwrap())
        .spawn()
        .unwrap()
}

async fn create_topics(brokers: &str, names: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .unwrap();
}

fn committed_reader(brokers: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "5")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    c
}
