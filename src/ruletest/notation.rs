//! The `promtool test rules` input notation: series selectors and expanding value sequences.
//!
//! Mirrors promtool's series-description lexer and grammar (`promql/parser/lex.go`,
//! `generated_parser.y`, `parse.go`, `util/strutil/quote.go` in prometheus/prometheus) so a
//! test file means here what it means to promtool, down to how `a+bxn` rounds.

use std::collections::BTreeMap;
use std::fmt;

/// Prometheus' staleness marker (`value.StaleNaN`), which `stale` loads as.
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
/// Go's `math.NaN()`, which `strconv.ParseFloat("NaN")` returns.
const GO_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;
/// Most samples one value string may expand to: promtool has no limit and would exhaust memory.
pub const MAX_SAMPLES: usize = 1 << 22;

/// A parsed series selector `name{label="value", ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSelector {
    /// The metric name, from the identifier or else from a `__name__` label.
    pub name: String,
    /// The other labels; empty values are dropped, as Prometheus treats them as absent.
    pub labels: BTreeMap<String, String>,
}

/// One expanded sample slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// A float sample.
    Value(f64),
    /// `_`: no sample at this step, as for a missed scrape.
    Missing,
    /// `stale`: a staleness marker, which ends the series for instant queries.
    Stale,
}

/// Error with a human message that says what was wrong and where (the offending token).
#[derive(Debug, Clone, PartialEq)]
pub struct NotationError(pub String);

impl fmt::Display for NotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotationError {}

/// Whitespace as promtool's lexer sees it (`isSpace`); other Unicode spaces are errors there.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// `isAlpha` in promtool's lexer: ASCII letters and `_`.
fn is_alpha(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// Words promtool's lexer turns into tokens that its grammar refuses as a metric name.
fn is_reserved(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    let keyword = matches!(w.as_str(), "atan2" | "bool" | "group_left" | "group_right");
    keyword || matches!(w.as_str(), "ignoring" | "on" | "inf" | "nan")
}

/// A char cursor over the series text, so errors can quote what is left.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }
    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.pos += c.len_utf8();
        }
        hit
    }
    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.next();
        }
        &self.s[start..self.pos]
    }
    fn skip_spaces(&mut self) {
        self.take_while(is_space);
    }
}

/// Parses an `input_series` `series:` string the way promtool's `ParseSeriesDesc` does.
pub fn parse_series(text: &str) -> Result<SeriesSelector, NotationError> {
    let s = text.trim_start().trim_end_matches(is_space);
    let fail = |msg: String| NotationError(format!("series {s:?}: {msg}"));
    if s.contains(['\n', '\r']) {
        return Err(fail("has a line break; promtool reads one line".into()));
    }
    let mut cur = Cursor { s, pos: 0 };
    let word = cur.take_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if word.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(fail(format!("metric name {word:?} starts with a digit")));
    }
    if is_reserved(word) {
        return Err(fail(format!("metric name {word:?} is a PromQL keyword")));
    }
    let mut labels = BTreeMap::new();
    if cur.eat('{') {
        parse_label_set(&mut cur, &mut labels).map_err(fail)?;
    } else if !word.is_empty() && cur.rest().trim_start_matches(is_space).starts_with('{') {
        return Err(fail(format!("space between metric name {word:?} and '{{'")));
    }
    if !cur.rest().is_empty() {
        return Err(fail(format!(
            "unexpected {:?}; want name{{labels}}",
            cur.rest()
        )));
    }
    let from_label = labels.remove("__name__");
    let name = match (word, from_label) {
        ("", Some(n)) => n,
        (w, _) => w.to_string(),
    };
    if name.is_empty() {
        return Err(fail("no metric name: give one or a __name__ label".into()));
    }
    labels.retain(|_, v: &mut String| !v.is_empty());
    Ok(SeriesSelector { name, labels })
}

