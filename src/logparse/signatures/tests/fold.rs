//! Tests of `TracebackFolder`: folding rules, bounds, and the exactly-once / per-stream order
//! guarantee over generated interleavings.

use super::super::{extract, FoldConfig, FoldStats, Folded, SignatureKind, TracebackFolder};

const MS: i64 = 1_000_000;
const SEC: i64 = 1_000 * MS;

/// A record as the caller would hold it: which stream, and its position in that stream.
type Item = (String, usize);

/// Feeds `(stream, time, line)` records, numbering each stream's records from 0.
struct Feeder {
    folder: TracebackFolder<Item>,
    next: std::collections::BTreeMap<String, usize>,
    out: Vec<Folded<Item>>,
}

impl Feeder {
    fn new(cfg: FoldConfig) -> Self {
        Self {
            folder: TracebackFolder::new(cfg),
            next: Default::default(),
            out: Vec::new(),
        }
    }

    fn push(&mut self, stream: &str, t: i64, line: &str) -> usize {
        let n = self.next.entry(stream.to_string()).or_default();
        let item = (stream.to_string(), *n);
        *n += 1;
        // Every record fed checks the shortcut the pipeline takes: a record said to pass
        // through comes straight back, alone.
        let through = self.folder.passes_through(stream, line);
        let out = self.folder.push(stream, t, line, item.clone());
        if through {
            assert!(
                matches!(&out[..], [Folded::Single(i)] if *i == item),
                "{line:?} was said to pass through"
            );
        }
        let emitted = out.len();
        self.out.extend(out);
        emitted
    }

    fn push_lines(&mut self, stream: &str, t: i64, text: &str) {
        for line in text.lines() {
            self.push(stream, t, line);
        }
    }

    fn finish(mut self) -> Vec<Folded<Item>> {
        self.out.extend(self.folder.flush_all());
        assert_eq!(self.folder.pending(), 0);
        self.out
    }
}

fn folds(out: &[Folded<Item>]) -> Vec<&str> {
    out.iter()
        .filter_map(|f| match f {
            Folded::Folded { text, .. } => Some(text.as_str()),
            Folded::Single(_) => None,
        })
        .collect()
}

const OOM_TRACEBACK: &str = "Traceback (most recent call last):
  File \"/app/train.py\", line 188, in main
    loss = model(batch).loss
           ^^^^^^^^^^^^
  File \"/app/model.py\", line 77, in forward
    attn = torch.softmax(scores, dim=-1)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 4.50 GiB. GPU 1 has a total capacity of 139.81 GiB of which 2.12 GiB is free. Of the allocated memory 130.12 GiB is allocated by PyTorch, and 6.02 GiB is reserved by PyTorch but unallocated.";

const SHORT_TRACEBACK: &str = "Traceback (most recent call last):
  File \"/app/infer.py\", line 30, in <module>
    logits = head(features)
RuntimeError: mat1 and mat2 shapes cannot be multiplied (32x512 and 256x10)";

#[test]
fn oom_traceback_split_across_records_folds_despite_another_stream() {
    let mut f = Feeder::new(FoldConfig::default());
    let other = [
        "INFO step=1 loss=0.5",
        "Traceback (most recent call last):",
        "  File \"/srv/api.py\", line 9, in handle",
        "KeyError: 'user'",
        "INFO served /v1/chat 200",
    ];
    for (i, line) in OOM_TRACEBACK.lines().enumerate() {
        let t = i64::try_from(i).expect("small") * 10 * MS;
        f.push("trainer/gpu-node-7/4242", t, line);
        if let Some(o) = other.get(i) {
            f.push("api/web-1/17", t + MS, o);
        }
    }
    f.push(
        "trainer/gpu-node-7/4242",
        SEC,
        "INFO saving emergency checkpoint",
    );
    let out = f.finish();
    let texts = folds(&out);
    assert_eq!(texts.len(), 2, "{out:?}");
    assert!(texts.contains(&OOM_TRACEBACK));
    assert!(texts.contains(&"Traceback (most recent call last):\n  File \"/srv/api.py\", line 9, in handle\nKeyError: 'user'"));
    let sig = extract(OOM_TRACEBACK).expect("signature");
    assert_eq!(sig.kind, SignatureKind::CudaOom);
    assert_eq!(sig.field("requested_bytes"), Some("4831838208"));
}

