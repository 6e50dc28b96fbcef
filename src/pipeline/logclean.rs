//! The log cleaner in the pipeline: folds multi-line tracebacks (per shard, across input
//! messages) and parses every log record (`logparse`). The template miner's state comes from
//! and goes to the loader (`[logs] template_state`).

use crate::config::PipelineConfig;
use crate::logparse::header::severity_number;
use crate::logparse::signatures::{FoldConfig, Folded, TracebackFolder};
use crate::logparse::{LogParser, MinerState, TemplateMiner, LEVEL_FIELD};
use crate::model::{AckId, EventTime, Location, LogRecord, ParsedLog};

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
        if self.folder.passes_through(&stream, &log.body) {
            return vec![Folded::Single((log, ack, source.clone()))];
        }
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
    pub stats: CleanStats,
}

impl LogCleaner {
    /// A cleaner going on with `miner` (fresh, or restored from the template state).
    pub fn new(miner: TemplateMiner) -> Self {
        Self {
            parser: LogParser::from_miner(miner),
            stats: CleanStats::default(),
        }
    }

    /// The miner's state, to persist.
    pub fn state(&self) -> MinerState {
        self.parser.state()
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
        let parsed = self
            .parser
            .parse(&stream_key(&log), &log.body, &log.attributes);
        fill_severity(&mut log, &parsed);
        self.stats.parsed += 1;
        self.stats.signatures += u64::from(parsed.signature.is_some());
        log.parsed = Some(Box::new(parsed));
        log
    }
}

/// A level found in the body's header is the record's severity when its sender gave none.
fn fill_severity(log: &mut LogRecord, parsed: &ParsedLog) {
    if log.severity_number != 0 || log.severity_text.is_some() {
        return;
    }
    let Some((_, level)) = parsed.fields.iter().find(|(k, _)| k == LEVEL_FIELD) else {
        return;
    };
    if let Some(number) = severity_number(level) {
        log.severity_number = number;
        log.severity_text = Some(level.clone());
    }
}

/// One emitter: lines of different processes never fold together; header shapes are
/// learned per emitter.
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::logparse::MinerConfig;
    use crate::model::{Attributes, Resource};

    fn record(severity_number: i32, body: &str) -> LogRecord {
        LogRecord {
            time: EventTime(0),
            observed_time: None,
            trace_id: None,
            span_id: None,
            severity_number,
            severity_text: None,
            body: body.into(),
            resource: Arc::new(Resource::default()),
            scope: None,
            attributes: Attributes::new(),
            parsed: None,
        }
    }

    #[test]
    fn a_header_level_fills_the_severity_only_when_the_sender_gave_none() {
        let mut cleaner = LogCleaner::new(TemplateMiner::new(MinerConfig::default()));
        let line = "2024-03-01 12:00:00,123 WARN [main] com.example.Pool: pool 7 exhausted";
        let filled = cleaner.parse(record(0, line));
        assert_eq!(filled.severity_number, 13);
        assert_eq!(filled.severity_text.as_deref(), Some("WARN"));
        let parsed = filled.parsed.as_deref().unwrap();
        assert_eq!(parsed.template.as_deref(), Some("pool <*> exhausted"));

        let kept = cleaner.parse(record(17, line));
        assert_eq!((kept.severity_number, kept.severity_text), (17, None));

        let plain = cleaner.parse(record(0, "pool 8 exhausted"));
        assert_eq!((plain.severity_number, plain.severity_text), (0, None));
    }
}
