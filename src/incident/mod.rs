//! Incidents and root causes: a pure stage after the alert lifecycle. Firing alerts that
//! overlap in time and share an entity become one incident; while it is open, the
//! indicators' robust deviations (baselines frozen) rank its suspects.
//!
//! - [`config`]: `[incidents]` and its indicators (SQL, read by `load`).
//! - [`baseline`]: per-series history, median and MAD; deviations in robust units.
//! - [`rank`]: window scores per entity, the incident's accumulated ranking, the call-graph
//!   walk, the first anomalous point and the verdict (abstains when unsure).
//! - [`group`]: incidents, their members, timeline and folding.
//!
//! Deterministic: event time only, ordered maps, ties broken by name.

pub mod baseline;
pub mod comm;
pub mod config;
pub mod graph;
pub mod group;
pub mod rank;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;

use crate::alert::{fnv_hex, Alert, AlertStatus};
use crate::model::saved::{self, Saved};
use crate::model::{EventTime, QueryRow, Window};
use baseline::{Baselines, Observation};
use comm::BlockingLink;
pub use config::IncidentConfig;
use group::{entities_of, Incident, Member, TimelineEntry};
use rank::{FirstAnomaly, Ranking, Suspect, WindowScores};

/// One incident record (`schemas/incident.json`): written when an incident opens, when its
/// alerts or its ranking change, and when it resolves. The last record is the current view.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentRecord {
    /// Stable: the pipeline, the first alert's fingerprint and the opening time.
    pub id: String,
    /// `opened`, `updated` or `resolved`.
    pub status: &'static str,
    pub pipeline: String,
    /// End of the window whose evaluation opened it (event time, RFC 3339): when the
    /// evidence was complete.
    pub opened_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// Every entity (`label=value`) its alerts named.
    pub entities: Vec<String>,
    pub alerts: Vec<Member>,
    pub timeline: Vec<TimelineEntry>,
    /// `suspect`, `unknown` (abstained), `no_evidence`, or `no_indicators` (the pipeline
    /// has no `[[incidents.indicators]]`).
    pub verdict: String,
    pub suspects: Vec<Suspect>,
    pub first_anomaly: Option<FirstAnomaly>,
    pub propagation_path: Vec<String>,
    /// A training job's failing network link, when the top suspect is a rank that reported
    /// network failures and it sends to exactly one rank on another node (`comm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocking_link: Option<BlockingLink>,
    /// Bytes of baseline state the ranking holds (all series of the shard).
    pub state_bytes: usize,
}

/// A member alert's fingerprint, labels and trace ids (kept out of incident records).
type MemberDetail = (String, BTreeMap<String, String>, BTreeSet<String>);

/// One shard's incidents and baselines.
pub struct IncidentTracker {
    config: IncidentConfig,
    pipeline: String,
    baselines: Baselines,
    /// Recent service call edges: alerts on neighbours join one incident.
    graph: graph::CallGraph,
    /// Training jobs' NCCL topology, for an incident's blocking link.
    comm: comm::CommGraph,
    /// The latest windows' scores, for an incident's look-back.
    recent: VecDeque<WindowScores>,
    open: Vec<Incident>,
}

/// Adds the columns of the window's tables incidents read outside SQL (the call graph's
/// spans, the NCCL topology's logs) to `into`.
pub fn read_columns(into: &mut crate::tables::ColumnSet) {
    for column in graph::SPAN_COLUMNS {
        into.add("spans", column);
    }
    for column in comm::LOG_COLUMNS {
        into.add("logs", column);
    }
}

