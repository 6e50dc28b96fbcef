//! The Kafka driver's wall-clock budget for rule evaluation (`evaluation.timeout`). A live
//! consumer must not stall on one runaway query; a file run or replay never uses this, so its
//! output cannot depend on machine speed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::Metrics;
use crate::model::QueryRow;
use crate::rules::{EvalBudget, Evaluation};

/// Runs each evaluation as its own task (so a runaway query cannot hold up the others on a
/// multi-threaded runtime) and abandons it after `timeout`; times each into `metrics`.
pub struct WallClock {
    pub timeout: Duration,
    /// Where evaluation times go (`run --metrics-addr`).
    pub metrics: Option<Arc<Metrics>>,
}

#[async_trait]
impl EvalBudget for WallClock {
    async fn run(
        &self,
        query_id: &str,
        evaluation: Evaluation,
    ) -> Result<Vec<QueryRow>, Option<String>> {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.timeout, tokio::spawn(evaluation)).await {
            Ok(Ok(result)) => result.map_err(Some),
            Ok(Err(join)) => Err(Some(format!("evaluation panicked: {join}"))),
            Err(_) => Err(None),
        };
        if let Some(m) = &self.metrics {
            m.rule_evaluated(query_id, started.elapsed());
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::{AlignConfig, TraceAligner};
    use crate::decode::{Decoder, MessageContext};
    use crate::model::AlignedBatch;
    use crate::rules::{parse_rule, EvalLimits, FailureKind, RuleEngine, Unbounded};

    fn slow() -> Evaluation {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(vec![QueryRow::default()])
        })
    }

    #[tokio::test]
    async fn wall_clock_abandons_a_slow_evaluation_unbounded_waits_for_it() {
        let budget = WallClock {
            timeout: Duration::from_millis(10),
            metrics: None,
        };
        assert_eq!(budget.run("q", slow()).await, Err(None));
        assert_eq!(Unbounded.run("q", slow()).await.map(|r| r.len()), Ok(1));
        let roomy = WallClock {
            timeout: Duration::from_secs(30),
            metrics: None,
        };
        assert_eq!(roomy.run("q", slow()).await.map(|r| r.len()), Ok(1));
    }

    /// One window of `n` spans.
    fn spans(n: u32) -> AlignedBatch {
        let d = Decoder::new(1 << 20);
        let mut a = TraceAligner::new(AlignConfig::tumbling(Duration::from_secs(3600)));
        for i in 1..=n {
            let line = serde_json::json!({"signal": "span", "trace_id": format!("{i:032x}"),
                "span_id": format!("{i:016x}"), "name": "req", "service": "s",
                "start_time_unix_nano": 1_000_000_000_000u64, "duration_ms": 5});
            for r in d
                .decode(line.to_string().as_bytes(), MessageContext::default())
                .unwrap()
            {
                a.insert(r, u64::from(i)).unwrap();
            }
        }
        a.flush().remove(0)
    }

    /// A cross join slow enough to outlast a 20 ms budget on any machine.
    async fn slow_rule() -> RuleEngine {
        let r = parse_rule(
            std::path::Path::new("rules/r.sql"),
            "-- severity = \"info\"\n\
             SELECT sum(a.duration_ms + b.duration_ms + c.duration_ms) AS value\n\
             FROM spans a, spans b, spans c",
        )
        .unwrap();
        RuleEngine::new(vec![r], EvalLimits::default())
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_evaluation_over_budget_is_abandoned_and_skipped_until_done() {
        let e = slow_rule().await;
        let b = spans(150);
        let budget = WallClock {
            timeout: Duration::from_millis(20),
            metrics: None,
        };
        let (_, failures) = e.evaluate(&b, &[], &budget).await;
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].kind, FailureKind::OverBudget, "{failures:?}");
        let (_, failures) = e.evaluate(&b, &[], &budget).await;
        assert_eq!(failures[0].kind, FailureKind::Busy, "{failures:?}");
    }

    #[tokio::test]
    async fn without_a_budget_the_same_evaluation_always_completes() {
        let e = slow_rule().await;
        let (findings, failures) = e.evaluate(&spans(40), &[], &Unbounded).await;
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].value, 15.0 * 40.0 * 40.0 * 40.0);
    }
}
