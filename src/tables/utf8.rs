//! `Utf8` and `Map<Utf8, Utf8>` columns written straight into their offsets and bytes.
//! Arrow's `StringBuilder` checks its capacity and writes a validity bit for every value,
//! and `MapBuilder` does as much per row; a window's string and map columns take millions
//! of values, and ours are never null inside a map, so the buffers are written here and
//! handed to arrow whole. They are built from `&str`s only, so arrow is spared checking
//! them again (its UTF-8 and offset checks cost as much as the builders' overhead saved).

use std::sync::Arc;

use datafusion::arrow::array::{MapArray, StringArray, StructArray};
use datafusion::arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::DataType;

/// The offsets and bytes of a `Utf8` array being written.
pub(super) struct Utf8Parts {
    offsets: Vec<i32>,
    bytes: Vec<u8>,
}

impl Utf8Parts {
    /// Room for `values` values of `bytes` bytes in all.
    pub fn with_capacity(values: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(values + 1);
        offsets.push(0);
        Utf8Parts {
            offsets,
            bytes: Vec::with_capacity(bytes),
        }
    }

    /// Appends `text` (an empty value for a null row).
    #[inline]
    pub fn push(&mut self, text: &str) {
        self.bytes.extend_from_slice(text.as_bytes());
        let end = i32::try_from(self.bytes.len());
        // As arrow's builders do: a column of over 2 GiB of text is a bug upstream of here.
        self.offsets
            .push(end.expect("a string column's bytes fit an i32 offset"));
    }

    /// The values written so far.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn finish(self, nulls: Option<NullBuffer>) -> StringArray {
        if let Some(nulls) = &nulls {
            assert_eq!(nulls.len(), self.len(), "one validity bit per value");
        }
        // SAFETY: the offsets start at 0 and each is the end of the bytes after one more
        // `&str` was appended, so they never decrease, and every value, being a whole
        // `&str`, is UTF-8 that starts and ends on character boundaries: what
        // `StringArray::new` would check again at about a fifth of this writer's cost.
        unsafe {
            let offsets = OffsetBuffer::new_unchecked(ScalarBuffer::from(self.offsets));
            StringArray::new_unchecked(offsets, Buffer::from_vec(self.bytes), nulls)
        }
    }
}

/// A `Map<Utf8, Utf8>` column of the type `tables::string_map` declares, being written: its
/// keys and values, and where each row's entries end. No row is null.
pub(super) struct StringMapWriter {
    keys: Utf8Parts,
    values: Utf8Parts,
    row_ends: Vec<i32>,
}

impl StringMapWriter {
    /// Room for `rows` rows of `entries` entries in all, of the given bytes.
    pub fn with_capacity(
        rows: usize,
        entries: usize,
        key_bytes: usize,
        value_bytes: usize,
    ) -> Self {
        let mut row_ends = Vec::with_capacity(rows + 1);
        row_ends.push(0);
        StringMapWriter {
            keys: Utf8Parts::with_capacity(entries, key_bytes),
            values: Utf8Parts::with_capacity(entries, value_bytes),
            row_ends,
        }
    }

    /// Appends one row of `pairs`.
    #[inline]
    pub fn push_row<'a>(&mut self, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
        for (key, value) in pairs {
            self.keys.push(key);
            self.values.push(value);
        }
        let end = i32::try_from(self.keys.len());
        self.row_ends
            .push(end.expect("a map column's entries fit an i32 offset"));
    }

    pub fn finish(self) -> MapArray {
        let DataType::Map(entries, sorted) = super::string_map() else {
            unreachable!("string_map is a map")
        };
        let DataType::Struct(fields) = entries.data_type() else {
            unreachable!("a map's entries are a struct")
        };
        let columns = vec![
            Arc::new(self.keys.finish(None)) as _,
            Arc::new(self.values.finish(None)) as _,
        ];
        let entries_array = StructArray::new(fields.clone(), columns, None);
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.row_ends));
        MapArray::new(entries.clone(), offsets, entries_array, None, sorted)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, MapBuilder, StringBuilder};
    use proptest::prelude::*;

    use super::super::arrays::strings;
    use super::*;

    proptest! {
        /// A string column equals the one arrow's builder makes of the same values, nulls
        /// and empty strings included, and its type is `Utf8`.
        #[test]
        fn string_columns_equal_arrows_builder(
            values in proptest::collection::vec(prop::option::of(".{0,12}"), 0..40)
        ) {
            let rows: Vec<&Option<String>> = values.iter().collect();
            let ours = strings(&rows, |v| v.as_deref());
            let expected: StringArray = values.iter().map(|v| v.as_deref()).collect();
            prop_assert_eq!(ours.as_ref(), &expected as &dyn Array);
            prop_assert_eq!(ours.null_count(), values.iter().filter(|v| v.is_none()).count());
        }

        /// A map column equals the one arrow's `MapBuilder` makes of the same rows (empty
        /// rows included), and has the declared type `tables::string_map`.
        #[test]
        fn map_columns_equal_arrows_builder(
            rows in proptest::collection::vec(
                proptest::collection::vec((".{0,6}", ".{0,6}"), 0..4),
                0..20,
            )
        ) {
            let (entries, key_bytes, value_bytes) = rows.iter().flatten().fold(
                (0, 0, 0),
                |(n, k, v), (key, value)| (n + 1, k + key.len(), v + value.len()),
            );
            let mut ours = StringMapWriter::with_capacity(rows.len(), entries, key_bytes, value_bytes);
            let mut expected = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
            for row in &rows {
                ours.push_row(row.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                for (k, v) in row {
                    expected.keys().append_value(k);
                    expected.values().append_value(v);
                }
                expected.append(true).unwrap();
            }
            let (ours, expected) = (ours.finish(), expected.finish());
            prop_assert_eq!(ours.data_type(), &super::super::string_map());
            prop_assert_eq!(&ours, &expected);
        }
    }
}
