//! The suggestion record (`schemas/suggestion.json`): what an operator reads next to an
//! alert.

use serde::Serialize;

/// The outcome of one precondition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Passed,
    Failed,
    NotApplicable,
}

/// One precondition's result, with why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Validation {
    pub name: String,
    pub result: Check,
    pub reason: String,
}

/// Why an entry matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchedOn {
    /// Cosine similarity of the alert's text and the entry's (TF-IDF).
    pub similarity: f64,
    /// The ranking score: similarity, hints and preconditions.
    pub score: f64,
    /// How far ahead of the next entry the ranking score was (negative below the best).
    pub margin: f64,
    /// The structured hints that held: `alertname`, `label:NAME`, `evidence:NAME`.
    pub hints: Vec<String>,
    /// The terms that weighed most in the similarity.
    pub terms: Vec<String>,
}

/// Another entry, for a person deciding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Closest {
    pub remediation_id: String,
    pub title: String,
    pub confidence: f64,
}

/// A suggested remediation for an alert, or (`remediation_id` null) the statement that the
/// knowledge base knows none, with the closest entries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    /// Deterministic: the alert id and the remediation.
    pub id: String,
    pub alert_id: String,
    pub alert_fingerprint: String,
    pub alertname: String,
    pub remediation_id: Option<String>,
    pub title: String,
    /// 1 for the best suggestion of the alert.
    pub rank: u32,
    /// In [0, 1]: measured to be right about that fraction of the time (`BENCHMARKS.md`).
    pub confidence: f64,
    /// Below the review threshold for the alert's severity: a person should confirm.
    pub needs_review: bool,
    /// For a suggestion that needs review: the suggestion as a question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// The checklist with the alert's values filled in.
    pub steps: Vec<String>,
    pub validation: Vec<Validation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runbook_url: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_on: Option<MatchedOn>,
    /// For "no known remediation": the nearest entries and their confidence.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub closest: Vec<Closest>,
}
