//! Template miner on Loghub-2.0 (2k samples of 14 systems) beside Drain3, in one run.
//!
//! `cargo bench --bench loghub` (data: `$LOGHUB_DIR`, default `../shared/data/loghub-2k`).
//! Scores the `Content` column of every system with the Loghub-2.0 metrics (GA, FGA, PA,
//! FTA; see the data's README) for faultline's miner with its one default configuration —
//! final templates and streaming ones (each line's template on arrival) — and the whole raw
//! lines of `<S>_2k.log`, headers included, with their headers recognised (`logparse::header`)
//! and the rest mined, against the same truth; then runs Drain3 (PyPI `drain3` 0.9.11, per-system tuned as published, through
//! `scripts/loghub-venv` and `scripts/loghub-drain3`) on the same data and scores its
//! templates with the same code. Throughput: lines/s of one core, ours the median of
//! `REPS` fresh runs over each system, Drain3's from its own timer around its loop.
//! Prints a Markdown table (the one in BENCHMARKS.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use faultline::logparse::{HeaderLearner, MinerConfig, TemplateMiner};

const SYSTEMS: [&str; 14] = [
    "HDFS",
    "Hadoop",
    "Spark",
    "Zookeeper",
    "BGL",
    "HPC",
    "Thunderbird",
    "Linux",
    "HealthApp",
    "Apache",
    "Proxifier",
    "OpenSSH",
    "OpenStack",
    "Mac",
];
const REPS: usize = 31;

#[derive(Clone, Copy, Default)]
struct Scores {
    ga: f64,
    fga: f64,
    pa: f64,
    fta: f64,
}

impl Scores {
    fn add(&mut self, o: Scores) {
        self.ga += o.ga;
        self.fga += o.fga;
        self.pa += o.pa;
        self.fta += o.fta;
    }
    fn div(self, n: f64) -> Scores {
        Scores {
            ga: self.ga / n,
            fga: self.fga / n,
            pa: self.pa / n,
            fta: self.fta / n,
        }
    }
    fn cells(&self) -> String {
        format!(
            "{:.3} | {:.3} | {:.3} | {:.3}",
            self.ga, self.fga, self.pa, self.fta
        )
    }
}

