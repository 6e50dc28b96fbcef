//! `faultline replay`: a recorded incident on the real broker, run live then replayed (the
//! same alerts, byte-identical twice, the live group's offsets untouched, live topics never
//! written); recordings on files; `--rules --diff`; the progress bar on a terminal.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;

use crate::broker::*;
use crate::common::*;

/// Produces the example incident into the input topics, each OTLP request to its signal's
/// topic, on partition (trace id hash) % 2 so both shards get traffic.
async fn produce_example(topics: &Topics) -> usize {
    let p = producer();
    let text = std::fs::read_to_string(repo().join("examples/incident.jsonl")).unwrap();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let topic = if v.get("resourceSpans").is_some() {
            &topics.spans
        } else if v.get("resourceLogs").is_some() {
            &topics.logs
        } else {
            &topics.metrics
        };
        let partition = line.split("\"traceId\"").nth(1).map_or(0, |rest| {
            rest.bytes().take(40).map(u32::from).sum::<u32>() % 2
        });
        produce_to(&p, topic, Some(partition as i32), line.as_bytes()).await;
        n += 1;
    }
    n
}

/// Committed offsets of `group` on the input topics (partitions 0 and 1).
fn committed(group: &str, topics: &Topics) -> BTreeMap<(String, i32), String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in [&topics.logs, &topics.metrics, &topics.spans] {
        for p in 0..2 {
            tpl.add_partition(t, p);
        }
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .map(|e| {
            let key = (e.topic().to_string(), e.partition());
            (key, format!("{:?}", e.offset()))
        })
        .collect()
}

fn replay(pipeline: &Path, args: &[&str]) -> std::process::Output {
    faultline()
        .args(["replay", "--progress", "off", "--pipeline"])
        .arg(pipeline)
        .args(args)
        .output()
        .unwrap()
}

