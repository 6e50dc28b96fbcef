//! One shard's stage chain: traceback folding, alignment and watermarks, then per window
//! rules and detectors → alert lifecycle → grouping, and the alert-state hold of the
//! window's input. A shard's output depends only on its own records.

use std::collections::{BTreeMap, VecDeque};

use datafusion::arrow::record_batch::RecordBatch;
use tracing::{debug, warn};

use super::ledger::AlertStateHold;
use super::logclean::ShardFolder;
use crate::alert::{Alert, AlertStatus, Grouper, Lifecycle};
use crate::align::{TraceAligner, WatermarkTracker};
use crate::config::PipelineConfig;
use crate::detect::{DetectorConfig, DetectorSet};
use crate::incident::{IncidentRecord, IncidentTracker};
use crate::kb::suggestion::Suggestion;
use crate::kb::KnowledgeBase;
use crate::model::{AckId, AlignedBatch, EventTime};
use crate::rules::{EvalBudget, QueryEngine, RuleEngine, RuleFailure};
use crate::tables::ColumnSet;

/// What every shard evaluates its windows with.
pub struct Stages<'a> {
    pub rules: &'a RuleEngine,
    /// The detectors' source queries (their rows are samples, not findings).
    pub sources: &'a QueryEngine,
    /// The incident indicators' queries.
    pub indicators: &'a QueryEngine,
    pub budget: &'a dyn EvalBudget,
    pub kb: &'a KnowledgeBase,
    /// Earlier batches a shard keeps for rules whose `window` spans several windows.
    pub history: usize,
    /// The tables of those batches kept (the others are emptied): the ones such rules read.
    pub look_back_tables: &'a [String],
    /// `limits.max_deferred_acks`.
    pub max_deferred_acks: usize,
    /// State checkpoints: the input of the look-back windows is held (a snapshot too large
    /// to carry the look-back leaves it to be rebuilt from this input). Without them, the
    /// input of windows alert states depend on is held (a new owner rebuilds the states by
    /// re-reading it).
    pub checkpointed: bool,
}

/// What evaluating one window produced.
#[derive(Default)]
pub struct Evaluated {
    pub alerts: Vec<Alert>,
    /// The knowledge base's suggestions for alerts that started firing.
    pub suggestions: Vec<Suggestion>,
    pub failures: Vec<RuleFailure>,
    /// Incident records (opened, updated, resolved).
    pub incidents: Vec<IncidentRecord>,
    /// Input messages no alert state needs any more: release them.
    pub release: Vec<AckId>,
    /// Windows released from the alert-state hold by `limits.max_deferred_acks`.
    pub unreplayable: u64,
}

/// The state of one shard.
pub struct Shard {
    pub aligner: TraceAligner,
    /// Log records of multi-line tracebacks still being folded.
    pub folder: ShardFolder,
    pub watermarks: WatermarkTracker,
    pub lifecycle: Lifecycle,
    pub grouper: Grouper,
    pub detectors: DetectorSet,
    /// Earlier batches, newest last, for rules whose `window` spans several windows.
    pub history: VecDeque<AlignedBatch>,
    pub alert_hold: AlertStateHold,
    /// Per firing alert (fingerprint): the annotations its best suggestion adds to every
    /// notification, so a receiver (Slack, e-mail through Alertmanager) shows it.
    pub suggested: BTreeMap<String, BTreeMap<String, String>>,
    /// Incidents and the baselines of their root-cause ranking.
    pub incidents: IncidentTracker,
    /// Restored from a checkpoint without its look-back: windows starting before this were
    /// evaluated by the previous owner, and their re-read input only rebuilds the look-back.
    pub rebuild_until: Option<EventTime>,
}

impl Shard {
    /// A shard whose aligner builds `columns` of the window's tables.
    pub fn new(config: &PipelineConfig, detectors: &[DetectorConfig], columns: &ColumnSet) -> Self {
        let mut aligner = TraceAligner::new(config.align());
        aligner.build_columns(columns.clone());
        Shard {
            aligner,
            folder: ShardFolder::new(config),
            watermarks: WatermarkTracker::new(config.window.max_out_of_orderness),
            lifecycle: Lifecycle::new(
                &config.name,
                config.alerting.resend_interval,
                config.alerting.inhibit.clone(),
            ),
            detectors: DetectorSet::new(detectors),
            grouper: Grouper::new(
                config.alerting.group_by.clone(),
                config.alerting.group_wait,
                config.alerting.group_interval,
            ),
            history: VecDeque::new(),
            alert_hold: AlertStateHold::default(),
            suggested: BTreeMap::new(),
            incidents: IncidentTracker::new(&config.name, config.incidents.clone()),
            rebuild_until: None,
        }
    }

