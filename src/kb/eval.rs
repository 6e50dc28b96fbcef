//! Measuring the knowledge base on labelled alerts (`tests/kb/*.jsonl`: `{case, expected,
//! alert}`, `expected` an entry id or null for "none is right"): top-1 and top-3 accuracy,
//! abstention, and how well the confidence is calibrated (reliability table, expected
//! calibration error). Also fits the calibration's coefficients. Used by
//! `cargo bench --bench kb` and by the test that holds the targets.

use serde::Deserialize;

use super::KnowledgeBase;
use crate::alert::{fingerprint, Alert};
use crate::model::{EventTime, Window};
use crate::rules::Unbounded;

/// One labelled alert.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub case: String,
    /// The right entry, or `None` when no entry is right.
    pub expected: Option<String>,
    pub alert: Alert,
}

/// Parses JSON lines of cases; alerts without id or fingerprint get them from their labels.
pub fn parse_cases(text: &str) -> Result<Vec<Case>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let mut c: Case =
                serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1))?;
            if c.alert.fingerprint.is_empty() {
                c.alert.fingerprint = fingerprint(&c.alert.labels);
            }
            if c.alert.id.is_empty() {
                c.alert.id = c.alert.fingerprint.clone();
            }
            Ok(c)
        })
        .collect()
}

/// What the knowledge base said about one case.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub case: String,
    pub expected: Option<String>,
    /// The suggested entries, best first (empty: it abstained).
    pub suggested: Vec<String>,
    /// The entries the record names: the suggestions, or the closest entries of a "no
    /// known remediation" record.
    pub named: Vec<String>,
    /// The best candidate's confidence.
    pub confidence: f64,
    /// The best candidate (even when it abstained), its ranking score and margin: what
    /// the calibration is fitted on.
    pub best: Option<String>,
    pub score: f64,
    pub margin: f64,
    pub alert_hint: bool,
}

impl Outcome {
    /// The best suggestion is the right entry (never for a case without one).
    pub fn top1(&self) -> bool {
        self.expected.is_some() && self.suggested.first() == self.expected.as_ref()
    }

    /// The right entry is among the first three suggestions.
    pub fn top3(&self) -> bool {
        self.expected
            .as_ref()
            .is_some_and(|e| self.suggested.iter().take(3).any(|s| s == e))
    }

    /// The right entry is among the three entries the record names.
    pub fn top3_named(&self) -> bool {
        self.expected
            .as_ref()
            .is_some_and(|e| self.named.iter().take(3).any(|s| s == e))
    }
}

/// One bin of the reliability table.
#[derive(Debug, Clone, Default)]
pub struct Bin {
    pub from: f64,
    pub count: usize,
    pub mean_confidence: f64,
    pub accuracy: f64,
}

/// The figures of one evaluation.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub cases: usize,
    pub answerable: usize,
    pub top1: f64,
    pub top3: f64,
    /// Top-3 counting the closest entries a "no known remediation" record names.
    pub top3_named: f64,
    /// Share of the cases without a right entry where it said "no known remediation".
    pub abstained_correctly: f64,
    /// Share of answerable cases where it abstained.
    pub abstained_wrongly: f64,
    /// Expected calibration error of the best suggestion's confidence, over the cases it
    /// made a suggestion for (ten bins).
    pub ece: f64,
    pub bins: Vec<Bin>,
}

/// Runs every case through the knowledge base (no window data: preconditions over the
/// window are not applicable).
pub async fn run(kb: &KnowledgeBase, cases: &[Case]) -> Vec<Outcome> {
    let window = crate::tables::empty_batch(Window {
        start: EventTime(0),
        end: EventTime(60_000_000_000),
    });
    let mut out = Vec::with_capacity(cases.len());
    for c in cases {
        let alert = super::context::enriched(&c.alert);
        let judged = kb.judge(&alert, &window, &Unbounded).await;
        let best = judged.first();
        let abstains = kb.abstains(&judged);
        let named: Vec<String> = judged
            .iter()
            .take(kb.config.top_k)
            .map(|j| kb.entries[j.candidate.entry].id().to_string())
            .collect();
        out.push(Outcome {
            case: c.case.clone(),
            expected: c.expected.clone(),
            suggested: if abstains { Vec::new() } else { named.clone() },
            named,
            confidence: best.map_or(0.0, |b| b.confidence),
            score: best.map_or(0.0, |b| b.score),
            margin: best.map_or(0.0, |b| b.margin),
            alert_hint: best.is_some_and(|b| b.candidate.hints.alert),
            best: best.map(|b| kb.entries[b.candidate.entry].id().to_string()),
        });
    }
    out
}

