//! `faultline templates` and the log-cleaning columns in the pipeline.

use std::path::Path;
use std::time::Duration;

use crate::common::*;

fn templates(input: &Path, output: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut cmd = faultline();
    cmd.arg("templates")
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output);
    cmd.args(extra);
    run_ok(&mut cmd);
    read_lines(output)
}

/// A pipeline directory under `dir` whose only rule is `sql` (header included), plus `extra`.
fn pipeline_with_rule(dir: &Path, sql: &str, extra: &str) -> std::path::PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("rule.sql"), sql).unwrap();
    pipeline_dir_with_rules(dir, &rules, extra)
}

/// Runs `pipeline` on `input` (written to `dir/name.jsonl`) and returns its alerts; nothing
/// may be late.
fn run_on(pipeline: &Path, dir: &Path, name: &str, input: &str) -> Vec<serde_json::Value> {
    let file = dir.join(format!("{name}.jsonl"));
    std::fs::write(&file, input).unwrap();
    let out = dir.join(name);
    run_ok(
        faultline()
            .args(["run", "--pipeline"])
            .arg(pipeline)
            .arg("--input")
            .arg(&file)
            .arg("--output")
            .arg(&out),
    );
    assert_eq!(std::fs::read_to_string(out.join("late.jsonl")).unwrap(), "");
    read_lines(&out.join("alerts.jsonl"))
}

#[test]
fn one_object_per_mined_line_in_order_with_params_and_blank_lines_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("messages.txt");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"Received block blk_-123 of size 67108864 from /10.0.0.1\r\n");
    bytes.extend_from_slice(b"\n");
    bytes.extend_from_slice(b"odd \xff bytes 42\n");
    bytes.extend_from_slice(b"Received block blk_77 of size 1024 from /10.0.0.2");
    std::fs::write(&input, bytes).unwrap();
    let output = dir.path().join("out.jsonl");
    let run = run_ok(
        faultline()
            .args(["templates", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&output),
    );
    let out = read_lines(&output);
    let numbers: Vec<u64> = out.iter().map(|o| o["line"].as_u64().unwrap()).collect();
    assert_eq!(
        numbers,
        [1, 3, 4],
        "the blank line 2 has no template: {out:?}"
    );
    assert_eq!(
        out[0]["template"],
        "Received block <*> of size <*> from <*>"
    );
    assert_eq!(
        out[0]["params"],
        serde_json::json!(["blk_-123", "67108864", "/10.0.0.1"])
    );
    assert_eq!(out[2]["template_id"], out[0]["template_id"]);
    assert_eq!(out[2]["params"][2], "/10.0.0.2");
    assert_eq!(out[1]["template"], "odd \u{fffd} bytes <*>");
    let id = out[0]["template_id"].as_str().unwrap();
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("4 lines: 3 mined into 2 distinct templates, 1 blank lines skipped"),
        "{stderr}"
    );
}

/// Runs `faultline templates ARGS` with `stdin` piped in; returns stdout and stderr.
fn pipe(args: &[&str], stdin: &str) -> (String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = faultline()
        .arg("templates")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const PIPED: &str =
    "disk /dev/sda1 is 91% full\nworker 3 restarted after 12 ms\ndisk /dev/sdb2 is 97% full\n";

#[test]
fn stdin_to_stdout_round_trips_in_every_format() {
    let (jsonl, _) = pipe(&[], PIPED);
    let rows: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["template"], "disk <*> is <*> full");
    assert_eq!(rows[1]["template"], "worker <*> restarted after <*>");
    assert_eq!(rows[2]["params"], serde_json::json!(["/dev/sdb2", "97%"]));
    assert!(!std::path::Path::new("-").exists(), "no file named `-`");

    let (tsv, _) = pipe(&["--format", "tsv", "--streaming"], PIPED);
    let first: Vec<&str> = tsv.lines().next().unwrap().split('\t').collect();
    assert_eq!(
        first,
        [
            "1",
            rows[0]["template_id"].as_str().unwrap(),
            "disk <*> is <*> full",
            "/dev/sda1",
            "91%"
        ]
    );

    let (summary, stderr) = pipe(&["--format", "summary"], PIPED);
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 4, "{summary}");
    assert!(
        lines[0].trim_start().starts_with("2  "),
        "most frequent first: {summary}"
    );
    assert!(lines[0].ends_with("disk <*> is <*> full"), "{summary}");
    assert!(
        lines[1].ends_with("example: disk /dev/sda1 is 91% full"),
        "{summary}"
    );
    assert!(
        stderr.contains("3 lines: 3 mined into 2 distinct templates"),
        "{stderr}"
    );
}

