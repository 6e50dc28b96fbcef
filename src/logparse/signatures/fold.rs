//! Folding multi-line tracebacks that arrived as one log record per line back into one event.
//!
//! A fold starts at `Traceback (most recent call last):` (Python, hence also TensorFlow and
//! JAX), at a JavaScript error line (`Uncaught ...`, `Unhandled Promise Rejection...`, or
//! `XxxError: ...`) whose stack frames follow, or at Java's `Exception in thread ...`. It
//! continues with indented lines (frames, code, `^^^^` markers), blank lines followed by more
//! traceback, chained-exception markers and the next `Traceback` header, the final exception
//! line and its continuation (see [`super::traceback`]: indented lines or a few known
//! unindented ones). The first other line from the same stream ends the fold and is then
//! handled like any record (it may start the next fold).
//!
//! Guarantees: every pushed record comes out exactly once, and records of one stream come out
//! in push order. Records that are not part of a fold come out as [`Folded::Single`] at once,
//! unless their stream has a fold pending (then after it). A line that might start a fold is
//! held until the next line of its stream, the gap, or a flush decides. Blank lines and JAX's
//! prose after an exception are held tentatively: if no chained traceback follows they leave
//! the fold again as singles. A record that already holds several lines (contains `\n`) is
//! treated as folded: it ends its stream's pending fold and passes as a single.
//!
//! Bounded: at most `max_lines` records per fold (the rest of an over-long traceback passes as
//! singles) and `max_streams` streams with a pending fold (the least recently extended fold is
//! emitted early). Each is counted in [`FoldStats`].

use std::collections::BTreeMap;

use super::traceback::{
    body, exception_line, is_blank, is_chain_marker, is_chain_prose, is_continuation, is_header,
    is_indented, opens_last_error,
};

/// How long folds may grow and wait.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FoldConfig {
    /// Most records in one fold. The record that would exceed it ends the fold. Below 2,
    /// nothing is folded. Default: 200.
    pub max_lines: usize,
    /// Event-time gap, in nanoseconds, after the last line of a pending fold at which the fold
    /// is complete: a later line of the same stream no longer joins it, and
    /// [`TracebackFolder::flush_older_than`] emits it. Default: 2 s.
    pub max_gap_ns: i64,
    /// Most streams with a pending fold at once. Starting one more emits the fold that was
    /// extended least recently. Default: 4096.
    pub max_streams: usize,
}

impl Default for FoldConfig {
    fn default() -> Self {
        Self {
            max_lines: 200,
            max_gap_ns: 2_000_000_000,
            max_streams: 4096,
        }
    }
}

/// One record, or several records folded into one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Folded<T> {
    Single(T),
    /// `text` is the records' lines joined with `'\n'`, in order.
    Folded {
        parts: Vec<T>,
        text: String,
    },
}

impl<T> Folded<T> {
    /// Number of records inside.
    pub fn len(&self) -> usize {
        match self {
            Folded::Single(_) => 1,
            Folded::Folded { parts, .. } => parts.len(),
        }
    }

    /// Always false: a fold holds at least one record.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The records, in order.
    pub fn into_parts(self) -> Vec<T> {
        match self {
            Folded::Single(item) => vec![item],
            Folded::Folded { parts, .. } => parts,
        }
    }
}

/// Counters of folds that did not end at a non-continuation line; for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldStats {
    /// Folds of two or more records emitted.
    pub folds: u64,
    /// Folds cut at `max_lines`.
    pub truncated: u64,
    /// Folds ended by the `max_gap_ns` gap (in `push` or `flush_older_than`).
    pub expired: u64,
    /// Folds emitted early because `max_streams` streams had one pending.
    pub evicted: u64,
}

/// Where in a traceback the last line left us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// After a `Traceback` header: frames until the exception line.
    Frames,
    /// After the exception line. `take_next`: the previous line was NCCL's `Last error:`.
    Message { take_next: bool },
    /// Blank or prose lines after the message: a chained traceback may follow.
    Trailer,
    /// After `During handling ...` / `The above exception ...`: the next header follows.
    Chain,
    /// JavaScript error: stack frames follow.
    JsStack,
    /// Java exception: `\tat ...`, `Caused by: ...` follow.
    JavaStack,
}

/// What a line does to a pending fold.
enum Step {
    /// The line belongs to the fold.
    Commit(Phase),
    /// The line belongs to the fold only if a committed line follows.
    Hold(Phase),
    /// The line is not part of the fold, which is therefore complete.
    End,
}

