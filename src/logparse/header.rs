//! Headers of raw log lines: the timestamp, level, logger, pid, thread and host a logging
//! framework or syslog writes before the message, recognised without configuration.
//!
//! A line is read token by token from its start. Each token is classified (a time in one of the
//! common forms, a level, a logger, a bracketed thread, a separator, a number, or a *weak* token
//! such as a host or node name that is a header field only when a strong one follows), and the
//! header is the longest run that ends in a strong token and holds a time or starts with a
//! level. Everything
//! after it is the message the miner sees. A line with nothing recognised has no header.
//!
//! Header shapes (the sequence of field kinds) are learned per stream: each of the first
//! [`LEARN_LINES`] lines of a stream votes with its own header's shape; then the most voted
//! shape is kept. A line whose tokens fit the stream's shape (the kept one, or while learning
//! the most voted so far) is cut exactly there, so a message that happens to begin like a
//! header field (`error 12 retries`, `ciod: failed`) keeps its words, and a node-name place
//! holds any word; a line that does not fit has its own header.
//! A stream whose lines have no header learns the empty shape and is never cut. Pure: no I/O,
//! no clock; bounded (at most [`MAX_STREAMS`] streams, the least recently seen forgotten);
//! not persisted: after a restart a stream learns its shape again.

use fnv::FnvHashMap;

#[path = "header_tokens.rs"]
mod tokens;

use tokens::{classify_bracket, classify_word, Class, Cursor, ScanContext, Weak};

/// Lines of a stream whose headers vote for the stream's shape.
pub const LEARN_LINES: u32 = 16;
/// Streams whose shape is remembered; the least recently seen are forgotten beyond it.
pub const MAX_STREAMS: usize = 4096;

/// The field a header's level goes to; the pipeline fills a record's severity from it when
/// the sender gave none.
pub const LEVEL_FIELD: &str = "log.level";

/// What a header field is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A part of the timestamp: a date, a clock time, an epoch, a weekday or month name.
    Time,
    /// `INFO`, `[notice]`, `W`, glog's `I1129`.
    Level,
    /// `sshd[24200]:`, `org.apache.Foo:`, a dotted name after the level.
    Logger,
    /// A number: a process id or a record id.
    Pid,
    /// A bracketed token: `[main]`, `[QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181]`.
    Thread,
    /// The host name of a syslog line.
    Host,
    /// Any other header token: a node name, a label, a bracketed request context.
    Context,
    /// `-` or `|` between fields.
    Separator,
}

impl Kind {
    /// The field name the value goes to (`fields` of the `logs` table).
    pub fn field(self) -> Option<&'static str> {
        Some(match self {
            Kind::Time => "log.time",
            Kind::Level => LEVEL_FIELD,
            Kind::Logger => "log.logger",
            Kind::Pid => "log.pid",
            Kind::Thread => "log.thread",
            Kind::Host => "log.host",
            Kind::Context => "log.context",
            Kind::Separator => return None,
        })
    }
}

/// One header field: its kind and its value's byte range in the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    /// Byte offset just after the token (where the message could start).
    token_end: usize,
    /// Written inside the token before it (the pid of `sshd[42]:`): not part of the shape.
    nested: bool,
}

/// The header found at the start of a line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub items: Vec<Item>,
    /// Byte offset of the message (after the header and the blanks that follow it).
    pub message_start: usize,
}

impl Header {
    /// The header's fields as `log.*` names and values, in order of first appearance; the
    /// values of several fields of one kind (a date and a clock time) are joined with a space.
    pub fn fields(&self, line: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for item in &self.items {
            let Some(name) = item.kind.field() else {
                continue;
            };
            let value = &line[item.start..item.end];
            match out.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(value);
                }
                None => out.push((name.to_string(), value.to_string())),
            }
        }
        out
    }

    /// The first value of `kind`.
    pub fn get<'l>(&self, line: &'l str, kind: Kind) -> Option<&'l str> {
        self.items
            .iter()
            .find(|i| i.kind == kind)
            .map(|i| &line[i.start..i.end])
    }

    fn shape(&self) -> Vec<Kind> {
        self.items
            .iter()
            .filter(|i| !i.nested)
            .map(|i| i.kind)
            .collect()
    }

    /// Keeps the first `n` items; the message starts after the last one kept.
    fn cut(&mut self, line: &str, n: usize) {
        let mut kept = 0;
        self.items.retain(|i| {
            kept += usize::from(!i.nested);
            kept <= n
        });
        let end = self.items.last().map_or(0, |i| i.token_end);
        self.message_start = skip_blanks(line, end);
    }
}

