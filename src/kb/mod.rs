//! The knowledge base: a pure stage after alert grouping that matches each firing alert to
//! remediations, validates them against the alert's evidence and says how sure it is.
//!
//! - [`entry`]: entries as data (`pipelines/<name>/kb/*.toml`, read by `load`).
//! - [`text`], [`index`]: the alert's and the entries' text as TF-IDF vectors; cosine
//!   similarity ranks the entries, the structured hints (alert names, label regexes,
//!   evidence fields) add to it, and a contradicting label excludes an entry.
//! - [`validate`]: each candidate's preconditions, SQL in the rules' sandbox.
//! - [`score`]: the calibrated confidence, and the entry's track record from feedback.
//! - [`feedback`]: verdicts on suggestions, per-entry statistics, candidate entries.
//!
//! Deterministic: no I/O, no clock; ties break by entry id.

pub mod context;
pub mod entry;
pub mod eval;
pub mod feedback;
pub mod index;
pub mod score;
pub mod suggestion;
pub mod text;
pub mod validate;

use std::path::PathBuf;

use serde::Deserialize;

use crate::alert::{fnv_hex, render_template, Alert, AlertStatus};
use crate::error::Result;
use crate::model::{AlignedBatch, Severity};
use crate::rules::{EvalBudget, EvalLimits};
use entry::{Entry, OnFail};
use feedback::KbState;
use index::Index;
use score::Hints;
use suggestion::{Check, Closest, MatchedOn, Suggestion, Validation};
use text::Analyzer;
use validate::Preconditions;

/// `[kb]` in `pipeline.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KbConfig {
    /// Directory of the entries, relative to the pipeline directory. Default `"kb"`; a
    /// pipeline without it suggests nothing.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// Most suggestions per alert. Default 3.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// A suggestion below this confidence for the alert's severity `needs_review`: it also
    /// goes to the review output and is worded as a question.
    #[serde(default)]
    pub review_below: ReviewThresholds,
    /// When the best confidence is below this, the record says "no known remediation" and
    /// lists the closest entries instead. Default 0.5: a suggestion more likely wrong than
    /// right is not made.
    #[serde(default = "default_abstain")]
    pub abstain_below: f64,
    /// Feedback verdicts an entry needs before its track record changes its confidence.
    /// Default 5.
    #[serde(default = "default_min_verdicts")]
    pub min_verdicts: u32,
    /// File (relative to the pipeline directory) keeping the feedback statistics across
    /// restarts. Unset: statistics are rebuilt from the feedback input alone.
    #[serde(default)]
    pub state: Option<PathBuf>,
}

/// Review thresholds per severity: the more urgent, the surer a suggestion must be to go
/// out without a person confirming it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewThresholds {
    /// Default 0.7.
    #[serde(default = "seven_tenths")]
    pub critical: f64,
    /// Default 0.6.
    #[serde(default = "six_tenths")]
    pub warning: f64,
    /// Default 0.5.
    #[serde(default = "half")]
    pub info: f64,
}

fn default_dir() -> PathBuf {
    PathBuf::from("kb")
}
fn default_top_k() -> usize {
    3
}
fn default_abstain() -> f64 {
    0.5
}
fn default_min_verdicts() -> u32 {
    5
}
fn seven_tenths() -> f64 {
    0.7
}
fn six_tenths() -> f64 {
    0.6
}
fn half() -> f64 {
    0.5
}

impl Default for ReviewThresholds {
    fn default() -> Self {
        ReviewThresholds {
            critical: seven_tenths(),
            warning: six_tenths(),
            info: half(),
        }
    }
}

impl Default for KbConfig {
    fn default() -> Self {
        KbConfig {
            dir: default_dir(),
            top_k: default_top_k(),
            review_below: ReviewThresholds::default(),
            abstain_below: default_abstain(),
            min_verdicts: default_min_verdicts(),
            state: None,
        }
    }
}

impl ReviewThresholds {
    fn for_severity(&self, severity: Option<&str>) -> f64 {
        match severity {
            Some(s) if s == Severity::Critical.as_str() => self.critical,
            Some(s) if s == Severity::Info.as_str() => self.info,
            _ => self.warning,
        }
    }
}

