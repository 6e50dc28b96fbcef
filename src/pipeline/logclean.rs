//! The log cleaner in the pipeline: folds multi-line tracebacks (per shard, across input
//! messages), parses every log record (`logparse`), and keeps the template miner's state in a
//! file across restarts.

use std::path::{Path, PathBuf};

use tracing::info;

use crate::align::AckId;
use crate::config::{LogsConfig, PipelineConfig};
use crate::error::{Error, Result};
use crate::logparse::signatures::{FoldConfig, Folded, TracebackFolder};
use crate::logparse::{LogParser, MinerConfig, MinerState, TemplateMiner};
use crate::model::{EventTime, Location, LogRecord};

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

/// A log record waiting in a shard's folder: the record, the input message holding it, and
/// where it came from (for a late record's report).
pub type Pending = (LogRecord, AckId, Location);

/// A cleaned log record ready for the aligner.
pub struct Cleaned {
    pub log: LogRecord,
    pub ack: AckId,
    pub source: Location,
    /// Messages of the other lines folded into this record.
    pub merged: Vec<AckId>,
}

/// Per shard: folds multi-line tracebacks across the records and messages of one emitter
/// (service, host, pid). A fold ends at a line that does not continue it, after
/// `fold_max_lines`, or once the watermark is past its last line by the fold gap (the
/// smaller of `traces.gap` and 2 s, so a fold is always out before its window closes).
pub struct ShardFolder {
    folder: TracebackFolder<Pending>,
}

impl ShardFolder {
    pub fn new(config: &PipelineConfig) -> Self {
        let gap = config.traces.gap.min(std::time::Duration::from_secs(2));
        Self {
            folder: TracebackFolder::new(FoldConfig {
                max_lines: config.logs.fold_max_lines,
                max_gap_ns: i64::try_from(gap.as_nanos()).unwrap_or(i64::MAX),
                ..FoldConfig::default()
            }),
        }
    }

    pub fn push(&mut self, log: LogRecord, ack: AckId, source: &Location) -> Vec<Folded<Pending>> {
        let stream = stream_key(&log);
        let (time, body) = (log.time.nanos(), log.body.clone());
        self.folder
            .push(&stream, time, &body, (log, ack, source.clone()))
    }

    /// Folds that can no longer grow once the watermark is at `watermark`.
    pub fn flush_older_than(&mut self, watermark: EventTime) -> Vec<Folded<Pending>> {
        self.folder.flush_older_than(watermark.nanos())
    }

    pub fn flush_all(&mut self) -> Vec<Folded<Pending>> {
        self.folder.flush_all()
    }
}

pub struct LogCleaner {
    parser: LogParser,
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
            state_file,
            stats: CleanStats::default(),
        })
    }

    /// Turns what a shard's folder emitted into parsed log records: a fold becomes its first
    /// record with the whole text as body; the other records' messages are listed in
    /// `merged` (the fold's first message holds the event from now on).
    pub fn finish(&mut self, items: Vec<Folded<Pending>>) -> Vec<Cleaned> {
        items
            .into_iter()
            .map(|item| {
                let (log, ack, source, merged) = match item {
                    Folded::Single((log, ack, source)) => (log, ack, source, Vec::new()),
                    Folded::Folded { parts, text } => {
                        self.stats.folded += parts.len() as u64 - 1;
                        let mut parts = parts.into_iter();
                        let (mut first, ack, source) = parts.next().expect("a fold has parts");
                        first.body = text;
                        (first, ack, source, parts.map(|(_, a, _)| a).collect())
                    }
                };
                Cleaned {
                    log: self.parse(log),
                    ack,
                    source,
                    merged,
                }
            })
            .collect()
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