fn step(phase: Phase, b: &str) -> Step {
    use Phase::*;
    use Step::*;
    let message = |b: &str| {
        Commit(Message {
            take_next: opens_last_error(b),
        })
    };
    match phase {
        Frames if is_blank(b) => Hold(Frames),
        Frames if is_indented(b) => Commit(Frames),
        Frames if is_chain_marker(b) => Commit(Chain),
        Frames if exception_line(b).is_some() => message(b),
        Message { take_next: true } if !is_blank(b) => message(b),
        Message { .. } if is_blank(b) => Hold(Trailer),
        Message { .. } | Trailer if is_indented(b) || is_continuation(b) => message(b),
        Message { .. } | Trailer if is_chain_marker(b) => Commit(Chain),
        // Only after a chain marker does a header continue; otherwise it is a new traceback.
        Chain if is_header(b) => Commit(Frames),
        Trailer if is_blank(b) || is_chain_prose(b) => Hold(Trailer),
        Chain if is_blank(b) => Hold(Chain),
        JsStack if is_indented(b) || is_js_frame(b) => Commit(JsStack),
        JavaStack if is_indented(b) || b.starts_with("Caused by: ") => Commit(JavaStack),
        _ => End,
    }
}

/// Whether a line (with no fold pending) starts one.
fn start(b: &str) -> Option<Phase> {
    if is_header(b) {
        Some(Phase::Frames)
    } else if b.starts_with("Exception in thread ") {
        Some(Phase::JavaStack)
    } else if b.starts_with("Uncaught ")
        || b.starts_with("Unhandled Promise Rejection")
        || is_js_error_line(b)
    {
        Some(Phase::JsStack)
    } else {
        None
    }
}

/// `TypeError: x is undefined`: an unqualified `...Error` name, as JavaScript prints.
fn is_js_error_line(b: &str) -> bool {
    match b.split_once(": ") {
        Some((name, _)) => {
            name.ends_with("Error")
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$')
        }
        None => false,
    }
}

/// Firefox/Safari frame, unindented: `App@https://x/main.js:2:1234`.
fn is_js_frame(b: &str) -> bool {
    let mut parts = b.trim_end().rsplitn(3, ':');
    let digits =
        |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()));
    digits(parts.next())
        && digits(parts.next())
        && parts.next().is_some_and(|rest| rest.contains('@'))
}

struct Part<T> {
    time_ns: i64,
    line: String,
    item: T,
}

/// The fold a stream is building.
struct Pending<T> {
    phase: Phase,
    parts: Vec<Part<T>>,
    /// `parts[..committed]` surely belong to the fold; the rest are held tentatively.
    committed: usize,
    last_ns: i64,
}

/// Folds multi-line tracebacks split across log records, per stream. Pure and deterministic:
/// time is the caller's event time in nanoseconds.
pub struct TracebackFolder<T> {
    cfg: FoldConfig,
    /// Streams with a fold pending, by stream key (ordered, so flushes are deterministic).
    pending: BTreeMap<String, Pending<T>>,
    held: usize,
    stats: FoldStats,
}

impl<T> TracebackFolder<T> {
    pub fn new(cfg: FoldConfig) -> Self {
        Self {
            cfg,
            pending: BTreeMap::new(),
            held: 0,
            stats: FoldStats::default(),
        }
    }

    pub fn config(&self) -> &FoldConfig {
        &self.cfg
    }

    pub fn stats(&self) -> FoldStats {
        self.stats
    }

    /// Records held in pending folds.
    pub fn pending(&self) -> usize {
        self.held
    }

    /// Feeds one record. `stream` identifies one emitter (e.g. service+host+pid); lines of
    /// different streams never fold together. Returns what is complete, in order.
    pub fn push(&mut self, stream: &str, time_ns: i64, text: &str, item: T) -> Vec<Folded<T>> {
        let mut out = Vec::new();
        let gap = self.cfg.max_gap_ns;
        if self
            .pending
            .get(stream)
            .is_some_and(|p| time_ns.saturating_sub(p.last_ns) > gap)
        {
            self.stats.expired += 1;
            self.end(stream, &mut out);
        }
        self.feed(stream, time_ns, text, item, &mut out);
        out
    }

    /// Whether [`TracebackFolder::push`] would hand this record straight back, untouched:
    /// its stream has no fold pending and the line starts none (most lines), so a caller
    /// can skip copying its text for the folder.
    pub fn passes_through(&self, stream: &str, text: &str) -> bool {
        if self.pending.contains_key(stream) {
            return false;
        }
        let line = text.strip_suffix('\n').unwrap_or(text);
        line.contains('\n') || self.cfg.max_lines < 2 || start(body(line)).is_none()
    }

