//! The training fault-injection suite (`tests/training/`, made by `scripts/gen-training` from
//! the real PyTorch/NCCL/Megatron log formats): each case runs through the default pipeline;
//! a faulty job must open one incident whose top suspect is the culprit rank, a healthy or
//! finished job none.

use crate::common::*;

/// The culprit accuracy the suite keeps (13 of 13 today, one of them a two-rank desync
/// whose tie GPU noise broke; the target is 0.95, see BENCHMARKS.md), and no miss
/// may be a confident answer: it must abstain (`unknown`).
const MIN_ACCURACY: f64 = 0.9;

fn seconds(rfc3339: &str) -> f64 {
    let t: chrono::DateTime<chrono::Utc> = rfc3339.parse().unwrap();
    t.timestamp_nanos_opt().unwrap() as f64 / 1e9
}

/// Runs every case of a suite made by `scripts/gen-training` and judges it; panics on a
/// healthy job with an incident or a confident wrong culprit. -> (right, faulty, report).
fn judge_suite(dir: &std::path::Path) -> (usize, usize, String) {
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("labels.json")).unwrap()).unwrap();
    let cases = labels["cases"].as_array().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (mut faulty, mut right, mut report) = (0, 0, String::new());
    for case in cases {
        let name = case["case"].as_str().unwrap();
        let out = tmp.path().join(name);
        let result = faultline()
            .args(["run", "--pipeline"])
            .arg(repo().join("pipelines/inference"))
            .arg("--input")
            .arg(dir.join(name).join("input.jsonl"))
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        let found = last_incident_records(&out.join("incidents.jsonl"));
        let Some(culprit) = case["culprit"].as_str() else {
            assert!(found.is_empty(), "{name}: a healthy job opened {found:#?}");
            continue;
        };
        faulty += 1;
        let inject = seconds(case["inject_time"].as_str().unwrap());
        let first = found
            .iter()
            .find(|r| seconds(r["opened_at"].as_str().unwrap()) >= inject);
        let top = first.and_then(|r| r["suspects"][0]["entity"].as_str());
        let ok = top == Some(culprit);
        right += usize::from(ok);
        if ok {
            // The culprit is placed on its host and GPU (NCCL's Init COMPLETE lines).
            let incident = first.unwrap();
            assert_valid("incident.json", incident);
            let placement = &incident["suspects"][0]["placement"];
            let rank: u64 = culprit.rsplit_once("/rank").unwrap().1.parse().unwrap();
            let per_node = case["ranks_per_node"].as_u64().unwrap();
            let host = format!("node-{}", rank / per_node);
            assert_eq!(placement["host"], host.as_str(), "{name}: {placement}");
            assert_eq!(
                placement["cuda_device"],
                rank % per_node,
                "{name}: {placement}"
            );
        }
        if ok && case["fault"] == "gpu_throttle" {
            // NVML evidence: the culprit's own GPU runs hot or slow against its peers'.
            let methods = &first.unwrap()["suspects"][0]["methods"];
            let gpu = ["gpu_clock", "gpu_temperature"].map(|m| methods[m].as_f64().unwrap_or(0.0));
            assert!(gpu.iter().any(|d| *d >= 3.0), "{name}: {methods}");
        }
        if ok && case["xid"].is_u64() {
            // The node's kernel log named the culprit's GPU (Xid), by its PCI address.
            let methods = &first.unwrap()["suspects"][0]["methods"];
            assert!(methods["gpu_xid"].as_f64() > Some(0.0), "{name}: {methods}");
        }
        if let (true, Some(link)) = (ok, case["link"].as_str()) {
            // A slow link: the incident names it (`<service>/rank<A>-rank<B>` in the labels).
            let named = first.map(|r| &r["blocking_link"]).and_then(|l| {
                let to = l["to"].as_str()?.rsplit_once('/')?.1;
                Some(format!("{}-{to}", l["from"].as_str()?))
            });
            assert_eq!(named.as_deref(), Some(link), "{name}: the blocking link");
        }
        let verdict = first.map(|r| r["verdict"].clone());
        assert!(
            ok || verdict == Some(serde_json::json!("unknown")),
            "{name}: a confident wrong culprit {top:?} ({verdict:?}) instead of {culprit}"
        );
        report.push_str(&format!(
            "{name}: culprit {culprit}, top suspect {top:?}, opened {}s after the fault{}\n",
            first.map_or(f64::NAN, |r| seconds(r["opened_at"].as_str().unwrap())
                - inject),
            if ok { "" } else { "  <- wrong" }
        ));
    }
    (right, faulty, report)
}

#[test]
fn the_training_suite_names_the_culprit_rank() {
    let (right, faulty, report) = judge_suite(&repo().join("tests/training"));
    let accuracy = right as f64 / faulty as f64;
    println!("{report}culprit AC@1 {right}/{faulty} = {accuracy:.3}");
    assert!(faulty >= 10, "the suite has {faulty} faulty cases");
    assert!(
        accuracy >= MIN_ACCURACY,
        "culprit AC@1 {accuracy:.3} < {MIN_ACCURACY}\n{report}"
    );
}

/// Cases drawn at random by the generator (fault, layout, topology, size, culprit,
/// injection time), none of which the ranking was tuned on.
#[test]
fn random_training_faults_are_named_too() {
    let tmp = tempfile::tempdir().unwrap();
    let made = std::process::Command::new(repo().join("scripts/gen-training"))
        .args(["--random", "16", "--seed", "3", "--output"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (right, faulty, report) = judge_suite(tmp.path());
    println!("{report}culprit AC@1 {right}/{faulty}");
    assert_eq!(faulty, 16);
    assert!(
        right >= 15,
        "culprit AC@1 {right}/{faulty} < 15/16\n{report}"
    );
}
