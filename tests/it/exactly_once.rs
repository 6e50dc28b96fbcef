//! Exactly-once outputs on the real broker: an instance killed with `kill -9` while its
//! open transaction holds outputs (a resolution a read_uncommitted consumer already saw);
//! the restarted instance fences that transaction, restores its checkpoint and produces the
//! resolution again. A read_committed consumer sees every notification once; a
//! read_uncommitted one sees the aborted copy too, which shows the crash hit an open
//! transaction.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::broker::*;
use crate::checkpoint::{committed_lag_of, slow_minutes};
use crate::common::*;

const S: i64 = 1_000_000_000;

/// Polls `reader` until an alert with `status` arrived; fails after `wait`.
fn wait_status(reader: &mut TopicReader, status: &str, wait: Duration, log: &Instance) {
    let deadline = Instant::now() + wait;
    while !reader.seen.iter().any(|a| a["status"] == status) {
        reader.poll(Duration::from_millis(200));
        assert!(
            Instant::now() < deadline,
            "no {status}:\n{}",
            log.log_text()
        );
    }
}

fn count(seen: &[serde_json::Value], status: &str) -> usize {
    seen.iter().filter(|a| a["status"] == status).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_inside_a_transaction_leaves_read_committed_consumers_one_copy() {
    let topics = Topics::new();
    topics.create().await;
    let t0 = minute_from_now(240);
    let p = producer();
    for s in slow_minutes(0, t0, 5) {
        send(&p, &topics.spans, &s).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let settings = format!("{}[traces]\ngap = \"1s\"\n", window("1m"));
    let toml = topics.pipeline_toml_checkpointed(&settings, "20s") + "exactly_once = true\n";
    let pipeline = pipeline_dir(tmp.path(), &toml);
    let group = unique("eos");
    let member = ["--instance-id", "faultline-eos-0"];
    let mut first = Instance::start_with(&pipeline, &group, tmp.path().join("first.log"), &member);

    // The first transaction commits the firing alert with the offsets it covers.
    let mut committed = TopicReader::new(&topics.alerts);
    wait_status(&mut committed, "firing", Duration::from_secs(60), &first);
    let deadline = Instant::now() + Duration::from_secs(10);
    while committed_lag_of(&group, &topics.spans, 0) >= 50 {
        assert!(Instant::now() < deadline, "{}", first.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let firing = committed.seen[0].clone();

    // Right after a commit: the episode ends, and the resolution goes into the next
    // transaction, which the crash leaves open (the next commit is 20 s away).
    let mut rest = slow_minutes(10_000, t0 + 5 * 60 * S, 2);
    rest.push(flat_span("svc", 20_000, t0 + 8 * 60 * S, 10));
    rest.push(flat_span("svc", 20_001, t0 + 70 * 60 * S, 10));
    for s in &rest {
        send(&p, &topics.spans, s).await;
    }
    let mut everything = TopicReader::uncommitted(&topics.alerts);
    wait_status(&mut everything, "resolved", Duration::from_secs(15), &first);
    first.child.kill().unwrap(); // SIGKILL inside the open transaction
    first.child.wait().unwrap();
    committed.poll(Duration::from_secs(1));
    assert_eq!(
        count(&committed.seen, "resolved"),
        0,
        "the resolution was still uncommitted at the crash:\n{}",
        first.log_text()
    );

    // The restart aborts the dead transaction, restores the checkpoint and resolves again.
    let mut second =
        Instance::start_with(&pipeline, &group, tmp.path().join("second.log"), &member);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&everything.seen, "resolved") < 2 {
        everything.poll(Duration::from_millis(200));
        assert!(Instant::now() < deadline, "{}", second.log_text());
    }
    assert!(second.stop().success(), "{}", second.log_text()); // commits the last one
    wait_status(&mut committed, "resolved", Duration::from_secs(10), &second);
    committed.poll(Duration::from_secs(2));

    let text = second.log_text();
    assert!(
        text.contains("Shard restored from its checkpoint."),
        "{text}"
    );
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for a in &committed.seen {
        *copies.entry(a.to_string()).or_default() += 1;
    }
    let repeated: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "read_committed saw repeats: {repeated:#?}"
    );
    assert_eq!(
        count(&committed.seen, "resolved"),
        1,
        "{:#?}",
        committed.seen
    );
    let resolved = committed
        .seen
        .iter()
        .find(|a| a["status"] == "resolved")
        .unwrap();
    assert_eq!(
        resolved["startsAt"], firing["startsAt"],
        "one episode across the crash"
    );
    let lag = committed_lag_of(&group, &topics.spans, 0);
    assert!(
        lag <= 20,
        "the last transaction committed all but the open windows: {lag}"
    );
}
