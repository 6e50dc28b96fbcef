//! Reading rule files: directory defaults, header, query; then checking and planning each
//! against the table schemas.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Condition, Param, Rule, RuleDefaults, RuleHeader};
use crate::error::{Error, Result};

pub(crate) fn rule_error(path: &Path, line: usize, message: impl Into<String>) -> Error {
    Error::Rule {
        location: format!("{}:{line}", path.display()),
        message: message.into(),
    }
}

/// Reads the `_defaults.toml` of `dir`, if any.
fn read_defaults(dir: &Path) -> Result<Option<RuleDefaults>> {
    let path = dir.join("_defaults.toml");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    toml::from_str(&text).map(Some).map_err(|e| {
        rule_error(
            &path,
            crate::config::toml_line(&text, &e),
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

/// Splits a rule file into its header and query (the text after the leading block of `--`
/// and blank lines) and applies `defaults`.
pub fn parse_rule(path: &Path, text: &str) -> Result<Rule> {
    parse_rule_with(path, text, &RuleDefaults::default())
}

fn parse_rule_with(path: &Path, text: &str, defaults: &RuleDefaults) -> Result<Rule> {
    let dir_group = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("default")
        .to_string();
    parse_rule_in(path, text, defaults, dir_group)
}

fn parse_rule_in(
    path: &Path,
    text: &str,
    defaults: &RuleDefaults,
    dir_group: String,
) -> Result<Rule> {
    // Header lines keep their line numbers, so TOML errors point at the file's line.
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
    let sql_line = header_lines + 1;
    let sql = text[rest_at..].trim();
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
            crate::config::toml_line(&header, &e),
            format!("invalid rule header: {}", e.message()),
        )
    })?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("rule")
        .to_string();
    let id = h.id.unwrap_or(stem);
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(rule_error(
            path,
            1,
            format!("rule id {id:?} may only use letters, digits, _ - ."),
        ));
    }
    let severity = h.severity.or(defaults.severity).ok_or_else(|| {
        rule_error(
            path,
            1,
            "missing `severity` (info, warning or critical) in the header or a _defaults.toml",
        )
    })?;
    let mut params: BTreeMap<String, Param> = defaults.params.clone();
    params.extend(h.params);
    let condition = |text: &Option<String>| {
        text.as_deref()
            .map(|t| Condition::parse(t, &params).map_err(|m| rule_error(path, 1, m)))
            .transpose()
    };
    let fire = condition(&h.fire)?;
    let clear = condition(&h.clear)?;
    if clear.is_some() && fire.is_none() {
        return Err(rule_error(path, 1, "`clear` needs a `fire` condition too"));
    }
    let mut labels = defaults.labels.clone();
    labels.extend(h.labels);
    let mut annotations = defaults.annotations.clone();
    annotations.extend(h.annotations);
    let group = h.group.unwrap_or(dir_group);
    Ok(Rule {
        alert: h.alert.unwrap_or_else(|| id.clone()),
        id,
        severity,
        group,
        for_: h.for_.or(defaults.for_).unwrap_or(Duration::ZERO),
        keep_firing_for: h
            .keep_firing_for
            .or(defaults.keep_firing_for)
            .unwrap_or(Duration::ZERO),
        fire,
        clear,
        window: h.window.filter(|w| !w.is_zero()),
        labels,
        annotations,
        params,
        sql: sql.trim_end_matches(';').trim().to_string(),
        path: path.to_path_buf(),
        sql_line,
    })
}

/// A rule file with the defaults that apply to it and its group.
type Found = (PathBuf, RuleDefaults, String);

/// Every `.sql` file under `dir`, with the defaults that apply to it; rules directly in `dir`
/// get the group `group`, rules in a subdirectory its name.
fn collect(dir: &Path, inherited: &RuleDefaults, group: &str, out: &mut Vec<Found>) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let defaults = match read_defaults(dir)? {
        Some(d) => merge(inherited, &d),
        None => inherited.clone(),
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::result::Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            let sub = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(group)
                .to_string();
            collect(&p, &defaults, &sub, out)?;
        } else if p.extension().is_some_and(|e| e == "sql") {
            out.push((p, defaults.clone(), group.to_string()));
        }
    }
    Ok(())
}

