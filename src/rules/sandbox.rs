//! What a rule may do: read the pipeline's tables, nothing else. DDL (`CREATE EXTERNAL
//! TABLE`), DML (`INSERT`, `COPY`) and statements (`SET`) are refused by DataFusion's
//! `SQLOptions`; this module also refuses any scan of a table that is not one of ours, which
//! covers file and URL table functions (`read_csv('/etc/passwd')` plans as a scan of a table
//! named after the function) and catalog tables (`information_schema`).

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SQLOptions;

/// Only queries.
pub(crate) fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Refuses plans that scan anything but the `allowed` tables, or that are not plain
/// queries; the tables the plan reads.
pub(crate) fn check_plan(plan: &LogicalPlan, allowed: &[&str]) -> Result<Vec<String>, String> {
    let mut problem = None;
    let mut scans = Vec::new();
    plan.apply_with_subqueries(|node| {
        let bad = match node {
            LogicalPlan::TableScan(scan) => {
                let name = scan.table_name.table();
                let ours = scan.table_name.schema().is_none_or(|s| s == "public")
                    && allowed.contains(&name);
                if ours && !scans.iter().any(|s| s == name) {
                    scans.push(name.to_string());
                }
                (!ours).then(|| {
                    format!(
                        "rules may only read the tables {}; `{}` is not one of them",
                        allowed.join(", "),
                        scan.table_name
                    )
                })
            }
            LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) | LogicalPlan::Copy(_) => {
                Some("rules may only query; DDL, DML and COPY are refused".into())
            }
            LogicalPlan::Statement(_) | LogicalPlan::Extension(_) => {
                Some("rules may only query".into())
            }
            // A recursive query's plan cannot be executed again (its work table is state),
            // and rules run one stored plan per window.
            LogicalPlan::RecursiveQuery(_) => {
                Some("rules may not use recursive queries (`WITH RECURSIVE`)".into())
            }
            _ => None,
        };
        if let Some(p) = bad {
            problem = Some(p);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(|e| e.to_string())?;
    match problem {
        Some(p) => Err(p),
        None => Ok(scans),
    }
}