#[test]
fn ordinary_lines_pass_through_at_once() {
    let mut f = Feeder::new(FoldConfig::default());
    assert_eq!(f.push("s", 0, "INFO hello"), 1);
    assert_eq!(f.push("s", 1, "  indented but no traceback"), 1);
    assert_eq!(f.push("s", 2, ""), 1);
    assert_eq!(f.folder.pending(), 0);
}

#[test]
fn chained_exceptions_stay_in_one_fold() {
    let chained = "Traceback (most recent call last):\n  File \"a.py\", line 1, in f\nKeyError: 'x'\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"a.py\", line 3, in f\nRuntimeError: expected scalar type Float but found Double\n\nThe above exception was the direct cause of the following exception:\n\nTraceback (most recent call last):\n  File \"a.py\", line 9, in main\nValueError: step failed";
    let mut f = Feeder::new(FoldConfig::default());
    f.push_lines("s", 0, chained);
    f.push("s", 1, "INFO after");
    let out = f.finish();
    assert_eq!(folds(&out), vec![chained]);
    assert_eq!(out.len(), 2);
}

#[test]
fn trailing_blank_lines_leave_the_fold_as_singles() {
    let mut f = Feeder::new(FoldConfig::default());
    f.push_lines("s", 0, SHORT_TRACEBACK);
    f.push("s", 0, "");
    f.push("s", 0, "");
    f.push("s", 0, "INFO restarting");
    let out = f.finish();
    assert_eq!(folds(&out), vec![SHORT_TRACEBACK]);
    let singles: Vec<usize> = out
        .iter()
        .filter_map(|o| match o {
            Folded::Single((_, n)) => Some(*n),
            Folded::Folded { .. } => None,
        })
        .collect();
    assert_eq!(singles, vec![4, 5, 6]);
}

#[test]
fn traceback_at_end_of_input_is_emitted_by_flush_all() {
    let mut f = Feeder::new(FoldConfig::default());
    f.push_lines("s", 0, SHORT_TRACEBACK);
    assert!(f.out.is_empty(), "the last line may still continue");
    assert_eq!(f.folder.pending(), 4);
    assert_eq!(folds(&f.finish()), vec![SHORT_TRACEBACK]);
}

#[test]
fn gap_ends_a_fold_in_push_and_in_flush() {
    let cfg = FoldConfig::default();
    let gap = cfg.max_gap_ns;
    let mut f = Feeder::new(cfg.clone());
    f.push("s", 0, "Traceback (most recent call last):");
    f.push("s", MS, "  File \"a.py\", line 1, in f");
    // A late continuation line no longer joins: the fold is emitted, the line passes alone.
    f.push("s", MS + gap + 1, "    f()");
    assert_eq!(folds(&f.out).len(), 1);
    assert_eq!(f.folder.stats().expired, 1);

    let mut g = Feeder::new(cfg);
    g.push_lines("s", 0, SHORT_TRACEBACK);
    assert!(
        g.folder.flush_older_than(gap).is_empty(),
        "exactly max_gap old is not older"
    );
    let flushed = g.folder.flush_older_than(gap + 1);
    assert_eq!(folds(&flushed), vec![SHORT_TRACEBACK]);
    assert_eq!(g.folder.pending(), 0);
}