/// Parses the inside of `{...}`; the opening brace is already consumed.
fn parse_label_set(
    cur: &mut Cursor<'_>,
    labels: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    loop {
        // Reached first, after a comma (so a trailing comma is allowed), and after each label.
        cur.skip_spaces();
        if cur.eat('}') {
            return Ok(());
        }
        if !cur.peek().is_some_and(is_alpha) {
            return Err(format!("expected a label name at {:?}", cur.rest()));
        }
        let name = cur.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
        cur.skip_spaces();
        let rest = cur.rest();
        if let Some(op @ ("=~" | "!=" | "!~")) = rest.get(..2) {
            return Err(format!(
                "matcher {op:?} on label {name:?}: only '=' is allowed"
            ));
        }
        if !cur.eat('=') {
            return Err(format!("expected '=' after label {name:?}, found {rest:?}"));
        }
        cur.skip_spaces();
        let value = parse_quoted(cur).map_err(|e| format!("label {name:?}: {e}"))?;
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("duplicate label {name:?}"));
        }
        cur.skip_spaces();
        if !cur.rest().starts_with('}') && !cur.eat(',') {
            return Err(format!("expected ',' or '}}' at {:?}", cur.rest()));
        }
    }
}

/// Reads `n` digits of `radix`, as an escape sequence's value.
fn read_digits(cur: &mut Cursor<'_>, n: usize, radix: u32) -> Option<u32> {
    (0..n).try_fold(0u32, |v, _| Some(v * radix + cur.next()?.to_digit(radix)?))
}

