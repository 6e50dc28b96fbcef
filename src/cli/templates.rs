//! `faultline templates`: the template miner on a stream of lines, for pipes: stdin to stdout
//! by default, one record per line (`jsonl`, `tsv`) or the templates by count (`summary`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::load::{load_miner, save_state};
use crate::logparse::header::HeaderLearner;
use crate::logparse::mask::MAX_MESSAGE_BYTES;
use crate::logparse::miner::{format_id, MinerConfig, Parsed, TemplateMiner};

/// `faultline templates`. See README "The templates command".
#[derive(Debug, Args)]
pub struct TemplatesArgs {
    /// Lines to mine, one message per line (UTF-8; invalid bytes are replaced, `\r\n`
    /// endings accepted; blank lines are skipped and counted). `-` is stdin.
    #[arg(long, default_value = "-")]
    pub input: PathBuf,
    /// Where the result goes; `-` is stdout.
    #[arg(long, default_value = "-")]
    pub output: PathBuf,
    /// `jsonl`: one object per mined line, in order, `{"line", "template_id", "template",
    /// "params"}` (plus `"fields"` and `"message"` with `--raw`); `tsv`: the same as tab-separated columns
    /// (line, template_id, template, then one column per parameter; tab, newline and
    /// backslash escaped as `\t`, `\n`, `\\`); `summary`: the templates by count, most
    /// frequent first, each with its first line as an example.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// The lines are whole raw log lines: recognise each line's header (timestamp, level,
    /// logger, pid, thread, host; the shape is learned from the first lines), report it as
    /// `fields` and mine only the message after it — what the pipeline does with plain-text
    /// log bodies.
    #[arg(long)]
    pub raw: bool,
    /// Miner state to start from (if the file exists) and to save at the end: templates and
    /// ids then continue across runs, as in the pipeline's `[logs] template_state`.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Report each line's template as the miner saw it at that line (what the streaming
    /// pipeline does; lines are written as they are read). Default: learn all the lines
    /// first, then report every line with the template it ended up in (stdin is held in
    /// memory for the second pass).
    #[arg(long)]
    pub streaming: bool,
}

/// Output formats of `faultline templates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Jsonl,
    Tsv,
    Summary,
}

#[derive(Serialize)]
struct Line<'a> {
    line: u64,
    template_id: String,
    template: &'a str,
    params: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Longest part of a line kept; the miner reads only its start anyway, and a line without
/// newlines must not be read whole into memory.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// Cut lines reported one by one on stderr; beyond, only their number.
const CUT_NOTES: u64 = 5;

/// Reads lines (without their ending, cut at `MAX_LINE_BYTES`), numbering them from 1.
struct Lines<R> {
    reader: R,
    path: PathBuf,
    buf: Vec<u8>,
    number: u64,
}

impl<R: BufRead> Lines<R> {
    /// The next line: its number, its text, and its length in bytes before any cut.
    fn next_line(&mut self) -> Result<Option<(u64, String, usize)>> {
        self.buf.clear();
        let (mut read_any, mut total, mut last) = (false, 0, 0u8);
        loop {
            let chunk = self.reader.fill_buf().map_err(|e| io(&self.path, e))?;
            if chunk.is_empty() {
                break;
            }
            read_any = true;
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(p) => (p + 1, true),
                None => (chunk.len(), false),
            };
            let room = MAX_LINE_BYTES.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..take.min(room)]);
            total += take;
            if done {
                // The ending (`\n` or `\r\n`) is not part of the line's length.
                let before = if take >= 2 { chunk[take - 2] } else { last };
                total -= 1 + usize::from(before == b'\r');
            }
            last = chunk[take - 1];
            self.reader.consume(take);
            if done {
                break;
            }
        }
        if !read_any {
            return Ok(None);
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        self.number += 1;
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        Ok(Some((self.number, text, total)))
    }
}

fn open_input(path: &Path) -> Result<Lines<Box<dyn BufRead>>> {
    let reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| io(path, e))?)
    };
    Ok(Lines {
        reader: Box::new(BufReader::with_capacity(1 << 16, reader)),
        path: path.to_path_buf(),
        buf: Vec::new(),
        number: 0,
    })
}

/// The miner and, with `--raw`, the header learner (one stream: the input).
struct Engine {
    miner: TemplateMiner,
    headers: Option<HeaderLearner>,
}

impl Engine {
    /// Where the message starts in `line`, and the header's fields.
    fn split(&mut self, line: &str) -> (usize, Vec<(String, String)>) {
        let Some(headers) = self.headers.as_mut() else {
            return (0, Vec::new());
        };
        let header = headers.parse("", line);
        if header.items.is_empty() || line[header.message_start..].trim().is_empty() {
            return (0, Vec::new());
        }
        (header.message_start, header.fields(line))
    }
}

/// Counts for the closing note.
#[derive(Default)]
struct Tally {
    mined: u64,
    blank: u64,
    cut: u64,
    templates: HashMap<u64, (u64, String, String)>,
}

impl Tally {
    fn blank_or_cut(&mut self, n: u64, line: &str, bytes: usize, message_start: usize) -> bool {
        if line.trim().is_empty() {
            self.blank += 1;
            return true;
        }
        if bytes - message_start > MAX_MESSAGE_BYTES {
            self.cut += 1;
            if self.cut <= CUT_NOTES {
                eprintln!(
                    "note: line {n} is {bytes} bytes; its template is mined from the first {MAX_MESSAGE_BYTES} bytes of its message"
                );
            }
        }
        false
    }
}

