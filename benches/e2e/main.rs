//! End to end on a real broker (issue 17): an inference fleet's OTLP protobuf, as the
//! Collector's Kafka exporter writes it, through `faultline run` with the default pipeline.
//!
//! 1. A backlog (`E2E_EVENTS` spans, logs and metric points; 10 000 requests per second of
//!    event time, so ~100 000 traces are open at once with the 10 s trace gap) is read by a
//!    raw rdkafka consumer that discards it (the ceiling of Kafka I/O on this machine), then
//!    by faultline until its committed offsets reach the end: input events per CPU second
//!    of each, and faultline ÷ ceiling; faultline's peak RSS.
//! 2. A paced run (`E2E_RATE` events/s for `E2E_PACED_SECONDS`, event time = wall clock):
//!    a gateway starts failing every 20 s; event-to-alert latency is the time from the
//!    fault's event time to the `RequestErrorRateHigh` alert's arrival on the alert topic.
//!
//! `E2E_ONLY_PACED` or `E2E_ONLY_BACKLOG` runs one part.
//!
//! Needs a broker (`scripts/kafka start`, `FAULTLINE_TEST_BROKERS=127.0.0.1:9092`); the
//! binary is `FAULTLINE_BIN`, else target/release/faultline, else target/debug/faultline.
//! `cargo bench --bench e2e`.

mod gen;

#[path = "../support.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use support::{committed_offset, faultline_binary, now_ns, quantile};

const S: i64 = 1_000_000_000;
const PARTITIONS: i32 = 2;
const SIGNALS: [&str; 3] = ["otlp_spans", "otlp_logs", "otlp_metrics"];
/// Requests per second of event time in the backlog.
const REQUESTS_PER_S: i64 = 10_000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let Ok(brokers) = std::env::var("FAULTLINE_TEST_BROKERS") else {
        eprintln!("e2e bench: needs a broker (scripts/kafka start; FAULTLINE_TEST_BROKERS=127.0.0.1:9092); skipped");
        return;
    };
    let bin = faultline_binary();
    let events: u64 = env_or("E2E_EVENTS", 1_000_000);
    let rate: u64 = env_or("E2E_RATE", 10_000);
    let paced_s: u64 = env_or("E2E_PACED_SECONDS", 150);
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!(
        "binary {}; backlog {events} events; paced {rate}/s for {paced_s} s",
        bin.display()
    );

    if std::env::var_os("E2E_ONLY_PACED").is_none() {
        backlog_phase(&rt, &brokers, &bin, events);
    }
    if std::env::var_os("E2E_ONLY_BACKLOG").is_some() {
        return;
    }
    let paced = Topics::new("paced");
    rt.block_on(paced.create(&brokers));
    let latencies = rt.block_on(paced_run(&brokers, &bin, &paced, rate, paced_s));
    let secs: Vec<f64> = latencies.values().map(|(l, _)| *l).collect();
    println!(
        "event-to-alert latency over {} faults: p50 {:.1} s, p99 {:.1} s (max {:.1} s)",
        secs.len(),
        quantile(&secs, 0.5),
        quantile(&secs, 0.99),
        secs.iter().copied().fold(f64::NAN, f64::max)
    );
    let after: Vec<f64> = latencies.values().map(|(_, a)| *a).collect();
    println!(
        "after the fault's window could close (its end + trace gap 10 s + out-of-orderness 5 s): p50 {:.1} s, p99 {:.1} s",
        quantile(&after, 0.5),
        quantile(&after, 0.99)
    );
}

fn backlog_phase(rt: &tokio::runtime::Runtime, brokers: &str, bin: &Path, events: u64) {
    let brokers = brokers.to_string();
    let backlog = Topics::new("backlog");
    rt.block_on(backlog.create(&brokers));
    let produced = rt.block_on(produce_backlog(&brokers, &backlog, events));
    println!(
        "backlog: {} messages, {} events, {:.0} MB",
        produced.0,
        produced.1,
        produced.2 as f64 / 1e6
    );
    let (ceiling_cpu, ceiling_wall) = raw_consumer(&brokers, &backlog, produced.0);
    let ceiling = produced.1 as f64 / ceiling_cpu;
    println!(
        "raw consumer (ceiling): {:.0} events per CPU second ({:.2} s CPU, {:.2} s wall)",
        ceiling, ceiling_cpu, ceiling_wall
    );
    let run = run_backlog(&brokers, bin, &backlog, produced.0);
    let per_core = produced.1 as f64 / run.cpu_s;
    println!(
        "faultline: {:.0} events per CPU second ({:.1} s CPU, {:.1} s wall), peak RSS {} MiB",
        per_core, run.cpu_s, run.wall_s, run.peak_rss_mib
    );
    println!(
        "faultline / raw consumer ceiling: {:.3}",
        per_core / ceiling
    );
}

