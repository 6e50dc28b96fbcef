//! The first hour of a new user: `--help` as snapshots (`tests/cli/*.txt`,
//! `FAULTLINE_BLESS=1` rewrites them), each bad input answered once with its place and a
//! hint and the documented exit status, the input forms (directories, gzip, stdin), the
//! human output, `faultline alerts`, completions, the man page and `--version`.

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use crate::common::*;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Compares `got` with the snapshot `tests/cli/NAME`, or rewrites it under FAULTLINE_BLESS.
fn snapshot(name: &str, got: &str) {
    let path = repo().join("tests/cli").join(name);
    if std::env::var_os("FAULTLINE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        got,
        expected,
        "{} differs (FAULTLINE_BLESS=1 rewrites it)",
        path.display()
    );
}

#[test]
fn help_texts_are_as_snapshotted() {
    for (args, name) in [
        (&["--help"][..], "help.txt"),
        (&["run", "--help"][..], "run-help.txt"),
        (&["check", "--help"][..], "check-help.txt"),
        (&["alerts", "--help"][..], "alerts-help.txt"),
    ] {
        let out = run_ok(faultline().args(args));
        snapshot(name, &stdout(&out));
    }
}

/// Runs faultline in the repository; (exit status, stdout, stderr).
fn faultline_in_repo(args: &[&str]) -> (i32, String, String) {
    let out = faultline().args(args).current_dir(repo()).output().unwrap();
    (out.status.code().unwrap(), stdout(&out), stderr(&out))
}

#[test]
fn each_bad_input_is_said_once_with_its_place_a_hint_and_exit_status_1() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["run", "--pipeline", "pipelines/inferenc", "--input", "examples/incident.jsonl"],
            "error: pipelines/inferenc/pipeline.toml: No such file or directory (os error 2)\n\
             hint: --pipeline (or `check`) takes a pipeline directory holding pipeline.toml, e.g. pipelines/inference\n",
        ),
        (
            &["run", "--pipeline", "pipelines/inference", "--input", "examples/nope.jsonl"],
            "error: examples/nope.jsonl: No such file or directory (os error 2)\n\
             hint: relative paths are relative to the current directory\n",
        ),
        (
            &["run", "--pipeline", "pipelines/inference"],
            "error: no input: give --input FILE|DIR|- (recorded JSON lines) or --brokers HOST:PORT (a Kafka cluster)\n",
        ),
        (
            &["run", "--pipeline", "pipelines/inference", "--input", "pipelines"],
            "error: pipelines: directory holds no .jsonl, .json or .gz files (subdirectories are read with --recursive)\n",
        ),
        (
            &["templates", "--input", "examples/nope.log"],
            "error: examples/nope.log: No such file or directory (os error 2)\n\
             hint: relative paths are relative to the current directory\n",
        ),
    ];
    for (args, expected) in cases {
        let (code, out, err) = faultline_in_repo(args);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (1, "", expected),
            "{args:?}"
        );
    }
    // A mistyped flag is the user's too (clap's message, exit 1, not clap's default 2).
    let (code, _, err) = faultline_in_repo(&["run", "--inptu", "x"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unexpected argument '--inptu'"), "{err}");
}

#[test]
fn an_unreachable_broker_is_the_environments_exit_status_2() {
    let (code, _, err) = faultline_in_repo(&[
        "run",
        "--pipeline",
        "pipelines/inference",
        "--brokers",
        "127.0.0.1:9",
        "--connect-timeout",
        "1s",
    ]);
    assert_eq!(code, 2, "{err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("error: kafka: no Kafka broker answered at 127.0.0.1:9"),
        "{err}"
    );
}

/// A rule directory with a header error and a SQL error in one file, a SQL syntax error
/// in another, and an empty pipeline.
#[test]
fn check_reports_every_problem_of_every_file_with_sql_positions_in_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p");
    std::fs::create_dir_all(p.join("rules")).unwrap();
    std::fs::write(p.join("pipeline.toml"), "name = \"x\"\n").unwrap();
    std::fs::write(
        p.join("rules/both.sql"),
        "-- severity = \"loud\"\nSELECT count(*) AS value FROM spanz\n",
    )
    .unwrap();
    std::fs::write(
        p.join("rules/syntax.sql"),
        "-- severity = \"info\"\n\nSELECT count(*) AS value\nFROM spans WHERE duration_ms >>> 1\n",
    )
    .unwrap();
    let out = faultline().arg("check").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let rules = p.join("rules");
    let expected = format!(
        "{0}/both.sql:1: invalid rule header: unknown variant `loud`, expected one of `info`, `warning`, `critical`\n\
         {0}/both.sql:2: Error during planning: table 'datafusion.public.spanz' not found\n\
         {0}/syntax.sql:4:32: SQL syntax error: Expected: an expression, found: >\n",
        rules.display()
    );
    assert_eq!(stdout(&out), expected);

    // A pipeline whose rules directory is empty and that has no detectors alerts on nothing.
    for f in ["both.sql", "syntax.sql"] {
        std::fs::remove_file(rules.join(f)).unwrap();
    }
    let out = faultline().arg("check").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!(
            "{}: no rules and no detectors: nothing can raise an alert (rules = [\"rules\"] holds no .sql files)\n",
            p.join("pipeline.toml").display()
        )
    );
}

