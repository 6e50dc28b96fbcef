//! Reading rule files: header, query, and validation against the table schemas.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use super::{columns, Rule, RuleHeader};
use crate::error::{Error, Result};
use crate::rules::engine::{register_empty_tables, sql_options};

fn rule_error(path: &Path, line: usize, message: impl Into<String>) -> Error {
    Error::Rule {
        location: format!("{}:{line}", path.display()),
        message: message.into(),
    }
}

/// Splits a rule file into its header and query; the query is the text after the leading
/// block of `--` lines.
pub fn parse_rule(path: &Path, text: &str) -> Result<Rule> {
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
    let parsed: RuleHeader = toml::from_str(&header).map_err(|e| {
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
    let id = parsed.id.unwrap_or(stem);
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
    Ok(Rule {
        alert: parsed.alert.unwrap_or_else(|| id.clone()),
        id,
        severity: parsed.severity,
        labels: parsed.labels,
        annotations: parsed.annotations,
        sql: sql.trim_end_matches(';').trim().to_string(),
        path: path.to_path_buf(),
        sql_line,
    })
}

/// Plans a rule against empty tables so errors surface at load, and checks its result shape.
pub(crate) async fn validate(ctx: &SessionContext, rule: &Rule) -> Result<()> {
    let df = ctx
        .sql_with_options(&rule.sql, sql_options())
        .await
        .map_err(|e| rule_error(&rule.path, rule.sql_line, e.to_string()))?;
    let schema = df.schema();
    let value = schema
        .fields()
        .iter()
        .find(|f| f.name() == columns::VALUE)
        .ok_or_else(|| {
            rule_error(
                &rule.path,
                rule.sql_line,
                "the query must return a numeric column named `value`",
            )
        })?;
    if !value.data_type().is_numeric() {
        return Err(rule_error(
            &rule.path,
            rule.sql_line,
            format!("column `value` is {}, expected a number", value.data_type()),
        ));
    }
    for f in schema.fields() {
        if f.name() == columns::SAMPLE_TRACE_IDS {
            let ok = match f.data_type() {
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => true,
                DataType::List(i) | DataType::LargeList(i) => matches!(
                    i.data_type(),
                    DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                ),
                _ => false,
            };
            if !ok {
                return Err(rule_error(
                    &rule.path,
                    rule.sql_line,
                    "column `sample_trace_ids` must be a string or a list of strings",
                ));
            }
        }
    }
    Ok(())
}

fn collect_sql_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(path).map_err(io)? {
        let p = entry.map_err(io)?.path();
        if p.is_dir() {
            collect_sql_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "sql") {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads every `.sql` file under `paths` (relative to `base`), sorted by path, and validates
/// each. Rule ids must be unique.
pub async fn load_rules(base: &Path, paths: &[PathBuf]) -> Result<Vec<Arc<Rule>>> {
    let mut files = Vec::new();
    for p in paths {
        collect_sql_files(&base.join(p), &mut files)?;
    }
    files.sort();
    let ctx = SessionContext::new();
    register_empty_tables(&ctx)?;
    let mut rules: Vec<Arc<Rule>> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| Error::Io {
            path: file.clone(),
            source,
        })?;
        let rule = parse_rule(&file, &text)?;
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
        validate(&ctx, &rule).await?;
        rules.push(Arc::new(rule));
    }
    Ok(rules)
}
