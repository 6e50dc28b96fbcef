//! Helpers the broker benchmarks share (included with `#[path]`: each bench is its own crate).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

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
