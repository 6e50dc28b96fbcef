//! `faultline templates`: the template miner on a file of messages, one JSON object out per
//! line in.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::load::{load_miner, save_state};
use crate::logparse::miner::{format_id, MinerConfig, Parsed};

/// `faultline templates`.
#[derive(Debug, Args)]
pub struct TemplatesArgs {
    /// Messages, one per line (UTF-8; invalid bytes are replaced, `\r\n` endings accepted).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write one JSON object per input line, in order:
    /// `{"line", "template_id", "template", "params"}`.
    #[arg(long)]
    pub output: PathBuf,
    /// Miner state to start from (if the file exists) and to save at the end: templates and
    /// ids then continue across runs, as in the pipeline's `[logs] template_state`.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Report each line's template as the miner saw it at that line (what the streaming
    /// pipeline does). Default: learn the whole file first, then report every line with the
    /// template it ended up in (two passes over the file).
    #[arg(long)]
    pub streaming: bool,
}

#[derive(Serialize)]
struct Line<'a> {
    line: u64,
    template_id: String,
    template: &'a str,
    params: Vec<&'a str>,
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

/// Calls `f` with each line of `path` (without its line ending, cut at `MAX_LINE_BYTES`).
fn for_each_line(path: &Path, mut f: impl FnMut(&str) -> Result<()>) -> Result<u64> {
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        let mut read_any = false;
        loop {
            let chunk = reader.fill_buf().map_err(|e| io(path, e))?;
            if chunk.is_empty() {
                break;
            }
            read_any = true;
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(p) => (p + 1, true),
                None => (chunk.len(), false),
            };
            let room = MAX_LINE_BYTES.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..take.min(room)]);
            reader.consume(take);
            if done {
                break;
            }
        }
        if !read_any {
            return Ok(n);
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        n += 1;
        f(&String::from_utf8_lossy(&buf))?;
    }
}

fn write_line(out: &mut impl Write, path: &Path, n: u64, message: &str, p: &Parsed) -> Result<()> {
    let line = Line {
        line: n,
        template_id: format_id(p.template_id),
        template: p.template,
        params: p
            .params
            .iter()
            .map(|&(a, b)| &message[a as usize..b as usize])
            .collect(),
    };
    serde_json::to_writer(&mut *out, &line).expect("serialising plain values");
    out.write_all(b"\n").map_err(|e| io(path, e))
}

pub fn run(args: &TemplatesArgs) -> Result<()> {
    let mut miner = load_miner(args.state.as_deref(), MinerConfig::default())?;
    let file = std::fs::File::create(&args.output).map_err(|e| io(&args.output, e))?;
    let mut out = BufWriter::new(file);
    let started = Instant::now();
    let mut n = 0;
    let lines = if args.streaming {
        for_each_line(&args.input, |message| {
            n += 1;
            let parsed = miner.parse(message);
            write_line(&mut out, &args.output, n, message, &parsed)
        })?
    } else {
        for_each_line(&args.input, |message| {
            miner.parse(message);
            Ok(())
        })?;
        for_each_line(&args.input, |message| {
            n += 1;
            let parsed = miner.classify(message);
            write_line(&mut out, &args.output, n, message, &parsed)
        })?
    };
    out.flush().map_err(|e| io(&args.output, e))?;
    if let Some(path) = &args.state {
        save_state(path, &miner.state())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "{lines} lines, {} distinct masked templates, {:.2} s ({:.0} lines/s)",
        miner.shapes(),
        seconds,
        lines as f64 / seconds.max(1e-9)
    );
    Ok(())
}
