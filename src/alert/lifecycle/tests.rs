//! Lifecycle cases, one window per minute: pending that never fires, `for`,
//! `keep_firing_for`, flapping, resolve, hysteresis, resends and inhibition.

use std::path::Path;

use super::*;
use crate::rules::{parse_rule, Rule};

const M: i64 = 60_000_000_000;

fn rule(header: &str) -> Arc<Rule> {
    Arc::new(
        parse_rule(
            Path::new("rules/r.sql"),
            &format!("{header}\nSELECT 1 AS value"),
        )
        .unwrap(),
    )
}

fn minute(m: i64) -> Window {
    Window {
        start: EventTime(m * M),
        end: EventTime((m + 1) * M),
    }
}

fn finding(rule: &Arc<Rule>, host: &str, value: f64) -> Finding {
    Finding {
        spec: rule.spec.clone(),
        verdict: rule.verdict(value),
        labels: BTreeMap::from([("host".to_string(), host.to_string())]),
        value,
        evidence: BTreeMap::new(),
        trace_ids: Vec::new(),
    }
}

/// Feeds one value per minute (`None`: no row) and returns `(minute, status, startsAt
/// minute, endsAt minute)` of each notification.
fn run(
    rule: &Arc<Rule>,
    lc: &mut Lifecycle,
    values: &[Option<f64>],
) -> Vec<(i64, &'static str, i64, i64)> {
    let mut out = Vec::new();
    for (m, v) in values.iter().enumerate() {
        let findings = v.map(|v| vec![finding(rule, "h1", v)]).unwrap_or_default();
        for a in lc.observe(minute(m as i64), findings) {
            let at = |s: &str| {
                chrono::DateTime::parse_from_rfc3339(s)
                    .unwrap()
                    .timestamp_nanos_opt()
                    .unwrap()
                    / M
            };
            let status = match a.status {
                AlertStatus::Firing => "firing",
                AlertStatus::Resolved => "resolved",
            };
            out.push((m as i64, status, at(&a.starts_at), at(&a.ends_at)));
        }
    }
    out
}

fn lifecycle() -> Lifecycle {
    Lifecycle::new("p", Duration::from_secs(3600), Vec::new())
}

#[test]
fn without_for_a_row_fires_at_once_and_resolves_when_it_is_gone() {
    let r = rule("-- severity = \"critical\"");
    let mut lc = lifecycle();
    let got = run(&r, &mut lc, &[Some(1.0), Some(1.0), None, None]);
    assert_eq!(got, vec![(0, "firing", 0, 62), (2, "resolved", 0, 2)]);
}

#[test]
fn pending_that_never_fires_sends_nothing() {
    let r = rule("-- severity = \"critical\"\n-- for = \"3m\"");
    let mut lc = lifecycle();
    assert!(run(&r, &mut lc, &[Some(1.0), Some(1.0), None, Some(1.0), None]).is_empty());
    assert_eq!(lc.alerts.len(), 0);
}

#[test]
fn for_fires_once_the_condition_held_long_enough() {
    let r = rule("-- severity = \"critical\"\n-- for = \"3m\"");
    let mut lc = lifecycle();
    let got = run(
        &r,
        &mut lc,
        &[Some(1.0), Some(1.0), Some(1.0), Some(1.0), None],
    );
    // Pending since 0; at the end of minute 2 it has held 3 minutes: fired at 3.
    assert_eq!(got, vec![(2, "firing", 3, 64), (4, "resolved", 3, 4)]);
}

#[test]
fn keep_firing_for_rides_out_a_short_gap_and_then_resolves() {
    let r = rule("-- severity = \"critical\"\n-- keep_firing_for = \"2m\"");
    let mut lc = lifecycle();
    let got = run(
        &r,
        &mut lc,
        &[Some(1.0), None, Some(1.0), None, None, None, None],
    );
    // The gap at minute 1 is bridged; after minute 2 it stays firing until 3 + 2 = 5.
    assert_eq!(got, vec![(0, "firing", 0, 62), (5, "resolved", 0, 5)]);
}

