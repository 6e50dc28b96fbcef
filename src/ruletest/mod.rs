//! `faultline test`: unit tests of rules in the spirit of `promtool test rules`. Each test
//! runs the real pipeline — decode, windows, rules, detectors, lifecycle, knowledge base —
//! over the records its file describes, in event time without a budget, then checks the
//! alerts and suggestions that came out.

mod check;
mod inputs;
mod junit;
mod notation;
mod spec;

use std::path::{Path, PathBuf};
use std::time::Instant;

use regex::Regex;

use crate::load::{check_with, Loaded, Overrides};
use crate::model::{EventTime, PartitionKey};
use crate::output::{Output, OutputKind};
use crate::pipeline::Pipeline;
use crate::rules::Unbounded;
pub use notation::{expand_values, parse_series, Sample, SeriesSelector};
pub use spec::TestFile;

/// Offset 0 of a test unless the file sets `start_time`.
const DEFAULT_START: &str = "2026-01-01T00:00:00Z";

/// One test's outcome.
#[derive(Debug, Clone)]
pub struct TestReport {
    pub name: String,
    pub seconds: f64,
    /// What did not hold, expected against got; `None` when the test passed.
    pub failure: Option<String>,
}

/// One file's outcome: an error when the file itself could not be used.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: String,
    pub error: Option<String>,
    pub tests: Vec<TestReport>,
}

impl FileReport {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.tests.iter().all(|t| t.failure.is_none())
    }
}

/// Runs every test of `path` whose name matches `filter`.
pub async fn run_file(path: &Path, filter: Option<&Regex>) -> FileReport {
    let mut report = FileReport {
        path: path.display().to_string(),
        error: None,
        tests: Vec::new(),
    };
    match prepare(path).await {
        Ok((file, loaded, start)) => {
            for (i, test) in file.tests.iter().enumerate() {
                let name = test
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("test {}", i + 1));
                if filter.is_some_and(|re| !re.is_match(&name)) {
                    continue;
                }
                let started = Instant::now();
                let failure = run_test(test, &loaded, start, &format!("{}#{name}", report.path))
                    .await
                    .err();
                report.tests.push(TestReport {
                    name,
                    seconds: started.elapsed().as_secs_f64(),
                    failure,
                });
            }
        }
        Err(e) => report.error = Some(e),
    }
    report
}

/// Reads the file and loads the pipeline it tests.
async fn prepare(path: &Path) -> Result<(TestFile, Loaded, EventTime), String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let file: TestFile = serde_yaml_ng::from_str(&text).map_err(|e| format!("{shown}: {e}"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let dir = match &file.pipeline {
        Some(p) => base.join(p),
        None if file.rule_files.is_some() => base.to_path_buf(),
        None => return Err(format!("{shown}: name `rule_files`, a `pipeline`, or both")),
    };
    let overrides = Overrides {
        rules: file
            .rule_files
            .as_ref()
            .map(|r| r.iter().map(|f| absolute(&base.join(f))).collect()),
        default_config: file.pipeline.is_none(),
    };
    let loaded = check_with(&dir, &overrides).await.map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        lines.join("\n")
    })?;
    let slide = loaded.config.window.slide();
    if let Some(every) = file.evaluation_interval.filter(|d| *d != slide) {
        return Err(format!(
            "{shown}: evaluation_interval {} differs from the pipeline's window slide {}: \
             rules run once per window",
            check::show(every),
            check::show(slide)
        ));
    }
    let start_text = file.start_time.as_deref().unwrap_or(DEFAULT_START);
    let start = chrono::DateTime::parse_from_rfc3339(start_text)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| format!("{shown}: start_time {start_text:?} is not an RFC 3339 time"))?;
    Ok((file, loaded, EventTime(start)))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Runs one test through a fresh pipeline; `Err` with the failures.
