//! Corpus-driven tests of `extract` and `final_exception` (data in `tests/signatures/`, format in
//! its README), plus unit tests of the helpers. Folding tests live in `tests/fold.rs`.

mod fold;

use super::fields::{dim_at, parse_bytes, strip_rank_prefix, strip_torch_size};
use super::{
    extract, final_exception, FoldConfig, Folded, Signature, SignatureKind, TracebackFolder,
};

/// A corpus file, embedded so the tests need no working directory.
struct CorpusFile {
    name: &'static str,
    src: &'static str,
}

macro_rules! corpus {
    ($name:literal) => {
        CorpusFile {
            name: $name,
            src: include_str!(concat!("../../../tests/signatures/", $name)),
        }
    };
}

/// One case of a corpus file.
#[derive(Debug)]
struct Case {
    /// `file:line` of the case's first line, for failure messages.
    at: String,
    /// `None`: must match nothing.
    expect: Option<(SignatureKind, Vec<(String, String)>)>,
    per_line: bool,
    fold: bool,
    exception: Option<String>,
    text: String,
}

/// Parses a corpus file; a malformed file is a test failure pointing at the line.
fn parse_corpus(file: &CorpusFile) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut start = 1;
    let mut block: Vec<&str> = Vec::new();
    for (i, line) in file.src.lines().chain(std::iter::once("---")).enumerate() {
        if line != "---" {
            block.push(line);
            continue;
        }
        if let Some(case) = parse_case(&format!("{}:{}", file.name, start), &block) {
            cases.push(case);
        }
        block.clear();
        start = i + 2;
    }
    cases
}

fn parse_case(at: &str, block: &[&str]) -> Option<Case> {
    let header_len = block.iter().take_while(|l| l.starts_with('#')).count();
    let (header, text) = block.split_at(header_len);
    let mut expect_tokens = Vec::new();
    let mut saw_expect = false;
    let (mut per_line, mut fold, mut exception) = (false, false, None);
    for line in header {
        let line = line.trim_start_matches('#').trim();
        if let Some(rest) = line.strip_prefix("expect:") {
            saw_expect = true;
            expect_tokens.extend(tokens(rest).unwrap_or_else(|e| panic!("{at}: {e}")));
        } else if let Some(mode) = line.strip_prefix("mode:") {
            match mode.trim() {
                "per-line" => per_line = true,
                "fold" => fold = true,
                other => panic!("{at}: unknown mode {other:?}"),
            }
        } else if let Some(ty) = line.strip_prefix("exception:") {
            exception = Some(ty.trim().to_string());
        }
    }
    let first = text.iter().position(|l| !l.trim().is_empty());
    let last = text.iter().rposition(|l| !l.trim().is_empty());
    let text = match (first, last) {
        (Some(f), Some(l)) => text[f..=l].join("\n"),
        _ => String::new(),
    };
    if !saw_expect && text.is_empty() {
        return None;
    }
    assert!(saw_expect, "{at}: case without `# expect:`");
    assert!(!text.is_empty(), "{at}: case without text");
    let expect = match expect_tokens.split_first() {
        Some(((k, None), [])) if k == "none" => None,
        Some(((k, Some(kind)), fields)) if k == "kind" => {
            let kind =
                SignatureKind::from_name(kind).unwrap_or_else(|| panic!("{at}: kind {kind:?}"));
            let fields = fields
                .iter()
                .map(|(n, v)| {
                    (
                        n.clone(),
                        v.clone()
                            .unwrap_or_else(|| panic!("{at}: {n} without value")),
                    )
                })
                .collect();
            Some((kind, fields))
        }
        _ => panic!("{at}: `# expect:` must start with `kind=` or be `none`"),
    };
    Some(Case {
        at: at.to_string(),
        expect,
        per_line,
        fold,
        exception,
        text,
    })
}

/// `name=value name="quoted \" value" none` → pairs.
fn tokens(s: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut chars = s.trim().chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars
            .by_ref()
            .take_while(|c| *c != '=' && *c != ' ')
            .collect();
        if chars.peek().is_none() || name.is_empty() {
            out.push((name, None));
            while chars.next_if_eq(&' ').is_some() {}
            continue;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quote in {name}")),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ' ').collect();
        }
        out.push((name, Some(value)));
        while chars.next_if_eq(&' ').is_some() {}
    }
    Ok(out)
}

