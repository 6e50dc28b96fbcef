//! The records faultline writes besides alerts: dead letters and late records
//! (`schemas/deadletter.json`, `schemas/late.json`), and the envelope every output travels in.

use base64::Engine;
use serde::Serialize;

use crate::alert::Alert;
use crate::decode::{to_flat_json, DecodeError};
use crate::incident::IncidentRecord;
use crate::kb::suggestion::Suggestion;
use crate::model::Late;
use crate::model::{Location, Signal};

/// Which stream an output belongs to: one topic or one file each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutputKind {
    Alerts,
    Suggestions,
    DeadLetter,
    Late,
    /// Suggestions a person should confirm (also in `Suggestions`).
    Review,
    /// Incidents: grouped alerts and their root-cause ranking.
    Incidents,
}

impl OutputKind {
    pub const ALL: [OutputKind; 6] = [
        OutputKind::Alerts,
        OutputKind::Suggestions,
        OutputKind::DeadLetter,
        OutputKind::Late,
        OutputKind::Review,
        OutputKind::Incidents,
    ];

    /// File name in `--output DIR`.
    pub fn file_name(self) -> &'static str {
        match self {
            OutputKind::Alerts => "alerts.jsonl",
            OutputKind::Suggestions => "suggestions.jsonl",
            OutputKind::DeadLetter => "deadletter.jsonl",
            OutputKind::Late => "late.jsonl",
            OutputKind::Review => "review.jsonl",
            OutputKind::Incidents => "incidents.jsonl",
        }
    }
}

/// One serialized output record with its Kafka key.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub kind: OutputKind,
    pub key: String,
    /// One JSON object, no trailing newline.
    pub json: String,
}

impl Output {
    fn new(kind: OutputKind, key: String, value: &impl Serialize) -> Self {
        Output {
            kind,
            key,
            json: serde_json::to_string(value).expect("output records serialize"),
        }
    }

    pub fn alert(alert: &Alert) -> Self {
        Self::new(OutputKind::Alerts, alert.group_key.clone(), alert)
    }

    /// A suggestion, keyed by its alert's fingerprint (one partition per alert).
    pub fn suggestion(s: &Suggestion) -> Self {
        Self::new(OutputKind::Suggestions, s.alert_fingerprint.clone(), s)
    }

    /// A suggestion that needs a person, on the review output.
    pub fn review(s: &Suggestion) -> Self {
        Self::new(OutputKind::Review, s.alert_fingerprint.clone(), s)
    }

    /// An incident record, keyed by the incident's id (one partition per incident).
    pub fn incident(i: &IncidentRecord) -> Self {
        Self::new(OutputKind::Incidents, i.id.clone(), i)
    }

    pub fn dead_letter(d: &DeadLetter) -> Self {
        Self::new(OutputKind::DeadLetter, d.source.to_string(), d)
    }

    pub fn late(l: &LateRecord) -> Self {
        Self::new(OutputKind::Late, l.source.to_string(), l)
    }
}

/// An input message that could not be decoded, with enough to find, fix and replay it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// `oversized`, `invalid_utf8`, `invalid_json`, `invalid_protobuf` or `invalid_record`.
    pub error_kind: &'static str,
    pub reason: String,
    /// Topic/partition/offset or file/line.
    pub source: Location,
    /// The input's signal, when it has one.
    pub signal: Option<Signal>,
    /// The original payload: text when it is UTF-8, base64 otherwise.
    pub payload: String,
    /// `utf8` or `base64`.
    pub payload_encoding: &'static str,
    /// Size of the original payload in bytes.
    pub payload_bytes: usize,
    /// True when `payload` holds only the first `decode.dead_letter_payload_bytes` bytes.
    pub payload_truncated: bool,
}

