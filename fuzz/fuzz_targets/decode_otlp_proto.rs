//! OTLP protobuf export requests, as the Collector's Kafka exporter writes them: any bytes
//! must decode or give a `DecodeError`, never panic. The first byte picks the signal.
#![no_main]

use faultline::decode::{Decoder, Encoding, MessageContext};
use faultline::model::Signal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, payload)) = data.split_first() else {
        return;
    };
    let signal = [Signal::Logs, Signal::Metrics, Signal::Spans][usize::from(*first) % 3];
    let ctx = MessageContext {
        signal: Some(signal),
        encoding: Encoding::OtlpProto,
        fallback_time: None,
    };
    let _ = Decoder::new(1 << 20).decode(payload, ctx);
});
