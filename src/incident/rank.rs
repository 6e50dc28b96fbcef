//! Root-cause ranking: per window, each entity's score from its indicators' deviations;
//! per incident, the best of its windows, a walk down the call graph to the anomalous node
//! whose callees are healthy, the first anomalous point, and a verdict that abstains when
//! the top suspect does not stand out.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::baseline::Observation;
use super::config::IncidentConfig;
use crate::model::Window;

/// Of the other methods' scores, how much adds to the best one's.
const OTHER_METHODS: f64 = 0.25;
/// How much being the trace-graph walk's candidate adds to a suspect's score (a share).
const GRAPH_BONUS: f64 = 0.5;
/// The two sides of a node's call edges.
const OUT: bool = false;
const IN: bool = true;
/// Evidence items kept per suspect.
const EVIDENCE_ITEMS: usize = 3;

/// One indicator reading that makes an entity suspect.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Evidence {
    /// The indicator's id in `[[incidents.indicators]]`.
    pub method: String,
    /// The row's `indicator` column.
    pub indicator: String,
    /// For an edge: the other end (`caller->callee` is `edge`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
    pub value: f64,
    pub baseline: f64,
    /// Robust units (positive: the bad direction).
    pub deviation: f64,
    pub window_start: String,
}

/// An entity's score in one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct EntityScore {
    pub score: f64,
    /// Per indicator id.
    pub methods: BTreeMap<String, f64>,
    pub evidence: Vec<Evidence>,
}

/// Every entity's score in one window, and the call edges seen.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct WindowScores {
    pub window: Window,
    pub entities: BTreeMap<String, EntityScore>,
    pub edges: BTreeSet<(String, String)>,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Per-entity deviations of one window, on their way to scores.
struct Tally<'a> {
    config: &'a IncidentConfig,
    start: String,
    /// Per (entity, indicator): its series' weighted deviations (nodes) or edge shares.
    node: BTreeMap<(String, usize), Vec<f64>>,
    edge: BTreeMap<(String, usize), Vec<f64>>,
    evidence: BTreeMap<String, Vec<(f64, Evidence)>>,
}

impl Tally<'_> {
    fn evidence_of(&self, o: &Observation, edge: Option<String>) -> Evidence {
        Evidence {
            method: self.config.indicators[o.key.indicator].id.clone(),
            indicator: o.key.name.clone(),
            edge,
            value: round3(o.value),
            baseline: round3(o.baseline),
            deviation: round3(o.deviation),
            window_start: self.start.clone(),
        }
    }

    fn add_node(&mut self, o: &Observation, d: f64) {
        let k = &o.key;
        self.node
            .entry((k.entity.clone(), k.indicator))
            .or_default()
            .push(d);
        if d > 0.0 {
            let ev = self.evidence_of(o, None);
            self.evidence
                .entry(k.entity.clone())
                .or_default()
                .push((d, ev));
        }
    }

    /// Shares each edge's deviation between its ends: many slow edges and few healthy ones
    /// on the same side (the caller's outgoing calls, the callee's incoming ones) weigh
    /// bad² / all.
    fn add_edges(&mut self, edges: &[(&Observation, f64)]) {
        // Per (entity, indicator, side): anomalous edges, all edges.
        let mut counts: BTreeMap<(&str, usize, bool), (f64, f64)> = BTreeMap::new();
        for (o, d) in edges {
            let callee = o.key.callee.as_deref().unwrap_or_default();
            for end in [(o.key.entity.as_str(), OUT), (callee, IN)] {
                let (bad, all) = counts.entry((end.0, o.key.indicator, end.1)).or_default();
                *all += 1.0;
                if *d >= self.config.threshold {
                    *bad += 1.0;
                }
            }
        }
        for (o, d) in edges {
            let (a, i) = (o.key.entity.as_str(), o.key.indicator);
            let callee = o.key.callee.as_deref().unwrap_or_default();
            let weight = |x: &str, side: bool| {
                let (bad, all) = counts.get(&(x, i, side)).copied().unwrap_or((0.0, 1.0));
                bad * bad / all
            };
            let (na, nb) = (weight(a, OUT), weight(callee, IN));
            for (end, mine) in [(a, na), (callee, nb)] {
                let share = if na + nb > 0.0 { mine / (na + nb) } else { 0.5 };
                let part = d * share;
                self.edge
                    .entry((end.to_string(), i))
                    .or_default()
                    .push(part);
                if part > 0.0 {
                    let ev = self.evidence_of(o, Some(format!("{a}->{callee}")));
                    self.evidence
                        .entry(end.to_string())
                        .or_default()
                        .push((part, ev));
                }
            }
        }
    }

    /// Per entity and indicator id: the mean of the `top` worst series (nodes), the largest
    /// share (edges).
    fn methods(&mut self) -> BTreeMap<String, BTreeMap<String, f64>> {
        let mut methods: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        for ((entity, i), ds) in std::mem::take(&mut self.node) {
            let top = self.config.indicators[i].top;
            let mut ds = ds;
            ds.sort_by(|a, b| b.total_cmp(a));
            let mean = ds.iter().take(top).sum::<f64>() / top as f64;
            let id = self.config.indicators[i].id.clone();
            methods.entry(entity).or_default().insert(id, mean);
        }
        for ((entity, i), ds) in std::mem::take(&mut self.edge) {
            let worst = ds.into_iter().fold(0.0, f64::max);
            let m = methods.entry(entity).or_default();
            let e = m.entry(self.config.indicators[i].id.clone()).or_default();
            *e = e.max(worst);
        }
        methods
    }
}