/// Loads every `.sql` file under `paths` (relative to `base`), sorted by path, with the
/// defaults that apply to each. Rule ids must be unique. Planning happens in
/// [`super::RuleEngine::new`].
pub fn load_rules(base: &Path, paths: &[PathBuf]) -> Result<Vec<Rule>> {
    let (files, errors) = find_rules(base, paths);
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    let mut rules: Vec<Rule> = Vec::new();
    for (file, defaults, group) in files {
        let text = std::fs::read_to_string(&file).map_err(|source| Error::Io {
            path: file.clone(),
            source,
        })?;
        let rule = parse_rule_in(&file, &text, &defaults, group)?;
        if let Some(other) = rules.iter().find(|r| r.id == rule.id) {
            return Err(rule_error(
                &file,
                1,
                format!(
                    "rule id {:?} is also used by {}",
                    rule.id,
                    other.path.display()
                ),
            ));
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// The rule files under `paths`, sorted, and the errors met finding them. Rules directly in
/// a rules directory belong to the pipeline's group (its directory name).
fn find_rules(base: &Path, paths: &[PathBuf]) -> (Vec<Found>, Vec<Error>) {
    let pipeline_group = base
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
        .unwrap_or_else(|| "default".into());
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        let p = base.join(p);
        if p.is_file() {
            match p.parent().map(read_defaults).transpose() {
                Ok(d) => files.push((p, d.flatten().unwrap_or_default(), pipeline_group.clone())),
                Err(e) => errors.push(e),
            }
        } else if p.is_dir() {
            if let Err(e) = collect(&p, &RuleDefaults::default(), &pipeline_group, &mut files) {
                errors.push(e);
            }
        } else {
            errors.push(Error::Config {
                location: base.join("pipeline.toml").display().to_string(),
                message: format!("rules path {} does not exist", p.display()),
            });
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    (files, errors)
}

/// Reads, checks and plans every rule, collecting every error instead of stopping at the
/// first: what `faultline check` reports.
pub async fn check_rules(base: &Path, paths: &[PathBuf]) -> Vec<Error> {
    let (files, mut errors) = find_rules(base, paths);
    let mut ids: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (file, defaults, group) in files {
        let rule = std::fs::read_to_string(&file)
            .map_err(|source| Error::Io {
                path: file.clone(),
                source,
            })
            .and_then(|text| parse_rule_in(&file, &text, &defaults, group));
        match rule {
            Err(e) => errors.push(e),
            Ok(rule) => {
                if let Some(other) = ids.insert(rule.id.clone(), file.clone()) {
                    errors.push(rule_error(
                        &file,
                        1,
                        format!("rule id {:?} is also used by {}", rule.id, other.display()),
                    ));
                }
                if let Err(e) = super::engine::plan_rule(&rule).await {
                    errors.push(e);
                }
            }
        }
    }
    errors
}

/// A stamp of every rule file and `_defaults.toml` under `paths` (path, size, modification
/// time): when it changes, the rules changed on disk.
pub fn rules_stamp(
    base: &Path,
    paths: &[PathBuf],
) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    fn walk(p: &Path, out: &mut Vec<(PathBuf, u64, Option<std::time::SystemTime>)>) {
        if p.is_dir() {
            if let Ok(entries) = std::fs::read_dir(p) {
                for e in entries.flatten() {
                    walk(&e.path(), out);
                }
            }
        } else if p.extension().is_some_and(|e| e == "sql" || e == "toml") {
            if let Ok(m) = std::fs::metadata(p) {
                out.push((p.to_path_buf(), m.len(), m.modified().ok()));
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        walk(&base.join(p), &mut out);
    }
    out.sort();
    out
}