fn f1(correct: usize, predicted: usize, truth: usize) -> f64 {
    let p = correct as f64 / predicted as f64;
    let r = correct as f64 / truth as f64;
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

/// The Loghub-2.0 metrics; lines are grouped by template string on both sides.
fn score(truth: &[String], predicted: &[String]) -> Scores {
    assert_eq!(truth.len(), predicted.len(), "one prediction per line");
    let mut true_groups: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut predicted_groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for i in 0..truth.len() {
        true_groups.entry(&truth[i]).or_default().push(i);
        predicted_groups.entry(&predicted[i]).or_default().push(i);
    }
    let (mut correct_lines, mut correct_groups, mut correct_templates) = (0, 0, 0);
    for (template, lines) in &predicted_groups {
        let first_truth = truth[lines[0]].as_str();
        let pure = lines.iter().all(|&i| truth[i] == first_truth);
        if pure && true_groups[first_truth].len() == lines.len() {
            correct_lines += lines.len();
            correct_groups += 1;
        }
        if pure && *template == first_truth {
            correct_templates += 1;
        }
    }
    let exact = (0..truth.len())
        .filter(|&i| truth[i] == predicted[i])
        .count();
    Scores {
        ga: correct_lines as f64 / truth.len() as f64,
        fga: f1(correct_groups, predicted_groups.len(), true_groups.len()),
        pa: exact as f64 / truth.len() as f64,
        fta: f1(correct_templates, predicted_groups.len(), true_groups.len()),
    }
}

/// The `Content` column, the whole raw lines (as many as the truth has rows) and the truth.
fn read_system(dir: &Path, system: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let path = dir
        .join(system)
        .join(format!("{system}_2k.log_structured_corrected.csv"));
    let mut reader =
        csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = reader.headers().expect("header row").clone();
    let column = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (content, template) = (column("Content"), column("EventTemplate"));
    let mut lines = Vec::new();
    let mut truth = Vec::new();
    for row in reader.records() {
        let row = row.expect("csv row");
        lines.push(row[content].to_string());
        truth.push(row[template].to_string());
    }
    let raw_path = dir.join(system).join(format!("{system}_2k.log"));
    let raw_bytes =
        std::fs::read(&raw_path).unwrap_or_else(|e| panic!("{}: {e}", raw_path.display()));
    let raw: Vec<String> = String::from_utf8_lossy(&raw_bytes)
        .split('\n')
        .take(truth.len())
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    assert_eq!(raw.len(), truth.len(), "{system}: one raw line per row");
    (lines, raw, truth)
}

struct Ours {
    final_scores: Scores,
    streaming_scores: Scores,
    raw_scores: Scores,
    raw_streaming_scores: Scores,
    seconds: f64,
    raw_seconds: f64,
}

/// Final and streaming templates of `lines`; with `headers`, each line's header is
/// recognised and only the message after it is mined (one stream: the file).
fn templates(lines: &[String], headers: bool) -> (Vec<String>, Vec<String>) {
    let mut learner = HeaderLearner::new();
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| {
            if !headers {
                return l.as_str();
            }
            let h = learner.parse("", l);
            let message = &l[h.message_start..];
            if message.trim().is_empty() {
                l.as_str()
            } else {
                message
            }
        })
        .collect();
    let mut miner = TemplateMiner::new(MinerConfig::default());
    let streaming = messages
        .iter()
        .map(|m| miner.parse(m).template.to_string())
        .collect();
    let final_templates = messages
        .iter()
        .map(|m| miner.classify(m).template.to_string())
        .collect();
    (final_templates, streaming)
}

/// Median seconds of `reps` fresh runs of the miner (and, for raw lines, header recognition).
fn seconds(lines: &[String], headers: bool, reps: usize) -> f64 {
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let mut miner = TemplateMiner::new(MinerConfig::default());
        let mut learner = HeaderLearner::new();
        let start = Instant::now();
        let mut ids = 0u64;
        for line in lines {
            let message = if headers {
                &line[learner.parse("", line).message_start..]
            } else {
                line.as_str()
            };
            ids = ids.wrapping_add(miner.parse(message).template_id);
        }
        times.push(start.elapsed().as_secs_f64());
        std::hint::black_box(ids);
    }
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}

fn run_ours(lines: &[String], raw: &[String], truth: &[String]) -> Ours {
    let (final_templates, streaming) = templates(lines, false);
    let (raw_final, raw_streaming) = templates(raw, true);
    Ours {
        final_scores: score(truth, &final_templates),
        streaming_scores: score(truth, &streaming),
        raw_scores: score(truth, &raw_final),
        raw_streaming_scores: score(truth, &raw_streaming),
        seconds: seconds(lines, false, REPS),
        raw_seconds: seconds(raw, true, REPS),
    }
}

