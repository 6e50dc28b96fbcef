//! A JSON reader for the commonest OTLP/JSON shapes only, which gives up (`None`) on
//! anything else rather than wording an error.
//!
//! Why our own: after the serde types of `plain.rs`, serde_json's visitor machinery was
//! still about 25 instructions per byte of a span request (each key is parsed into a
//! field identifier through a visitor, each object is a `MapAccess` state machine), and
//! `sonic-rs` and `simd-json` measured no better on these small objects (`BENCHMARKS.md`,
//! "Twelfth session" and "Thirteenth session"). The requests we read are a few
//! fixed shapes, so the reader only needs strings, integers, `true`, `false` and `null`,
//! objects and arrays, read in place. Whatever is outside what a caller reads — a float
//! where an integer belongs, an escaped key, a control character, a lone surrogate,
//! malformed JSON — makes it give up, and the request is read by the serde path, which
//! accepts or words it. So this reader never has to reject anything correctly: it only
//! has to accept correctly.

use std::borrow::Cow;

/// A position in a JSON text. Every method returns `None` where the text is not what it
/// reads, leaving the position anywhere: the caller then gives up on the whole text.
pub(super) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Scanner { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte after any whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.bytes();
        while let Some(&b) = bytes.get(self.pos) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    /// Consumes `b` (after whitespace) if it is next.
    fn eat(&mut self, b: u8) -> bool {
        let next = self.peek() == Some(b);
        self.pos += usize::from(next);
        next
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        self.eat(b).then_some(())
    }

    /// Only whitespace remains.
    pub(super) fn end(&mut self) -> Option<()> {
        self.peek().is_none().then_some(())
    }

    /// A string without escapes or control characters, borrowed from the text: what keys
    /// are (a key with an escape gives up). Inlined everywhere, as `string` is.
    #[inline(always)]
    pub(super) fn str(&mut self) -> Option<&'a str> {
        match self.string()? {
            Cow::Borrowed(text) => Some(text),
            Cow::Owned(_) => None,
        }
    }

    /// A string, its escapes read as serde_json reads them into a `String`: borrowed
    /// from the text when it has none. A control character or a lone surrogate gives up.
    /// Inlined everywhere: a call cost more than its search (a dozen bytes on average).
    #[inline(always)]
    pub(super) fn string(&mut self) -> Option<Cow<'a, str>> {
        self.expect(b'"')?;
        let start = self.pos;
        let end = run_end(self.bytes(), start)?;
        match self.bytes()[end] {
            b'"' => {
                self.pos = end + 1;
                // Both ends follow or are ASCII bytes, so they are character boundaries.
                self.text.get(start..end).map(Cow::Borrowed)
            }
            b'\\' => self.escaped_string(start, end).map(Cow::Owned),
            _ => None,
        }
    }

    /// The rest of a string from `start`, with an escape at `escape`: out of line, as
    /// escapes are rare and the common path stays small.
    #[cold]
    #[inline(never)]
    fn escaped_string(&mut self, start: usize, mut escape: usize) -> Option<String> {
        let bytes = self.bytes();
        let mut unescaped = String::new();
        let mut run = start;
        loop {
            unescaped.push_str(self.text.get(run..escape)?);
            let (c, len) = escape_char(&bytes[escape + 1..])?;
            unescaped.push(c);
            run = escape + 1 + len;
            let end = run_end(bytes, run)?;
            match bytes[end] {
                b'"' => {
                    unescaped.push_str(self.text.get(run..end)?);
                    self.pos = end + 1;
                    return Some(unescaped);
                }
                b'\\' => escape = end,
                _ => return None,
            }
        }
    }

    /// The digits of an integer as JSON writes one (`-?(0|[1-9][0-9]*)`, no fraction or
    /// exponent), with its sign.
    fn integer(&mut self) -> Option<(bool, &'a str)> {
        let negative = self.eat(b'-');
        let bytes = self.bytes();
        let start = self.pos;
        let len = bytes[start..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(bytes.len() - start);
        let digits = &self.text[start..start + len];
        self.pos = start + len;
        let leading_zero = digits.len() > 1 && digits.starts_with('0');
        let fraction = matches!(bytes.get(self.pos), Some(b'.' | b'e' | b'E'));
        let invalid = digits.is_empty() || leading_zero || fraction;
        (!invalid).then_some((negative, digits))
    }

    /// A JSON integer in `T`'s range, as serde reads it into `T`.
    pub(super) fn int<T: TryFrom<i64> + TryFrom<u64>>(&mut self) -> Option<T> {
        let (negative, digits) = self.integer()?;
        let magnitude = parse_u64(digits)?;
        if negative {
            let value = 0i64.checked_sub_unsigned(magnitude)?;
            T::try_from(value).ok()
        } else {
            T::try_from(magnitude).ok()
        }
    }

    /// A JSON number as text, for `serde_json` to read (floats are read as it reads them).
    pub(super) fn number_text(&mut self) -> Option<&'a str> {
        self.peek()?;
        let start = self.pos;
        let bytes = self.bytes();
        let len = bytes[start..]
            .iter()
            .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .unwrap_or(bytes.len() - start);
        self.pos = start + len;
        (len > 0).then(|| &self.text[start..start + len])
    }

    /// `true` or `false`.
    pub(super) fn bool(&mut self) -> Option<bool> {
        self.peek()?;
        let rest = &self.bytes()[self.pos..];
        let (value, len) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return None;
        };
        self.pos += len;
        Some(value)
    }

    /// Consumes `null` if it is next.
    pub(super) fn null(&mut self) -> bool {
        let null = self.peek().is_some() && self.bytes()[self.pos..].starts_with(b"null");
        self.pos += if null { 4 } else { 0 };
        null
    }

    /// Whether a string comes next (after whitespace).
    pub(super) fn at_string(&mut self) -> bool {
        self.peek() == Some(b'"')
    }

    /// An object: `member` reads each member's value, given its key. Its members come in
    /// text order; duplicates are the caller's to refuse.
    pub(super) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.str()?;
            self.expect(b':')?;
            member(self, key)?;
            if !self.eat(b',') {
                return self.expect(b'}');
            }
        }
    }

    /// An array: `element` reads each element.
    pub(super) fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.expect(b'[')?;
        if self.eat(b']') {
            return Some(());
        }
        loop {
            element(self)?;
            if !self.eat(b',') {
                return self.expect(b']');
            }
        }
    }
}