    /// Emits every pending fold whose last line is older than `time_ns - max_gap_ns` (call as
    /// event time advances). Oldest first, ties by stream key.
    pub fn flush_older_than(&mut self, time_ns: i64) -> Vec<Folded<T>> {
        let cutoff = time_ns.saturating_sub(self.cfg.max_gap_ns);
        let mut out = Vec::new();
        let expired = self.flush_where(|p| p.last_ns < cutoff, &mut out);
        self.stats.expired += expired;
        out
    }

    /// Emits every pending fold (end of input, shutdown).
    pub fn flush_all(&mut self) -> Vec<Folded<T>> {
        let mut out = Vec::new();
        self.flush_where(|_| true, &mut out);
        out
    }

    fn flush_where(&mut self, due: impl Fn(&Pending<T>) -> bool, out: &mut Vec<Folded<T>>) -> u64 {
        let mut ended = 0;
        loop {
            let mut streams: Vec<(i64, String)> = self
                .pending
                .iter()
                .filter(|(_, p)| due(p))
                .map(|(s, p)| (p.last_ns, s.clone()))
                .collect();
            if streams.is_empty() {
                return ended;
            }
            streams.sort();
            for (_, stream) in streams {
                self.end(&stream, out);
                ended += 1;
            }
        }
    }

    fn feed(&mut self, stream: &str, time_ns: i64, text: &str, item: T, out: &mut Vec<Folded<T>>) {
        let line = text.strip_suffix('\n').unwrap_or(text);
        let multi_line = line.contains('\n');
        let b = body(line);
        let max_lines = self.cfg.max_lines;
        if let Some(p) = self.pending.get_mut(stream) {
            let next = if multi_line {
                Step::End
            } else {
                step(p.phase, b)
            };
            let next = match next {
                Step::Commit(_) | Step::Hold(_) if p.parts.len() >= max_lines => {
                    self.stats.truncated += 1;
                    Step::End
                }
                other => other,
            };
            let (phase, commit) = match next {
                Step::Commit(phase) => (phase, true),
                Step::Hold(phase) => (phase, false),
                Step::End => {
                    self.end(stream, out);
                    return self.feed(stream, time_ns, text, item, out);
                }
            };
            p.parts.push(Part {
                time_ns,
                line: line.to_owned(),
                item,
            });
            if commit {
                p.committed = p.parts.len();
            }
            p.phase = phase;
            p.last_ns = time_ns;
            self.held += 1;
            return;
        }
        self.feed_fresh(stream, time_ns, line, multi_line, item, out);
    }

    /// A record of a stream with no fold pending: starts one or passes through.
    fn feed_fresh(
        &mut self,
        stream: &str,
        time_ns: i64,
        line: &str,
        multi_line: bool,
        item: T,
        out: &mut Vec<Folded<T>>,
    ) {
        let phase = match start(body(line)) {
            Some(phase) if !multi_line && self.cfg.max_lines >= 2 => phase,
            _ => return out.push(Folded::Single(item)),
        };
        if self.pending.len() >= self.cfg.max_streams.max(1) {
            let victim = self
                .pending
                .iter()
                .min_by(|a, b| (a.1.last_ns, a.0).cmp(&(b.1.last_ns, b.0)))
                .map(|(s, _)| s.clone());
            if let Some(victim) = victim {
                self.stats.evicted += 1;
                self.end(&victim, out);
            }
        }
        let first = Part {
            time_ns,
            line: line.to_owned(),
            item,
        };
        self.pending.insert(
            stream.to_owned(),
            Pending {
                phase,
                parts: vec![first],
                committed: 1,
                last_ns: time_ns,
            },
        );
        self.held += 1;
    }

    /// Emits the stream's fold (its committed records) and re-feeds the tentatively held tail,
    /// which then passes as singles (blank and prose lines never start a fold, so this
    /// recursion is one level deep).
    fn end(&mut self, stream: &str, out: &mut Vec<Folded<T>>) {
        let Some(p) = self.pending.remove(stream) else {
            return;
        };
        self.held -= p.parts.len();
        let mut parts = p.parts;
        let tail = parts.split_off(p.committed.min(parts.len()));
        if parts.len() == 1 {
            out.extend(parts.pop().map(|part| Folded::Single(part.item)));
        } else if !parts.is_empty() {
            self.stats.folds += 1;
            let text_len = parts.iter().map(|p| p.line.len() + 1).sum();
            let mut text = String::with_capacity(text_len);
            let mut items = Vec::with_capacity(parts.len());
            for (i, part) in parts.into_iter().enumerate() {
                if i > 0 {
                    text.push('\n');
                }
                text.push_str(&part.line);
                items.push(part.item);
            }
            out.push(Folded::Folded { parts: items, text });
        }
        for part in tail {
            self.feed(stream, part.time_ns, &part.line, part.item, out);
        }
    }
}
