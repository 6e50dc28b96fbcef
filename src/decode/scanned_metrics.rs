//! OTLP/JSON metric requests read with [`Scanner`] straight into records, for the shape
//! exporters write nearly every line in: gauges, sums and histograms of known fields only,
//! each once, the resource before its scopes (a scope before or after its metrics), attributes
//! as `scanned.rs` reads them, no exemplars and no metadata. Anything else gives up
//! (`None`) and the request is read by `plain_metrics::plain_metrics`, then the crate's
//! types, as before. The records come from `points.rs`, as on those paths, so a point
//! makes the same record, or fails alike, whichever path read it; the unit tests hold that
//! whatever this path accepts decodes to the records the general path makes.

use std::sync::Arc;

use super::points::{DataPoint, HistogramParts, HistogramPoint, NumberPoint, PointBase};
use super::scanned::{attributes, double, nanos, once, request, scope_records};
use super::scanner::Scanner;
use crate::model::{Attributes, Record, Resource};

/// The records of an OTLP/JSON `ExportMetricsServiceRequest` of the plain shape above.
pub(super) fn scanned_metrics(text: &str) -> Option<Vec<Record>> {
    request(text, "resourceMetrics", "scopeMetrics", 0, |s, res, out| {
        scope_records(s, "metrics", out, |s, out| metric(s, res, out))
    })
}

/// A metric's data: the one kind it has, and its points.
enum Data {
    Gauge(Vec<ScannedNumberPoint>),
    Sum(Vec<ScannedNumberPoint>, i32, bool),
    Histogram(Vec<ScannedHistogramPoint>, i32),
}

/// One metric's records, appended as `PointBase` makes them; `None` where the metric is
/// not plain or its records would fail.
fn metric(s: &mut Scanner, res: &Arc<Resource>, out: &mut Vec<Record>) -> Option<()> {
    let (mut name, mut description, mut unit, mut data) = (None, None, None, None);
    s.object(|s, key| match key {
        "name" => once(&mut name, s.string()?),
        "description" => once(&mut description, s.string()?),
        "unit" => once(&mut unit, s.string()?),
        // A second kind of data gives up, as the crate refuses two.
        "gauge" => once(&mut data, gauge(s)?),
        "sum" => once(&mut data, sum(s)?),
        "histogram" => once(&mut data, histogram(s)?),
        _ => None,
    })?;
    let (name, description, unit) = (
        name.unwrap_or_default(),
        description.unwrap_or_default(),
        unit.unwrap_or_default(),
    );
    let base = PointBase {
        name: &name,
        description: &description,
        unit: &unit,
        res,
        // Set when the scope's list is read (`set_scope`): it may come after the metrics.
        scope: &None,
    };
    let done = match data? {
        Data::Gauge(points) => base.gauge(points, out),
        Data::Sum(points, temporality, monotonic) => base.sum(points, temporality, monotonic, out),
        Data::Histogram(points, temporality) => base.histogram(points, temporality, out),
    };
    done.ok()
}

fn gauge(s: &mut Scanner) -> Option<Data> {
    let mut points = None;
    s.object(|s, key| match key {
        "dataPoints" => once(&mut points, number_points(s)?),
        _ => None,
    })?;
    Some(Data::Gauge(points.unwrap_or_default()))
}

fn sum(s: &mut Scanner) -> Option<Data> {
    let (mut points, mut temporality, mut monotonic) = (None, None, None);
    s.object(|s, key| match key {
        "dataPoints" => once(&mut points, number_points(s)?),
        "aggregationTemporality" => once(&mut temporality, s.int()?),
        "isMonotonic" => once(&mut monotonic, s.bool()?),
        _ => None,
    })?;
    Some(Data::Sum(
        points.unwrap_or_default(),
        temporality.unwrap_or(0),
        monotonic.unwrap_or(false),
    ))
}

fn histogram(s: &mut Scanner) -> Option<Data> {
    let (mut points, mut temporality) = (None, None);
    s.object(|s, key| match key {
        "dataPoints" => once(&mut points, histogram_points(s)?),
        "aggregationTemporality" => once(&mut temporality, s.int()?),
        _ => None,
    })?;
    Some(Data::Histogram(
        points.unwrap_or_default(),
        temporality.unwrap_or(0),
    ))
}

/// A gauge's or a sum's point: exactly one value, or none.
struct ScannedNumberPoint {
    attributes: Attributes,
    start: u64,
    time: u64,
    value: Option<f64>,
}

