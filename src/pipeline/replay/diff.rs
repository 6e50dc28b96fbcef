//! `replay --diff`: what a rule change would have changed over history. Alerts of the two
//! runs become episodes (one alert from its start to its resolution) per rule and label set;
//! episodes equal in both are unchanged, the rest are paired in time order as moved, and
//! what is left was added or removed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::alert::{Alert, AlertStatus};

/// One alert from start to resolution.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Episode {
    pub starts_at: String,
    /// The resolution time; `None` while still firing at the end of the replay.
    pub resolved_at: Option<String>,
}

/// The alerts of the rules under review against those of the shipped rules.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AlertDiff {
    /// `(alert as name{labels}, episode)`.
    pub added: Vec<(String, Episode)>,
    pub removed: Vec<(String, Episode)>,
    /// `(alert, shipped episode, reviewed episode)`.
    pub moved: Vec<(String, Episode, Episode)>,
    pub unchanged: usize,
}

impl AlertDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.moved.is_empty()
    }
}

/// Episodes per alert (`alertname{labels}`, the rule id first so one rule's alerts sort
/// together).
fn episodes(alerts: &[Alert]) -> BTreeMap<String, Vec<Episode>> {
    let mut by_alert: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for a in alerts {
        let e = by_alert
            .entry(describe(a))
            .or_default()
            .entry(a.starts_at.clone())
            .or_default();
        if a.status == AlertStatus::Resolved {
            *e = Some(a.ends_at.clone());
        }
    }
    by_alert
        .into_iter()
        .map(|(k, starts)| {
            let list = starts
                .into_iter()
                .map(|(starts_at, resolved_at)| Episode {
                    starts_at,
                    resolved_at,
                })
                .collect();
            (k, list)
        })
        .collect()
}

/// `alertname{label="value",...}` without the alert name among the labels.
fn describe(a: &Alert) -> String {
    let name = a
        .labels
        .get("alertname")
        .cloned()
        .unwrap_or(a.rule_id.clone());
    let labels: Vec<String> = a
        .labels
        .iter()
        .filter(|(k, _)| *k != "alertname")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// Compares the shipped rules' alerts (`before`) with the reviewed rules' (`after`).
pub fn diff(before: &[Alert], after: &[Alert]) -> AlertDiff {
    let (before, mut after) = (episodes(before), episodes(after));
    let mut d = AlertDiff::default();
    for (alert, mut old) in before {
        let mut new = after.remove(&alert).unwrap_or_default();
        old.retain(|e| match new.iter().position(|n| n == e) {
            Some(i) => {
                new.remove(i);
                d.unchanged += 1;
                false
            }
            None => true,
        });
        let paired = old.len().min(new.len());
        let rest_old = old.split_off(paired);
        let rest_new = new.split_off(paired);
        for (o, n) in old.into_iter().zip(new) {
            d.moved.push((alert.clone(), o, n));
        }
        d.removed
            .extend(rest_old.into_iter().map(|e| (alert.clone(), e)));
        d.added
            .extend(rest_new.into_iter().map(|e| (alert.clone(), e)));
    }
    for (alert, new) in after {
        d.added.extend(new.into_iter().map(|e| (alert.clone(), e)));
    }
    d
}

fn span(e: &Episode) -> String {
    format!(
        "{} .. {}",
        e.starts_at,
        e.resolved_at.as_deref().unwrap_or("(still firing)")
    )
}

/// The diff as a person reads it: `+` added, `-` removed, `~` moved, then a count line.
pub fn render(d: &AlertDiff) -> String {
    let mut out = String::new();
    for (alert, e) in &d.added {
        let _ = writeln!(out, "+ {alert}  {}", span(e));
    }
    for (alert, e) in &d.removed {
        let _ = writeln!(out, "- {alert}  {}", span(e));
    }
    for (alert, old, new) in &d.moved {
        let _ = writeln!(out, "~ {alert}  {}  ->  {}", span(old), span(new));
    }
    let _ = writeln!(
        out,
        "{} added, {} removed, {} moved, {} unchanged",
        d.added.len(),
        d.removed.len(),
        d.moved.len(),
        d.unchanged
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, service: &str, status: AlertStatus, starts: &str, ends: &str) -> Alert {
        let mut a = Alert {
            rule_id: name.to_lowercase(),
            status,
            starts_at: starts.into(),
            ends_at: ends.into(),
            ..Alert::default()
        };
        a.labels.insert("alertname".into(), name.into());
        a.labels.insert("service".into(), service.into());
        a
    }

    #[test]
    fn unchanged_moved_added_and_removed_episodes() {
        use AlertStatus::{Firing, Resolved};
        let before = vec![
            alert("Slow", "a", Firing, "T01", "T09"),
            alert("Slow", "a", Resolved, "T01", "T05"),
            alert("Slow", "b", Firing, "T02", "T09"),
            alert("Errors", "a", Firing, "T03", "T09"),
        ];
        let after = vec![
            alert("Slow", "a", Firing, "T01", "T09"),
            alert("Slow", "a", Resolved, "T01", "T05"),
            alert("Slow", "b", Firing, "T04", "T09"),
            alert("Slow", "b", Resolved, "T04", "T06"),
            alert("Disk", "c", Firing, "T05", "T09"),
        ];
        let d = diff(&before, &after);
        assert_eq!(d.unchanged, 1);
        assert_eq!(d.removed.len(), 1);
        assert_eq!(d.removed[0].0, "Errors{service=\"a\"}");
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.added[0].0, "Disk{service=\"c\"}");
        assert_eq!(d.moved.len(), 1);
        let (name, old, new) = &d.moved[0];
        assert_eq!(name, "Slow{service=\"b\"}");
        assert_eq!(
            (old.starts_at.as_str(), old.resolved_at.as_deref()),
            ("T02", None)
        );
        assert_eq!(
            (new.starts_at.as_str(), new.resolved_at.as_deref()),
            ("T04", Some("T06"))
        );
        let text = render(&d);
        assert!(
            text.contains("+ Disk{service=\"c\"}  T05 .. (still firing)"),
            "{text}"
        );
        assert!(
            text.ends_with("1 added, 1 removed, 1 moved, 1 unchanged\n"),
            "{text}"
        );
        assert!(diff(&before, &before).is_empty());
    }
}