#[test]
fn max_lines_cuts_a_fold_and_the_rest_passes_as_singles() {
    let cfg = FoldConfig {
        max_lines: 3,
        ..FoldConfig::default()
    };
    let mut f = Feeder::new(cfg);
    f.push_lines("s", 0, SHORT_TRACEBACK);
    let out = f.finish();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].len(), 3);
    assert!(matches!(&out[1], Folded::Single((_, 3))));
}

#[test]
fn max_streams_emits_the_least_recently_extended_fold() {
    let cfg = FoldConfig {
        max_streams: 2,
        ..FoldConfig::default()
    };
    let mut f = Feeder::new(cfg);
    for (t, s) in ["a", "b", "c"].into_iter().enumerate() {
        f.push(
            s,
            i64::try_from(t).expect("small"),
            "Traceback (most recent call last):",
        );
    }
    assert_eq!(f.folder.stats().evicted, 1);
    assert_eq!(f.folder.pending(), 2);
    assert!(matches!(&f.out[..], [Folded::Single((s, 0))] if s == "a"));
}

#[test]
fn javascript_and_java_stacks_fold() {
    let js = "Uncaught TypeError: Cannot read properties of undefined (reading 'map')\n    at App (https://x.example/main.js:2:1234)\n    at renderWithHooks (https://x.example/vendor.js:1:50312)";
    let firefox = "TypeError: data is undefined\nApp@https://x.example/main.js:2:1234\n@https://x.example/main.js:1:1";
    let java = "Exception in thread \"main\" java.lang.IllegalStateException: boom\n\tat com.example.App.run(App.java:42)\nCaused by: java.io.IOException: closed\n\tat com.example.Io.read(Io.java:7)\n\t... 3 more";
    let mut f = Feeder::new(FoldConfig::default());
    for text in [js, firefox, java] {
        f.push_lines("s", 0, text);
        f.push("s", 0, "INFO next");
    }
    let out = f.finish();
    assert_eq!(folds(&out), vec![js, firefox, java]);
    let sig = extract(js).expect("browser error");
    assert_eq!(sig.field("source"), Some("https://x.example/main.js"));
}

#[test]
fn multi_line_record_ends_a_fold_and_passes_alone() {
    let mut f = Feeder::new(FoldConfig::default());
    f.push("s", 0, "Traceback (most recent call last):");
    f.push("s", 0, "  File \"a.py\", line 1, in f");
    f.push("s", 0, SHORT_TRACEBACK);
    let out = f.finish();
    assert_eq!(out.len(), 2);
    assert!(matches!(&out[1], Folded::Single((_, 2))));
}

#[test]
fn next_traceback_right_after_a_fold_starts_a_new_fold() {
    let mut f = Feeder::new(FoldConfig::default());
    f.push_lines("s", 0, SHORT_TRACEBACK);
    f.push_lines("s", 0, SHORT_TRACEBACK);
    assert_eq!(folds(&f.finish()), vec![SHORT_TRACEBACK, SHORT_TRACEBACK]);
}

#[test]
fn rank_prefixed_traceback_folds() {
    let text = "[rank1]: Traceback (most recent call last):\n[rank1]:   File \"t.py\", line 5, in <module>\n[rank1]:     main()\n[rank1]: RuntimeError: The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1";
    let mut f = Feeder::new(FoldConfig::default());
    f.push_lines("s", 0, text);
    f.push("s", 0, "[rank1]: INFO exiting");
    assert_eq!(folds(&f.finish()), vec![text]);
}

/// A small deterministic generator (SplitMix64), so the property test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).expect("fits")).expect("fits")
    }
}

