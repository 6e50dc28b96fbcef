//! TF-IDF vectors and cosine similarity (the brief's method): sublinear term frequency
//! (1 + ln tf), smoothed inverse document frequency, L2-normalised vectors. A query term no
//! entry has counts as the rarest term would, so words the knowledge base does not know
//! lower the similarity instead of vanishing.

use std::collections::{BTreeMap, HashMap};

/// The entries' vectors, with postings for fast scoring.
pub struct Index {
    idf: HashMap<String, f64>,
    /// The idf of a term no entry has.
    unseen_idf: f64,
    postings: HashMap<String, Vec<(usize, f64)>>,
    docs: Vec<BTreeMap<String, f64>>,
}

fn counts(terms: &[String]) -> BTreeMap<&str, u32> {
    let mut c = BTreeMap::new();
    for t in terms {
        *c.entry(t.as_str()).or_insert(0) += 1;
    }
    c
}

fn normalise(v: &mut BTreeMap<String, f64>) {
    let norm = v.values().map(|w| w * w).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.values_mut().for_each(|w| *w /= norm);
    }
}

impl Index {
    /// Indexes documents given as terms.
    pub fn build(docs: &[Vec<String>]) -> Self {
        let n = docs.len() as f64;
        let mut df: HashMap<String, u32> = HashMap::new();
        for d in docs {
            for t in counts(d).keys() {
                *df.entry((*t).to_string()).or_insert(0) += 1;
            }
        }
        let idf: HashMap<String, f64> = df
            .into_iter()
            .map(|(t, f)| (t, ((1.0 + n) / (1.0 + f64::from(f))).ln() + 1.0))
            .collect();
        let unseen_idf = (1.0 + n).ln() + 1.0;
        let mut postings: HashMap<String, Vec<(usize, f64)>> = HashMap::new();
        let mut vectors = Vec::with_capacity(docs.len());
        for (i, d) in docs.iter().enumerate() {
            let mut v: BTreeMap<String, f64> = counts(d)
                .into_iter()
                .map(|(t, c)| (t.to_string(), (1.0 + f64::from(c).ln()) * idf[t]))
                .collect();
            normalise(&mut v);
            for (t, w) in &v {
                postings.entry(t.clone()).or_default().push((i, *w));
            }
            vectors.push(v);
        }
        Index {
            idf,
            unseen_idf,
            postings,
            docs: vectors,
        }
    }

    /// The normalised query vector of `terms`.
    pub fn vector(&self, terms: &[String]) -> BTreeMap<String, f64> {
        let mut v: BTreeMap<String, f64> = counts(terms)
            .into_iter()
            .map(|(t, c)| {
                let idf = self.idf.get(t).copied().unwrap_or(self.unseen_idf);
                (t.to_string(), (1.0 + f64::from(c).ln()) * idf)
            })
            .collect();
        normalise(&mut v);
        v
    }

    /// Cosine similarity of the query with every document, in document order.
    pub fn similarities(&self, query: &BTreeMap<String, f64>) -> Vec<f64> {
        let mut sims = vec![0.0; self.docs.len()];
        for (t, qw) in query {
            for (doc, dw) in self.postings.get(t).map_or(&[][..], Vec::as_slice) {
                sims[*doc] += qw * dw;
            }
        }
        sims
    }

    /// The terms that contribute most to the query's similarity with document `doc`.
    pub fn shared_terms(&self, query: &BTreeMap<String, f64>, doc: usize, n: usize) -> Vec<String> {
        let mut shared: Vec<(f64, &String)> = query
            .iter()
            .filter_map(|(t, qw)| self.docs[doc].get(t).map(|dw| (qw * dw, t)))
            .collect();
        shared.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        shared.into_iter().take(n).map(|(_, t)| t.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_document_sharing_rare_terms_scores_highest() {
        let idx = Index::build(&[
            terms("cuda memory batch size lower"),
            terms("nccl timeout rank collective"),
            terms("memory pressure gpu level"),
        ]);
        let q = idx.vector(&terms("cuda out memory batch"));
        let s = idx.similarities(&q);
        assert!(s[0] > s[2] && s[2] > s[1], "{s:?}");
        assert_eq!(s[1], 0.0);
        assert!(s.iter().all(|x| (0.0..=1.0 + 1e-9).contains(x)));
        assert_eq!(idx.shared_terms(&q, 0, 2).len(), 2);
    }

    #[test]
    fn unknown_words_lower_the_similarity() {
        let idx = Index::build(&[terms("disk full"), terms("cuda memory")]);
        let known = idx.similarities(&idx.vector(&terms("cuda memory")))[1];
        let noisy = idx.similarities(&idx.vector(&terms("cuda memory zzz yyy")))[1];
        assert!(noisy < known);
    }
}
