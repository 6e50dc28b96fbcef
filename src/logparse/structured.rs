//! Structured log bodies: JSON objects and logfmt lines, recognised and flattened into fields.
//!
//! [`parse_body`] decides whether a log body is structured and, when it is, returns its fields
//! with the human message and the severity picked out, so that template mining runs on the
//! message rather than on the whole body. A body that is not structured gives `None` and the
//! caller mines the whole text. Pure: no I/O, no clock, no panics on any input, and bounded
//! memory on hostile input (the `MAX_*` consts); work is linear in the body's length.
//!
//! The logfmt parser is hand-written because crates.io has no maintained logfmt crate, and the
//! format, together with the rule that tells it from prose, fits in a page.
//!
//! Decisions:
//! - **Values** are text: strings unescaped, integers as written, other numbers in their
//!   shortest round-trip form (`1e3` gives `1000.0`), bools `true`/`false`, JSON `null` the
//!   empty string (as logfmt's `key=`, and as the decoders render null attributes); arrays,
//!   and objects deeper than [`MAX_DEPTH`], compact JSON with keys in document order; an
//!   empty object `{}`.
//! - **Duplicate keys**: the last value wins and the field keeps the position of the first
//!   occurrence, so keys in [`StructuredBody::fields`] are unique. This holds for keys that
//!   collide only after flattening too (`{"a.b":1,"a":{"b":2}}` gives `a.b` = `2`).
//! - **JSON**: only an object counts, after trimming whitespace; anything else, invalid JSON,
//!   trailing text after the object, and nesting past serde_json's recursion limit (128)
//!   are plain text.
//! - **logfmt versus prose**: a body is logfmt when every whitespace-separated token is
//!   `key=value`, `key="quoted value"` or a bare `key` (a flag, value `true`), the first token
//!   is a pair, at least two tokens are pairs, and flags are fewer than pairs. Keys are
//!   `[A-Za-z0-9_.\-/@]+`. Bare values run to the next ASCII whitespace and may hold `=` but
//!   not `"`. A closing quote must be followed by whitespace or the end. Prose fails the rule
//!   through its first word (a flag), its punctuation (`failure;`, `3:`, `(`), or its many
//!   bare words between pairs.
//! - **Caps**: past [`MAX_FIELDS`] distinct keys further fields are dropped; keys are cut to
//!   [`MAX_KEY_BYTES`], values to [`MAX_VALUE_BYTES`], the message to [`MAX_MESSAGE_BYTES`],
//!   always on a char boundary. [`StructuredBody::truncated`] says a cap was hit. The
//!   message and level are looked for among all keys, not only the first [`MAX_FIELDS`].

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Nesting depth flattened into dotted keys: a key has at most this many segments
/// (`a.b.c.d`); an object found there is rendered as compact JSON, as arrays are at any depth.
pub const MAX_DEPTH: usize = 4;
/// Distinct fields kept per body; later new keys are dropped (the body is `truncated`).
pub const MAX_FIELDS: usize = 64;
/// Longest field value kept, in bytes; longer values are cut on a char boundary.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Longest (flattened) key kept, in bytes; longer keys are cut on a char boundary.
pub const MAX_KEY_BYTES: usize = 256;
/// Longest message kept, in bytes: more than a field value, because the message is what
/// template mining reads, and the telling line of a traceback is often its last.
pub const MAX_MESSAGE_BYTES: usize = 8192;

/// Keys holding the human message, in order of preference.
const MESSAGE_KEYS: [&str; 5] = ["msg", "message", "event", "log", "text"];
/// Keys holding the severity, in order of preference. `levelname` is Python's
/// `python-json-logger`.
const LEVEL_KEYS: [&str; 5] = ["level", "severity", "lvl", "log.level", "levelname"];

/// The syntax a structured body was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// A JSON object.
    Json,
    /// `key=value` pairs, as Go's slog and logrus text handlers and Heroku write them.
    Logfmt,
}

