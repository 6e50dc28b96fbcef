//! Output files (`--output DIR`) and stdout.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{Delivery, Sink};
use crate::error::{Error, Result};
use crate::output::{Output, OutputKind};

/// One JSON-lines file per output kind in a directory; all five exist even when empty.
pub struct FileSink {
    files: BTreeMap<OutputKind, (PathBuf, BufWriter<File>)>,
}

impl FileSink {
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files = BTreeMap::new();
        for kind in OutputKind::ALL {
            let path = dir.join(kind.file_name());
            let file = File::create(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            files.insert(kind, (path, BufWriter::new(file)));
        }
        Ok(FileSink { files })
    }
}

impl Sink for FileSink {
    fn send(&mut self, output: &Output) -> Result<Delivery> {
        let (path, w) = self
            .files
            .get_mut(&output.kind)
            .expect("every kind has a file");
        writeln!(w, "{}", output.json).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Box::pin(async { Ok(()) }))
    }

    fn flush(&mut self) -> Result<()> {
        for (path, w) in self.files.values_mut() {
            w.flush().map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Alerts and suggestions as JSON lines on stdout; dead letters and late records are only
/// reported in the log (stderr), as they are not what a terminal user asked to see.
pub struct StdoutSink {
    out: BufWriter<std::io::Stdout>,
}

impl StdoutSink {
    pub fn new() -> Self {
        StdoutSink {
            out: BufWriter::new(std::io::stdout()),
        }
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for StdoutSink {
    fn send(&mut self, output: &Output) -> Result<Delivery> {
        if matches!(output.kind, OutputKind::Alerts | OutputKind::Suggestions) {
            writeln!(self.out, "{}", output.json).map_err(|source| Error::Io {
                path: "<stdout>".into(),
                source,
            })?;
        }
        Ok(Box::pin(async { Ok(()) }))
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|source| Error::Io {
            path: "<stdout>".into(),
            source,
        })
    }
}
