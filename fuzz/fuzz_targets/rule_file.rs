//! Rule files (`-- key = value` TOML header, then SQL): any text must parse or give errors
//! with a location, never panic.
#![no_main]

use std::path::PathBuf;

use faultline::rules::{parse_rules, RuleText};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let file = RuleText {
        path: PathBuf::from("rules/fuzz.sql"),
        text,
        group: "fuzz".into(),
        defaults: Vec::new(),
    };
    let _ = parse_rules(&[file]);
});
