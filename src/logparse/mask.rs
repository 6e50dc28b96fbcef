//! Splits one log message into literal text and variables.
//!
//! A message is cut into words at whitespace and each word into *units* at punctuation that
//! separates fields (`, ; : = | " ' [ ] ( ) { } # !`). A unit is a variable when it holds a digit
//! (numbers, ids, IPs, hex, sizes, `blk_-123`), is a path (`/var/lib/x`), or is one of the
//! values the Loghub labelling guidelines (Khan et al., ICSE 2022) treat as variables (`true`,
//! `false`, `null`, `root`, `admin`). Some values are kept whole although they contain a
//! separator: URLs (`hdfs://host:9000/x` keeps its scheme), clock times (`07:07:00`, `00:01`),
//! and colon-separated hex (MAC and IPv6 addresses). Whitespace runs become one space in the
//! template, so `a  b` and `a b` share a template.
//!
//! Hand-written rather than a regex set: it runs on every log line and one pass over the bytes
//! costs a fraction of what a dozen regexes would (see BENCHMARKS.md, template miner).

/// The placeholder a variable takes in a template.
pub const WILDCARD: &str = "<*>";

/// Only this much of a message is masked and mined (cut on a character boundary): what
/// identifies an event is at its start, and it bounds the miner's state per template.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// One unit of a message: a maximal run of non-separator characters inside a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    /// Byte range in the message.
    pub start: u32,
    pub end: u32,
    /// Byte range of the unit's text (or of its `<*>`) in the template.
    pub tpl_start: u32,
    pub tpl_end: u32,
    /// Masked as a variable.
    pub variable: bool,
    /// A literal that looks like a word (has a letter), so it may turn out to be a variable
    /// when many distinct values show up at its place (see `miner`).
    pub wordlike: bool,
    /// A word-like literal with a number in it (`ssh2`, `rdd_2_0`): a few values at its
    /// place are enough to call it a variable.
    pub numbered: bool,
}

/// A message cut into units, with its masked template. Reused between messages to save
/// allocations.
#[derive(Debug, Default, Clone)]
pub struct Masked {
    pub template: String,
    pub units: Vec<Unit>,
    words: Vec<(u32, u32)>,
    /// Per word: the byte classes present and the number of digits.
    word_info: Vec<(u8, u32)>,
}

const WS: u8 = 1;
const SEP: u8 = 2;
const DIGIT: u8 = 4;
const LETTER: u8 = 8;
const COLON: u8 = 16;
const SLASH: u8 = 32;

/// Byte classes, looked up once per byte (the masker's inner loops run on every log byte).
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => WS,
            // Separators between units inside a word.
            b':' => SEP | COLON,
            b'/' => SLASH,
            b',' | b';' | b'=' | b'|' | b'"' | b'\'' | b'[' | b']' | b'(' | b')' | b'{' | b'}'
            | b'#' | b'!' => SEP,
            b'0'..=b'9' => DIGIT,
            b'a'..=b'z' | b'A'..=b'Z' | 0x80..=0xff => LETTER,
            _ => 0,
        };
        b += 1;
    }
    table
};

fn is_separator(b: u8) -> bool {
    CLASS[b as usize] & SEP != 0
}

fn is_ascii_ws(b: u8) -> bool {
    CLASS[b as usize] == WS
}

/// Values the labelling guidelines treat as variables although they hold no digit.
fn is_known_value(unit: &str) -> bool {
    unit.len() <= 5
        && ["true", "false", "null", "root", "admin"]
            .iter()
            .any(|v| unit.eq_ignore_ascii_case(v))
}