impl DeadLetter {
    /// `payload` may already be a prefix of the original message of `size` bytes.
    pub fn new(
        error: &DecodeError,
        source: Location,
        signal: Option<Signal>,
        payload: &[u8],
        size: usize,
        max_payload_bytes: usize,
    ) -> Self {
        let truncated = size > payload.len() || payload.len() > max_payload_bytes;
        let kept = &payload[..payload.len().min(max_payload_bytes)];
        let (text, encoding) = match std::str::from_utf8(kept) {
            Ok(s) => (s.to_string(), "utf8"),
            // A cut in the middle of a character is still text.
            Err(e) if truncated && e.error_len().is_none() => (
                String::from_utf8_lossy(&kept[..e.valid_up_to()]).into_owned(),
                "utf8",
            ),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(kept),
                "base64",
            ),
        };
        DeadLetter {
            error_kind: error.kind.as_str(),
            reason: error.message.clone(),
            source,
            signal,
            payload: text,
            payload_encoding: encoding,
            payload_bytes: size,
            payload_truncated: truncated,
        }
    }
}

/// A record that arrived after its window was evaluated.
#[derive(Debug, Clone, Serialize)]
pub struct LateRecord {
    pub reason: String,
    pub source: Location,
    pub signal: Signal,
    pub event_time: String,
    pub watermark: String,
    /// How far behind the watermark the record was, in milliseconds.
    pub delay_ms: f64,
    pub window_start: String,
    pub window_end: String,
    /// The record in the flat JSON form, ready to replay.
    pub record: serde_json::Value,
}

impl LateRecord {
    pub fn new(late: &Late, source: Location) -> Self {
        LateRecord {
            reason: "its window was already evaluated (event time behind the watermark)".into(),
            source,
            signal: late.record.signal(),
            event_time: late.record.event_time().to_rfc3339(),
            watermark: late.watermark.to_rfc3339(),
            delay_ms: late.delay().as_secs_f64() * 1000.0,
            window_start: late.window.start.to_rfc3339(),
            window_end: late.window.end.to_rfc3339(),
            record: to_flat_json(&late.record),
        }
    }
}

/// A decision the Kafka driver made from the wall clock rather than from the records —
/// partitions declared idle, event time moved to follow the wall clock — written to the
/// journal topic (`kafka.outputs.watermarks`, `schemas/watermark.json`) before the next
/// input message is ingested, so that a replay can make the same decision between the same
/// records.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct WatermarkDecision {
    /// Every partition the member had assigned, with the offset of the next message it was
    /// about to ingest (`None`: it had read nothing of it yet).
    pub positions: Vec<JournalPosition>,
    /// Partitions declared idle since the previous input message.
    #[serde(default)]
    pub idle: Vec<JournalPartition>,
    /// The watermark every shard of the member was moved to, when it followed the wall
    /// clock (nanoseconds since the epoch).
    #[serde(default)]
    pub watermark_unix_nano: Option<i64>,
}

/// A partition and the offset of the next message to ingest.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct JournalPosition {
    pub topic: String,
    pub partition: i32,
    pub offset: Option<i64>,
}

/// A partition.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct JournalPartition {
    pub topic: String,
    pub partition: i32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::DecodeErrorKind;

    fn err() -> DecodeError {
        DecodeError {
            kind: DecodeErrorKind::InvalidJson,
            message: "x".into(),
        }
    }

    fn loc() -> Location {
        Location::File {
            path: "f".into(),
            line: 3,
        }
    }

    #[test]
    fn non_utf8_payload_is_base64() {
        let d = DeadLetter::new(&err(), loc(), None, &[0xff, 0xfe, b'a'], 3, 100);
        assert_eq!(d.payload_encoding, "base64");
        assert_eq!(d.payload, "//5h");
        assert!(!d.payload_truncated);
    }

    #[test]
    fn large_payload_is_truncated_on_a_char_boundary() {
        let payload = "é".repeat(10); // 20 bytes
        let d = DeadLetter::new(&err(), loc(), None, payload.as_bytes(), 20, 5);
        assert_eq!(d.payload, "éé");
        assert_eq!(d.payload_encoding, "utf8");
        assert!(d.payload_truncated);
        assert_eq!(d.payload_bytes, 20);
    }
}