fn skip_blanks(line: &str, from: usize) -> usize {
    from + (line[from..].len() - line[from..].trim_start().len())
}

/// The header of one line on its own (no stream history).
pub fn parse_line(line: &str) -> Header {
    let mut scan = Scan::default();
    let mut cursor = Cursor::new(line);
    while let Some((start, end)) = cursor.next_token() {
        let class = scan.classify(line, (start, end), cursor.peek_token());
        if !scan.push(class, start, end) {
            break;
        }
    }
    scan.finish(line)
}

/// The header of `line` when its tokens have the kinds of `shape` (weak tokens fit
/// `Context` and `Host` places whatever their sort), cut right after them.
fn match_shape(line: &str, shape: &[Kind]) -> Option<Header> {
    let mut scan = Scan::default();
    let mut cursor = Cursor::new(line);
    for &want in shape {
        let (start, end) = cursor.next_token()?;
        let class = scan.classify(line, (start, end), cursor.peek_token())?;
        // A place of node or host names holds any word (`status`, even `error`); a request
        // context may be a bare `[-]`.
        let word = class.weak.is_some() || class.kind == Kind::Level;
        let fits = match want {
            Kind::Context => word || class.kind == Kind::Thread,
            Kind::Host => word,
            _ => false,
        };
        if class.kind != want && !fits {
            return None;
        }
        scan.record(&class, start, end);
    }
    let mut header = Header {
        items: scan.items,
        message_start: 0,
    };
    header.cut(line, shape.len());
    Some(header)
}

/// The greedy scan over a line's tokens.
#[derive(Default)]
struct Scan {
    items: Vec<Item>,
    /// Items up to here are the header so far (they end in a strong token).
    committed: usize,
    /// Weak tokens since the last strong one.
    pending: Vec<Weak>,
    /// `-` or `|` seen between fields: from then on only that separator commits.
    separator: Option<u8>,
    /// Tokens since the last separator (in separator mode).
    since_separator: usize,
    saw_month: bool,
    last_month: bool,
    /// The last token ended a syslog timestamp (`Jun 14 15:16:01`): a host name may follow.
    syslog_time: bool,
}

impl Scan {
    fn context<'a>(&self, next: Option<&'a str>) -> ScanContext<'a> {
        ScanContext {
            last: self.items.last().map(|i| i.kind),
            last_strong: self.pending.is_empty() && !self.items.is_empty(),
            syslog_time: self.syslog_time,
            after_month: self.last_month,
            next,
        }
    }

    fn classify(
        &self,
        line: &str,
        (start, end): (usize, usize),
        next: Option<(usize, usize)>,
    ) -> Option<Class> {
        let token = &line[start..end];
        let context = self.context(next.map(|(a, b)| &line[a..b]));
        if token.starts_with('[') && token.ends_with(']') {
            classify_bracket(token, &context)
        } else {
            classify_word(token, &context)
        }
    }

    /// Adds a classified token; false when the header cannot go on.
    fn push(&mut self, class: Option<Class>, start: usize, end: usize) -> bool {
        let Some(class) = class else {
            return false;
        };
        self.record(&class, start, end);
        if let Some(byte) = class.separator {
            if self.separator.is_none_or(|s| s == byte) {
                self.separator = Some(byte);
                self.since_separator = 0;
                self.commit();
                return true;
            }
        }
        if self.separator.is_some() {
            // Between separators every field is provisional: `- msg words` is the message.
            self.since_separator += 1;
            return self.since_separator <= 4;
        }
        match class.weak {
            None if self.pending.iter().all(|&w| class.accepts(w)) => {
                self.commit();
                !class.terminal
            }
            None => {
                self.items.truncate(self.committed);
                false
            }
            Some(weak) => {
                self.pending.push(weak);
                self.pending.len() <= 3
            }
        }
    }

    /// Adds the token's items (the field, and a pid written inside it) and what it says
    /// about the tokens after it.
    fn record(&mut self, class: &Class, start: usize, end: usize) {
        self.saw_month |= class.month;
        self.last_month = class.month;
        self.syslog_time = class.clock && self.saw_month;
        self.items.push(Item {
            kind: class.kind,
            start: start + class.trim.0,
            end: end - class.trim.1,
            token_end: end,
            nested: false,
        });
        if let Some((a, b)) = class.pid {
            self.items.push(Item {
                kind: Kind::Pid,
                start: start + a,
                end: start + b,
                token_end: end,
                nested: true,
            });
        }
    }

    fn commit(&mut self) {
        self.committed = self.items.len();
        self.pending.clear();
    }

    fn finish(mut self, line: &str) -> Header {
        self.items.truncate(self.committed);
        // A time anywhere, or a level first (`ERROR: …`): `NCCL WARN …` is a message.
        let anchored = self.items.iter().any(|i| i.kind == Kind::Time)
            || self.items.first().is_some_and(|i| i.kind == Kind::Level);
        if !anchored {
            return Header::default();
        }
        let mut header = Header {
            items: self.items,
            message_start: 0,
        };
        let n = header.items.len();
        header.cut(line, n);
        header
    }
}

