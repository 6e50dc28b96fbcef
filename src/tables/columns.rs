//! Which columns of a window's data tables are built. A column no query of the pipeline
//! reads cannot change any result, so it is not built: it holds a placeholder (nulls, or
//! empty values where it is not nullable) and the schema stays the same, so every plan and
//! every table of every window look alike. With the default pipeline, 36 of the 81
//! columns go unread (the metrics' resources, descriptions and bucket lists, the spans'
//! times and scopes, most of `traces`): 1.9 % of a file run's instructions
//! (`BENCHMARKS.md`, "Fourteenth session").

use std::fmt;

use super::{schema_of, DATA_TABLES};

/// The columns of one table to build, as a set of the schema's column indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableColumns(u64);

impl TableColumns {
    /// Every column.
    pub const ALL: TableColumns = TableColumns(u64::MAX);
    /// No column.
    pub const NONE: TableColumns = TableColumns(0);

    /// Whether column `index` is built.
    pub fn has(self, index: usize) -> bool {
        index >= 64 || self.0 & (1 << index) != 0
    }

    /// These columns and column `index`.
    pub fn with(self, index: usize) -> TableColumns {
        match index {
            0..64 => TableColumns(self.0 | 1 << index),
            _ => self,
        }
    }
}

/// The columns of each data table (`logs`, `metrics`, `spans`, `traces`) to build; the
/// tables are in [`DATA_TABLES`] order.
#[derive(Clone, PartialEq, Eq)]
pub struct ColumnSet([TableColumns; 4]);

impl Default for ColumnSet {
    /// No column of any table.
    fn default() -> Self {
        ColumnSet([TableColumns::NONE; 4])
    }
}

impl ColumnSet {
    /// Every column of every table.
    pub fn all() -> Self {
        let mut all = ColumnSet::default();
        for table in DATA_TABLES {
            all.add_table(table);
        }
        all
    }

    /// The columns of `table`; every column of a table that is not a data table.
    pub fn of(&self, table: &str) -> TableColumns {
        match DATA_TABLES.iter().position(|t| *t == table) {
            Some(i) => self.0[i],
            None => TableColumns::ALL,
        }
    }

    /// Adds column `index` of `table` (nothing for a table that is not a data table).
    pub fn add_index(&mut self, table: &str, index: usize) {
        if let Some(i) = DATA_TABLES.iter().position(|t| *t == table) {
            self.0[i] = self.0[i].with(index);
        }
    }

    /// Adds the column `column` of `table`, if it has one by that name.
    pub fn add(&mut self, table: &str, column: &str) {
        if let Some(index) = schema_of(table).and_then(|s| s.index_of(column).ok()) {
            self.add_index(table, index);
        }
    }

    /// Adds every column of `table`.
    pub fn add_table(&mut self, table: &str) {
        let columns = schema_of(table).map_or(0, |s| s.fields().len());
        for index in 0..columns {
            self.add_index(table, index);
        }
    }

    /// Whether every column of `other` is in this set too.
    pub fn covers(&self, other: &ColumnSet) -> bool {
        self.0.iter().zip(other.0).all(|(m, t)| t.0 & !m.0 == 0)
    }
}

impl fmt::Debug for ColumnSet {
    /// `table: column, column; …` with the names of the columns built.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tables = f.debug_map();
        for (table, columns) in DATA_TABLES.iter().zip(self.0) {
            let schema = schema_of(table).expect("a data table");
            let names: Vec<&str> = schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(i, _)| columns.has(*i))
                .map(|(_, f)| f.name().as_str())
                .collect();
            tables.entry(table, &names);
        }
        tables.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_added_by_name_and_index_and_compared() {
        let mut set = ColumnSet::default();
        set.add("spans", "service");
        set.add("spans", "no_such_column");
        set.add("window_bounds", "window_start");
        set.add_index("traces", 0);
        let spans = super::super::spans_schema();
        let service = spans.index_of("service").unwrap();
        for i in 0..spans.fields().len() {
            assert_eq!(set.of("spans").has(i), i == service, "column {i}");
        }
        assert!(set.of("traces").has(0) && !set.of("traces").has(1));
        assert_eq!(set.of("logs"), TableColumns::NONE);
        assert_eq!(set.of("window_bounds"), TableColumns::ALL);
        assert_eq!(
            format!("{set:?}"),
            r#"{"logs": [], "metrics": [], "spans": ["service"], "traces": ["trace_id"]}"#
        );

        let mut more = set.clone();
        more.add_table("logs");
        assert!(more.covers(&set) && !set.covers(&more));
        assert!(ColumnSet::all().covers(&more) && more.covers(&more));
    }
}
