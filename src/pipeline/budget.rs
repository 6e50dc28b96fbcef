//! The Kafka driver's wall-clock budget for rule evaluation (`evaluation.timeout`). A live
//! consumer must not stall on one runaway query; a file run or replay never uses this, so its
//! output cannot depend on machine speed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::Metrics;
use crate::model::QueryRow;
use crate::rules::{EvalBudget, Evaluation};

/// Runs each evaluation as its own task (so a runaway query cannot hold up the others on a
/// multi-threaded runtime, and `parallelism` of them use as many cores) and abandons it
/// after `timeout`; times each into `metrics`.
pub struct WallClock {
    timeout: Duration,
    /// Evaluations running at once, whichever engine (rules, detector sources, indicators)
    /// asks: what bounds the memory they may take together.
    running: Arc<Semaphore>,
    parallelism: usize,
    metrics: Option<Arc<Metrics>>,
}

impl WallClock {
    /// `timeout` per evaluation, `parallelism` evaluations at once (at least 1), times into
    /// `metrics` (`run --metrics-addr`).
    pub fn new(timeout: Duration, parallelism: usize, metrics: Option<Arc<Metrics>>) -> Self {
        let parallelism = parallelism.max(1);
        WallClock {
            timeout,
            running: Arc::new(Semaphore::new(parallelism)),
            parallelism,
            metrics,
        }
    }
}

#[async_trait]
impl EvalBudget for WallClock {
    async fn run(
        &self,
        query_id: &str,
        evaluation: Evaluation,
    ) -> Result<Vec<QueryRow>, Option<String>> {
        // Waiting for a turn is not the evaluation's time. An evaluation abandoned at its
        // timeout gives its turn back while it finishes in the background (its query is
        // skipped as busy until then), so a runaway cannot hold a core's turn for good.
        let _turn = self.running.acquire().await;
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

    fn parallelism(&self) -> usize {
        self.parallelism
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
        let budget = WallClock::new(Duration::from_millis(10), 1, None);
        assert_eq!(budget.run("q", slow()).await, Err(None));
        assert_eq!(Unbounded.run("q", slow()).await.map(|r| r.len()), Ok(1));
        let roomy = WallClock::new(Duration::from_secs(30), 1, None);
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
        let budget = WallClock::new(Duration::from_millis(20), 2, None);
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

    /// Counts the evaluations running at once.
    struct Counting {
        parallelism: usize,
        running: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl EvalBudget for Counting {
        async fn run(
            &self,
            _: &str,
            evaluation: Evaluation,
        ) -> Result<Vec<QueryRow>, Option<String>> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.running.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            // Give the other evaluations of the window a turn before this one ends.
            tokio::task::yield_now().await;
            let out = evaluation.await.map_err(Some);
            self.running.fetch_sub(1, SeqCst);
            out
        }

        fn parallelism(&self) -> usize {
            self.parallelism
        }
    }

    #[tokio::test]
    async fn a_windows_rules_run_as_many_at_once_as_the_budget_allows_results_in_rule_order() {
        let rules = (1..=5)
            .map(|k| {
                let sql =
                    format!("-- severity = \"info\"\nSELECT {k} * count(*) AS value FROM spans");
                parse_rule(std::path::Path::new(&format!("rules/r{k}.sql")), &sql).unwrap()
            })
            .collect();
        let e = RuleEngine::new(rules, EvalLimits::default()).await.unwrap();
        let b = spans(10);
        for parallelism in [1, 3] {
            let budget = Counting {
                parallelism,
                running: Default::default(),
                most: Default::default(),
            };
            let (findings, failures) = e.evaluate(&b, &[], &budget).await;
            assert!(failures.is_empty(), "{failures:?}");
            let values: Vec<f64> = findings.iter().map(|f| f.value).collect();
            assert_eq!(values, [10.0, 20.0, 30.0, 40.0, 50.0]);
            let most = budget.most.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(most, parallelism, "evaluations at once");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wall_clock_runs_at_most_parallelism_evaluations_whoever_asks() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let budget = WallClock::new(Duration::from_secs(30), 2, None);
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        // Seven evaluations asked for at once (as three engines of one window would).
        let asks = (0..7).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            let evaluation: Evaluation = Box::pin(async move {
                most.fetch_max(running.fetch_add(1, SeqCst) + 1, SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                running.fetch_sub(1, SeqCst);
                Ok(vec![QueryRow::default()])
            });
            budget.run("q", evaluation)
        });
        let outcomes = futures::future::join_all(asks).await;
        assert!(outcomes
            .iter()
            .all(|o| o.as_ref().map(|r| r.len()) == Ok(1)));
        assert_eq!(most.load(SeqCst), 2);
    }
}