#[test]
fn raw_lines_give_header_fields_and_templates_without_the_header() {
    let input = "2024-03-01 12:00:00,123 WARN [main] com.example.Pool: pool 7 exhausted\n\
                 2024-03-02 08:30:00,001 ERROR [io-2] com.example.Pool: pool 9 exhausted\n";
    let (out, _) = pipe(&["--raw"], input);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["template"], "pool <*> exhausted");
    assert_eq!(rows[1]["template_id"], rows[0]["template_id"]);
    assert_eq!(rows[1]["fields"]["log.level"], "ERROR");
    assert_eq!(rows[1]["fields"]["log.thread"], "io-2");
    assert_eq!(rows[1]["fields"]["log.time"], "2024-03-02 08:30:00,001");
    assert_eq!(rows[1]["message"], "pool 9 exhausted");
    // Without `--raw` the header is part of the message.
    let (plain, _) = pipe(&[], input);
    assert!(plain.contains("com.example.Pool"), "{plain}");
}

/// The README's example session (`$ cat auth.log`, then the commands and what they print) is
/// what the command prints.
#[test]
fn the_readme_templates_example_is_what_the_command_prints() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme
        .split("$ cat auth.log\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("README has the `$ cat auth.log` example");
    let mut parts = block.split("\n$ ");
    let input = format!("{}\n", parts.next().unwrap());
    for part in parts {
        let (command, expected) = part.split_once('\n').unwrap();
        let args: Vec<&str> = command
            .split(" < ")
            .next()
            .unwrap()
            .split_whitespace()
            .skip(2)
            .collect();
        let (stdout, _) = pipe(&args, &input);
        let got = if command.ends_with("| head -1") {
            stdout.lines().next().unwrap().to_string()
        } else {
            stdout.trim_end().to_string()
        };
        assert_eq!(got, expected, "README: $ {command}");
    }
}

#[test]
fn help_points_to_a_readme_section_that_exists() {
    let out = run_ok(faultline().args(["templates", "--help"]));
    let help = String::from_utf8(out.stdout).unwrap();
    let section = help
        .split("README \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no README section named in:\n{help}"));
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(
        readme
            .lines()
            .any(|l| l.starts_with('#') && l.trim_start_matches('#').trim() == section),
        "README has no heading {section:?}"
    );
}

/// Lines that only generalise after several user names: `user <*>` is learned state.
fn login_lines(users: &[&str], from: u32) -> String {
    users
        .iter()
        .enumerate()
        .map(|(i, u)| format!("session opened for {u} by sshd port {}\n", from + i as u32))
        .collect()
}

