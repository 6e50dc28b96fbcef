use super::*;

fn parse(body: &str) -> StructuredBody {
    parse_body(body).unwrap_or_else(|| panic!("not structured: {body:?}"))
}

fn fields(body: &StructuredBody) -> Vec<(&str, &str)> {
    body.fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

// JSON

#[test]
fn json_object_flattens_nested_keys() {
    let b = parse(
        r#"{"level":"error","msg":"upstream timeout","status":504,"latency_ms":1234.5,"req":{"id":"abc","path":"/v1/chat"}}"#,
    );
    assert_eq!(b.format, BodyFormat::Json);
    assert_eq!(
        fields(&b),
        [
            ("level", "error"),
            ("msg", "upstream timeout"),
            ("status", "504"),
            ("latency_ms", "1234.5"),
            ("req.id", "abc"),
            ("req.path", "/v1/chat"),
        ]
    );
    assert_eq!(b.message.as_deref(), Some("upstream timeout"));
    assert_eq!(b.level.as_deref(), Some("error"));
    assert!(!b.truncated);
    assert_eq!(b.get("req.path"), Some("/v1/chat"));
    assert_eq!(b.get("req"), None);
}

#[test]
fn json_fields_keep_document_order_not_sorted_order() {
    let b = parse(r#"{"z":1,"a":2,"m":{"y":3,"b":4},"c":5}"#);
    assert_eq!(
        fields(&b),
        [
            ("z", "1"),
            ("a", "2"),
            ("m.y", "3"),
            ("m.b", "4"),
            ("c", "5")
        ]
    );
}

#[test]
fn json_scalars_render_as_text() {
    let b = parse(
        r#"{"u":504,"i":-3,"f":1234.5,"e":1e3,"max":18446744073709551615,"t":true,"fa":false,"n":null,"s":"x"}"#,
    );
    assert_eq!(
        fields(&b),
        [
            ("u", "504"),
            ("i", "-3"),
            ("f", "1234.5"),
            ("e", "1000.0"),
            ("max", "18446744073709551615"),
            ("t", "true"),
            ("fa", "false"),
            ("n", ""),
            ("s", "x"),
        ]
    );
}

#[test]
fn json_arrays_and_empty_objects_render_as_compact_json() {
    let b = parse(
        r#"{"tags": ["a", "b\"c\n", 1, -2.5, null, true, {"z": 1, "a": [2, {}]}], "none": [], "obj": {}, "nested": [[1, 2], []]}"#,
    );
    assert_eq!(
        fields(&b),
        [
            (
                "tags",
                r#"["a","b\"c\n",1,-2.5,null,true,{"z":1,"a":[2,{}]}]"#
            ),
            ("none", "[]"),
            ("obj", "{}"),
            ("nested", "[[1,2],[]]"),
        ]
    );
}

#[test]
fn json_compact_rendering_escapes_control_chars() {
    let b = parse(r#"{"a":["\u0001\t\r\b\f\\/"]}"#);
    assert_eq!(b.get("a"), Some(r#"["\u0001\t\r\b\f\\/"]"#));
}

#[test]
fn json_unicode_escapes_are_decoded() {
    let b = parse(r#"{"msg":"caf\u00e9 \ud83d\ude80 日本","k\u00e9y":"✓","raw":"ünï"}"#);
    assert_eq!(
        fields(&b),
        [("msg", "café 🚀 日本"), ("kéy", "✓"), ("raw", "ünï")]
    );
    assert_eq!(b.message.as_deref(), Some("café 🚀 日本"));
}

#[test]
fn json_deeper_than_max_depth_renders_as_compact_json() {
    let b = parse(r#"{"a":{"b":{"c":{"d":{"e":1,"f":"x"},"d2":5,"arr":[{"k":1}]}}}}"#);
    assert_eq!(
        fields(&b),
        [
            ("a.b.c.d", r#"{"e":1,"f":"x"}"#),
            ("a.b.c.d2", "5"),
            ("a.b.c.arr", r#"[{"k":1}]"#),
        ]
    );
    let b = parse(r#"{"a":{"b":{"c":{"d":"leaf"}}}}"#);
    assert_eq!(fields(&b), [("a.b.c.d", "leaf")]);
}

#[test]
fn json_duplicate_keys_last_wins_at_first_position() {
    let b = parse(r#"{"a":1,"b":2,"a":3}"#);
    assert_eq!(fields(&b), [("a", "3"), ("b", "2")]);
    // Keys that collide only once flattened, too.
    let b = parse(r#"{"a.b":1,"c":0,"a":{"b":2}}"#);
    assert_eq!(fields(&b), [("a.b", "2"), ("c", "0")]);
    let b = parse(r#"{"msg":"first","msg":"second"}"#);
    assert_eq!(b.message.as_deref(), Some("second"));
}

#[test]
fn json_surrounding_whitespace_is_ignored() {
    let b = parse(" \n\t{\"msg\" : \"x\" ,\n \"n\": 1 }\r\n ");
    assert_eq!(fields(&b), [("msg", "x"), ("n", "1")]);
}

#[test]
fn json_empty_object_is_structured_without_fields() {
    let b = parse("{}");
    assert_eq!(b.format, BodyFormat::Json);
    assert!(b.fields.is_empty());
    assert_eq!((b.message, b.level), (None, None));
}

#[test]
fn json_that_is_not_an_object_is_plain_text() {
    for body in [
        "[1,2]",
        r#"[{"a":1}]"#,
        r#""a=b c=d""#,
        "42",
        "null",
        "true",
        r#""{\"a\":1}""#,
    ] {
        assert_eq!(parse_body(body), None, "{body}");
    }
}

#[test]
fn invalid_json_is_plain_text() {
    for body in [
        "{",
        "{oops",
        "{}}",
        r#"{"a":1} trailing"#,
        r#"{"a":1}{"b":2}"#,
        r#"{"a":}"#,
        r#"{"a":1,}"#,
        r#"{'a':1}"#,
        r#"{"a":"\ud800"}"#,
        r#"{"a":1e400}"#,
        r#"{"a":"unterminated}"#,
        r#"{"a":[1,2}"#,
        "{a=1 b=2}",
        "{\"a\":\"raw\u{1}control\"}",
    ] {
        assert_eq!(parse_body(body), None, "{body}");
    }
}

#[test]
fn json_nesting_past_serde_limit_is_plain_text_without_overflow() {
    let nested = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let b = parse(&nested(100));
    assert_eq!(b.fields.len(), 1);
    assert_eq!(b.fields[0].0, "a.a.a.a");
    assert_eq!(b.fields[0].1, nested(96));
    assert_eq!(parse_body(&nested(200)), None);
    assert_eq!(parse_body(&nested(100_000)), None);
    let arrays = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(parse_body(&arrays), None);
}

// Message and level

#[test]
fn message_comes_from_the_first_conventional_key() {
    let cases = [
        (
            r#"{"text":"t","log":"l","event":"e","message":"m","msg":"first"}"#,
            Some("first"),
        ),
        (r#"{"text":"t","event":"e"}"#, Some("e")),
        (r#"{"text":"t","log":"l"}"#, Some("l")),
        (r#"{"text":"only text"}"#, Some("only text")),
        (r#"{"status":200}"#, None),
    ];
    for (body, message) in cases {
        assert_eq!(parse(body).message.as_deref(), message, "{body}");
    }
}

#[test]
fn nested_error_message_is_not_the_message() {
    let b = parse(r#"{"error":{"message":"boom","type":"Timeout"},"level":"error"}"#);
    assert_eq!(b.message, None);
    assert_eq!(b.get("error.message"), Some("boom"));
    let b = parse(r#"{"error":{"message":"boom"},"event":"request failed"}"#);
    assert_eq!(b.message.as_deref(), Some("request failed"));
}

#[test]
fn blank_null_or_structured_message_falls_through_to_the_next_key() {
    let cases = [
        (r#"{"msg":"  ","message":"real"}"#, Some("real")),
        (r#"{"msg":"","event":"e"}"#, Some("e")),
        (r#"{"msg":null,"text":"t"}"#, Some("t")),
        (r#"{"msg":["a"],"text":"t"}"#, Some("t")),
        (r#"{"msg":{"a":1},"text":"t"}"#, Some("t")),
        (r#"{"msg":42}"#, Some("42")),
        (r#"{"msg":null}"#, None),
        (r#"{"msg":"x","msg":null}"#, None),
    ];
    for (body, message) in cases {
        assert_eq!(parse(body).message.as_deref(), message, "{body}");
    }
}

#[test]
fn docker_json_file_line_has_its_log_as_message() {
    let b = parse(
        r#"{"log":"Traceback (most recent call last):\n","stream":"stderr","time":"2024-05-01T12:00:00.123456789Z"}"#,
    );
    assert_eq!(
        b.message.as_deref(),
        Some("Traceback (most recent call last):\n")
    );
    assert_eq!(b.get("stream"), Some("stderr"));
}

#[test]
fn level_comes_from_the_first_conventional_key() {
    let cases = [
        (r#"{"severity":"ERROR","message":"gcp"}"#, Some("ERROR")),
        (r#"{"lvl":"warn"}"#, Some("warn")),
        (
            r#"{"log":{"level":"error"},"message":"ecs"}"#,
            Some("error"),
        ),
        (r#"{"log.level":"info"}"#, Some("info")),
        (
            r#"{"levelname":"WARNING","message":"python"}"#,
            Some("WARNING"),
        ),
        (r#"{"level":50,"msg":"pino"}"#, Some("50")),
        (r#"{"severity":"INFO","level":"error"}"#, Some("error")),
        (r#"{"level":"","severity":"high"}"#, Some("high")),
        (r#"{"level":null}"#, None),
        (r#"{"error":{"level":"fatal"}}"#, None),
    ];
    for (body, level) in cases {
        assert_eq!(parse(body).level.as_deref(), level, "{body}");
    }
    // ECS nests the level under `log`, which then is not the message.
    assert_eq!(
        parse(r#"{"log":{"level":"error"},"message":"ecs"}"#)
            .message
            .as_deref(),
        Some("ecs")
    );
}

// Caps

#[test]
fn field_cap_drops_later_fields_but_finds_message_and_level() {
    let mut body = String::from("{");
    for i in 0..100 {
        body.push_str(&format!("\"k{i}\":{i},"));
    }
    body.push_str(r#""msg":"late message","level":"warn"}"#);
    let b = parse(&body);
    assert_eq!(b.fields.len(), MAX_FIELDS);
    assert_eq!(b.fields[MAX_FIELDS - 1], ("k63".into(), "63".into()));
    assert!(b.truncated);
    assert_eq!(b.message.as_deref(), Some("late message"));
    assert_eq!(b.level.as_deref(), Some("warn"));
}

#[test]
fn duplicate_key_at_the_field_cap_is_updated_not_dropped() {
    let mut body = String::from("{");
    for i in 0..MAX_FIELDS {
        body.push_str(&format!("\"k{i}\":{i},"));
    }
    body.push_str(r#""k0":"again"}"#);
    let b = parse(&body);
    assert_eq!(b.fields.len(), MAX_FIELDS);
    assert_eq!(b.get("k0"), Some("again"));
    assert!(!b.truncated);
}

#[test]
fn long_value_is_cut_on_a_char_boundary() {
    // 1 + 2 * 600 bytes: byte 1024 falls inside an `é`.
    let long = format!("a{}", "é".repeat(600));
    let b = parse(&format!(r#"{{"msg":"{long}","other":"{long}"}}"#));
    let value = b.get("other").unwrap();
    assert_eq!(value.len(), 1023);
    assert!(long.starts_with(value));
    assert!(b.truncated);
    // The message has a larger cap.
    assert_eq!(b.message.as_deref(), Some(long.as_str()));
    assert_eq!(b.get("msg"), Some(value));
}

#[test]
fn long_message_is_cut_at_its_own_cap() {
    let long = "x".repeat(MAX_MESSAGE_BYTES + 100);
    let b = parse(&format!(r#"{{"message":"{long}"}}"#));
    assert_eq!(b.message.as_ref().unwrap().len(), MAX_MESSAGE_BYTES);
    assert_eq!(b.get("message").unwrap().len(), MAX_VALUE_BYTES);
    assert!(b.truncated);
}

#[test]
fn long_keys_are_cut() {
    let long = "k".repeat(300);
    let b = parse(&format!(
        r#"{{"{long}":1,"{p}":{{"{p}":2}}}}"#,
        p = "p".repeat(200)
    ));
    assert_eq!(b.fields[0].0, "k".repeat(MAX_KEY_BYTES));
    assert_eq!(b.fields[1].0.len(), MAX_KEY_BYTES);
    assert!(b.fields[1].0.starts_with(&format!("{}.p", "p".repeat(200))));
    assert!(b.truncated);
}

#[test]
fn compact_json_is_cut_at_the_value_cap_and_the_rest_still_validated() {
    let items: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
    let full = format!("[{}]", items.join(","));
    let b = parse(&format!(r#"{{"a":{full},"b":"after"}}"#));
    let a = b.get("a").unwrap();
    assert_eq!(a.len(), MAX_VALUE_BYTES);
    assert!(full.starts_with(a));
    assert_eq!(b.get("b"), Some("after"));
    assert!(b.truncated);
    assert_eq!(parse_body(&format!(r#"{{"a":{full},"b":}}"#)), None);
    // A long string inside an array stops being escaped once the cap is reached.
    let b = parse(&format!(r#"{{"a":["{}"]}}"#, "\\n".repeat(5000)));
    assert_eq!(b.get("a").unwrap().len(), MAX_VALUE_BYTES);
}

#[test]
fn cut_never_splits_a_char() {
    assert_eq!(cut("héllo", 2), "h");
    assert_eq!(cut("héllo", 3), "hé");
    assert_eq!(cut("🚀", 3), "");
    assert_eq!(cut("abc", 10), "abc");
    assert_eq!(cut("", 0), "");
}

// logfmt

#[test]
fn plain_text_and_empty_bodies_are_not_structured() {
    for body in [
        "",
        "   \n\t",
        "upstream timeout after 30s",
        "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity)",
        "}",
    ] {
        assert_eq!(parse_body(body), None, "{body:?}");
    }
}

// Hostile input

#[test]
fn huge_json_body_is_capped() {
    let items: Vec<String> = (0..200_000).map(|i| format!("\"k{i}\":[{i}]")).collect();
    let b = parse(&format!("{{{}}}", items.join(",")));
    assert_eq!(b.fields.len(), MAX_FIELDS);
    assert!(b.truncated);
    let b = parse(&format!(r#"{{"msg":"{}"}}"#, "é".repeat(1 << 20)));
    assert_eq!(b.message.as_ref().unwrap().len(), MAX_MESSAGE_BYTES);
}

#[test]
fn every_prefix_of_a_structured_body_parses_without_panic() {
    let samples = [
        r#"{"level":"error","msg":"caf\u00e9 \ud83d\ude80 ✓","req":{"id":"abc","tags":[1,{"a":null}]},"n":-1.5e3}"#,
        r#"time="2024-05-01T12:00:00Z" level=error msg="say \"hi\"\n \ud83d\ude80 ✓" flag path=/a?b=c"#,
        r#"a="\u00e9\ud83d\ude80\\" b=ünï c="#,
    ];
    for sample in samples {
        for (i, _) in sample.char_indices().chain([(sample.len(), ' ')]) {
            let prefix = &sample[..i];
            if let Some(b) = parse_body(prefix) {
                assert!(b.fields.len() <= MAX_FIELDS);
            }
            // And every suffix.
            let _ = parse_body(&sample[i..]);
        }
    }
}

#[test]
fn odd_inputs_do_not_panic() {
    for body in [
        "\"",
        "\\",
        "{\"",
        "{\"\\",
        "{\"a\":\"\\u",
        "a=\"\\u",
        "a=\"\\ud83d\\u",
        "a=\"\\ud83d\\uDC",
        "a=1 b=\"\\uD83D\"",
        "\"=\"",
        "\u{0}=\u{0} b=\u{0}",
        "a=\u{0} b=\u{7f}",
        "a=\u{feff} b=\u{2028}",
        "\u{feff}{\"a\":1}",
        "{\"\":1,\"\":{\"\":2}}",
    ] {
        let _ = parse_body(body);
    }
    let b = parse("{\"\":1,\"x\":{\"\":2}}");
    assert_eq!(fields(&b), [("", "1"), ("x.", "2")]);
}

mod logfmt;
