//! Grouping of notifications, as Alertmanager groups them, in event time: alerts with the
//! same values of the `group_by` labels form a group; the first notification of a group waits
//! `group_wait` for others to join it, later ones are sent at most every `group_interval`.
//! A group's notifications go out together, keyed by the group, so they stay in order on one
//! partition.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Alert;
use crate::model::saved::{self, Saved};
use crate::model::EventTime;

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Group {
    /// Latest queued notification per fingerprint, with the start of the window it came from.
    queued: BTreeMap<String, (EventTime, Alert)>,
    due: Option<EventTime>,
    last_flush: Option<EventTime>,
}

/// Queues notifications per group until they are due.
pub struct Grouper {
    group_by: Vec<String>,
    wait: Duration,
    interval: Duration,
    groups: BTreeMap<String, Group>,
}

impl Grouper {
    /// The queued notifications and each group's timers, for a checkpoint.
    pub fn save(&self) -> Saved {
        saved::save(&self.groups)
    }

    pub fn restore(&mut self, state: Saved) -> Result<(), String> {
        self.groups = saved::load(state)?;
        Ok(())
    }

    pub fn new(group_by: Vec<String>, wait: Duration, interval: Duration) -> Self {
        Grouper {
            group_by,
            wait,
            interval,
            groups: BTreeMap::new(),
        }
    }

    /// The group key of an alert: `{label="value",...}` of the `group_by` labels, or its
    /// fingerprint when there is no grouping.
    pub fn key(&self, alert: &Alert) -> String {
        if self.group_by.is_empty() {
            return alert.fingerprint.clone();
        }
        let parts: Vec<String> = self
            .group_by
            .iter()
            .map(|l| {
                let v = alert.labels.get(l).map(String::as_str).unwrap_or("");
                format!("{l}={v:?}")
            })
            .collect();
        format!("{{{}}}", parts.join(","))
    }

    /// Queues the notifications of the window `[start, now)` and returns every group's
    /// notifications that are due at `now`, group by group.
    pub fn push(&mut self, start: EventTime, now: EventTime, alerts: Vec<Alert>) -> Vec<Alert> {
        for mut alert in alerts {
            let key = self.key(&alert);
            alert.group_key = key.clone();
            let (wait, interval) = (self.wait, self.interval);
            let g = self.groups.entry(key).or_default();
            if g.due.is_none() {
                g.due = Some(match g.last_flush {
                    None => now.saturating_add(wait),
                    Some(last) => now.max(last.saturating_add(interval)),
                });
            }
            g.queued.insert(alert.fingerprint.clone(), (start, alert));
        }
        let mut out = Vec::new();
        for g in self.groups.values_mut() {
            if g.due.is_some_and(|d| d <= now) {
                let mut batch: Vec<Alert> = std::mem::take(&mut g.queued)
                    .into_values()
                    .map(|(_, a)| a)
                    .collect();
                batch.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
                out.extend(batch);
                g.due = None;
                g.last_flush = Some(now);
            }
        }
        out
    }

    /// Start of the oldest window a queued notification came from: replaying from there
    /// queues it again.
    pub fn earliest_queued(&self) -> Option<EventTime> {
        self.groups
            .values()
            .flat_map(|g| g.queued.values().map(|(s, _)| *s))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertStatus, Evidence};

    fn alert(fp: &str, host: &str) -> Alert {
        Alert {
            id: fp.into(),
            rule_id: "r".into(),
            rule_group: "g".into(),
            status: AlertStatus::Firing,
            labels: [("host".to_string(), host.to_string())].into(),
            annotations: Default::default(),
            starts_at: String::new(),
            ends_at: String::new(),
            generator_url: String::new(),
            fingerprint: fp.into(),
            group_key: String::new(),
            evidence: Evidence {
                value: 0.0,
                window_start: String::new(),
                window_end: String::new(),
                values: Default::default(),
                trace_ids: Vec::new(),
            },
        }
    }

    const M: i64 = 60_000_000_000;

    fn ids(alerts: &[Alert]) -> Vec<(&str, &str)> {
        alerts
            .iter()
            .map(|a| (a.fingerprint.as_str(), a.group_key.as_str()))
            .collect()
    }

    #[test]
    fn a_group_waits_then_goes_out_together_and_respects_its_interval() {
        let mut g = Grouper::new(
            vec!["host".into()],
            Duration::from_secs(120),
            Duration::from_secs(180),
        );
        assert!(g
            .push(EventTime(0), EventTime(M), vec![alert("a", "h1")])
            .is_empty());
        assert_eq!(g.earliest_queued(), Some(EventTime(0)));
        assert!(g
            .push(EventTime(M), EventTime(2 * M), vec![alert("b", "h1")])
            .is_empty());
        let out = g.push(EventTime(2 * M), EventTime(3 * M), vec![alert("c", "h2")]);
        assert_eq!(
            ids(&out),
            vec![("a", "{host=\"h1\"}"), ("b", "{host=\"h1\"}")]
        );
        // The next h1 notification waits for the group interval (3 + 3 = 6).
        assert!(g
            .push(EventTime(3 * M), EventTime(4 * M), vec![alert("a", "h1")])
            .is_empty());
        let out = g.push(EventTime(4 * M), EventTime(5 * M), vec![]);
        assert_eq!(ids(&out), vec![("c", "{host=\"h2\"}")]);
        let out = g.push(EventTime(5 * M), EventTime(6 * M), vec![]);
        assert_eq!(ids(&out), vec![("a", "{host=\"h1\"}")]);
        assert_eq!(g.earliest_queued(), None);
    }

    #[test]
    fn without_group_by_every_alert_is_its_own_group_and_nothing_waits() {
        let mut g = Grouper::new(vec![], Duration::ZERO, Duration::ZERO);
        let out = g.push(
            EventTime(0),
            EventTime(M),
            vec![alert("a", "h1"), alert("b", "h1")],
        );
        assert_eq!(ids(&out), vec![("a", "a"), ("b", "b")]);
    }
}