#[test]
fn template_ids_are_the_same_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let state_arg = state.to_str().unwrap();
    let first = dir.path().join("first.txt");
    std::fs::write(
        &first,
        login_lines(&["alice", "bob", "carol", "dave", "erin"], 1000),
    )
    .unwrap();
    let before = templates(
        &first,
        &dir.path().join("before.jsonl"),
        &["--state", state_arg, "--streaming"],
    );
    assert_eq!(
        before[4]["template"],
        "session opened for <*> by sshd port <*>"
    );
    assert!(state.exists(), "state saved at the end");

    // After the restart a new user's first line already has the generalised template, id
    // included, because the state says this place holds names.
    let second = dir.path().join("second.txt");
    std::fs::write(&second, login_lines(&["mallory"], 2000)).unwrap();
    let after = templates(
        &second,
        &dir.path().join("after.jsonl"),
        &["--state", state_arg, "--streaming"],
    );
    assert_eq!(after[0]["template"], before[4]["template"]);
    assert_eq!(after[0]["template_id"], before[4]["template_id"]);
    assert_eq!(after[0]["params"][0], "mallory");

    // Without the state the same line is new to the miner: another template, another id.
    let fresh = templates(&second, &dir.path().join("fresh.jsonl"), &["--streaming"]);
    assert_eq!(
        fresh[0]["template"],
        "session opened for mallory by sshd port <*>"
    );
    assert_ne!(fresh[0]["template_id"], before[4]["template_id"]);
}

#[test]
fn a_corrupt_state_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, "{not json").unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "hello 1\n").unwrap();
    let out = faultline()
        .args(["templates", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(dir.path().join("out.jsonl"))
        .arg("--state")
        .arg(&state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("state.json") && stderr.contains("not a template state file"),
        "{stderr}"
    );
}

#[test]
fn a_huge_line_without_newlines_is_read_bounded_noted_and_the_next_line_still_counts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let mut text = "x".repeat(5 * 1024 * 1024);
    text.push_str(" 17\nafter the huge line 42\n");
    std::fs::write(&input, text).unwrap();
    let output = dir.path().join("out.jsonl");
    let run = run_ok(
        faultline()
            .args(["templates", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&output),
    );
    let out = read_lines(&output);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1]["template"], "after the huge line <*>");
    assert!(out[0]["template"].as_str().unwrap().len() <= 8 * 1024);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(
            "note: line 1 is 5242883 bytes; its template is mined from the first 8192 bytes"
        ),
        "{stderr}"
    );
}

/// A rule that reports every log template of a window: the test reads templates off alerts.
const TEMPLATE_RULE: &str =
    "-- id = \"log_templates\"\n-- alert = \"LogTemplate\"\n-- severity = \"info\"\n\
SELECT template_id, template, count(*) AS value FROM logs GROUP BY template_id, template\n";

fn login_records(users: &[&str], minute: i64) -> String {
    let base = 1_793_541_600_000_000_000i64 + minute * 60_000_000_000;
    users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let record = serde_json::json!({
                "signal": "log", "time_unix_nano": base + i as i64 * 1_000_000_000,
                "service": "bastion", "severity": "INFO",
                "body": format!("session opened for {u} by sshd port {}", 1000 + i),
            });
            format!("{record}\n")
        })
        .collect()
}

