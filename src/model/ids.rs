//! Trace and span ids as the bytes OpenTelemetry defines them (16 and 8), not as hex text.
//!
//! Every record carries one or three ids and the aligner indexes open traces by id several
//! ways; as `String`s each was a heap allocation and a 32-byte hash key. As fixed-size
//! bytes they are `Copy`, hash as one word or two, and sort exactly as their lower-case
//! hex does (a byte's two hex digits sort like the byte), so every order the tables and
//! outputs show is unchanged. Text appears only where ids leave: the tables' string
//! columns, JSON and logs.

use std::fmt;

/// An id of `N` bytes, never all zero (OTLP's "absent").
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HexId<const N: usize>([u8; N]);

/// A trace id: 16 bytes, shown as 32 lower-case hex digits.
pub type TraceId = HexId<16>;
/// A span id: 8 bytes, shown as 16 lower-case hex digits.
pub type SpanId = HexId<8>;

/// Why text or bytes are not an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdError {
    /// Bytes of another length than the id's.
    Length(usize),
    /// Text that is not `2 × N` hex digits.
    NotHex,
}

impl<const N: usize> HexId<N> {
    /// The id of raw bytes; `None` when empty or all zero (both mean "no id" in OTLP).
    pub fn from_bytes(raw: &[u8]) -> Result<Option<Self>, IdError> {
        if raw.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        let bytes: [u8; N] = raw.try_into().map_err(|_| IdError::Length(raw.len()))?;
        Ok(Some(HexId(bytes)))
    }

    /// The id of `2 × N` hex digits in either case; `None` when empty or all zero.
    pub fn from_hex(text: &str) -> Result<Option<Self>, IdError> {
        if text.is_empty() {
            return Ok(None);
        }
        // Digits only: `const_hex` strips a `0x` prefix, which then leaves too few for `N`.
        if text.len() != 2 * N {
            return Err(IdError::NotHex);
        }
        let mut bytes = [0u8; N];
        const_hex::decode_to_slice(text, &mut bytes).map_err(|_| IdError::NotHex)?;
        Ok((bytes != [0u8; N]).then_some(HexId(bytes)))
    }

    /// The id of hex text that must be valid: ids of tests, generators and literals.
    ///
    /// # Panics
    /// When `text` is not `2 × N` hex digits or is all zero.
    pub fn parse(text: &str) -> Self {
        match Self::from_hex(text) {
            Ok(Some(id)) => id,
            _ => panic!("{text:?} is not a non-zero id of {} hex digits", 2 * N),
        }
    }

    /// The id whose bytes start with `label`'s, zero after: tests and examples name ids
    /// by short labels (`"a"`, `"t1"`), and the ids sort as the labels do.
    ///
    /// # Panics
    /// When `label` is empty or longer than `N` bytes.
    pub fn from_label(label: &str) -> Self {
        assert!(
            !label.is_empty() && label.len() <= N,
            "an id label has 1 to {N} bytes: {label:?}"
        );
        let mut bytes = [0u8; N];
        bytes[..label.len()].copy_from_slice(label.as_bytes());
        HexId(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }

    /// The lower-case hex text, on the stack. `const_hex`'s buffer hands out its text
    /// without checking it as UTF-8 again (that check was a third of writing an id).
    pub fn hex(&self) -> const_hex::Buffer<N> {
        let mut text = const_hex::Buffer::new();
        text.format(&self.0);
        text
    }
}

impl<const N: usize> fmt::Display for HexId<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex().as_str())
    }
}

impl<const N: usize> fmt::Debug for HexId<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.hex().as_str())
    }
}

impl<const N: usize> PartialEq<&str> for HexId<N> {
    fn eq(&self, other: &&str) -> bool {
        self.hex().as_str() == *other
    }
}

impl<const N: usize> serde::Serialize for HexId<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.hex().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_as_their_hex_text_does() {
        let texts = [
            "00000000000000000000000000000001",
            "0000000000000000000000000000000a",
            "000000000000000000000000000000f0",
            "10000000000000000000000000000000",
            "9fffffffffffffffffffffffffffffff",
            "a0000000000000000000000000000000",
            "ffffffffffffffffffffffffffffffff",
        ];
        let mut ids: Vec<TraceId> = texts.iter().rev().map(|t| TraceId::parse(t)).collect();
        ids.sort();
        let back: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert_eq!(back, texts);
    }

    #[test]
    fn hex_in_either_case_reads_and_prints_lower_case() {
        let id = SpanId::from_hex("00F067AA0BA902B7").unwrap().unwrap();
        assert_eq!(id.to_string(), "00f067aa0ba902b7");
        assert_eq!(id, "00f067aa0ba902b7");
        assert_eq!(format!("{id:?}"), "\"00f067aa0ba902b7\"");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"00f067aa0ba902b7\"");
        assert_eq!(
            id.as_bytes(),
            &[0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
    }

    #[test]
    fn zero_and_empty_ids_are_absent_and_bad_ones_are_errors() {
        assert_eq!(SpanId::from_hex(""), Ok(None));
        assert_eq!(SpanId::from_hex("0000000000000000"), Ok(None));
        assert_eq!(SpanId::from_bytes(&[]), Ok(None));
        assert_eq!(SpanId::from_bytes(&[0; 8]), Ok(None));
        assert_eq!(SpanId::from_hex("00f067aa0ba902"), Err(IdError::NotHex));
        assert_eq!(SpanId::from_hex("00f067aa0ba902zz"), Err(IdError::NotHex));
        // A `0x` prefix is not part of an id, however many digits follow it.
        assert_eq!(SpanId::from_hex("0x00f067aa0ba902"), Err(IdError::NotHex));
        assert_eq!(SpanId::from_hex("0x00f067aa0ba902b7"), Err(IdError::NotHex));
        assert_eq!(SpanId::from_bytes(&[1; 9]), Err(IdError::Length(9)));
        assert_eq!(
            TraceId::from_bytes(&[7; 16]).unwrap().unwrap().to_string(),
            "07".repeat(16)
        );
    }
}
