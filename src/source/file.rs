//! JSON-lines files: one OTLP/JSON export request or flat record per line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::InputMessage;
use crate::decode::{Encoding, MessageContext};
use crate::error::{Error, Result};
use crate::model::Location;

/// Expands `--input` values: a directory stands for its `.jsonl` files (recursively, sorted).
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|source| Error::Io {
            path: input.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            collect_jsonl(input, &mut found)?;
            if found.is_empty() {
                return Err(Error::Config {
                    location: input.display().to_string(),
                    message: "directory holds no .jsonl files".into(),
                });
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

fn collect_jsonl(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_jsonl(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads one file line by line. Lines longer than the limit are cut (the rest is skipped, so
/// memory stays bounded) and reported with their full size; blank lines are skipped.
pub struct FileSource {
    path: PathBuf,
    display: String,
    reader: BufReader<File>,
    line: u64,
    max_bytes: usize,
    /// Bytes consumed so far (progress of a replay).
    consumed: u64,
}

impl FileSource {
    pub fn open(path: &Path, max_message_bytes: usize) -> Result<Self> {
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(FileSource {
            path: path.to_path_buf(),
            display: path.display().to_string(),
            reader: BufReader::with_capacity(256 * 1024, file),
            line: 0,
            max_bytes: max_message_bytes,
            consumed: 0,
        })
    }

    /// Bytes read so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next non-blank line, or `None` at end of file.
    pub fn next_message(&mut self) -> Result<Option<InputMessage>> {
        loop {
            let Some((payload, size)) = self.read_line()? else {
                return Ok(None);
            };
            self.line += 1;
            if payload.iter().all(u8::is_ascii_whitespace) && size == payload.len() {
                continue;
            }
            return Ok(Some(InputMessage {
                payload,
                size,
                source: Location::File {
                    path: self.display.clone(),
                    line: self.line,
                },
                context: MessageContext {
                    signal: None,
                    encoding: Encoding::Json,
                    fallback_time: None,
                },
            }));
        }
    }

    /// Reads up to the next `\n`, keeping at most `max_bytes + 1` bytes.
    fn read_line(&mut self) -> Result<Option<(Vec<u8>, usize)>> {
        let mut kept = Vec::new();
        let mut size = 0usize;
        let mut any = false;
        loop {
            let buf = self.reader.fill_buf().map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
            if buf.is_empty() {
                return Ok(any.then_some((kept, size)));
            }
            any = true;
            let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (&buf[..i], i + 1),
                None => (buf, buf.len()),
            };
            let room = (self.max_bytes + 1).saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            size += chunk.len();
            let found_newline = done > chunk.len();
            self.reader.consume(done);
            self.consumed += done as u64;
            if found_newline {
                if kept.last() == Some(&b'\r') {
                    kept.pop();
                    size -= 1;
                }
                return Ok(Some((kept, size)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn long_lines_are_cut_and_measured_blank_lines_skipped() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(f, "{{\"a\":1}}\r\n\n   \n{}\nlast", "x".repeat(100)).unwrap();
        let mut src = FileSource::open(f.path(), 10).unwrap();
        let m = src.next_message().unwrap().unwrap();
        assert_eq!((m.payload.as_slice(), m.size), (&b"{\"a\":1}"[..], 7));
        let m = src.next_message().unwrap().unwrap();
        assert_eq!(m.payload.len(), 11);
        assert_eq!(m.size, 100);
        assert!(matches!(m.source, Location::File { line: 4, .. }));
        let m = src.next_message().unwrap().unwrap();
        assert_eq!(m.payload, b"last");
        assert!(src.next_message().unwrap().is_none());
    }
}
