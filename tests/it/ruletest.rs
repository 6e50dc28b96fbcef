//! `faultline test`: the shipped rule tests pass (and their JUnit report validates against
//! the Ant JUnit XSD), deliberately wrong expectations fail with a readable diff (a test of
//! the tester), promtool's series notation runs end to end, bad files are refused.

use std::path::PathBuf;

use crate::common::*;

/// Every rule-test file shipped with a pipeline (`pipelines/*/tests/*.yaml`), relative to
/// the repository.
fn shipped_test_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for pipeline in std::fs::read_dir(repo().join("pipelines")).unwrap() {
        let tests = pipeline.unwrap().path().join("tests");
        let Ok(entries) = std::fs::read_dir(&tests) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p.strip_prefix(repo()).unwrap().to_path_buf());
            }
        }
    }
    files.sort();
    files
}

/// The report validates against Apache Ant's JUnit schema (`scripts/junit-validate`).
fn assert_junit_valid(report: &std::path::Path) {
    let check = std::process::Command::new(repo().join("scripts/junit-validate"))
        .arg(report)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

fn test_cmd() -> std::process::Command {
    let mut c = faultline();
    c.current_dir(repo()).arg("test");
    c
}

#[test]
fn the_shipped_rule_tests_pass_and_their_junit_report_validates() {
    let files = shipped_test_files();
    assert!(files.len() >= 2, "{files:?}");
    let tmp = tempfile::tempdir().unwrap();
    let junit = tmp.path().join("junit.xml");
    let out = test_cmd()
        .args(&files)
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("SUCCESS: "), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testsuite ").count(), files.len());
    assert!(!xml.contains("<failure"), "{xml}");
    assert_junit_valid(&junit);
}

#[test]
fn wrong_expectations_fail_with_a_readable_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let junit = tmp.path().join("junit.xml");
    let out = test_cmd()
        .args(["tests/ruletest/wrong.yaml", "--junit"])
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let expected_path = repo().join("tests/ruletest/wrong.expected");
    let got = String::from_utf8_lossy(&out.stdout);
    if std::env::var_os("FAULTLINE_BLESS").is_some() {
        std::fs::write(&expected_path, got.as_bytes()).unwrap();
    }
    assert_eq!(got, std::fs::read_to_string(&expected_path).unwrap());
    // The report carries both failures and validates too.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("tests=\"3\" failures=\"2\" errors=\"0\""),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<failure type=\"expectation\" message=\"alertname SeriesAtLeast30 at eval_time 5m:\">"
        ),
        "{xml}"
    );
    assert_junit_valid(&junit);

    // --run selects by name: only the passing test runs.
    let out = test_cmd()
        .args(["tests/ruletest/wrong.yaml", "--run", "^pass"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout,
        "ok tests/ruletest/wrong.yaml: 1 tests\nSUCCESS: 1 tests passed in 1 files\n"
    );
}

#[test]
fn promtool_notation_runs_end_to_end() {
    let out = test_cmd()
        .arg("tests/ruletest/promtool.yaml")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.starts_with("ok tests/ruletest/promtool.yaml: 2 tests\n"),
        "{stdout}"
    );
}

#[test]
fn unusable_files_are_errors_naming_the_place() {
    let tmp = tempfile::tempdir().unwrap();
    let interval = tmp.path().join("interval.yaml");
    std::fs::write(
        &interval,
        format!(
            "rule_files: [{}]\nevaluation_interval: 30s\ntests: []\n",
            repo()
                .join("tests/ruletest/rules/series_at_least_30.sql")
                .display()
        ),
    )
    .unwrap();
    let out = test_cmd()
        .arg("tests/ruletest/unknown_key.yaml")
        .arg(&interval)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "ERROR tests/ruletest/unknown_key.yaml:\n    tests/ruletest/unknown_key.yaml: \
             tests[0].input_series[0]: unknown field `valeus`, expected `series` or `values` \
             at line 6 column 9\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("evaluation_interval 30s differs from the pipeline's window slide 1m"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("FAILED: 0 of 0 tests failed, 2 of 2 files unusable\n"),
        "{stdout}"
    );
}
