//! Sizes of a window's columns, counted before they are built. A busy window's tables
//! hold hundreds of MB; builders that grow by doubling copy every buffer about once more
//! and touch twice the pages, which the end-to-end profile showed as a fifth of the
//! pipeline's CPU (`BENCHMARKS.md`, "Eleventh session"). Capacities never change what is
//! built, only how often its buffers are reallocated.

use std::ops::AddAssign;

use super::utf8::StringMapWriter;
use crate::model::{Attributes, Resource};

/// Entries and bytes of a `Map<Utf8, Utf8>` column.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct MapSize {
    entries: usize,
    key_bytes: usize,
    value_bytes: usize,
}

impl AddAssign for MapSize {
    fn add_assign(&mut self, other: MapSize) {
        self.entries += other.entries;
        self.key_bytes += other.key_bytes;
        self.value_bytes += other.value_bytes;
    }
}

impl MapSize {
    pub fn add(&mut self, map: &Attributes) {
        self.add_pairs(map.iter());
    }

    pub fn add_pairs<'a, K: AsRef<str> + 'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (K, &'a String)>,
    ) {
        for (k, v) in pairs {
            self.entries += 1;
            self.key_bytes += k.as_ref().len();
            self.value_bytes += v.len();
        }
    }

    /// A map writer for `rows` rows holding this many entries and bytes.
    pub fn writer(self, rows: usize) -> StringMapWriter {
        StringMapWriter::with_capacity(rows, self.entries, self.key_bytes, self.value_bytes)
    }
}

/// The `resource` map column's size. Rows of one export request share their resource, and
/// consecutive rows mostly come from the same request, so each run of rows sharing a
/// resource counts its attributes once.
#[derive(Default)]
pub(super) struct ResourceSizes<'a> {
    last: Option<(&'a Resource, MapSize)>,
    pub total: MapSize,
}

impl<'a> ResourceSizes<'a> {
    pub fn add(&mut self, resource: &'a Resource) {
        let one = match self.last {
            Some((last, size)) if std::ptr::eq(last, resource) => size,
            _ => {
                let mut size = MapSize::default();
                size.add(&resource.attributes);
                self.last = Some((resource, size));
                size
            }
        };
        self.total += one;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn attributes(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_shared_resource_counts_once_per_row_like_a_distinct_one() {
        let shared = Arc::new(Resource::from_attributes(attributes(&[
            ("service.name", "gateway"),
            ("host.name", "h1"),
        ])));
        let other = Arc::new(Resource::from_attributes(attributes(&[("k", "vvv")])));
        let mut sizes = ResourceSizes::default();
        for r in [&shared, &shared, &other, &shared] {
            sizes.add(r);
        }
        let mut expected = MapSize::default();
        for r in [&shared, &shared, &other, &shared] {
            expected.add(&r.attributes);
        }
        assert_eq!(sizes.total, expected);
        assert_eq!(
            expected,
            MapSize {
                entries: 7,
                key_bytes: 3 * (12 + 9) + 1,
                value_bytes: 3 * (7 + 2) + 3
            }
        );
    }
}