impl IncidentTracker {
    /// Baselines, the call graph, recent scores and open incidents, for a checkpoint.
    /// (Members' labels and trace ids, which incident records leave out, go alongside.)
    pub fn save(&self) -> Saved {
        let members: Vec<Vec<MemberDetail>> = self
            .open
            .iter()
            .map(|inc| {
                inc.alerts
                    .iter()
                    .map(|(fp, m)| (fp.clone(), m.labels.clone(), m.trace_ids.clone()))
                    .collect()
            })
            .collect();
        saved::save(&(
            &self.baselines,
            &self.graph,
            &self.comm,
            &self.recent,
            &self.open,
            members,
        ))
    }

    pub fn restore(&mut self, state: Saved) -> Result<(), String> {
        let members: Vec<Vec<MemberDetail>>;
        (
            self.baselines,
            self.graph,
            self.comm,
            self.recent,
            self.open,
            members,
        ) = saved::load(state)?;
        for (inc, details) in self.open.iter_mut().zip(members) {
            for (fp, labels, trace_ids) in details {
                if let Some(m) = inc.alerts.get_mut(&fp) {
                    (m.labels, m.trace_ids) = (labels, trace_ids);
                }
            }
        }
        Ok(())
    }

    pub fn new(pipeline: &str, config: IncidentConfig) -> Self {
        IncidentTracker {
            config,
            pipeline: pipeline.to_string(),
            baselines: Baselines::default(),
            graph: graph::CallGraph::default(),
            comm: comm::CommGraph::default(),
            recent: VecDeque::new(),
            open: Vec::new(),
        }
    }

    /// Learns training jobs' NCCL topology from a window's `logs` table (before `observe`).
    pub fn learn_comm(&mut self, logs: &datafusion::arrow::record_batch::RecordBatch) {
        self.comm.learn(logs);
    }

    /// The `ranks` table (`comm::ranks_table`) as known now.
    pub fn ranks_batch(&self) -> datafusion::arrow::record_batch::RecordBatch {
        self.comm.ranks_batch()
    }

    /// One evaluated window: its call edges (`graph::edges_of` its spans), its indicator
    /// rows (one list per indicator) and the lifecycle's notifications. Returns the records
    /// of incidents that opened, changed or resolved.
    pub fn observe(
        &mut self,
        window: Window,
        edges: std::collections::BTreeSet<(String, String)>,
        rows: &[Vec<QueryRow>],
        notifications: &[Alert],
    ) -> Vec<IncidentRecord> {
        self.graph.push(edges);
        // Entity names of open incidents (the values of their `label=value` entities).
        let frozen: BTreeSet<String> = self
            .open
            .iter()
            .flat_map(|inc| &inc.entities)
            .map(|e| entity_name(e).to_string())
            .collect();
        let observations = self.baselines.observe(&self.config, rows, &frozen);
        let scores = rank::score_window(&self.config, window, &observations);
        log_scores(&self.config, &scores, &observations);
        self.recent.push_back(scores.clone());
        while self.recent.len() > self.config.lookback + 1 {
            self.recent.pop_front();
        }
        let mut changed: BTreeMap<String, &'static str> = BTreeMap::new();
        for inc in &mut self.open {
            inc.accumulator.add(&self.config, &scores, true);
        }
        self.place(window.end, notifications, &mut changed);
        self.merge_new(window.end, &mut changed);
        let mut out = Vec::new();
        let mut still_open = Vec::new();
        for mut inc in std::mem::take(&mut self.open) {
            if inc.fold(window.end) {
                changed.entry(inc.id.clone()).or_insert("updated");
            }
            let alerting: BTreeSet<String> = inc
                .entities
                .iter()
                .map(|e| entity_name(e).to_string())
                .collect();
            let ranking = inc.accumulator.rank(&self.config, &alerting);
            if top(&ranking) != top(&inc.ranking) && ranking.verdict != "no_evidence" {
                let detail = match ranking.suspects.first() {
                    Some(s) => format!("{} ({}, score {})", s.entity, ranking.verdict, s.score),
                    None => ranking.verdict.to_string(),
                };
                inc.note(window.end, "suspect_changed", detail);
                changed.entry(inc.id.clone()).or_insert("updated");
            }
            inc.ranking = ranking;
            let resolved = inc.all_resolved();
            if resolved {
                changed.insert(inc.id.clone(), "resolved");
            }
            if let Some(status) = changed.get(&inc.id) {
                out.push(self.record(&inc, status, window.end));
            }
            if !resolved {
                still_open.push(inc);
            }
        }
        self.open = still_open;
        out
    }

