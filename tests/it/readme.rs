//! The README's examples run, so none can rot: every `faultline` (or `cargo run --`) command
//! in its shell blocks parses with the real command line and names only paths that exist;
//! those that need no broker, driver or process run and succeed; every transcript (`$
//! faultline …` followed by what it prints) prints that; every TOML snippet passes `check`
//! beside the shipped rules; every SQL snippet plans; every alertname a snippet names is one a
//! shipped pipeline emits; and the rule-header table lists exactly the header's keys.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::common::*;

/// A fenced block: its info string, its text and the README line it starts on.
struct Block {
    lang: String,
    text: String,
    line: usize,
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    lang: lang.trim().to_string(),
                    text: String::new(),
                    line: i + 1,
                })
            }
            (Some(_), Some(_)) => out.push(open.take().unwrap()),
            (Some(b), None) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// The `faultline` commands of a shell block, continuation lines joined, comments dropped,
/// `cargo run [-jN] --` read as `faultline`.
fn commands(block: &Block) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for (i, line) in block.text.lines().enumerate() {
        let line = match line.find("  #") {
            Some(at) => &line[..at],
            None => line,
        };
        let line = line.trim_start_matches("$ ").trim();
        pending.push_str(line.trim_end_matches('\\'));
        pending.push(' ');
        if line.ends_with('\\') {
            continue;
        }
        let command = std::mem::take(&mut pending);
        let words: Vec<&str> = command.split_whitespace().collect();
        let words = match words.as_slice() {
            ["cargo", "run", rest @ ..] => {
                let after = rest
                    .iter()
                    .position(|w| *w == "--")
                    .map_or(rest.len(), |p| p + 1);
                std::iter::once("faultline")
                    .chain(rest[after..].iter().copied())
                    .collect()
            }
            _ => words,
        };
        if words.first() == Some(&"faultline") {
            out.push((block.line + i + 1, words.join(" ")));
        }
    }
    out
}

/// Paths the repository must hold: arguments under its own directories (globs expanded).
fn repo_paths(words: &[&str]) -> Vec<String> {
    const ROOTS: [&str; 4] = ["pipelines/", "examples/", "tests/", "schemas/"];
    words
        .iter()
        .map(|w| w.rsplit('=').next().unwrap())
        .filter(|w| ROOTS.iter().any(|r| w.starts_with(r)))
        .map(str::to_string)
        .collect()
}

/// `words` with globs expanded against the repository.
fn expand(words: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for w in words {
        match w.split_once('*') {
            Some((dir_prefix, suffix)) => {
                let dir = repo().join(dir_prefix);
                let mut found: Vec<String> = std::fs::read_dir(&dir)
                    .map(|d| {
                        d.filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().to_string())
                            .filter(|n| n.ends_with(suffix))
                            .map(|n| format!("{dir_prefix}{n}"))
                            .collect()
                    })
                    .unwrap_or_default();
                found.sort();
                out.extend(found);
            }
            None => out.push(w.to_string()),
        }
    }
    out
}

/// Whether a command can run here: no broker, no GPU, no other process, no file of the
/// reader's own (a `$EDITOR`'s rule, a recording), no shell redirection.
fn runnable(words: &[String]) -> bool {
    let sub = words.get(1).map(String::as_str).unwrap_or("");
    let offline = [
        "run",
        "check",
        "test",
        "alerts",
        "completions",
        "man",
        "--version",
    ];
    offline.contains(&sub) && !words.iter().any(|w| w == "--brokers")
}