struct Topics {
    prefix: String,
}

impl Topics {
    fn new(what: &str) -> Self {
        Topics {
            prefix: format!("e2e-{}-{what}", std::process::id()),
        }
    }

    fn input(&self, signal: usize) -> String {
        format!("{}.{}", self.prefix, SIGNALS[signal])
    }

    fn output(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    async fn create(&self, brokers: &str) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .unwrap();
        let inputs: Vec<String> = (0..3).map(|s| self.input(s)).collect();
        let alerts = self.output("alerts");
        let mut topics: Vec<NewTopic> = inputs
            .iter()
            .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
            .collect();
        topics.push(NewTopic::new(&alerts, 1, TopicReplication::Fixed(1)));
        admin
            .create_topics(&topics, &AdminOptions::new())
            .await
            .unwrap();
    }
}

fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap()
}

/// Produces the backlog: messages, events, bytes.
async fn produce_backlog(brokers: &str, topics: &Topics, events: u64) -> (u64, u64, u64) {
    let p = producer(brokers);
    let t0 = (now_ns() / (60 * S) - 120) * 60 * S; // two hours ago, on a minute
    let spacing = S / REQUESTS_PER_S;
    let fault_at = t0 + 20 * S;
    let faulty = move |gateway: u64, t: i64| gateway == 7 && t >= fault_at;
    let (mut messages, mut sent_events, mut bytes) = (0u64, 0u64, 0u64);
    let mut pending = Vec::new();
    let mut next_gauges = t0;
    let mut n = 0u64;
    while sent_events < events {
        let t = t0 + n as i64 * spacing;
        let mut batches: Vec<gen::Batch> =
            gen::requests(n, (n / gen::BATCH) % gen::GATEWAYS, t, spacing, &faulty).into();
        if t >= next_gauges {
            batches.extend((0..gen::HOSTS).map(|h| gen::gauges(h, t)));
            next_gauges += 10 * S;
        }
        for b in batches {
            let topic = topics.input(b.signal);
            let sent = p
                .send_result(FutureRecord::to(&topic).key(&b.key).payload(&b.payload))
                .map_err(|(e, _)| e)
                .unwrap();
            pending.push(sent);
            messages += 1;
            sent_events += b.events;
            bytes += b.payload.len() as u64;
        }
        n += gen::BATCH;
        if pending.len() >= 20_000 {
            for d in pending.drain(..) {
                d.await.unwrap().unwrap();
            }
        }
    }
    for d in pending {
        d.await.unwrap().unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    (messages, sent_events, bytes)
}

/// Reads every input partition from its start and discards it, tuned for throughput: CPU
/// and wall seconds.
fn raw_consumer(brokers: &str, topics: &Topics, messages: u64) -> (f64, f64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", topics.output("raw"))
        .set("enable.auto.commit", "false")
        .set("fetch.queue.backoff.ms", "1")
        .set("fetch.wait.max.ms", "10")
        .set("queued.min.messages", "1000000")
        .set("fetch.message.max.bytes", "16777216")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for s in 0..3 {
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(&topics.input(s), p, Offset::Beginning)
                .unwrap();
        }
    }
    let (cpu0, wall0) = (process_cpu_s(std::process::id()), Instant::now());
    let mut bytes = 0usize;
    // Whole passes until the CPU time is measurable (clock ticks are 10 ms).
    let mut passes = 0;
    while passes == 0 || (process_cpu_s(std::process::id()) - cpu0 < 2.0 && passes < 50) {
        c.assign(&tpl).unwrap();
        let mut seen = 0u64;
        while seen < messages {
            let Some(m) = c.poll(Duration::from_secs(10)) else {
                panic!("raw consumer stalled at {seen} of {messages}");
            };
            bytes += m.unwrap().payload().map_or(0, |p| p.len());
            seen += 1;
        }
        passes += 1;
    }
    std::hint::black_box(bytes);
    let n = f64::from(passes);
    (
        (process_cpu_s(std::process::id()) - cpu0) / n,
        wall0.elapsed().as_secs_f64() / n,
    )
}

struct Run {
    cpu_s: f64,
    wall_s: f64,
    peak_rss_mib: u64,
}

