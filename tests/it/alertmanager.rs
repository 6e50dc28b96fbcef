//! Forwarding to a real Prometheus Alertmanager (Debian's package, started on loopback by
//! `scripts/alertmanager`; `scripts/test` sets FAULTLINE_TEST_ALERTMANAGER).

use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::*;

fn alertmanager() -> String {
    std::env::var("FAULTLINE_TEST_ALERTMANAGER").expect(
        "FAULTLINE_TEST_ALERTMANAGER is not set: run the tests with scripts/test, which starts \
         Alertmanager (scripts/alertmanager start) and sets it",
    )
}

/// Active alerts Alertmanager holds for `service`.
fn active_alerts(service: &str) -> Vec<serde_json::Value> {
    let url = format!("{}/api/v2/alerts", alertmanager());
    let body = ureq::get(&url)
        .query("filter", format!("service=\"{service}\""))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

fn wait_for(service: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = active_alerts(service);
        if got.len() == n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn firing_then_resolved_alerts_reach_a_real_alertmanager() {
    let tmp = tempfile::tempdir().unwrap();
    let service = unique("svc-am");
    let pipeline = pipeline_dir(
        tmp.path(),
        &format!("[alertmanager]\nurl = \"{}\"\n", alertmanager()),
    );
    // Slow requests two minutes ago: firing, valid for minutes to come.
    let t0 = minute_ago(2);
    let slow: Vec<String> = (0..10)
        .map(|i| flat_span(&service, i, t0 + i as i64 * 1_000_000_000, 900).to_string())
        .collect();
    let input = tmp.path().join("slow.jsonl");
    std::fs::write(&input, slow.join("\n")).unwrap();
    run_ok(
        faultline()
            .args(["run", "--pipeline"])
            .arg(&pipeline)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(tmp.path().join("out1")),
    );
    let active = wait_for(&service, 1);
    assert_eq!(active.len(), 1, "{active:?}");
    let a = &active[0];
    assert_eq!(a["labels"]["alertname"], "RequestLatencyP95High");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["status"]["state"], "active");
    assert!(a["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains(&service));

    // The next minute is fast: the resolution reaches Alertmanager too.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    for i in 0..10 {
        let s = flat_span(
            &service,
            100 + i,
            t0 + 60_000_000_000 + i as i64 * 1_000_000_000,
            20,
        );
        writeln!(f).unwrap();
        write!(f, "{s}").unwrap();
    }
    drop(f);
    run_ok(
        faultline()
            .args(["run", "--pipeline"])
            .arg(&pipeline)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(tmp.path().join("out2")),
    );
    let resolved = read_lines(&tmp.path().join("out2/alerts.jsonl"));
    assert_eq!(resolved.last().unwrap()["status"], "resolved");
    assert!(
        wait_for(&service, 0).is_empty(),
        "resolved alerts are no longer active"
    );
}
