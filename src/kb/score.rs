//! From a match to a confidence. The ranking score adds the structured hints to the text
//! similarity; the confidence is a logistic function of that score and of the margin to the
//! next entry, fitted on a calibration set of alerts (`cargo bench --bench kb -- --fit`
//! prints the coefficients; `BENCHMARKS.md` shows the reliability on a separate evaluation
//! set), then blended with the entry's track record from feedback.

/// Weight of an alert name the entry is written for.
pub const ALERT_HINT: f64 = 0.35;
/// Weight of the share of the entry's label hints the alert matches.
pub const LABEL_HINT: f64 = 0.2;
/// Weight of the share of the entry's evidence fields the alert carries.
pub const EVIDENCE_HINT: f64 = 0.05;
/// What a failed precondition (`on_fail = "lower"`) takes off the ranking score.
pub const FAILED_PRECONDITION: f64 = 0.4;
/// What a passed precondition adds.
pub const PASSED_PRECONDITION: f64 = 0.05;

/// Logistic calibration: confidence = σ(INTERCEPT + SCORE·score + MARGIN·margin +
/// ALERT·[the alert's name is one the entry is written for]).
pub const INTERCEPT: f64 = -1.296;
pub const SCORE: f64 = 7.412;
pub const MARGIN: f64 = 5.709;
pub const ALERT: f64 = -2.568;

/// Pseudo-verdicts of the calibrated confidence when blending in an entry's track record.
pub const PRIOR_WEIGHT: f64 = 10.0;

/// What the structured hints say about an alert.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hints {
    /// The alert's name is one the entry is written for.
    pub alert: bool,
    /// Share of the entry's label hints the alert carries with a matching value.
    pub labels: f64,
    /// Share of the entry's evidence fields the alert carries.
    pub evidence: f64,
    /// The names of the hints that held, for `matched_on`.
    pub held: Vec<String>,
}

/// The ranking score before preconditions.
pub fn ranking(similarity: f64, h: &Hints) -> f64 {
    similarity
        + ALERT_HINT * f64::from(u8::from(h.alert))
        + LABEL_HINT * h.labels
        + EVIDENCE_HINT * h.evidence
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The calibrated confidence of a candidate with ranking `score`, `margin` ahead of the next
/// one (negative when behind the best), and whether its alert-name hint held.
pub fn calibrated(score: f64, margin: f64, alert_hint: bool) -> f64 {
    sigmoid(INTERCEPT + SCORE * score + MARGIN * margin + ALERT * f64::from(u8::from(alert_hint)))
}

/// Blends the calibrated confidence with the entry's precision from feedback, once it has
/// `min_verdicts` verdicts: a Beta-style average with the confidence worth `PRIOR_WEIGHT`
/// verdicts.
pub fn with_track_record(confidence: f64, right: u32, verdicts: u32, min_verdicts: u32) -> f64 {
    if verdicts < min_verdicts.max(1) {
        return confidence;
    }
    (confidence * PRIOR_WEIGHT + f64::from(right)) / (PRIOR_WEIGHT + f64::from(verdicts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_score_and_margin_mean_more_confidence() {
        assert!(calibrated(0.9, 0.3, false) > calibrated(0.9, 0.0, false));
        assert!(calibrated(0.9, 0.0, false) > calibrated(0.3, 0.0, false));
        assert!((0.0..=1.0).contains(&calibrated(5.0, 5.0, true)));
    }

    #[test]
    fn track_record_counts_only_after_enough_verdicts() {
        assert_eq!(with_track_record(0.8, 0, 4, 5), 0.8);
        let bad = with_track_record(0.8, 0, 10, 5);
        assert!((bad - 0.4).abs() < 1e-9, "{bad}");
        assert!(with_track_record(0.5, 10, 10, 5) > 0.7);
    }
}