/// Reads a `"`, `'` or backtick string with PromQL escapes (`strutil.Unquote`).
fn parse_quoted(cur: &mut Cursor<'_>) -> Result<String, String> {
    let Some(quote @ ('"' | '\'' | '`')) = cur.peek() else {
        return Err(format!("expected a quoted value, found {:?}", cur.rest()));
    };
    let start = cur.pos;
    cur.next();
    let mut out = Vec::new();
    let mut buf = [0u8; 4];
    loop {
        let unterminated = || format!("unterminated string {:?}", &cur.s[start..]);
        let c = cur.next().ok_or_else(unterminated)?;
        let byte = match c {
            _ if c == quote => break,
            '\u{FFFD}' => return Err("invalid UTF-8 rune in string".into()),
            '\\' if quote != '`' => match cur.next() {
                Some(e @ ('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\')) => {
                    b"\x07\x08\x0c\n\r\t\x0b\\"["abfnrtv\\".find(e).unwrap_or(7)]
                }
                Some(e) if e == quote => e as u8,
                Some(e @ '0'..='7') => {
                    let v = read_digits(cur, 2, 8).map(|low| (e as u32 - '0' as u32) * 64 + low);
                    u8::try_from(v.unwrap_or(256)).map_err(|_| "bad octal escape")?
                }
                Some('x') => read_digits(cur, 2, 16).ok_or("bad \\x escape")? as u8,
                Some(e @ ('u' | 'U')) => {
                    let v = read_digits(cur, if e == 'u' { 4 } else { 8 }, 16);
                    let ch = v.and_then(char::from_u32).ok_or("bad unicode escape")?;
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
                Some(e) => return Err(format!("unknown escape sequence \\{e}")),
                None => return Err("escape sequence not terminated".into()),
            },
            _ => {
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
        };
        out.push(byte);
    }
    String::from_utf8(out).map_err(|_| "string escapes do not form valid UTF-8".into())
}

/// A token of one value item, as promtool's `lexValueSequence` emits them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    Blank,
    Times,
    Plus,
    Minus,
    Num(&'a str),
    Word(&'a str),
}

/// End of the number token at `start`. Its extent and the next-char rule follow promtool's
/// `scanNumber` (series mode: no hex, so `0x5` is `0` repeated); `go_number` judges the rest.
fn scan_number(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while let Some(&c) = b.get(i) {
        let exp_sign = i > start && b"+-".contains(&c) && b"eE".contains(&b[i - 1]);
        if !(c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'e' | b'E') || exp_sign) {
            break;
        }
        i += 1;
    }
    match b.get(i) {
        Some(&c) if c != b'x' && c.is_ascii_alphanumeric() => None,
        _ => Some(i),
    }
}

/// Splits one whitespace-free value item into tokens.
fn lex_item(item: &str) -> Result<Vec<Tok<'_>>, String> {
    let b = item.as_bytes();
    let (mut i, mut toks) = (0, Vec::new());
    while i < b.len() {
        let start = i;
        i += 1;
        toks.push(match b[start] {
            b'+' => Tok::Plus,
            b'-' => Tok::Minus,
            b'x' => Tok::Times,
            b'_' => Tok::Blank,
            b'{' if b.get(i) == Some(&b'{') => {
                return Err("native histograms are not supported ({{...}} notation)".into())
            }
            c if c.is_ascii_digit() || (c == b'.' && b.get(i).is_some_and(u8::is_ascii_digit)) => {
                i = scan_number(b, start)
                    .ok_or_else(|| format!("bad number syntax at {:?}", &item[start..]))?;
                Tok::Num(&item[start..i])
            }
            c if c.is_ascii_alphabetic() => {
                let len = item[i..].find(|c: char| !c.is_ascii_alphanumeric() && !":_".contains(c));
                i = len.map_or(b.len(), |n| i + n);
                let w = &item[start..i];
                match w.to_ascii_lowercase().as_str() {
                    "inf" | "nan" => Tok::Num(w),
                    _ => Tok::Word(w),
                }
            }
            _ => {
                let c = item[start..].chars().next().unwrap_or_default();
                return Err(format!("unexpected character {c:?}"));
            }
        });
    }
    Ok(toks)
}

/// Go's `underscoreOK`: underscores only between digits.
fn underscore_ok(s: &str) -> bool {
    let mut saw = b'^';
    for c in s.bytes() {
        saw = match c {
            b'0'..=b'9' => b'0',
            b'_' if saw != b'0' => return false,
            b'_' => b'_',
            _ if saw == b'_' => return false,
            _ => b'!',
        };
    }
    saw != b'_'
}

/// promtool's `number`: `strconv.ParseInt(s, 0, 64)` (so `010` is octal), else `ParseFloat`.
fn go_number(s: &str) -> Result<f64, String> {
    if !underscore_ok(s) {
        return Err(format!("error parsing number {s:?}"));
    }
    let (digits, radix) = match s.strip_prefix('0') {
        Some(rest) if !rest.is_empty() => (rest, 8),
        _ => (s, 10),
    };
    let int = digits.chars().filter(|&c| c != '_').try_fold(0i64, |v, c| {
        v.checked_mul(i64::from(radix))?
            .checked_add(i64::from(c.to_digit(radix)?))
    });
    if let Some(v) = int {
        return Ok(v as f64);
    }
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    let v: f64 = clean
        .parse()
        .map_err(|_| format!("error parsing number {s:?}"))?;
    if v.is_infinite() && !clean.eq_ignore_ascii_case("inf") {
        return Err(format!("number {s:?} is out of range"));
    }
    Ok(if v.is_nan() {
        f64::from_bits(GO_NAN_BITS)
    } else {
        v
    })
}

/// A repetition count: `strconv.ParseUint(s, 10, 64)`.
fn count(s: &str) -> Result<u64, String> {
    match s.parse() {
        Ok(n) if s.bytes().all(|c| c.is_ascii_digit()) => Ok(n),
        _ => Err(format!("invalid repetition count {s:?}")),
    }
}

/// Names a loaded value: only the exact `StaleNaN` bits are a staleness marker.
fn classify(v: f64) -> Sample {
    if v.to_bits() == STALE_NAN_BITS {
        Sample::Stale
    } else {
        Sample::Value(v)
    }
}

/// Expands one item onto `out`, following promtool's `series_item` rule.
fn expand_item(item: &str, out: &mut Vec<Sample>) -> Result<(), String> {
    let toks = lex_item(item)?;
    let room = |n: u64| {
        let fits = usize::try_from(n).is_ok_and(|n| n <= MAX_SAMPLES - out.len());
        fits.then_some(n)
            .ok_or_else(|| format!("expands past {MAX_SAMPLES} samples"))
    };
    if let [Tok::Blank, rest @ ..] = toks.as_slice() {
        let n = match rest {
            [] => 1,
            [Tok::Times, Tok::Num(n)] => room(count(n)?)?,
            _ => return Err("'_' takes only an 'x<count>' suffix".into()),
        };
        out.extend((0..n).map(|_| Sample::Missing));
        return Ok(());
    }
    let (start, rest) = match toks.as_slice() {
        [Tok::Word("stale"), rest @ ..] => (f64::from_bits(STALE_NAN_BITS), rest),
        [Tok::Word(w), ..] => return Err(format!("unexpected {w:?}, expected a number or stale")),
        [Tok::Num(v), rest @ ..] | [Tok::Plus, Tok::Num(v), rest @ ..] => (go_number(v)?, rest),
        [Tok::Minus, Tok::Num(v), rest @ ..] => (-go_number(v)?, rest),
        _ => return Err("expected a number, stale or _".into()),
    };
    let (step, n) = match rest {
        [] => (0.0, 0),
        [Tok::Times, Tok::Num(n)] => (0.0, count(n)?),
        [Tok::Plus, Tok::Num(b), Tok::Times, Tok::Num(n)] => (go_number(b)?, count(n)?),
        [Tok::Minus, Tok::Num(b), Tok::Times, Tok::Num(n)] => (-go_number(b)?, count(n)?),
        _ => return Err("expected 'x<count>' or '+<step>x<count>' after the value".into()),
    };
    room(n.saturating_add(1))?;
    // promtool accumulates `a += b` per step rather than computing `a + k*b`.
    let mut acc = start;
    for _ in 0..=n {
        out.push(classify(acc));
        acc += step;
    }
    Ok(())
}

/// Expands an `input_series` `values:` string the way promtool's series grammar does.
pub fn expand_values(text: &str) -> Result<Vec<Sample>, NotationError> {
    let body = text.trim_start_matches(is_space).trim_end();
    if body.contains(['\n', '\r']) {
        let msg = format!("values {body:?} span lines; promtool reads one line per series");
        return Err(NotationError(msg));
    }
    let mut out = Vec::new();
    for (i, item) in body.split(is_space).filter(|s| !s.is_empty()).enumerate() {
        expand_item(item, &mut out)
            .map_err(|e| NotationError(format!("values {body:?}: item {} {item:?}: {e}", i + 1)))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Sample::{Missing as M, Stale as S, Value as V};

    fn vals(text: &str) -> Vec<Sample> {
        expand_values(text).unwrap_or_else(|e| panic!("{e}"))
    }
    fn nums(xs: &[f64]) -> Vec<Sample> {
        xs.iter().map(|&x| V(x)).collect()
    }

    #[test]
    fn documented_examples() {
        assert_eq!(vals("-2+4x3"), nums(&[-2.0, 2.0, 6.0, 10.0]));
        assert_eq!(vals(" 1-2x4"), nums(&[1.0, -1.0, -3.0, -5.0, -7.0]));
        assert_eq!(vals(" 1x4"), nums(&[1.0; 5]));
        assert_eq!(vals(" 1 _x3 stale"), vec![V(1.0), M, M, M, S]);
        let mut want = nums(&[0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
        want.extend([M, S, V(1.0), V(1.0), V(1.0), V(1.0)]);
        assert_eq!(vals("0+10x5 _ stale 1x3"), want);
    }

    #[test]
    fn numbers_and_specials() {
        let want = nums(&[1e3, -2.5, 0.5, 5.0, 3.0, 1000.0, 8.0, 8.0, 0.0, 0.0, 0.0]);
        assert_eq!(vals("1e3 -2.5 .5 5. +3 1_000 010 08 0x2"), want);
        let inf = f64::INFINITY;
        assert_eq!(vals("+Inf -Inf inf"), nums(&[inf, -inf, inf]));
        assert!(matches!(vals("NaN")[..], [V(v)] if v.to_bits() == GO_NAN_BITS));
        assert_eq!(vals("_x0 1x0 \t"), vec![V(1.0)]);
        assert_eq!(vals(""), vec![]);
        assert!(matches!(vals("stale+1x2")[..], [S, V(a), V(b)] if a.is_nan() && b.is_nan()));
        // promtool adds the step each time rather than computing a + k*b (1.2, 1.3 here).
        let want = nums(&[1.0, 1.1, 1.2000000000000002, 1.3000000000000003]);
        assert_eq!(vals("1+0.1x3"), want);
        assert_eq!(
            vals("0.1+0.1x3"),
            nums(&[0.1, 0.2, 0.30000000000000004, 0.4])
        );
    }

    #[test]
    fn value_errors_name_the_item() {
        for (text, needle) in [
            ("1 2 foo", "item 3 \"foo\""),
            ("1x-3", "expected 'x<count>'"),
            ("1x2.5", "invalid repetition count \"2.5\""),
            ("1+2", "expected 'x<count>'"),
            ("stalex3", "\"stalex3\""),
            ("0x1F", "bad number syntax at \"1F\""),
            ("1m", "bad number syntax"),
            ("__", "'_' takes only"),
            ("1_", "error parsing number"),
            ("1e400", "out of range"),
            ("{{schema:0 sum:1}}", "native histograms are not supported"),
            ("1 2\n3", "span lines"),
            ("1x99999999999", "expands past"),
            ("1 @", "unexpected character '@'"),
        ] {
            let e = expand_values(text).expect_err(text).0;
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn series_forms() {
        let s = parse_series(r#" up{job="api", instance='h:1', path=`a\b`, e="", } "#).unwrap();
        assert_eq!(s.name, "up");
        let want = [("instance", "h:1"), ("job", "api"), ("path", "a\\b")];
        let want: BTreeMap<_, _> = want.map(|(k, v)| (k.to_string(), v.to_string())).into();
        assert_eq!(s.labels, want);
        assert_eq!(parse_series("up").unwrap().labels.len(), 0);
        assert_eq!(parse_series("ns:rate5m{ }").unwrap().name, "ns:rate5m");
        let s = parse_series(r#"{__name__="x", a="q\"\\\n\t\u00e9\x41\101"}"#).unwrap();
        let got = (s.name.as_str(), s.labels["a"].as_str());
        assert_eq!(got, ("x", "q\"\\\n\té\x41A"));
        assert_eq!(parse_series(r#"sum{__name__="y"}"#).unwrap().name, "sum");
    }

    #[test]
    fn series_errors() {
        for (text, needle) in [
            (r#"up{job=~"a"}"#, "matcher \"=~\" on label \"job\""),
            (r#"up{job!="a"}"#, "\"!=\""),
            (r#"up{a="1",a="2"}"#, "duplicate label \"a\""),
            (r#"{job="a"}"#, "no metric name"),
            ("{}", "no metric name"),
            (r#"up {a="b"}"#, "space between"),
            (r#"up{a="b" c="d"}"#, "expected ',' or '}'"),
            (r#"up{,}"#, "expected a label name"),
            (r#"up{a="b"#, "unterminated"),
            (r#"up{a="\q"}"#, "unknown escape"),
            (r#"up{a="\xff"}"#, "UTF-8"),
            (r#"up{a=b}"#, "expected a quoted value"),
            ("bool{}", "keyword"),
            ("1up", "digit"),
            ("up 1 2", "unexpected \" 1 2\""),
        ] {
            let e = parse_series(text).expect_err(text).0;
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