/// Drain3's templates and seconds per system, or why there are none.
fn run_drain3(data: &Path) -> Result<HashMap<String, (Vec<String>, f64)>, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv = Command::new(root.join("scripts/loghub-venv"))
        .output()
        .map_err(|e| format!("scripts/loghub-venv: {e}"))?;
    if !venv.status.success() {
        return Err(format!(
            "scripts/loghub-venv failed: {}",
            String::from_utf8_lossy(&venv.stderr)
        ));
    }
    let python = String::from_utf8_lossy(&venv.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    let out = root.join("target/loghub/drain3");
    let status = Command::new(&python)
        .arg(root.join("scripts/loghub-drain3"))
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(&out)
        .status()
        .map_err(|e| format!("{python}: {e}"))?;
    if !status.success() {
        return Err("scripts/loghub-drain3 failed".into());
    }
    let mut results = HashMap::new();
    for system in SYSTEMS {
        let templates = std::fs::read_to_string(out.join(format!("{system}.templates")))
            .map_err(|e| e.to_string())?;
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("{system}.json")))
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let seconds = meta["seconds"].as_f64().ok_or("seconds missing")?;
        let lines = templates
            .split('\n')
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        results.insert(system.to_string(), (lines, seconds));
    }
    Ok(results)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we need.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let data = std::env::var_os("LOGHUB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/loghub-2k")
        });
    if !data.join("HDFS").exists() {
        eprintln!(
            "loghub: no data at {} (set LOGHUB_DIR); skipped",
            data.display()
        );
        return;
    }
    let drain3 = run_drain3(&data);
    if let Err(e) = &drain3 {
        eprintln!("loghub: Drain3 not run ({e}); faultline only");
    }
    println!("| system | faultline GA | FGA | PA | FTA | lines/s | Drain3 GA | FGA | PA | FTA | lines/s | speed ratio |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let (mut ours_sum, mut drain_sum) = (Scores::default(), Scores::default());
    let mut other_sums = [Scores::default(); 3];
    let (mut lines_total, mut ours_seconds, mut drain_seconds) = (0usize, 0.0, 0.0);
    let mut raw_seconds = 0.0;
    let mut other_rows = Vec::new();
    for system in SYSTEMS {
        let (lines, raw, truth) = read_system(&data, system);
        let ours = run_ours(&lines, &raw, &truth);
        ours_sum.add(ours.final_scores);
        let others = [
            ours.streaming_scores,
            ours.raw_scores,
            ours.raw_streaming_scores,
        ];
        for (sum, s) in other_sums.iter_mut().zip(others) {
            sum.add(s);
        }
        other_rows.push((system, others));
        lines_total += lines.len();
        ours_seconds += ours.seconds;
        raw_seconds += ours.raw_seconds;
        let ours_rate = lines.len() as f64 / ours.seconds;
        let drain_cells = match &drain3 {
            Ok(d) => {
                let (templates, seconds) = &d[system];
                let s = score(&truth, templates);
                drain_sum.add(s);
                drain_seconds += seconds;
                let rate = lines.len() as f64 / seconds;
                format!("{} | {rate:.0} | {:.1}×", s.cells(), ours_rate / rate)
            }
            Err(_) => "– | – | – | – | – | –".into(),
        };
        println!(
            "| {system} | {} | {ours_rate:.0} | {drain_cells} |",
            ours.final_scores.cells()
        );
    }
    let n = SYSTEMS.len() as f64;
    let ours_rate = lines_total as f64 / ours_seconds;
    let drain_cells = if drain3.is_ok() {
        let rate = lines_total as f64 / drain_seconds;
        format!(
            "{} | {rate:.0} | {:.1}×",
            drain_sum.div(n).cells(),
            ours_rate / rate
        )
    } else {
        "– | – | – | – | – | –".into()
    };
    println!(
        "| **average** (lines/s pooled) | {} | {ours_rate:.0} | {drain_cells} |",
        ours_sum.div(n).cells()
    );
    print_modes(&other_rows, &other_sums, lines_total as f64 / raw_seconds);
}

/// The second table: streaming templates on `Content`, and raw lines (final, streaming).
fn print_modes(rows: &[(&str, [Scores; 3])], sums: &[Scores; 3], raw_rate: f64) {
    let n = rows.len() as f64;
    println!();
    println!("| system | streaming GA | FGA | PA | FTA | raw lines GA | FGA | PA | FTA | raw streaming GA | FGA | PA | FTA |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (system, s) in rows {
        println!(
            "| {system} | {} | {} | {} |",
            s[0].cells(),
            s[1].cells(),
            s[2].cells()
        );
    }
    println!(
        "| **average** | {} | {} | {} |",
        sums[0].div(n).cells(),
        sums[1].div(n).cells(),
        sums[2].div(n).cells()
    );
    println!();
    println!("raw lines with header recognition: {raw_rate:.0} lines/s pooled");
}
