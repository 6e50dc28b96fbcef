//! Parsing rule files: directory defaults, header, query. Pure: the loader (`crate::load`)
//! reads the files and hands their text here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Condition, Param, Query, Rule, RuleDefaults, RuleHeader};
use crate::error::{toml_line, Error, Result};
use crate::model::AlertSpec;

/// A rule file as read from the pipeline directory.
#[derive(Debug, Clone)]
pub struct RuleText {
    pub path: PathBuf,
    pub text: String,
    /// The rule group: the pipeline's directory name for rules directly in a rules
    /// directory, else the name of the subdirectory the rule is in.
    pub group: String,
    /// The `_defaults.toml` files that apply, outermost first: (path, text).
    pub defaults: Vec<(PathBuf, Arc<str>)>,
}

pub fn rule_error(path: &Path, line: usize, message: impl Into<String>) -> Error {
    Error::Rule {
        location: format!("{}:{line}", path.display()),
        message: message.into(),
    }
}

/// Parses one `_defaults.toml`.
pub fn parse_defaults(path: &Path, text: &str) -> Result<RuleDefaults> {
    toml::from_str(text).map_err(|e| {
        rule_error(
            path,
            toml_line(text, &e),
            format!("invalid rule defaults: {}", e.message()),
        )
    })
}

/// Merges `inner` over `outer` (inner wins).
fn merge(outer: &RuleDefaults, inner: &RuleDefaults) -> RuleDefaults {
    let mut m = outer.clone();
    m.severity = inner.severity.or(outer.severity);
    m.for_ = inner.for_.or(outer.for_);
    m.keep_firing_for = inner.keep_firing_for.or(outer.keep_firing_for);
    m.labels.extend(inner.labels.clone());
    m.annotations.extend(inner.annotations.clone());
    m.params.extend(inner.params.clone());
    m
}

/// Parses every rule, collecting every error instead of stopping at the first; rule ids
/// must be unique.
pub fn parse_rules(files: &[RuleText]) -> (Vec<Rule>, Vec<Error>) {
    let mut rules: Vec<Rule> = Vec::new();
    let mut errors = Vec::new();
    let mut ids: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        let defaults = file
            .defaults
            .iter()
            .try_fold(RuleDefaults::default(), |acc, (path, text)| {
                parse_defaults(path, text).map(|d| merge(&acc, &d))
            });
        let rule =
            defaults.and_then(|d| parse_rule_in(&file.path, &file.text, &d, file.group.clone()));
        match rule {
            Err(e) => errors.push(e),
            Ok(rule) => match ids.insert(rule.id().to_string(), file.path.clone()) {
                Some(other) => errors.push(rule_error(
                    &file.path,
                    1,
                    format!(
                        "rule id {:?} is also used by {}",
                        rule.id(),
                        other.display()
                    ),
                )),
                None => rules.push(rule),
            },
        }
    }
    (rules, errors)
}

/// The query of a rule file whose header may not parse: what `check` still plans (with
/// parameters unbound) so that one run reports a file's SQL errors beside its header's.
/// `None` when the file has no query.
pub fn bare_query(file: &RuleText) -> Option<Query> {
    let (_, sql, line) = split_header(&file.text);
    let id = file
        .path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("rule")
        .to_string();
    (!sql.is_empty()).then(|| Query {
        id,
        sql: sql.trim_end_matches(';').trim().to_string(),
        params: BTreeMap::new(),
        window: None,
        path: file.path.clone(),
        line,
    })
}

/// Splits a rule file into its header and query (the text after the leading block of `--`
/// and blank lines), without directory defaults; its group is its directory's name.
pub fn parse_rule(path: &Path, text: &str) -> Result<Rule> {
    let dir_group = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("default")
        .to_string();
    parse_rule_in(path, text, &RuleDefaults::default(), dir_group)
}

/// The header (its `--` prefixes removed, line numbers kept so TOML errors point at the
/// file's line), the query and the query's first line.
fn split_header(text: &str) -> (String, &str, usize) {
    let mut header = String::new();
    let mut header_lines = 0;
    let mut rest_at = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(comment) = trimmed.strip_prefix("--") {
            header.push_str(comment.strip_prefix(' ').unwrap_or(comment));
        } else if !trimmed.is_empty() {
            break;
        }
        header.push('\n');
        header_lines += 1;
        rest_at += line.len();
    }
    (header, text[rest_at..].trim(), header_lines + 1)
}

/// The rule's id: the header's, else the file name without `.sql`.
fn rule_id(path: &Path, id: Option<String>) -> Result<String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("rule")
        .to_string();
    let id = id.unwrap_or(stem);
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    if id.is_empty() || !id.chars().all(allowed) {
        return Err(rule_error(
            path,
            1,
            format!("rule id {id:?} may only use letters, digits, _ - ."),
        ));
    }
    Ok(id)
}

/// The `fire` and `clear` conditions, with parameters resolved.
fn conditions(
    path: &Path,
    h: &RuleHeader,
    params: &BTreeMap<String, Param>,
) -> Result<(Option<Condition>, Option<Condition>)> {
    let condition = |text: &Option<String>| {
        text.as_deref()
            .map(|t| Condition::parse(t, params).map_err(|m| rule_error(path, 1, m)))
            .transpose()
    };
    let fire = condition(&h.fire)?;
    let clear = condition(&h.clear)?;
    if clear.is_some() && fire.is_none() {
        return Err(rule_error(path, 1, "`clear` needs a `fire` condition too"));
    }
    Ok((fire, clear))
}

fn parse_rule_in(
    path: &Path,
    text: &str,
    defaults: &RuleDefaults,
    dir_group: String,
) -> Result<Rule> {
    let (header, sql, sql_line) = split_header(text);
    if sql.is_empty() {
        return Err(rule_error(
            path,
            sql_line,
            "rule has no query after its header",
        ));
    }
    let h: RuleHeader = toml::from_str(&header).map_err(|e| {
        rule_error(
            path,
            toml_line(&header, &e),
            format!("invalid rule header: {}", e.message()),
        )
    })?;
    let id = rule_id(path, h.id.clone())?;
    let severity = h.severity.or(defaults.severity).ok_or_else(|| {
        rule_error(
            path,
            1,
            "missing `severity` (info, warning or critical) in the header or a _defaults.toml",
        )
    })?;
    let mut params: BTreeMap<String, Param> = defaults.params.clone();
    params.extend(h.params.clone());
    let (fire, clear) = conditions(path, &h, &params)?;
    let mut labels = defaults.labels.clone();
    labels.extend(h.labels);
    let mut annotations = defaults.annotations.clone();
    annotations.extend(h.annotations);
    let spec = AlertSpec {
        alert: h.alert.unwrap_or_else(|| id.clone()),
        id: id.clone(),
        severity,
        group: h.group.unwrap_or(dir_group),
        for_: h.for_.or(defaults.for_).unwrap_or(Duration::ZERO),
        keep_firing_for: h
            .keep_firing_for
            .or(defaults.keep_firing_for)
            .unwrap_or(Duration::ZERO),
        labels,
        annotations,
        params: params.clone(),
    };
    Ok(Rule {
        spec: Arc::new(spec),
        fire,
        clear,
        query: Query {
            id,
            sql: sql.trim_end_matches(';').trim().to_string(),
            params,
            window: h.window.filter(|w| !w.is_zero()),
            path: path.to_path_buf(),
            line: sql_line,
        },
    })
}
