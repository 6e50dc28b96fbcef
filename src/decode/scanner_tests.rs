use std::borrow::Cow;

use proptest::prelude::*;

use super::{parse_u64, run_end, run_end_swar, Scanner};

fn str_of(text: &str) -> Option<&str> {
    let mut s = Scanner::new(text);
    let value = s.str()?;
    s.end()?;
    Some(value)
}

fn int_of<T: TryFrom<i64> + TryFrom<u64>>(text: &str) -> Option<T> {
    let mut s = Scanner::new(text);
    let value = s.int::<T>()?;
    s.end()?;
    Some(value)
}

#[test]
fn strings_without_escapes_are_borrowed_and_others_give_up() {
    assert_eq!(str_of(r#"  "a b""#), Some("a b"));
    assert_eq!(str_of(r#""""#), Some(""));
    assert_eq!(
        str_of("\"caf\u{e9} \u{1F600}\""),
        Some("caf\u{e9} \u{1F600}")
    );
    for text in [r#""a\"b""#, "\"a\tb\"", "\"a\u{1}\"", r#""abc"#, "abc"] {
        assert_eq!(str_of(text), None, "{text}");
    }
}

fn string_of(text: &str) -> Option<Cow<'_, str>> {
    let mut s = Scanner::new(text);
    let value = s.string()?;
    s.end()?;
    Some(value)
}

#[test]
fn escapes_are_read_as_serde_json_reads_them_and_bad_ones_give_up() {
    assert_eq!(string_of(r#""plain""#), Some(Cow::Borrowed("plain")));
    for (text, value) in [
        (r#""a\"b\\c\/d""#, "a\"b\\c/d"),
        (r#""\b\f\n\r\t""#, "\u{8}\u{c}\n\r\t"),
        (r#""caf\u00E9 \ud83d\ude00!""#, "caf\u{e9} \u{1F600}!"),
        (r#""\u0000""#, "\0"),
    ] {
        assert_eq!(string_of(text).as_deref(), Some(value), "{text}");
        assert_eq!(
            serde_json::from_str::<String>(text).unwrap(),
            value,
            "{text}"
        );
    }
    for text in [
        r#""\ud800""#,
        r#""\ud800x""#,
        r#""\ud800\u0041""#,
        r#""\udc00""#,
        r#""\u12g4""#,
        r#""\u12""#,
        r#""\x""#,
        r#""a\""#,
    ] {
        assert_eq!(string_of(text), None, "{text}");
    }
}

proptest! {
    /// Any string, written with any of its characters as `\u` escapes (surrogate pairs
    /// beyond the basic plane) and the rest as serde_json writes them, reads back as
    /// itself.
    #[test]
    fn any_string_escaped_any_way_reads_back(
        chars in proptest::collection::vec((any::<char>(), any::<bool>()), 0..24)
    ) {
        let value: String = chars.iter().map(|(c, _)| c).collect();
        let mut text = String::from("\"");
        for (c, as_unicode) in &chars {
            if *as_unicode {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    text.push_str(&format!("\\u{unit:04x}"));
                }
            } else {
                let json = serde_json::to_string(&c.to_string()).unwrap();
                text.push_str(&json[1..json.len() - 1]);
            }
        }
        text.push('"');
        let read = string_of(&text);
        prop_assert_eq!(read.as_deref(), Some(value.as_str()), "{}", text);
    }
}

#[test]
fn integers_are_read_as_serde_reads_them_into_the_type() {
    assert_eq!(int_of::<i32>("0"), Some(0));
    assert_eq!(int_of::<i32>(" -17"), Some(-17));
    assert_eq!(int_of::<i32>("2147483647"), Some(i32::MAX));
    assert_eq!(int_of::<i32>("-2147483648"), Some(i32::MIN));
    assert_eq!(int_of::<u64>("18446744073709551615"), Some(u64::MAX));
    assert_eq!(int_of::<i64>("-9223372036854775808"), Some(i64::MIN));
    for text in [
        "2147483648",
        "-2147483649",
        "01",
        "-",
        "- 1",
        "1.0",
        "1e3",
        "1E3",
        "+1",
        "",
        "\"1\"",
    ] {
        assert_eq!(int_of::<i32>(text), None, "{text}");
    }
    assert_eq!(int_of::<u32>("-1"), None);
    assert_eq!(int_of::<u64>("18446744073709551616"), None);
    assert_eq!(int_of::<i64>("9223372036854775808"), None);
}

#[test]
fn objects_and_arrays_read_members_in_order_with_any_whitespace() {
    let mut s = Scanner::new(" { \"a\" : [ 1 , 2 ] ,\n\"b\":{}, \"c\":[] , \"d\" : true }\n");
    let mut seen = Vec::new();
    let read = s.object(|s, key| {
        match key {
            "a" => s.array(|s| {
                seen.push(s.int::<i32>()?);
                Some(())
            })?,
            "b" => s.object(|_, _| None)?,
            "c" => s.array(|_| None)?,
            _ => seen.push(i32::from(s.bool()?)),
        }
        Some(())
    });
    assert_eq!(read, Some(()));
    assert_eq!(s.end(), Some(()));
    assert_eq!(seen, [1, 2, 1]);
    for text in [
        r#"{"a":1,}"#,
        r#"{"a" 1}"#,
        r#"{"a":1"#,
        r#"[1,]"#,
        r#"[1 2]"#,
        "{,}",
    ] {
        let mut s = Scanner::new(text);
        let read = if text.starts_with('{') {
            s.object(|s, _| s.int::<i32>().map(drop))
        } else {
            s.array(|s| s.int::<i32>().map(drop))
        };
        assert_eq!(read, None, "{text}");
    }
}

#[test]
fn bools_numbers_and_the_end() {
    assert_eq!(Scanner::new(" false").bool(), Some(false));
    assert_eq!(Scanner::new("nul").bool(), None);
    assert_eq!(Scanner::new("-2.5e-3,").number_text(), Some("-2.5e-3"));
    assert_eq!(Scanner::new(",").number_text(), None);
    assert_eq!(Scanner::new(" \n").end(), Some(()));
    assert_eq!(Scanner::new(" x").end(), None);
}

/// Any ASCII character in place of each digit of a 19-digit time (and of an 8-digit one,
/// one whole chunk) reads as `str::parse` reads it: the eight-digit step rejects what is
/// not a digit, including the bytes next to the digits (`/`, `:`).
#[test]
fn parse_u64_rejects_every_non_digit_in_each_place() {
    for base in ["1793534400123456789", "98765432"] {
        for at in 0..base.len() {
            for c in (0u8..0x80).map(char::from) {
                let mut text = base.to_string();
                text.replace_range(at..at + 1, c.encode_utf8(&mut [0; 4]));
                assert_eq!(parse_u64(&text), text.parse::<u64>().ok(), "{text:?}");
            }
        }
    }
}

/// Each stopping byte at each place of a run over three chunks, after bytes on both sides
/// of the control range's edge (0x20, 0x7f, 0x80, 0xff): found where it is, by both searches.
#[test]
fn run_end_stops_at_each_stopping_byte_at_each_place() {
    let stops = (0u8..0x20).chain([b'"', b'\\']);
    for stop in stops {
        for filler in [0x20u8, b'a', 0x7f, 0x80, 0xff] {
            for at in 0..48 {
                let mut bytes = vec![filler; 50];
                bytes[at] = stop;
                for from in 0..=at.min(3) {
                    assert_eq!(
                        run_end(&bytes, from),
                        Some(at),
                        "{stop:#x} at {at} from {from}"
                    );
                    assert_eq!(run_end_swar(&bytes, from), Some(at));
                }
            }
            assert_eq!(run_end(&[filler; 50], 0), None);
        }
    }
}

proptest! {
    /// The chunked searches (SSE2 where there is one, and the eight-byte loop on its own)
    /// find what a byte loop finds, wherever the stopping byte is and whatever surrounds
    /// it: runs from none to several chunks long, stops of each kind, none at all.
    #[test]
    fn run_end_finds_the_first_quote_backslash_or_control_byte(
        bytes in proptest::collection::vec(
            prop_oneof![
                60 => 0x20u8..=0xff,
                1 => Just(b'"'),
                1 => Just(b'\\'),
                1 => 0u8..0x20,
            ],
            0..100,
        ),
        from in 0usize..100,
    ) {
        let from = from.min(bytes.len());
        let expected = bytes[from..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .map(|p| from + p);
        prop_assert_eq!(run_end(&bytes, from), expected);
        prop_assert_eq!(run_end_swar(&bytes, from), expected);
    }

    /// As `str::parse::<u64>`, for any text of digits, signs and letters.
    #[test]
    fn parse_u64_is_str_parse(text in "[0-9]{0,22}|[+0-9a]{0,5}|[0-9]{0,9}[/:+a ][0-9]{0,12}") {
        prop_assert_eq!(parse_u64(&text), text.parse::<u64>().ok());
    }
}
