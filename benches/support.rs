//! Helpers the broker benchmarks share (included with `#[path]`: each bench is its own crate).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// `FAULTLINE_BIN`, else target/release/faultline, else target/debug/faultline.
pub fn faultline_binary() -> PathBuf {
    if let Ok(b) = std::env::var("FAULTLINE_BIN") {
        return b.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let release = root.join("target/release/faultline");
    if release.exists() {
        release
    } else {
        root.join("target/debug/faultline")
    }
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// The `q` quantile (nearest rank) of `values`; NaN when empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The offset `group` committed on one partition of `topic` (0 when none or unreadable).
pub fn committed_offset(brokers: &str, group: &str, topic: &str, partition: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    match c.committed_offsets(tpl, Duration::from_secs(10)) {
        Ok(t) => match t.elements()[0].offset() {
            Offset::Offset(o) => o,
            _ => 0,
        },
        Err(_) => 0,
    }
}