/// An entry ranked for an alert, before preconditions.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub entry: usize,
    pub similarity: f64,
    pub hints: Hints,
    pub score: f64,
    pub terms: Vec<String>,
}

/// A candidate after its preconditions, with its confidence.
#[derive(Debug, Clone)]
struct Judged {
    candidate: Candidate,
    score: f64,
    /// Ahead of the next (the best) or behind the best (the others).
    margin: f64,
    validation: Vec<Validation>,
    confidence: f64,
}

/// Entries, their index and preconditions, and what feedback taught.
pub struct KnowledgeBase {
    config: KbConfig,
    entries: Vec<Entry>,
    analyzer: Analyzer,
    index: Index,
    preconditions: Preconditions,
    state: KbState,
}

/// The text of an alert that is matched: its name (split into words), annotations, label
/// values and evidence (names and text values), and `extra` (the error templates of its
/// window).
pub fn alert_text(alert: &Alert, extra: &[String]) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(name) = alert.labels.get("alertname") {
        parts.push(name.clone());
        parts.push(name.clone());
    }
    parts.push(alert.rule_id.clone());
    parts.extend(alert.annotations.values().cloned());
    for (k, v) in &alert.labels {
        if k != "alertname" && k != "severity" {
            parts.push(format!("{k} {v}"));
        }
    }
    for (k, v) in &alert.evidence.values {
        match v {
            serde_json::Value::String(s) => parts.push(format!("{k} {s}")),
            _ => parts.push(k.clone()),
        }
    }
    parts.extend(extra.iter().cloned());
    parts.join("\n")
}