    /// Runs one window through rules and detectors, the lifecycle and grouping; its input
    /// goes to the alert-state hold, and what the states no longer need comes back.
    pub async fn evaluate(&mut self, batch: AlignedBatch, stages: &Stages<'_>) -> Evaluated {
        if let Some(until) = self.rebuild_until {
            if batch.window.start < until {
                return self.rebuild(batch, stages);
            }
            self.rebuild_until = None;
        }
        let history = self.history.make_contiguous().to_vec();
        // The window's own NCCL lines count: a job that starts now is placed now. (Shards
        // evaluate one window at a time, so the shared engine's table is this shard's.)
        self.incidents.learn_comm(&batch.logs);
        if !stages.indicators.is_empty() {
            stages
                .indicators
                .set_extra("ranks", self.incidents.ranks_batch());
        }
        let Queried {
            mut findings,
            samples,
            indicator_rows,
            failures,
        } = query(&batch, &history, stages).await;
        if !stages.sources.is_empty() {
            findings.extend(self.detectors.observe(&samples, batch.window));
        }
        debug!(window_start = %batch.window.start, spans = batch.spans.num_rows(),
            logs = batch.logs.num_rows(), traces = batch.traces.num_rows(),
            findings = findings.len(), "Window evaluated.");
        self.remember(&batch, stages);
        let notifications = self.lifecycle.observe(batch.window, findings);
        let edges = crate::incident::graph::edges_of(&batch.spans);
        let incidents =
            self.incidents
                .observe(batch.window, edges, &indicator_rows, &notifications);
        let mut alerts = self
            .grouper
            .push(batch.window.start, batch.window.end, notifications);
        let suggestions = self.suggest(&mut alerts, &batch, stages).await;
        // After matching: the knowledge base reads the alert as its rule wrote it.
        for alert in &mut alerts {
            let notes = self.incidents.annotations(&alert.fingerprint);
            alert.annotations.extend(notes);
        }
        let (release, unreplayable) = self.hold(batch.window.start, batch.acks, stages);
        Evaluated {
            alerts,
            suggestions,
            failures,
            incidents,
            release,
            unreplayable,
        }
    }

    /// A window the previous owner evaluated (its outcome is in the restored state): it
    /// only goes back into the look-back.
    fn rebuild(&mut self, batch: AlignedBatch, stages: &Stages<'_>) -> Evaluated {
        debug!(window_start = %batch.window.start, "Look-back window rebuilt from re-read input.");
        self.remember(&batch, stages);
        let (release, unreplayable) = self.hold(batch.window.start, batch.acks, stages);
        Evaluated {
            release,
            unreplayable,
            ..Evaluated::default()
        }
    }

    /// Keeps an evaluated window for the rules that look back on several.
    fn remember(&mut self, batch: &AlignedBatch, stages: &Stages<'_>) {
        if stages.history == 0 {
            return;
        }
        let keep = |name: &str, table: &RecordBatch| match stages
            .look_back_tables
            .iter()
            .any(|n| n == name)
        {
            true => table.clone(),
            false => RecordBatch::new_empty(table.schema()),
        };
        self.history.push_back(AlignedBatch {
            window: batch.window,
            logs: keep("logs", &batch.logs),
            metrics: keep("metrics", &batch.metrics),
            spans: keep("spans", &batch.spans),
            traces: keep("traces", &batch.traces),
            acks: Vec::new(),
            early: batch.early,
        });
        while self.history.len() > stages.history {
            self.history.pop_front();
        }
    }