/// A structured log body, flattened.
#[derive(Debug, Clone, PartialEq)]
pub struct StructuredBody {
    /// The syntax the body was written in.
    pub format: BodyFormat,
    /// Fields in document order, nested JSON keys joined with dots (`req.id`), values as text
    /// (see the module doc for how each kind renders). Keys are unique: for a duplicate key
    /// the last value wins, at the first occurrence's position. At most [`MAX_FIELDS`].
    pub fields: Vec<(String, String)>,
    /// The human message: the value of the first of `msg`, `message`, `event`, `log`, `text`
    /// that is present with a non-blank scalar value. Only whole keys count: a nested
    /// `error.message` is not the message. Up to [`MAX_MESSAGE_BYTES`].
    pub message: Option<String>,
    /// The severity as written (`error`, `ERROR`, `50` from pino; not normalised): the value
    /// of the first of `level`, `severity`, `lvl`, `log.level`, `levelname` that is present
    /// with a non-blank scalar value.
    pub level: Option<String>,
    /// True when a cap dropped a field or cut a key, value or message.
    pub truncated: bool,
}

impl StructuredBody {
    /// The value of a field by its (flattened) key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Recognises a structured body and extracts its fields. `None` when the body is plain
/// text, so callers fall back to template mining of the whole body.
pub fn parse_body(body: &str) -> Option<StructuredBody> {
    let body = body.trim();
    if body.starts_with('{') {
        return parse_json(body);
    }
    // Fast path: logfmt needs an `=`, and most plain text has none.
    if !body.contains('=') {
        return None;
    }
    parse_logfmt(body)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Gathers fields under the caps, and the message and level candidates.
#[derive(Default)]
struct Collector {
    fields: Vec<(String, String)>,
    messages: [Option<String>; MESSAGE_KEYS.len()],
    levels: [Option<String>; LEVEL_KEYS.len()],
    truncated: bool,
}

impl Collector {
    /// `key` cut to [`MAX_KEY_BYTES`].
    fn key(&mut self, key: &str) -> String {
        let kept = cut(key, MAX_KEY_BYTES);
        self.truncated |= kept.len() < key.len();
        kept.to_owned()
    }

    /// `parent.child`, cut to [`MAX_KEY_BYTES`].
    fn child_key(&mut self, parent: &str, child: &str) -> String {
        let mut key = String::with_capacity(parent.len() + 1 + child.len().min(MAX_KEY_BYTES));
        key.push_str(parent);
        key.push('.');
        key.push_str(cut(child, MAX_KEY_BYTES));
        self.key(&key)
    }

    /// Records a field. `scalar` is false for values rendered as JSON, which are never the
    /// message or level.
    fn insert(&mut self, key: String, value: &str, scalar: bool) {
        let candidate = |max: usize, truncated: &mut bool| {
            scalar.then(|| {
                let kept = cut(value, max);
                *truncated |= kept.len() < value.len();
                kept.to_owned()
            })
        };
        if let Some(i) = MESSAGE_KEYS.iter().position(|k| *k == key) {
            self.messages[i] = candidate(MAX_MESSAGE_BYTES, &mut self.truncated);
        }
        if let Some(i) = LEVEL_KEYS.iter().position(|k| *k == key) {
            self.levels[i] = candidate(MAX_VALUE_BYTES, &mut self.truncated);
        }
        let kept = cut(value, MAX_VALUE_BYTES);
        self.truncated |= kept.len() < value.len();
        if let Some((_, v)) = self.fields.iter_mut().find(|(k, _)| *k == key) {
            kept.clone_into(v);
        } else if self.fields.len() < MAX_FIELDS {
            self.fields.push((key, kept.to_owned()));
        } else {
            self.truncated = true;
        }
    }

    fn finish(self, format: BodyFormat) -> StructuredBody {
        StructuredBody {
            format,
            fields: self.fields,
            message: first_present(self.messages),
            level: first_present(self.levels),
            truncated: self.truncated,
        }
    }
}

/// The first candidate that is present and not blank.
fn first_present<const N: usize>(candidates: [Option<String>; N]) -> Option<String> {
    candidates
        .into_iter()
        .flatten()
        .find(|v| !v.trim().is_empty())
}

/// A string that stops growing at `cap` bytes, cut on a char boundary.
struct Bounded {
    text: String,
    cap: usize,
    cut: bool,
}

impl Bounded {
    fn new(cap: usize) -> Self {
        Bounded {
            text: String::new(),
            cap,
            cut: false,
        }
    }

    fn push_str(&mut self, s: &str) {
        if self.cut {
            return;
        }
        let kept = cut(s, self.cap - self.text.len());
        self.text.push_str(kept);
        self.cut = kept.len() < s.len();
    }

    fn push(&mut self, c: char) {
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }

    /// Pushes `s` as a JSON string literal.
    fn push_json_string(&mut self, s: &str) {
        self.push('"');
        let mut run = 0;
        for (i, c) in s.char_indices() {
            let escaped = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\u{8}' => "\\b",
                '\u{c}' => "\\f",
                c if c < ' ' => "",
                _ => continue,
            };
            self.push_str(&s[run..i]);
            if escaped.is_empty() {
                self.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                self.push_str(escaped);
            }
            run = i + c.len_utf8();
            if self.cut {
                return;
            }
        }
        self.push_str(&s[run..]);
        self.push('"');
    }
}

/// A JSON number as text: integers as written, others in shortest round-trip form.
fn float_text(v: f64) -> String {
    serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string())
}