    /// Puts each of the window's notifications into its incident (opening one when none
    /// takes it). Resolutions first: an incident whose every alert resolves in this window
    /// takes only what names its own entities (the same problem again); a neighbour's
    /// alert starting now no longer overlaps it in time and opens an incident of its own.
    fn place(
        &mut self,
        at: EventTime,
        notifications: &[Alert],
        changed: &mut BTreeMap<String, &'static str>,
    ) {
        let resolved_first = notifications
            .iter()
            .filter(|a| a.status == AlertStatus::Resolved)
            .chain(
                notifications
                    .iter()
                    .filter(|a| a.status != AlertStatus::Resolved),
            );
        for alert in resolved_first {
            let entities = entities_of(alert, &self.config.entity_labels);
            let Some((i, opened)) = self.incident_for(alert, &entities, at) else {
                continue;
            };
            if self.open[i].record(alert, entities, at) {
                let id = self.open[i].id.clone();
                changed
                    .entry(id)
                    .or_insert(if opened { "opened" } else { "updated" });
            }
        }
    }

    /// An incident opened in this window that its later alerts tied to an older one (they
    /// arrived before the alert that names the shared entity) joins it.
    fn merge_new(&mut self, at: EventTime, changed: &mut BTreeMap<String, &'static str>) {
        let mut i = self.open.len();
        while i > 1 {
            i -= 1;
            if self.open[i].opened_at != at {
                continue;
            }
            let target = (0..i).find(|&j| self.takes(&self.open[j], &self.open[i].entities));
            if let Some(j) = target {
                let merged = self.open.remove(i);
                changed.remove(&merged.id);
                let into = &mut self.open[j];
                into.entities.extend(merged.entities);
                into.alerts.extend(merged.alerts);
                into.timeline.extend(merged.timeline);
                changed.entry(into.id.clone()).or_insert("updated");
            }
        }
    }

    /// `inc` shares an entity with `entities`, or a call edge joins them.
    fn related(&self, inc: &Incident, entities: &BTreeSet<String>) -> bool {
        !inc.entities.is_disjoint(entities)
            || entities.iter().any(|e| {
                inc.entities
                    .iter()
                    .any(|f| self.graph.adjacent(entity_name(e), entity_name(f)))
            })
    }

    /// Whether `inc` takes an alert naming `entities`: related to it while one of its alerts
    /// fires; sharing an entity once all have resolved.
    fn takes(&self, inc: &Incident, entities: &BTreeSet<String>) -> bool {
        if inc.all_resolved() {
            !inc.entities.is_disjoint(entities)
        } else {
            self.related(inc, entities)
        }
    }

    /// The open incident `alert` belongs to — the one that has it, else the oldest that
    /// takes it (an alert without entities joins the newest with a firing alert) — or a
    /// new one. The index, and whether it was opened now; `None` for the resolution of an
    /// alert no open incident holds.
    fn incident_for(
        &mut self,
        alert: &Alert,
        entities: &BTreeSet<String>,
        at: EventTime,
    ) -> Option<(usize, bool)> {
        if let Some(i) = self
            .open
            .iter()
            .position(|inc| inc.alerts.contains_key(&alert.fingerprint))
        {
            return Some((i, false));
        }
        if alert.status == AlertStatus::Resolved {
            return None;
        }
        let sharing = if entities.is_empty() {
            self.open.iter().rposition(|inc| !inc.all_resolved())
        } else {
            self.open.iter().position(|inc| self.takes(inc, entities))
        };
        if let Some(i) = sharing {
            return Some((i, false));
        }
        let mut accumulator = rank::Accumulator::default();
        for (i, w) in self.recent.iter().enumerate() {
            accumulator.add(&self.config, w, i + 1 == self.recent.len());
        }
        let id = fnv_hex(&[&self.pipeline, &alert.fingerprint, &at.to_rfc3339()]);
        self.open.push(Incident {
            id,
            opened_at: at,
            entities: BTreeSet::new(),
            alerts: BTreeMap::new(),
            timeline: Vec::new(),
            accumulator,
            ranking: Ranking::default(),
        });
        Some((self.open.len() - 1, true))
    }