    /// Defers an evaluated window's input and returns what nothing needs any more: the
    /// input of windows an alert state depends on, or of the look-back, stays held.
    fn hold(
        &mut self,
        start: EventTime,
        acks: Vec<AckId>,
        stages: &Stages<'_>,
    ) -> (Vec<AckId>, u64) {
        self.alert_hold.defer(start, acks);
        if stages.checkpointed {
            // Bounded by the look-back's length, not by `max_deferred_acks`.
            let look_back = self.history.front().map(|b| b.window.start);
            return self.alert_hold.release_unneeded(look_back, usize::MAX);
        }
        let alert_states = match (
            self.lifecycle.earliest_since(),
            self.grouper.earliest_queued(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.alert_hold
            .release_unneeded(alert_states, stages.max_deferred_acks)
    }

    /// Suggestions for the alerts that start firing (once per firing episode), checked
    /// against this window; every notification of a firing alert carries its best one.
    async fn suggest(
        &mut self,
        alerts: &mut [Alert],
        batch: &AlignedBatch,
        stages: &Stages<'_>,
    ) -> Vec<Suggestion> {
        let mut out = Vec::new();
        for alert in alerts.iter_mut() {
            let fp = alert.fingerprint.clone();
            let notes = match alert.status {
                AlertStatus::Firing => {
                    if !self.suggested.contains_key(&fp) {
                        let s = stages.kb.suggest(alert, batch, stages.budget).await;
                        self.suggested.insert(fp.clone(), annotations(&s));
                        out.extend(s);
                    }
                    self.suggested[&fp].clone()
                }
                AlertStatus::Resolved => self.suggested.remove(&fp).unwrap_or_default(),
            };
            alert.annotations.extend(notes);
        }
        out
    }
}

/// The annotations the best suggestion adds to its alert.
fn annotations(suggestions: &[Suggestion]) -> BTreeMap<String, String> {
    let Some(best) = suggestions.first().filter(|s| s.remediation_id.is_some()) else {
        return BTreeMap::new();
    };
    let mut notes = BTreeMap::from([
        ("suggestion".to_string(), best.title.clone()),
        (
            "suggestion_confidence".to_string(),
            format!("{:.2}", best.confidence),
        ),
    ]);
    if let Some(url) = &best.runbook_url {
        notes.insert("runbook_url".into(), url.clone());
    }
    if best.needs_review {
        notes.insert("suggestion_needs_review".into(), "true".into());
    }
    notes
}

/// What a window's queries gave: rule findings, detector samples, incident indicator rows,
/// and the queries that failed (logged already).
struct Queried {
    findings: Vec<crate::model::Finding>,
    samples: Vec<Vec<crate::model::QueryRow>>,
    indicator_rows: Vec<Vec<crate::model::QueryRow>>,
    failures: Vec<RuleFailure>,
}

/// Evaluates a window's rules, detector sources and incident indicators. With a budget that
/// runs evaluations in parallel, the three sets go to it at once (it bounds how many run),
/// so a closing window's queries share the cores; otherwise one after the other.
async fn query(batch: &AlignedBatch, history: &[AlignedBatch], stages: &Stages<'_>) -> Queried {
    let rules = stages.rules.evaluate(batch, history, stages.budget);
    let sources = async {
        match stages.sources.is_empty() {
            true => Default::default(),
            false => stages.sources.evaluate(batch, &[], stages.budget).await,
        }
    };
    let indicators = async {
        match stages.indicators.is_empty() {
            true => Default::default(),
            false => {
                stages
                    .indicators
                    .evaluate(batch, history, stages.budget)
                    .await
            }
        }
    };
    let (
        (findings, mut failures),
        (samples, source_failures),
        (indicator_rows, indicator_failures),
    ) = match stages.budget.parallelism() > 1 {
        true => futures::join!(rules, sources, indicators),
        false => (rules.await, sources.await, indicators.await),
    };
    failures.extend(source_failures);
    for f in &failures {
        warn!(rule = %f.rule_id, window_start = %batch.window.start, error = %f.message,
            "Rule failed on a window; other rules still ran.");
    }
    for f in &indicator_failures {
        warn!(indicator = %f.rule_id, window_start = %batch.window.start, error = %f.message,
            "Incident indicator failed on a window; the others still ran.");
    }
    failures.extend(indicator_failures);
    Queried {
        findings,
        samples,
        indicator_rows,
        failures,
    }
}
