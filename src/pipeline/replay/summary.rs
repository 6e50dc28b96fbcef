//! What a replay said, counted on its way out: a sink in front of the real one keeps the
//! counts for the summary table and the alert records for `--diff`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::alert::{Alert, AlertStatus};
use crate::error::Result;
use crate::output::{Output, OutputKind};
use crate::sink::{Delivery, Sink};

/// Counts of one replay's outputs.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Per rule id: ids of the alerts that fired, and of those that resolved (resends are
    /// the same alert, counted once).
    pub fired: BTreeMap<String, BTreeSet<String>>,
    pub resolved: BTreeMap<String, BTreeSet<String>>,
    pub suggestions: u64,
    pub incidents: u64,
    pub dead_letters: u64,
    pub late: u64,
    /// Every alert notification, in output order.
    pub alerts: Vec<Alert>,
}

impl Tally {
    fn count(&mut self, output: &Output) {
        match output.kind {
            OutputKind::Alerts => {
                let Ok(alert) = serde_json::from_str::<Alert>(&output.json) else {
                    return;
                };
                let ids = match alert.status {
                    AlertStatus::Firing => &mut self.fired,
                    AlertStatus::Resolved => &mut self.resolved,
                };
                ids.entry(alert.rule_id.clone())
                    .or_default()
                    .insert(alert.id.clone());
                self.alerts.push(alert);
            }
            OutputKind::Suggestions => self.suggestions += 1,
            OutputKind::Incidents => self.incidents += 1,
            OutputKind::DeadLetter => self.dead_letters += 1,
            OutputKind::Late => self.late += 1,
            OutputKind::Review => {}
        }
    }
}

/// A sink that counts what passes through it on the way to `inner` (or nowhere).
pub struct TallySink {
    inner: Option<Box<dyn Sink>>,
    tally: Arc<Mutex<Tally>>,
}

impl TallySink {
    /// Counts into `tally`, then sends to `inner`; with `None` the outputs are only counted
    /// (the shipped rules' lane of a `--diff`).
    pub fn new(inner: Option<Box<dyn Sink>>, tally: Arc<Mutex<Tally>>) -> Self {
        TallySink { inner, tally }
    }
}

impl Sink for TallySink {
    fn send(&mut self, output: &Output) -> Result<Delivery> {
        self.tally.lock().expect("tally lock").count(output);
        match &mut self.inner {
            Some(sink) => sink.send(output),
            None => Ok(Box::pin(async { Ok(()) })),
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.inner.as_mut().map_or(Ok(()), |s| s.flush())
    }
}

/// Messages and records read per input (topic, or file).
#[derive(Debug, Default, Clone)]
pub struct InputCounts {
    pub per_input: BTreeMap<String, (u64, u64)>,
}

impl InputCounts {
    pub fn add(&mut self, input: &str, records: u64) {
        let e = self.per_input.entry(input.to_string()).or_default();
        e.0 += 1;
        e.1 += records;
    }
}

/// The table printed at the end of a replay.
pub fn render(tally: &Tally, inputs: &InputCounts, stats: &super::super::Stats) -> String {
    let mut out = String::new();
    let rules: BTreeSet<&String> = tally.fired.keys().chain(tally.resolved.keys()).collect();
    let width = rules.iter().map(|r| r.len()).max().unwrap_or(0).max(14);
    let _ = writeln!(out, "{:<width$}  {:>8}  {:>8}", "rule", "fired", "resolved");
    for rule in &rules {
        let n = |m: &BTreeMap<String, BTreeSet<String>>| m.get(*rule).map_or(0, BTreeSet::len);
        let _ = writeln!(
            out,
            "{rule:<width$}  {:>8}  {:>8}",
            n(&tally.fired),
            n(&tally.resolved)
        );
    }
    if rules.is_empty() {
        let _ = writeln!(out, "(no alerts)");
    }
    let _ = writeln!(out);
    for (name, n) in [
        ("suggestions", tally.suggestions),
        ("incident records", tally.incidents),
        ("dead letters", tally.dead_letters),
        ("late records", tally.late),
        ("windows", stats.windows),
    ] {
        let _ = writeln!(out, "{name:<width$}  {n:>8}");
    }
    let _ = writeln!(out);
    let iw = inputs
        .per_input
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max(5);
    let _ = writeln!(
        out,
        "{:<iw$}  {:>10}  {:>10}",
        "input", "messages", "records"
    );
    for (input, (messages, records)) in &inputs.per_input {
        let _ = writeln!(out, "{input:<iw$}  {messages:>10}  {records:>10}");
    }
    out
}