#[test]
fn every_readme_command_parses_names_existing_paths_and_runs() {
    let text = readme();
    let mut failures = Vec::new();
    let mut ran = 0;
    let tmp = tempfile::tempdir().unwrap();
    // What commands read from earlier ones (the gzip example's file, the --output directory
    // `faultline alerts` reads) is made here, in order.
    let gz = std::process::Command::new("sh")
        .arg("-c")
        .arg("gzip -c examples/incident.jsonl > /tmp/incident.jsonl.gz")
        .current_dir(repo())
        .status()
        .unwrap();
    assert!(gz.success());
    for block in blocks(&text)
        .iter()
        .filter(|b| b.lang == "sh" || b.lang.is_empty())
    {
        for (line, command) in commands(block) {
            // What follows a redirection is the shell's, not faultline's; a command whose
            // output goes to the reader's files (`>`, `|`) is only parsed.
            let words: Vec<&str> = command
                .split_whitespace()
                .take_while(|w| !["<", ">", "|"].contains(w))
                .collect();
            let writes_elsewhere = command.contains(['>', '|']);
            let expanded = expand(&words);
            if let Err(e) = faultline::cli::Cli::try_parse_from(&expanded) {
                if e.use_stderr() {
                    failures.push(format!(
                        "README.md:{line}: `{command}` does not parse:\n{e}"
                    ));
                    continue;
                }
            }
            let is_transcript = block.text.lines().any(|l| l.starts_with("$ faultline"));
            // A transcript may show a mistake on purpose; its test checks what it prints.
            for path in repo_paths(&words).into_iter().filter(|_| !is_transcript) {
                if expand(&[&path]).iter().all(|p| !repo().join(p).exists()) {
                    failures.push(format!(
                        "README.md:{line}: `{command}` names {path}, which does not exist"
                    ));
                }
            }
            let redirected = words.len() < command.split_whitespace().count();
            if is_transcript || writes_elsewhere || !runnable(&expanded) {
                continue;
            }
            let mut cmd = std::process::Command::new("sh");
            cmd.arg("-c")
                .arg(command.replacen("faultline", env!("CARGO_BIN_EXE_faultline"), 1))
                .current_dir(repo())
                .env("HOME", tmp.path())
                .env("FAULTLINE_LOG", "warn");
            let out = cmd.output().unwrap();
            ran += 1;
            if !out.status.success() {
                failures.push(format!(
                    "README.md:{line}: `{command}` exited {}{}:\n{}",
                    out.status,
                    if redirected {
                        " (with its redirection)"
                    } else {
                        ""
                    },
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(ran >= 6, "only {ran} README commands ran");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A transcript block: `$ faultline …` lines, each followed by exactly what it prints
/// (stdout, then stderr); `…` at the end of a shown line matches any rest.
#[test]
fn every_readme_transcript_prints_what_it_shows() {
    let text = readme();
    let mut failures = Vec::new();
    let mut checked = 0;
    for block in blocks(&text).iter().filter(|b| b.lang.is_empty()) {
        let lines: Vec<&str> = block.text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(command) = line.strip_prefix("$ faultline ") else {
                continue;
            };
            // Those reading a file of the reader's own (`< auth.log`) are tested beside
            // their command (tests/it/templates.rs).
            if command.contains(['<', '|']) {
                continue;
            }
            let shown: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| !l.starts_with("$ "))
                .copied()
                .collect();
            let out = faultline()
                .args(command.split_whitespace())
                .current_dir(repo())
                .output()
                .unwrap();
            let printed = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let printed: Vec<&str> = printed.lines().collect();
            let same = printed.len() == shown.len()
                && printed
                    .iter()
                    .zip(&shown)
                    .all(|(p, s)| match s.strip_suffix('…') {
                        Some(prefix) => p.starts_with(prefix),
                        None => p == s,
                    });
            checked += 1;
            if !same {
                failures.push(format!(
                    "README.md:{}: `$ faultline {command}`\n--- shown\n{}\n--- printed\n{}",
                    block.line + i + 1,
                    shown.join("\n"),
                    printed.join("\n")
                ));
            }
        }
    }
    assert!(checked >= 2, "only {checked} transcripts");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The human output shown in "Set up and run" is what `run --format human` prints: every
/// shown line is a line it prints (the example is shortened, never changed).
#[test]
fn the_readme_human_output_is_what_run_prints() {
    let text = readme();
    let block = blocks(&text)
        .into_iter()
        .find(|b| b.lang == "text" && b.text.contains(" FIRING "))
        .expect("a human output example in the README");
    let out = run_ok(
        faultline()
            .args([
                "run",
                "--pipeline",
                "pipelines/inference",
                "--input",
                "examples/incident.jsonl",
                "--format",
                "human",
            ])
            .current_dir(repo()),
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let printed: BTreeSet<&str> = printed.lines().collect();
    for line in block.text.lines().filter(|l| !l.is_empty()) {
        let found = match line.strip_suffix('…') {
            Some(prefix) => printed.iter().any(|p| p.starts_with(prefix)),
            None => printed.contains(line),
        };
        assert!(found, "README.md:{}: not printed: {line}", block.line);
    }
}

/// The pipeline directory `pipelines/inference` copied (rules, knowledge base) into `dir`.
fn copy_inference(dir: &Path) -> PathBuf {
    let to = dir.join("inference");
    let status = std::process::Command::new("cp")
        .args(["-r"])
        .arg(repo().join("pipelines/inference"))
        .arg(&to)
        .status()
        .unwrap();
    assert!(status.success());
    to
}

fn check(dir: &Path) -> Result<(), String> {
    let out = faultline().arg("check").arg(dir).output().unwrap();
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stdout).to_string()),
    }
}

/// Every TOML snippet passes `check`: a whole `pipeline.toml` (one with `name =`) as the
/// shipped pipeline's, a `_defaults.toml` (its first line names it) in its place, any other
/// fragment appended to a pipeline of the shipped rules.
#[test]
fn every_readme_toml_snippet_passes_check() {
    let text = readme();
    let mut failures = Vec::new();
    let toml_blocks: Vec<Block> = blocks(&text)
        .into_iter()
        .filter(|b| b.lang == "toml")
        .collect();
    assert!(toml_blocks.len() >= 5);
    for block in &toml_blocks {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_inference(tmp.path());
        let first = block.text.lines().next().unwrap_or("");
        if let Some(path) = first.strip_prefix("# ") {
            // A shipped file, shown in part: each value shown is the file's.
            let shipped = std::fs::read_to_string(repo().join(path.trim())).unwrap_or_default();
            let shipped: toml::Value = toml::from_str(&shipped).unwrap_or(toml::Value::Integer(0));
            let shown: toml::Value = toml::from_str(&block.text).unwrap();
            if !is_part_of(&shown, &shipped) {
                failures.push(format!(
                    "README.md:{}: the snippet is not what {path} holds",
                    block.line
                ));
            }
            continue;
        } else if block.text.starts_with("name =") {
            std::fs::write(dir.join("pipeline.toml"), &block.text).unwrap();
        } else {
            let pipeline = format!("name = \"readme\"\nrules = [\"rules\"]\n{}", block.text);
            std::fs::write(dir.join("pipeline.toml"), pipeline).unwrap();
        }
        if let Err(e) = check(&dir) {
            failures.push(format!(
                "README.md:{}: the TOML snippet fails check:\n{e}",
                block.line
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Whether every key of `part` is in `whole` with the same value (tables compared key by key).
fn is_part_of(part: &toml::Value, whole: &toml::Value) -> bool {
    match (part, whole) {
        (toml::Value::Table(p), toml::Value::Table(w)) => p
            .iter()
            .all(|(k, v)| w.get(k).is_some_and(|wv| is_part_of(v, wv))),
        _ => part == whole,
    }
}

/// Every SQL snippet plans: as a rule file (its header as written, else `severity` added)
/// beside the shipped rules.
#[test]
fn every_readme_sql_snippet_plans() {
    let text = readme();
    let mut failures = Vec::new();
    for block in blocks(&text).iter().filter(|b| b.lang == "sql") {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_inference(tmp.path());
        let rule = match block.text.contains("-- severity") {
            true => block
                .text
                .replace("-- id = \"request_latency_p95\"", "-- id = \"readme_rule\""),
            false => {
                // Its leading comment would be read as the header.
                let sql: Vec<&str> = block
                    .text
                    .lines()
                    .skip_while(|l| l.starts_with("--"))
                    .collect();
                format!("-- severity = \"info\"\n{}\n", sql.join("\n"))
            }
        };
        std::fs::write(dir.join("rules/readme_rule.sql"), rule).unwrap();
        if let Err(e) = check(&dir) {
            failures.push(format!(
                "README.md:{}: the SQL snippet fails check:\n{e}",
                block.line
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every alertname the README names in a snippet is one the shipped pipelines emit.
#[tokio::test(flavor = "multi_thread")]
async fn every_alertname_in_the_readme_is_emitted_by_a_shipped_pipeline() {
    let mut emitted = BTreeSet::new();
    for pipeline in std::fs::read_dir(repo().join("pipelines")).unwrap() {
        let loaded = faultline::load::load(&pipeline.unwrap().path())
            .await
            .unwrap();
        emitted.extend(loaded.rules.iter().map(|r| r.spec.alert.clone()));
        emitted.extend(
            loaded
                .config
                .detectors
                .iter()
                .map(|d| d.alert.clone().unwrap_or(d.id.clone())),
        );
    }
    let named = regex::Regex::new(r#"alertname"?\s*[=:]\s*"?([A-Za-z][A-Za-z0-9_]*)"#).unwrap();
    let mut unknown = Vec::new();
    for block in blocks(&readme()) {
        for c in named.captures_iter(&block.text) {
            if !emitted.contains(&c[1]) {
                unknown.push(format!("README.md:{}: {}", block.line, &c[1]));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "no shipped rule emits: {unknown:#?}\nemitted: {emitted:?}"
    );
}

/// The rule-header table lists every key `RuleHeader` accepts, no more.
#[test]
fn the_rule_header_table_lists_every_header_key() {
    let source = std::fs::read_to_string(repo().join("src/rules/mod.rs")).unwrap();
    let header = &source[source.find("pub struct RuleHeader").unwrap()..];
    let header = &header[..header.find("\n}").unwrap()];
    let keys: BTreeSet<String> = header
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .map(|l| {
            l.split(':')
                .next()
                .unwrap()
                .trim_end_matches('_')
                .to_string()
        })
        .collect();
    let text = readme();
    let table: BTreeSet<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("| key | required | default | meaning |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.split('`')
                .nth(1)
                .unwrap()
                .trim_matches(['[', ']'])
                .to_string()
        })
        .collect();
    assert!(keys.len() >= 12, "{keys:?}");
    assert_eq!(table, keys);
}

/// The checker of this module does catch a broken example: a command naming a directory
/// that does not exist, and an alertname no rule emits.
#[test]
fn a_broken_example_is_caught() {
    let broken = Block {
        lang: "sh".into(),
        text: "faultline check pipelines/broken   # a typo\n".into(),
        line: 1,
    };
    let found = commands(&broken);
    assert_eq!(found.len(), 1);
    let words: Vec<&str> = found[0].1.split_whitespace().collect();
    let missing: Vec<String> = repo_paths(&words)
        .into_iter()
        .filter(|p| !repo().join(p).exists())
        .collect();
    assert_eq!(missing, ["pipelines/broken"]);
    let cargo = Block {
        lang: "sh".into(),
        text: "cargo run -j2 -- run --pipeline pipelines/inference \\\n    --input x.jsonl\n"
            .into(),
        line: 1,
    };
    assert_eq!(
        commands(&cargo)[0].1,
        "faultline run --pipeline pipelines/inference --input x.jsonl"
    );
    assert!(faultline::cli::Cli::try_parse_from(["faultline", "run", "--inptu", "x"]).is_err());
}

/// Every `faultline …` example quoted in `--help` (of every command) parses.
#[test]
fn every_help_example_parses() {
    use clap::CommandFactory;
    let mut cli = faultline::cli::Cli::command();
    let mut helps = vec![cli.render_long_help().to_string()];
    for sub in cli.get_subcommands_mut() {
        helps.push(sub.render_long_help().to_string());
    }
    let quoted = regex::Regex::new(r"`(faultline [^`]*)`").unwrap();
    let mut examples = 0;
    for help in &helps {
        for c in quoted.captures_iter(&help.replace('\n', " ")) {
            let words: Vec<&str> = c[1]
                .split_whitespace()
                .take_while(|w| !["<", ">", "|"].contains(w))
                .collect();
            examples += 1;
            if let Err(e) = faultline::cli::Cli::try_parse_from(&words) {
                assert!(
                    !e.use_stderr(),
                    "`{}` in --help does not parse:\n{e}",
                    &c[1]
                );
            }
        }
    }
    assert!(examples >= 3, "only {examples} examples in --help");
    // A README section named in --help exists.
    let headings: Vec<String> = readme()
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let section = regex::Regex::new(r#"README\s+"([^"]+)""#).unwrap();
    for help in &helps {
        for c in section.captures_iter(help) {
            let name = c[1].split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                headings.iter().any(|h| h.contains(&name)),
                "--help names README section {name:?}, which does not exist"
            );
        }
    }
}
