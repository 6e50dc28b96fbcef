//! A test's expectations against what the pipeline put out, each failure as a readable
//! expected/got block.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use super::spec::{AlertCountTest, AlertRuleTest, ExpectedAlert, SuggestionTest};
use crate::alert::{Alert, AlertStatus};
use crate::model::{duration_nanos, EventTime};

/// An alert notification and the end of the window whose evaluation produced it.
pub type Stamped = (Alert, EventTime);

/// The alerts firing at `at`: per fingerprint, the latest notification of a window that
/// ended at or before `at` decides (firing, a resend, or resolved).
pub fn firing_at(alerts: &[Stamped], at: EventTime) -> Vec<&Alert> {
    let mut latest: BTreeMap<&str, &Alert> = BTreeMap::new();
    for (a, _) in alerts.iter().filter(|(_, end)| *end <= at) {
        latest.insert(&a.fingerprint, a);
    }
    latest
        .into_values()
        .filter(|a| a.status == AlertStatus::Firing)
        .collect()
}

/// `alert_rule_test`: the firing alerts of the name at the time, matched one to one.
pub fn alert_rule(t: &AlertRuleTest, alerts: &[Stamped], start: EventTime) -> Option<String> {
    let at = EventTime(start.0 + duration_nanos(t.eval_time));
    let got: Vec<&Alert> = firing_at(alerts, at)
        .into_iter()
        .filter(|a| a.labels.get("alertname") == Some(&t.alertname))
        .collect();
    let mut unmatched: Vec<&Alert> = got.clone();
    let mut missing = Vec::new();
    for exp in &t.exp_alerts {
        match unmatched.iter().position(|a| matches(exp, a, &t.alertname)) {
            Some(i) => {
                unmatched.remove(i);
            }
            None => missing.push(exp),
        }
    }
    if missing.is_empty() && unmatched.is_empty() {
        return None;
    }
    let mut out = format!(
        "alertname {} at eval_time {}:\n  expected:\n",
        t.alertname,
        humantime::format_duration(t.eval_time)
    );
    if t.exp_alerts.is_empty() {
        out.push_str("    (none firing)\n");
    }
    for e in &t.exp_alerts {
        let mark = if missing.iter().any(|m| std::ptr::eq(*m, e)) {
            "-"
        } else {
            " "
        };
        let _ = writeln!(out, "  {mark} labels {}", render(&e.exp_labels));
        if !e.exp_annotations.is_empty() {
            let _ = writeln!(out, "      annotations {}", render(&e.exp_annotations));
        }
    }
    out.push_str("  got:\n");
    if got.is_empty() {
        out.push_str("    (none firing)\n");
    }
    for a in &got {
        let mark = if unmatched.iter().any(|u| std::ptr::eq(*u, *a)) {
            "+"
        } else {
            " "
        };
        let mut labels = a.labels.clone();
        labels.remove("alertname");
        let _ = writeln!(out, "  {mark} labels {}", render(&labels));
        let _ = writeln!(out, "      annotations {}", render(&a.annotations));
    }
    Some(out)
}

fn matches(exp: &ExpectedAlert, a: &Alert, alertname: &str) -> bool {
    let mut labels = exp.exp_labels.clone();
    labels.insert("alertname".into(), alertname.into());
    labels == a.labels
        && exp
            .exp_annotations
            .iter()
            .all(|(k, v)| a.annotations.get(k) == Some(v))
}

fn render(map: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// `alert_count_test`: alerts of the name that fired over the test (resends count once).
pub fn alert_count(t: &AlertCountTest, alerts: &[Stamped]) -> Option<String> {
    let fired: BTreeSet<&str> = alerts
        .iter()
        .map(|(a, _)| a)
        .filter(|a| a.status == AlertStatus::Firing)
        .filter(|a| a.labels.get("alertname") == Some(&t.alertname))
        .map(|a| a.id.as_str())
        .collect();
    let n = fired.len();
    let mut wrong = Vec::new();
    if let Some(k) = t.exactly.filter(|k| *k != n) {
        wrong.push(format!("exactly {k}"));
    }
    if let Some(k) = t.at_least.filter(|k| n < *k) {
        wrong.push(format!("at least {k}"));
    }
    if let Some(k) = t.at_most.filter(|k| n > *k) {
        wrong.push(format!("at most {k}"));
    }
    (!wrong.is_empty()).then(|| {
        format!(
            "alertname {}: expected {} alerts to fire, got {n}\n",
            t.alertname,
            wrong.join(" and ")
        )
    })
}

/// `suggestion_test`: the first suggestion (rank 1) for the alerts of the name.
pub fn suggestion(t: &SuggestionTest, suggestions: &[serde_json::Value]) -> Option<String> {
    let got: BTreeSet<&str> = suggestions
        .iter()
        .filter(|s| s["alertname"] == t.alertname.as_str() && s["rank"] == 1)
        .filter_map(|s| s["remediation_id"].as_str())
        .collect();
    let ok = match t.exp_remediation.as_str() {
        "" => got.is_empty(),
        want => got.len() == 1 && got.contains(want),
    };
    (!ok).then(|| {
        format!(
            "alertname {}: expected first suggestion {:?}, got {:?}\n",
            t.alertname,
            t.exp_remediation,
            got.into_iter().collect::<Vec<_>>()
        )
    })
}

/// A duration as test files write it.
pub fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
