//! A record's attributes: key-value pairs with values rendered as strings (arrays and maps
//! as JSON), sorted by key, each key once, so output is deterministic.
//!
//! Why not a `BTreeMap`: a record holds a few attributes, and a B-tree allocates a node of
//! eleven slots (about 560 bytes) for the first one and walks nodes to insert, iterate and
//! drop. A sorted vector of the pairs is one allocation the size of the attributes, and the
//! tables read it in order (`BENCHMARKS.md`, "Fourteenth session").

use std::fmt;
use std::ops::Index;

/// Key-value pairs sorted by key, each key once; the later of two pairs with one key wins,
/// as when a map is collected.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attributes(Vec<(String, String)>);

impl Attributes {
    pub fn new() -> Self {
        Attributes(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Heap bytes held: the pairs' slots and their strings.
    pub fn heap_bytes(&self) -> usize {
        let slots = self.0.capacity() * std::mem::size_of::<(String, String)>();
        slots + self.0.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`; the value it had, if any.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    /// The pairs in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.0.iter())
    }

    /// The pairs of `pairs` sorted by key, the last of each key kept.
    fn from_pairs(mut pairs: Vec<(String, String)>) -> Self {
        // Stable: of pairs with one key, the later stays later.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        Attributes(pairs)
    }
}

/// The pairs of [`Attributes`] in key order, borrowed as a map's iterator lends them.
pub struct Iter<'a>(std::slice::Iter<'a, (String, String)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a String);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Attributes {
    type Item = (&'a String, &'a String);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Attributes {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<(String, String)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        Attributes::from_pairs(pairs.into_iter().collect())
    }
}

impl<const N: usize> From<[(String, String); N]> for Attributes {
    fn from(pairs: [(String, String); N]) -> Self {
        Attributes::from_pairs(pairs.into())
    }
}

impl Extend<(String, String)> for Attributes {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, pairs: I) {
        for (k, v) in pairs {
            self.insert(k, v);
        }
    }
}

impl Index<&str> for Attributes {
    type Output = String;

    /// The value of `key`; panics when there is none, as a map's index does.
    fn index(&self, key: &str) -> &String {
        self.get(key)
            .unwrap_or_else(|| panic!("no attribute {key:?}"))
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Pairs with few distinct keys, so that duplicates are common.
    fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(("[a-e]{1,2}", "[0-9]{0,3}"), 0..12)
    }

    proptest! {
        /// Collected, inserted one by one or extended, attributes are what a `BTreeMap`
        /// makes of the same pairs: the same pairs in the same order, the later value of a
        /// key winning; lookups and removals agree.
        #[test]
        fn attributes_behave_as_a_sorted_map(pairs in pairs(), probe in "[a-e]{1,2}") {
            let map: BTreeMap<String, String> = pairs.iter().cloned().collect();
            let collected: Attributes = pairs.iter().cloned().collect();
            let mut inserted = Attributes::new();
            let mut olds = Vec::new();
            let mut reference = BTreeMap::new();
            for (k, v) in pairs.iter().cloned() {
                olds.push((inserted.insert(k.clone(), v.clone()), reference.insert(k, v)));
            }
            let mut extended = Attributes::new();
            extended.extend(pairs.iter().cloned());
            let expected: Vec<(&String, &String)> = map.iter().collect();
            for a in [&collected, &inserted, &extended] {
                prop_assert_eq!(a.iter().collect::<Vec<_>>(), expected.clone());
                prop_assert_eq!(a.len(), map.len());
                prop_assert_eq!(a.get(&probe), map.get(&probe));
                prop_assert_eq!(a.contains_key(&probe), map.contains_key(&probe));
                prop_assert_eq!(format!("{a:?}"), format!("{map:?}"));
            }
            for (mine, theirs) in olds {
                prop_assert_eq!(mine, theirs);
            }
            let mut removed = collected.clone();
            let mut reference = map.clone();
            prop_assert_eq!(removed.remove(&probe), reference.remove(&probe));
            prop_assert_eq!(removed.into_iter().collect::<Vec<_>>(), reference.into_iter().collect::<Vec<_>>());
        }
    }
}
