//! Log cleaning: what a log line says, as columns rules can use.
//!
//! For each log record: a structured body (JSON or logfmt) gives its fields and its message
//! ([`structured`]); a plain-text body's header (timestamp, level, logger, pid, thread, host)
//! is recognised with the shape learned for its stream and moved into `log.*` fields
//! ([`header`]); the message is mined into a template with parameters ([`miner`], [`mask`]);
//! and framework failures (shape and dtype
//! mismatches, CUDA out of memory, NCCL errors, browser errors) are recognised with typed
//! fields ([`signatures`]). Pure: no I/O, no clock; the miner's state is data the pipeline
//! persists.

pub mod header;
pub mod mask;
pub mod miner;
pub mod signatures;
pub mod structured;

use std::borrow::Cow;

use crate::model::{Attributes, ParsedLog};

pub use header::{HeaderLearner, LEVEL_FIELD};
pub use miner::{MinerConfig, MinerState, TemplateMiner};

/// Template miner, header shapes per stream, plus the stateless extractors.
#[derive(Debug, Clone)]
pub struct LogParser {
    miner: TemplateMiner,
    headers: HeaderLearner,
}

impl LogParser {
    pub fn new(config: MinerConfig) -> Self {
        Self::from_miner(TemplateMiner::new(config))
    }

    /// A parser that goes on with `miner` (e.g. one restored from its state).
    pub fn from_miner(miner: TemplateMiner) -> Self {
        Self {
            miner,
            headers: HeaderLearner::new(),
        }
    }

    pub fn state(&self) -> MinerState {
        self.miner.state()
    }

    /// Number of distinct masked templates the miner holds.
    pub fn shapes(&self) -> usize {
        self.miner.shapes()
    }

    /// Cleans one log record's body, a record of `stream` (its emitter: header shapes are
    /// learned per stream); `attributes` add OpenTelemetry's `exception.*` facts to the text
    /// signatures are looked for in.
    pub fn parse(&mut self, stream: &str, body: &str, attributes: &Attributes) -> ParsedLog {
        let mut parsed = ParsedLog::default();
        let structured = structured::parse_body(body);
        let text: Option<&str> = match &structured {
            Some(s) => s.message.as_deref(),
            None => {
                let (rest, fields) = self.strip_header(stream, body);
                parsed.fields = fields;
                Some(rest)
            }
        };
        if let Some(line) = text.and_then(mining_line) {
            let p = self.miner.parse(line);
            parsed.template_id = Some(miner::format_id(p.template_id));
            parsed.template = Some(p.template.to_string());
            parsed.params = p
                .params
                .iter()
                .map(|&(a, b)| line[a as usize..b as usize].to_string())
                .collect();
        }
        // Signatures read the whole plain body: a header may say what failed (`NCCL WARN`).
        let failure_text = match &structured {
            Some(_) => failure_text(text.unwrap_or(body), attributes),
            None => failure_text(body, attributes),
        };
        if let Some(signature) = signatures::extract(&failure_text) {
            parsed.signature = Some(signature.kind.as_str());
            parsed.signature_fields = signature.fields;
        }
        if let Some(s) = structured {
            parsed.fields = s.fields;
        }
        parsed
    }

    /// A plain body without the header of its first line, and the header's fields. A line
    /// that is all header keeps it (there would be nothing to mine).
    fn strip_header<'b>(
        &mut self,
        stream: &str,
        body: &'b str,
    ) -> (&'b str, Vec<(String, String)>) {
        let offset = body.len() - body.trim_start().len();
        let first = body[offset..].lines().next().unwrap_or("");
        let header = self.headers.parse(stream, first);
        let message_start = offset + header.message_start;
        if header.items.is_empty() || body[message_start..].trim().is_empty() {
            return (body, Vec::new());
        }
        (&body[message_start..], header.fields(first))
    }
}

/// The line a template describes: the first non-blank line, or for a Python traceback its
/// final exception line (`RuntimeError: CUDA out of memory...`), which says what happened.
fn mining_line(text: &str) -> Option<&str> {
    let first = text
        .lines()
        .map(str::trim_end)
        .find(|l| !l.trim().is_empty())?;
    if first.starts_with("Traceback (most recent call last)") {
        if let Some(last) = text
            .lines()
            .rev()
            .map(str::trim_end)
            .find(|l| !l.trim().is_empty())
        {
            return Some(last);
        }
    }
    Some(first)
}