fn template_labels(alerts: &[serde_json::Value]) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = alerts
        .iter()
        .filter(|a| a["status"] == "firing")
        .map(|a| {
            (
                a["labels"]["template"].as_str().unwrap().to_string(),
                a["labels"]["template_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    labels.sort();
    labels.dedup();
    labels
}

#[test]
fn the_pipeline_keeps_its_templates_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_with_rule(
        dir.path(),
        TEMPLATE_RULE,
        "[logs]\ntemplate_state = \"templates.json\"\n",
    );
    let run =
        |input: &str, name: &str| template_labels(&run_on(&pipeline, dir.path(), name, input));
    let first = run(
        &login_records(&["alice", "bob", "carol", "dave", "erin"], 0),
        "first",
    );
    let generalised = "session opened for <*> by sshd port <*>";
    assert!(first.iter().any(|(t, _)| t == generalised), "{first:?}");
    assert!(
        pipeline.join("templates.json").exists(),
        "state written at the end of the run"
    );

    // The restarted pipeline puts a new user's only line into the learned template, same id.
    let second = run(&login_records(&["mallory"], 10), "second");
    let first_id = &first.iter().find(|(t, _)| t == generalised).unwrap().1;
    assert_eq!(second, [(generalised.to_string(), first_id.clone())]);

    // Without the state file the same input gives the line its own template.
    std::fs::remove_file(pipeline.join("templates.json")).unwrap();
    let fresh = run(&login_records(&["mallory"], 10), "fresh");
    assert_eq!(fresh[0].0, "session opened for mallory by sshd port <*>");
}

#[test]
fn structured_bodies_give_rules_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_with_rule(
        dir.path(),
        "-- id = \"fields\"\n-- alert = \"Fields\"\n-- severity = \"info\"\n\
         SELECT fields['status'] AS status, fields['req.path'] AS path, template, count(*) AS value\n\
         FROM logs GROUP BY fields['status'], fields['req.path'], template\n",
        "",
    );
    let t = 1_793_541_600_000_000_000i64;
    let json_body = serde_json::json!({
        "signal": "log", "time_unix_nano": t, "service": "api", "severity": "ERROR",
        "body": r#"{"level":"error","msg":"upstream timeout after 30s","status":504,"req":{"path":"/v1/chat"}}"#,
    });
    let logfmt_body = serde_json::json!({
        "signal": "log", "time_unix_nano": t + 1, "service": "api", "severity": "ERROR",
        "body": "level=error msg=\"upstream timeout after 31s\" status=504 req.path=/v1/chat",
    });
    // An OTLP log whose body is a key-value list, as SDKs send structured logs.
    let otlp = serde_json::json!({"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeLogs": [{"logRecords": [{"timeUnixNano": (t + 2).to_string(), "severityNumber": 17,
            "body": {"kvlistValue": {"values": [
                {"key": "msg", "value": {"stringValue": "upstream timeout after 32s"}},
                {"key": "status", "value": {"intValue": "504"}},
                {"key": "req", "value": {"kvlistValue": {"values": [
                    {"key": "path", "value": {"stringValue": "/v1/chat"}}]}}}]}}}]}]}]});
    let input = format!("{json_body}\n{logfmt_body}\n{otlp}\n");
    let alerts = run_on(&pipeline, dir.path(), "in", &input);
    let firing: Vec<_> = alerts.iter().filter(|a| a["status"] == "firing").collect();
    assert_eq!(
        firing.len(),
        1,
        "all three bodies agree on fields and template: {alerts:?}"
    );
    let labels = &firing[0]["labels"];
    assert_eq!(labels["status"], "504");
    assert_eq!(labels["path"], "/v1/chat");
    assert_eq!(labels["template"], "upstream timeout after <*>");
    assert_eq!(firing[0]["evidence"]["value"], 3.0);
}

/// On the real broker: a PyTorch OOM traceback collected line by line (one OTLP log record
/// per line, one protobuf export request) is folded, recognised as `cuda_oom`, and the shipped
/// rule alerts for its host and GPU; on SIGTERM the learned templates are saved.
#[tokio::test(flavor = "multi_thread")]
async fn a_traceback_from_kafka_alerts_by_signature_and_templates_are_saved_on_sigterm() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use prost::Message as _;

    use crate::broker::*;

    let topics = Topics::new();
    topics.create().await;
    let tmp = tempfile::tempdir().unwrap();
    let settings = format!(
        "{}\n[logs]\ntemplate_state = \"templates.json\"\n",
        window("1m")
    );
    let pipeline = pipeline_dir_with_rules(
        tmp.path(),
        &repo().join("pipelines/inference/rules"),
        &topics.pipeline_toml(&settings),
    );
    let t0 = minute_ago(10);
    let lines = [
        "Traceback (most recent call last):",
        "  File \"/app/serve.py\", line 88, in generate",
        "    out = model.generate(**batch)",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 3 has a total capacity of 79.15 GiB of which 1.05 GiB is free.",
    ];
    let records: Vec<serde_json::Value> = lines
        .iter()
        .enumerate()
        .map(|(i, body)| {
            serde_json::json!({"timeUnixNano": (t0 + i as i64 * 1_000_000).to_string(),
                "severityNumber": 17, "body": {"stringValue": body}})
        })
        .collect();
    let request = serde_json::json!({"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "vllm"}},
        {"key": "host.name", "value": {"stringValue": "gpu-node-9"}},
        {"key": "process.pid", "value": {"intValue": "777"}}]},
        "scopeLogs": [{"logRecords": records}]}]});
    let request: ExportLogsServiceRequest = serde_json::from_value(request).unwrap();
    produce(&producer(), &topics.logs, &request.encode_to_vec()).await;

    let mut fl = Instance::start(&pipeline, &unique("g"), tmp.path().join("faultline.log"));
    let alerts = read_topic(&topics.alerts, 1, Duration::from_secs(60));
    assert_eq!(alerts.len(), 1, "log:\n{}", fl.log_text());
    let alert = &alerts[0].1;
    assert_eq!(alert["labels"]["alertname"], "CudaOutOfMemory");
    assert_eq!(alert["labels"]["host"], "gpu-node-9");
    assert_eq!(alert["labels"]["device"], "3");
    // One folded event, not four records.
    assert_eq!(alert["evidence"]["value"], 1.0);
    assert_eq!(alert["evidence"]["values"]["requested_gib"], 2.0);
    assert!(fl.stop().success(), "{}", fl.log_text());
    let state = std::fs::read_to_string(pipeline.join("templates.json")).unwrap();
    assert!(
        state
            .contains("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate <*>. GPU <*>"),
        "{state}"
    );
}