fn parse_json(body: &str) -> Option<StructuredBody> {
    let mut out = Collector::default();
    let mut de = serde_json::Deserializer::from_str(body);
    (&mut de).deserialize_map(TopLevel(&mut out)).ok()?;
    de.end().ok()?;
    Some(out.finish(BodyFormat::Json))
}

/// Visits the top-level object.
struct TopLevel<'a>(&'a mut Collector);

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let key = self.0.key(&key);
            map.next_value_seed(Field {
                out: &mut *self.0,
                key,
                depth: 1,
            })?;
        }
        Ok(())
    }
}

/// The value of the field `key`, `depth` keys deep (1 for top-level keys): scalars become
/// fields, objects are flattened until [`MAX_DEPTH`], the rest is rendered as compact JSON.
struct Field<'a> {
    out: &'a mut Collector,
    key: String,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Field<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Field<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.out
            .insert(self.key, if v { "true" } else { "false" }, true);
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.out.insert(self.key, &v.to_string(), true);
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.out.insert(self.key, &v.to_string(), true);
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.out.insert(self.key, &float_text(v), true);
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.out.insert(self.key, v, true);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.insert(self.key, "", true);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Field { out, key, depth } = self;
        if depth >= MAX_DEPTH {
            let mut text = Bounded::new(MAX_VALUE_BYTES);
            Compact(&mut text).visit_map(map)?;
            out.truncated |= text.cut;
            out.insert(key, &text.text, false);
            return Ok(());
        }
        let mut empty = true;
        while let Some(child) = map.next_key::<String>()? {
            empty = false;
            let child = out.child_key(&key, &child);
            map.next_value_seed(Field {
                out: &mut *out,
                key: child,
                depth: depth + 1,
            })?;
        }
        if empty {
            out.insert(key, "{}", false);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let mut text = Bounded::new(MAX_VALUE_BYTES);
        Compact(&mut text).visit_seq(seq)?;
        self.out.truncated |= text.cut;
        self.out.insert(self.key, &text.text, false);
        Ok(())
    }
}

/// Renders a JSON value as compact JSON, keys in document order, into a [`Bounded`] (which
/// keeps consuming the input after it is full, so the JSON is still validated).
struct Compact<'a>(&'a mut Bounded);

impl<'de> DeserializeSeed<'de> for Compact<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Compact<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.push_str(if v { "true" } else { "false" });
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push_str(&v.to_string());
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push_str(&v.to_string());
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push_str(&float_text(v));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push_json_string(v);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.push_str("null");
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push('{');
        let mut first = true;
        while let Some(key) = map.next_key::<String>()? {
            if !first {
                self.0.push(',');
            }
            first = false;
            self.0.push_json_string(&key);
            self.0.push(':');
            map.next_value_seed(Compact(&mut *self.0))?;
        }
        self.0.push('}');
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push('[');
        let mut first = true;
        loop {
            // Whether another element follows is known only after reading it: write the
            // separator first and take it back at the end.
            let mark = self.0.text.len();
            if !first {
                self.0.push(',');
            }
            if seq.next_element_seed(Compact(&mut *self.0))?.is_none() {
                self.0.text.truncate(mark);
                break;
            }
            first = false;
        }
        self.0.push(']');
        Ok(())
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/' | b'@')
}

