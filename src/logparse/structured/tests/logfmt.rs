//! logfmt bodies.

use super::*;

#[test]
fn slog_text_line_is_logfmt() {
    let b = parse(
        "time=2024-05-01T12:00:00.000Z level=ERROR msg=\"upstream timeout\" status=504 latency_ms=1234.5 path=/v1/chat\n",
    );
    assert_eq!(b.format, BodyFormat::Logfmt);
    assert_eq!(
        fields(&b),
        [
            ("time", "2024-05-01T12:00:00.000Z"),
            ("level", "ERROR"),
            ("msg", "upstream timeout"),
            ("status", "504"),
            ("latency_ms", "1234.5"),
            ("path", "/v1/chat"),
        ]
    );
    assert_eq!(b.message.as_deref(), Some("upstream timeout"));
    assert_eq!(b.level.as_deref(), Some("ERROR"));
    assert!(!b.truncated);
}

#[test]
fn logrus_text_line_is_logfmt() {
    let b = parse(
        r#"time="2024-05-01T12:00:00Z" level=error msg="CUDA out of memory. Tried to allocate 2.00 GiB" gpu=0 model=llama-70b"#,
    );
    assert_eq!(b.get("time"), Some("2024-05-01T12:00:00Z"));
    assert_eq!(
        b.message.as_deref(),
        Some("CUDA out of memory. Tried to allocate 2.00 GiB")
    );
    assert_eq!(b.level.as_deref(), Some("error"));
    assert_eq!(b.get("model"), Some("llama-70b"));
}

#[test]
fn heroku_router_and_go_kit_lines_are_logfmt() {
    let b = parse(
        r#"at=error code=H12 desc="Request timeout" method=GET path="/" host=myapp.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="204.204.204.204" dyno=web.1 connect=0ms service=30000ms status=503 bytes=0 protocol=https"#,
    );
    assert_eq!(b.fields.len(), 14);
    assert_eq!(b.get("desc"), Some("Request timeout"));
    assert_eq!(b.get("path"), Some("/"));
    assert_eq!((b.message, b.level), (None, None));
    let b = parse(r#"ts=2024-05-01T12:00:00Z caller=main.go:42 level=warn msg=retrying attempt=3"#);
    assert_eq!(b.get("caller"), Some("main.go:42"));
    assert_eq!(b.message.as_deref(), Some("retrying"));
}

#[test]
fn logfmt_quoted_values_are_unescaped() {
    let b = parse(
        r#"msg="say \"hi\" to C:\\temp\nnext" tab="a\tb\r" u="caf\u00e9 \ud83d\ude80" odd="\x41" trail="ends with \\" empty="""#,
    );
    assert_eq!(
        fields(&b),
        [
            ("msg", "say \"hi\" to C:\\temp\nnext"),
            ("tab", "a\tb\r"),
            ("u", "café 🚀"),
            ("odd", "\\x41"),
            ("trail", "ends with \\"),
            ("empty", ""),
        ]
    );
}

#[test]
fn logfmt_bad_unicode_escapes_do_not_fail_the_line() {
    let b = parse(r#"a="\ud800x" b="\uZZ" c="\udc00" d="\ud83d\u0041" e="\u00""#);
    assert_eq!(
        fields(&b),
        [
            ("a", "\u{fffd}x"),
            ("b", "\\uZZ"),
            ("c", "\u{fffd}"),
            ("d", "\u{fffd}A"),
            ("e", "\\u00"),
        ]
    );
}

#[test]
fn logfmt_flags_are_true() {
    let b = parse("level=info msg=started debug verbose=false");
    assert_eq!(
        fields(&b),
        [
            ("level", "info"),
            ("msg", "started"),
            ("debug", "true"),
            ("verbose", "false"),
        ]
    );
    let b = parse("a=1 b=2 dry-run");
    assert_eq!(b.get("dry-run"), Some("true"));
}

#[test]
fn logfmt_empty_values_and_equals_in_bare_values() {
    let b = parse("logname= uid=0 ruser= rhost=218.188.2.4");
    assert_eq!(
        fields(&b),
        [
            ("logname", ""),
            ("uid", "0"),
            ("ruser", ""),
            ("rhost", "218.188.2.4"),
        ]
    );
    let b = parse("path=/v1/chat?model=gpt&n=1 status=200 eq==");
    assert_eq!(b.get("path"), Some("/v1/chat?model=gpt&n=1"));
    assert_eq!(b.get("eq"), Some("="));
}

#[test]
fn logfmt_duplicate_keys_last_wins_at_first_position() {
    let b = parse("a=1 b=2 a=3 b flag flag=x");
    assert_eq!(fields(&b), [("a", "3"), ("b", "true"), ("flag", "x")]);
}

#[test]
fn logfmt_keys_and_separators() {
    let b = parse("k8s.pod/name=x user@host=y a-b_C9=z\tlevel=info\r\nmsg=日本語");
    assert_eq!(
        fields(&b),
        [
            ("k8s.pod/name", "x"),
            ("user@host", "y"),
            ("a-b_C9", "z"),
            ("level", "info"),
            ("msg", "日本語"),
        ]
    );
    let b = parse(r#"msg="ünïcödé ✓" user=josé"#);
    assert_eq!(fields(&b), [("msg", "ünïcödé ✓"), ("user", "josé")]);
}

#[test]
fn prose_is_not_logfmt() {
    for body in [
        "Invalid user admin from 10.0.0.1",
        "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4",
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=218.188.2.4  user=root",
        "Starting worker pid=12 queue=default",
        "user=admin logged in from host=10.0.0.1",
        "a=1 b=2 c d e",
        "Epoch 3: loss=0.123 acc=0.98",
        "step=100 loss=nan, skipping batch",
        "x = 5",
        "GET /v1/chat HTTP/1.1 status=200 bytes=12",
        "only=one",
        "retry=3 giving up",
        "error: connection refused (addr=10.0.0.1:5432)",
        "Connection closed by 10.0.0.1 port=22",
        "[2024-05-01 12:00:00] level=error msg=x",
        "CUDA error: out of memory (cudaMalloc=2GB)",
        "if a==b then c=d",
        "Die Größe=5 ist zu groß=ja",
    ] {
        assert_eq!(parse_body(body), None, "{body}");
    }
}

#[test]
fn malformed_logfmt_is_rejected() {
    for body in [
        r#"level=error msg="oops unterminated"#,
        r#"a=1 msg="ends with backslash\"#,
        "=",
        "= =",
        "==",
        "=v a=b c=d",
        "a=1 b=2 =x",
        r#"a="b"c d=e"#,
        r#"a=b"c d=e"#,
        r#"a=1 b=2 "quoted=word""#,
        "a=1 b=2 é=3",
        "a=1;b=2",
    ] {
        assert_eq!(parse_body(body), None, "{body}");
    }
}

#[test]
fn huge_logfmt_body_is_capped() {
    let body: String = (0..100_000).map(|i| format!("key{i}=value{i} ")).collect();
    let b = parse(&body);
    assert_eq!(b.fields.len(), MAX_FIELDS);
    assert!(b.truncated);
    let long = "y".repeat(1 << 20);
    let b = parse(&format!(r#"level=info msg="{long}""#));
    assert_eq!(b.message.as_ref().unwrap().len(), MAX_MESSAGE_BYTES);
    assert_eq!(b.get("msg").unwrap().len(), MAX_VALUE_BYTES);
    assert!(b.truncated);
}
