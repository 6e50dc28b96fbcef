//! Decoding: raw input messages (OTLP protobuf, OTLP/JSON, flat JSON) into [`Record`]s.
//!
//! Owns every wire format; nothing after this module sees one. Pure: no I/O, no clock. A
//! message that cannot be decoded yields a [`DecodeError`] that the caller turns into a
//! dead letter; it never panics and never affects other messages.

mod flat;
mod otlp;
mod plain;
mod plain_metrics;
mod points;
mod scanned;
mod scanned_metrics;
mod scanner;
mod value;

pub use flat::to_flat_json;
pub use value::string_attribute;

use serde::{Deserialize, Serialize};

use crate::model::{EventTime, HexId, Record, Signal};

/// How the payloads of an input are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// JSON when the payload starts with `{` or `[` (OTLP/JSON or flat, told apart by keys),
    /// otherwise OTLP protobuf.
    #[default]
    Auto,
    /// JSON: OTLP/JSON or flat, told apart by their keys (what files hold).
    Json,
    /// `Export{Logs,Metrics,Trace}ServiceRequest` protobuf, the Collector Kafka exporter's default.
    OtlpProto,
    /// OTLP/JSON export requests (or a bare span / resource object).
    OtlpJson,
    /// The flat JSON records of `schemas/flat-*.json`.
    FlatJson,
}

/// Why a message could not be decoded; the `kind` is what dead letters are counted by.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    pub message: String,
}

/// Classes of undecodable input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeErrorKind {
    /// Larger than `decode.max_message_bytes`.
    Oversized,
    /// Not valid UTF-8 where text was expected.
    InvalidUtf8,
    /// Not syntactically valid JSON.
    InvalidJson,
    /// Not a valid protobuf message of the expected type.
    InvalidProtobuf,
    /// Well-formed, but a field is missing, of the wrong type or out of range.
    InvalidRecord,
}

impl DecodeErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeErrorKind::Oversized => "oversized",
            DecodeErrorKind::InvalidUtf8 => "invalid_utf8",
            DecodeErrorKind::InvalidJson => "invalid_json",
            DecodeErrorKind::InvalidProtobuf => "invalid_protobuf",
            DecodeErrorKind::InvalidRecord => "invalid_record",
        }
    }
}

impl std::fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, message: impl Into<String>) -> Self {
        DecodeError {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn record(message: impl Into<String>) -> Self {
        Self::new(DecodeErrorKind::InvalidRecord, message)
    }
}

/// What the decoder knows about a message besides its bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageContext {
    /// The signal of the input it came from, if the input carries one signal only.
    pub signal: Option<Signal>,
    pub encoding: Encoding,
    /// Time to use for records that carry none (e.g. the Kafka message timestamp).
    pub fallback_time: Option<EventTime>,
}

/// Decodes messages. Holds only limits, so one instance serves every input.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_message_bytes: usize,
}

impl Decoder {
    pub fn new(max_message_bytes: usize) -> Self {
        Decoder { max_message_bytes }
    }

    /// Decodes one message into its records. An empty export request yields no records.
    pub fn decode(&self, payload: &[u8], ctx: MessageContext) -> Result<Vec<Record>, DecodeError> {
        if payload.len() > self.max_message_bytes {
            return Err(DecodeError::new(
                DecodeErrorKind::Oversized,
                format!(
                    "message of {} bytes exceeds decode.max_message_bytes ({})",
                    payload.len(),
                    self.max_message_bytes
                ),
            ));
        }
        let json = match ctx.encoding {
            Encoding::Auto => looks_like_json(payload),
            Encoding::OtlpProto => false,
            Encoding::Json | Encoding::OtlpJson | Encoding::FlatJson => true,
        };
        if !json {
            let signal = ctx.signal.ok_or_else(|| {
                DecodeError::new(
                    DecodeErrorKind::InvalidProtobuf,
                    "protobuf payload on an input without a signal; set the input's signal",
                )
            })?;
            return otlp::decode_proto(payload, signal, ctx.fallback_time);
        }
        let text = std::str::from_utf8(payload).map_err(|e| {
            DecodeError::new(
                DecodeErrorKind::InvalidUtf8,
                format!("payload is not valid UTF-8: {e}"),
            )
        })?;
        let force_flat = ctx.encoding == Encoding::FlatJson;
        if !force_flat {
            if let Some(records) = otlp::decode_json_text(text, ctx.fallback_time) {
                return records;
            }
        }
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            DecodeError::new(DecodeErrorKind::InvalidJson, format!("invalid JSON: {e}"))
        })?;
        let serde_json::Value::Object(object) = value else {
            return Err(DecodeError::record("expected a JSON object"));
        };
        if !force_flat {
            if let Some(records) = otlp::decode_json(&object, ctx.fallback_time)? {
                return Ok(records);
            }
            if ctx.encoding == Encoding::OtlpJson {
                return Err(DecodeError::record(
                    "not an OTLP/JSON export request: expected resourceSpans, resourceLogs or resourceMetrics",
                ));
            }
        }
        flat::decode(object, ctx.signal).map(|r| vec![r])
    }
}

fn looks_like_json(payload: &[u8]) -> bool {
    payload
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[')
}

/// A trace or span id of `N` bytes from hex text in either case; all-zero and empty ids are
/// absent.
pub(crate) fn normalise_hex_id<const N: usize>(
    raw: &str,
    what: &str,
) -> Result<Option<HexId<N>>, DecodeError> {
    let raw = raw.trim();
    HexId::from_hex(raw)
        .map_err(|_| DecodeError::record(format!("{what} {raw:?} is not {} hex characters", 2 * N)))
}

/// A binary id from protobuf (and an id the OTLP serde already decoded from hex).
pub(crate) fn bytes_id<const N: usize>(
    raw: &[u8],
    what: &str,
) -> Result<Option<HexId<N>>, DecodeError> {
    HexId::from_bytes(raw)
        .map_err(|_| DecodeError::record(format!("{what} has {} bytes, expected {N}", raw.len())))
}

#[cfg(test)]
mod tests;