fn number_points(s: &mut Scanner) -> Option<Vec<ScannedNumberPoint>> {
    let mut points = Vec::new();
    s.array(|s| {
        let (mut attrs, mut start, mut time) = (None, None, None);
        let (mut exemplars, mut flags, mut value) = (None, None, None);
        s.object(|s, key| match key {
            "attributes" => once(&mut attrs, attributes(s)?),
            "startTimeUnixNano" => once(&mut start, nanos(s)?),
            "timeUnixNano" => once(&mut time, nanos(s)?),
            "exemplars" => once(&mut exemplars, no_exemplars(s)?),
            "flags" => once(&mut flags, s.int::<u32>()?),
            // A point with both values is the crate's to refuse.
            "asDouble" => once(&mut value, double(s)?),
            "asInt" => once(&mut value, int_value(s)? as f64),
            _ => None,
        })?;
        points.push(ScannedNumberPoint {
            attributes: attrs.unwrap_or_default(),
            start: start.unwrap_or(0),
            time: time.unwrap_or(0),
            value,
        });
        Some(())
    })?;
    Some(points)
}

/// An `intValue`-like `asInt`: a number, or a string of one, in `i64`'s range.
fn int_value(s: &mut Scanner) -> Option<i64> {
    if s.at_string() {
        s.str()?.parse().ok()
    } else {
        s.int()
    }
}

/// An empty exemplar list (exemplars give up: their ids are the crate's to read).
fn no_exemplars(s: &mut Scanner) -> Option<()> {
    s.array(|_| None)
}

/// A histogram's point.
struct ScannedHistogramPoint {
    attributes: Attributes,
    start: u64,
    time: u64,
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    bounds: Vec<f64>,
    counts: Vec<u64>,
}

/// Fields of a histogram point as read, each `None` until it is.
#[derive(Default)]
struct HistogramFields {
    attributes: Option<Attributes>,
    start: Option<u64>,
    time: Option<u64>,
    count: Option<u64>,
    sum: Option<Option<f64>>,
    counts: Option<Vec<u64>>,
    bounds: Option<Vec<f64>>,
    exemplars: Option<()>,
    flags: Option<u32>,
    min: Option<Option<f64>>,
    max: Option<Option<f64>>,
}

fn histogram_points(s: &mut Scanner) -> Option<Vec<ScannedHistogramPoint>> {
    let mut points = Vec::new();
    s.array(|s| {
        let mut f = HistogramFields::default();
        s.object(|s, key| match key {
            "attributes" => once(&mut f.attributes, attributes(s)?),
            "startTimeUnixNano" => once(&mut f.start, nanos(s)?),
            "timeUnixNano" => once(&mut f.time, nanos(s)?),
            "count" => once(&mut f.count, nanos(s)?),
            "sum" => once(&mut f.sum, optional_double(s)?),
            "bucketCounts" => once(&mut f.counts, list(s, nanos)?),
            "explicitBounds" => once(&mut f.bounds, list(s, double)?),
            "exemplars" => once(&mut f.exemplars, no_exemplars(s)?),
            "flags" => once(&mut f.flags, s.int()?),
            "min" => once(&mut f.min, optional_double(s)?),
            "max" => once(&mut f.max, optional_double(s)?),
            _ => None,
        })?;
        points.push(ScannedHistogramPoint {
            attributes: f.attributes.unwrap_or_default(),
            start: f.start.unwrap_or(0),
            time: f.time.unwrap_or(0),
            count: f.count.unwrap_or(0),
            sum: f.sum.flatten(),
            min: f.min.flatten(),
            max: f.max.flatten(),
            bounds: f.bounds.unwrap_or_default(),
            counts: f.counts.unwrap_or_default(),
        });
        Some(())
    })?;
    Some(points)
}

/// A double or `null`, as serde reads an `Option<f64>`.
fn optional_double(s: &mut Scanner) -> Option<Option<f64>> {
    if s.null() {
        Some(None)
    } else {
        double(s).map(Some)
    }
}

/// A list of what `item` reads.
fn list<T>(s: &mut Scanner, item: fn(&mut Scanner) -> Option<T>) -> Option<Vec<T>> {
    let mut items = Vec::new();
    s.array(|s| {
        items.push(item(s)?);
        Some(())
    })?;
    Some(items)
}

impl DataPoint for ScannedNumberPoint {
    fn times(&self) -> (u64, u64) {
        (self.time, self.start)
    }
    fn attributes(&mut self) -> Attributes {
        std::mem::take(&mut self.attributes)
    }
}

impl NumberPoint for ScannedNumberPoint {
    fn value(&self) -> Option<f64> {
        self.value
    }
}

impl DataPoint for ScannedHistogramPoint {
    fn times(&self) -> (u64, u64) {
        (self.time, self.start)
    }
    fn attributes(&mut self) -> Attributes {
        std::mem::take(&mut self.attributes)
    }
}

impl HistogramPoint for ScannedHistogramPoint {
    fn take_parts(&mut self) -> HistogramParts {
        HistogramParts {
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            explicit_bounds: std::mem::take(&mut self.bounds),
            bucket_counts: std::mem::take(&mut self.counts),
        }
    }
}

#[cfg(test)]
#[path = "scanned_metrics_tests.rs"]
mod tests;
