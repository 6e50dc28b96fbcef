//! Feedback on suggestions: `{suggestion_id, alert_fingerprint, verdict, action?, by?, at}`
//! from `faultline.feedback` (or `--feedback FILE`). Each entry counts its verdicts; the
//! statistics depend only on the set of feedback records (duplicates are ignored), so
//! replaying the feedback from the start rebuilds them exactly. A `fixed` verdict whose
//! `action` matches no entry is kept as a candidate entry for a person to promote.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Similarity above which an action text is taken to describe an existing entry.
pub const ACTION_MATCH: f64 = 0.3;

/// What the person who acted on a suggestion says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The suggestion fixed it.
    Fixed,
    /// Right diagnosis, but it did not fix it.
    NotFixed,
    /// The suggestion did not fit the alert.
    Wrong,
}

/// One feedback record.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    pub suggestion_id: String,
    pub alert_fingerprint: String,
    pub verdict: Verdict,
    /// What was done, in the person's words.
    #[serde(default)]
    pub action: Option<String>,
    /// Who says so.
    #[serde(default)]
    pub by: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

/// Verdicts on one entry's suggestions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct EntryStats {
    pub fixed: u32,
    pub not_fixed: u32,
    pub wrong: u32,
}

impl EntryStats {
    pub fn verdicts(&self) -> u32 {
        self.fixed + self.not_fixed + self.wrong
    }
}

/// An action that fixed an alert and that no entry describes yet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct CandidateEntry {
    pub action: String,
    pub suggestion_id: String,
    pub alert_fingerprint: String,
    pub by: Option<String>,
    pub at: String,
}

/// What feedback taught: per-entry statistics, the records seen, candidate entries.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KbState {
    pub stats: BTreeMap<String, EntryStats>,
    /// Keys of the records applied (duplicates are ignored).
    pub seen: BTreeSet<String>,
    /// Candidate entries, sorted (by time, suggestion, action) so the state does not depend
    /// on the order feedback arrived in.
    #[serde(default)]
    pub candidate_details: Vec<CandidateEntry>,
}

/// The remediation a suggestion id names (`REMEDIATION-HASH`).
pub fn remediation_of(suggestion_id: &str) -> Option<&str> {
    suggestion_id
        .rsplit_once('-')
        .map(|(r, _)| r)
        .filter(|r| !r.is_empty() && *r != "none")
}

impl KbState {
    /// (fixed, all verdicts) of an entry.
    pub fn record(&self, entry: &str) -> (u32, u32) {
        self.stats
            .get(entry)
            .map_or((0, 0), |s| (s.fixed, s.verdicts()))
    }

    /// Applies a record about `entry` (if it names one); `action_known` says whether its
    /// action text matches an existing entry. False for a duplicate or an unknown entry.
    pub fn apply(&mut self, f: &Feedback, entry: Option<&str>, action_known: bool) -> bool {
        let key = format!(
            "{}|{}|{:?}|{}|{}",
            f.suggestion_id,
            f.alert_fingerprint,
            f.verdict,
            f.by.as_deref().unwrap_or(""),
            f.at
        );
        if self.seen.contains(&key) {
            return false;
        }
        let mut used = false;
        if let Some(entry) = entry {
            let s = self.stats.entry(entry.to_string()).or_default();
            match f.verdict {
                Verdict::Fixed => s.fixed += 1,
                Verdict::NotFixed => s.not_fixed += 1,
                Verdict::Wrong => s.wrong += 1,
            }
            used = true;
        }
        if let (Verdict::Fixed, Some(action), false) = (f.verdict, &f.action, action_known) {
            let candidate = CandidateEntry {
                action: action.clone(),
                suggestion_id: f.suggestion_id.clone(),
                alert_fingerprint: f.alert_fingerprint.clone(),
                by: f.by.clone(),
                at: f.at.clone(),
            };
            let order =
                |c: &CandidateEntry| (c.at.clone(), c.suggestion_id.clone(), c.action.clone());
            let key = order(&candidate);
            if let Err(at) = self.candidate_details.binary_search_by_key(&key, order) {
                self.candidate_details.insert(at, candidate);
            }
            used = true;
        }
        if used {
            self.seen.insert(key);
        }
        used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fb(id: &str, verdict: Verdict, at: &str) -> Feedback {
        Feedback {
            suggestion_id: id.into(),
            alert_fingerprint: "fp".into(),
            verdict,
            action: None,
            by: Some("ana".into()),
            at: at.into(),
        }
    }

    #[test]
    fn duplicates_are_ignored_and_order_does_not_matter() {
        let records = [
            fb("cuda_oom_batch_size-1", Verdict::Fixed, "t1"),
            fb("cuda_oom_batch_size-2", Verdict::Wrong, "t2"),
            fb("cuda_oom_batch_size-1", Verdict::Fixed, "t1"),
        ];
        let mut a = KbState::default();
        for r in &records {
            a.apply(r, remediation_of(&r.suggestion_id), true);
        }
        let mut b = KbState::default();
        for r in records.iter().rev() {
            b.apply(r, remediation_of(&r.suggestion_id), true);
        }
        assert_eq!(a, b);
        assert_eq!(a.record("cuda_oom_batch_size"), (1, 2));
    }

    #[test]
    fn an_unknown_fixing_action_becomes_a_candidate_entry() {
        let mut s = KbState::default();
        let mut f = fb("none-9", Verdict::Fixed, "t");
        f.action = Some("restarted the NFS mount".into());
        assert!(s.apply(&f, None, false));
        assert_eq!(s.candidate_details.len(), 1);
        assert_eq!(remediation_of("none-9"), None);
        assert_eq!(
            remediation_of("gpu_memory_shed-abc"),
            Some("gpu_memory_shed")
        );
    }
}