#[test]
fn a_traceback_split_over_input_messages_is_folded_per_emitter() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_with_rule(
        dir.path(),
        "-- id = \"events\"\n-- alert = \"Events\"\n-- severity = \"info\"\n\
         SELECT host, count(*) AS value, max(signature) AS evidence_signature,\n\
                max(signature_fields['expected']) AS evidence_expected,\n\
                max(signature_fields['actual']) AS evidence_actual\n\
         FROM logs GROUP BY host\n",
        "",
    );
    let traceback = [
        "Traceback (most recent call last):",
        "  File \"/app/train.py\", line 41, in <module>",
        "    out = model(images)",
        "  File \"/usr/lib/python3.11/site-packages/torch/nn/modules/conv.py\", line 549, in _conv_forward",
        "    return F.conv2d(input, weight, bias, self.stride, self.padding)",
        "RuntimeError: Given groups=1, weight of size [16, 3, 3, 3], expected input[32, 6, 64, 64] to have 3 channels, but got 6 channels instead",
    ];
    let t0 = 1_793_541_600_000_000_000i64;
    let mut lines = String::new();
    for (i, body) in traceback.iter().enumerate() {
        // One input line (message) per traceback line, another emitter's line in between.
        let record = serde_json::json!({"signal": "log", "time_unix_nano": t0 + i as i64 * 1_000_000,
            "service": "trainer", "host": "h1", "severity": "ERROR", "body": body});
        let other = serde_json::json!({"signal": "log", "time_unix_nano": t0 + i as i64 * 1_000_000 + 1,
            "service": "trainer", "host": "h2", "severity": "INFO", "body": format!("step {i} ok")});
        lines.push_str(&format!("{record}\n{other}\n"));
    }
    let alerts = run_on(&pipeline, dir.path(), "in", &lines);
    let by_host = |host: &str| {
        alerts
            .iter()
            .find(|a| a["status"] == "firing" && a["labels"]["host"] == host)
            .unwrap_or_else(|| panic!("no alert for {host}: {alerts:?}"))
    };
    let h1 = by_host("h1");
    assert_eq!(h1["evidence"]["value"], 1.0, "six lines, one event: {h1}");
    assert_eq!(h1["evidence"]["values"]["signature"], "shape_mismatch");
    assert_eq!(h1["evidence"]["values"]["expected"], "3");
    assert_eq!(h1["evidence"]["values"]["actual"], "6");
    assert_eq!(
        by_host("h2")["evidence"]["value"],
        6.0,
        "the other emitter's lines stay apart"
    );
}
