//! A set of user ids whose cost per id is bounded however the API spreads them.

use std::collections::HashSet;

use roaring::RoaringBitmap;

/// Ids that fit 32 bits (Gcore's do) go to a compressed bitmap while a poll runs: a few bits an
/// id when they are dense, and at most about 10 bytes an id plus 6 MiB of containers however
/// they are spread. Larger ids go to a hash set, 9 to 18 bytes an id: a compressed 64-bit
/// bitmap would cost some 250 bytes an id for ids spread over the 64-bit range, and the ids
/// come from the network.
///
/// A set kept after its poll is [frozen](IdSet::freeze): the 32-bit ids stay a bitmap if that
/// is the smaller, else become a sorted array of 4 bytes an id (a bitmap spends some 56 bytes
/// on each 65,536-id range it touches, which ids spread over the 32-bit range make up to 65,536
/// of); the larger ids become a sorted array of 8 bytes an id.
#[derive(Debug, Default, Clone)]
pub struct IdSet {
    small: Small,
    large: Large,
}

#[derive(Debug, Clone)]
enum Small {
    Bitmap(RoaringBitmap),
    Sorted(Box<[u32]>),
}

#[derive(Debug, Clone)]
enum Large {
    Hashed(HashSet<u64>),
    Sorted(Box<[u64]>),
}

impl Default for Small {
    fn default() -> Self {
        Small::Bitmap(RoaringBitmap::new())
    }
}

impl Default for Large {
    fn default() -> Self {
        Large::Hashed(HashSet::new())
    }
}

/// What one bitmap container costs besides its ids: the container itself (key and store) and
/// the allocator's header of its array.
const CONTAINER_BYTES: usize = 56;

impl Small {
    fn contains(&self, id: u32) -> bool {
        match self {
            Small::Bitmap(b) => b.contains(id),
            Small::Sorted(s) => s.binary_search(&id).is_ok(),
        }
    }

