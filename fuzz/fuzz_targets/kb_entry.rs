//! Knowledge-base entry files (`kb/*.toml`): any text must parse or give an error, never
//! panic.
#![no_main]

use std::path::Path;

use faultline::kb::entry::parse_entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_entry(Path::new("kb/fuzz.toml"), &text);
});