/// Scores one window's observations. A node indicator counts the mean of its `top` worst
/// series. An edge's deviation is shared between its ends by how many of the caller's
/// outgoing and the callee's incoming edges are anomalous (the blocking node is the one
/// common to the slow edges — a slow node slows its calls or its answers, a neighbour sees
/// one slow edge among healthy ones), and an edge indicator counts the entity's largest
/// share. An entity's score is its best method plus a quarter of the others.
pub fn score_window(
    config: &IncidentConfig,
    window: Window,
    observations: &[Observation],
) -> WindowScores {
    let mut tally = Tally {
        config,
        start: window.start.to_rfc3339(),
        node: BTreeMap::new(),
        edge: BTreeMap::new(),
        evidence: BTreeMap::new(),
    };
    let mut edge_obs = Vec::new();
    let mut edges = BTreeSet::new();
    for o in observations {
        let d = o.deviation.max(0.0) * config.indicators[o.key.indicator].weight;
        match &o.key.callee {
            None => tally.add_node(o, d),
            Some(callee) => {
                edges.insert((o.key.entity.clone(), callee.clone()));
                edge_obs.push((o, d));
            }
        }
    }
    tally.add_edges(&edge_obs);
    let entities = tally
        .methods()
        .into_iter()
        .map(|(entity, methods)| {
            let best = methods.values().copied().fold(0.0, f64::max);
            let sum: f64 = methods.values().sum();
            let mut ev = tally.evidence.remove(&entity).unwrap_or_default();
            ev.sort_by(|a, b| b.0.total_cmp(&a.0));
            let score = EntityScore {
                score: best + OTHER_METHODS * (sum - best),
                methods,
                evidence: ev
                    .into_iter()
                    .take(EVIDENCE_ITEMS)
                    .map(|(_, e)| e)
                    .collect(),
            };
            (entity, score)
        })
        .collect();
    WindowScores {
        window,
        entities,
        edges,
    }
}

/// One entity across an incident's windows: its best window, and when it first was
/// anomalous.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
struct Accumulated {
    best: EntityScore,
    /// Sum of its window scores: a cause persists, noise comes and goes.
    total: f64,
    methods: BTreeMap<String, f64>,
    onset: Option<(crate::model::EventTime, String)>,
    /// Anomalous in the last window it was scored in.
    in_run: bool,
    /// Look-back scores not yet in `total`: they count once the entity is anomalous while
    /// the incident is open (a blip that passed before it opened is not its cause).
    /// (Defaults keep snapshots written before these fields readable.)
    #[serde(default)]
    held: f64,
    /// Anomalous in a window since the incident opened.
    #[serde(default)]
    live: bool,
}

/// What an incident has seen so far, bounded by its entities and edges.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Accumulator {
    entities: BTreeMap<String, Accumulated>,
    edges: BTreeSet<(String, String)>,
}

