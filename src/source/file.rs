//! JSON-lines files: one OTLP/JSON export request or flat record per line; gzip-compressed
//! files are read directly, and `-` is standard input.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::InputMessage;
use crate::decode::{Encoding, MessageContext};
use crate::error::{Error, Result};
use crate::model::Location;

/// The `--input` value that stands for standard input.
pub const STDIN: &str = "-";

/// File names a directory given to `--input` contributes: JSON lines, JSON, and either
/// gzip-compressed (`.gz`).
const INPUT_EXTENSIONS: [&str; 3] = ["jsonl", "json", "gz"];

/// Expands `--input` values, keeping their order: a file (or `-`, stdin) stands for itself;
/// a directory for its `*.jsonl`, `*.json` and `*.gz` files sorted by name — only those
/// directly in it unless `recursive`. A directory without such files is an error (a typo
/// would otherwise read nothing).
pub fn expand_inputs(inputs: &[PathBuf], recursive: bool) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.as_os_str() == STDIN {
            files.push(input.clone());
            continue;
        }
        let meta = std::fs::metadata(input).map_err(|source| Error::Io {
            path: input.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            collect_inputs(input, recursive, &mut found)?;
            if found.is_empty() {
                return Err(Error::Config {
                    location: input.display().to_string(),
                    message: format!(
                        "directory holds no .jsonl, .json or .gz files{}",
                        if recursive {
                            ""
                        } else {
                            " (subdirectories are read with --recursive)"
                        }
                    ),
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

fn collect_inputs(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            if recursive {
                collect_inputs(&path, recursive, out)?;
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| INPUT_EXTENSIONS.contains(&e))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Counts the bytes read from the underlying file (compressed bytes for a `.gz`), so that
/// progress compares like with like: bytes read against the file's size.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads one file line by line. Lines longer than the limit are cut (the rest is skipped, so
/// memory stays bounded) and reported with their full size; blank lines are skipped.
pub struct FileSource {
    path: PathBuf,
    display: String,
    reader: BufReader<Box<dyn Read + Send>>,
    line: u64,
    max_bytes: usize,
    /// Bytes read from the file so far (progress of a replay).
    consumed: Arc<AtomicU64>,
}

impl FileSource {
    /// Opens `path` (`-`: standard input); a `.gz` file is decompressed as it is read
    /// (concatenated gzip members too, as `cat a.gz b.gz` makes).
    pub fn open(path: &Path, max_message_bytes: usize) -> Result<Self> {
        let consumed = Arc::new(AtomicU64::new(0));
        let raw: Box<dyn Read + Send> = match path.as_os_str() == STDIN {
            true => Box::new(std::io::stdin()),
            false => Box::new(File::open(path).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?),
        };
        let counted = Counting {
            inner: raw,
            count: consumed.clone(),
        };
        let reader: Box<dyn Read + Send> = match path.extension().is_some_and(|e| e == "gz") {
            true => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(counted))),
            false => Box::new(counted),
        };
        let display = match path.as_os_str() == STDIN {
            true => "<stdin>".to_string(),
            false => path.display().to_string(),
        };
        Ok(FileSource {
            path: path.to_path_buf(),
            display,
            reader: BufReader::with_capacity(256 * 1024, reader),
            line: 0,
            max_bytes: max_message_bytes,
            consumed,
        })
    }

    /// Bytes read so far.
    pub fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
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
            let (chunk, done) = match memchr::memchr(b'\n', buf) {
                Some(i) => (&buf[..i], i + 1),
                None => (buf, buf.len()),
            };
            let room = (self.max_bytes + 1).saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            size += chunk.len();
            let found_newline = done > chunk.len();
            self.reader.consume(done);
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

    #[test]
    fn gzip_files_are_read_directly() {
        use flate2::write::GzEncoder;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl.gz");
        let mut gz = GzEncoder::new(File::create(&path).unwrap(), flate2::Compression::fast());
        gz.write_all(b"{\"a\":1}\n{\"b\":2}\n").unwrap();
        gz.finish().unwrap();
        let mut src = FileSource::open(&path, 100).unwrap();
        assert_eq!(src.next_message().unwrap().unwrap().payload, b"{\"a\":1}");
        assert_eq!(src.next_message().unwrap().unwrap().payload, b"{\"b\":2}");
        assert!(src.next_message().unwrap().is_none());
        assert_eq!(src.consumed(), std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn directories_give_their_input_files_recursively_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sub")).unwrap();
        for name in [
            "b.jsonl",
            "a.json",
            "c.jsonl.gz",
            "notes.txt",
            "sub/d.jsonl",
        ] {
            std::fs::write(d.join(name), "").unwrap();
        }
        let names = |recursive| {
            expand_inputs(&[d.to_path_buf()], recursive)
                .unwrap()
                .iter()
                .map(|p| p.strip_prefix(d).unwrap().display().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(false), ["a.json", "b.jsonl", "c.jsonl.gz"]);
        assert_eq!(
            names(true),
            ["a.json", "b.jsonl", "c.jsonl.gz", "sub/d.jsonl"]
        );
        let only_sub = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(only_sub.path().join("x")).unwrap();
        std::fs::write(only_sub.path().join("x/e.jsonl"), "").unwrap();
        let err = expand_inputs(&[only_sub.path().to_path_buf()], false).unwrap_err();
        assert!(err.to_string().contains("--recursive"), "{err}");
    }
}
