//! One column's array from a window's rows, and the placeholder of a column that is not
//! built (`columns`). Every builder is sized before it is filled (`capacity`).

use std::sync::Arc;

use datafusion::arrow::array::builder::NullBufferBuilder;
use datafusion::arrow::array::{
    make_array, new_empty_array, new_null_array, ArrayData, ArrayRef, BooleanArray, ListArray,
    ListBuilder, MapArray, PrimitiveArray, PrimitiveBuilder, StringArray, StringBuilder,
    StructArray, TimestampNanosecondArray,
};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer, MutableBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{ArrowPrimitiveType, DataType, Field, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::capacity::{MapSize, ResourceSizes};
use super::columns::TableColumns;
use super::utf8::Utf8Parts;
use crate::model::{Attributes, EventTime, HexId, Resource};

/// The table of `schema` with `rows` rows: each column in `wanted` as `column` builds it
/// from its name, the others as [`placeholder`]s.
pub(super) fn table(
    schema: SchemaRef,
    wanted: TableColumns,
    rows: usize,
    mut column: impl FnMut(&str) -> ArrayRef,
) -> RecordBatch {
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| match wanted.has(i) {
            true => column(field.name()),
            false => placeholder(field, rows),
        })
        .collect();
    RecordBatch::try_new(schema, columns).expect("columns follow the declared schema")
}

/// A column that is not built: nulls, or where the column is not nullable, empty strings,
/// maps and lists, zeros and `false`s. Its buffers are a few bytes per row at most.
fn placeholder(field: &Field, rows: usize) -> ArrayRef {
    let zero_offsets = || OffsetBuffer::<i32>::new_zeroed(rows);
    let data_type = field.data_type();
    if field.is_nullable() {
        return new_null_array(data_type, rows);
    }
    match data_type {
        DataType::Utf8 => Arc::new(StringArray::new(
            zero_offsets(),
            Buffer::from_vec(Vec::<u8>::new()),
            None,
        )),
        DataType::Boolean => Arc::new(BooleanArray::new(BooleanBuffer::new_unset(rows), None)),
        DataType::List(item) => Arc::new(ListArray::new(
            item.clone(),
            zero_offsets(),
            new_empty_array(item.data_type()),
            None,
        )),
        DataType::Map(entries, sorted) => {
            let DataType::Struct(fields) = entries.data_type() else {
                unreachable!("a map's entries are a struct")
            };
            let columns = fields
                .iter()
                .map(|f| new_empty_array(f.data_type()))
                .collect();
            let entries_array = StructArray::new(fields.clone(), columns, None);
            Arc::new(MapArray::new(
                entries.clone(),
                zero_offsets(),
                entries_array,
                None,
                *sorted,
            ))
        }
        other => {
            let width = other
                .primitive_width()
                .unwrap_or_else(|| unreachable!("no placeholder for a {other} column"));
            let data = ArrayData::builder(other.clone())
                .len(rows)
                .add_buffer(MutableBuffer::from_len_zeroed(rows * width).into())
                .build()
                .expect("zeros are a valid primitive array");
            make_array(data)
        }
    }
}

/// A string column.
pub(super) fn strings<T: ?Sized>(rows: &[&T], text: impl Fn(&T) -> Option<&str>) -> ArrayRef {
    let bytes = rows.iter().map(|r| text(r).map_or(0, str::len)).sum();
    let mut parts = Utf8Parts::with_capacity(rows.len(), bytes);
    let mut nulls = NullBufferBuilder::new(rows.len());
    for r in rows {
        let value = text(r);
        nulls.append(value.is_some());
        parts.push(value.unwrap_or_default());
    }
    Arc::new(parts.finish(nulls.finish()))
}

/// A column of ids as hex text.
pub(super) fn ids<T: ?Sized, const N: usize>(
    rows: &[&T],
    id: impl Fn(&T) -> Option<HexId<N>>,
) -> ArrayRef {
    let mut parts = Utf8Parts::with_capacity(rows.len(), rows.len() * 2 * N);
    let mut nulls = NullBufferBuilder::new(rows.len());
    for r in rows {
        let hex = id(r).map(|id| id.hex());
        nulls.append(hex.is_some());
        parts.push(hex.as_ref().map_or("", |h| h.as_str()));
    }
    Arc::new(parts.finish(nulls.finish()))
}