#[test]
fn an_input_of_only_dead_letters_fails_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.jsonl");
    std::fs::write(&garbage, "not json\n{\"neither\": \"this\"}\n").unwrap();
    let run = |extra: &[&str]| {
        faultline()
            .args([
                "run",
                "--pipeline",
                "pipelines/inference",
                "--format",
                "json",
                "--input",
            ])
            .arg(&garbage)
            .args(extra)
            .current_dir(repo())
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    let last = stderr(&out).lines().last().unwrap().to_string();
    assert_eq!(
        last,
        "error: no input record could be decoded: all 2 messages were dead letters (their \
         reasons are in the log above; --output DIR keeps them in deadletter.jsonl); \
         --allow-bad-input accepts such a run"
    );
    let out = run(&["--allow-bad-input"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Some good input among the bad is a normal run.
    let mixed = tmp.path().join("mixed.jsonl");
    let good = std::fs::read_to_string(repo().join("examples/incident.jsonl")).unwrap();
    std::fs::write(
        &mixed,
        format!("not json\n{}", good.lines().next().unwrap()),
    )
    .unwrap();
    let out = faultline()
        .args(["run", "--pipeline", "pipelines/inference", "--input"])
        .arg(&mixed)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

fn run_json(input_args: &[&str], stdin: Option<&Path>) -> String {
    let mut cmd = faultline();
    cmd.args(["run", "--pipeline", "pipelines/inference"])
        .args(input_args)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(path) = stdin {
        let bytes = std::fs::read(path).unwrap();
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || pipe.write_all(&bytes).unwrap());
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// Gzip and stdin give exactly the JSON lines the plain file gives (stdout is not a
/// terminal here, so JSON is the default).
#[test]
fn gzip_and_stdin_inputs_read_like_the_plain_file() {
    let example = repo().join("examples/incident.jsonl");
    let plain = run_json(&["--input", "examples/incident.jsonl"], None);
    assert!(plain.lines().count() > 20 && plain.starts_with("{\"id\":"));
    let tmp = tempfile::tempdir().unwrap();
    let gz = tmp.path().join("incident.jsonl.gz");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", example.display(), gz.display()))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(run_json(&["--input", gz.to_str().unwrap()], None), plain);
    assert_eq!(run_json(&["--input", "-"], Some(&example)), plain);
    // A directory with the file in a subdirectory: only --recursive finds it.
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::copy(&example, dir.join("sub/incident.jsonl")).unwrap();
    let (code, _, err) = faultline_in_repo(&[
        "run",
        "--pipeline",
        "pipelines/inference",
        "--input",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        run_json(&["--input", dir.to_str().unwrap(), "--recursive"], None),
        plain
    );
}

/// `--format human`: a line per notification, resends marked, a summary table by rule.
#[test]
fn human_output_has_a_line_per_notification_and_a_summary() {
    let out = run_ok(
        faultline()
            .args([
                "run",
                "--pipeline",
                "pipelines/inference",
                "--input",
                "examples/incident.jsonl",
                "--format",
                "human",
            ])
            .current_dir(repo()),
    );
    let text = stdout(&out);
    let json = run_json(&["--input", "examples/incident.jsonl"], None);
    let notifications = json.lines().filter(|l| l.contains("\"rule_id\"")).count();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("2026-11-01 "))
        .collect();
    assert_eq!(lines.len(), notifications);
    assert_eq!(lines.iter().filter(|l| l.contains(" resent ")).count(), 4);
    assert!(!text.contains('\u{1b}'), "no colour off a terminal");
    assert!(
        text.contains("request_latency_p95    RequestLatencyP95High       1       0         1\n"),
        "{text}"
    );
    assert!(
        text.contains("records 10623  messages 496  dead letters 0  late records 0  windows 20"),
        "{text}"
    );
}

#[test]
fn alerts_prints_and_filters_a_run_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    run_ok(
        faultline()
            .args([
                "run",
                "--pipeline",
                "pipelines/inference",
                "--input",
                "examples/incident.jsonl",
                "--output",
            ])
            .arg(&out_dir)
            .current_dir(repo()),
    );
    let alerts = |args: &[&str]| {
        let out = run_ok(faultline().arg("alerts").arg(&out_dir).args(args));
        stdout(&out)
    };
    let all = alerts(&[]);
    let file = std::fs::read_to_string(out_dir.join("alerts.jsonl")).unwrap();
    assert_eq!(all.lines().count(), file.lines().count());
    let critical_firing = alerts(&["--severity", "critical", "--status", "firing"]);
    assert!(critical_firing.lines().count() >= 3);
    assert!(critical_firing
        .lines()
        .all(|l| l.contains(" critical ") && !l.contains("RESOLVED")));
    let one = alerts(&[
        "--alertname",
        "RequestErrorRateHigh",
        "--label",
        "service=llm-gateway",
        "--since",
        "2026-11-01T12:10:00Z",
        "--format",
        "json",
    ]);
    // The resolution at 12:10, the second episode at 12:14 and its resolution at 12:15.
    assert_eq!(one.lines().count(), 3, "{one}");
    assert!(one.lines().all(|l| file.lines().any(|f| f == l)));
    let none = alerts(&["--until", "2026-11-01T12:00:00Z"]);
    assert_eq!(none, "");
    // Not an alert file: said with its place.
    let out = faultline()
        .args(["alerts"])
        .arg(repo().join("examples/incident.jsonl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("incident.jsonl:1: not an alert notification"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn version_completions_and_man_page_come_from_the_command_line_definitions() {
    let version = stdout(&run_ok(faultline().arg("--version")));
    let rev = version
        .strip_prefix(&format!("faultline {} (git ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(")\n"))
        .unwrap_or_else(|| panic!("{version}"));
    assert!(
        rev == "unknown" || (rev.len() == 12 && rev.chars().all(|c| c.is_ascii_hexdigit())),
        "{version}"
    );
    let bash = stdout(&run_ok(faultline().args(["completions", "bash"])));
    assert!(bash.contains("_faultline()") && bash.contains("--allow-bad-input"));
    let zsh = stdout(&run_ok(faultline().args(["completions", "zsh"])));
    assert!(zsh.starts_with("#compdef faultline"));
    let man = stdout(&run_ok(faultline().arg("man")));
    assert!(
        man.starts_with(".ie ") || man.starts_with(".TH"),
        "{}",
        &man[..80]
    );
    assert!(man.contains(".TH faultline 1") && man.contains("alerts"));
}

#[test]
fn json_logs_are_one_object_per_line_with_the_events_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (code, _, err) = faultline_in_repo(&[
        "run",
        "--log-format",
        "json",
        "--pipeline",
        "pipelines/inference",
        "--input",
        "examples/incident.jsonl",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let done = lines
        .iter()
        .find(|l| l["fields"]["message"] == "Finished reading input.")
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(done["level"], "INFO");
    assert_eq!(done["fields"]["messages"], 496, "{done}");
}