/// faultline on the backlog until its metrics say every message was read and every trace
/// closed (its windows evaluated).
fn run_backlog(brokers: &str, bin: &Path, topics: &Topics, messages: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_dir(dir.path(), topics);
    let group = topics.output("group");
    let started = Instant::now();
    let metrics = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().to_string()
    };
    let mut child = start(bin, brokers, &group, &pipeline, dir.path(), &metrics);
    let deadline = started + Duration::from_secs(1800);
    while !drained(&metrics, messages) {
        assert!(
            Instant::now() < deadline,
            "no catch-up: {}",
            std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = Run {
        cpu_s: process_cpu_s(child.id()),
        wall_s: started.elapsed().as_secs_f64(),
        peak_rss_mib: peak_rss_mib(child.id()),
    };
    // Two checkpoint intervals later: what the snapshots hold and how far commits got.
    std::thread::sleep(Duration::from_secs(21));
    let snapshot_bytes = scrape(&metrics, "faultline_checkpoint_bytes");
    let lag = committed_lag(brokers, &group, topics);
    println!(
        "checkpoints (every 10 s): snapshots {:.1} MiB over all shards; committed lag {lag} of {messages} messages",
        snapshot_bytes / (1 << 20) as f64
    );
    stop(&mut child);
    if std::env::var_os("E2E_SHOW_LOG").is_some() {
        eprintln!(
            "{}",
            std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default()
        );
    }
    run
}

/// Messages of the input topics after the group's committed offsets.
fn committed_lag(brokers: &str, group: &str, topics: &Topics) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let mut lag = 0;
    for s in 0..SIGNALS.len() {
        let topic = topics.input(s);
        for p in 0..PARTITIONS {
            let (_, high) = c
                .fetch_watermarks(&topic, p, Duration::from_secs(10))
                .unwrap();
            lag += high - committed_offset(brokers, group, &topic, p);
        }
    }
    lag
}

/// Paces requests at `rate` events/s with event time = wall clock; a gateway starts failing
/// every 20 s (until 90 s before the end, so its window can close). Latency per fault.
async fn paced_run(
    brokers: &str,
    bin: &Path,
    topics: &Topics,
    rate: u64,
    seconds: u64,
) -> BTreeMap<String, (f64, f64)> {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_dir(dir.path(), topics);
    let metrics = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().to_string()
    };
    let group = topics.output("group");
    let mut child = start(bin, brokers, &group, &pipeline, dir.path(), &metrics);
    std::thread::sleep(Duration::from_secs(5));
    let faults: Arc<Mutex<BTreeMap<u64, i64>>> = Arc::default();
    let arrivals = watch_alerts(brokers, &topics.output("alerts"));
    let p = producer(brokers);
    let started = Instant::now();
    let per_tick = (rate / 10).max(1);
    let mut n = 1_000_000_000u64;
    let mut next_gauges = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let fault_seen = faults.clone();
    let faulty = move |g: u64, t: i64| {
        let f = fault_seen.lock().unwrap();
        f.get(&g).is_some_and(|since| t >= *since)
    };
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let elapsed = started.elapsed().as_secs();
        let k = elapsed / 20;
        if k >= 1 && elapsed + 90 < seconds && !faults.lock().unwrap().contains_key(&(100 + k)) {
            // The faulty gateway's next requests go out at once: the fault shows from its
            // injection, not from the gateway's next turn.
            faults.lock().unwrap().insert(100 + k, now_ns());
            for b in gen::requests(n, 100 + k, now_ns(), 1_000, &faulty) {
                send(&p, topics, b);
            }
            n += gen::BATCH;
        }
        let mut budget = per_tick as i64;
        let now = now_ns();
        if elapsed >= next_gauges {
            for h in 0..gen::HOSTS {
                send(&p, topics, gen::gauges(h, now));
            }
            budget -= 3 * gen::HOSTS as i64;
            next_gauges = elapsed + 10;
        }
        while budget > 0 {
            let gateway = (n / gen::BATCH) % gen::GATEWAYS;
            for b in gen::requests(n, gateway, now_ns(), 1_000, &faulty) {
                budget -= b.events as i64;
                send(&p, topics, b);
            }
            n += gen::BATCH;
        }
    }
    p.flush(Duration::from_secs(30)).unwrap();
    // Let the last windows close by the wall clock (idle timeout), then collect.
    std::thread::sleep(Duration::from_secs(20));
    stop(&mut child);
    if std::env::var_os("E2E_SHOW_LOG").is_some() {
        eprintln!(
            "{}",
            std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default()
        );
    }
    let arrivals = arrivals.lock().unwrap().clone();
    let faults = faults.lock().unwrap().clone();
    faults
        .into_iter()
        .filter_map(|(g, since)| {
            let service = format!("gateway-{g}");
            let at = arrivals.get(&service)?;
            // The earliest the shipped pipeline can close the fault's one-minute window.
            let minute = 60 * S;
            let closes = (since / minute + 1) * minute + 15 * S;
            Some((
                service,
                ((*at - since) as f64 / 1e9, (*at - closes) as f64 / 1e9),
            ))
        })
        .collect()
}