/// The index of the first byte at or after `i` that ends a run of string text: a quote, a
/// backslash or a control character; `None` if none does. Sixteen bytes at a time with
/// SSE2 (part of every x86-64 CPU), then eight at a time: these strings are a dozen bytes
/// on average, where `memchr`'s set-up cost more than its search, and SSE2 ends most of
/// them in one step where the eight-byte loop took two or three.
#[inline]
pub(super) fn run_end(bytes: &[u8], i: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86-64 baseline, so every CPU this runs on has it.
    let i = match unsafe { run_end_sse2(bytes, i) } {
        Ok(end) => return Some(end),
        Err(rest) => rest,
    };
    run_end_swar(bytes, i)
}

/// `Ok` with the end of the run if it lies in a whole 16-byte chunk from `i`; otherwise
/// `Err` with where the chunks stopped.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn run_end_sse2(bytes: &[u8], mut i: usize) -> Result<usize, usize> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let quote = _mm_set1_epi8(b'"' as i8);
    let backslash = _mm_set1_epi8(b'\\' as i8);
    let last_control = _mm_set1_epi8(0x1f);
    while let Some(chunk) = bytes.get(i..i + 16) {
        // SAFETY: `chunk` is 16 readable bytes, and `loadu` needs no alignment.
        let v = unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) };
        // A byte is a control character when it is its own minimum with 0x1f (unsigned).
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, last_control), v);
        let stops = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
            control,
        );
        let mask = _mm_movemask_epi8(stops) as u32;
        if mask != 0 {
            return Ok(i + mask.trailing_zeros() as usize);
        }
        i += 16;
    }
    Err(i)
}