/// Checks one text against one case's expectation; `Err` describes the difference.
fn check(case: &Case, text: &str) -> Result<(), String> {
    let (sig, (kind, want)) = match (extract(text), &case.expect) {
        (None, None) => return Ok(()),
        (Some(sig), None) => return Err(format!("expected nothing, got {sig:?}")),
        (None, Some(_)) => return Err("expected a signature, got nothing".into()),
        (Some(sig), Some(expect)) => (sig, expect),
    };
    check_invariants(&sig)?;
    if sig.kind != *kind {
        return Err(format!("expected kind {kind}, got {sig:?}"));
    }
    let mut diffs = Vec::new();
    for (name, value) in want {
        match sig.field(name) {
            Some(v) if v == value => {}
            Some(v) => diffs.push(format!("{name}: expected {value:?}, got {v:?}")),
            None => diffs.push(format!("{name}: expected {value:?}, missing")),
        }
    }
    for (name, value) in &sig.fields {
        if !want.iter().any(|(n, _)| n == name) {
            diffs.push(format!("{name}: unexpected {value:?}"));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

/// What holds for every signature: known field names, canonical order, no duplicates, the
/// kind's always-present fields.
fn check_invariants(sig: &Signature) -> Result<(), String> {
    let order = sig.kind.field_names();
    let positions: Vec<Option<usize>> = sig
        .fields
        .iter()
        .map(|(n, _)| order.iter().position(|o| o == n))
        .collect();
    if positions.iter().any(Option::is_none) {
        return Err(format!("undeclared field in {sig:?}"));
    }
    if !positions.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!(
            "fields out of canonical order or duplicated: {sig:?}"
        ));
    }
    let required: &[&str] = match sig.kind {
        SignatureKind::ShapeMismatch | SignatureKind::DtypeMismatch => {
            &["form", "expected", "actual"]
        }
        SignatureKind::CudaOom => &["form"],
        SignatureKind::Nccl => &["error"],
        SignatureKind::BrowserError => &["form", "message"],
    };
    match required.iter().find(|r| sig.field(r).is_none()) {
        Some(r) => Err(format!("required field {r} missing: {sig:?}")),
        None => Ok(()),
    }
}

/// Runs every case of a corpus file and reports all failures at once. `kind`: the file holds
/// cases of this kind only, at least six of them.
fn run_corpus(file: &CorpusFile, kind: Option<SignatureKind>) -> Vec<Case> {
    let cases = parse_corpus(file);
    let mut failures = Vec::new();
    for case in &cases {
        if let (Some(kind), Some((got, _))) = (kind, &case.expect) {
            assert_eq!(*got, kind, "{}: case of another kind in this file", case.at);
        }
        let texts: Vec<&str> = if case.per_line {
            case.text.lines().filter(|l| !l.trim().is_empty()).collect()
        } else {
            vec![case.text.as_str()]
        };
        for text in texts {
            if let Err(e) = check(case, text) {
                failures.push(format!("{}: {e}\n    text: {:.160}", case.at, text));
            }
        }
        if let Some(ty) = &case.exception {
            let got = final_exception(&case.text).map(|(t, _)| t);
            if got != Some(ty.as_str()) {
                failures.push(format!(
                    "{}: final_exception: expected {ty}, got {got:?}",
                    case.at
                ));
            }
        }
        if case.fold {
            if let Err(e) = check_folds_whole(&case.text) {
                failures.push(format!("{}: fold: {e}", case.at));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    if kind.is_some() {
        assert!(
            cases.len() >= 6,
            "{}: only {} cases",
            file.name,
            cases.len()
        );
    }
    cases
}

/// Pushing the text one line per record, 1 ms apart, must yield exactly one fold of all lines.
fn check_folds_whole(text: &str) -> Result<(), String> {
    let mut folder = TracebackFolder::new(FoldConfig::default());
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = i64::try_from(i).map_err(|e| e.to_string())? * 1_000_000;
        out.extend(folder.push("svc/host/1", t, line, i));
    }
    out.extend(folder.flush_all());
    match out.as_slice() {
        [Folded::Folded {
            parts,
            text: folded,
        }] if folded == text && parts.len() == text.lines().count() => Ok(()),
        other => Err(format!(
            "expected one fold of {} lines, got {:?}",
            text.lines().count(),
            other.iter().map(Folded::len).collect::<Vec<_>>()
        )),
    }
}

#[test]
fn shape_mismatch_corpus() {
    run_corpus(
        &corpus!("shape_mismatch.txt"),
        Some(SignatureKind::ShapeMismatch),
    );
}

#[test]
fn dtype_mismatch_corpus() {
    run_corpus(
        &corpus!("dtype_mismatch.txt"),
        Some(SignatureKind::DtypeMismatch),
    );
}

#[test]
fn cuda_oom_corpus() {
    run_corpus(&corpus!("cuda_oom.txt"), Some(SignatureKind::CudaOom));
}

#[test]
fn nccl_corpus() {
    run_corpus(&corpus!("nccl.txt"), Some(SignatureKind::Nccl));
}

#[test]
fn browser_error_corpus() {
    run_corpus(
        &corpus!("browser_error.txt"),
        Some(SignatureKind::BrowserError),
    );
}

#[test]
fn negatives_match_nothing() {
    let cases = run_corpus(&corpus!("negatives.txt"), None);
    assert!(
        cases.iter().all(|c| c.expect.is_none()),
        "negatives.txt holds only `expect: none`"
    );
    let lines: usize = cases.iter().map(|c| c.text.lines().count()).sum();
    assert!(lines >= 30, "only {lines} negative lines");
}

#[test]
fn tracebacks_signature_comes_from_final_exception_and_fold_whole() {
    let cases = run_corpus(&corpus!("tracebacks.txt"), None);
    assert!(cases.iter().all(|c| c.fold && c.exception.is_some()));
}

#[test]
fn corpus_format_parses_quotes_modes_and_comments() {
    let file = CorpusFile {
        name: "inline",
        src: "# top comment\n---\n# source: x\n# expect: kind=nccl error=\"a \\\"b\\\" c\"\n# expect: rank=3\n\nline one\n# not header\n\n---\n# expect: none\n# mode: per-line\na\nb\n",
    };
    let cases = parse_corpus(&file);
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0].at, "inline:3");
    assert_eq!(cases[0].text, "line one\n# not header");
    let (kind, fields) = cases[0].expect.as_ref().expect("expectation");
    assert_eq!(*kind, SignatureKind::Nccl);
    assert_eq!(
        fields,
        &[
            ("error".to_string(), "a \"b\" c".to_string()),
            ("rank".to_string(), "3".to_string())
        ]
    );
    assert!(cases[1].per_line && cases[1].expect.is_none());
}

#[test]
fn final_exception_returns_type_and_whole_message() {
    let text = "Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n    f()\nRuntimeError: NCCL error in: x.cpp:1, internal error, NCCL version 2.14.3\nncclInternalError: Internal check failed.\nLast error:\nNet : Connection closed\nINFO next log line";
    let (ty, message) = final_exception(text).expect("exception");
    assert_eq!(ty, "RuntimeError");
    assert_eq!(
        message,
        "NCCL error in: x.cpp:1, internal error, NCCL version 2.14.3\nncclInternalError: Internal check failed.\nLast error:\nNet : Connection closed"
    );
    let bare = "Traceback (most recent call last):\n  File \"a.py\", line 3, in <module>\n    time.sleep(10)\nKeyboardInterrupt";
    assert_eq!(final_exception(bare), Some(("KeyboardInterrupt", "")));
}

#[test]
fn final_exception_needs_a_traceback() {
    assert_eq!(final_exception("RuntimeError: boom"), None);
    assert_eq!(
        final_exception("Traceback (most recent call last):\n  File \"a.py\", line 1"),
        None
    );
    assert_eq!(final_exception(""), None);
}

#[test]
fn final_exception_of_chain_is_the_last_one() {
    let text = "Traceback (most recent call last):\n  File \"a\", line 1, in f\nKeyError: 'x'\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"a\", line 2, in f\nValueError: bad value";
    assert_eq!(final_exception(text), Some(("ValueError", "bad value")));
}

#[test]
fn parse_bytes_is_exact_binary_and_rounds_half_up() {
    assert_eq!(parse_bytes("4.50", "GiB"), Some(4_831_838_208));
    assert_eq!(parse_bytes("0", "bytes"), Some(0));
    assert_eq!(parse_bytes("1024.00", "KiB"), Some(1_048_576));
    assert_eq!(parse_bytes("2.00", "G"), Some(2_147_483_648));
    assert_eq!(parse_bytes("0.5", "B"), Some(1));
    assert_eq!(parse_bytes("1.", "MiB"), None);
    assert_eq!(parse_bytes("1.5", "parsecs"), None);
    assert_eq!(parse_bytes("99999999999", "PiB"), None);
}

#[test]
fn shape_helpers() {
    assert_eq!(strip_torch_size("torch.Size([10, 512])"), "[10, 512]");
    assert_eq!(strip_torch_size("[3]"), "[3]");
    assert_eq!(dim_at("(None, 28, 28)", -1), Some("28"));
    assert_eq!(dim_at("[32,10]", 0), Some("32"));
    assert_eq!(dim_at("(None, 28)", 5), None);
    assert_eq!(dim_at("(None, 28)", -3), None);
    assert_eq!(strip_rank_prefix("[rank12]: x"), "x");
    assert_eq!(strip_rank_prefix("[rank]: x"), "[rank]: x");
    assert_eq!(strip_rank_prefix("[rank1]x"), "[rank1]x");
}

#[test]
fn signature_serializes_kind_and_ordered_field_object() {
    let sig =
        extract("RuntimeError: expected scalar type Float but found Double").expect("signature");
    let json = serde_json::to_string(&sig).expect("serializable");
    assert_eq!(
        json,
        r#"{"kind":"dtype_mismatch","fields":{"form":"scalar_type","expected":"Float","actual":"Double"}}"#
    );
    assert_eq!(sig.field("expected"), Some("Float"));
    assert_eq!(sig.field("nope"), None);
}

#[test]
fn kind_names_round_trip() {
    for kind in SignatureKind::ALL {
        assert_eq!(SignatureKind::from_name(kind.as_str()), Some(kind));
        assert_eq!(kind.to_string(), kind.as_str());
        assert!(kind.field_names().len() >= 3);
    }
    assert_eq!(SignatureKind::from_name("oom"), None);
}

#[test]
fn extract_ignores_empty_and_huge_ordinary_text() {
    assert_eq!(extract(""), None);
    let long = "step=1 loss=0.5 ".repeat(10_000);
    assert_eq!(extract(&long), None);
}
