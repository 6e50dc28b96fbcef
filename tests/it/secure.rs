//! Connecting as operators must: the default pipeline over TLS with SCRAM credentials from
//! an environment variable (the broker's SASL_SSL listener, `scripts/kafka`), wrong
//! credentials and untrusted certificates as one clear error, an unreachable broker as one
//! line and a clean stop.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::broker::*;
use crate::common::*;

/// The broker's SASL_SSL listener (`scripts/kafka`: the client port + 2), its throw-away CA
/// and the SCRAM user's password.
fn sasl() -> (String, PathBuf, String) {
    let plain = brokers();
    let (host, port) = plain.rsplit_once(':').unwrap();
    let port: u16 = port.parse().unwrap();
    let tls = repo().join(format!(".kafka/run-{port}/tls"));
    let password = std::fs::read_to_string(tls.join("password")).unwrap();
    (
        format!("{host}:{}", port + 2),
        tls.join("ca.pem"),
        password.trim().to_string(),
    )
}

/// `[kafka]` client settings for SCRAM-SHA-512 over TLS, the password from `$var`.
fn client_settings(ca: Option<&PathBuf>, var: &str) -> String {
    let ca = ca.map_or(String::new(), |p| {
        format!("\"ssl.ca.location\" = \"{}\"\n", p.display())
    });
    format!(
        "[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\
         \"sasl.username\" = \"faultline\"\n{ca}\n[kafka.client_env]\n\"sasl.password\" = \"{var}\"\n"
    )
}

fn faultline_run(pipeline: &std::path::Path, brokers: &str, envs: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_faultline"));
    c.args([
        "run",
        "--brokers",
        brokers,
        "--group",
        &unique("g"),
        "--pipeline",
    ])
    .arg(pipeline)
    .env("FAULTLINE_LOG", "info");
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_pipeline_runs_over_tls_with_scram_credentials_from_the_environment() {
    let (sasl_brokers, ca, password) = sasl();
    let topics = Topics::new();
    topics.create().await;
    let tmp = tempfile::tempdir().unwrap();
    let settings = shipped_settings_short_idle();
    // The secret is in the environment only; pipeline.toml names the variable.
    let toml = format!(
        "{}\n{}",
        topics.pipeline_toml(&settings),
        client_settings(Some(&ca), "KAFKA_PASSWORD")
    );
    assert!(!toml.contains(&password));
    let pipeline = inference_copy_with(tmp.path(), &toml);

    // A slow-request case, produced through the plain listener.
    let p = producer();
    let case = std::fs::read_to_string(
        repo().join("pipelines/inference/tests/request_latency_p95/input.jsonl"),
    )
    .unwrap();
    for line in case.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let topic = match v["signal"].as_str() {
            Some("span") => &topics.spans,
            Some("log") => &topics.logs,
            _ => &topics.metrics,
        };
        produce(&p, topic, line.as_bytes()).await;
    }
    let log = tmp.path().join("run.log");
    let mut child = faultline_run(&pipeline, &sasl_brokers, &[("KAFKA_PASSWORD", &password)])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let alerts = read_topic(&topics.alerts, 1, Duration::from_secs(120));
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success(), "{text}");
    assert_eq!(alerts.len(), 1, "{text}");
    assert_eq!(alerts[0].1["labels"]["alertname"], "RequestLatencyP95High");
    assert!(
        text.contains(&format!("Consuming. brokers=\"{sasl_brokers}\"")),
        "{text}"
    );
}

/// Runs until exit (at most 60 s): exit status and stderr.
fn outcome(mut c: Command) -> (std::process::ExitStatus, String) {
    let out = c.stdin(Stdio::null()).output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_or_an_untrusted_certificate_are_one_clear_error() {
    let (sasl_brokers, ca, _) = sasl();
    let tmp = tempfile::tempdir().unwrap();
    let topics = Topics::new();
    let cases = [
        (
            "wrong password",
            client_settings(Some(&ca), "KAFKA_PASSWORD"),
            "SASL authentication error: Authentication failed",
        ),
        (
            "untrusted certificate",
            client_settings(None, "KAFKA_PASSWORD"),
            "certificate verify failed",
        ),
    ];
    for (name, settings, expected) in cases {
        let dir = tmp.path().join(name.replace(' ', "_"));
        let pipeline = pipeline_dir(
            &dir,
            &format!("{}\n{settings}", topics.pipeline_toml(&window("1m"))),
        );
        let started = Instant::now();
        let (status, stderr) = outcome(faultline_run(
            &pipeline,
            &sasl_brokers,
            &[("KAFKA_PASSWORD", "not-the-password")],
        ));
        // Kafka refused us: the environment must act (exit status 2).
        assert_eq!(status.code(), Some(2), "{name}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name}: took {:?}",
            started.elapsed()
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: {stderr}");
        assert!(
            lines[0].starts_with(&format!("error: kafka: cannot connect to {sasl_brokers}: ")),
            "{name}: {stderr}"
        );
        assert!(lines[0].contains(expected), "{name}: {stderr}");
    }

    // A variable that is not set is a configuration error naming it.
    let pipeline = pipeline_dir(
        &tmp.path().join("unset"),
        &format!(
            "{}\n{}",
            topics.pipeline_toml(&window("1m")),
            client_settings(Some(&ca), "NO_SUCH_VARIABLE_SET")
        ),
    );
    let (status, stderr) = outcome(faultline_run(&pipeline, &sasl_brokers, &[]));
    assert_eq!(status.code(), Some(1));
    assert_eq!(stderr.trim(), "error: kafka.client_env.\"sasl.password\": environment variable NO_SUCH_VARIABLE_SET is not set");
}

#[test]
fn an_unreachable_broker_is_one_line_a_clean_stop_or_a_deadline() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("127.0.0.1:{port}");
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = pipeline_dir(tmp.path(), &Topics::new().pipeline_toml(&window("1m")));

    // Waiting: one line in 8 s (no retry chatter), not consuming; SIGTERM stops it cleanly.
    let log = tmp.path().join("wait.log");
    let mut child = faultline_run(&pipeline, &nowhere, &[])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(8));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}: {text}");
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0]
            .contains("No Kafka broker answers; retrying with backoff. Not ready until connected."),
        "{text}"
    );
    assert!(!text.contains("Consuming."), "{text}");
    assert!(text.contains("Stopped before consuming."), "{text}");

    // With a deadline: one error at the deadline.
    let mut c = faultline_run(&pipeline, &nowhere, &[]);
    c.args(["--connect-timeout", "3s"]);
    let started = Instant::now();
    let (status, stderr) = outcome(c);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        stderr.lines().last().unwrap().starts_with(&format!(
            "error: kafka: no Kafka broker answered at {nowhere} within 3s: "
        )),
        "{stderr}"
    );
}