impl Masked {
    /// Cuts `message` into units and builds its template.
    pub fn mask(&mut self, message: &str) {
        let mut cut = message.len().min(MAX_MESSAGE_BYTES);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        let message = &message[..cut];
        self.template.clear();
        self.units.clear();
        self.words.clear();
        self.word_info.clear();
        let bytes = message.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            while i < bytes.len() && is_ascii_ws(bytes[i]) {
                i += 1;
            }
            let start = i;
            let (mut flags, mut digits) = (0u8, 0u32);
            while i < bytes.len() {
                let class = CLASS[bytes[i] as usize];
                if class == WS {
                    break;
                }
                flags |= class;
                digits += u32::from(class == DIGIT);
                i += 1;
            }
            if start < i {
                self.words.push((start as u32, i as u32));
                self.word_info.push((flags, digits));
            }
        }
        let mut w = 0;
        while w < self.words.len() {
            if w > 0 {
                self.template.push(' ');
            }
            let text = |k: usize| {
                let (a, b) = self.words[k];
                &message[a as usize..b as usize]
            };
            // Values spelled over several words: dates, sizes and durations with their unit.
            let taken = date_words(&self.words[w..], message)
                .or_else(|| quantity_words(&self.words[w..], message));
            if let Some((taken, trailing)) = taken {
                let start = self.words[w].0 as usize;
                let end = self.words[w + taken - 1].1 as usize - trailing;
                self.unit(message, start, end, Some(true));
                self.literal(&message[end..end + trailing]);
                w += taken;
                continue;
            }
            let word = text(w);
            let (start, end) = (self.words[w].0 as usize, self.words[w].1 as usize);
            let (flags, digits) = self.word_info[w];
            if flags & (SEP | SLASH) == 0 {
                // One unit, classified from the counts taken while splitting. A user name
                // (`for user news`, `invalid user test9`) is a variable from its first line on.
                let after_user = w >= 2 && is_user_name_place(text(w - 2), text(w - 1));
                let variable = unit_is_variable(word, digits as usize) || after_user;
                self.push_unit(
                    word,
                    start,
                    end,
                    variable,
                    digits as usize,
                    flags & LETTER != 0,
                );
            } else if matches!(word, "()" | "[]" | "{}") {
                // An empty value in brackets is an empty parameter.
                self.literal(&word[..1]);
                self.unit(message, start + 1, start + 1, Some(true));
                self.literal(&word[1..]);
            } else {
                self.word(message, start, end, flags);
            }
            w += 1;
        }
    }

    fn word(&mut self, message: &str, start: usize, end: usize, flags: u8) {
        let word = &message[start..end];
        let has_colon = flags & COLON != 0;
        let has_slash = flags & SLASH != 0;
        if !has_colon && !has_slash {
            self.plain(message, start, end);
            return;
        }
        // `key=value`: the value is a word of its own (`since=2026-11-01T12:00:00Z`,
        // `url=https://x/y`, `path=/var/lib/x`).
        if let Some(eq) = word.find('=') {
            let key = &word[..eq];
            let is_key = !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if is_key && eq + 1 < word.len() {
                self.plain(message, start, start + eq + 1);
                let value = &word[eq + 1..];
                let flags = value.bytes().fold(0, |f, b| f | CLASS[b as usize]);
                self.word(message, start + eq + 1, end, flags);
                return;
            }
        }
        let scheme = if has_colon && has_slash {
            word.as_bytes().windows(3).position(|w| w == b"://")
        } else {
            None
        };
        if let Some(scheme_end) = scheme {
            // `scheme://rest`: the scheme stays, the rest is one variable (trailing closing
            // punctuation excluded).
            let scheme_start = word[..scheme_end]
                .char_indices()
                .rev()
                .find(|&(_, c)| !c.is_ascii_alphanumeric() && c != '+' && c != '-')
                .map_or(0, |(p, c)| p + c.len_utf8());
            if scheme_start < scheme_end {
                self.plain(message, start, start + scheme_start);
                self.template.push_str(&word[scheme_start..scheme_end + 3]);
                let rest = scheme_end + 3;
                let trimmed =
                    word[rest..].trim_end_matches([')', ']', '}', '>', ',', ';', '"', '\'', '.']);
                let rest_end = rest + trimmed.len();
                if rest < rest_end {
                    self.unit(message, start + rest, start + rest_end, Some(true));
                }
                self.literal(&word[rest_end..]);
                return;
            }
        }
        // A whole-value pattern inside brackets/quotes: clock time or colon-separated hex.
        let core_start = word
            .find(|c: char| !matches!(c, '(' | '[' | '{' | '<' | '"' | '\''))
            .unwrap_or(word.len());
        let core_end = word
            .rfind(|c: char| {
                !matches!(
                    c,
                    ')' | ']' | '}' | '>' | '"' | '\'' | ',' | ';' | '.' | ':'
                )
            })
            .map_or(core_start, |p| p + 1)
            .max(core_start);
        let core = &word[core_start..core_end];
        // A path with at least two levels is one value even with `:` or `=` in it
        // (`/v2/servers/detail?changes-since=2017-05-16`); `/10.0.0.1:50010` is an address
        // and a port.
        let is_path = core.starts_with('/') && core[1..].contains('/');
        let colon_value = has_colon
            && core.as_bytes().first().is_some_and(u8::is_ascii_hexdigit)
            && (is_clock_time(core) || is_colon_hex(core) || is_iso_timestamp(core));
        if is_path || colon_value {
            self.literal(&word[..core_start]);
            self.unit(message, start + core_start, start + core_end, Some(true));
            self.literal(&word[core_end..]);
            return;
        }
        self.plain(message, start, end);
    }

    /// Splits `message[start..end]` at separators. Variables joined by bare commas
    /// (`10.0.0.1,10.0.0.2`) are one list-valued variable.
    fn plain(&mut self, message: &str, start: usize, end: usize) {
        let bytes = message.as_bytes();
        let mut i = start;
        let mut after_variable = false;
        while i < end {
            if is_separator(bytes[i]) {
                let list = after_variable
                    && bytes[i] == b','
                    && i + 1 < end
                    && !is_separator(bytes[i + 1]);
                if list {
                    let unit_end = next_separator(bytes, i + 1, end);
                    let next = &message[i + 1..unit_end];
                    if unit_is_variable(next, next.bytes().filter(u8::is_ascii_digit).count()) {
                        let last = self.units.last_mut().expect("a variable came before");
                        last.end = unit_end as u32;
                        i = unit_end;
                        continue;
                    }
                }
                after_variable = false;
                self.template.push(bytes[i] as char);
                i += 1;
                continue;
            }
            let unit_start = i;
            let (mut digits, mut letters) = (0usize, false);
            while i < end {
                let class = CLASS[bytes[i] as usize];
                if class & SEP != 0 {
                    break;
                }
                digits += usize::from(class == DIGIT);
                letters |= class == LETTER;
                i += 1;
            }
            let text = &message[unit_start..i];
            let variable = unit_is_variable(text, digits);
            self.push_unit(text, unit_start, i, variable, digits, letters);
            after_variable = variable;
        }
    }

    fn literal(&mut self, text: &str) {
        self.template.push_str(text);
    }

    fn unit(&mut self, message: &str, start: usize, end: usize, variable: Option<bool>) {
        let text = &message[start..end];
        let (mut digits, mut letters) = (0usize, false);
        for b in text.bytes() {
            digits += usize::from(b.is_ascii_digit());
            letters |= b.is_ascii_alphabetic() || b >= 0x80;
        }
        let variable = variable.unwrap_or_else(|| unit_is_variable(text, digits));
        self.push_unit(text, start, end, variable, digits, letters);
    }

    fn push_unit(
        &mut self,
        text: &str,
        start: usize,
        end: usize,
        variable: bool,
        digits: usize,
        letters: bool,
    ) {
        let tpl_start = self.template.len() as u32;
        if variable {
            self.template.push_str(WILDCARD);
        } else {
            self.template.push_str(text);
        }
        self.units.push(Unit {
            start: start as u32,
            end: end as u32,
            tpl_start,
            tpl_end: self.template.len() as u32,
            variable,
            wordlike: !variable && letters,
            numbered: !variable && digits > 0,
        });
    }
}

