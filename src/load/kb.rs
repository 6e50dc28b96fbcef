//! Reading the knowledge base: `<pipeline>/<kb.dir>/*.toml` (one entry each, sorted by
//! name), their preconditions planned against the window tables and the `alert` table, and
//! the feedback statistics of `[kb] state`.

use std::path::{Path, PathBuf};

use super::{io, read_text};
use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::kb::entry::{parse_entry, Entry};
use crate::kb::feedback::KbState;
use crate::kb::validate::alert_table;
use crate::rules::plan_query;

/// Every entry of the pipeline's knowledge base, checked and with its preconditions planned;
/// errors are collected. No directory: no entries.
pub async fn read_entries(
    dir: &Path,
    config: &PipelineConfig,
    errors: &mut Vec<Error>,
) -> Vec<Entry> {
    let kb = dir.join(&config.kb.dir);
    if !kb.is_dir() {
        return Vec::new();
    }
    let files = std::fs::read_dir(&kb).and_then(|rd| {
        rd.map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<Vec<PathBuf>>>()
    });
    let mut files = match files {
        Ok(f) => f,
        Err(e) => {
            errors.push(io(&kb, e));
            return Vec::new();
        }
    };
    files.retain(|p| p.extension().is_some_and(|x| x == "toml"));
    files.sort();
    let mut entries = Vec::new();
    for path in files {
        match read_text(&path).and_then(|text| parse_entry(&path, &text)) {
            Ok(entry) => entries.push(entry),
            Err(e) => errors.push(e),
        }
    }
    let limits = config.evaluation.limits();
    for entry in &entries {
        for (_, query) in &entry.preconditions {
            if let Err(e) = plan_query(query, limits, &[alert_table()]).await {
                errors.push(e);
            }
        }
    }
    entries
}

/// Where `[kb] state` points, if set.
pub fn kb_state_path(dir: &Path, config: &PipelineConfig) -> Option<PathBuf> {
    config.kb.state.as_ref().map(|p| dir.join(p))
}

/// The persisted feedback statistics, or none yet.
pub fn read_kb_state(path: Option<&Path>) -> Result<KbState> {
    let Some(path) = path.filter(|p| p.exists()) else {
        return Ok(KbState::default());
    };
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        location: path.display().to_string(),
        message: format!(
            "not a knowledge-base state file ({e}); delete it to rebuild it from the feedback"
        ),
    })
}

/// Writes the statistics atomically.
pub fn save_kb_state(path: &Path, state: &KbState) -> Result<()> {
    let text = serde_json::to_string_pretty(state).expect("state serialises");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}