#[derive(Debug, Clone, Default)]
struct Stream {
    /// Shapes seen while learning, with their counts, in order of first appearance.
    votes: Vec<(Vec<Kind>, u32)>,
    lines: u32,
    learned: Option<Vec<Kind>>,
    last_seen: u64,
}

/// Header shapes learned per stream (service, host, file).
#[derive(Debug, Clone, Default)]
pub struct HeaderLearner {
    streams: FnvHashMap<String, Stream>,
    clock: u64,
}

impl HeaderLearner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The header of `line`, a line of `stream`, learning the stream's shape.
    pub fn parse(&mut self, stream: &str, line: &str) -> Header {
        self.clock += 1;
        if !self.streams.contains_key(stream) {
            if self.streams.len() >= MAX_STREAMS {
                self.evict();
            }
            self.streams.insert(stream.to_string(), Stream::default());
        }
        let state = self.streams.get_mut(stream).expect("inserted above");
        state.last_seen = self.clock;
        if let Some(learned) = &state.learned {
            return match_shape(line, learned).unwrap_or_else(|| parse_line(line));
        }
        let own = parse_line(line);
        let shape = own.shape();
        // While learning, the shape most seen so far already decides (the first lines of a
        // stream are cut like the later ones); the line's own header votes.
        let leader = state.votes.iter().rev().max_by_key(|(_, n)| *n);
        let header = leader
            .and_then(|(leader, _)| match_shape(line, leader))
            .unwrap_or(own);
        state.lines += 1;
        match state.votes.iter().position(|(s, _)| *s == shape) {
            Some(i) => state.votes[i].1 += 1,
            None if state.votes.len() < 8 => state.votes.push((shape, 1)),
            None => {}
        }
        if state.lines >= LEARN_LINES {
            // The most common shape; ties go to the one seen first.
            let best = state.votes.iter().rev().max_by_key(|(_, n)| *n);
            state.learned = best.map(|(s, _)| s.clone());
            state.votes = Vec::new();
        }
        header
    }

    /// Forgets the least recently seen half of the streams.
    fn evict(&mut self) {
        let mut ages: Vec<u64> = self.streams.values().map(|s| s.last_seen).collect();
        ages.sort_unstable();
        let cutoff = ages[ages.len() / 2];
        self.streams.retain(|_, s| s.last_seen > cutoff);
    }
}

/// The OpenTelemetry severity number of a level word (`WARN` → 13), for records whose
/// sender gave none.
pub fn severity_number(level: &str) -> Option<i32> {
    let level = level.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let upper = level.to_ascii_uppercase();
    Some(match upper.as_str() {
        "TRACE" | "FINEST" | "FINER" | "V" => 1,
        "DEBUG" | "DBG" | "FINE" | "D" => 5,
        "INFO" | "INFORMATION" | "INFORMATIONAL" | "CONFIG" | "I" => 9,
        "NOTICE" => 10,
        "WARN" | "WARNING" | "W" => 13,
        "ERROR" | "ERR" | "SEVERE" | "E" => 17,
        "CRIT" | "CRITICAL" | "ALERT" | "EMERG" | "EMERGENCY" | "FATAL" | "PANIC" | "F" => 21,
        _ if upper.len() == 5 && upper[1..].bytes().all(|b| b.is_ascii_digit()) => {
            // glog: `I1129`, `W1129`.
            return severity_number(&upper[..1]);
        }
        _ => return None,
    })
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