/// [`replay`], which must succeed.
fn replay_ok(pipeline: &Path, args: &[&str]) -> std::process::Output {
    let out = replay(pipeline, args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_gives_the_live_runs_alerts_twice_identical_and_touches_nothing_live() {
    let topics = Topics::new();
    topics.create_with(2, 1).await;
    let tmp = tempfile::tempdir().unwrap();
    let settings = shipped_settings_short_idle();
    let pipeline = inference_copy_with(tmp.path(), &topics.pipeline_toml(&settings));
    let produced = produce_example(&topics).await;
    let brokers = brokers();

    // The live run. The idle timeout is 1 s, so a slow moment in the middle of the stream
    // can make it decide from the wall clock; the replays after it repeat those decisions
    // from the watermark journal. It is done once its alerts stop coming for 20 s.
    let group = unique("live");
    let mut fl = Instance::start(&pipeline, &group, tmp.path().join("live.log"));
    let mut reader = TopicReader::new(&topics.alerts);
    let deadline = Instant::now() + Duration::from_secs(240);
    let (mut seen, mut since) = (0, Instant::now());
    while Instant::now() < deadline && (seen < 6 || since.elapsed() < Duration::from_secs(20)) {
        let n = reader.poll(Duration::from_millis(500));
        if n != seen {
            (seen, since) = (n, Instant::now());
        }
    }
    assert!(fl.stop().success());
    // Everything the live run wrote, up to its stop (its count is in its last log line).
    reader.poll(Duration::from_secs(3));
    let live: Vec<String> = reader.seen.iter().map(|v| v.to_string()).collect();
    assert!(live.len() >= 6, "{}", fl.log_text());
    let offsets = committed(&group, &topics);

    // First replay: a time range, to files.
    let first = tmp.path().join("first");
    let out = replay_ok(
        &pipeline,
        &[
            "--brokers",
            &brokers,
            "--from",
            "-1h",
            "--output",
            first.to_str().unwrap(),
        ],
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!("Replayed {produced} messages")),
        "{summary}"
    );
    assert!(summary.contains("request_latency_p95"), "{summary}");
    let replayed = lines(&first.join("alerts.jsonl"));
    assert!(replayed.len() >= 6, "{replayed:?}");

    // The replay says what the live run said.
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let as_json = |v: Vec<String>| -> Vec<String> {
        v.iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        sorted(live),
        sorted(as_json(replayed.clone())),
        "{}",
        fl.log_text()
    );

    assert!(
        offsets.values().any(|o| o.starts_with("Offset")),
        "{offsets:?}"
    );

    // Second replay: from the earliest offsets, to prefixed topics: byte for byte the first.
    replay_ok(
        &pipeline,
        &[
            "--brokers",
            &brokers,
            "--from",
            "earliest",
            "--output-prefix",
            "replay.",
        ],
    );
    let prefixed = format!("replay.{}", topics.alerts);
    let again: Vec<String> = read_raw(&prefixed, Duration::from_secs(5))
        .into_iter()
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect();
    assert_eq!(again, replayed);
    for kind in ["incidents", "suggestions"] {
        let file = lines(&first.join(format!("{kind}.jsonl")));
        let topic = format!(
            "replay.{}",
            if kind == "incidents" {
                &topics.incidents
            } else {
                &topics.suggestions
            }
        );
        let got: Vec<String> = read_raw(&topic, Duration::from_secs(3))
            .into_iter()
            .map(|l| l.split_once(' ').unwrap().1.to_string())
            .collect();
        assert_eq!(got, file, "{kind}");
    }

    // Nothing live moved: the group's offsets, the live alert topic.
    assert_eq!(committed(&group, &topics), offsets);
    assert_eq!(
        read_raw(&topics.alerts, Duration::from_secs(2)).len(),
        replayed.len()
    );

    // A prefix that names the live topics is refused before anything is read.
    let out = replay(
        &pipeline,
        &[
            "--brokers",
            &brokers,
            "--from",
            "earliest",
            "--output-prefix",
            "",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--output-prefix: an empty prefix would write to the live output topics"),
        "{err}"
    );
}

#[test]
fn a_recording_replays_as_run_does_and_a_rule_change_shows_as_a_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let input = repo().join("pipelines/inference/tests/request_latency_p95/input.jsonl");
    let pipeline = repo().join("pipelines/inference");
    let ran = tmp.path().join("ran");
    run_ok(
        faultline()
            .args(["run", "--pipeline"])
            .arg(&pipeline)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&ran),
    );
    let replayed = tmp.path().join("replayed");
    replay_ok(
        &pipeline,
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            replayed.to_str().unwrap(),
        ],
    );
    for kind in ["alerts", "incidents", "suggestions", "deadletter", "late"] {
        let file = format!("{kind}.jsonl");
        assert_eq!(
            lines(&replayed.join(&file)),
            lines(&ran.join(&file)),
            "{kind}"
        );
    }

    // Sandboxed: with an Alertmanager and state files configured, a replay posts nothing
    // and writes no state.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let toml = std::fs::read_to_string(pipeline.join("pipeline.toml"))
        .unwrap()
        .replace(
            "# template_state = \"/var/lib/faultline/templates.json\"",
            "template_state = \"templates.json\"",
        )
        .replace("top_k = 3\n", "top_k = 3\nstate = \"kb-state.json\"\n");
    let toml = format!(
        "{toml}\n[alertmanager]\nurl = \"http://{}\"\n",
        listener.local_addr().unwrap()
    );
    let copy = inference_copy_with(tmp.path(), &toml);
    let sandboxed = tmp.path().join("sandboxed");
    replay_ok(
        &copy,
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            sandboxed.to_str().unwrap(),
        ],
    );
    assert_eq!(
        lines(&sandboxed.join("alerts.jsonl")),
        lines(&ran.join("alerts.jsonl"))
    );
    assert!(
        listener.accept().is_err(),
        "the replay connected to the Alertmanager"
    );
    assert!(!copy.join("templates.json").exists());
    assert!(!copy.join("kb-state.json").exists());
    // (`run` writes both: the check above would see them.)
    run_ok(
        faultline()
            .args(["run", "--pipeline"])
            .arg(&copy)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(tmp.path().join("r2")),
    );
    assert!(copy.join("templates.json").exists());

    // The latency rule with a threshold above every request: its alerts are removed.
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    for e in std::fs::read_dir(pipeline.join("rules")).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            rules.join(p.file_name().unwrap()),
            text.replace("latency_p95_ms = 500", "latency_p95_ms = 5000"),
        )
        .unwrap();
    }
    let diffed = tmp.path().join("diffed");
    let out = replay_ok(
        &pipeline,
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            diffed.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
            "--diff",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let diff = text
        .split("Against the shipped rules:\n")
        .nth(1)
        .expect(&text);
    assert!(
        diff.starts_with(
            "- RequestLatencyP95High{service=\"chat\",severity=\"critical\",team=\"inference\"}  "
        ),
        "{diff}"
    );
    assert!(
        diff.trim_end()
            .ends_with("0 added, 1 removed, 0 moved, 0 unchanged"),
        "{diff}"
    );
    assert!(lines(&diffed.join("alerts.jsonl")).is_empty());

    // The same rules: an empty diff.
    let out = replay_ok(
        &pipeline,
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            diffed.to_str().unwrap(),
            "--rules",
            pipeline.join("rules").to_str().unwrap(),
            "--diff",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.trim_end()
            .ends_with("0 added, 0 removed, 0 moved, 1 unchanged"),
        "{text}"
    );
}

