//! What the knowledge base knows about an alert beyond its record: the failure signature of
//! its own text (an alert of another team often quotes the exception — "CUDA out of memory.
//! Tried to allocate 2.00 GiB … 40.00 MiB free") and the most frequent error templates of its
//! service in the window it fired in.

use std::borrow::Cow;
use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Int32Type;

use crate::alert::Alert;
use crate::logparse::signatures::extract;
use crate::model::AlignedBatch;

const GIB: f64 = 1073741824.0;

/// The alert with its evidence completed from the signature of its annotations: `signature`
/// (the kind), the signature's fields, and for byte counts also `X_gib` (`requested_gib`
/// from `requested_bytes`), each only where the alert does not already have it.
pub fn enriched(alert: &Alert) -> Cow<'_, Alert> {
    let sig = alert
        .annotations
        .values()
        .map(String::as_str)
        .chain(alert.evidence.values.values().filter_map(|v| v.as_str()))
        .find_map(extract);
    let Some(sig) = sig else {
        return Cow::Borrowed(alert);
    };
    let mut derived: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    derived.insert("signature".into(), sig.kind.as_str().into());
    for (name, value) in &sig.fields {
        if let Some(stem) = name.strip_suffix("_bytes") {
            if let Ok(bytes) = value.parse::<f64>() {
                let gib = (bytes / GIB * 100.0).round() / 100.0;
                derived.insert(format!("{stem}_gib"), serde_json::json!(gib));
            }
        }
        derived.insert((*name).to_string(), value.clone().into());
    }
    let mut a = alert.clone();
    for (k, v) in derived {
        a.evidence.values.entry(k).or_insert(v);
    }
    Cow::Owned(a)
}

/// The `logs` columns [`window_templates`] reads (built whatever the queries read).
pub const LOG_COLUMNS: [&str; 3] = ["service", "severity_number", "template"];

/// The error templates (severity ERROR or above) of the alert's service in `batch`, most
/// frequent first, at most `n`.
pub fn window_templates(batch: &AlignedBatch, alert: &Alert, n: usize) -> Vec<String> {
    let logs = &batch.logs;
    let [Some(service), Some(severity), Some(template)] =
        LOG_COLUMNS.map(|c| logs.column_by_name(c))
    else {
        return Vec::new();
    };
    let want = alert.labels.get("service");
    let (service, severity, template) = (
        service.as_string::<i32>(),
        severity.as_primitive::<Int32Type>(),
        template.as_string::<i32>(),
    );
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for row in 0..logs.num_rows() {
        let same_service = want.is_none_or(|w| !service.is_null(row) && service.value(row) == w);
        if same_service
            && !severity.is_null(row)
            && severity.value(row) >= 17
            && !template.is_null(row)
        {
            *counts.entry(template.value(row)).or_insert(0) += 1;
        }
    }
    let mut top: Vec<(&str, usize)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    top.into_iter()
        .take(n)
        .map(|(t, _)| t.to_string())
        .collect()
}
