//! Text into terms for matching: English words split at case changes, underscores, dots and
//! digits (`CudaOutOfMemory`, `requested_gib`), lower-cased, stop words dropped, stemmed with
//! the Snowball English stemmer (`rust-stemmers`); numbers dropped (values differ between
//! alerts, they do not say what is wrong); Chinese (any CJK run) as characters and character
//! bigrams, the approach of Lucene's CJK analyzer — a dictionary segmenter (jieba) would
//! need a multi-megabyte dictionary for little gain on the short texts alerts carry.

use rust_stemmers::{Algorithm, Stemmer};

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is",
    "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "were", "with", "will",
    "than", "then", "there", "these", "those", "into", "when", "which", "while", "who", "per",
];

/// Turns text into stemmed terms.
pub struct Analyzer {
    stemmer: Stemmer,
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer {
            stemmer: Stemmer::create(Algorithm::English),
        }
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x3040..=0x30FF | 0xAC00..=0xD7AF)
}

impl Analyzer {
    /// The terms of `text`, in order.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut word = String::new();
        let mut cjk: Vec<char> = Vec::new();
        for c in text.chars() {
            if is_cjk(c) {
                self.flush_word(&mut word, &mut out);
                cjk.push(c);
            } else {
                flush_cjk(&mut cjk, &mut out);
                if c.is_alphanumeric() {
                    word.push(c);
                } else {
                    self.flush_word(&mut word, &mut out);
                }
            }
        }
        self.flush_word(&mut word, &mut out);
        flush_cjk(&mut cjk, &mut out);
        out
    }

    /// Splits a run of letters and digits at case changes and letter/digit boundaries.
    fn flush_word(&self, word: &mut String, out: &mut Vec<String>) {
        let chars: Vec<char> = word.chars().collect();
        let mut start = 0;
        for i in 1..=chars.len() {
            let boundary = i == chars.len() || {
                let (a, b) = (chars[i - 1], chars[i]);
                let next_lower = chars.get(i + 1).is_some_and(|c| c.is_lowercase());
                a.is_lowercase() && b.is_uppercase()
                    || a.is_uppercase() && b.is_uppercase() && next_lower
                    || a.is_alphabetic() != b.is_alphabetic()
            };
            if boundary {
                let part: String = chars[start..i].iter().collect();
                self.push_term(&part, out);
                start = i;
            }
        }
        word.clear();
    }

    fn push_term(&self, part: &str, out: &mut Vec<String>) {
        let lower = part.to_lowercase();
        if lower.len() < 2 || lower.chars().all(|c| c.is_ascii_digit()) {
            return;
        }
        if STOP_WORDS.contains(&lower.as_str()) {
            return;
        }
        out.push(self.stemmer.stem(&lower).into_owned());
    }
}

/// A CJK run as its characters and bigrams.
fn flush_cjk(run: &mut Vec<char>, out: &mut Vec<String>) {
    for (i, c) in run.iter().enumerate() {
        out.push(c.to_string());
        if let Some(next) = run.get(i + 1) {
            out.push(format!("{c}{next}"));
        }
    }
    run.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_split_stem_and_drop_numbers() {
        let a = Analyzer::default();
        assert_eq!(
            a.terms("CudaOutOfMemory: requested_gib=2.5 on gpu0"),
            ["cuda", "out", "memori", "request", "gib", "gpu"]
        );
        assert_eq!(a.terms("NCCLTimeout HWC"), ["nccl", "timeout", "hwc"]);
    }

    #[test]
    fn chinese_runs_give_characters_and_bigrams() {
        let a = Analyzer::default();
        assert_eq!(
            a.terms("显存不足 OOM"),
            ["显", "显存", "存", "存不", "不", "不足", "足", "oom"]
        );
    }
}