impl KnowledgeBase {
    /// Indexes the entries and plans their preconditions.
    pub async fn new(entries: Vec<Entry>, config: KbConfig, limits: EvalLimits) -> Result<Self> {
        let analyzer = Analyzer::default();
        let docs: Vec<Vec<String>> = entries.iter().map(|e| analyzer.terms(&e.text())).collect();
        let index = Index::build(&docs);
        let preconditions = Preconditions::new(&entries, limits).await?;
        Ok(KnowledgeBase {
            config,
            entries,
            analyzer,
            index,
            preconditions,
            state: KbState::default(),
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Adds the columns of the window's tables the preconditions and the suggestions'
    /// context read to `into`.
    pub fn read_columns(&self, into: &mut crate::tables::ColumnSet) {
        self.preconditions.read_columns(into);
        for column in context::LOG_COLUMNS {
            into.add("logs", column);
        }
    }

    /// What feedback taught so far.
    pub fn state(&self) -> &KbState {
        &self.state
    }

    /// Goes on from persisted statistics.
    pub fn restore(&mut self, state: KbState) {
        self.state = state;
    }

    /// Applies one feedback record; false when it was a duplicate or names no entry.
    pub fn apply_feedback(&mut self, f: &feedback::Feedback) -> bool {
        let known = |id: &str| self.entries.iter().any(|e| e.id() == id);
        let action_matches = f.action.as_deref().map(|a| {
            let q = self.index.vector(&self.analyzer.terms(a));
            self.index
                .similarities(&q)
                .into_iter()
                .any(|s| s >= feedback::ACTION_MATCH)
        });
        let entry = feedback::remediation_of(&f.suggestion_id).filter(|id| known(id));
        self.state.apply(f, entry, action_matches.unwrap_or(true))
    }

    /// The `limit` entries an alert is most likely about, best first: similarity plus
    /// hints; entries whose label hints the alert contradicts are left out.
    pub fn rank(&self, alert: &Alert, limit: usize) -> Vec<Candidate> {
        self.rank_with(&context::enriched(alert), &[], limit)
    }

    /// [`KnowledgeBase::rank`] of an enriched alert with extra text.
    fn rank_with(&self, alert: &Alert, extra: &[String], limit: usize) -> Vec<Candidate> {
        let query = self
            .index
            .vector(&self.analyzer.terms(&alert_text(alert, extra)));
        let sims = self.index.similarities(&query);
        let name = alert.labels.get("alertname").map(String::as_str);
        // Scores for all without allocating; hint names and terms for the leaders only.
        let mut scored: Vec<(f64, usize, Hints)> = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let h = hints(e, alert, name, false)?;
                Some((score::ranking(sims[i], &h), i, h))
            })
            .collect();
        let by_score = |a: &(f64, usize, Hints), b: &(f64, usize, Hints)| {
            b.0.total_cmp(&a.0)
                .then_with(|| self.entries[a.1].id().cmp(self.entries[b.1].id()))
        };
        if scored.len() > limit {
            scored.select_nth_unstable_by(limit, by_score);
            scored.truncate(limit);
        }
        scored.sort_by(by_score);
        scored
            .into_iter()
            .map(|(score, i, _)| Candidate {
                entry: i,
                similarity: sims[i],
                score,
                hints: hints(&self.entries[i], alert, name, true).expect("no contradiction"),
                terms: self.index.shared_terms(&query, i, 6),
            })
            .collect()
    }

    /// The suggestions for a firing alert, best first: at most `top_k`, each validated and
    /// with its confidence; or one "no known remediation" record with the closest entries.
    pub async fn suggest(
        &self,
        alert: &Alert,
        batch: &AlignedBatch,
        budget: &dyn EvalBudget,
    ) -> Vec<Suggestion> {
        if alert.status != AlertStatus::Firing || self.entries.is_empty() {
            return Vec::new();
        }
        let alert = context::enriched(alert);
        let judged = self.judge(&alert, batch, budget).await;
        if self.abstains(&judged) {
            return vec![self.no_remediation(&alert, &judged)];
        }
        judged
            .iter()
            .take(self.config.top_k)
            .enumerate()
            .map(|(rank, j)| self.suggestion(&alert, j, rank as u32 + 1))
            .collect()
    }

    /// True when no candidate is sure enough to be suggested.
    fn abstains(&self, judged: &[Judged]) -> bool {
        judged
            .first()
            .is_none_or(|b| b.confidence < self.config.abstain_below)
    }

    /// Runs the preconditions of the leading candidates, re-ranks, and computes each one's
    /// confidence from its score and its margin to the next. `alert` is enriched
    /// ([`context::enriched`]); the window adds its error templates to the alert's text.
    async fn judge(
        &self,
        alert: &Alert,
        batch: &AlignedBatch,
        budget: &dyn EvalBudget,
    ) -> Vec<Judged> {
        let mut judged = Vec::new();
        let templates = context::window_templates(batch, alert, 3);
        self.preconditions.set_alert(alert);
        for c in self.rank_with(alert, &templates, self.config.top_k + 2) {
            let checks = self.preconditions.check(c.entry, batch, budget).await;
            let mut score = c.score;
            let mut removed = false;
            for (v, on_fail) in &checks {
                match (v.result, on_fail) {
                    (Check::Failed, OnFail::Remove) => removed = true,
                    (Check::Failed, OnFail::Lower) => score -= score::FAILED_PRECONDITION,
                    (Check::Passed, _) => score += score::PASSED_PRECONDITION,
                    _ => {}
                }
            }
            if !removed {
                judged.push(Judged {
                    validation: checks.into_iter().map(|(v, _)| v).collect(),
                    candidate: c,
                    score,
                    margin: 0.0,
                    confidence: 0.0,
                });
            }
        }
        judged.sort_by(|a, b| {
            b.score.total_cmp(&a.score).then_with(|| {
                let (x, y) = (
                    &self.entries[a.candidate.entry],
                    &self.entries[b.candidate.entry],
                );
                x.id().cmp(y.id())
            })
        });
        let best = judged.first().map_or(0.0, |j| j.score);
        let second = judged.get(1).map_or(0.0, |j| j.score);
        for (i, j) in judged.iter_mut().enumerate() {
            j.margin = if i == 0 {
                best - second
            } else {
                j.score - best
            };
            let calibrated = score::calibrated(j.score, j.margin, j.candidate.hints.alert);
            let id = self.entries[j.candidate.entry].id();
            let (right, verdicts) = self.state.record(id);
            j.confidence =
                score::with_track_record(calibrated, right, verdicts, self.config.min_verdicts);
        }
        // The track record may reorder.
        judged.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        judged
    }

    fn suggestion(&self, alert: &Alert, j: &Judged, rank: u32) -> Suggestion {
        let e = &self.entries[j.candidate.entry];
        let review = self
            .config
            .review_below
            .for_severity(alert.labels.get("severity").map(String::as_str));
        let needs_review = j.confidence < review;
        let alertname = alert.labels.get("alertname").cloned().unwrap_or_default();
        Suggestion {
            id: suggestion_id(e.id(), &alert.id),
            alert_id: alert.id.clone(),
            alert_fingerprint: alert.fingerprint.clone(),
            question: needs_review.then(|| {
                format!(
                    "Could this be it: {}? (confidence {:.2}; please confirm or reject)",
                    e.file.title, j.confidence
                )
            }),
            alertname,
            remediation_id: Some(e.id().to_string()),
            title: e.file.title.clone(),
            rank,
            confidence: round3(j.confidence),
            needs_review,
            steps: e
                .file
                .steps
                .iter()
                .map(|s| render_template(s, alert))
                .collect(),
            validation: j.validation.clone(),
            runbook_url: Some(e.file.runbook_url.clone()),
            references: e.file.references.clone(),
            matched_on: Some(MatchedOn {
                similarity: round3(j.candidate.similarity),
                score: round3(j.score),
                margin: round3(j.margin),
                hints: j.candidate.hints.held.clone(),
                terms: j.candidate.terms.clone(),
            }),
            closest: Vec::new(),
        }
    }

    fn no_remediation(&self, alert: &Alert, judged: &[Judged]) -> Suggestion {
        Suggestion {
            id: suggestion_id("none", &alert.id),
            alert_id: alert.id.clone(),
            alert_fingerprint: alert.fingerprint.clone(),
            alertname: alert.labels.get("alertname").cloned().unwrap_or_default(),
            remediation_id: None,
            title: "No known remediation".into(),
            rank: 1,
            confidence: 0.0,
            needs_review: true,
            question: Some(
                "The knowledge base knows no remediation for this alert. What fixed it?".into(),
            ),
            steps: Vec::new(),
            validation: Vec::new(),
            runbook_url: None,
            references: Vec::new(),
            matched_on: None,
            closest: judged
                .iter()
                .take(self.config.top_k)
                .map(|j| {
                    let e = &self.entries[j.candidate.entry];
                    Closest {
                        remediation_id: e.id().to_string(),
                        title: e.file.title.clone(),
                        confidence: round3(j.confidence),
                    }
                })
                .collect(),
        }
    }
}

/// `REMEDIATION-HASH`: the remediation stays readable in the id, so feedback that quotes
/// only the suggestion id still reaches its entry.
fn suggestion_id(remediation: &str, alert_id: &str) -> String {
    format!("{remediation}-{}", fnv_hex(&[alert_id, remediation]))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The entry's hints against the alert (with the names of those that held when `named`);
/// `None` when a label contradicts one.
fn hints(e: &Entry, alert: &Alert, name: Option<&str>, named: bool) -> Option<Hints> {
    let mut h = Hints::default();
    if name.is_some_and(|n| e.file.hints.alerts.iter().any(|a| a == n)) {
        h.alert = true;
        if named {
            h.held.push("alertname".into());
        }
    }
    let mut matched = 0;
    for (label, re) in &e.labels {
        match alert.labels.get(label) {
            Some(v) if re.is_match(v) => {
                matched += 1;
                if named {
                    h.held.push(format!("label:{label}"));
                }
            }
            Some(_) => return None,
            None => {}
        }
    }
    if !e.labels.is_empty() {
        h.labels = f64::from(matched) / e.labels.len() as f64;
    }
    let wanted = &e.file.hints.evidence;
    let present = || {
        wanted
            .iter()
            .filter(|f| alert.evidence.values.contains_key(*f))
    };
    if !wanted.is_empty() {
        h.evidence = present().count() as f64 / wanted.len() as f64;
    }
    if named {
        h.held.extend(present().map(|f| format!("evidence:{f}")));
    }
    Some(h)
}

#[cfg(test)]
mod tests;
