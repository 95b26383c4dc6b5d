//! A set of user ids whose cost per id is bounded however the API spreads them.

use std::collections::HashSet;

use roaring::RoaringBitmap;

/// Ids that fit 32 bits (Gcore's do) go to a compressed bitmap: a few bits an id when they are
/// dense, and at most about 10 bytes an id plus 6 MiB of containers however they are spread.
/// Larger ids go to a hash set, 9 to 18 bytes an id: a compressed 64-bit bitmap would cost some
/// 250 bytes an id for ids spread over the 64-bit range, and the ids come from the network.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IdSet {
    small: RoaringBitmap,
    large: HashSet<u64>,
}

impl IdSet {
    /// Adds an id; false if it was already there.
    pub fn insert(&mut self, id: u64) -> bool {
        match u32::try_from(id) {
            Ok(small) => self.small.insert(small),
            Err(_) => self.large.insert(id),
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        match u32::try_from(id) {
            Ok(small) => self.small.contains(small),
            Err(_) => self.large.contains(&id),
        }
    }

    pub fn len(&self) -> u64 {
        self.small.len() + self.large.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.small.is_empty() && self.large.is_empty()
    }

    /// Every id, the 32-bit ones in increasing order first.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.small.iter().map(u64::from).chain(self.large.iter().copied())
    }

    /// How many ids of `self` are not in `other`.
    pub fn difference_len(&self, other: &IdSet) -> u64 {
        self.small.difference_len(&other.small) + self.large.difference(&other.large).count() as u64
    }

    /// The ids of `self` that are not in `other`.
    pub fn difference(&self, other: &IdSet) -> IdSet {
        IdSet { small: &self.small - &other.small, large: self.large.difference(&other.large).copied().collect() }
    }

    /// How many ids are in both.
    pub fn intersection_len(&self, other: &IdSet) -> u64 {
        self.small.intersection_len(&other.small) + self.large.intersection(&other.large).count() as u64
    }

    /// The ids in both.
    pub fn intersection(&self, other: &IdSet) -> IdSet {
        IdSet { small: &self.small & &other.small, large: self.large.intersection(&other.large).copied().collect() }
    }

    /// Heap bytes held (the bitmap's serialized size approximates its in-memory size), for
    /// the memory figures of the README.
    pub fn heap_bytes(&self) -> usize {
        self.small.serialized_size() + self.large.capacity() * (std::mem::size_of::<u64>() + 1)
    }

    /// Gives the bitmap's spare capacity back once the set is complete.
    pub fn shrink(&mut self) {
        self.large.shrink_to_fit();
    }
}

impl FromIterator<u64> for IdSet {
    fn from_iter<I: IntoIterator<Item = u64>>(ids: I) -> Self {
        let mut set = IdSet::default();
        ids.into_iter().for_each(|id| {
            set.insert(id);
        });
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EDGES: [u64; 6] = [0, 1, u32::MAX as u64, u32::MAX as u64 + 1, u64::MAX, 12_345];

    #[test]
    fn ids_of_every_size_are_kept_once() {
        let mut ids = IdSet::default();
        for id in EDGES {
            assert!(ids.insert(id), "{id} is new");
            assert!(!ids.insert(id), "{id} is known");
            assert!(ids.contains(id));
        }
        assert_eq!(ids.len(), 6);
        assert!(!ids.contains(7) && !ids.contains(u64::MAX - 1));
        let mut all: Vec<u64> = ids.iter().collect();
        all.sort_unstable();
        let mut expected = EDGES.to_vec();
        expected.sort_unstable();
        assert_eq!(all, expected);
    }

    #[test]
    fn set_operations_cover_both_halves() {
        let a: IdSet = [1, 2, 3, u64::MAX, u64::MAX - 1].into_iter().collect();
        let b: IdSet = [2, 3, 4, u64::MAX].into_iter().collect();
        assert_eq!(a.difference_len(&b), 2);
        assert_eq!(a.difference(&b), [1, u64::MAX - 1].into_iter().collect());
        assert_eq!(b.difference_len(&a), 1);
        assert_eq!(a.intersection_len(&b), 3);
        assert_eq!(a.intersection(&b), [2, 3, u64::MAX].into_iter().collect());
        assert!(IdSet::default().is_empty() && !a.is_empty());
    }
}