/// The figures of a run.
pub fn report(outcomes: &[Outcome]) -> Report {
    let answerable: Vec<&Outcome> = outcomes.iter().filter(|o| o.expected.is_some()).collect();
    let none: Vec<&Outcome> = outcomes.iter().filter(|o| o.expected.is_none()).collect();
    let share = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let mut bins: Vec<Bin> = (0..10)
        .map(|i| Bin {
            from: f64::from(i) / 10.0,
            ..Bin::default()
        })
        .collect();
    let mut sums = vec![(0.0, 0.0); 10];
    let suggested: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| !o.suggested.is_empty())
        .collect();
    for o in &suggested {
        let b = ((o.confidence * 10.0) as usize).min(9);
        bins[b].count += 1;
        sums[b].0 += o.confidence;
        sums[b].1 += f64::from(u8::from(o.top1()));
    }
    let mut ece = 0.0;
    for (b, (c, h)) in bins.iter_mut().zip(sums) {
        if b.count > 0 {
            b.mean_confidence = c / b.count as f64;
            b.accuracy = h / b.count as f64;
            ece += b.count as f64 / suggested.len().max(1) as f64
                * (b.accuracy - b.mean_confidence).abs();
        }
    }
    Report {
        cases: outcomes.len(),
        answerable: answerable.len(),
        top1: share(
            answerable.iter().filter(|o| o.top1()).count(),
            answerable.len(),
        ),
        top3: share(
            answerable.iter().filter(|o| o.top3()).count(),
            answerable.len(),
        ),
        top3_named: share(
            answerable.iter().filter(|o| o.top3_named()).count(),
            answerable.len(),
        ),
        abstained_correctly: share(
            none.iter().filter(|o| o.suggested.is_empty()).count(),
            none.len(),
        ),
        abstained_wrongly: share(
            answerable.iter().filter(|o| o.suggested.is_empty()).count(),
            answerable.len(),
        ),
        ece,
        bins,
    }
}

/// The calibration's features of a candidate: 1, its ranking score, its margin, and whether
/// the alert's name is one the entry is written for.
pub fn features(score: f64, margin: f64, alert_hint: bool) -> [f64; 4] {
    [1.0, score, margin, f64::from(u8::from(alert_hint))]
}

/// Fits `σ(w · features)` to "the best candidate is right" by Newton's method on the
/// log-likelihood with a small ridge penalty: the calibration's coefficients.
pub fn fit(outcomes: &[Outcome]) -> [f64; 4] {
    let rows: Vec<([f64; 4], f64)> = outcomes
        .iter()
        .map(|o| {
            let right = o.expected.is_some() && o.best == o.expected;
            (
                features(o.score, o.margin, o.alert_hint),
                f64::from(u8::from(right)),
            )
        })
        .collect();
    let mut w = [0.0; 4];
    for _ in 0..50 {
        let mut grad = [0.0; 4];
        let mut hess = [[0.0; 4]; 4];
        for (x, y) in &rows {
            let z: f64 = w.iter().zip(x).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            for i in 0..4 {
                grad[i] += (y - p) * x[i];
                for j in 0..4 {
                    hess[i][j] -= p * (1.0 - p) * x[i] * x[j];
                }
            }
        }
        for i in 0..4 {
            grad[i] -= 0.01 * w[i];
            hess[i][i] -= 0.01;
        }
        let step = solve(hess, grad);
        for i in 0..4 {
            w[i] -= step[i];
        }
    }
    w
}

/// Solves `a·x = b` by Gaussian elimination with partial pivoting (zero when singular).
fn solve<const N: usize>(mut a: [[f64; N]; N], mut b: [f64; N]) -> [f64; N] {
    for col in 0..N {
        let pivot = (col..N)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .expect("rows");
        if a[pivot][col].abs() < 1e-12 {
            return [0.0; N];
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col];
        for row in col + 1..N {
            let f = a[row][col] / pivot_row[col];
            for (x, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; N];
    for row in (0..N).rev() {
        let rest: f64 = (row + 1..N).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    x
}
