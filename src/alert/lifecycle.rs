//! The alert lifecycle per fingerprint, in event time: inactive → pending (`for`) → firing →
//! resolved (after `keep_firing_for`), with hysteresis (`fire`/`clear` conditions), resends
//! of firing alerts and inhibition. One notification per fingerprint and state change (plus
//! resends, which carry the same id).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::template::{render, Context};
use super::{fingerprint, fnv_hex, Alert, AlertStatus, Evidence, InhibitRule};
use crate::model::saved::{self, Saved};
use crate::model::{duration_nanos, AlertSpec, EventTime, Finding, Verdict, Window};

/// Where an alert instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AlertState {
    /// The condition holds since `since`, not yet for the rule's `for`.
    Pending { since: EventTime },
    /// Fired at `fired_at` (pending since `since`); its condition last held at `last_active`.
    Firing {
        since: EventTime,
        fired_at: EventTime,
        last_active: EventTime,
        /// When a notification was last sent (`None`: never, e.g. inhibited so far).
        last_sent: Option<EventTime>,
    },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Tracked {
    spec: Arc<AlertSpec>,
    labels: BTreeMap<String, String>,
    state: AlertState,
    /// The latest finding, for value and evidence.
    finding: Finding,
    window: Window,
}

/// Alert states of one shard, and the notifications their changes produce.
pub struct Lifecycle {
    pipeline: String,
    resend_interval: Duration,
    inhibit: Vec<InhibitRule>,
    alerts: BTreeMap<String, Tracked>,
}

fn labels_of(finding: &Finding) -> BTreeMap<String, String> {
    let spec = &finding.spec;
    let mut labels = spec.labels.clone();
    labels.extend(finding.labels.clone());
    labels.insert("alertname".into(), spec.alert.clone());
    labels.insert("severity".into(), spec.severity.as_str().into());
    labels
}

impl Lifecycle {
    /// The tracked alerts (pending and firing), for a checkpoint.
    pub fn save(&self) -> Saved {
        saved::save(&self.alerts)
    }

    pub fn restore(&mut self, state: Saved) -> Result<(), String> {
        self.alerts = saved::load(state)?;
        Ok(())
    }

    pub fn new(pipeline: &str, resend_interval: Duration, inhibit: Vec<InhibitRule>) -> Self {
        Lifecycle {
            pipeline: pipeline.to_string(),
            resend_interval,
            inhibit,
            alerts: BTreeMap::new(),
        }
    }

    /// Start of the oldest window whose evaluation the current states depend on: replaying
    /// the input from there rebuilds them exactly. `None` when no alert is pending or firing.
    pub fn earliest_since(&self) -> Option<EventTime> {
        self.alerts
            .values()
            .map(|t| match t.state {
                AlertState::Pending { since } | AlertState::Firing { since, .. } => since,
            })
            .min()
    }

    /// Alerts pending and firing now.
    pub fn counts(&self) -> (usize, usize) {
        let firing = self
            .alerts
            .values()
            .filter(|t| matches!(t.state, AlertState::Firing { .. }))
            .count();
        (self.alerts.len() - firing, firing)
    }

    /// The state of the alert with `fingerprint`, if it is pending or firing.
    pub fn state(&self, fingerprint: &str) -> Option<AlertState> {
        self.alerts.get(fingerprint).map(|t| t.state)
    }

    /// Applies the findings of every rule for `window` (all rules were evaluated on it) and
    /// returns the notifications, in fingerprint order.
    pub fn observe(&mut self, window: Window, findings: Vec<Finding>) -> Vec<Alert> {
        let active = self.apply(window, findings);
        let resolved = self.transition(window, &active);
        let mut notify = self.resolve(resolved);
        notify.extend(self.send_firing(window));
        notify.sort_by(|a, b| {
            (&a.fingerprint, a.status as u8).cmp(&(&b.fingerprint, b.status as u8))
        });
        notify
    }

    /// Tracks the findings that hold; returns their fingerprints.
    fn apply(&mut self, window: Window, findings: Vec<Finding>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        for finding in findings {
            let labels = labels_of(&finding);
            let fp = fingerprint(&labels);
            let spec = finding.spec.clone();
            // Hysteresis: between the fire and clear conditions an alert keeps its state.
            let holds = match finding.verdict {
                Verdict::Fire => true,
                Verdict::Keep => self.alerts.contains_key(&fp),
                Verdict::Clear => false,
            };
            if !holds {
                continue; // treated below like a missing row
            }
            seen.insert(fp.clone());
            match self.alerts.get_mut(&fp) {
                Some(t) => {
                    t.finding = finding;
                    t.window = window;
                    if let AlertState::Firing { last_active, .. } = &mut t.state {
                        *last_active = window.end;
                    }
                }
                None => {
                    let state = AlertState::Pending {
                        since: window.start,
                    };
                    let tracked = Tracked {
                        spec,
                        labels,
                        state,
                        finding,
                        window,
                    };
                    self.alerts.insert(fp, tracked);
                }
            }
        }
        seen
    }

