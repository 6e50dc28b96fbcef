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
    /// The best candidate's confidence.
    pub confidence: f64,
    /// The best candidate (even when it abstained), its ranking score and margin: what
    /// the calibration is fitted on.
    pub best: Option<String>,
    pub score: f64,
    pub margin: f64,
}

impl Outcome {
    /// The best suggestion is the right entry (never for a case without one).
    pub fn top1(&self) -> bool {
        self.expected.is_some() && self.suggested.first() == self.expected.as_ref()
    }

    pub fn top3(&self) -> bool {
        self.expected
            .as_ref()
            .is_some_and(|e| self.suggested.iter().take(3).any(|s| s == e))
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
        let judged = kb.judge(&c.alert, &window, &Unbounded).await;
        let best = judged.first();
        let abstains = best.is_none_or(|b| b.confidence < kb.config.abstain_below);
        out.push(Outcome {
            case: c.case.clone(),
            expected: c.expected.clone(),
            suggested: if abstains {
                Vec::new()
            } else {
                judged
                    .iter()
                    .take(kb.config.top_k)
                    .map(|j| kb.entries[j.candidate.entry].id().to_string())
                    .collect()
            },
            confidence: best.map_or(0.0, |b| b.confidence),
            score: best.map_or(0.0, |b| b.score),
            margin: best.map_or(0.0, |b| b.margin),
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

/// Fits `σ(a + b·score + c·margin)` to "the best candidate is right" by Newton's method on
/// the log-likelihood (with a small ridge penalty): the calibration's coefficients.
pub fn fit(outcomes: &[Outcome]) -> [f64; 3] {
    let rows: Vec<([f64; 3], f64)> = outcomes
        .iter()
        .map(|o| {
            let right = o.expected.is_some() && o.best == o.expected;
            ([1.0, o.score, o.margin], f64::from(u8::from(right)))
        })
        .collect();
    let mut w = [0.0; 3];
    for _ in 0..50 {
        let mut grad = [0.0; 3];
        let mut hess = [[0.0; 3]; 3];
        for (x, y) in &rows {
            let p = 1.0 / (1.0 + (-(w[0] * x[0] + w[1] * x[1] + w[2] * x[2])).exp());
            for i in 0..3 {
                grad[i] += (y - p) * x[i];
                for j in 0..3 {
                    hess[i][j] -= p * (1.0 - p) * x[i] * x[j];
                }
            }
        }
        for i in 0..3 {
            grad[i] -= 0.01 * w[i];
            hess[i][i] -= 0.01;
        }
        let step = solve3(hess, grad);
        for i in 0..3 {
            w[i] -= step[i];
        }
    }
    w
}

/// Solves `a·x = b` for a 3×3 system (Cramer's rule).
fn solve3(a: [[f64; 3]; 3], b: [f64; 3]) -> [f64; 3] {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(a);
    if d.abs() < 1e-12 {
        return [0.0; 3];
    }
    let mut x = [0.0; 3];
    for (i, xi) in x.iter_mut().enumerate() {
        let mut m = a;
        for r in 0..3 {
            m[r][i] = b[r];
        }
        *xi = det(m) / d;
    }
    x
}