#[test]
fn flapping_produces_one_notification_per_state_change() {
    let r = rule("-- severity = \"warning\"");
    let mut lc = lifecycle();
    let got = run(&r, &mut lc, &[Some(1.0), None, Some(1.0), None]);
    assert_eq!(
        got,
        vec![
            (0, "firing", 0, 62),
            (1, "resolved", 0, 1),
            (2, "firing", 2, 64),
            (3, "resolved", 2, 3)
        ]
    );
}

#[test]
fn hysteresis_fires_above_95_and_clears_below_85() {
    let r = rule("-- severity = \"warning\"\n-- fire = \"value > 95\"\n-- clear = \"value < 85\"");
    let mut lc = lifecycle();
    let values = [90.0, 96.0, 90.0, 86.0, 84.0, 90.0, 97.0];
    let got = run(&r, &mut lc, &values.map(Some));
    // 90 first: not firing. 96 fires; 90 and 86 keep it; 84 clears; 90 stays clear; 97 fires.
    assert_eq!(
        got,
        vec![
            (1, "firing", 1, 63),
            (4, "resolved", 1, 4),
            (6, "firing", 6, 68)
        ]
    );
}

#[test]
fn firing_alerts_are_resent_with_the_same_id() {
    let r = rule("-- severity = \"warning\"");
    let mut lc = Lifecycle::new("p", Duration::from_secs(120), Vec::new());
    let mut ids = Vec::new();
    for m in 0..5 {
        for a in lc.observe(minute(m), vec![finding(&r, "h1", 1.0)]) {
            ids.push((m, a.id));
        }
    }
    let minutes: Vec<_> = ids.iter().map(|(m, _)| *m).collect();
    assert_eq!(minutes, vec![0, 2, 4]);
    assert!(ids.iter().all(|(_, id)| *id == ids[0].1));
}

#[test]
fn a_critical_alert_inhibits_warnings_on_the_same_host_only() {
    let oom = rule("-- alert = \"GpuOutOfMemory\"\n-- severity = \"critical\"");
    let slow = rule("-- alert = \"LatencyHigh\"\n-- severity = \"warning\"");
    let inhibit = InhibitRule {
        source: BTreeMap::from([("alertname".into(), "GpuOutOfMemory".into())]),
        target: BTreeMap::from([("severity".into(), "warning".into())]),
        equal: vec!["host".into()],
    };
    let mut lc = Lifecycle::new("p", Duration::from_secs(3600), vec![inhibit]);
    let names = |alerts: Vec<Alert>| -> Vec<(String, String, &'static str)> {
        alerts
            .into_iter()
            .map(|a| {
                (
                    a.labels["alertname"].clone(),
                    a.labels["host"].clone(),
                    match a.status {
                        AlertStatus::Firing => "firing",
                        AlertStatus::Resolved => "resolved",
                    },
                )
            })
            .collect()
    };
    let s = |a: &str, h: &str, st: &'static str| (a.to_string(), h.to_string(), st);
    let got = names(lc.observe(
        minute(0),
        vec![
            finding(&oom, "h1", 1.0),
            finding(&slow, "h1", 1.0),
            finding(&slow, "h2", 1.0),
        ],
    ));
    let mut got = got;
    got.sort();
    assert_eq!(
        got,
        vec![
            s("GpuOutOfMemory", "h1", "firing"),
            s("LatencyHigh", "h2", "firing")
        ]
    );
    // The OOM resolves: the latency warning on h1, still firing, is notified now.
    let mut got = names(lc.observe(
        minute(1),
        vec![finding(&slow, "h1", 1.0), finding(&slow, "h2", 1.0)],
    ));
    got.sort();
    assert_eq!(
        got,
        vec![
            s("GpuOutOfMemory", "h1", "resolved"),
            s("LatencyHigh", "h1", "firing")
        ]
    );
    // An inhibited alert that resolves before it was ever notified sends nothing.
    let mut lc2 = Lifecycle::new("p", Duration::from_secs(3600), lc.inhibit.clone());
    lc2.observe(
        minute(0),
        vec![finding(&oom, "h1", 1.0), finding(&slow, "h1", 1.0)],
    );
    let got = names(lc2.observe(minute(1), vec![finding(&oom, "h1", 1.0)]));
    assert!(got.is_empty(), "{got:?}");
}
