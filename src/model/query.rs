//! What a rule or a detector asks of each window: a SQL query and where it is written.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::Param;

/// A SQL query over the window's tables: a rule's, or a detector's source.
#[derive(Debug, Clone)]
pub struct Query {
    /// The rule's or detector's id, for failures.
    pub id: String,
    pub sql: String,
    /// Bound to `$name` in the query.
    pub params: BTreeMap<String, Param>,
    /// Event time the query sees; `None`: the pipeline window.
    pub window: Option<Duration>,
    /// The file the query is written in, and its 1-based line there, for errors.
    pub path: PathBuf,
    pub line: usize,
}