/// A column of numbers, `None` a null.
pub(super) fn numbers<P: ArrowPrimitiveType, T: ?Sized>(
    rows: &[&T],
    value: impl Fn(&T) -> Option<P::Native>,
) -> ArrayRef {
    let mut b = PrimitiveBuilder::<P>::with_capacity(rows.len());
    for r in rows {
        b.append_option(value(r));
    }
    Arc::new(b.finish())
}

/// A column of numbers that are never null.
pub(super) fn values<P: ArrowPrimitiveType, T: ?Sized>(
    rows: &[&T],
    value: impl Fn(&T) -> P::Native,
) -> ArrayRef {
    Arc::new(PrimitiveArray::<P>::from_iter_values(
        rows.iter().map(|r| value(r)),
    ))
}

/// A column of UTC timestamps.
pub(super) fn times<T: ?Sized>(rows: &[&T], time: impl Fn(&T) -> Option<EventTime>) -> ArrayRef {
    let values: TimestampNanosecondArray =
        rows.iter().map(|r| time(r).map(EventTime::nanos)).collect();
    Arc::new(values.with_timezone("UTC"))
}

/// A column of booleans.
pub(super) fn bools<T: ?Sized>(rows: &[&T], value: impl Fn(&T) -> Option<bool>) -> ArrayRef {
    Arc::new(rows.iter().map(|r| value(r)).collect::<BooleanArray>())
}

/// A `Map<Utf8, Utf8>` column of attribute maps.
pub(super) fn maps<T: ?Sized>(rows: &[&T], map: impl Fn(&T) -> &Attributes) -> ArrayRef {
    let mut size = MapSize::default();
    for r in rows {
        size.add(map(r));
    }
    let mut w = size.writer(rows.len());
    for r in rows {
        w.push_row(map(r).iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    Arc::new(w.finish())
}

/// The `resource` column: each row's resource attributes.
pub(super) fn resources<T: ?Sized>(rows: &[&T], resource: impl Fn(&T) -> &Resource) -> ArrayRef {
    let mut size = ResourceSizes::default();
    for r in rows {
        size.add(resource(r));
    }
    let mut w = size.total.writer(rows.len());
    for r in rows {
        let pairs = resource(r).attributes.iter();
        w.push_row(pairs.map(|(k, v)| (k.as_str(), v.as_str())));
    }
    Arc::new(w.finish())
}

/// A `Map<Utf8, Utf8>` column of key-value lists.
pub(super) fn pair_maps<T: ?Sized, K: AsRef<str>>(
    rows: &[&T],
    pairs: impl Fn(&T) -> &[(K, String)],
) -> ArrayRef {
    let mut size = MapSize::default();
    for r in rows {
        size.add_pairs(pairs(r).iter().map(|(k, v)| (k, v)));
    }
    let mut w = size.writer(rows.len());
    for r in rows {
        w.push_row(pairs(r).iter().map(|(k, v)| (k.as_ref(), v.as_str())));
    }
    Arc::new(w.finish())
}

/// A column of lists of strings.
pub(super) fn string_lists<T: ?Sized>(rows: &[&T], list: impl Fn(&T) -> &[String]) -> ArrayRef {
    let (mut items, mut bytes) = (0, 0);
    for r in rows {
        items += list(r).len();
        bytes += list(r).iter().map(String::len).sum::<usize>();
    }
    let mut b = ListBuilder::with_capacity(StringBuilder::with_capacity(items, bytes), rows.len());
    for r in rows {
        for item in list(r) {
            b.values().append_value(item);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

/// A column of lists of numbers.
pub(super) fn number_lists<'a, P: ArrowPrimitiveType, T: ?Sized, I>(
    rows: &[&'a T],
    list: impl Fn(&'a T) -> I,
) -> ArrayRef
where
    I: ExactSizeIterator<Item = P::Native>,
{
    let items = rows.iter().map(|r| list(*r).len()).sum();
    let mut b = ListBuilder::with_capacity(PrimitiveBuilder::<P>::with_capacity(items), rows.len());
    for r in rows {
        for v in list(*r) {
            b.values().append_value(v);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}
