use std::path::Path;

use super::*;

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const RULE: &str = "-- severity = \"warning\"\nSELECT 1.0 AS value\n";

#[tokio::test]
async fn check_reports_errors_of_every_kind_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "pipeline.toml",
        "name = \"p\"\n\n[[detectors]]\nid = \"d\"\nkind = \"consecutive\"\nthreshold = 1\nquery = \"SELECT nope FROM logs\"\n",
    );
    write(
        d,
        "rules/a.sql",
        "-- severity = \"warning\"\n-- window = \"90s\"\nSELECT 1.0 AS value\n",
    );
    write(
        d,
        "rules/b.sql",
        "-- severity = \"loud\"\nSELECT 1.0 AS value\n",
    );
    write(d, "rules/c.sql", RULE);
    let errors: Vec<String> = check(d)
        .await
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    let toml = d.join("pipeline.toml").display().to_string();
    assert!(
        errors.iter().any(|e| e.starts_with(&format!("{toml}:3: "))),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("a.sql:2: window 1m 30s must be a whole multiple")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("b.sql:1: invalid rule header")),
        "{errors:?}"
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
}

#[tokio::test]
async fn load_gives_rules_sources_and_a_fresh_miner() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "pipeline.toml",
        "name = \"p\"\n[logs]\ntemplate_state = \"state.json\"\n\n[[detectors]]\nid = \"d\"\nkind = \"silence\"\nquery = \"SELECT 1.0 AS value\"\n",
    );
    write(d, "rules/sub/_defaults.toml", "severity = \"critical\"\n");
    write(d, "rules/sub/x.sql", "SELECT 2.0 AS value\n");
    write(d, "rules/c.sql", RULE);
    let loaded = load(d).await.unwrap();
    assert_eq!(loaded.rules.len(), 2);
    assert_eq!(loaded.rules[1].spec.group, "sub");
    assert_eq!(loaded.rules[1].spec.severity.as_str(), "critical");
    assert_eq!(loaded.sources.len(), 1);
    assert_eq!(loaded.sources[0].line, 5);
    assert_eq!(loaded.miner.shapes(), 0);
    // A state file that is not one is an error naming it, not a silent fresh start.
    write(d, "state.json", "{not json");
    let err = load(d).await.unwrap_err().to_string();
    assert!(
        err.contains("state.json: not a template state file"),
        "{err}"
    );
}

#[test]
fn header_lines_are_one_based() {
    let text = "a = 1\n[[detectors]]\nid = 1\n  [[detectors]]  \n";
    assert_eq!(header_lines(text, "[[detectors]]"), vec![2, 4]);
}

#[test]
fn a_changed_rule_changes_the_stamp() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "rules/c.sql", RULE);
    let paths = [PathBuf::from("rules")];
    let before = rules_stamp(d, &paths);
    write(
        d,
        "rules/c.sql",
        "-- severity = \"critical\"\nSELECT 1.0 AS value\n",
    );
    assert_ne!(rules_stamp(d, &paths), before);
}
