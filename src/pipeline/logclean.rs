//! The log cleaner in the pipeline: folds multi-line tracebacks, parses every log record
//! (`logparse`), and keeps the template miner's state in a file across restarts.

use std::path::{Path, PathBuf};

use tracing::info;

use crate::config::LogsConfig;
use crate::error::{Error, Result};
use crate::logparse::signatures::{FoldConfig, Folded, TracebackFolder};
use crate::logparse::{LogParser, MinerConfig, MinerState, TemplateMiner};
use crate::model::{LogRecord, Record};

/// Counters of the log cleaner.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct CleanStats {
    /// Log records parsed.
    pub parsed: u64,
    /// Records merged into a folded traceback (not counted as records of their own).
    pub folded: u64,
    /// Records with a recognised failure signature.
    pub signatures: u64,
}

pub struct LogCleaner {
    parser: LogParser,
    config: LogsConfig,
    state_file: Option<PathBuf>,
    pub stats: CleanStats,
}

impl LogCleaner {
    /// A cleaner for the pipeline in `dir`, going on from the state file when it exists.
    pub fn load(dir: &Path, config: &LogsConfig) -> Result<Self> {
        let state_file = config.template_state.as_ref().map(|p| dir.join(p));
        let miner = load_miner(state_file.as_deref(), config.miner)?;
        if let Some(path) = &state_file {
            if miner.shapes() > 0 {
                info!(path = %path.display(), shapes = miner.shapes(), "Restored log templates.");
            }
        }
        let parser = LogParser::from_miner(miner);
        Ok(Self {
            parser,
            config: config.clone(),
            state_file,
            stats: CleanStats::default(),
        })
    }

    /// Folds the tracebacks of one input message's log records and parses every log record.
    /// Other records pass unchanged.
    pub fn clean(&mut self, records: Vec<Record>) -> Vec<Record> {
        let mut folder = TracebackFolder::new(FoldConfig {
            max_lines: self.config.fold_max_lines,
            ..FoldConfig::default()
        });
        let mut out = Vec::with_capacity(records.len());
        let mut folded = Vec::new();
        for record in records {
            match record {
                Record::Log(log) => {
                    let stream = stream_key(&log);
                    let (time, body) = (log.time.nanos(), log.body.clone());
                    folded.extend(folder.push(&stream, time, &body, log));
                }
                other => out.push(other),
            }
        }
        folded.extend(folder.flush_all());
        for item in folded {
            let log = match item {
                Folded::Single(log) => log,
                Folded::Folded { parts, text } => {
                    self.stats.folded += parts.len() as u64 - 1;
                    let mut first = parts.into_iter().next().expect("a fold has parts");
                    first.body = text;
                    first
                }
            };
            out.push(Record::Log(self.parse(log)));
        }
        out
    }

    fn parse(&mut self, mut log: LogRecord) -> LogRecord {
        let parsed = self.parser.parse(&log.body, &log.attributes);
        self.stats.parsed += 1;
        self.stats.signatures += u64::from(parsed.signature.is_some());
        log.parsed = Some(Box::new(parsed));
        log
    }

    /// Writes the miner state, if a state file is configured.
    pub fn save(&self) -> Result<()> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        save_state(path, &self.parser.state())
    }
}

/// A miner from the state file at `path` when it exists, else a fresh one. A file that is not
/// a state file is a configuration error naming it (never silently ignored: that would
/// change every template id).
pub fn load_miner(path: Option<&Path>, config: MinerConfig) -> Result<TemplateMiner> {
    let Some(path) = path.filter(|p| p.exists()) else {
        return Ok(TemplateMiner::new(config));
    };
    let config_error = |message: String| Error::Config {
        location: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let state: MinerState = serde_json::from_str(&text).map_err(|e| {
        config_error(format!(
            "not a template state file ({e}); delete it to start afresh"
        ))
    })?;
    TemplateMiner::from_state(config, &state).map_err(config_error)
}

/// Writes miner state atomically: a crash leaves the previous state, never half of one.
pub fn save_state(path: &Path, state: &MinerState) -> Result<()> {
    let text = serde_json::to_string(state).expect("state serialises");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One emitter: lines of different processes never fold together.
fn stream_key(log: &LogRecord) -> String {
    let r = &log.resource;
    let pid = r.attributes.get("process.pid").map_or("", String::as_str);
    format!(
        "{}|{}|{}",
        r.service.as_deref().unwrap_or(""),
        r.host.as_deref().unwrap_or(""),
        pid
    )
}