async fn run_test(
    test: &spec::TestCase,
    loaded: &Loaded,
    start: EventTime,
    place: &str,
) -> Result<(), String> {
    let interval = test.interval.unwrap_or(loaded.config.window.slide());
    let messages = inputs::messages(test, start.0, interval, place)?;
    let mut pipeline = Pipeline::new(loaded.clone(), Box::new(Unbounded))
        .await
        .map_err(|e| e.to_string())?;
    let key = PartitionKey::new(place, 0);
    pipeline.register(&key);
    let mut outputs: Vec<(Output, Option<EventTime>)> = Vec::new();
    for (ack, msg) in messages.iter().enumerate() {
        stamp(
            pipeline.ingest(msg, ack as u64 + 1, &key).await,
            &mut outputs,
        );
    }
    stamp(pipeline.finish().await, &mut outputs);
    let mut failures = String::new();
    let mut alerts: Vec<check::Stamped> = Vec::new();
    let mut suggestions: Vec<serde_json::Value> = Vec::new();
    for (o, end) in &outputs {
        match o.kind {
            OutputKind::DeadLetter => failures.push_str(&refused(&o.json, place)),
            OutputKind::Alerts => {
                if let (Ok(alert), Some(end)) = (serde_json::from_str(&o.json), end) {
                    alerts.push((alert, *end));
                }
            }
            OutputKind::Suggestions => suggestions.extend(serde_json::from_str(&o.json).ok()),
            _ => {}
        }
    }
    let found = test
        .alert_rule_test
        .iter()
        .filter_map(|t| check::alert_rule(t, &alerts, start))
        .chain(
            test.alert_count_test
                .iter()
                .filter_map(|t| check::alert_count(t, &alerts)),
        )
        .chain(
            test.suggestion_test
                .iter()
                .filter_map(|t| check::suggestion(t, &suggestions)),
        );
    for f in found {
        failures.push_str(&f);
    }
    match failures.is_empty() {
        true => Ok(()),
        false => Err(failures),
    }
}

/// A dead letter of a test's input as a failure line: which input, and why.
fn refused(dead_letter: &str, place: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(dead_letter).unwrap_or_default();
    let path = v["source"]["path"].as_str().unwrap_or_default();
    let input = path.strip_prefix(place).unwrap_or(path).trim();
    format!(
        "{input}: not accepted: {}\n",
        v["reason"].as_str().unwrap_or(dead_letter)
    )
}

/// Each output with the end of the window whose evaluation produced it (none for dead
/// letters and late records, which come from ingestion).
fn stamp(em: crate::pipeline::Emission, into: &mut Vec<(Output, Option<EventTime>)>) {
    let mut marks = em.windows.iter().peekable();
    let mut current = None;
    for (i, o) in em.outputs.into_iter().enumerate() {
        while let Some((end, _)) = marks.next_if(|(_, first)| *first <= i) {
            current = Some(*end);
        }
        into.push((o, current));
    }
}

/// Runs the files, prints each failure and a summary line, writes the JUnit report when
/// asked. True when every test passed.
pub async fn run(
    files: &[PathBuf],
    filter: Option<&Regex>,
    junit: Option<&Path>,
) -> crate::Result<bool> {
    let mut reports = Vec::new();
    for f in files {
        let report = run_file(f, filter).await;
        print!("{}", describe(&report));
        reports.push(report);
    }
    let total: usize = reports.iter().map(|r| r.tests.len()).sum();
    let failed: usize = reports
        .iter()
        .map(|r| r.tests.iter().filter(|t| t.failure.is_some()).count())
        .sum();
    let broken = reports.iter().filter(|r| r.error.is_some()).count();
    let ok = failed == 0 && broken == 0;
    match ok {
        true => println!("SUCCESS: {total} tests passed in {} files", reports.len()),
        false => println!(
            "FAILED: {failed} of {total} tests failed, {broken} of {} files unusable",
            reports.len()
        ),
    }
    if let Some(path) = junit {
        let timestamp = chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        std::fs::write(path, junit::render(&reports, &timestamp, &host)).map_err(|source| {
            crate::Error::Io {
                path: path.to_path_buf(),
                source,
            }
        })?;
    }
    Ok(ok)
}

/// A file's result as printed: one line when it passed, every failure when not.
fn describe(r: &FileReport) -> String {
    if let Some(e) = &r.error {
        return format!("ERROR {}:\n{}\n", r.path, indent(e));
    }
    let mut out = String::new();
    for t in &r.tests {
        if let Some(f) = &t.failure {
            out.push_str(&format!("FAILED {}: {}\n{}", r.path, t.name, indent(f)));
        }
    }
    if out.is_empty() {
        out = format!("ok {}: {} tests\n", r.path, r.tests.len());
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}
