//! Invalid pipelines as data: each directory of `tests/invalid/` is a pipeline with
//! something wrong and an `expected.txt` with exactly what `faultline check` prints. The same
//! pipeline must make `faultline run` fail before reading any input, with the first of those
//! errors: `check` and `run` validate through one path (`load::check`).
//! `FAULTLINE_BLESS=1` rewrites the expected files.

use crate::common::*;

#[test]
fn invalid_pipelines_fail_check_and_run_with_the_expected_errors() {
    let root = repo().join("tests/invalid");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "found only {} cases", cases.len());
    let empty = tempfile::NamedTempFile::new().unwrap();
    let bless = std::env::var_os("FAULTLINE_BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let check = faultline()
            .args(["check", "."])
            .current_dir(case)
            .output()
            .unwrap();
        let got = String::from_utf8(check.stdout).unwrap();
        let expected_path = case.join("expected.txt");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        if check.status.code() != Some(1) || got != expected || got.is_empty() {
            failures.push(format!(
                "{name}: check exited {:?}\n--- expected\n{expected}--- got\n{got}",
                check.status.code()
            ));
            continue;
        }
        let run = faultline()
            .args(["run", "--pipeline", ".", "--input"])
            .arg(empty.path())
            .current_dir(case)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        let first = expected.lines().next().unwrap();
        if run.status.success() || !stderr.contains(&format!("error: {first}")) {
            failures.push(format!(
                "{name}: run must fail with `{first}`, got {}:\n{stderr}",
                run.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The README's `faultline check` example is this data's case, verbatim.
#[test]
fn the_readme_check_example_is_what_check_prints() {
    let case = "tests/invalid/every_error_at_once";
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let shown: String = readme
        .lines()
        .skip_while(|l| *l != format!("$ faultline check {case}"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    let out = faultline()
        .args(["check", case])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        !shown.is_empty(),
        "README shows no `faultline check {case}`"
    );
    assert_eq!(shown, String::from_utf8(out.stdout).unwrap());
}