#[test]
fn on_a_terminal_a_replay_draws_a_progress_bar() {
    // `script` gives the replay a pseudo-terminal, as a person's shell would.
    let tmp = tempfile::tempdir().unwrap();
    let input = repo().join("examples/incident.jsonl");
    let command = format!(
        "{} replay --pipeline {} --input {} --output {}",
        env!("CARGO_BIN_EXE_faultline"),
        repo().join("pipelines/inference").display(),
        input.display(),
        tmp.path().join("out").display()
    );
    let started = Instant::now();
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("replay ["), "{screen}");
    assert!(
        screen.contains("records/s  event time 2026-11-01T12:"),
        "{screen}"
    );
    assert!(screen.contains("ETA"), "{screen}");
    assert!(started.elapsed() < Duration::from_secs(300));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_repeats_the_live_runs_wall_clock_decisions() {
    let topics = Topics::new();
    topics.create().await;
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("requests.sql"),
        "-- alert = \"Requests\"\n-- severity = \"info\"\n\
         SELECT service, count(*) AS value FROM spans GROUP BY service\n",
    )
    .unwrap();
    let settings = format!("{}[traces]\ngap = \"1s\"\n", window("1m"));
    let pipeline = pipeline_dir_with_rules(tmp.path(), &rules, &topics.pipeline_toml(&settings));
    let p = producer();
    let m = minute_ago(30);
    let second = 1_000_000_000;

    // Live: ten requests, quiet (event time follows the wall clock and the minute closes),
    // then four more requests of the same minute: late for the live run.
    let group = unique("live");
    let mut fl = Instance::start(&pipeline, &group, tmp.path().join("live.log"));
    for n in 0..10 {
        send(
            &p,
            &topics.spans,
            &flat_span("api", n, m + i64::from(n) * second, 5),
        )
        .await;
    }
    let mut alerts = TopicReader::new(&topics.alerts);
    let deadline = Instant::now() + Duration::from_secs(60);
    while alerts.poll(Duration::from_millis(300)) < 1 {
        assert!(Instant::now() < deadline, "{}", fl.log_text());
    }
    for n in 10..14 {
        send(
            &p,
            &topics.spans,
            &flat_span("api", n, m + 40 * second + i64::from(n), 5),
        )
        .await;
    }
    let late = read_topic(&topics.late, 4, Duration::from_secs(60));
    assert_eq!(late.len(), 4, "{}", fl.log_text());
    assert!(fl.stop().success());
    alerts.poll(Duration::from_millis(500));
    assert_eq!(alerts.seen[0]["evidence"]["value"], 10.0);

    // The journal holds the decision with the position the live run had reached.
    let journal = read_topic(&topics.watermarks, 10, Duration::from_secs(5));
    assert!(!journal.is_empty());
    for (_, record) in &journal {
        assert_valid("watermark.json", record);
    }
    let decided = journal
        .iter()
        .find(|(_, r)| r["watermark_unix_nano"].is_i64())
        .unwrap();
    let spans = decided.1["positions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["topic"] == topics.spans.as_str())
        .unwrap();
    assert_eq!(spans["offset"], 10, "{journal:?}");

    // The replay makes the same decision between the same records: the same alert and the
    // same four late records (same watermark, same delays).
    let with = tmp.path().join("with");
    let out = replay_ok(
        &pipeline,
        &[
            "--brokers",
            &brokers(),
            "--from",
            "earliest",
            "--output",
            with.to_str().unwrap(),
        ],
    );
    let live_alerts: Vec<String> = alerts.seen.iter().map(|v| v.to_string()).collect();
    let replayed: Vec<String> = read_lines(&with.join("alerts.jsonl"))
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(
        replayed,
        live_alerts,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live_late: Vec<serde_json::Value> = late.into_iter().map(|(_, v)| v).collect();
    assert_eq!(read_lines(&with.join("late.jsonl")), live_late);

    // Without the journal, event time alone decides: all fourteen in the window, none late.
    let without = tmp.path().join("without");
    let out = replay_ok(
        &pipeline,
        &[
            "--brokers",
            &brokers(),
            "--from",
            "earliest",
            "--ignore-journal",
            "--output",
            without.to_str().unwrap(),
        ],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(read_lines(&without.join("late.jsonl")).is_empty(), "{said}");
    let alerts = read_lines(&without.join("alerts.jsonl"));
    assert_eq!(
        alerts.first().map(|a| a["evidence"]["value"].clone()),
        Some(14.0.into()),
        "{said}"
    );
}

/// Every record of every partition, however often a range is opened: messages fetched
/// between the assignment and the split of each partition's queue must not be lost (they
/// once went to the main queue and were dropped, and the partition then ended early).
#[tokio::test(flavor = "multi_thread")]
async fn a_range_serves_every_record_of_every_partition_each_time_it_is_opened() {
    use faultline::source::{KafkaRange, RangeEnd, RangeStart};
    const PARTITIONS: i32 = 8;
    const PER_PARTITION: usize = 150;
    let topics = Topics::new();
    topics.create_with(PARTITIONS, 1).await;
    let p = producer();
    let sends = (0..PARTITIONS).flat_map(|n| {
        let (p, topic) = (&p, &topics.logs);
        (0..PER_PARTITION).map(move |i| async move {
            let line = format!("{{\"body\":\"line {i}\",\"service\":\"s\"}}");
            produce_to(p, topic, Some(n), line.as_bytes()).await
        })
    });
    futures::future::join_all(sends).await;
    let config = faultline::config::PipelineConfig::parse(
        &topics.pipeline_toml("name = \"range\""),
        Path::new("pipeline.toml"),
    )
    .unwrap();
    for attempt in 0..12 {
        let mut range = KafkaRange::open(
            &brokers(),
            &config.kafka,
            &RangeStart::Earliest,
            RangeEnd::Latest,
        )
        .unwrap();
        let mut read = Vec::new();
        for (i, key) in range.partitions().into_iter().enumerate() {
            let mut n = 0;
            while tokio::time::timeout(Duration::from_secs(20), range.next(i))
                .await
                .expect("a partition of the range stalled")
                .unwrap()
                .is_some()
            {
                n += 1;
            }
            read.push((key.topic, key.partition, n));
        }
        let logs: Vec<_> = read.iter().filter(|r| r.0 == topics.logs).collect();
        assert_eq!(
            logs.len(),
            PARTITIONS as usize,
            "attempt {attempt}: {read:?}"
        );
        assert!(
            logs.iter().all(|r| r.2 == PER_PARTITION),
            "attempt {attempt}: {read:?}"
        );
    }
}
