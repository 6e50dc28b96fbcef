//! One shard's stage chain: traceback folding, alignment and watermarks, then per window
//! rules and detectors → alert lifecycle → grouping, and the alert-state hold of the
//! window's input. A shard's output depends only on its own records.

use std::collections::VecDeque;

use tracing::{debug, warn};

use super::ledger::AlertStateHold;
use super::logclean::ShardFolder;
use crate::alert::{Alert, Grouper, Lifecycle};
use crate::align::{TraceAligner, WatermarkTracker};
use crate::config::PipelineConfig;
use crate::detect::{DetectorConfig, DetectorSet};
use crate::model::{AckId, AlignedBatch};
use crate::rules::{EvalBudget, QueryEngine, RuleEngine, RuleFailure};

/// What every shard evaluates its windows with.
pub struct Stages<'a> {
    pub rules: &'a RuleEngine,
    /// The detectors' source queries (their rows are samples, not findings).
    pub sources: &'a QueryEngine,
    pub budget: &'a dyn EvalBudget,
    /// Earlier batches a shard keeps for rules whose `window` spans several windows.
    pub history: usize,
    /// `limits.max_deferred_acks`.
    pub max_deferred_acks: usize,
}

/// What evaluating one window produced.
#[derive(Default)]
pub struct Evaluated {
    pub alerts: Vec<Alert>,
    pub failures: Vec<RuleFailure>,
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
}

impl Shard {
    pub fn new(config: &PipelineConfig, detectors: &[DetectorConfig]) -> Self {
        Shard {
            aligner: TraceAligner::new(config.align()),
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
        }
    }

    /// Runs one window through rules and detectors, the lifecycle and grouping; its input
    /// goes to the alert-state hold, and what the states no longer need comes back.
    pub async fn evaluate(&mut self, batch: AlignedBatch, stages: &Stages<'_>) -> Evaluated {
        let history = self.history.make_contiguous().to_vec();
        let (mut findings, mut failures) =
            stages.rules.evaluate(&batch, &history, stages.budget).await;
        if !stages.sources.is_empty() {
            let (rows, mut source_failures) =
                stages.sources.evaluate(&batch, &[], stages.budget).await;
            failures.append(&mut source_failures);
            findings.extend(self.detectors.observe(&rows, batch.window));
        }
        debug!(window_start = %batch.window.start, spans = batch.spans.num_rows(),
            logs = batch.logs.num_rows(), traces = batch.traces.num_rows(),
            findings = findings.len(), "Window evaluated.");
        for f in &failures {
            warn!(rule = %f.rule_id, window_start = %batch.window.start, error = %f.message,
                "Rule failed on a window; other rules still ran.");
        }
        if stages.history > 0 {
            self.history.push_back(AlignedBatch {
                acks: Vec::new(),
                ..batch.clone()
            });
            while self.history.len() > stages.history {
                self.history.pop_front();
            }
        }
        let notifications = self.lifecycle.observe(batch.window, findings);
        let alerts = self
            .grouper
            .push(batch.window.start, batch.window.end, notifications);
        self.alert_hold.defer(batch.window.start, batch.acks);
        let needed_from = match (
            self.lifecycle.earliest_since(),
            self.grouper.earliest_queued(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let (release, unreplayable) = self
            .alert_hold
            .release_unneeded(needed_from, stages.max_deferred_acks);
        Evaluated {
            alerts,
            failures,
            release,
            unreplayable,
        }
    }
}