/// Writes one mined line in the chosen format (or counts it, for the summary).
struct Sink {
    out: BufWriter<Box<dyn Write>>,
    path: PathBuf,
    format: Format,
    raw: bool,
}

impl Sink {
    fn write(
        &mut self,
        n: u64,
        message: &str,
        p: &Parsed,
        fields: Vec<(String, String)>,
    ) -> Result<()> {
        let params = p
            .params
            .iter()
            .map(|&(a, b)| &message[a as usize..b as usize]);
        match self.format {
            Format::Summary => return Ok(()),
            Format::Jsonl => {
                let fields = self.raw.then(|| {
                    let map = fields.into_iter().map(|(k, v)| (k, v.into()));
                    map.collect()
                });
                let line = Line {
                    line: n,
                    template_id: format_id(p.template_id),
                    template: p.template,
                    params: params.collect(),
                    fields,
                    message: self.raw.then_some(message),
                };
                serde_json::to_writer(&mut self.out, &line).expect("serialising plain values");
            }
            Format::Tsv => {
                let mut row = format!("{n}\t{}\t{}", format_id(p.template_id), tsv(p.template));
                for param in params {
                    row.push('\t');
                    row.push_str(&tsv(param));
                }
                self.out
                    .write_all(row.as_bytes())
                    .map_err(|e| io(&self.path, e))?;
            }
        }
        self.out.write_all(b"\n").map_err(|e| io(&self.path, e))
    }

    fn summary(&mut self, tally: &Tally) -> Result<()> {
        let mut rows: Vec<_> = tally.templates.iter().collect();
        rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.1 .1.cmp(&b.1 .1)));
        for (id, (count, template, example)) in rows {
            let text = format!(
                "{count:>8}  {}  {template}\n{:>8}  example: {example}\n",
                format_id(*id),
                ""
            );
            self.out
                .write_all(text.as_bytes())
                .map_err(|e| io(&self.path, e))?;
        }
        Ok(())
    }
}

fn tsv(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

fn open_output(path: &Path, format: Format, raw: bool) -> Result<Sink> {
    let out: Box<dyn Write> = if path == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(path).map_err(|e| io(path, e))?)
    };
    Ok(Sink {
        out: BufWriter::new(out),
        path: path.to_path_buf(),
        format,
        raw,
    })
}

/// One line read: its number, text, length before any cut, where its message starts and
/// its header's fields.
type Read1 = (u64, String, usize, usize, Vec<(String, String)>);

/// Mines a line (learning when `learn`) and writes it; blank lines are only counted.
fn report(
    engine: &mut Engine,
    sink: &mut Sink,
    tally: &mut Tally,
    (n, line, bytes, start, fields): Read1,
    learn: bool,
) -> Result<()> {
    let line = line.as_str();
    if tally.blank_or_cut(n, line, bytes, start) {
        return Ok(());
    }
    let message = &line[start..];
    let parsed = if learn {
        engine.miner.parse(message)
    } else {
        engine.miner.classify(message)
    };
    tally.mined += 1;
    tally
        .templates
        .entry(parsed.template_id)
        .and_modify(|e| e.0 += 1)
        .or_insert_with(|| (1, parsed.template.to_string(), line.to_string()));
    sink.write(n, message, &parsed, fields)
}

pub fn run(args: &TemplatesArgs) -> Result<()> {
    let mut engine = Engine {
        miner: load_miner(args.state.as_deref(), MinerConfig::default())?,
        headers: args.raw.then(HeaderLearner::new),
    };
    let mut input = open_input(&args.input)?;
    let mut sink = open_output(&args.output, args.format, args.raw)?;
    let mut tally = Tally::default();
    let started = Instant::now();
    if args.streaming {
        while let Some((n, line, bytes)) = input.next_line()? {
            let (start, fields) = engine.split(&line);
            let read = (n, line, bytes, start, fields);
            report(&mut engine, &mut sink, &mut tally, read, true)?;
        }
    } else {
        // Learn every line, then report each with the template it ended in.
        let mut lines = Vec::new();
        while let Some((n, line, bytes)) = input.next_line()? {
            let (start, fields) = engine.split(&line);
            if !line.trim().is_empty() {
                engine.miner.parse(&line[start..]);
            }
            lines.push((n, line, bytes, start, fields));
        }
        for read in lines {
            report(&mut engine, &mut sink, &mut tally, read, false)?;
        }
    }
    if args.format == Format::Summary {
        sink.summary(&tally)?;
    }
    sink.out.flush().map_err(|e| io(&sink.path, e))?;
    if let Some(path) = &args.state {
        save_state(path, &engine.miner.state())?;
    }
    closing_note(&tally, input.number, started.elapsed().as_secs_f64());
    Ok(())
}

fn closing_note(tally: &Tally, lines: u64, seconds: f64) {
    let mut note = format!(
        "{lines} lines: {} mined into {} distinct templates",
        tally.mined,
        tally.templates.len()
    );
    if tally.blank > 0 {
        note.push_str(&format!(", {} blank lines skipped", tally.blank));
    }
    if tally.cut > 0 {
        note.push_str(&format!(
            ", {} lines over {MAX_MESSAGE_BYTES} bytes mined from their start",
            tally.cut
        ));
    }
    eprintln!(
        "{note}; {seconds:.2} s ({:.0} lines/s)",
        lines as f64 / seconds.max(1e-9)
    );
}