fn next_separator(bytes: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && !is_separator(bytes[i]) {
        i += 1;
    }
    i
}

/// Digits make a variable, except in short names with a number (`ssh2`, `eth1`, `SOCKS5`,
/// `Thunderbird_A8`): those stay words, and become variables only if many values show up
/// at their place.
fn unit_is_variable(text: &str, digits: usize) -> bool {
    if digits > 0 {
        let name_with_number = digits <= 2
            && text.as_bytes()[0].is_ascii_alphabetic()
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            // One number (`jk2_init`, `eth1`); `rdd_2_0`, `broadcast_9_piece0` are ids.
            && digit_runs(text) == 1
            && !is_hex_number(text)
            // A numbered suffix after `_` is an instance (`broadcast_9`, `Thunderbird_A8`).
            && !text.rsplit_once('_').is_some_and(|(_, s)| s.bytes().any(|b| b.is_ascii_digit()));
        return !name_with_number;
    }
    (text.len() > 1 && text.starts_with('/'))
        || is_known_value(text)
        || is_host_name(text)
        || is_day_or_month(text)
}

/// `Mon`, `Dec`: checked cheaply first, since it runs on every word.
fn is_day_or_month(text: &str) -> bool {
    text.len() == 3
        && text.as_bytes()[0].is_ascii_uppercase()
        && (WEEKDAYS.contains(&text) || MONTHS.contains(&text))
}

/// `for user X`, `invalid user X`: X names a user (`user request`, `user unknown` do not).
fn is_user_name_place(before: &str, word: &str) -> bool {
    word.eq_ignore_ascii_case("user")
        && (before.eq_ignore_ascii_case("for") || before.eq_ignore_ascii_case("invalid"))
}

/// Top-level domains that mark a dotted lower-case word as a host name.
const TLDS: [&str; 24] = [
    "com", "net", "org", "edu", "gov", "mil", "int", "io", "co", "info", "biz", "local",
    "internal", "lan", "cn", "hk", "uk", "de", "fr", "jp", "ru", "in", "us", "eu",
];

