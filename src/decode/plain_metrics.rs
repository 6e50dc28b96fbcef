//! OTLP/JSON metric requests decoded without the crate's types, for the plain shapes that
//! exporters write: gauges, sums and histograms whose attributes are plain (`plain.rs` says
//! which). Anything else — exponential histograms, summaries, a metric with no data or with
//! two, a point with both an `asDouble` and an `asInt`, anything the records would fail on —
//! makes this path give up, and the request is decoded the general way, which words every
//! error. The records come from the same functions either way (`points.rs`).
//!
//! Why: `opentelemetry-proto`'s `Metric` reads its data as a flattened field, and
//! `NumberDataPoint` its value too, so each metric's data is buffered as serde `Content` and
//! read a second time, and every attribute value once more (`plain.rs`). The unit tests
//! compare both paths record by record.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::Exemplar;
use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;

use super::otlp::scope_name;
use super::plain::{nanos, parse, IntValue, PlainAttributes, PlainResource};
use super::points::{DataPoint, HistogramParts, HistogramPoint, NumberPoint, PointBase};
use crate::model::{Attributes, Record, Resource};

/// The records of an OTLP/JSON `ExportMetricsServiceRequest`; `None` when the text is not a
/// plain one (see the module's comment).
pub(super) fn plain_metrics(text: &str) -> Option<Vec<Record>> {
    let request: MetricsRequest = parse(text)?;
    let mut out = Vec::new();
    for rm in request.resource_metrics {
        let res = PlainResource::shared(rm.resource);
        for sm in rm.scope_metrics {
            let scope = scope_name(sm.scope);
            for metric in sm.metrics {
                metric.into_records(&res, &scope, &mut out)?;
            }
        }
    }
    Some(out)
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct MetricsRequest {
    resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ResourceMetrics {
    resource: Option<PlainResource>,
    scope_metrics: Vec<ScopeMetrics>,
    #[allow(dead_code)] // declared so that it is type-checked as the crate does
    schema_url: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ScopeMetrics {
    scope: Option<InstrumentationScope>,
    metrics: Vec<PlainMetric>,
    #[allow(dead_code)]
    schema_url: String,
}

/// A field that was there, whatever its value (`null` too, unlike an `Option`): the crate
/// reads `"gauge": null` as a gauge that fails, not as no gauge.
struct Present<T>(Option<T>);

impl<T> Default for Present<T> {
    fn default() -> Self {
        Present(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Present<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(|v| Present(Some(v)))
    }
}

/// `opentelemetry_proto`'s `Metric`, with its flattened data as one field per kind.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PlainMetric {
    name: String,
    description: String,
    unit: String,
    #[allow(dead_code)]
    metadata: Vec<KeyValue>,
    gauge: Present<PlainGauge>,
    sum: Present<PlainSum>,
    histogram: Present<PlainHistogram>,
    exponential_histogram: Present<IgnoredAny>,
    summary: Present<IgnoredAny>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PlainGauge {
    data_points: Vec<PlainNumberPoint>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PlainSum {
    data_points: Vec<PlainNumberPoint>,
    aggregation_temporality: i32,
    is_monotonic: bool,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PlainHistogram {
    data_points: Vec<PlainHistogramPoint>,
    aggregation_temporality: i32,
}

impl PlainMetric {
    /// Appends the metric's records as `otlp::metric_points` makes them; `None` where the
    /// metric is not plain or the records would fail.
    fn into_records(
        self,
        res: &Arc<Resource>,
        scope: &Option<String>,
        out: &mut Vec<Record>,
    ) -> Option<()> {
        let kinds = [
            self.gauge.0.is_some(),
            self.sum.0.is_some(),
            self.histogram.0.is_some(),
            self.exponential_histogram.0.is_some(),
            self.summary.0.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return None;
        }
        let base = PointBase {
            name: &self.name,
            description: &self.description,
            unit: &self.unit,
            res,
            scope,
        };
        let two_values = |points: &[PlainNumberPoint]| {
            points
                .iter()
                .any(|p| p.as_double.0.is_some() && p.as_int.0.is_some())
        };
        let done = if let Some(g) = self.gauge.0 {
            if two_values(&g.data_points) {
                return None;
            }
            base.gauge(g.data_points, out)
        } else if let Some(s) = self.sum.0 {
            if two_values(&s.data_points) {
                return None;
            }
            base.sum(
                s.data_points,
                s.aggregation_temporality,
                s.is_monotonic,
                out,
            )
        } else if let Some(h) = self.histogram.0 {
            base.histogram(h.data_points, h.aggregation_temporality, out)
        } else {
            return None;
        };
        done.ok()
    }
}

/// `opentelemetry_proto`'s `NumberDataPoint`, with its flattened value as two fields.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PlainNumberPoint {
    attributes: PlainAttributes,
    #[serde(deserialize_with = "nanos")]
    start_time_unix_nano: u64,
    #[serde(deserialize_with = "nanos")]
    time_unix_nano: u64,
    exemplars: Vec<Exemplar>,
    #[allow(dead_code)]
    flags: u32,
    as_double: Present<f64>,
    as_int: Present<IntValue>,
}

/// `opentelemetry_proto`'s `HistogramDataPoint`, field for field.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PlainHistogramPoint {
    attributes: PlainAttributes,
    #[serde(deserialize_with = "nanos")]
    start_time_unix_nano: u64,
    #[serde(deserialize_with = "nanos")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "nanos")]
    count: u64,
    sum: Option<f64>,
    bucket_counts: Vec<Fixed64>,
    explicit_bounds: Vec<f64>,
    exemplars: Vec<Exemplar>,
    #[allow(dead_code)]
    flags: u32,
    min: Option<f64>,
    max: Option<f64>,
}

/// A `fixed64` list element: a number or a string of one, as the crate reads them.
struct Fixed64(u64);

impl<'de> Deserialize<'de> for Fixed64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        nanos(d).map(Fixed64)
    }
}

/// The common part of a plain point, as `points.rs` reads the crate's.
macro_rules! plain_data_point {
    ($t:ty) => {
        impl DataPoint for $t {
            fn times(&self) -> (u64, u64) {
                (self.time_unix_nano, self.start_time_unix_nano)
            }
            fn attributes(&mut self) -> Attributes {
                std::mem::take(&mut self.attributes.0)
            }
            fn exemplars(&self) -> &[Exemplar] {
                &self.exemplars
            }
        }
    };
}

plain_data_point!(PlainNumberPoint);
plain_data_point!(PlainHistogramPoint);

impl NumberPoint for PlainNumberPoint {
    fn value(&self) -> Option<f64> {
        match (self.as_double.0, &self.as_int.0) {
            (Some(d), _) => Some(d),
            (None, Some(i)) => Some(i.0 as f64),
            (None, None) => None,
        }
    }
}

impl HistogramPoint for PlainHistogramPoint {
    fn take_parts(&mut self) -> HistogramParts {
        HistogramParts {
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            explicit_bounds: std::mem::take(&mut self.explicit_bounds),
            bucket_counts: self.bucket_counts.drain(..).map(|c| c.0).collect(),
        }
    }
}

#[cfg(test)]
#[path = "plain_metrics_tests.rs"]
pub(super) mod tests;
