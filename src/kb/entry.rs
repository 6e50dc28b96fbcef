//! Knowledge-base entries as data: `pipelines/<name>/kb/<id>.toml`, one remediation each,
//! shaped like a Prometheus runbook (meaning, impact, diagnosis, mitigation steps) with
//! structured match hints and preconditions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::error::{toml_line, Error, Result};
use crate::model::Query;

/// One remediation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryFile {
    /// Stable identifier: the file name without `.toml` (letters, digits, `_`).
    pub id: String,
    /// What to do, in a few words: the suggestion's title.
    pub title: String,
    /// What the alert means when this entry applies.
    pub meaning: String,
    /// What breaks for users.
    #[serde(default)]
    pub impact: String,
    /// How to confirm this is the cause.
    #[serde(default)]
    pub diagnosis: String,
    /// When to use this remediation.
    #[serde(default)]
    pub when: String,
    /// When not to use it, and what it is confused with (not used for matching: it names
    /// the other situation).
    #[serde(default)]
    pub not_when: String,
    /// Extra search terms: error strings, synonyms, other languages.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// The mitigation checklist; `{{ $labels.X }}`, `{{ $evidence.X }}` and `{{ $value }}`
    /// are filled from the alert.
    pub steps: Vec<String>,
    /// Where the full runbook lives.
    pub runbook_url: String,
    /// Public documentation behind the advice.
    #[serde(default)]
    pub references: Vec<String>,
    /// Structured hints.
    #[serde(default, rename = "match")]
    pub hints: HintsFile,
    /// Checks run against the alert's evidence before the suggestion is shown.
    #[serde(default)]
    pub preconditions: Vec<PreconditionFile>,
}

/// `[match]`: each hint that is set counts for (or, for a contradicting label, against) the
/// entry; none excludes an alert by name alone, so other teams' alert names still match.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HintsFile {
    /// Alert names (`alertname`) this entry is written for.
    #[serde(default)]
    pub alerts: Vec<String>,
    /// Label regexes (full match). An alert that has the label with another value is not a
    /// candidate; one without the label is.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Evidence fields the alert should carry.
    #[serde(default)]
    pub evidence: Vec<String>,
}

/// What a failed precondition does to the suggestion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    /// The confidence drops (default).
    #[default]
    Lower,
    /// The suggestion is dropped.
    Remove,
}

/// `[[preconditions]]`: a SQL predicate over the `alert` table (one row) and the window the
/// alert fired in. Rows with a true or non-zero `value`: passed; false or zero: failed; no
/// row (or only window tables, all empty): not applicable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreconditionFile {
    /// Says what is checked, e.g. "a batch size above 1 was seen".
    pub name: String,
    pub sql: String,
    #[serde(default)]
    pub on_fail: OnFail,
}

/// A checked entry: regexes compiled, preconditions as queries.
#[derive(Debug, Clone)]
pub struct Entry {
    pub file: EntryFile,
    pub path: PathBuf,
    pub labels: Vec<(String, Regex)>,
    pub preconditions: Vec<(PreconditionFile, Query)>,
}

impl Entry {
    pub fn id(&self) -> &str {
        &self.file.id
    }

    /// The text matched against alerts: everything but `not_when`.
    pub fn text(&self) -> String {
        let f = &self.file;
        let mut parts = vec![
            f.title.as_str(),
            f.title.as_str(),
            f.meaning.as_str(),
            f.impact.as_str(),
            f.diagnosis.as_str(),
            f.when.as_str(),
        ];
        parts.extend(f.keywords.iter().map(String::as_str));
        parts.extend(f.keywords.iter().map(String::as_str));
        parts.extend(f.steps.iter().map(String::as_str));
        parts.extend(f.hints.alerts.iter().map(String::as_str));
        parts.join("\n")
    }
}

fn entry_error(path: &Path, line: usize, message: impl Into<String>) -> Error {
    Error::Config {
        location: format!("{}:{line}", path.display()),
        message: message.into(),
    }
}

/// 1-based line of the first line of `text` starting with `key`, else 1.
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(key))
        .map_or(1, |i| i + 1)
}

/// Parses and checks one entry file (not its preconditions' SQL: the loader plans those).
pub fn parse_entry(path: &Path, text: &str) -> Result<Entry> {
    let file: EntryFile = toml::from_str(text)
        .map_err(|e| entry_error(path, toml_line(text, &e), e.message().to_string()))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let id_ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    if file.id.is_empty() || !file.id.chars().all(id_ok) {
        return Err(entry_error(
            path,
            line_of(text, "id"),
            format!("id {:?} may only use a-z, 0-9 and _", file.id),
        ));
    }
    if file.id != stem {
        let at = line_of(text, "id");
        return Err(entry_error(
            path,
            at,
            format!("id {:?} must be the file name ({stem:?})", file.id),
        ));
    }
    if file.steps.is_empty() {
        return Err(entry_error(
            path,
            line_of(text, "steps"),
            "an entry needs steps",
        ));
    }
    let mut labels = Vec::new();
    for (name, pattern) in &file.hints.labels {
        let re = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            // regex errors draw a caret over several lines; their last line says why.
            let why = e.to_string();
            let why = why
                .lines()
                .last()
                .unwrap_or("")
                .trim_start_matches("error: ");
            entry_error(
                path,
                line_of(text, "labels"),
                format!("label {name}: {pattern:?} is not a regular expression ({why})"),
            )
        })?;
        labels.push((name.clone(), re));
    }
    let preconditions = file
        .preconditions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let line = text
                .match_indices(&p.sql)
                .next()
                .map_or(1, |(at, _)| text[..at].matches('\n').count() + 1);
            let query = Query {
                id: format!("{}#{}", file.id, i + 1),
                sql: p.sql.clone(),
                params: BTreeMap::new(),
                window: None,
                path: path.to_path_buf(),
                line,
            };
            (p.clone(), query)
        })
        .collect();
    Ok(Entry {
        file,
        path: path.to_path_buf(),
        labels,
        preconditions,
    })
}
