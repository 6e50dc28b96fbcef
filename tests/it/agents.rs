//! The agents end to end: `agent env` on a real process with a planted secret, through the
//! default pipeline.

use std::process::Command;

use crate::common::*;

#[test]
fn a_planted_secret_is_alerted_and_appears_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = format!("planted-S3cr3t-{}", unique("x"));
    // A "workload" whose environment holds a secret in plain text and a setting out of range.
    let mut workload = Command::new("sleep")
        .arg("30")
        .env("APP_DB_PASSWORD", &secret)
        .env("APP_BATCH_SIZE", "99999")
        .env("APP_MODE", "fast")
        .spawn()
        .unwrap();
    let snapshots = tmp.path().join("env.jsonl");
    let agent = faultline()
        .env("FAULTLINE_LOG", "debug")
        .args([
            "agent",
            "env",
            "--prefix",
            "APP_",
            "--interval",
            "100ms",
            "--count",
            "2",
        ])
        .arg("--pid")
        .arg(workload.id().to_string())
        .arg("--output")
        .arg(&snapshots)
        .output()
        .unwrap();
    workload.kill().unwrap();
    workload.wait().unwrap();
    assert!(
        agent.status.success(),
        "{}",
        String::from_utf8_lossy(&agent.stderr)
    );
    let out = tmp.path().join("out");
    let run = faultline()
        .env("FAULTLINE_LOG", "debug")
        .args(["run", "--pipeline", "pipelines/inference", "--input"])
        .arg(&snapshots)
        .arg("--output")
        .arg(&out)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let alerts = read_lines(&out.join("alerts.jsonl"));
    let problems: Vec<(&str, &str)> = alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == "EnvironmentDrift" && a["status"] == "firing")
        .map(|a| {
            (
                a["labels"]["variable"].as_str().unwrap(),
                a["labels"]["problem"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        problems.contains(&("APP_DB_PASSWORD", "secret_in_plaintext")),
        "{alerts:?}"
    );
    assert!(
        problems.contains(&("APP_BATCH_SIZE", "out_of_range")),
        "{alerts:?}"
    );
    let redacted = alerts
        .iter()
        .find(|a| a["labels"]["problem"] == "secret_in_plaintext")
        .unwrap();
    assert!(redacted["evidence"]["values"]["value"]
        .as_str()
        .unwrap()
        .starts_with("<redacted:"));

    // The secret is in no output, file or log line.
    let mut places = vec![
        (
            "agent stdout",
            String::from_utf8_lossy(&agent.stdout).into_owned(),
        ),
        (
            "agent log",
            String::from_utf8_lossy(&agent.stderr).into_owned(),
        ),
        ("snapshots", std::fs::read_to_string(&snapshots).unwrap()),
        (
            "run stdout",
            String::from_utf8_lossy(&run.stdout).into_owned(),
        ),
        ("run log", String::from_utf8_lossy(&run.stderr).into_owned()),
    ];
    for f in [
        "alerts.jsonl",
        "suggestions.jsonl",
        "deadletter.jsonl",
        "late.jsonl",
    ] {
        places.push((f, std::fs::read_to_string(out.join(f)).unwrap()));
    }
    for (place, text) in places {
        assert!(!text.contains(&secret), "the secret leaked into {place}");
    }
}

/// The same through Kafka: the agent produces to the logs topic, faultline consumes it; no
/// topic, output or log holds the secret.
#[tokio::test(flavor = "multi_thread")]
async fn a_planted_secret_never_reaches_a_topic() {
    use crate::broker::*;
    let topics = Topics::new();
    topics.create().await;
    let tmp = tempfile::tempdir().unwrap();
    let secret = format!("planted-S3cr3t-{}", unique("k"));
    let mut workload = Command::new("sleep")
        .arg("30")
        .env("APP_API_TOKEN", &secret)
        .spawn()
        .unwrap();
    let agent = faultline()
        .args([
            "agent",
            "env",
            "--prefix",
            "APP_",
            "--interval",
            "100ms",
            "--count",
            "2",
        ])
        .arg("--pid")
        .arg(workload.id().to_string())
        .args(["--brokers", &brokers(), "--topic", &topics.logs])
        .output()
        .unwrap();
    workload.kill().unwrap();
    workload.wait().unwrap();
    assert!(
        agent.status.success(),
        "{}",
        String::from_utf8_lossy(&agent.stderr)
    );
    let toml = std::fs::read_to_string(repo().join("pipelines/inference/pipeline.toml")).unwrap();
    let detectors = &toml[toml.find("[[detectors]]").unwrap()..];
    // The snapshots are stamped with the wall clock: short windows close within seconds.
    let settings = format!("{}[traces]\ngap = \"1s\"\n{detectors}", window("5s"));
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let pipeline = pipeline_dir_with_rules(tmp.path(), &rules, &topics.pipeline_toml(&settings));
    let mut fl = Instance::start(&pipeline, &unique("g"), tmp.path().join("faultline.log"));
    let alerts = read_topic(&topics.alerts, 1, Duration::from_secs(60));
    assert!(fl.stop().success());
    assert_eq!(alerts[0].1["labels"]["variable"], "APP_API_TOKEN");
    assert_eq!(alerts[0].1["labels"]["problem"], "secret_in_plaintext");
    let mut texts = vec![
        String::from_utf8_lossy(&agent.stderr).into_owned(),
        fl.log_text(),
    ];
    for topic in topics.all() {
        let raw: Vec<String> = read_raw(topic, Duration::from_secs(3));
        texts.extend(raw);
    }
    assert!(
        texts.iter().all(|t| !t.contains(&secret)),
        "the secret leaked"
    );
}

use std::time::Duration;