fn parse_logfmt(body: &str) -> Option<StructuredBody> {
    let bytes = body.as_bytes();
    let mut out = Collector::default();
    let (mut pairs, mut flags) = (0usize, 0usize);
    let mut i = 0;
    loop {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let start = i;
        while bytes.get(i).copied().is_some_and(is_key_byte) {
            i += 1;
        }
        if i == start {
            return None;
        }
        // Key bytes are ASCII, so these are char boundaries.
        let key = &body[start..i];
        match bytes.get(i) {
            Some(b'=') => i += 1,
            Some(b) if !b.is_ascii_whitespace() => return None,
            _ => {
                if pairs == 0 {
                    return None;
                }
                flags += 1;
                let key = out.key(key);
                out.insert(key, "true", true);
                continue;
            }
        }
        let key = out.key(key);
        if bytes.get(i) == Some(&b'"') {
            let (value, end) = unquote(body, i + 1)?;
            if bytes.get(end).is_some_and(|b| !b.is_ascii_whitespace()) {
                return None;
            }
            out.truncated |= value.cut;
            out.insert(key, &value.text, true);
            i = end;
        } else {
            let start = i;
            while let Some(&b) = bytes.get(i).filter(|b| !b.is_ascii_whitespace()) {
                if b == b'"' {
                    return None;
                }
                i += 1;
            }
            out.insert(key, &body[start..i], true);
        }
        pairs += 1;
    }
    (pairs >= 2 && flags < pairs).then(|| out.finish(BodyFormat::Logfmt))
}

/// Reads a quoted logfmt value whose text starts at byte `start` (just after the opening
/// quote). Returns the unescaped text, kept up to [`MAX_MESSAGE_BYTES`], and the byte just
/// after the closing quote; `None` when the quote is never closed. Escapes: `\"`, `\\`, `\n`,
/// `\r`, `\t`, `\uXXXX` (surrogate pairs joined, lone surrogates U+FFFD); any other
/// backslash is kept as written.
fn unquote(body: &str, start: usize) -> Option<(Bounded, usize)> {
    let mut text = Bounded::new(MAX_MESSAGE_BYTES);
    let mut chars = body[start..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((text, start + i + 1)),
            '\\' => match chars.next()?.1 {
                '"' => text.push('"'),
                '\\' => text.push('\\'),
                'n' => text.push('\n'),
                'r' => text.push('\r'),
                't' => text.push('\t'),
                'u' => match hex4(&mut chars) {
                    Some(unit) => text.push(unicode_escape(unit, &mut chars)),
                    None => text.push_str("\\u"),
                },
                other => {
                    text.push('\\');
                    text.push(other);
                }
            },
            c => text.push(c),
        }
    }
    None
}

/// Four hex digits from `chars`, consumed only when all four are there.
fn hex4(chars: &mut std::str::CharIndices) -> Option<u16> {
    let mut look = chars.clone();
    let mut unit = 0u16;
    for _ in 0..4 {
        let digit = look.next()?.1.to_digit(16)?;
        unit = unit << 4 | digit as u16;
    }
    *chars = look;
    Some(unit)
}

/// The char of a `\uXXXX` escape, joining a high surrogate with a following `\uXXXX` low one.
fn unicode_escape(unit: u16, chars: &mut std::str::CharIndices) -> char {
    if (0xD800..0xDC00).contains(&unit) {
        let mut look = chars.clone();
        if look.next().map(|(_, c)| c) == Some('\\') && look.next().map(|(_, c)| c) == Some('u') {
            if let Some(low @ 0xDC00..=0xDFFF) = hex4(&mut look) {
                *chars = look;
                let code = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                return char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
            }
        }
    }
    char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

#[cfg(test)]
mod tests;
