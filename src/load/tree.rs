//! Reading the rules tree: every `.sql` file under the pipeline's rule paths with the
//! `_defaults.toml` files above it, and a stamp of the tree for change detection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::{io, read_text};
use crate::error::Error;
use crate::rules::RuleText;

/// Every `.sql` file under `paths` (relative to `base`), sorted by path, with the defaults
/// that apply to each, and the errors met reading them. Rules directly in a rules directory
/// belong to the pipeline's group (its directory name), rules in a subdirectory to its name.
pub fn read_rules(base: &Path, paths: &[PathBuf]) -> (Vec<RuleText>, Vec<Error>) {
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
            let defaults = p
                .parent()
                .map(read_defaults)
                .transpose()
                .map(|d| d.flatten().into_iter().collect());
            match defaults.and_then(|d| rule_text(&p, d, &pipeline_group)) {
                Ok(t) => files.push(t),
                Err(e) => errors.push(e),
            }
        } else if p.is_dir() {
            collect(&p, &[], &pipeline_group, &mut files, &mut errors);
        } else {
            errors.push(Error::Config {
                location: base.join("pipeline.toml").display().to_string(),
                message: format!("rules path {} does not exist", p.display()),
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    (files, errors)
}

type Defaults = (PathBuf, Arc<str>);

/// The `_defaults.toml` of `dir`, if any.
fn read_defaults(dir: &Path) -> crate::Result<Option<Defaults>> {
    let path = dir.join("_defaults.toml");
    if !path.is_file() {
        return Ok(None);
    }
    let text = read_text(&path)?;
    Ok(Some((path, Arc::from(text))))
}

fn rule_text(path: &Path, defaults: Vec<Defaults>, group: &str) -> crate::Result<RuleText> {
    Ok(RuleText {
        path: path.to_path_buf(),
        text: read_text(path)?,
        group: group.to_string(),
        defaults,
    })
}

/// Every `.sql` file under `dir`, each with the defaults above it.
fn collect(
    dir: &Path,
    inherited: &[Defaults],
    group: &str,
    out: &mut Vec<RuleText>,
    errors: &mut Vec<Error>,
) {
    let mut defaults = inherited.to_vec();
    match read_defaults(dir) {
        Ok(d) => defaults.extend(d),
        Err(e) => errors.push(e),
    }
    let entries = std::fs::read_dir(dir).and_then(|rd| {
        rd.map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<Vec<PathBuf>>>()
    });
    let mut entries = match entries {
        Ok(e) => e,
        Err(e) => return errors.push(io(dir, e)),
    };
    entries.sort();
    for p in entries {
        if p.is_dir() {
            let sub = p.file_name().and_then(|n| n.to_str()).unwrap_or(group);
            collect(&p, &defaults, sub, out, errors);
        } else if p.extension().is_some_and(|e| e == "sql") {
            match rule_text(&p, defaults.clone(), group) {
                Ok(t) => out.push(t),
                Err(e) => errors.push(e),
            }
        }
    }
}

/// Path, size and modification time of every rule file and `_defaults.toml`: when it
/// changes, the rules changed on disk.
pub type RulesStamp = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The current [`RulesStamp`] of the rules under `paths`.
pub fn rules_stamp(base: &Path, paths: &[PathBuf]) -> RulesStamp {
    fn walk(p: &Path, out: &mut RulesStamp) {
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
