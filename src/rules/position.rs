//! Where a query error is. DataFusion reports positions within the query text (`… at
//! Line: 1, Column: 25`); a person needs the position in the file, once. A rule file's query
//! starts at a known line, so its errors become `file:line:column`; a query inside TOML (a
//! detector's source) keeps the line of its table header and says where in the query.

use std::sync::LazyLock;

use regex::Regex;

use crate::error::Error;
use crate::model::Query;

static AT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r",? at Line: (\d+), Column: (\d+)").expect("a valid regular expression")
});

/// The error for `message` about `query`, with the position translated into the file's.
pub fn query_error(query: &Query, message: &str) -> Error {
    let message = tidy(message);
    let position = AT.captures(&message).and_then(|c| {
        let line: usize = c[1].parse().ok()?;
        let column: usize = c[2].parse().ok()?;
        Some((line.max(1), column))
    });
    let text = AT.replace_all(&message, "").trim().to_string();
    let path = query.path.display();
    let (location, message) = match position {
        Some((line, column)) if query.path.extension().is_some_and(|e| e == "sql") => {
            (format!("{path}:{}:{column}", query.line + line - 1), text)
        }
        Some((line, column)) => (
            format!("{path}:{}", query.line),
            format!("{text} (line {line}, column {column} of the query)"),
        ),
        None => (format!("{path}:{}", query.line), text),
    };
    Error::Rule { location, message }
}

/// DataFusion's parser errors arrive as `SQL error: ParserError("…")`: say what it says.
fn tidy(message: &str) -> String {
    for prefix in ["SQL error: ParserError(\"", "SQL error: TokenizerError(\""] {
        if let Some(inner) = message
            .strip_prefix(prefix)
            .and_then(|m| m.strip_suffix("\")"))
        {
            return format!("SQL syntax error: {}", inner.replace("\\\"", "\""));
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn query(path: &str, line: usize) -> Query {
        Query {
            id: "q".into(),
            sql: String::new(),
            params: BTreeMap::new(),
            window: None,
            path: PathBuf::from(path),
            line,
        }
    }

    #[test]
    fn a_rule_file_error_has_one_file_position() {
        let e = query_error(
            &query("rules/syntax.sql", 2),
            "SQL error: ParserError(\"Expected: end of statement, found: x at Line: 3, Column: 25\")",
        );
        assert_eq!(
            e.to_string(),
            "rules/syntax.sql:4:25: SQL syntax error: Expected: end of statement, found: x"
        );
    }

    #[test]
    fn a_query_in_toml_keeps_its_header_line_and_says_where_in_the_query() {
        let e = query_error(
            &query("pipeline.toml", 7),
            "SQL error: ParserError(\"Expected: an expression, found: FROM at Line: 1, Column: 8\")",
        );
        assert_eq!(
            e.to_string(),
            "pipeline.toml:7: SQL syntax error: Expected: an expression, found: FROM \
             (line 1, column 8 of the query)"
        );
    }

    #[test]
    fn errors_without_a_position_are_unchanged() {
        let e = query_error(
            &query("r.sql", 3),
            "Error during planning: table 'x' not found",
        );
        assert_eq!(
            e.to_string(),
            "r.sql:3: Error during planning: table 'x' not found"
        );
    }
}