    /// Pending alerts that held long enough fire; alerts no longer active end. Returns the
    /// ended ones with their end (`None`: never fired, nothing to notify).
    fn transition(
        &mut self,
        window: Window,
        active: &BTreeSet<String>,
    ) -> Vec<(String, Option<EventTime>)> {
        let mut resolved = Vec::new();
        for (fp, t) in self.alerts.iter_mut() {
            let active = active.contains(fp);
            match t.state {
                AlertState::Pending { since } => {
                    if !active {
                        resolved.push((fp.clone(), None)); // never fired: no notification
                    } else if window.end.0 - since.0 >= duration_nanos(t.spec.for_) {
                        let fired_at = if t.spec.for_.is_zero() {
                            window.start
                        } else {
                            since.saturating_add(t.spec.for_)
                        };
                        t.state = AlertState::Firing {
                            since,
                            fired_at,
                            last_active: window.end,
                            last_sent: None,
                        };
                    }
                }
                AlertState::Firing { last_active, .. } if !active => {
                    let ends = last_active.saturating_add(t.spec.keep_firing_for);
                    if ends <= window.start || t.spec.keep_firing_for.is_zero() {
                        resolved.push((fp.clone(), Some(ends.min(window.end))));
                    }
                }
                AlertState::Firing { .. } => {}
            }
        }
        resolved
    }

    /// Forgets ended alerts; a resolution for each that was notified as firing.
    fn resolve(&mut self, resolved: Vec<(String, Option<EventTime>)>) -> Vec<Alert> {
        let mut notify = Vec::new();
        for (fp, ends) in resolved {
            let t = self.alerts.remove(&fp).expect("tracked");
            if let (
                Some(ends),
                AlertState::Firing {
                    fired_at,
                    last_sent: Some(_),
                    ..
                },
            ) = (ends, t.state)
            {
                notify.push(self.alert(&t, AlertStatus::Resolved, fired_at, ends));
            }
        }
        notify
    }

    /// Firing notifications: new ones, resends, and ones no longer inhibited.
    fn send_firing(&mut self, window: Window) -> Vec<Alert> {
        let firing: Vec<BTreeMap<String, String>> = self
            .alerts
            .values()
            .filter(|t| matches!(t.state, AlertState::Firing { .. }))
            .map(|t| t.labels.clone())
            .collect();
        let mut sends = Vec::new();
        for (fp, t) in &self.alerts {
            let AlertState::Firing {
                fired_at,
                last_sent,
                ..
            } = t.state
            else {
                continue;
            };
            let due = match last_sent {
                None => true,
                Some(at) => window.end.0 - at.0 >= duration_nanos(self.resend_interval),
            };
            let inhibited = firing
                .iter()
                .any(|src| self.inhibit.iter().any(|r| r.inhibits(src, &t.labels)));
            if due && !inhibited {
                sends.push((fp.clone(), fired_at));
            }
        }
        let mut notify = Vec::new();
        for (fp, fired_at) in sends {
            let t = &self.alerts[&fp];
            let valid_until = window
                .end
                .saturating_add(self.resend_interval)
                .saturating_add(Duration::from_nanos((window.end.0 - window.start.0) as u64));
            notify.push(self.alert(t, AlertStatus::Firing, fired_at, valid_until));
            if let AlertState::Firing { last_sent, .. } =
                &mut self.alerts.get_mut(&fp).expect("tracked").state
            {
                *last_sent = Some(window.end);
            }
        }
        notify
    }

    fn alert(&self, t: &Tracked, status: AlertStatus, starts: EventTime, ends: EventTime) -> Alert {
        let rule = &t.spec;
        let value = t.finding.value;
        let cx = Context {
            value,
            params: &rule.params,
            evidence: &t.finding.evidence,
        };
        let annotations = rule
            .annotations
            .iter()
            .map(|(k, tpl)| (k.clone(), render(tpl, &t.labels, &cx)))
            .collect();
        let fingerprint = fingerprint(&t.labels);
        let starts_at = starts.to_rfc3339();
        let status_text = match status {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        };
        Alert {
            id: fnv_hex(&[&fingerprint, status_text, &starts_at]),
            rule_id: rule.id.clone(),
            rule_group: rule.group.clone(),
            status,
            labels: t.labels.clone(),
            annotations,
            starts_at,
            ends_at: ends.to_rfc3339(),
            generator_url: format!("faultline://{}/rules/{}", self.pipeline, rule.id),
            group_key: fingerprint.clone(),
            fingerprint,
            evidence: Evidence {
                value,
                window_start: t.window.start.to_rfc3339(),
                window_end: t.window.end.to_rfc3339(),
                values: t.finding.evidence.clone(),
                trace_ids: t.finding.trace_ids.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests;
