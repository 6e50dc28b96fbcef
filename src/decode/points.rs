//! Metric data points into records. The crate's point types (protobuf, and OTLP/JSON the
//! general way) and the plain OTLP/JSON path (`plain_metrics`) both go through here, so the
//! same point makes the same record, and fails with the same error, whichever path read it.

use std::sync::Arc;

use opentelemetry_proto::tonic::metrics::v1::{
    number_data_point, Exemplar, ExponentialHistogramDataPoint, HistogramDataPoint,
    NumberDataPoint, SummaryDataPoint,
};

use super::otlp::time;
use super::value::attributes;
use super::{bytes_id, DecodeError};
use crate::model::{Attributes, MetricKind, MetricPoint, Record, Resource, SpanId, TraceId};

/// The common part of every data point of one metric.
pub(super) struct PointBase<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub unit: &'a str,
    pub res: &'a Arc<Resource>,
    pub scope: &'a Option<String>,
}

/// What every data point type has in common.
pub(super) trait DataPoint {
    /// `(time_unix_nano, start_time_unix_nano)`.
    fn times(&self) -> (u64, u64);
    /// Moves the attributes out, rendered as the tables hold them (the point is consumed
    /// after).
    fn attributes(&mut self) -> Attributes;
    fn exemplars(&self) -> &[Exemplar] {
        &[]
    }
}

/// A gauge's or a sum's point.
pub(super) trait NumberPoint: DataPoint {
    fn value(&self) -> Option<f64>;
}

/// What a histogram's point holds beyond the common part.
pub(super) struct HistogramParts {
    pub count: u64,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub explicit_bounds: Vec<f64>,
    pub bucket_counts: Vec<u64>,
}

/// A histogram's point.
pub(super) trait HistogramPoint: DataPoint {
    /// Moves the parts out (the point is consumed after).
    fn take_parts(&mut self) -> HistogramParts;
}

macro_rules! data_point {
    ($t:ty, exemplars) => {
        impl DataPoint for $t {
            fn times(&self) -> (u64, u64) {
                (self.time_unix_nano, self.start_time_unix_nano)
            }
            fn attributes(&mut self) -> Attributes {
                attributes(std::mem::take(&mut self.attributes))
            }
            fn exemplars(&self) -> &[Exemplar] {
                &self.exemplars
            }
        }
    };
    ($t:ty) => {
        impl DataPoint for $t {
            fn times(&self) -> (u64, u64) {
                (self.time_unix_nano, self.start_time_unix_nano)
            }
            fn attributes(&mut self) -> Attributes {
                attributes(std::mem::take(&mut self.attributes))
            }
        }
    };
}

data_point!(NumberDataPoint, exemplars);
data_point!(HistogramDataPoint, exemplars);
data_point!(ExponentialHistogramDataPoint, exemplars);
data_point!(SummaryDataPoint);

impl NumberPoint for NumberDataPoint {
    fn value(&self) -> Option<f64> {
        match self.value? {
            number_data_point::Value::AsDouble(d) => Some(d),
            number_data_point::Value::AsInt(i) => Some(i as f64),
        }
    }
}

impl HistogramPoint for HistogramDataPoint {
    fn take_parts(&mut self) -> HistogramParts {
        HistogramParts {
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            explicit_bounds: std::mem::take(&mut self.explicit_bounds),
            bucket_counts: std::mem::take(&mut self.bucket_counts),
        }
    }
}

/// Trace and span id of the first exemplar that has them.
fn exemplar_ids(exemplars: &[Exemplar]) -> Result<(Option<TraceId>, Option<SpanId>), DecodeError> {
    for e in exemplars {
        if let Some(trace) = bytes_id(&e.trace_id, "exemplar traceId")? {
            return Ok((Some(trace), bytes_id(&e.span_id, "exemplar spanId")?));
        }
    }
    Ok((None, None))
}

pub(super) fn temporality(t: i32) -> Option<&'static str> {
    match t {
        1 => Some("delta"),
        2 => Some("cumulative"),
        _ => None,
    }
}

impl PointBase<'_> {
    /// The record's common part; the caller fills in what the point's kind holds.
    pub fn point(
        &self,
        kind: MetricKind,
        p: &mut impl DataPoint,
    ) -> Result<MetricPoint, DecodeError> {
        let (time_unix_nano, start_time_unix_nano) = p.times();
        let t = time(time_unix_nano).ok_or_else(|| {
            DecodeError::record(format!(
                "data point of metric {:?} has no timeUnixNano",
                self.name
            ))
        })?;
        let attributes = p.attributes();
        let (mut trace_id, span_id) = exemplar_ids(p.exemplars())?;
        if trace_id.is_none() {
            if let Some(raw) = attributes.get("trace_id") {
                trace_id = super::normalise_hex_id(raw, "trace_id attribute")?;
            }
        }
        Ok(MetricPoint {
            start_time: time(start_time_unix_nano),
            description: Some(self.description)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            unit: Some(self.unit).filter(|s| !s.is_empty()).map(str::to_owned),
            trace_id,
            span_id,
            scope: self.scope.clone(),
            attributes,
            ..MetricPoint::new(t, self.name.to_owned(), kind, self.res.clone())
        })
    }

    /// A gauge's points.
    pub fn gauge<P: NumberPoint>(
        &self,
        points: Vec<P>,
        out: &mut Vec<Record>,
    ) -> Result<(), DecodeError> {
        for mut p in points {
            let mut m = self.point(MetricKind::Gauge, &mut p)?;
            m.value = p.value();
            out.push(Record::Metric(Box::new(m)));
        }
        Ok(())
    }

    /// A sum's points.
    pub fn sum<P: NumberPoint>(
        &self,
        points: Vec<P>,
        aggregation_temporality: i32,
        is_monotonic: bool,
        out: &mut Vec<Record>,
    ) -> Result<(), DecodeError> {
        for mut p in points {
            let mut m = self.point(MetricKind::Sum, &mut p)?;
            m.value = p.value();
            m.temporality = temporality(aggregation_temporality);
            m.is_monotonic = Some(is_monotonic);
            out.push(Record::Metric(Box::new(m)));
        }
        Ok(())
    }

    /// A histogram's points; bucket counts must be one more than the bounds (or none).
    pub fn histogram<P: HistogramPoint>(
        &self,
        points: Vec<P>,
        aggregation_temporality: i32,
        out: &mut Vec<Record>,
    ) -> Result<(), DecodeError> {
        for mut p in points {
            let mut m = self.point(MetricKind::Histogram, &mut p)?;
            let parts = p.take_parts();
            if !parts.bucket_counts.is_empty()
                && parts.bucket_counts.len() != parts.explicit_bounds.len() + 1
            {
                return Err(DecodeError::record(format!(
                    "histogram {:?} has {} bucket counts for {} bounds (expected bounds + 1)",
                    self.name,
                    parts.bucket_counts.len(),
                    parts.explicit_bounds.len()
                )));
            }
            m.temporality = temporality(aggregation_temporality);
            m.count = Some(parts.count);
            m.sum = parts.sum;
            m.min = parts.min;
            m.max = parts.max;
            m.bucket_bounds = parts.explicit_bounds;
            m.bucket_counts = parts.bucket_counts;
            out.push(Record::Metric(Box::new(m)));
        }
        Ok(())
    }
}
