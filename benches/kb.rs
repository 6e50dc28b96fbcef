//! The knowledge base, measured: accuracy and calibration on labelled alerts, and matching
//! time with 1 000 entries against a baseline measured in the same run (turning the alert
//! into a query vector, which any text matcher must do).
//!
//! `cargo bench --bench kb` prints, for `tests/kb/calibration.jsonl` and
//! `tests/kb/eval.jsonl`: top-1, top-3, abstention, the reliability table and the expected
//! calibration error; `-- --fit` also fits the calibration on the calibration set and prints
//! the coefficients for `src/kb/score.rs`.

use std::path::Path;
use std::time::Instant;

use faultline::kb::entry::parse_entry;
use faultline::kb::eval::{fit, parse_cases, report, run, Case, Report};
use faultline::kb::{alert_text, KnowledgeBase};
use faultline::rules::EvalLimits;

fn cases(root: &Path, name: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(root.join("tests/kb").join(name)).unwrap();
    parse_cases(&text).unwrap()
}

fn print(name: &str, r: &Report) {
    println!(
        "{name}: {} cases ({} answerable): top-1 {:.3}, top-3 {:.3} (with the closest entries of \
         abstentions {:.3}), abstained on {:.3} of the unanswerable and {:.3} of the answerable, \
         ECE {:.3}",
        r.cases,
        r.answerable,
        r.top1,
        r.top3,
        r.top3_named,
        r.abstained_correctly,
        r.abstained_wrongly,
        r.ece
    );
    println!("  confidence   n   mean conf   accuracy");
    for b in r.bins.iter().filter(|b| b.count > 0) {
        println!(
            "  {:.1}-{:.1}   {:>4}   {:>9.3}   {:>8.3}",
            b.from,
            b.from + 0.1,
            b.count,
            b.mean_confidence,
            b.accuracy
        );
    }
}

/// 1 000 entries: the shipped ones, then variants with their words shuffled between entries.
fn thousand(root: &Path) -> Vec<faultline::kb::entry::Entry> {
    let dir = root.join("pipelines/inference/kb");
    let mut texts: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let id = p.file_stem().unwrap().to_str().unwrap().to_string();
            (id, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    texts.sort();
    let n = texts.len();
    (0..1000)
        .map(|i| {
            let (id, text) = &texts[i % n];
            let other = &texts[(i * 7 + 3) % n].1;
            let new_id = format!("{id}_{i}");
            let mut t = text.replace(&format!("id = \"{id}\""), &format!("id = \"{new_id}\""));
            let words: Vec<&str> = other.split_whitespace().skip(i % 17).take(25).collect();
            t.push_str(&format!("\n# {}\n", words.join(" ")));
            t = t.replacen("keywords = [", &format!("keywords = [\"v{i}\", "), 1);
            parse_entry(&dir.join(format!("{new_id}.toml")), &t).unwrap()
        })
        .collect()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fitting = std::env::args().any(|a| a == "--fit");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let loaded = rt
        .block_on(faultline::load::load(&root.join("pipelines/inference")))
        .unwrap();
    let limits = loaded.config.evaluation.limits();
    let kb = rt
        .block_on(KnowledgeBase::new(
            loaded.entries.clone(),
            loaded.config.kb.clone(),
            limits,
        ))
        .unwrap();
    println!("{} entries", kb.len());
    let calibration = cases(root, "calibration.jsonl");
    let evaluation = cases(root, "eval.jsonl");
    if let Ok(name) = std::env::var("KB_CASE") {
        // Explain one case: every suggestion in full.
        let window = faultline::tables::empty_batch(faultline::model::Window {
            start: faultline::model::EventTime(0),
            end: faultline::model::EventTime(60_000_000_000),
        });
        for c in calibration
            .iter()
            .chain(&evaluation)
            .filter(|c| c.case == name)
        {
            let s = rt.block_on(kb.suggest(&c.alert, &window, &faultline::rules::Unbounded));
            println!("{}", serde_json::to_string_pretty(&s).unwrap());
        }
        return;
    }
    let cal = rt.block_on(run(&kb, &calibration));
    if fitting {
        let w = fit(&cal);
        println!(
            "fitted: INTERCEPT = {:.3}, SCORE = {:.3}, MARGIN = {:.3}, ALERT = {:.3}",
            w[0], w[1], w[2], w[3]
        );
    }
    print("calibration", &report(&cal));
    let ev = rt.block_on(run(&kb, &evaluation));
    print("evaluation", &report(&ev));
    for o in ev
        .iter()
        .filter(|o| !o.top1() && (o.expected.is_some() || !o.suggested.is_empty()))
    {
        println!(
            "  miss {}: expected {:?}, got {:?} ({:.2})",
            o.case, o.expected, o.suggested, o.confidence
        );
    }

    // Matching time with 1 000 entries.
    let big = rt
        .block_on(KnowledgeBase::new(
            thousand(root),
            loaded.config.kb.clone(),
            EvalLimits::default(),
        ))
        .unwrap();
    let alerts: Vec<_> = evaluation.iter().map(|c| c.alert.clone()).collect();
    let analyzer = faultline::kb::text::Analyzer::default();
    let rounds = 20;
    let t = Instant::now();
    for _ in 0..rounds {
        for a in &alerts {
            std::hint::black_box(analyzer.terms(&alert_text(a, &[])));
        }
    }
    let baseline = t.elapsed().as_secs_f64() / (rounds * alerts.len()) as f64;
    let t = Instant::now();
    for _ in 0..rounds {
        for a in &alerts {
            std::hint::black_box(big.rank(a, 5));
        }
    }
    let matching = t.elapsed().as_secs_f64() / (rounds * alerts.len()) as f64;
    println!(
        "matching with {} entries: {:.1} µs per alert; baseline (alert text to terms) {:.1} µs; \
         ratio {:.1}x",
        big.len(),
        matching * 1e6,
        baseline * 1e6,
        matching / baseline
    );
}