/// Lines one stream might print: tracebacks (plain, chained, JAX-style, truncated), JS and
/// Java stacks, blank lines, ordinary and multi-line records.
fn script(rng: &mut Rng) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..(5 + rng.below(20)) {
        match rng.below(9) {
            0 | 1 => lines.push(format!("INFO step={} loss=0.5", rng.below(1000))),
            2 => lines.extend(SHORT_TRACEBACK.lines().map(String::from)),
            3 => lines.extend(OOM_TRACEBACK.lines().map(String::from)),
            4 => {
                lines.extend(SHORT_TRACEBACK.lines().map(String::from));
                lines.extend(
                    [
                        "",
                        "During handling of the above exception, another exception occurred:",
                        "",
                    ]
                    .map(String::from),
                );
                lines.extend(OOM_TRACEBACK.lines().map(String::from));
            }
            5 => lines.extend(
                [
                    "",
                    "",
                    "  stray indented",
                    "The preceding is the original exception",
                    "-----",
                ]
                .map(String::from),
            ),
            6 => lines.extend(
                [
                    "Uncaught Error: x",
                    "    at f (https://a.example/a.js:1:2)",
                    "g@https://a.example/a.js:3:4",
                    "TypeError: y",
                ]
                .map(String::from),
            ),
            7 => lines.push("multi\nline record".to_string()),
            _ => lines.extend(
                SHORT_TRACEBACK
                    .lines()
                    .take(1 + rng.below(3))
                    .map(String::from),
            ),
        }
    }
    lines
}

#[test]
fn every_record_comes_out_exactly_once_in_stream_order() {
    let mut total = FoldStats::default();
    for seed in 0..300u64 {
        let mut rng = Rng(seed);
        let cfg = FoldConfig {
            max_lines: [2, 3, 7, 200][rng.below(4)],
            max_gap_ns: 2 * SEC,
            max_streams: 1 + rng.below(3),
        };
        let streams = ["a", "b", "c", "d"];
        let scripts: Vec<Vec<String>> = streams.iter().map(|_| script(&mut rng)).collect();
        let mut cursor = [0usize; 4];
        let mut f = Feeder::new(cfg.clone());
        let mut t = 0i64;
        while cursor.iter().zip(&scripts).any(|(c, s)| *c < s.len()) {
            let i = rng.below(streams.len());
            let Some(line) = scripts[i].get(cursor[i]) else {
                continue;
            };
            cursor[i] += 1;
            t += match rng.below(20) {
                0 => 3 * SEC,
                1..=3 => 0,
                _ => i64::try_from(rng.below(50)).expect("small") * MS,
            };
            f.push(streams[i], t, line);
            if rng.below(10) == 0 {
                let flushed = f.folder.flush_older_than(t);
                f.out.extend(flushed);
            }
        }
        let stats = f.folder.stats();
        total.folds += stats.folds;
        total.truncated += stats.truncated;
        total.expired += stats.expired;
        total.evicted += stats.evicted;
        let out = f.finish();

        let mut seen: Vec<Vec<usize>> = vec![Vec::new(); streams.len()];
        for o in &out {
            if let Folded::Folded { parts, text } = o {
                assert!(
                    parts.len() >= 2 && parts.len() <= cfg.max_lines,
                    "seed {seed}: fold size"
                );
                assert!(
                    parts.iter().all(|(s, _)| *s == parts[0].0),
                    "seed {seed}: one stream per fold"
                );
                let i = streams
                    .iter()
                    .position(|s| *s == parts[0].0)
                    .expect("known stream");
                let joined: Vec<&str> =
                    parts.iter().map(|(_, n)| scripts[i][*n].as_str()).collect();
                assert_eq!(*text, joined.join("\n"), "seed {seed}: fold text");
            }
            for (s, n) in o.clone().into_parts() {
                let i = streams.iter().position(|x| *x == s).expect("known stream");
                seen[i].push(n);
            }
        }
        for (i, got) in seen.iter().enumerate() {
            let want: Vec<usize> = (0..scripts[i].len()).collect();
            assert_eq!(
                *got, want,
                "seed {seed}: stream {} records out of order, lost or duplicated",
                streams[i]
            );
        }
    }
    // The generator must have exercised every way a fold ends.
    assert!(
        total.folds > 1000 && total.truncated > 0 && total.expired > 0 && total.evicted > 0,
        "{total:?}"
    );
}
