//! The file driver (the embedded default): the pipeline over JSON-lines files, read
//! interleaved by event time, then every window closed (end of input). Deterministic: no
//! wall clock, no budget on rule evaluation — the same input gives byte-identical output on
//! any machine at any load.

use std::path::{Path, PathBuf};

use tracing::info;

use super::emit::Emitter;
use super::recording::{drive, Lane, Recording};
use super::{Pipeline, Stats};
use crate::error::Result;
use crate::load::{save_states, Loaded};
use crate::rules::Unbounded;
use crate::sink::Sink;
use crate::source::{expand_inputs, FileSource};

/// Runs the pipeline over JSON-lines files (`-`: stdin; directories expanded, into their
/// subdirectories when `recursive`), writing every output to `sink` (the command line
/// chooses: files per output kind, JSON lines or lines for a person on stdout).
///
/// Each file is a partition with its own watermark. Files are read interleaved, always the
/// line of the file that is furthest behind in event time, so a log file and a trace file of
/// the same period line up as they would on Kafka; the order is deterministic.
/// `feedback` (JSON lines of feedback records) is applied to the knowledge base first.
pub async fn run_files(
    loaded: Loaded,
    inputs: &[PathBuf],
    recursive: bool,
    sink: Box<dyn Sink>,
    feedback: Option<&Path>,
) -> Result<Stats> {
    let (dir, config) = (loaded.dir.clone(), loaded.config.clone());
    let mut emitter = Emitter::new(sink, &loaded.config);
    let max_line = loaded.config.decode.max_message_bytes;
    let mut pipeline = Pipeline::new(loaded, Box::new(Unbounded)).await?;
    if let Some(path) = feedback {
        let mut source = FileSource::open(path, max_line)?;
        while let Some(msg) = source.next_message()? {
            emitter.emit(pipeline.feedback(&msg.payload, &msg.source))?;
        }
        emitter.ready()?;
    }
    let files = expand_inputs(inputs, recursive)?;
    let mut recording = Recording::files(&files, max_line)?;
    let mut lanes = [Lane {
        pipeline,
        emitter,
        max_in_flight: usize::MAX,
    }];
    drive(&mut recording, &mut lanes, &[], |_, _, _, _| {}).await?;
    let [Lane { pipeline, .. }] = lanes;
    save_states(
        &dir,
        &config,
        &pipeline.template_state(),
        pipeline.kb_state(),
    )?;
    let stats = pipeline.stats();
    info!(
        files = files.len(),
        messages = stats.messages,
        records = stats.records,
        dead_letters = stats.dead_letters,
        late = stats.late,
        windows = stats.windows,
        alerts = stats.alerts,
        suggestions = stats.suggestions,
        review = stats.review,
        feedback = stats.feedback,
        traces = stats.align.traces_closed,
        closed_early =
            stats.align.traces_closed_early_open_cap + stats.align.traces_closed_early_row_cap,
        windows_early = stats.align.windows_emitted_early,
        "Finished reading input."
    );
    Ok(stats)
}