    fn len(&self) -> u64 {
        match self {
            Small::Bitmap(b) => b.len(),
            Small::Sorted(s) => s.len() as u64,
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match self {
            Small::Bitmap(b) => Box::new(b.iter()),
            Small::Sorted(s) => Box::new(s.iter().copied()),
        }
    }

    /// Ids in both: the bitmaps' own operation, else a walk of the smaller set.
    fn intersection_len(&self, other: &Small) -> u64 {
        match (self, other) {
            (Small::Bitmap(a), Small::Bitmap(b)) => a.intersection_len(b),
            (Small::Sorted(a), Small::Sorted(b)) => sorted_intersection_len(a, b),
            (a, b) => {
                let (few, many) = if a.len() <= b.len() { (a, b) } else { (b, a) };
                few.iter().filter(|&id| many.contains(id)).count() as u64
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Small::Bitmap(b) => {
                let stats = b.statistics();
                stats.n_containers as usize * CONTAINER_BYTES
                    + stats.n_values_array_containers as usize * 2
                    + stats.n_bitset_containers as usize * 8192
                    + stats.n_bytes_run_containers as usize
            }
            Small::Sorted(s) => s.len() * 4,
        }
    }
}

impl Large {
    fn contains(&self, id: u64) -> bool {
        match self {
            Large::Hashed(h) => h.contains(&id),
            Large::Sorted(s) => s.binary_search(&id).is_ok(),
        }
    }

    fn len(&self) -> u64 {
        match self {
            Large::Hashed(h) => h.len() as u64,
            Large::Sorted(s) => s.len() as u64,
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = u64> + '_> {
        match self {
            Large::Hashed(h) => Box::new(h.iter().copied()),
            Large::Sorted(s) => Box::new(s.iter().copied()),
        }
    }

    fn intersection_len(&self, other: &Large) -> u64 {
        if let (Large::Sorted(a), Large::Sorted(b)) = (self, other) {
            return sorted_intersection_len(a, b);
        }
        let (few, many) = if self.len() <= other.len() { (self, other) } else { (other, self) };
        few.iter().filter(|&id| many.contains(id)).count() as u64
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Large::Hashed(h) => h.capacity() * (std::mem::size_of::<u64>() + 1),
            Large::Sorted(s) => s.len() * 8,
        }
    }
}

/// How many values two increasing arrays share, in one merge walk.
fn sorted_intersection_len<T: Ord>(a: &[T], b: &[T]) -> u64 {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

impl IdSet {
    /// Adds an id; false if it was already there. A frozen set is thawed first (the poll that
    /// builds a set never freezes it, so this does not happen in the exporter).
    pub fn insert(&mut self, id: u64) -> bool {
        match u32::try_from(id) {
            Ok(small) => {
                let mut bitmap = match std::mem::take(&mut self.small) {
                    Small::Bitmap(b) => b,
                    Small::Sorted(ids) => ids.iter().copied().collect(),
                };
                let new = bitmap.insert(small);
                self.small = Small::Bitmap(bitmap);
                new
            }
            Err(_) => {
                let mut hashed = match std::mem::take(&mut self.large) {
                    Large::Hashed(h) => h,
                    Large::Sorted(ids) => ids.iter().copied().collect(),
                };
                let new = hashed.insert(id);
                self.large = Large::Hashed(hashed);
                new
            }
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        match u32::try_from(id) {
            Ok(small) => self.small.contains(small),
            Err(_) => self.large.contains(id),
        }
    }

    pub fn len(&self) -> u64 {
        self.small.len() + self.large.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every id, the 32-bit ones in increasing order first.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.small.iter().map(u64::from).chain(self.large.iter())
    }

    /// How many ids of `self` are not in `other`.
    pub fn difference_len(&self, other: &IdSet) -> u64 {
        self.len() - self.intersection_len(other)
    }

    /// The ids of `self` that are not in `other`.
    pub fn difference(&self, other: &IdSet) -> IdSet {
        if let (Small::Bitmap(a), Small::Bitmap(b)) = (&self.small, &other.small) {
            let large = self.large.iter().filter(|&id| !other.large.contains(id)).collect();
            return IdSet { small: Small::Bitmap(a - b), large: Large::Hashed(large) };
        }
        self.iter().filter(|&id| !other.contains(id)).collect()
    }

    /// How many ids are in both.
    pub fn intersection_len(&self, other: &IdSet) -> u64 {
        self.small.intersection_len(&other.small) + self.large.intersection_len(&other.large)
    }

    /// The ids in both.
    pub fn intersection(&self, other: &IdSet) -> IdSet {
        if let (Small::Bitmap(a), Small::Bitmap(b)) = (&self.small, &other.small) {
            let large = self.large.iter().filter(|&id| other.large.contains(id)).collect();
            return IdSet { small: Small::Bitmap(a & b), large: Large::Hashed(large) };
        }
        self.iter().filter(|&id| other.contains(id)).collect()
    }

    /// Heap bytes held, estimated from the bitmap's containers and the arrays' lengths, for the
    /// memory figures of the README.
    pub fn heap_bytes(&self) -> usize {
        self.small.heap_bytes() + self.large.heap_bytes()
    }

    /// Puts a complete set in its cheapest form for keeping: see [`IdSet`]. Lookups and counts
    /// work the same on it.
    pub fn freeze(&mut self) {
        if let Small::Bitmap(b) = &self.small {
            let as_array = b.len() as usize * 4;
            if as_array < self.small.heap_bytes() {
                self.small = Small::Sorted(b.iter().collect());
            }
        }
        if let Large::Hashed(h) = &self.large {
            let mut ids: Vec<u64> = h.iter().copied().collect();
            ids.sort_unstable();
            self.large = Large::Sorted(ids.into_boxed_slice());
        }
    }
}

/// Equal when they hold the same ids, whatever their form.
impl PartialEq for IdSet {
    fn eq(&self, other: &IdSet) -> bool {
        self.len() == other.len() && self.intersection_len(other) == self.len()
    }
}

impl Eq for IdSet {}

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

    /// Every form against every other: the counts and lookups do not depend on it.
    #[test]
    fn frozen_sets_answer_like_growing_ones() {
        let spread: Vec<u64> = (0..5_000u64).map(|i| i * 800_011 % (1 << 32)).collect();
        let dense: Vec<u64> = (0..20_000u64).map(|i| 100_000 + i * 3).collect();
        let large: Vec<u64> = (0..300u64).map(|i| u64::MAX - i * 7).collect();
        let sets: Vec<IdSet> = [
            spread.iter().chain(&large).copied().collect::<Vec<_>>(),
            spread.iter().step_by(3).chain(dense.iter().step_by(2)).chain(large.iter().step_by(5)).copied().collect(),
            dense.clone(),
            dense.iter().chain(&large).copied().filter(|id| id % 2 == 0).collect(),
            Vec::new(),
        ]
        .into_iter()
        .map(|ids| ids.into_iter().collect())
        .collect();
        let frozen: Vec<IdSet> = sets
            .iter()
            .map(|s| {
                let mut f = s.clone();
                f.freeze();
                f
            })
            .collect();
        // Spread ids are cheaper as an array, dense ones as a bitmap.
        assert!(matches!(frozen[0].small, Small::Sorted(_)) && matches!(frozen[0].large, Large::Sorted(_)));
        assert!(matches!(frozen[2].small, Small::Bitmap(_)));
        assert!(
            frozen[0].heap_bytes() < sets[0].heap_bytes() / 4,
            "{} {}",
            frozen[0].heap_bytes(),
            sets[0].heap_bytes()
        );
        for (i, a) in sets.iter().enumerate() {
            assert_eq!(frozen[i], *a);
            assert_eq!(frozen[i].len(), a.len());
            let mut ids: Vec<u64> = frozen[i].iter().collect();
            ids.sort_unstable();
            let mut expected: Vec<u64> = a.iter().collect();
            expected.sort_unstable();
            assert_eq!(ids, expected);
            for id in [spread[3], dense[4], large[0], 1, u64::MAX - 1] {
                assert_eq!(frozen[i].contains(id), a.contains(id), "set {i}, id {id}");
            }
            for (j, b) in sets.iter().enumerate() {
                let both = a.intersection_len(b);
                let only = a.difference_len(b);
                for (x, y) in [(&frozen[i], b), (a, &frozen[j]), (&frozen[i], &frozen[j])] {
                    assert_eq!(x.intersection_len(y), both, "sets {i} and {j}");
                    assert_eq!(x.difference_len(y), only, "sets {i} and {j}");
                    assert_eq!(x.intersection(y), a.intersection(b), "sets {i} and {j}");
                    assert_eq!(x.difference(y), a.difference(b), "sets {i} and {j}");
                }
            }
        }
        // A frozen set still takes ids.
        let mut thawed = frozen[0].clone();
        assert!(thawed.insert(7) && thawed.insert(u64::MAX - 1) && !thawed.insert(spread[1]));
        assert_eq!(thawed.len(), sets[0].len() + 2);
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
