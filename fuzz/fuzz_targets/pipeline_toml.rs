//! `pipeline.toml`: any text must parse or give an error with its line, never panic.
#![no_main]

use std::path::Path;

use faultline::config::PipelineConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = PipelineConfig::parse(&text, Path::new("pipeline.toml"));
});