/// [`run_end`] eight bytes at a time in a `u64` (SWAR), then byte by byte.
#[inline]
fn run_end_swar(bytes: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `x` that is zero, and possibly of bytes above the first
    // such (a borrow); the lowest one set is exact, which is all that is read.
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let v = u64::from_le_bytes(chunk.try_into().ok()?);
        let quote = zero_bytes(v ^ (ONES * u64::from(b'"')));
        let backslash = zero_bytes(v ^ (ONES * u64::from(b'\\')));
        let control = v.wrapping_sub(ONES * 0x20) & !v;
        let found = (quote | backslash | control) & HIGHS;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let tail = bytes[i..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20);
    tail.map(|p| i + p)
}

/// `text.parse::<u64>()`, quicker for the common case of at most 19 digits (which cannot
/// overflow): eight digits at a time, as times in nanoseconds have 19.
pub(super) fn parse_u64(text: &str) -> Option<u64> {
    let digits = text.as_bytes();
    if !(1..=19).contains(&digits.len()) {
        return text.parse().ok();
    }
    let mut n = 0u64;
    let mut chunks = digits.chunks_exact(8);
    for chunk in &mut chunks {
        let eight = chunk.try_into().ok().and_then(eight_digits);
        let Some(eight) = eight else {
            return text.parse().ok();
        };
        n = n * 100_000_000 + eight;
    }
    for &d in chunks.remainder() {
        let digit = d.wrapping_sub(b'0');
        if digit > 9 {
            return text.parse().ok();
        }
        n = n * 10 + u64::from(digit);
    }
    Some(n)
}

/// The value of eight ASCII digits, most significant first; `None` if any byte is not a
/// digit. In a `u64` (SWAR): adjacent digits are combined into pairs, pairs into fours,
/// fours into the eight, each step one multiply over every lane.
fn eight_digits(chunk: [u8; 8]) -> Option<u64> {
    const LOW_NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    let v = u64::from_le_bytes(chunk);
    // Each byte is 0x30..=0x39: its high nibble is 3, and adding 6 does not carry into it.
    let high = v & !LOW_NIBBLES;
    let carried = v.wrapping_add(0x0606_0606_0606_0606) & !LOW_NIBBLES;
    if high != 0x3030_3030_3030_3030 || carried != 0x3030_3030_3030_3030 {
        return None;
    }
    let d = v & LOW_NIBBLES;
    // Little-endian: the first digit is the lowest byte. Each 16-bit lane: 10·first + second.
    let pairs = (d * 10 + (d >> 8)) & 0x00ff_00ff_00ff_00ff;
    // Each 32-bit lane: 100·first pair + second pair.
    let fours = (pairs * 100 + (pairs >> 16)) & 0x0000_ffff_0000_ffff;
    // 10 000·first four + second four.
    Some((fours * 10_000 + (fours >> 32)) & 0xffff_ffff)
}

/// The character of the escape that `after` (the bytes after a backslash) starts, and how
/// many bytes of `after` it takes.
fn escape_char(after: &[u8]) -> Option<(char, usize)> {
    let c = match *after.first()? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let unit = hex4(after.get(1..5)?)?;
            if !(0xD800..0xDC00).contains(&unit) {
                // A lone trailing surrogate is no `char`: gives up.
                return Some((char::from_u32(unit)?, 5));
            }
            // A leading surrogate must be followed by an escaped trailing one.
            if after.get(5..7)? != b"\\u" {
                return None;
            }
            let low = hex4(after.get(7..11)?)?;
            if !(0xDC00..0xE000).contains(&low) {
                return None;
            }
            let c = char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?;
            return Some((c, 11));
        }
        _ => return None,
    };
    Some((c, 1))
}

/// Four hex digits, either case.
fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0, |n, &d| {
        let digit = char::from(d).to_digit(16)?;
        Some(n * 16 + digit)
    })
}

#[cfg(test)]
#[path = "scanner_tests.rs"]
mod tests;