/// `proxy.example.edu.hk`, `get.sogou.com`: lower-case labels ending in a known top-level
/// domain (Java packages and file names end otherwise: `org.apache.hadoop`, `conf.xml`).
fn is_host_name(text: &str) -> bool {
    let Some((rest, tld)) = text.rsplit_once('.') else {
        return false;
    };
    TLDS.contains(&tld)
        && !rest.is_empty()
        && rest.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

fn digit_runs(text: &str) -> usize {
    let b = text.as_bytes();
    (0..b.len())
        .filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()))
        .count()
}

fn is_hex_number(text: &str) -> bool {
    text.len() > 2 && (text.starts_with("0x") || text.starts_with("0X"))
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn trim_closing(word: &str) -> (&str, usize) {
    let core = word.trim_end_matches([')', ']', '}', ',', ';', '.', '"', '\'']);
    (core, word.len() - core.len())
}

/// `Fri Jun 17 07:07:00 2005`, `Jun 17 07:07:00`: (words taken, closing bytes left out).
fn date_words(words: &[(u32, u32)], message: &str) -> Option<(usize, usize)> {
    let text = |k: usize| words.get(k).map(|&(a, b)| &message[a as usize..b as usize]);
    let first = text(0)?;
    if first.len() != 3 || !first.as_bytes()[0].is_ascii_uppercase() {
        return None;
    }
    let mut k = 0;
    if text(0).is_some_and(|w| WEEKDAYS.contains(&w)) {
        k = 1;
    }
    if !text(k).is_some_and(|w| MONTHS.contains(&w)) {
        return None;
    }
    let day = text(k + 1)?;
    if !(day.len() <= 2 && day.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let (time, mut trailing) = trim_closing(text(k + 2)?);
    if !is_clock_time(time) {
        return None;
    }
    let mut taken = k + 3;
    if trailing == 0 {
        if let Some(year) = text(taken) {
            let (core, t) = trim_closing(year);
            if core.len() == 4 && core.bytes().all(|b| b.is_ascii_digit()) {
                taken += 1;
                trailing = t;
            }
        }
    }
    Some((taken, trailing))
}

fn is_number(word: &str) -> bool {
    if !word
        .as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'<' | b'>' | b'~'))
    {
        return false;
    }
    let w = word.trim_start_matches(['<', '>', '~']);
    !w.is_empty()
        && w.as_bytes()[0].is_ascii_digit()
        && w.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b',')
}

const SIZE_UNITS: [&str; 13] = [
    "B", "KB", "kB", "MB", "GB", "TB", "PB", "KiB", "MiB", "GiB", "TiB", "bytes", "Bytes",
];
const DURATION_UNITS: [&str; 10] = [
    "ns", "us", "µs", "ms", "s", "sec", "secs", "min", "mins", "h",
];

/// A number and its unit: `5.2 KB`, `120 bytes (0.1 KB)`, `<1 sec`, `900 ms`.
fn quantity_words(words: &[(u32, u32)], message: &str) -> Option<(usize, usize)> {
    let text = |k: usize| words.get(k).map(|&(a, b)| &message[a as usize..b as usize]);
    if !is_number(text(0)?) {
        return None;
    }
    let (unit, trailing) = trim_closing(text(1)?);
    if SIZE_UNITS.contains(&unit) {
        // `120 bytes (0.1 KB)`: the bracketed restatement belongs to the value.
        if trailing == 0 {
            if let (Some(n), Some(u)) = (text(2), text(3)) {
                let (u_core, u_trailing) = trim_closing(u);
                if n.starts_with('(')
                    && is_number(&n[1..])
                    && SIZE_UNITS.contains(&u_core)
                    && u[u_core.len()..].starts_with(')')
                {
                    return Some((4, u_trailing - 1));
                }
            }
        }
        return Some((2, trailing));
    }
    DURATION_UNITS.contains(&unit).then_some((2, trailing))
}

/// `07:07:00`, `00:01`, `22:32:34.846`.
fn is_clock_time(s: &str) -> bool {
    let mut parts = 0;
    let (main, frac) = match s.find(['.', ',']) {
        Some(p) => (&s[..p], Some(&s[p + 1..])),
        None => (s, None),
    };
    for part in main.split(':') {
        if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        parts += 1;
    }
    (2..=3).contains(&parts)
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// `2017-05-16T00:00:00.008Z`, `2026-11-01T12:00:00+02:00`: ISO 8601 date and time.
fn is_iso_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() >= 16
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't' | b'_')
        && s[11..].bytes().all(|c| {
            c.is_ascii_digit() || matches!(c, b':' | b'.' | b',' | b'+' | b'-' | b'Z' | b'z')
        })
}

/// MAC addresses and IPv6: hex groups joined by at least two colons, with a digit somewhere.
fn is_colon_hex(s: &str) -> bool {
    s.bytes().filter(|&b| b == b':').count() >= 2
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        && !s.contains(":::")
}

#[cfg(test)]
#[path = "mask_tests.rs"]
mod tests;