/// A ranked suspect.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Suspect {
    pub rank: usize,
    /// The entity (for service indicators, the service name).
    pub entity: String,
    /// The same as `entity`: the field evaluations of service-level ranking read.
    pub service: String,
    pub score: f64,
    /// Per method (indicator id, and `graph` for the trace-graph walk's candidate).
    pub methods: BTreeMap<String, f64>,
    pub evidence: Vec<Evidence>,
    /// Start of the first window in which it was anomalous.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onset: Option<String>,
    /// A training rank's host and GPU (`comm`), filled when the incident is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<super::comm::Placement>,
}

/// The first anomalous point of an incident.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FirstAnomaly {
    pub entity: String,
    pub indicator: String,
    pub time: String,
}

/// An incident's ranking.
#[derive(Debug, Clone, PartialEq, Default, Serialize, serde::Deserialize)]
pub struct Ranking {
    /// `suspect`: the top suspect stands out; `unknown`: it does not (abstained; the
    /// ranking is still listed with its evidence); `no_evidence`: no indicator deviated.
    pub verdict: std::borrow::Cow<'static, str>,
    pub suspects: Vec<Suspect>,
    pub first_anomaly: Option<FirstAnomaly>,
    /// `caller->callee` edges walked from the entry to the candidate.
    pub propagation_path: Vec<String>,
}

impl Accumulator {
    /// Adds a window's scores; `live` is false for the look-back windows before the
    /// incident opened.
    pub fn add(&mut self, config: &IncidentConfig, w: &WindowScores, live: bool) {
        self.edges.extend(w.edges.iter().cloned());
        for (entity, s) in &w.entities {
            let a = self.entities.entry(entity.clone()).or_default();
            if s.score > a.best.score {
                a.best = s.clone();
            }
            if live {
                a.total += s.score;
                if !a.live && s.score >= config.threshold {
                    a.live = true;
                    a.total += std::mem::take(&mut a.held);
                }
            } else {
                a.held += s.score;
            }
            for (m, v) in &s.methods {
                let e = a.methods.entry(m.clone()).or_default();
                *e = e.max(*v);
            }
            // The onset is the start of the latest unbroken anomalous run: a blip before
            // it is noise, not the first anomalous point.
            let anomalous = s.score >= config.threshold;
            if anomalous && !a.in_run {
                let what = s
                    .evidence
                    .first()
                    .map(|e| e.indicator.clone())
                    .unwrap_or_default();
                a.onset = Some((w.window.start, what));
            }
            a.in_run = anomalous;
        }
    }

    /// What the walk follows: every window seen, the look-back's included (where the
    /// anomaly went before the alert shows the path even when it has passed since).
    fn walk_score(&self, entity: &str) -> f64 {
        self.entities.get(entity).map_or(0.0, |a| a.total + a.held)
    }

    /// From each alerting service and each entry (a caller no one calls), step to the most
    /// anomalous anomalous callee until none is; the end with the highest score is the
    /// candidate. The path runs from an entry through the walk's start to the candidate.
    fn walk(&self, threshold: f64, alerting: &BTreeSet<String>) -> Option<(String, Vec<String>)> {
        let mut callees: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let called: BTreeSet<&str> = self.edges.iter().map(|(_, b)| b.as_str()).collect();
        for (a, b) in &self.edges {
            callees.entry(a.as_str()).or_default().push(b.as_str());
        }
        let entries: Vec<&str> = callees
            .keys()
            .copied()
            .filter(|e| !called.contains(e))
            .collect();
        // The alerting services first, then every entry: a fault the alerts point at is
        // found even when noise elsewhere is what an entry's walk reaches.
        let mut origins: Vec<&str> = alerting
            .iter()
            .map(String::as_str)
            .filter(|s| callees.contains_key(s) || called.contains(s))
            .collect();
        origins.extend(entries.iter().copied().filter(|e| !alerting.contains(*e)));
        let mut best: Option<(f64, String, Vec<String>)> = None;
        for origin in origins {
            let (mut cur, mut path, mut seen) = (origin, Vec::new(), BTreeSet::from([origin]));
            loop {
                let next = callees
                    .get(cur)
                    .into_iter()
                    .flatten()
                    .filter(|c| !seen.contains(*c) && self.walk_score(c) >= threshold)
                    .max_by(|a, b| {
                        self.walk_score(a)
                            .total_cmp(&self.walk_score(b))
                            .then(b.cmp(a))
                    });
                let Some(next) = next else { break };
                path.push(format!("{cur}->{next}"));
                seen.insert(next);
                cur = next;
            }
            let s = self.walk_score(cur);
            if s >= threshold && best.as_ref().is_none_or(|b| s > b.0) {
                let mut full = entry_path(&callees, &entries, origin);
                full.extend(path);
                best = Some((s, cur.to_string(), full));
            }
        }
        best.map(|(_, c, p)| (c, p))
    }