/// The record's text plus an OpenTelemetry exception (`exception.type`, `.message`,
/// `.stacktrace`) when the record carries one.
fn failure_text<'a>(text: &'a str, attributes: &Attributes) -> Cow<'a, str> {
    let kind = attributes.get("exception.type");
    let message = attributes.get("exception.message");
    let stack = attributes.get("exception.stacktrace");
    if kind.is_none() && message.is_none() && stack.is_none() {
        return Cow::Borrowed(text);
    }
    let mut all = String::from(text);
    if let Some(stack) = stack {
        all.push('\n');
        all.push_str(stack);
    }
    if kind.is_some() || message.is_some() {
        all.push('\n');
        all.push_str(kind.map_or("Error", String::as_str));
        all.push_str(": ");
        all.push_str(message.map_or("", String::as_str));
    }
    Cow::Owned(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_structured_and_traceback_bodies() {
        let mut parser = LogParser::new(MinerConfig::default());
        let none = Attributes::new();
        let plain = parser.parse("s", "Invalid user bob from 10.0.0.1", &none);
        assert_eq!(plain.template.as_deref(), Some("Invalid user <*> from <*>"));
        assert_eq!(plain.params, ["bob", "10.0.0.1"]);
        assert_eq!(plain.template_id.as_deref().map(str::len), Some(16));

        let json = parser.parse(
            "s",
            r#"{"level":"error","msg":"upstream timeout after 30s","status":504}"#,
            &none,
        );
        assert_eq!(json.template.as_deref(), Some("upstream timeout after <*>"));
        assert!(json
            .fields
            .contains(&("status".to_string(), "504".to_string())));

        let traceback = "Traceback (most recent call last):\n  File \"train.py\", line 3, in <module>\n    y = model(x)\nRuntimeError: mat1 and mat2 shapes cannot be multiplied (32x512 and 256x10)";
        let t = parser.parse("s", traceback, &none);
        assert_eq!(t.signature, Some("shape_mismatch"));
        assert_eq!(
            t.template.as_deref(),
            Some("RuntimeError: mat1 and mat2 shapes cannot be multiplied (<*> and <*>)")
        );
    }

    #[test]
    fn a_raw_line_header_becomes_fields_and_the_message_is_mined() {
        let mut parser = LogParser::new(MinerConfig::default());
        let none = Attributes::new();
        let line = "2024-03-01 12:00:00,123 WARN [main] com.example.Pool: pool 7 exhausted";
        let parsed = parser.parse("svc", line, &none);
        assert_eq!(parsed.template.as_deref(), Some("pool <*> exhausted"));
        assert_eq!(parsed.params, ["7"]);
        let field = |k: &str| {
            parsed
                .fields
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(field("log.time"), Some("2024-03-01 12:00:00,123"));
        assert_eq!(field(LEVEL_FIELD), Some("WARN"));
        assert_eq!(field("log.thread"), Some("main"));
        assert_eq!(field("log.logger"), Some("com.example.Pool"));
        // Another day, another pool: the same template (the header is not in it).
        let next = "2024-03-02 08:30:00,001 WARN [main] com.example.Pool: pool 9 exhausted";
        let again = parser.parse("svc", next, &none);
        assert_eq!(again.template_id, parsed.template_id);
    }

    #[test]
    fn exception_attributes_feed_signatures() {
        let mut parser = LogParser::new(MinerConfig::default());
        let mut attributes = Attributes::new();
        attributes.insert("exception.type".into(), "torch.OutOfMemoryError".into());
        attributes.insert(
            "exception.message".into(),
            "CUDA out of memory. Tried to allocate 4.50 GiB. GPU 1 has a total capacity of 139.81 GiB of which 2.12 GiB is free.".into(),
        );
        let parsed = parser.parse("s", "step failed", &attributes);
        assert_eq!(parsed.signature, Some("cuda_oom"));
        assert_eq!(parsed.template.as_deref(), Some("step failed"));
    }
}
