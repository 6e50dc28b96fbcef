//! The architecture, checked: the module layers of ARCHITECTURE.md (no module imports one
//! above it, so no two modules import each other), the pure stages (no file system, network
//! or clock, no driver imports), and the size limits (files ≤ 600 lines, functions ≤ 80).
//! Test code is exempt: it may read fixtures and time things.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::repo;

/// Each top-level module of `src/` and its layer: a module may import only modules of lower
/// layers. Keep in step with the code map in ARCHITECTURE.md.
const LAYERS: &[(&str, u32)] = &[
    ("error", 0),
    ("model", 0),
    ("tables", 1),
    ("decode", 1),
    ("logparse", 1),
    ("align", 2),
    ("rules", 3),
    ("detect", 4),
    ("alert", 5),
    ("kb", 6),
    ("incident", 6),
    ("output", 7),
    ("config", 8),
    ("load", 9),
    ("broker", 9),
    ("source", 10),
    ("sink", 10),
    ("agent", 11),
    ("pipeline", 12),
    ("ruletest", 13),
    ("cli", 14),
    ("lib", 15),
    ("main", 15),
];

/// Stages that must stay pure (deterministic replays): no I/O, no clock, no driver.
const PURE: &[&str] = &[
    "model", "decode", "align", "tables", "logparse", "rules", "detect", "alert", "kb", "incident",
    "output",
];

/// What a pure stage must not use.
const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::net",
    "SystemTime",
    "Instant",
    "tokio::time",
    "tokio::spawn",
    "std::env::var",
    "crate::source",
    "crate::sink",
    "crate::pipeline",
    "crate::load",
    "crate::agent",
    "crate::cli",
];

const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 80;

/// A source file's non-test code, comments removed, with its line numbers.
struct Source {
    path: PathBuf,
    module: String,
    lines: Vec<(usize, String)>,
    total_lines: usize,
}

fn is_test_file(rel: &Path) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || rel.components().any(|c| c.as_os_str() == "tests")
}

/// Drops `#[cfg(test)]` items (a `mod x;` line or a braced block) and `//` comments.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut skip_depth: Option<i64> = None;
    let mut skip_next = false;
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        let (opens, closes) = braces(&line);
        if let Some(depth) = skip_depth.as_mut() {
            *depth += opens - closes;
            if *depth <= 0 {
                skip_depth = None;
            }
            continue;
        }
        if skip_next {
            skip_next = false;
            if opens > closes {
                skip_depth = Some(opens - closes);
            }
            continue;
        }
        if raw.trim() == "#[cfg(test)]" {
            skip_next = true;
            continue;
        }
        out.push((i + 1, line));
    }
    out
}

fn sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = repo().join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&src).unwrap().to_path_buf();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_str()
                .unwrap();
            let module = first.trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let lines = if is_test_file(&rel) {
                Vec::new()
            } else {
                code_lines(&text)
            };
            Source {
                total_lines: text.lines().count(),
                path: rel,
                module,
                lines,
            }
        })
        .collect()
}

/// The modules a line refers to through `crate::…` (also inside `use crate::{a::x, b}`).
fn crate_refs(line: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for (i, _) in line.match_indices("crate::") {
        let rest = &line[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            for item in group.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if item.trim().contains("::") && !name.is_empty() {
                    refs.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if rest[name.len()..].starts_with("::") {
                refs.push(name);
            }
        }
    }
    refs
}

/// The line without its `//` comment (a `//` inside a string literal stays).
fn strip_comment(raw: &str) -> String {
    let mut in_string = false;
    let mut escaped = false;
    let bytes = raw.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return raw[..i].to_string(),
            _ => {}
        }
    }
    raw.to_string()
}

/// Whether a line starts a function definition (`pub(crate) async fn x(` and the like).
fn starts_fn(line: &str) -> bool {
    let mut rest = line.trim_start();
    for qualifier in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "async ",
        "const ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(qualifier).unwrap_or(rest);
    }
    rest = rest.strip_prefix("async ").unwrap_or(rest);
    rest.starts_with("fn ")
}

/// `{` and `}` of a line outside string and character literals.
fn braces(line: &str) -> (i64, i64) {
    let (mut opens, mut closes) = (0, 0);
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => in_string = !in_string,
            '\'' if !in_string => {
                // A char literal such as '{' is skipped; a lifetime ('a) is not one.
                let lit: String = chars.clone().take(3).collect();
                if lit.chars().nth(1) == Some('\'') {
                    chars.nth(1);
                } else if lit.starts_with('\\') && lit.chars().nth(2) == Some('\'') {
                    chars.nth(2);
                }
            }
            '{' if !in_string => opens += 1,
            '}' if !in_string => closes += 1,
            _ => {}
        }
    }
    (opens, closes)
}

#[test]
fn modules_import_only_lower_layers() {
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut violations = Vec::new();
    let mut edges = 0;
    for s in sources() {
        let Some(&from) = layers.get(s.module.as_str()) else {
            violations.push(format!(
                "{}: module {} has no layer",
                s.path.display(),
                s.module
            ));
            continue;
        };
        for (n, line) in &s.lines {
            for to in crate_refs(line) {
                if to == s.module || to == "Error" || to == "Result" {
                    continue;
                }
                edges += 1;
                match layers.get(to.as_str()) {
                    Some(&l) if l < from => {}
                    _ => violations.push(format!(
                        "src/{}:{n}: {} (layer {from}) imports {to}",
                        s.path.display(),
                        s.module
                    )),
                }
            }
        }
    }
    assert!(edges > 50, "the scanner found only {edges} imports");
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn pure_stages_do_no_io_and_read_no_clock() {
    let mut violations = Vec::new();
    let mut seen_elsewhere = 0;
    for s in sources() {
        for (n, line) in &s.lines {
            for pattern in FORBIDDEN {
                if !line.contains(pattern) {
                    continue;
                }
                if PURE.contains(&s.module.as_str()) {
                    violations.push(format!("src/{}:{n}: uses {pattern}", s.path.display()));
                } else {
                    seen_elsewhere += 1;
                }
            }
        }
    }
    // The scan works: the loader reads files and the Kafka driver reads the clock.
    assert!(
        seen_elsewhere >= 3,
        "the scanner found only {seen_elsewhere} uses outside"
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn no_file_over_600_lines_and_no_function_over_80() {
    let mut violations = Vec::new();
    let mut functions = 0;
    for s in sources() {
        if s.total_lines > MAX_FILE_LINES {
            violations.push(format!("src/{}: {} lines", s.path.display(), s.total_lines));
        }
        let lines = &s.lines;
        let mut i = 0;
        while i < lines.len() {
            let (start, line) = &lines[i];
            if !starts_fn(line) || line.trim_end().ends_with(';') {
                i += 1;
                continue;
            }
            functions += 1;
            let (mut depth, mut opened, mut j) = (0i64, false, i);
            while j < lines.len() {
                let (opens, closes) = braces(&lines[j].1);
                depth += opens - closes;
                opened |= opens > 0;
                if opened && depth <= 0 {
                    break;
                }
                j += 1;
            }
            let len = lines.get(j).map_or(0, |(end, _)| end - start + 1);
            if len > MAX_FN_LINES {
                violations.push(format!(
                    "src/{}:{start}: function of {len} lines",
                    s.path.display()
                ));
            }
            i += 1;
        }
    }
    assert!(
        functions > 300,
        "the scanner found only {functions} functions"
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