    /// The ranking, the trace-graph walk starting at the `alerting` services (the names
    /// the incident's alerts carry).
    pub fn rank(&self, config: &IncidentConfig, alerting: &BTreeSet<String>) -> Ranking {
        let walk = self.walk(config.threshold, alerting);
        let mut suspects: Vec<Suspect> = self
            .entities
            .iter()
            .filter(|(_, a)| a.total > 0.0)
            .map(|(entity, a)| {
                let mut methods: BTreeMap<String, f64> = a
                    .methods
                    .iter()
                    .map(|(k, v)| (k.clone(), round3(*v)))
                    .collect();
                let mut score = a.total;
                if walk.as_ref().is_some_and(|(c, _)| c == entity) {
                    methods.insert("graph".into(), round3(score));
                    score *= 1.0 + GRAPH_BONUS;
                }
                Suspect {
                    rank: 0,
                    entity: entity.clone(),
                    service: entity.clone(),
                    score: round3(score),
                    methods,
                    evidence: a.best.evidence.clone(),
                    onset: a.onset.as_ref().map(|(t, _)| t.to_rfc3339()),
                    placement: None,
                }
            })
            .collect();
        // Ties go to the earlier onset: the first anomalous point.
        suspects.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.onset.is_none().cmp(&b.onset.is_none()))
                .then_with(|| a.onset.cmp(&b.onset))
                .then_with(|| a.entity.cmp(&b.entity))
        });
        suspects.truncate(config.top_k);
        for (i, s) in suspects.iter_mut().enumerate() {
            s.rank = i + 1;
        }
        let verdict = match suspects.as_slice() {
            [] => "no_evidence",
            [top, rest @ ..] => {
                let second = rest.first().map_or(0.0, |s| s.score);
                if top.score < config.threshold
                    || (top.score - second) < config.abstain_margin * top.score
                {
                    "unknown"
                } else {
                    "suspect"
                }
            }
        };
        let first_anomaly =
            self.first_anomaly(suspects.first().map(|s| s.entity.as_str()), walk.as_ref());
        Ranking {
            verdict: verdict.into(),
            suspects,
            first_anomaly,
            propagation_path: walk.map(|(_, p)| p).unwrap_or_default(),
        }
    }

    /// The first anomalous point: the top suspect's onset. A fault spreads from the
    /// suspect to its callers, so a caller on the path that was anomalous before it was
    /// drifting on its own (noise, not this fault). Only a suspect without an onset of its
    /// own (never over the threshold) takes the earliest on the walked path.
    fn first_anomaly(
        &self,
        top: Option<&str>,
        walk: Option<&(String, Vec<String>)>,
    ) -> Option<FirstAnomaly> {
        let onset_of = |e: &str| {
            let (entity, a) = self.entities.get_key_value(e)?;
            a.onset.as_ref().map(|(t, what)| (t, entity, what))
        };
        let on_path = walk.into_iter().flat_map(|(_, path)| path);
        let earliest_on_path = on_path
            .flat_map(|edge| edge.split("->"))
            .filter_map(onset_of)
            .min_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(b.1)));
        top.and_then(onset_of)
            .or(earliest_on_path)
            .map(|(t, e, what)| FirstAnomaly {
                entity: e.clone(),
                indicator: what.clone(),
                time: t.to_rfc3339(),
            })
    }
}

/// The shortest chain of calls from an entry to `to` (`caller->callee` each; empty when
/// `to` is an entry or no entry reaches it).
fn entry_path(callees: &BTreeMap<&str, Vec<&str>>, entries: &[&str], to: &str) -> Vec<String> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue: std::collections::VecDeque<&str> = entries.iter().copied().collect();
    let mut seen: BTreeSet<&str> = entries.iter().copied().collect();
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = Vec::new();
            let mut cur = node;
            while let Some(p) = parent.get(cur) {
                path.push(format!("{p}->{cur}"));
                cur = p;
            }
            path.reverse();
            return path;
        }
        for c in callees.get(node).into_iter().flatten() {
            if seen.insert(c) {
                parent.insert(c, node);
                queue.push_back(c);
            }
        }
    }
    Vec::new()
}