    fn record(&self, inc: &Incident, status: &'static str, at: EventTime) -> IncidentRecord {
        let r = &inc.ranking;
        let verdict = if self.config.indicators.is_empty() {
            "no_indicators".to_string()
        } else {
            r.verdict.to_string()
        };
        IncidentRecord {
            id: inc.id.clone(),
            status,
            pipeline: self.pipeline.clone(),
            opened_at: inc.opened_at.to_rfc3339(),
            updated_at: at.to_rfc3339(),
            resolved_at: (status == "resolved").then(|| at.to_rfc3339()),
            entities: inc.entities.iter().cloned().collect(),
            alerts: inc.alerts.values().cloned().collect(),
            timeline: inc.timeline.clone(),
            verdict,
            suspects: (r.suspects.iter().cloned())
                .map(|mut s| {
                    s.placement = self.comm.placement(&s.entity);
                    s
                })
                .collect(),
            first_anomaly: r.first_anomaly.clone(),
            propagation_path: r.propagation_path.clone(),
            blocking_link: (r.verdict == "suspect")
                .then(|| r.suspects.first())
                .flatten()
                .and_then(|s| self.comm.blocking_link(&s.entity)),
            state_bytes: self.baselines.approx_bytes(),
        }
    }

    /// Annotations for the alerts of open incidents: the incident's id and, when the
    /// ranking names one, its top suspect.
    pub fn annotations(&self, fingerprint: &str) -> BTreeMap<String, String> {
        let mut notes = BTreeMap::new();
        let Some(inc) = self
            .open
            .iter()
            .find(|inc| inc.alerts.contains_key(fingerprint))
        else {
            return notes;
        };
        if self.config.indicators.is_empty() {
            return notes;
        }
        notes.insert("incident_id".into(), inc.id.clone());
        if let (Some(s), "suspect") = (inc.ranking.suspects.first(), inc.ranking.verdict.as_ref()) {
            notes.insert("root_cause".into(), s.entity.clone());
            notes.insert("root_cause_score".into(), format!("{:.2}", s.score));
        }
        notes
    }
}

/// At debug level the window's top entities; at trace level every anomalous observation.
fn log_scores(config: &IncidentConfig, scores: &WindowScores, observations: &[Observation]) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let mut top: Vec<(&String, f64)> = scores.entities.iter().map(|(e, s)| (e, s.score)).collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top.truncate(5);
    tracing::debug!(window_start = %scores.window.start, ?top,
        observations = observations.len(), "Entity scores of the window.");
    for o in observations
        .iter()
        .filter(|o| o.deviation >= config.threshold)
    {
        tracing::trace!(window_start = %scores.window.start, entity = %o.key.entity,
            callee = ?o.key.callee, indicator = %o.key.name, value = o.value,
            baseline = o.baseline, deviation = o.deviation, "Anomalous observation.");
    }
}

/// The value of a `label=value` entity.
fn entity_name(entity: &str) -> &str {
    entity.split_once('=').map_or(entity, |(_, v)| v)
}

fn top(r: &Ranking) -> Option<(&str, &str)> {
    r.suspects
        .first()
        .map(|s| (s.entity.as_str(), r.verdict.as_ref()))
}

#[cfg(test)]
mod tests;
