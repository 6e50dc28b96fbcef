//! The command line: help lists only what works; errors name the file and line.

use crate::common::*;

#[test]
fn help_lists_only_working_subcommands() {
    let out = run_ok(faultline().arg("--help"));
    let help = String::from_utf8(out.stdout).unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        commands,
        [
            "run",
            "check",
            "replay",
            "test",
            "health",
            "alerts",
            "agent",
            "templates",
            "completions",
            "man",
            "help"
        ]
    );
    let out = run_ok(faultline().args(["replay", "--help"]));
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--from",
        "--to",
        "--input",
        "--output-prefix",
        "--rules",
        "--diff",
        "--ignore-journal",
    ] {
        assert!(
            help.contains(flag),
            "replay --help mentions {flag}:\n{help}"
        );
    }
    let out = run_ok(faultline().args(["test", "--help"]));
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in ["--run", "--junit"] {
        assert!(help.contains(flag), "test --help mentions {flag}:\n{help}");
    }
    let out = run_ok(faultline().args(["run", "--help"]));
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in ["--pipeline", "--input", "--output", "--brokers", "--group"] {
        assert!(help.contains(flag), "run --help mentions {flag}:\n{help}");
    }
}

#[test]
fn input_and_brokers_are_exclusive() {
    let out = faultline()
        .args([
            "run",
            "--pipeline",
            "p",
            "--input",
            "x",
            "--brokers",
            "127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

#[test]
fn bad_pipeline_config_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("pipeline.toml"),
        "name = \"x\"\n\n[window]\nsize = 60\n",
    )
    .unwrap();
    let out = faultline()
        .args(["run", "--input", "examples/incident.jsonl", "--pipeline"])
        .arg(&p)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4", p.join("pipeline.toml").display())),
        "{err}"
    );
}

#[test]
fn bad_rule_file_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p");
    std::fs::create_dir_all(p.join("rules")).unwrap();
    std::fs::write(p.join("pipeline.toml"), "name = \"x\"\n").unwrap();
    std::fs::write(
        p.join("rules/broken.sql"),
        "-- severity = \"critical\"\n\nSELECT service, count(*) AS value FROM spanz GROUP BY service\n",
    )
    .unwrap();
    let out = faultline()
        .args(["run", "--input", "examples/incident.jsonl", "--pipeline"])
        .arg(&p)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3", p.join("rules/broken.sql").display())),
        "{err}"
    );
    assert!(err.contains("spanz"), "{err}");
}

#[test]
fn librdkafka_settings_pass_through_and_bad_ones_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pipeline_dir(tmp.path(), "[kafka.client]\n\"no.such.property\" = \"1\"\n");
    let out = faultline()
        .args(["run", "--brokers", "127.0.0.1:9", "--pipeline"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kafka: creating consumer"), "{err}");
    assert!(err.contains("no.such.property"), "{err}");
}

#[test]
fn check_plans_detector_sources_too() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p");
    std::fs::create_dir_all(p.join("rules")).unwrap();
    std::fs::write(
        p.join("pipeline.toml"),
        "name = \"x\"\n[[detectors]]\nid = \"d\"\nquery = \"SELECT host, value FROM metricz\"\n\
         kind = \"consecutive\"\nthreshold = 1.0\n",
    )
    .unwrap();
    let out = faultline().arg("check").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("pipeline.toml:2: ") && stdout.contains("metricz"),
        "{stdout}"
    );
}

#[test]
fn check_accepts_the_shipped_pipeline() {
    let out = run_ok(
        faultline()
            .args(["check", "pipelines/inference"])
            .current_dir(repo()),
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(
            "pipelines/inference/pipeline.toml: ok (12 rules, 5 detectors, 12 incident indicators, 30 remediations)"
        ),
        "{stdout}"
    );
}

#[test]
fn check_reports_every_bad_rule_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p");
    let rules = p.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(p.join("pipeline.toml"), "name = \"x\"\n").unwrap();
    let files = [
        ("a_copy.sql", "COPY (SELECT 1 AS value) TO '/tmp/out.csv'"),
        (
            "b_external.sql",
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
        ),
        (
            "c_read_csv.sql",
            "SELECT count(*) AS value FROM read_csv('/etc/passwd')",
        ),
        (
            "d_read_parquet.sql",
            "SELECT count(*) AS value FROM read_parquet('/tmp/x.parquet')",
        ),
        ("e_insert.sql", "INSERT INTO spans SELECT * FROM spans"),
        (
            "f_typo.sql",
            "SELECT count(*) AS value FROM spans WHERE durration_ms > 1",
        ),
        ("g_ok.sql", "SELECT count(*) AS value FROM spans"),
    ];
    for (name, sql) in files {
        std::fs::write(
            rules.join(name),
            format!("-- severity = \"info\"\n\n{sql}\n"),
        )
        .unwrap();
    }
    std::fs::write(
        rules.join("h_header.sql"),
        "-- severity = \"loud\"\nSELECT 1 AS value\n",
    )
    .unwrap();
    let out = faultline().arg("check").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    // One report per bad file (a message may continue on following lines).
    let prefix = rules.display().to_string();
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(lines.len(), 7, "{stdout}");
    for (name, _) in &files[..6] {
        let at = format!("{}:3: ", rules.join(name).display());
        assert!(
            lines.iter().any(|l| l.starts_with(&at)),
            "{at} in\n{stdout}"
        );
    }
    assert!(lines
        .iter()
        .any(|l| l.starts_with(&format!("{}:1: ", rules.join("h_header.sql").display()))));
    assert!(!stdout.contains("g_ok.sql"), "{stdout}");
}

/// Without an NVIDIA driver the agent says so in one line and exits 2; with one (a GPU
/// machine) it writes OTLP metrics of every GPU.
#[test]
fn gpu_agent_samples_gpus_or_fails_cleanly_without_a_driver() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("gpu.jsonl");
    let out = faultline()
        .args(["agent", "gpu", "--count", "1", "--output"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    if std::path::Path::new("/dev/nvidiactl").exists() {
        assert!(out.status.success(), "{err}");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("hw.gpu.memory.usage") && text.contains("hw.gpu.memory.limit"));
    } else {
        // The environment must act: exit status 2.
        assert_eq!(out.status.code(), Some(2));
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {err}");
        assert!(lines[0].starts_with("error: cannot load NVML"), "{err}");
        assert!(!file.exists(), "nothing written");
    }
}

#[test]
fn health_asks_an_endpoint_and_exits_by_its_answer() {
    // Nothing listens: a clear error, exit 1.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = faultline()
        .args(["health", &format!("http://127.0.0.1:{port}/readyz")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no answer"));
    // A 503 with a report: printed, exit 1; a 200: exit 0.
    for (code, expected) in [(503, 1), (200, 0)] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = listener.accept().unwrap();
            // The whole request head, so that closing does not reset the connection.
            let mut head = Vec::new();
            let mut buf = [0u8; 256];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0);
                head.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"status":"degraded"}"#;
            let response = format!(
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(response.as_bytes()).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let out = faultline()
            .args(["health", &format!("http://{addr}/readyz")])
            .output()
            .unwrap();
        server.join().unwrap();
        assert_eq!(out.status.code(), Some(expected), "{code}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            r#"{"status":"degraded"}"#
        );
    }
}
