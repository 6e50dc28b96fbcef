//! Incidents: firing alerts that overlap in time and share an entity, with their timeline,
//! and the alerts folded into more specific ones.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::rank::{Accumulator, Ranking};
use crate::alert::{Alert, AlertStatus};
use crate::model::EventTime;

/// Timeline entries kept per incident (the oldest go first).
pub const MAX_TIMELINE: usize = 200;

/// An alert as its incident lists it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Member {
    pub fingerprint: String,
    pub alertname: String,
    pub rule_id: String,
    /// `firing` or `resolved`.
    pub status: AlertStatus,
    pub severity: String,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// The alert's entity labels, `label=value`.
    pub entities: Vec<String>,
    /// The fingerprint of the more specific alert this one is folded into: it shows the
    /// same problem on a subset of that alert's entities, and pages no one on its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folded_into: Option<String>,
    #[serde(skip)]
    pub labels: BTreeMap<String, String>,
    /// Its evidence's sample traces: the records it was raised on.
    #[serde(skip)]
    pub trace_ids: BTreeSet<String>,
}

/// One thing that happened to an incident.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TimelineEntry {
    pub time: String,
    /// `alert_firing`, `alert_resolved`, `alert_folded` or `suspect_changed`.
    pub event: String,
    pub detail: String,
}

/// An open or just-resolved incident.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Incident {
    pub id: String,
    pub opened_at: EventTime,
    pub entities: BTreeSet<String>,
    pub alerts: BTreeMap<String, Member>,
    pub timeline: Vec<TimelineEntry>,
    pub accumulator: Accumulator,
    pub ranking: Ranking,
}

/// The `label=value` pairs of `alert` that name entities.
pub fn entities_of(alert: &Alert, labels: &[String]) -> BTreeSet<String> {
    labels
        .iter()
        .filter_map(|l| {
            alert
                .labels
                .get(l)
                .filter(|v| !v.is_empty())
                .map(|v| format!("{l}={v}"))
        })
        .collect()
}

impl Incident {
    pub fn note(&mut self, time: EventTime, event: &'static str, detail: String) {
        self.timeline.push(TimelineEntry {
            time: time.to_rfc3339(),
            event: event.to_string(),
            detail,
        });
        if self.timeline.len() > MAX_TIMELINE {
            self.timeline.remove(0);
        }
    }

    /// Adds or updates `alert`; true when the incident changed.
    pub fn record(&mut self, alert: &Alert, entities: BTreeSet<String>, at: EventTime) -> bool {
        let name = alert.labels.get("alertname").cloned().unwrap_or_default();
        let detail = format!("{name} {}", render_labels(&entities));
        let changed = match self.alerts.get_mut(&alert.fingerprint) {
            Some(m) if m.status == alert.status => false,
            Some(m) => {
                m.status = alert.status;
                m.starts_at = alert.starts_at.clone();
                true
            }
            None => {
                self.alerts.insert(
                    alert.fingerprint.clone(),
                    Member {
                        fingerprint: alert.fingerprint.clone(),
                        alertname: name,
                        rule_id: alert.rule_id.clone(),
                        status: alert.status,
                        severity: alert.labels.get("severity").cloned().unwrap_or_default(),
                        starts_at: alert.starts_at.clone(),
                        entities: entities.iter().cloned().collect(),
                        folded_into: None,
                        labels: alert.labels.clone(),
                        trace_ids: alert.evidence.trace_ids.iter().cloned().collect(),
                    },
                );
                true
            }
        };
        if changed {
            let event = match alert.status {
                AlertStatus::Firing => "alert_firing",
                AlertStatus::Resolved => "alert_resolved",
            };
            self.note(at, event, detail);
        }
        self.entities.extend(entities);
        changed
    }

    /// Folds each firing alert into a firing alert of another rule that says the same about
    /// the same records more specifically: its labels strictly contain the alert's, and
    /// their sample traces overlap (or neither has any). True when a fold changed.
    pub fn fold(&mut self, at: EventTime) -> bool {
        let firing: Vec<&Member> = self
            .alerts
            .values()
            .filter(|m| m.status == AlertStatus::Firing)
            .collect();
        let mut folds = Vec::new();
        for a in &firing {
            let into = firing
                .iter()
                .filter(|b| b.rule_id != a.rule_id && more_specific(b, a))
                .map(|b| b.fingerprint.clone())
                .min();
            if into != a.folded_into {
                folds.push((a.fingerprint.clone(), into));
            }
        }
        let changed = !folds.is_empty();
        for (fp, into) in folds {
            let target = into.as_ref().map(|i| self.alerts[i].alertname.clone());
            let m = self.alerts.get_mut(&fp).expect("member");
            m.folded_into = into;
            if let Some(target) = target {
                let detail = format!("{} into {target}", m.alertname);
                self.note(at, "alert_folded", detail);
            }
        }
        changed
    }

    pub fn all_resolved(&self) -> bool {
        self.alerts
            .values()
            .all(|m| m.status == AlertStatus::Resolved)
    }
}

/// `b` names every entity `a` names and more of the alert's labels besides, from the same
/// records.
fn more_specific(b: &Member, a: &Member) -> bool {
    let same_records = if a.trace_ids.is_empty() && b.trace_ids.is_empty() {
        true
    } else {
        !a.trace_ids.is_disjoint(&b.trace_ids)
    };
    same_records
        && !a.entities.is_empty()
        && a.entities.iter().all(|e| b.entities.contains(e))
        && b.labels.len() > a.labels.len()
        && a.labels
            .iter()
            .filter(|(k, _)| *k != "alertname" && *k != "severity")
            .all(|(k, v)| b.labels.get(k) == Some(v))
}

fn render_labels(entities: &BTreeSet<String>) -> String {
    let v: Vec<&str> = entities.iter().map(String::as_str).collect();
    format!("{{{}}}", v.join(", "))
}
