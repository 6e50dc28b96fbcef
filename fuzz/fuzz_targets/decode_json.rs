//! JSON input: OTLP/JSON export requests and flat records (`schemas/flat-*.json`), told
//! apart by their keys. Any bytes must decode or give a `DecodeError`, never panic.
#![no_main]

use faultline::decode::{Decoder, Encoding, MessageContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for encoding in [Encoding::Json, Encoding::FlatJson, Encoding::OtlpJson] {
        let ctx = MessageContext {
            signal: None,
            encoding,
            fallback_time: None,
        };
        let _ = Decoder::new(1 << 20).decode(data, ctx);
    }
});
