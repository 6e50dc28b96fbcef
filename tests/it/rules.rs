//! Rule tests as data files: every case under `pipelines/*/tests/` runs through the whole
//! pipeline; its notifications must equal `expected.jsonl` and its incidents (the last record
//! of each) `expected_incidents.jsonl` (`FAULTLINE_BLESS=1` rewrites both).

use std::path::Path;

use crate::common::*;

/// The parts of an alert a rule test pins down.
fn projection(alert: &serde_json::Value) -> serde_json::Value {
    let value = alert["evidence"]["value"].as_f64().unwrap();
    serde_json::json!({
        "rule_id": alert["rule_id"],
        "status": alert["status"],
        "labels": alert["labels"],
        "startsAt": alert["startsAt"],
        "endsAt": alert["endsAt"],
        "value": (value * 1000.0).round() / 1000.0,
    })
}

/// The parts of an incident a data test pins down: its last record's grouping and ranking.
fn incident_projection(record: &serde_json::Value) -> serde_json::Value {
    let names: std::collections::BTreeMap<&str, &str> = record["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["fingerprint"].as_str().unwrap(),
                a["alertname"].as_str().unwrap(),
            )
        })
        .collect();
    let alerts: Vec<serde_json::Value> = record["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            serde_json::json!({
                "alertname": a["alertname"],
                "entities": a["entities"],
                "status": a["status"],
                "folded_into": a["folded_into"].as_str().map(|fp| names[fp]),
            })
        })
        .collect();
    let suspects: Vec<&serde_json::Value> = record["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|s| &s["service"])
        .collect();
    serde_json::json!({
        "status": record["status"],
        "opened_at": record["opened_at"],
        "alerts": alerts,
        "verdict": record["verdict"],
        "suspects": suspects,
        "propagation_path": record["propagation_path"],
    })
}

/// `actual` against the expected file, or rewrites it under `FAULTLINE_BLESS`.
fn compare(expected_path: &Path, actual: &str) -> Result<(), String> {
    if std::env::var_os("FAULTLINE_BLESS").is_some() {
        std::fs::write(expected_path, actual).unwrap();
        return Ok(());
    }
    let expected = std::fs::read_to_string(expected_path).unwrap_or_default();
    if actual != expected {
        return Err(format!(
            "{} differs (FAULTLINE_BLESS=1 rewrites it)\n--- expected\n{expected}--- actual\n{actual}",
            expected_path.display()
        ));
    }
    Ok(())
}

fn run_case(pipeline: &Path, case: &Path) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let result = faultline()
        .args(["run", "--pipeline"])
        .arg(pipeline)
        .arg("--input")
        .arg(case.join("input.jsonl"))
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    if !result.status.success() {
        return Err(String::from_utf8_lossy(&result.stderr).into_owned());
    }
    for f in ["deadletter.jsonl", "late.jsonl"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        if !text.is_empty() {
            return Err(format!("{f} is not empty:\n{text}"));
        }
    }
    let actual: String = read_lines(&out.join("alerts.jsonl"))
        .iter()
        .map(|a| format!("{}\n", projection(a)))
        .collect();
    compare(&case.join("expected.jsonl"), &actual)?;
    let incidents: String = last_incident_records(&out.join("incidents.jsonl"))
        .iter()
        .map(|r| format!("{}\n", incident_projection(r)))
        .collect();
    compare(&case.join("expected_incidents.jsonl"), &incidents)
}

#[test]
fn shipped_rules_pass_their_data_tests() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for pipeline in std::fs::read_dir(repo().join("pipelines")).unwrap() {
        let pipeline = pipeline.unwrap().path();
        let Ok(entries) = std::fs::read_dir(pipeline.join("tests")) else {
            continue;
        };
        let mut dirs: Vec<_> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for case in dirs {
            cases += 1;
            if let Err(e) = run_case(&pipeline, &case) {
                failures.push(format!("{}: {e}", case.display()));
            }
        }
    }
    assert!(cases >= 7, "found only {cases} rule test cases");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test]
async fn every_shipped_rule_and_detector_has_a_case_that_fires_and_resolves_it() {
    let dir = repo().join("pipelines/inference");
    let loaded = faultline::load::load(&dir).await.unwrap();
    let ids = loaded
        .rules
        .iter()
        .map(|r| r.id().to_string())
        .chain(loaded.sources.iter().map(|q| q.id.clone()));
    for id in ids {
        let case = dir.join("tests").join(&id).join("expected.jsonl");
        let expected = read_lines(&case);
        for status in ["firing", "resolved"] {
            assert!(
                expected
                    .iter()
                    .any(|a| a["rule_id"] == id.as_str() && a["status"] == status),
                "{} has no {status} {id} alert",
                case.display()
            );
        }
    }
    let healthy =
        std::fs::read_to_string(dir.join("tests/healthy_traffic/expected.jsonl")).unwrap();
    assert_eq!(healthy, "", "healthy traffic fires nothing");
}