fn send(p: &FutureProducer, topics: &Topics, b: gen::Batch) {
    let topic = topics.input(b.signal);
    let _ = p.send_result(FutureRecord::to(&topic).key(&b.key).payload(&b.payload));
}

/// First arrival (wall clock, ns) of a firing `RequestErrorRateHigh` per service.
fn watch_alerts(brokers: &str, topic: &str) -> Arc<Mutex<BTreeMap<String, i64>>> {
    let seen: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
    let out = seen.clone();
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-watch"))
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    std::thread::spawn(move || loop {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let at = now_ns();
            let Ok(a) =
                serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default())
            else {
                continue;
            };
            if a["status"] == "firing" && a["labels"]["alertname"] == "RequestErrorRateHigh" {
                if let Some(s) = a["labels"]["service"].as_str() {
                    out.lock().unwrap().entry(s.to_string()).or_insert(at);
                }
            }
        }
    });
    seen
}

/// The shipped pipeline (`pipelines/inference`: its rules, detectors, knowledge base and
/// incidents) with this run's topics, checkpoints as shipped.
fn pipeline_dir(dir: &Path, topics: &Topics) -> PathBuf {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pipelines/inference");
    let toml = std::fs::read_to_string(shipped.join("pipeline.toml")).unwrap();
    let (head, rest) = toml.split_once("[kafka]").unwrap();
    let tail = &rest[rest.find("[kb]").unwrap()..];
    // The shipped inputs' own idle timeouts, on the bench's topics.
    let shipped_inputs: toml::Value = toml::from_str(&toml).unwrap();
    let idle_of = |signal: &str| {
        shipped_inputs["kafka"]["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["signal"].as_str() == Some(signal))
            .and_then(|i| i.get("idle_timeout")?.as_str().map(str::to_owned))
    };
    let mut kafka = String::from("[kafka]\n");
    for (s, signal) in ["spans", "logs", "metrics"].into_iter().enumerate() {
        kafka += &format!(
            "[[kafka.inputs]]\ntopic = \"{}\"\nsignal = \"{}\"\nencoding = \"otlp_proto\"\n",
            topics.input(s),
            signal
        );
        if let Some(idle) = idle_of(signal) {
            kafka += &format!("idle_timeout = \"{idle}\"\n");
        }
    }
    kafka += "[kafka.outputs]\n";
    for name in [
        "alerts",
        "suggestions",
        "deadletter",
        "late",
        "review",
        "incidents",
        "feedback",
        "watermarks",
    ] {
        kafka += &format!("{name} = \"{}\"\n", topics.output(name));
    }
    // Checkpoints as shipped (every 10 s); at this scale the look-back is over
    // `max_history_bytes` and is re-read after a restart instead of saved.
    kafka += &format!(
        "[kafka.checkpoints]\ntopic = \"{}\"\n",
        topics.output("state")
    );
    // `E2E_RULE_MEMORY`: the per-query memory limit (`[evaluation] max_memory_bytes`).
    let evaluation = match std::env::var("E2E_RULE_MEMORY") {
        Ok(bytes) => format!("[evaluation]\nmax_memory_bytes = {bytes}\n"),
        Err(_) => String::new(),
    };
    let p = dir.join("pipeline");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("pipeline.toml"),
        format!("{head}{evaluation}{kafka}{tail}"),
    )
    .unwrap();
    for sub in ["rules", "kb"] {
        std::os::unix::fs::symlink(shipped.join(sub), p.join(sub)).unwrap();
    }
    p
}

/// Whether the metrics say all `messages` were read and no trace is open.
fn drained(addr: &str, messages: u64) -> bool {
    scrape(addr, "faultline_component_received_events_total") as u64 >= messages
        && scrape(addr, "faultline_open_traces ") == 0.0
}

/// The sum of the metric lines starting with `prefix` (0 when the endpoint does not answer).
fn scrape(addr: &str, prefix: &str) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return 0.0;
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn start(
    bin: &Path,
    brokers: &str,
    group: &str,
    pipeline: &Path,
    dir: &Path,
    metrics: &str,
) -> Child {
    Command::new(bin)
        .args(["run", "--brokers", brokers, "--group", group, "--pipeline"])
        .arg(pipeline)
        .args(["--metrics-addr", metrics])
        .env("FAULTLINE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("run.log")).unwrap())
        .spawn()
        .unwrap()
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn process_cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}
